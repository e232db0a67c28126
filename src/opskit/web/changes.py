"""What tells open overview pages to read the overview again: the engine's container
events (``docker events``: one process for all open pages, on the server's host) and the
end of every job (the run store's events). Each page gets a ``changed`` event and reads
``/api/overview`` again, so a stopped container shows within a second or two."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from opskit.web.streams import frame, next_item

# container events that change what the overview shows
ACTIONS = ("start", "stop", "die", "kill", "pause", "unpause", "restart", "destroy", "create",
           "health_status")  # fmt: skip
ENDS = ("job.finished", "run.finished")


class EngineEvents:
    """One ``docker events`` for every subscriber: started with the first, stopped (the
    process killed) with the last."""

    def __init__(self, host: Any) -> None:
        self.host = host
        self.queues: set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[str]]] = set()
        self.lock = threading.Lock()
        self.process: Any = None

    def subscribe(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        with self.lock:
            self.queues.add((asyncio.get_running_loop(), queue))
            if self.process is None:
                self._start()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        with self.lock:
            self.queues = {(loop, q) for loop, q in self.queues if q is not queue}
            if not self.queues and self.process is not None:
                self.process.kill()
                self.process = None

    def _start(self) -> None:
        argv = ["docker", "events", "--format", "{{json .}}", "--filter", "type=container"]
        self.process = process = self.host.popen(argv)
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: Any) -> None:
        for raw in iter(process.stdout.readline, b""):
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            action = str(event.get("Action") or event.get("status") or "").split(":")[0]
            if action in ACTIONS:
                name = str((event.get("Actor") or {}).get("Attributes", {}).get("name", ""))
                self._tell(f"container {name}: {action}")
        with self.lock:  # the engine went away: the next subscriber starts it again
            if self.process is process:
                self.process = None
                self._tell("engine events ended")

    def _tell(self, reason: str) -> None:
        with self.lock:
            queues = list(self.queues)
        for loop, queue in queues:
            loop.call_soon_threadsafe(queue.put_nowait, reason)


async def overview_changes(
    engine: EngineEvents, runs: Any, stopping: Callable[[], bool]
) -> AsyncIterator[str]:
    """A ``changed`` event whenever the engine reports a container's change or a job
    ends, until *stopping*; keepalives between."""
    changes = engine.subscribe()
    jobs = runs.broadcaster.subscribe()
    merged: asyncio.Queue[str] = asyncio.Queue()

    async def pump(queue: asyncio.Queue[Any], reason: Callable[[Any], str | None]) -> None:
        while True:
            item = await queue.get()
            if (said := reason(item)) is not None:
                merged.put_nowait(said)

    def ended(event: Any) -> str | None:
        return f"{event.data.get('event')}" if event.data.get("event") in ENDS else None

    tasks = [
        asyncio.create_task(pump(changes, lambda reason: str(reason))),
        asyncio.create_task(pump(jobs, ended)),
    ]
    try:
        yield "retry: 1000\n\n"
        while not stopping():
            reason = await next_item(merged, stopping)
            if reason is None:
                yield ": keepalive\n\n"
                continue
            yield frame({"changed": reason})
    finally:
        for task in tasks:
            task.cancel()
        engine.unsubscribe(changes)
        runs.broadcaster.unsubscribe(jobs)
