"""Server-sent event streams: framing, keepalives, and an end when the server stops."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import StreamingResponse

KEEPALIVE_SECONDS = 15.0
STOP_CHECK_SECONDS = 0.5


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    """Server-sent events that no cache or reverse proxy holds back."""
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def next_item(queue: asyncio.Queue[Any], stopping: Callable[[], bool]) -> Any:
    """The queue's next item; None after KEEPALIVE_SECONDS without one, or when the server
    stops (the caller checks *stopping*)."""
    waited = 0.0
    while waited < KEEPALIVE_SECONDS and not stopping():
        try:
            return await asyncio.wait_for(queue.get(), STOP_CHECK_SECONDS)
        except TimeoutError:
            waited += STOP_CHECK_SECONDS
    return None


def frame(data: dict[str, Any], event_id: int | None = None) -> str:
    """One server-sent event: *data* as JSON, with its id when it has one."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False, default=str)}\n\n"


async def log_lines(
    host: Any, commands: list[tuple[list[str], str]], stopping: Callable[[], bool]
) -> AsyncIterator[str]:
    """The lines of several ``docker logs --timestamps`` (each with its label: the service),
    one event each as they come: ``{"service", "time", "line"}``, *time* the line's own
    (UTC, nanoseconds, so times compare as text: the page merges the services' lines by
    it). Each process is read in a thread and killed when the stream ends; when all have
    ended by themselves (no ``--follow``, or the containers stopped), an ``{"end": true}``
    event says so."""
    import threading

    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    processes = [(host.popen(argv), label) for argv, label in commands]

    def read(process: Any, label: str) -> None:
        for raw in iter(process.stdout.readline, b""):
            loop.call_soon_threadsafe(lines.put_nowait, (label, raw))
        loop.call_soon_threadsafe(lines.put_nowait, (label, b""))

    for process, label in processes:
        threading.Thread(target=read, args=(process, label), daemon=True).start()
    running = len(processes)
    try:
        yield "retry: 2000\n\n"
        while running and not stopping():
            item = await next_item(lines, stopping)
            if item is None:
                yield ": keepalive\n\n"
                continue
            label, raw = item
            if not raw:
                running -= 1
                continue
            moment, _space, text = raw.decode("utf-8", "replace").rstrip("\n").partition(" ")
            yield frame({"service": label, "time": log_time(moment), "line": text})
        if not running:
            yield frame({"end": True})
    finally:
        for process, _label in processes:
            process.kill()
        for process, _label in processes:
            await loop.run_in_executor(None, process.wait)


def log_time(moment: str) -> str:
    """Docker's RFC 3339 time of a log line with nine fraction digits (``…:05.120000000Z``):
    docker drops trailing zeros, and times of different lengths do not compare as text."""
    whole, _dot, fraction = moment.removesuffix("Z").partition(".")
    if len(whole) != 19 or not moment.endswith("Z"):
        return moment  # not docker's: left as it is
    return f"{whole}.{fraction.ljust(9, '0')[:9]}Z"
