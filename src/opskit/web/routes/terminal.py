"""The terminal's WebSocket: operators only, from the dashboard's own pages only."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from opskit.errors import OpskitError
from opskit.web.context import current_user, dashboard
from opskit.web.guard import same_origin

router = APIRouter(prefix="/api")


@router.websocket("/terminal")
async def terminal(
    socket: WebSocket, project: str, env: str, service: str, host: str | None = None
) -> None:
    from opskit.web.terminal import refuse, terminal_session

    board = dashboard(socket)
    try:
        found = current_user(socket)
    except OpskitError:
        found = None
    if not same_origin(socket, board.options.behind_proxy) or found is None or not found.operator:
        await socket.close(code=4403)
        return
    try:
        view = board.hosts.get(host)
    except OpskitError as exc:
        await refuse(socket, str(exc))
        return
    await terminal_session(socket, view.ops, project, env, service)
