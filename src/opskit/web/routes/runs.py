"""The JSON API of the runs: start an operation, list the runs, one run with its events,
and every run's events live."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from opskit.operation_requests import OPERATIONS, RequestError, parse_operation
from opskit.web.context import Board, Here, Operator, Viewer, json_body, openapi_body
from opskit.web.streams import event_stream

router = APIRouter(prefix="/api")
MAX_ID = 2**63 - 1  # SQLite's integers
EVENT_ID = re.compile(r"[0-9]{1,18}\Z")
RUN_BODY = {
    "type": "object",
    "required": ["operation", "project"],
    "properties": {
        "operation": {"type": "string", "enum": list(OPERATIONS)},
        "project": {"type": "string"},
        "env": {"type": "string"},
        "archive": {"type": "string", "description": "one of the env's, local or offsite"},
        "offsite": {"type": "boolean", "description": "restore: from the offsite copy"},
        "service": {"type": "string", "description": "start, stop, restart: one service"},
        "from": {"type": "string"},
        "to": {"type": "string"},
        "dry_run": {"type": "boolean"},
        "confirm": {"type": "string", "description": "the project's name, for its last env"},
    },
}


def operation_argv(ops: Any, body: Any) -> list[str]:
    """The opskit command line of a requested operation, built from checked fields only
    (:func:`opskit.operation_requests.parse_operation`); 422 for anything else."""
    try:
        return parse_operation(ops.projects(), body).argv()
    except RequestError as exc:
        raise HTTPException(422, str(exc)) from None


def with_host(board: Board, run: dict[str, Any]) -> dict[str, Any]:
    """*run* with the name of the host it runs on; its ``command`` as on that host (the
    ``--host URL --root ROOT`` that sends it there is what ``host`` says)."""
    argv = list(run["argv"])
    shown = argv[4:] if argv[:1] == ["--host"] and argv[2:3] == ["--root"] else argv
    return {**run, "host": board.hosts.name_of(argv), "command": " ".join(shown)}


@router.get("/runs")
def runs(board: Board, user: Viewer, limit: int = Query(50, ge=1, le=10000)) -> dict[str, Any]:
    """The newest runs (of every host), each with the ``host`` it runs on."""
    found = board.runs.recent(limit)
    found["runs"] = [with_host(board, r) for r in found["runs"]]
    return found


@router.get("/runs/{run_id}")
def run(
    board: Board, user: Viewer, run_id: str, after: int = Query(0, ge=0, le=MAX_ID)
) -> dict[str, Any]:
    """One run (with its ``host``) and its stored events after *after* (all by default)."""
    found = board.runs.one(run_id, after)
    found["run"] = with_host(board, found["run"])
    return found


@router.post("/runs", status_code=201, openapi_extra=openapi_body(RUN_BODY))
async def start_run(request: Request, board: Board, here: Here, user: Operator) -> dict[str, Any]:
    """Start an operation as a run of its own: ``{"operation": "backup", "project":
    "mdf", "env": "dev"}``; see docs/dashboard.md for each operation's fields. With
    ``?host=NAME`` it runs on that host of the inventory (``--host URL --root ROOT``)."""
    argv = operation_argv(here.ops, await json_body(request))
    return with_host(board, board.runs.start(here.command(argv), user.name))


@router.get("/stream")
async def stream(
    request: Request, board: Board, user: Viewer, after: int | None = Query(None, ge=0, le=MAX_ID)
) -> StreamingResponse:
    """Every run's events as server-sent events, each with its id: a reconnect
    (``Last-Event-ID``) resumes right after the last one delivered."""
    header = request.headers.get("last-event-id")
    last = int(header) if header and EVENT_ID.match(header) else (after or 0)
    return event_stream(board.runs.stream(last, board.stopping))
