"""The JSON API of the overview: who is logged in, every env's containers and newest
backup, and the projects for the operations form."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from opskit.web.context import Board, Viewer
from opskit.web.streams import event_stream

router = APIRouter(prefix="/api")


@router.get("/me")
def me(board: Board, user: Viewer) -> dict[str, Any]:
    return {"name": user.name, "role": user.role, "terminal": board.options.terminal}


@router.get("/overview")
def overview(board: Board, user: Viewer) -> dict[str, Any]:
    """Every project and env: containers with state and health, the newest backup."""
    ops = board.ops
    ops.runtime.reload()  # descriptors edited since are shown as they are now
    placements = ops.status()
    newest = {(p, e): a for p, e, a in ops.newest_backups()}
    envs = []
    for project in ops.projects():
        for env in project.environments:
            archive = newest.get((project.name, env))
            envs.append(
                {
                    "project": project.name,
                    "env": env,
                    "containers": [
                        p.as_dict()
                        for p in placements
                        if p.project == project.name and p.environment == env
                    ],
                    "newest_backup": archive.as_dict() if archive else None,
                }
            )
    return {"envs": envs}


@router.get("/overview/changes")
async def changes(board: Board, user: Viewer) -> StreamingResponse:
    """A ``changed`` event whenever a container changes on the engine or a job ends: the
    page reads the overview again."""
    from opskit.web.changes import overview_changes

    return event_stream(overview_changes(board.engine_events, board.runs, board.stopping))


@router.get("/projects")
def projects(board: Board, user: Viewer) -> dict[str, Any]:
    """Projects with their envs and sync directions, for the operations form."""
    board.ops.runtime.reload()  # a project added since is a choice now, not after a visit elsewhere
    return {
        "projects": [
            {
                "name": p.name,
                "envs": list(p.environments),
                "sync_pairs": [list(pair) for pair in (p.sync.pairs if p.sync else ())],
                "promote": p.promote is not None,
            }
            for p in board.ops.projects()
        ]
    }
