"""The JSON API of the schedules page: each project's backup schedule, and setting one
(the operation ``opskit schedule PROJECT SCHEDULE`` runs too), then the timers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request

from opskit import schedule_edit
from opskit.web.context import Board, Here, Operator, Viewer, json_body, openapi_body

router = APIRouter(prefix="/api")
SCHEDULE_BODY = {
    "type": "object",
    "required": ["schedule"],
    "properties": {"schedule": {"type": "string", "example": "03:30"}},
}
INSTALL_TIMERS = ["timers", "--install", "--remove-stale"]


@router.get("/schedules")
def schedules(here: Here, user: Viewer) -> dict[str, Any]:
    """Each project's backup schedule (from its descriptor) and when it next runs."""
    rows = schedule_edit.schedules(here.ops)
    return {
        "schedules": [row.as_dict() for row in rows],
        "unit_dir": here.ops.runtime.settings().unit_dir,
    }


@router.put("/schedules/{name}", openapi_extra=openapi_body(SCHEDULE_BODY))
async def set_schedule(
    request: Request, board: Board, here: Here, user: Operator, name: str
) -> dict[str, Any]:
    """Set a project's ``backup.schedule``: the descriptor is rewritten (validated, the
    rest of it as it was), then ``opskit timers --install --remove-stale`` runs."""
    body = await json_body(request)
    schedule = body.get("schedule") if isinstance(body, dict) else None
    if not isinstance(schedule, str):
        raise HTTPException(422, 'expected {"schedule": "03:30"}')
    schedule_edit.set_schedule(here.ops, name, schedule)
    return board.runs.start(here.command(INSTALL_TIMERS), user.name)
