"""Backup retention: which archives a prune keeps and which it removes.

:func:`decide` is a pure function of the archive names and timestamps; it reads and
deletes nothing. Its rules resemble those of ``borg prune`` and ``restic forget``:

1. Archives are ordered newest first by their timestamp (a timezone-aware datetime,
   compared as an instant, i.e. in UTC). Archives with the same timestamp are ordered
   by name, descending.
2. ``keep_last`` N keeps the N newest archives.
3. ``keep_daily`` N keeps, for each of the N most recent calendar days that have
   archives, the newest archive of that day. Days without archives do not count:
   ``keep_daily=7`` keeps seven archives whenever there are seven or more days with
   archives, however far apart those days are.
4. ``keep_weekly`` N does the same per ISO week (``isocalendar()`` year and week).
   ISO weeks start on Monday, and the days around New Year can belong to a week of
   the neighbouring year: 2027-01-01 is in week 2026-W53.
5. ``keep_monthly`` N does the same per calendar month.
6. Days, weeks and months are those of the archive's local time in the timezone
   ``tz``, by default the local timezone of the machine. An archive made at
   2026-11-27 23:30 UTC belongs to 2026-11-28 in Europe/Zurich.
7. Each rule is applied on its own to all archives, and their results are united.
   An archive kept by several rules is kept once and lists every reason.
8. ``newest_verified``, the name of the newest archive whose restore was verified, is
   always kept, even when every count is 0 (it is then the only archive kept).
9. When every count is 0 and ``newest_verified`` is not given, the newest archive is
   kept all the same: a prune never removes every archive.
10. ``newest_drilled``, the name of the newest archive whose restore drill passed, is
    always kept: without it ``backups`` would say "drilled never" everywhere.
11. Each archive in ``undo_points`` is always kept, with the reasons given there (the
    caller names the archives that recent changes, a sync or a restore, can be undone
    with: ``"undo point of sync 2026-12-03 08:35"``).
12. Every archive no rule keeps is removed. No archives give an empty decision.

The reasons of a kept archive, in this order: ``"last K"`` (the K-th newest archive),
``"daily 2026-11-27"``, ``"weekly 2026-W48"``, ``"monthly 2026-11"``,
``"newest verified"``, ``"newest"`` (rule 9), ``"newest drilled"``, then those of
``undo_points``. A removed archive has its reasons too, one per count above 0:
``"beyond keep_last 1"``, ``"beyond keep_daily 7"`` (its day is not among the 7 kept),
``"not the newest of 2026-11-27"`` (its day is kept, by a newer archive), and so on for
weeks and months; with every count 0, ``"every keep_* count is 0"``.

:func:`decide` raises :class:`ValueError` when two archives have the same name, a
timestamp has no timezone, a count is negative, or ``newest_verified``,
``newest_drilled`` or a name of ``undo_points`` is not the name of one of the archives.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, tzinfo

import attrs


@attrs.frozen
class Decision:
    """The outcome of :func:`decide`. Names are ordered newest first; *reasons* says why
    each kept archive stays, *remove_reasons* why each removed one goes."""

    keep: tuple[str, ...]
    remove: tuple[str, ...]
    reasons: Mapping[str, tuple[str, ...]]
    remove_reasons: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)


def decide(
    archives: Sequence[tuple[str, datetime]],
    *,
    keep_last: int,
    keep_daily: int,
    keep_weekly: int,
    keep_monthly: int,
    newest_verified: str | None = None,
    newest_drilled: str | None = None,
    undo_points: Mapping[str, Sequence[str]] | None = None,
    tz: tzinfo | None = None,
) -> Decision:
    """Split ``(name, timestamp)`` archives into those to keep and to remove, by the
    rules of this module."""
    counts = {
        "keep_last": keep_last,
        "keep_daily": keep_daily,
        "keep_weekly": keep_weekly,
        "keep_monthly": keep_monthly,
    }
    undo_points = undo_points or {}
    named = [("newest verified", newest_verified), ("newest drilled", newest_drilled)]
    _check(archives, counts, named + [("undo point", name) for name in undo_points])
    newest_first = sorted(archives, key=lambda archive: (archive[1], archive[0]), reverse=True)
    reasons: dict[str, list[str]] = {name: [] for name, _ in newest_first}
    against: dict[str, list[str]] = {name: [] for name, _ in newest_first}

    for rank, (name, _) in enumerate(newest_first, start=1):
        if rank <= keep_last:
            reasons[name].append(f"last {rank}")
        elif keep_last:
            against[name].append(f"beyond keep_last {keep_last}")
    for label, count, period in (
        ("daily", keep_daily, _day),
        ("weekly", keep_weekly, _iso_week),
        ("monthly", keep_monthly, _month),
    ):
        if not count:
            continue
        chosen = dict(_newest_per_period(newest_first, count, period, tz))
        kept_periods = set(chosen.values())
        for name, timestamp in newest_first:
            key = period(timestamp.astimezone(tz))
            if chosen.get(name) == key:
                reasons[name].append(f"{label} {key}")
            elif key in kept_periods:
                against[name].append(f"not the newest of {key}")
            else:
                against[name].append(f"beyond keep_{label} {count}")
    if newest_verified is not None:
        reasons[newest_verified].append("newest verified")
    elif newest_first and not any(counts.values()):
        reasons[newest_first[0][0]].append("newest")
    if newest_drilled is not None:
        reasons[newest_drilled].append("newest drilled")
    for name, why in undo_points.items():
        reasons[name].extend(why)

    return Decision(
        keep=tuple(name for name, _ in newest_first if reasons[name]),
        remove=tuple(name for name, _ in newest_first if not reasons[name]),
        reasons={name: tuple(why) for name, why in reasons.items() if why},
        remove_reasons={
            name: tuple(against[name] or ["every keep_* count is 0"])
            for name, _ in newest_first
            if not reasons[name]
        },
    )


def _check(
    archives: Sequence[tuple[str, datetime]],
    counts: Mapping[str, int],
    named: Sequence[tuple[str, str | None]],
) -> None:
    duplicates = sorted(name for name, seen in Counter(n for n, _ in archives).items() if seen > 1)
    if duplicates:
        raise ValueError(f"duplicate archive names: {', '.join(duplicates)}")
    for name, timestamp in archives:
        if timestamp.utcoffset() is None:
            raise ValueError(f"archive {name}: timestamp {timestamp.isoformat()} has no timezone")
    for option, count in counts.items():
        if count < 0:
            raise ValueError(f"{option} must be 0 or more, not {count}")
    known = {name for name, _ in archives}
    for role, given in named:
        if given is not None and given not in known:
            raise ValueError(f"{role} archive {given} is not among the archives")


def _newest_per_period(
    newest_first: Sequence[tuple[str, datetime]],
    count: int,
    period: Callable[[datetime], str],
    tz: tzinfo | None,
) -> list[tuple[str, str]]:
    """The newest archive of each of the ``count`` most recent periods that have
    archives, with its period."""
    chosen: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, timestamp in newest_first:
        if len(chosen) == count:
            break
        key = period(timestamp.astimezone(tz))
        # A set, not the previous key: where clocks turn back over midnight, a day recurs.
        if key not in seen:
            seen.add(key)
            chosen.append((name, key))
    return chosen


def _day(local: datetime) -> str:
    return local.date().isoformat()


def _iso_week(local: datetime) -> str:
    year, week, _ = local.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _month(local: datetime) -> str:
    return f"{local.year:04d}-{local.month:02d}"
