"""The dashboard's terminal: a WebSocket to a pty running ``docker exec`` in a container
of a resolved project (the container comes from opskit's own resolution, never from the
request). Text frames are keystrokes; ``{"resize": [cols, rows]}`` resizes the pty. The
session ends when the socket closes."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import termios
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from opskit.runtime import SHELL


async def _refuse(socket: WebSocket, reason: str) -> None:
    """Accepted, then closed with 4404 and the reason, which the page shows."""
    await socket.accept()
    await socket.close(code=4404, reason=reason[:120])


async def terminal_session(
    socket: WebSocket, ops: Any, project: str, env: str, service: str
) -> None:
    from opskit.errors import OpskitError

    try:
        from opskit.host import LocalHost

        if not isinstance(ops.host, LocalHost):
            raise OpskitError("the terminal works on the local Docker engine only for now")
        running = ops.containers(project, env, service, running=True)
    except OpskitError as exc:
        await _refuse(socket, str(exc))
        return
    if not running:
        await _refuse(socket, f"{project} {env} {service}: no running container")
        return
    await socket.accept()
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        ["docker", "exec", "-it", "-e", "TERM=xterm-256color", running[0].id, "sh", "-c", SHELL],
        stdin=secondary, stdout=secondary, stderr=secondary, start_new_session=True,
        close_fds=True,
    )  # fmt: skip
    os.close(secondary)
    loop = asyncio.get_running_loop()
    output: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(primary, 65536)
        except OSError:
            data = b""
        output.put_nowait(data)
        if not data:
            loop.remove_reader(primary)

    loop.add_reader(primary, readable)

    async def pump_out() -> None:
        while data := await output.get():
            await socket.send_bytes(data)
        await socket.close()

    sender = asyncio.create_task(pump_out())
    try:
        while True:
            message = await socket.receive()
            if message.get("type") == "websocket.disconnect":
                break
            text = message.get("text")
            data = message.get("bytes")
            if text is not None and text.startswith('{"resize"'):
                cols, rows = json.loads(text)["resize"]
                fcntl.ioctl(primary, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                continue
            payload = data if data is not None else (text or "").encode()
            os.write(primary, payload)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        sender.cancel()
        with contextlib.suppress(Exception):
            loop.remove_reader(primary)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        os.close(primary)
        await asyncio.get_running_loop().run_in_executor(None, process.wait)
