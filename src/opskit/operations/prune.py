"""``prune``: each env's retention rules applied (with *dry_run* only decided)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from opskit.operations import Context, engine

if TYPE_CHECKING:
    from opskit.retention import Decision


@attrs.frozen
class Request:
    """Prune *project* *env* (None: every one in scope); with *dry_run* only decide."""

    project: str | None = None
    env: str | None = None
    dry_run: bool = False


def run(ctx: Context, request: Request) -> list[tuple[str, str, Decision]]:
    """Apply each env's retention rules, each env as a job; with *dry_run* only decide."""
    runtime = ctx.runtime
    runtime.check_settings()
    backups = engine(ctx)
    scope = [(p, e) for p, e in runtime.scope(request.project, request.env) if p.backup is not None]
    if request.dry_run:
        return [(p.name, e, backups.prune(p, e, True)) for p, e in scope]
    decisions = []
    for found, e in scope:
        with ctx.job("prune", found.name, [e]) as job:
            decision = backups.prune(found, e, False)
            job.details.update(kept=list(decision.keep), removed=list(decision.remove))
        decisions.append((found.name, e, decision))
    return decisions
