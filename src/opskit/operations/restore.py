"""``restore``: an archive (the newest when no name is given) into one env, after a safety
backup; the health gate decides whether it worked."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import attrs

from opskit.gate import check_gate
from opskit.operations import Context, engine

if TYPE_CHECKING:
    from opskit.archive import Archive


def distinct(keys: Iterable[str]) -> tuple[str, ...]:
    """*keys* in their order, each once."""
    return tuple(dict.fromkeys(keys))


@attrs.frozen
class Request:
    """Restore archive *name* (None: the newest) into *project* *env*; with *offsite*
    from its offsite copy; with *safety* after a safety backup of the env; with *only*
    (component keys) those components alone."""

    project: str
    env: str
    name: str | None = None
    safety: bool = True
    offsite: bool = False
    only: tuple[str, ...] = attrs.field(default=(), converter=distinct)
    from_env: str | None = None


def run(ctx: Context, request: Request) -> tuple[Archive, Archive | None]:
    """Restore an archive into one env.

    With *offsite* the archive comes from the offsite copies (the newest complete one when
    *name* is None): downloaded and verified first, unless it is still here. With *only*
    the safety backup and the restore take those components alone; a key the archive does
    not hold is refused before anything changes.
    Returns the archive restored and the safety archive taken before.
    """
    runtime = ctx.runtime
    runtime.check_settings()
    project, env = request.project, request.env
    found = runtime.project(project)
    found.check_env(env)
    runtime.stacks.refuse_collisions(found, [env])
    source = request.from_env or env
    if request.from_env is not None:
        from opskit.errors import OpskitError
        from opskit.sync import check_direction

        if request.only:
            raise OpskitError("restore takes --only or --from-env, not both")
        check_direction(found, source, env)
    if request.offsite:
        from opskit.operations import offsite

        archive = offsite.download(ctx, found, source, request.name, local_first=True)
    else:
        archive = engine(ctx).find(found, source, request.name)
    from opskit.backups import selected

    selected(archive, request.only)  # an unknown key is refused before anything changes
    timeout = found.gate_timeout("restore")
    check_gate(runtime.stacks, found, env, timeout, found.gate_setting("restore"))
    with ctx.job("restore", project, [env]) as job:
        job.details["archive"] = archive.name
        if request.only:
            job.details["only"] = list(request.only)
        job.changing()
        if request.from_env is not None:
            from opskit.sync import from_archive

            job.details["from_env"] = request.from_env
            safety_archive = from_archive(
                runtime, found, archive, env, safety=request.safety, job=job
            )
            job.details["safety_backup"] = safety_archive.name if safety_archive else None
            return archive, safety_archive
        safety_archive = engine(ctx, job).restore(
            found,
            env,
            archive,
            safety=request.safety,
            health_timeout=timeout,
            only=request.only,
        )
        job.details["safety_backup"] = safety_archive.name if safety_archive else None
    return archive, safety_archive
