"""``backups migrate``: an env's folder archives moved into the root's restic store, each
verified there before its folder goes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from opskit.operations import Context, engine

if TYPE_CHECKING:
    from opskit.backups import Migration


@attrs.frozen
class Request:
    """Migrate *project*'s env *env* (None: each of its envs); with *dry_run* only list."""

    project: str
    env: str | None = None
    dry_run: bool = False


def run(ctx: Context, request: Request) -> list[Migration]:
    """Each env's migration as a job (a ``migrate`` entry in the audit log), failed when
    an archive stays a folder; with *dry_run* only list, with no job."""
    runtime = ctx.runtime
    runtime.check_settings()
    project = runtime.project(request.project)
    envs = [project.check_env(request.env)] if request.env else list(project.environments)
    # Refused (no backup section, another store) before any job; the dry run is the list.
    planned = [engine(ctx).migrate(project, env, dry_run=True) for env in envs]
    if request.dry_run:
        return planned
    done = []
    for env in envs:
        with ctx.job("migrate", project.name, [env]) as job:
            migration = engine(ctx, job).migrate(project, env)
            job.details.update(
                migrated=[a.name for a in migration.moved],
                failed=[name for name, _ in migration.failed],
            )
            if migration.failed:
                job.fail("; ".join(f"{name}: {why}" for name, why in migration.failed))
        done.append(migration)
    return done
