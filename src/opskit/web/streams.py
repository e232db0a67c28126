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


async def log_lines(host: Any, argv: list[str], stopping: Callable[[], bool]) -> AsyncIterator[str]:
    """Lines of a following ``docker logs`` (stdout and stderr merged), read in a thread;
    the process ends when the stream does."""
    import threading

    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[bytes] = asyncio.Queue()
    process = host.popen(argv)

    def read() -> None:
        for raw in iter(process.stdout.readline, b""):
            loop.call_soon_threadsafe(lines.put_nowait, raw)
        loop.call_soon_threadsafe(lines.put_nowait, b"")

    threading.Thread(target=read, daemon=True).start()
    try:
        while not stopping():
            raw = await next_item(lines, stopping)
            if raw is None:
                yield ": keepalive\n\n"
                continue
            if not raw:
                break
            yield frame({"line": raw.decode("utf-8", "replace").rstrip("\n")})
    finally:
        process.kill()
        await loop.run_in_executor(None, process.wait)
