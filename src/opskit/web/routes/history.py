"""The JSON API of the history page: the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from opskit.web.context import Here, Viewer

router = APIRouter(prefix="/api")


@router.get("/history")
def history(here: Here, user: Viewer, project: str | None = None) -> dict[str, Any]:
    """The audit log: sync, promote, restore, rebuild."""
    return {"entries": here.ops.history(project)}
