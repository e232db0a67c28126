"""``timers``: the systemd units the descriptors ask for (see :mod:`opskit.timers`),
printed, or installed and enabled; and each timer with its next run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from opskit.operations import Context

if TYPE_CHECKING:
    from opskit.timers import Installed


@attrs.frozen
class Request:
    """The units that run *program*, in *unit_dir* (None: ``timers.unit_dir`` of
    ``opskit.yaml``); with *install* written and enabled (unless *dry_run*), with
    *remove_stale* the units of projects gone from the root removed."""

    program: str
    unit_dir: str | None = None
    install: bool = False
    remove_stale: bool = False
    dry_run: bool = False


@attrs.frozen
class Units:
    """The units as they would be written, and the stale ones that would be removed."""

    unit_dir: str
    files: dict[str, str]
    stale: tuple[str, ...]


@attrs.frozen
class Timer:
    name: str  # with ".timer"
    calendar: str
    next: str  # "" when systemd-analyze cannot say


def unit_dir(ctx: Context, request: Request) -> str:
    return request.unit_dir or ctx.runtime.settings().unit_dir


def run(ctx: Context, request: Request) -> Units | Installed:
    """With *install* (and no *dry_run*), write the units and enable the timers; else
    return the units (and, with *remove_stale*, the stale ones) without changing anything."""
    from opskit import timers as units

    runtime = ctx.runtime
    where = unit_dir(ctx, request)
    if request.install and not request.dry_run:
        return units.install(runtime, request.program, where, request.remove_stale)
    files = units.unit_files(runtime, request.program)
    stale = (
        units.stale(runtime.host, runtime.root, where, set(files)) if request.remove_stale else []
    )
    return Units(where, files, tuple(stale))


def listing(ctx: Context, request: Request) -> list[Timer]:
    """Each timer, its schedule and its next run."""
    from opskit import timers as units

    host = ctx.runtime.host
    return [
        Timer(t.name + ".timer", t.calendar, units.next_elapse(host, t.calendar))
        for t in units.timers(ctx.runtime, request.program)
    ]
