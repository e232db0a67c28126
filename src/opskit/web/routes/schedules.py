"""The JSON API of the schedules page: each project's backup schedule, and setting one
(the operation ``opskit schedule PROJECT SCHEDULE`` runs too), then the timers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from opskit import schedule_edit
from opskit.web.context import Board, Operator, Viewer, json_body, openapi_body

router = APIRouter(prefix="/api")
SCHEDULE_BODY = {
    "type": "object",
    "required": ["schedule"],
    "properties": {"schedule": {"type": "string", "example": "03:30"}},
}
INSTALL_TIMERS = ["timers", "--install", "--remove-stale"]


@router.get("/schedules")
def schedules(board: Board, user: Viewer) -> dict[str, Any]:
    """Each project's backup schedule (from its descriptor) and when it next runs."""
    rows = schedule_edit.schedules(board.ops)
    return {"schedules": [row.as_dict() for row in rows], "unit_dir": board.settings.unit_dir}


@router.put("/schedules/{name}", openapi_extra=openapi_body(SCHEDULE_BODY))
async def set_schedule(request: Request, board: Board, user: Operator, name: str) -> dict[str, Any]:
    """Set a project's ``backup.schedule``: the descriptor is rewritten (validated, the
    rest of it as it was), then ``opskit timers --install --remove-stale`` runs."""
    body = await json_body(request)
    schedule = body.get("schedule") if isinstance(body, dict) else None
    if not isinstance(schedule, str):
        raise HTTPException(422, 'expected {"schedule": "03:30"}')
    schedule_edit.set_schedule(board.ops, name, schedule)
    return board.runs.start(INSTALL_TIMERS, user.name)
