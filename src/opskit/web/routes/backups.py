"""The JSON API of the backups page: the archives, and one archive as a tar download."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from opskit.web.context import Board, Operator, Viewer

router = APIRouter(prefix="/api")


@router.get("/backups")
def backups(
    board: Board, user: Viewer, project: str | None = None, env: str | None = None
) -> dict[str, Any]:
    """The archives in scope, newest first, with verified, drilled and offsite state."""
    return {"archives": [a.as_dict() for a in board.ops.backups(project, env)]}


@router.get("/archives/{project}/{env}/{name}.tar")
def download(board: Board, user: Operator, project: str, env: str, name: str) -> StreamingResponse:
    """The archive folder as a tar stream (its files as they are: zstd components, the
    manifest; from the restic store: the manifest and each component's raw stream),
    for a copy elsewhere; verify it there with ``opskit verify``. Operators
    only: an archive holds all the data of its env (a prod dump: every customer's)."""
    ops = board.ops
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
