"""``watch``: one pass over every project and env (see :mod:`opskit.watch`): alerts on
changes of state and reminders, as ``opskit.yaml`` says."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from opskit.operations import Context

if TYPE_CHECKING:
    from opskit.watch import WatchReport


@attrs.frozen
class Request:
    """*now* stands in for the clock (None: the clock); *coverage*: compute backup
    coverage in this pass, however recently a pass did."""

    now: datetime | None = None
    coverage: bool = False


def run(ctx: Context, request: Request) -> WatchReport:
    runtime = ctx.runtime
    # opskit.yaml must be right: it says whom to alert. A broken descriptor is a failing
    # check of the watch (it alerts), not a refusal nobody reads at night.
    runtime.settings()
    from opskit import watch as watching

    with ctx.job("watch", "", []) as job:
        return watching.watch(runtime, request.now, job, coverage=request.coverage)
