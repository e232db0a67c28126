"""What tells open overview pages to read the overview again: the engine's container
events (``docker events``: one process for all open pages, on the server's host) and the
end of every job (the run store's events), which :class:`opskit.web.overview.OverviewFeed`
follows once for all pages. Each page gets a ``changed`` event and reads ``/api/overview``
again, so a stopped container shows within a second or two."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from opskit.web.streams import frame, next_item

if TYPE_CHECKING:
    from opskit.web.overview import OverviewFeed

# container events that change what the overview shows
ACTIONS = ("start", "stop", "die", "kill", "pause", "unpause", "restart", "destroy", "create",
           "health_status")  # fmt: skip


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

    def resume(self) -> None:
        """Start ``docker events`` again if it ended (the engine went away) while
        subscribers remain."""
        with self.lock:
            if self.queues and self.process is None:
                self._start()

    def _start(self) -> None:
        from opskit.errors import OpskitError

        argv = ["docker", "events", "--format", "{{json .}}", "--filter", "type=container"]
        try:
            self.process = process = self.host.popen(argv)
        except OpskitError:  # a server that cannot be reached: resume() tries again
            return
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
        process.wait()  # no zombie left behind
        with self.lock:  # the engine went away: resume() or the next subscriber starts it
            ended = self.process is process
            if ended:
                self.process = None
        if ended:  # told outside the lock, which _tell takes (a deadlock, before)
            self._tell("engine events ended")

    def _tell(self, reason: str) -> None:
        with self.lock:
            queues = list(self.queues)
        for loop, queue in queues:
            loop.call_soon_threadsafe(queue.put_nowait, reason)


async def overview_changes(feed: OverviewFeed, stopping: Callable[[], bool]) -> AsyncIterator[str]:
    """The feed's messages to one page: ``{"changed": reason, "generation": n}`` when the
    containers were read again after a change, ``{"checked": n}`` when newer checks are in;
    keepalives between, until *stopping*."""
    queue = feed.subscribe()
    try:
        yield "retry: 1000\n\n"
        while not stopping():
            message = await next_item(queue, stopping)
            if message is None:
                yield ": keepalive\n\n"
                continue
            yield frame(message)
    finally:
        feed.unsubscribe(queue)
