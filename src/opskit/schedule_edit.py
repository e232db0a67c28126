"""Each project's backup schedule: listed with its next run, and set in the project's
descriptor. ``opskit schedule`` and the dashboard's schedules page both call these.

Setting a schedule rewrites ``backup.schedule`` only (comments, order and quoting of the
rest stay as they were), after the new descriptor has been validated and systemd has
parsed the calendar; the file is replaced in one rename, keeping its mode. The timers are
not touched: ``opskit timers --install`` writes them from the descriptors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from opskit.operation_requests import RequestError

if TYPE_CHECKING:
    from opskit.api import Ops
    from opskit.descriptor import Project


@attrs.frozen
class Schedule:
    """A project's backup schedule as its descriptor says, and when it next runs."""

    project: str
    backup: bool  # whether it has a backup section at all
    schedule: str | None
    next: str | None  # as systemd-analyze prints it; "" when systemd cannot say
    descriptor: str

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def schedules(ops: Ops) -> list[Schedule]:
    """Every project's schedule, from the descriptors as they are now."""
    from opskit.timers import next_elapse, on_calendar

    ops.runtime.reload()
    rows = []
    for project in ops.projects():
        schedule = project.backup.schedule if project.backup else None
        elapse = next_elapse(ops.host, on_calendar(schedule)) if schedule else None
        rows.append(Schedule(project.name, project.backup is not None, schedule, elapse,
                             project.path))  # fmt: skip
    return rows


def set_schedule(ops: Ops, name: str, schedule: str) -> Project:
    """Set project *name*'s ``backup.schedule`` to *schedule* in its descriptor; the project
    as it reads now. :class:`~opskit.errors.NotFoundError` for an unknown project,
    :class:`~opskit.errors.DescriptorError` or :class:`RequestError` for a schedule that
    is not valid (the descriptor is left as it was)."""
    from opskit.descriptor import with_backup_schedule
    from opskit.timers import CalendarError, calendar, on_calendar

    if not schedule.isprintable():
        raise RequestError(f"{schedule!r}: a schedule is one line of printable text")
    ops.runtime.reload()
    project = ops.project(name)
    edited = with_backup_schedule(project.path, ops.host.read_text(project.path), schedule)
    try:
        calendar(ops.host, on_calendar(schedule.strip()))
    except CalendarError as exc:
        raise RequestError(f"{schedule!r} is not a systemd calendar expression: {exc}") from None
    replace_file(ops, project.path, edited)
    ops.runtime.reload()
    return ops.project(name)


def replace_file(ops: Ops, path: str, text: str) -> None:
    """Write *text* to *path* on the host in one rename, with the mode *path* has."""
    host = ops.host
    partial = path + ".opskit-new"
    host.run(["rm", "-f", "--", partial])
    with host.open_write(partial) as out:
        out.write(text.encode())
    host.run(["chmod", "--reference", path, "--", partial])
    host.run(["mv", "-f", "--", partial, path])
