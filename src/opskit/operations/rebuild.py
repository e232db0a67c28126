"""``rebuild``: disaster recovery (:func:`opskit.rebuild.rebuild`): build and start the
env, wait until healthy, restore the newest verified archive."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from opskit.operations import Context

if TYPE_CHECKING:
    from opskit.rebuild import RebuildPlan


@attrs.frozen
class Request:
    project: str
    env: str
    dry_run: bool = False


def run(ctx: Context, request: Request) -> RebuildPlan:
    """Rebuild the env as a job; with *dry_run*, the plan."""
    runtime = ctx.runtime
    runtime.check_settings()
    from opskit.rebuild import rebuild as rebuild_env

    found = runtime.project(request.project)
    plan = rebuild_env(runtime, found, request.env, dry_run=True)  # refused before any job
    if request.dry_run:
        return plan
    with ctx.job("rebuild", request.project, [request.env]) as job:
        return rebuild_env(runtime, found, request.env, job=job)
