"""The dashboard's terminal: a WebSocket to a pseudo-terminal running ``docker exec`` in a
container of a resolved project (the container comes from opskit's own resolution, never
from the request), on the local engine or on the ``--host`` server over SSH. Text frames
are keystrokes; ``{"resize": [cols, rows]}`` resizes the terminal. The session ends when
the socket closes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from opskit.runtime import SHELL


async def _refuse(socket: WebSocket, reason: str) -> None:
    """Accepted, then closed with 4404 and the reason, which the page shows."""
    await socket.accept()
    await socket.close(code=4404, reason=reason[:120])


def _frame(message: Any) -> tuple[int, int] | bytes | None:
    """A WebSocket message as a size (``{"resize": [cols, rows]}``), keystrokes, or None
    when the page went away."""
    if message.get("type") == "websocket.disconnect":
        return None
    text, data = message.get("text"), message.get("bytes")
    if text is not None and text.startswith('{"resize"'):
        cols, rows = json.loads(text)["resize"]
        return int(cols), int(rows)
    return data if data is not None else (text or "").encode()


async def _first_size(socket: WebSocket) -> tuple[tuple[int, int], bytes] | None:
    """The size the page sends on opening (a page sends it first), so that ``docker exec``
    starts with it: a resize that comes while the docker client is starting can be lost
    (it reads the size once, then listens for SIGWINCH). Keys that came first are returned
    to be written once the terminal runs; None if the page went away."""
    try:
        frame = _frame(await asyncio.wait_for(socket.receive(), timeout=2))
    except TimeoutError:
        return (80, 24), b""
    if frame is None:
        return None
    if isinstance(frame, tuple):
        return frame, b""
    return (80, 24), frame


async def terminal_session(
    socket: WebSocket, ops: Any, project: str, env: str, service: str
) -> None:
    from opskit.errors import OpskitError

    try:
        running = ops.containers(project, env, service, running=True)
    except OpskitError as exc:
        await _refuse(socket, str(exc))
        return
    if not running:
        await _refuse(socket, f"{project} {env} {service}: no running container")
        return
    await socket.accept()
    argv = ["docker", "exec", "-it", "-e", "TERM=xterm-256color", running[0].id, "sh", "-c", SHELL]
    opening = await _first_size(socket)
    if opening is None:
        return
    size, early = opening
    loop = asyncio.get_running_loop()
    try:
        terminal = await loop.run_in_executor(None, ops.host.terminal, argv, *size)
    except OpskitError as exc:
        await socket.close(code=4500, reason=str(exc)[:120])
        return
    output: asyncio.Queue[bytes] = asyncio.Queue()

    def read() -> None:
        while data := terminal.read():
            loop.call_soon_threadsafe(output.put_nowait, data)
        loop.call_soon_threadsafe(output.put_nowait, b"")

    threading.Thread(target=read, daemon=True).start()

    async def pump_out() -> None:
        while data := await output.get():
            await socket.send_bytes(data)
        await socket.close()

    sender = asyncio.create_task(pump_out())
    if early:
        terminal.write(early)
    try:
        while True:
            frame = _frame(await socket.receive())
            if frame is None:
                break
            if isinstance(frame, tuple):
                terminal.resize(*frame)
            else:
                terminal.write(frame)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(Exception):
            await loop.run_in_executor(None, terminal.close)
