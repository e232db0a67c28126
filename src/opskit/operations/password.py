"""``password``: the restic passwords of the root (the archive store's, the offsite
copies'), whether a copy of each is kept off the server, one shown to be kept, its keeping
recorded (see :mod:`opskit.escrow`). Changes no archive, so it runs as no job."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from opskit.errors import OpskitError
from opskit.operations import Context

if TYPE_CHECKING:
    from opskit.escrow import Escrow


@attrs.frozen
class Request:
    """*kind*: ``store`` or ``offsite`` (None: both, status only); *show*: the password
    itself; *confirm*: record that a copy of it is kept."""

    kind: str | None = None
    show: bool = False
    confirm: bool = False


@attrs.frozen
class Report:
    escrows: tuple[Escrow, ...]
    secret: str | None = attrs.field(default=None, repr=False)  # with *show* only


def run(ctx: Context, request: Request) -> Report:
    from opskit import escrow

    host = ctx.runtime.host
    if request.show and request.confirm:
        raise OpskitError("give --show or --confirm-escrowed, not both")
    if request.kind is None:
        if request.show or request.confirm:
            raise OpskitError(f"which password? give one of {', '.join(escrow.KINDS)}")
        return Report(tuple(escrow.status(host, p) for p in escrow.passwords(ctx.runtime)))
    password = escrow.find(ctx.runtime, request.kind)
    if request.confirm:
        return Report((escrow.confirm(host, password),))
    if request.show:
        return Report((escrow.status(host, password),), escrow.read(host, password))
    return Report((escrow.status(host, password),))
