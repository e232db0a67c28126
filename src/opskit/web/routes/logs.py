"""The JSON API of the logs page: an env's container logs (or one service's), merged."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse

from opskit.stacks import docker_since
from opskit.web.context import Board, Here, Viewer
from opskit.web.streams import event_stream, log_lines

router = APIRouter(prefix="/api")
MAX_ID = 2**63 - 1  # SQLite's integers
MAX_TAIL = 5000


@router.get("/logs")
async def logs(
    board: Board,
    here: Here,
    user: Viewer,
    project: str,
    env: str,
    service: str | None = None,
    since: str | None = None,
    follow: bool = True,
    tail: int = Query(200, ge=0, le=MAX_ID),
) -> StreamingResponse:
    """The logs of an env's containers (of one *service*), as server-sent events, one per
    line: ``{"service", "time", "line"}``, *time* UTC with nine fraction digits so that the
    page merges the services' lines by it; ``{"end": true}`` when every log has ended.

    *tail*: the last lines of each container to begin with (at most 5000); *since*: only
    lines from then on, as ``opskit logs --since`` reads it (``10m``, ``2h``, ``3d``,
    ``2026-12-04T03:30``); *follow*: go on with new lines as they come."""
    ops = here.ops
    ops.project(project).check_env(env)
    placements = [
        p
        for p in ops.status(project, env)
        if p.container is not None and service in (None, p.service)
    ]
    if not placements:
        what = f"service {service!r}" if service else "any service"
        raise HTTPException(404, f"{project} {env}: no container for {what}")
    argv = ["docker", "logs", "--timestamps", "--tail", str(max(0, min(tail, MAX_TAIL)))]
    if since:
        argv += ["--since", docker_since(since)]
    if follow:
        argv.append("--follow")
    services = [p.service for p in placements]
    commands = [
        # a service with several containers (scaled): each goes by its container's name
        (
            [*argv, p.container.name],
            p.service if services.count(p.service) == 1 else p.container.name,
        )
        for p in placements
        if p.container is not None
    ]
    return event_stream(log_lines(ops.host, commands, board.stopping))
