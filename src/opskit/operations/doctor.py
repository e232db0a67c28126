"""``doctor``: the root checked against what runs (see :mod:`opskit.doctor`); read-only,
so it runs as no job."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from opskit.operations import Context

if TYPE_CHECKING:
    from opskit.doctor import DoctorReport


@attrs.frozen
class Request:
    """The whole root; *root_only*: leave out containers no project of the root claims."""

    root_only: bool = False


def run(ctx: Context, request: Request) -> DoctorReport:
    from opskit.doctor import examine

    return examine(ctx.runtime, root_only=request.root_only)
