"""The JSON API of the overview: who is logged in, every env with its containers and
what the watch knows of it (:mod:`opskit.web.overview`), and the projects for the
operations form."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from opskit.web.context import Board, Here, Viewer
from opskit.web.streams import event_stream

router = APIRouter(prefix="/api")


@router.get("/me")
def me(board: Board, user: Viewer) -> dict[str, Any]:
    """The user, and the hosts the dashboard serves (its own first)."""
    return {
        "name": user.name,
        "role": user.role,
        "terminal": board.options.terminal,
        "hosts": board.hosts.names,
    }


@router.get("/overview")
def overview(here: Here, user: Viewer, checks: bool = True) -> dict[str, Any]:
    """One entry per env, what ``docker ps`` and the watch know of it; computed once per
    change for every open page (see ``/api/overview/changes``). ``?checks=false``: the
    containers only (fast; ``checks`` and what comes with them left out, status
    ``checking``).

    - ``host``: the host it is of (``?host=NAME``, else the dashboard's own root);
      ``unreachable``: ``"unreachable: …"`` when that host cannot be reached (then no
      envs), else null;

    - ``generation``: the change counter this answer is for (a ``docker events`` container
      event or a job's end raises it); ``checks_generation`` and ``checked_at`` (UTC, ISO
      8601): when the checks part was taken, which may be a change behind while it is
      taken again;
    - ``computed``: how often each part (``containers``, ``checks``) was computed since
      the server started;
    - ``engine``: why the Docker engine cannot be asked (then every env is in error), or null;
    - ``envs``: a list, by project and env, each with
      - ``project``, ``env``; ``status``: ``error``, ``failing``, ``ok`` or ``checking``
        (the checks not taken yet);
      - ``error``: a descriptor that does not read (``"[error] FILE:LINE: FIELD: …"``; its
        entry has ``env`` "" and ``project`` its folder's name), else null;
      - ``containers``: as ``opskit status --json`` has them (``service``, ``name``,
        ``state``, ``health``, …);
      - ``checks``: every check of the watch for the env and its project (``name``,
        ``ok``, ``detail``, ``key``), failing ones first; null until taken;
      - ``newest_backup``: the newest *verified* archive of the whole env (as
        ``/api/backups`` has archives: ``name``, ``created``, ``verified``, ``drilled``,
        ``offsite``, …) or null; ``archive_error``: why the archives cannot be listed;
        ``backed_up``: whether the descriptor has a backup section; ``archives``: how
        many whole archives the env has, verified or not;
      - ``freshness``, ``offsite_freshness``: the watch's freshness checks (``ok``,
        ``detail``: whether the newest verified archive is late against the schedule),
        or null without a schedule;
      - ``schedule``: ``backup.schedule``; ``next_run``: its next elapse as systemd prints it;
      - ``last_run``: the env's newest job that a timer ran (``run`` id for ``/runs``,
        ``kind``, ``result``, ``error``, ``finished``, ``seconds``) or null;
      - ``disk``: the fullest filesystem holding the env's data (its backup paths, else the
        project's folder: ``path``, ``used_percent``, ``free_bytes``, ``size_bytes``) and
        the data's size as the newest verified archive recorded it (``data_bytes``,
        ``data_at``).
    """
    return {"host": here.name, **here.overview.overview(checks)}


@router.get("/overview/changes")
async def changes(board: Board, here: Here, user: Viewer) -> StreamingResponse:
    """Server-sent events: ``{"changed": reason, "generation": n}`` once the containers
    were read again after a change on the engine or a job's end, ``{"checked": n}`` when
    newer checks are in: the page reads ``/api/overview`` again."""
    from opskit.web.changes import overview_changes

    return event_stream(overview_changes(here.overview, board.stopping))


@router.get("/projects")
def projects(here: Here, user: Viewer) -> dict[str, Any]:
    """Projects with their envs and sync directions, for the operations form."""
    here.ops.runtime.reload()  # a project added since is a choice now, not after a visit elsewhere
    return {
        "projects": [
            {
                "name": p.name,
                "envs": list(p.environments),
                "sync_pairs": [list(pair) for pair in (p.sync.pairs if p.sync else ())],
                "promote": p.promote is not None,
            }
            for p in here.ops.projects()
        ]
    }
