"""``sync``: the data of one env copied into another (see :mod:`opskit.sync`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs

from opskit.gate import check_gate
from opskit.operations import Context
from opskit.operations.delegate import Request as Delegation
from opskit.operations.delegate import delegated

if TYPE_CHECKING:
    from opskit.sync import SyncReport


@attrs.frozen
class Request:
    """Copy *source* into *target* of *project*; *before_changes* runs after every check
    and before the first change; *delegate_flags* are for a project that delegates
    ``sync`` (default: the direction, ``--yes`` and ``--dry-run`` as asked)."""

    project: str
    source: str
    target: str
    dry_run: bool = False
    before_changes: Callable[[], None] | None = None
    delegate_flags: Sequence[str] | None = None


def run(ctx: Context, request: Request) -> SyncReport:
    """Copy the data of env *source* into env *target* (a direction ``sync.pairs``
    allows): back up the target, stream databases through the ``sync.replace``
    rewrite, mirror folders and volumes, start the target and wait for health.

    With *dry_run*, report tables, rows, replacements and files; change nothing. A
    project that delegates ``sync`` runs its own CLI and reports only that it did.
    """
    runtime = ctx.runtime
    runtime.check_settings()
    from opskit import sync as syncing

    project, source, target, dry_run = (
        request.project,
        request.source,
        request.target,
        request.dry_run,
    )
    found = runtime.project(project)
    flags = request.delegate_flags
    if flags is None:
        flags = ["--from", source, "--to", target, "--yes", *(["--dry-run"] if dry_run else [])]
    if delegated(ctx, Delegation(found, "sync", None, flags, cli_env=target)):
        return syncing.SyncReport(project, source, target, dry_run, (), (), (), None, True)
    if dry_run:
        return syncing.run(runtime, found, source, target, dry_run=True, progress=ctx.progress)
    syncing.check_direction(found, source, target)  # refused before anything is read
    syncing.replacements(found, source, target)
    runtime.stacks.refuse_collisions(found, [target])
    check_gate(
        runtime.stacks, found, target, found.gate_timeout("sync"), found.gate_setting("sync")
    )
    with ctx.job("sync", project, [source, target]) as job:
        return syncing.run(
            runtime, found, source, target, before_changes=request.before_changes, job=job
        )
