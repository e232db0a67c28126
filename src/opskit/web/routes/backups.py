"""The JSON API of the backups page: the archives, local and offsite, their history (size,
duration, disk use per backup) and one archive as a tar download."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from opskit.runs import HISTORY_DAYS
from opskit.web.context import Board, Here, Operator, Viewer
from opskit.web.hosts import HostView

router = APIRouter(prefix="/api")


@router.get("/backups")
def backups(
    here: Here, user: Viewer, project: str | None = None, env: str | None = None
) -> dict[str, Any]:
    """The archives in scope, newest first, with verified, drilled and offsite state."""
    return {"archives": [a.as_dict() for a in here.ops.backups(project, env)]}


@router.get("/offsite")
def offsite(here: Here, user: Viewer, project: str, env: str) -> dict[str, Any]:
    """The env's archives as ``opskit offsite list`` has them (newest first: ``local``,
    ``copied``, ``offsite`` yes/unverified/FAILED/no, ``verified_at``): those with
    ``local`` false are offsite only. ``target`` is None without an offsite target;
    ``error`` is restic's one line when the repository cannot be read (not initialised,
    unreachable), with no archives."""
    from opskit import offsite as copies
    from opskit.offsite import OffsiteError

    runtime = here.ops.runtime
    found = here.ops.project(project)
    found.check_env(env)
    settings = runtime.settings().offsite_for(found)
    if settings is None:
        return {"target": None, "archives": [], "error": None}
    try:
        rows = copies.listing(runtime, found, env)
    except OffsiteError as exc:
        return {"target": settings.target, "archives": [], "error": str(exc)}
    return {"target": settings.target, "archives": [attrs.asdict(r) for r in rows], "error": None}


@router.get("/backups/history")
def history(
    board: Board,
    here: Here,
    user: Viewer,
    project: str,
    env: str,
    nights: int = Query(60, ge=1, le=HISTORY_DAYS),
) -> dict[str, Any]:
    """The env's backups of the last *nights* days, oldest first, one per backup job (the
    CLI's, the timers' and the page's alike: each records its job in the runs store), for
    the page's plots: ``time`` (its end), ``result``, ``seconds`` (the whole job: with a
    timer's verify, prune and offsite copy), ``size`` (the archive's stored bytes),
    ``data_bytes`` (the env's data as backed up), ``backup_disk_used`` and
    ``backup_disk_size`` (the filesystem of the env's backups), ``archive``, ``run``.
    On a host of the fleet (``?host=``): the backups this dashboard started there.
    A failed backup has no size; the sizes of backups made before they were recorded are
    None."""
    from datetime import UTC, datetime, timedelta

    found = here.ops.project(project)
    found.check_env(env)
    since = (datetime.now(UTC) - timedelta(days=nights)).isoformat()
    backups = []
    for job in board.runs.store.finished_jobs("backup", project, env, since):
        if not _ran_on(board, here, job["run"]):  # the same project on another host
            continue
        details = job.get("details") or {}
        location = str(details.get("archive") or "")
        backups.append(
            {
                "time": job.get("time"),
                "result": job.get("result"),
                "seconds": job.get("seconds"),
                "scheduled": bool(job.get("scheduled")),
                "archive": posixpath.basename(location).rsplit(":", 1)[-1] or None,
                "run": job["run"],
                **{key: details.get(key) for key in SAMPLES},
            }
        )
    return {"project": project, "env": env, "since": since, "backups": backups}


def _ran_on(board: Board, here: HostView, run: str) -> bool:
    """Whether this dashboard's *run* ran on *here* (a run pruned since: on its own root).
    A server of the fleet keeps its timers' and its CLI's jobs in its own store."""
    try:
        argv: Sequence[str] = board.runs.store.get(run).argv
    except KeyError:
        argv = ()
    return board.hosts.name_of(argv) == here.name


SAMPLES = ("size", "data_bytes", "backup_disk_used", "backup_disk_size")


@router.get("/archives/{project}/{env}/{name}.tar")
def download(here: Here, user: Operator, project: str, env: str, name: str) -> StreamingResponse:
    """The archive folder as a tar stream (its files as they are: zstd components, the
    manifest; from the restic store: the manifest and each component's raw stream),
    for a copy elsewhere; verify it there with ``opskit verify``. Operators
    only: an archive holds all the data of its env (a prod dump: every customer's)."""
    ops = here.ops
    found = ops.project(project)
    found.check_env(env)
    archive = ops.backup_engine().find(found, env, name)
    headers = {"Content-Disposition": f'attachment; filename="{archive.name}.tar"'}
    if archive.restic is not None:  # in the restic store: its manifest and raw streams
        from opskit.archive import raw_tar

        return StreamingResponse(
            raw_tar(ops.host, archive), media_type="application/x-tar", headers=headers
        )
    folder, base = posixpath.split(archive.path)
    process = ops.host.popen(["tar", "-C", folder, "-cf", "-", "--", base], merge_stderr=False)

    def chunks() -> Iterator[bytes]:
        try:
            while chunk := process.stdout.read(1 << 20):
                yield chunk
        finally:
            process.kill()
            process.wait()

    return StreamingResponse(
        chunks(),
        media_type="application/x-tar",
        headers={"Content-Disposition": f'attachment; filename="{base}.tar"'},
    )
