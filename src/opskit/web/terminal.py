"""The dashboard's terminal: a WebSocket to a pseudo-terminal running ``docker exec`` in a
container of a resolved project (the container comes from opskit's own resolution, never
from the request), on the local engine or on the ``--host`` server over SSH. Text frames
are keystrokes; ``{"resize": [cols, rows]}`` resizes the terminal (a malformed one is
ignored). The session ends when the socket closes: the shell in the container gets SIGHUP,
then SIGTERM, then SIGKILL, and so does the ``docker exec`` client (a killed client alone
leaves the shell running in the container)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from opskit.runtime import SHELL

# The shell announces its process id in the container first, as an escape sequence that
# terminals ignore (and that is taken out of the output), so that it can be ended there.
START = "printf '\\033]opskit-pid;%s\\007' \"$$\"; " + SHELL
PID_MARK = re.compile(rb"\x1b\]opskit-pid;([0-9]{1,10})\x07")
# HUP, TERM, then KILL, a second for each; an interactive shell ignores TERM
STOP = (
    'for s in HUP TERM KILL; do kill -s "$s" "$1" 2>/dev/null || exit 0; i=0; '
    'while [ "$i" -lt 10 ] && kill -0 "$1" 2>/dev/null; do sleep 0.1; i=$((i+1)); done; done'
)
IGNORED = b""


class ShellPid:
    """Takes the shell's process id (:data:`PID_MARK`) out of the terminal's first output;
    that output is held back until it came (or 4 KiB came without it)."""

    def __init__(self) -> None:
        self.head: bytes | None = b""
        self.pid: str | None = None

    def feed(self, data: bytes) -> bytes:
        """What the page is to get of *data* (b"" while it is held back)."""
        if self.head is None:
            return data
        self.head += data
        found = PID_MARK.search(self.head)
        if found:
            self.pid = found[1].decode()
            shown, self.head = self.head[: found.start()] + self.head[found.end() :], None
            return shown
        if len(self.head) < 4096:
            return b""
        shown, self.head = self.head, None
        return shown

    def rest(self) -> bytes:
        """What is still held back, when the terminal ended."""
        rest, self.head = self.head or b"", None
        return rest


async def refuse(socket: WebSocket, reason: str) -> None:
    """Accepted, then closed with 4404 and the reason, which the page shows."""
    await socket.accept()
    await socket.close(code=4404, reason=reason[:120])


def _frame(message: Any) -> tuple[int, int] | bytes | None:
    """A WebSocket message as a size (``{"resize": [cols, rows]}``), keystrokes, or None
    when the page went away; a malformed size is :data:`IGNORED`."""
    if message.get("type") == "websocket.disconnect":
        return None
    text, data = message.get("text"), message.get("bytes")
    if text is not None and text.startswith('{"resize"'):
        try:
            cols, rows = json.loads(text)["resize"]
        except (ValueError, TypeError, KeyError):
            return IGNORED
        if all(type(n) is int and 0 < n <= 1000 for n in (cols, rows)):
            return cols, rows
        return IGNORED
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
        await refuse(socket, str(exc))
        return
    if not running:
        await refuse(socket, f"{project} {env} {service}: no running container")
        return
    await socket.accept()
    container = running[0].id
    argv = ["docker", "exec", "-it", "-e", "TERM=xterm-256color", container, "sh", "-c", START]
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
    shell = ShellPid()

    def read() -> None:
        while data := terminal.read():
            if shown := shell.feed(data):  # b"" would mean the end
                loop.call_soon_threadsafe(output.put_nowait, shown)
        if rest := shell.rest():
            loop.call_soon_threadsafe(output.put_nowait, rest)
        loop.call_soon_threadsafe(output.put_nowait, b"")

    def stop() -> None:
        """End the shell in the container, then the docker client (bounded: a few s)."""
        if shell.pid:
            with contextlib.suppress(OpskitError):
                ops.host.run(
                    ["docker", "exec", container, "sh", "-c", STOP, "sh", shell.pid],
                    check=False,
                    timeout=10,
                )
        terminal.close()

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
            elif frame:
                terminal.write(frame)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        sender.cancel()
        # Shielded: a server that shuts down still ends the shell and the docker client.
        # Past uvicorn's graceful timeout this await is cancelled; stop() goes on in its
        # thread, which the interpreter joins before it exits, so there is nothing to report.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.shield(loop.run_in_executor(None, stop))
