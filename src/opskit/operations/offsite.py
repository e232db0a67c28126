"""Offsite copies as operations: an archive downloaded from its offsite copy as an
``offsite download`` job (the engine, :mod:`opskit.offsite`, opens no jobs itself)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit.errors import NotFoundError
from opskit.operations import Context, engine

if TYPE_CHECKING:
    from opskit.archive import Archive
    from opskit.descriptor import Project


def download(
    ctx: Context, project: Project, env: str, name: str | None, *, local_first: bool = False
) -> Archive:
    """Download archive *name* (None: the newest with a complete copy) as an ``offsite
    download`` job. With *local_first*, an archive that is still here is used as it is."""
    from opskit import offsite

    runtime = ctx.runtime
    name = name or offsite.newest_copied(runtime, project, env)
    if local_first:
        try:
            return engine(ctx).find(project, env, name)
        except NotFoundError:
            pass
    with ctx.quiet().job("offsite download", project.name, [env]) as job:
        job.details.update(archive=name, target=offsite.target_of(runtime, project))
        archive = offsite.download(runtime, project, env, name, job)
        job.details["archive"] = archive.path
    return archive
