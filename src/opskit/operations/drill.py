"""``drill``: prove that an archive restores, in throw-away containers beside the env
(see :mod:`opskit.drill`); the result is recorded in the archive."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from opskit.operations import Context

if TYPE_CHECKING:
    from opskit.drill import DrillResult


@attrs.frozen
class Request:
    """Drill archive *name* (None: the newest) of *project* *env*."""

    project: str
    env: str
    name: str | None = None


def run(ctx: Context, request: Request) -> DrillResult:
    runtime = ctx.runtime
    runtime.check_settings()
    from opskit import drill as drills

    found = runtime.project(request.project)
    checked = found.check_env(request.env)
    with ctx.job("drill", found.name, [checked]) as job:
        return drills.drill(runtime, found, checked, request.name, job)
