"""``extract``: a file or folder out of an archive's path or volume component, into a
folder; the env itself is not touched."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from opskit.operations import Context, engine

if TYPE_CHECKING:
    from opskit.backups import Extracted


@attrs.frozen
class Request:
    """Extract *path* (``KEY:PATH``, or a path under a path component; see
    :func:`opskit.backups.locate`) of archive *name* (None: the newest of the whole env)
    of *project* *env* into the folder *to*; with *overwrite* an existing file or folder
    of the same name there is replaced."""

    project: str
    env: str
    path: str
    to: str
    name: str | None = None
    overwrite: bool = False


def run(ctx: Context, request: Request) -> Extracted:
    """Find the archive, then stream the component through tar into *to*."""
    runtime = ctx.runtime
    runtime.check_settings()
    found = runtime.project(request.project)
    found.check_env(request.env)
    backups = engine(ctx)
    archive = backups.find(found, request.env, request.name)
    return backups.extract(
        found, request.env, archive, request.path, request.to, overwrite=request.overwrite
    )
