"""The JSON API of the history page: the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from opskit.web.context import Board, Viewer

router = APIRouter(prefix="/api")


@router.get("/history")
def history(board: Board, user: Viewer, project: str | None = None) -> dict[str, Any]:
    """The audit log: sync, promote, restore, rebuild."""
    return {"entries": board.ops.history(project)}
