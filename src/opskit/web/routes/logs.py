"""The JSON API of the logs page: a service's container log, live."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from opskit.web.context import Board, Viewer
from opskit.web.streams import event_stream, log_lines

router = APIRouter(prefix="/api")
MAX_ID = 2**63 - 1  # SQLite's integers
MAX_TAIL = 5000


@router.get("/logs")
async def logs(
    board: Board,
    user: Viewer,
    project: str,
    env: str,
    service: str,
    tail: int = Query(200, ge=0, le=MAX_ID),
) -> StreamingResponse:
    """A service's container log, live, as server-sent events (one line each)."""
    found = board.ops.containers(project, env, service)
    if not found:
        raise HTTPException(404, f"{project} {env} {service}: no container")
    lines = str(max(0, min(tail, MAX_TAIL)))
    argv = ["docker", "logs", "--follow", "--tail", lines, found[0].name]
    return event_stream(log_lines(board.ops.host, argv, board.stopping))
