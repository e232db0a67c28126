"""``promote``: code moved one step (``promote.type`` git or rsync, see
:mod:`opskit.promote`), or the descriptor's promote script run (``type: script``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from opskit.gate import check_gate
from opskit.operations import Context

if TYPE_CHECKING:
    from opskit.promote import PromoteReport


@attrs.frozen
class Request:
    """Promote *project* from *source* to *target*; *before_changes* gets the preview
    after every check and before the first change."""

    project: str
    source: str
    target: str
    dry_run: bool = False
    before_changes: Callable[[PromoteReport], None] | None = None


def run(ctx: Context, request: Request) -> PromoteReport:
    """Promote code one step: preview, move, rebuild when needed, wait until healthy and
    stable; roll back and raise :class:`~opskit.errors.RolledBack` when it is not (the
    job ends ``rolled back``).

    ``type: script`` runs through :func:`script` instead.
    """
    runtime = ctx.runtime
    runtime.check_settings()
    from opskit import promote as promoting

    project, source, target = request.project, request.source, request.target
    found = runtime.project(project)
    promoting.check_step(found, source, target)
    if request.dry_run:
        return promoting.run(runtime, found, source, target, dry_run=True, progress=ctx.progress)
    runtime.stacks.refuse_collisions(found, [target])
    setting = found.gate_setting("promote")
    check_gate(runtime.stacks, found, target, found.gate_timeout("promote"), setting)
    with ctx.job("promote", project, [source, target]) as job:
        return promoting.run(
            runtime, found, source, target, before_changes=request.before_changes, job=job
        )


def script(ctx: Context, request: Request) -> int:
    """Run the descriptor's promote script with ``--from``, ``--to`` [``--dry-run``]
    in the project folder; return its exit code."""
    runtime = ctx.runtime
    runtime.check_settings()
    from opskit import promote as promoting
    from opskit.jobs import Outcome

    project, source, target = request.project, request.source, request.target
    found = runtime.project(project)
    promoting.check_step(found, source, target)
    assert found.promote is not None and found.promote.script is not None
    path = found.resolve_path(found.promote.script, target)
    argv = [path, "--from", source, "--to", target, *(["--dry-run"] if request.dry_run else [])]
    if request.dry_run:
        return runtime.host.call(argv, cwd=found.folder)
    with ctx.job("promote", project, [source, target]) as job:
        job.changing()
        code = runtime.host.call(argv, cwd=found.folder)
        if code != 0:
            job.result = Outcome.FAILED
            job.details["result"] = f"failed (exit {code})"
    return code
