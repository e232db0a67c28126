"""One unattended pass over every project and env: health, probes, disk, freshness.

Meant for the 5-minute timer and useful by hand. It alerts on a change of state (ok to
failing; failing to ok with a "recovered" message) and reminds of a state that stays failing
every ``remind_hours``, never on every pass. The states live in ``watch.sqlite`` in the
state folder; a pass holds SQLite's write lock from reading the states to recording what
it will send, so two watches at once never send the same alert twice.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from opskit.archive import list_archives
from opskit.backups import backup_dir
from opskit.notify import send

if TYPE_CHECKING:
    from opskit.descriptor import Notify, Project
    from opskit.jobs import Job
    from opskit.runtime import Runtime

STATE_FILE = "watch.sqlite"
HHMM = re.compile(r"(\d{1,2}):(\d{2})\Z")


@attrs.frozen
class Check:
    project: str
    env: str
    name: str
    ok: bool
    detail: str

    @property
    def key(self) -> str:
        return " ".join(part for part in (self.project, self.env, self.name) if part)

    def as_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "key": self.key}


@attrs.frozen
class WatchReport:
    checks: tuple[Check, ...]
    sent: tuple[tuple[str, str], ...]  # (state, title) of each alert sent

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def previous_run(
    schedule: str, now: datetime, runtime: Runtime
) -> tuple[datetime, timedelta] | None:
    """When the schedule last elapsed before *now*, and its period (HH:MM: the server's
    local time, daily; another systemd calendar: from its next two elapses)."""
    found = HHMM.match(schedule.strip())
    if found:
        local = now.astimezone()
        today = local.replace(hour=int(found[1]), minute=int(found[2]), second=0, microsecond=0)
        return (today if today <= local else today - timedelta(days=1)), timedelta(days=1)
    result = runtime.host.run(
        ["systemd-analyze", "calendar", "--iterations=2", schedule], check=False
    )
    times = []
    for line in result.text.splitlines():
        key, _, value = line.strip().partition(": ")
        if key in ("Next elapse", "Iteration #2"):
            try:
                times.append(datetime.strptime(value.strip()[4:23], "%Y-%m-%d %H:%M:%S"))
            except ValueError:
                return None
    if len(times) != 2:
        return None
    period = times[1] - times[0]
    return times[0].replace(tzinfo=now.astimezone().tzinfo) - period, period


def freshness(runtime: Runtime, project: Project, env: str, now: datetime) -> list[Check]:
    """Whether the newest verified archive of a scheduled env is recent enough: made for
    the schedule's last run, or (while that run is within its grace) for the one before.
    With an offsite target, the same for the newest archive whose offsite copy was read
    back and matched."""
    if project.backup is None or not project.backup.schedule:
        return []
    elapsed = previous_run(project.backup.schedule, now, runtime)
    if elapsed is None:
        return []
    archives = list_archives(runtime.host, backup_dir(project, env))
    newest = max((a.created for a in archives if a.verified_state == "ok"), default=None)
    found = [_fresh(runtime, project, env, now, elapsed, "backup freshness", newest, "backup")]
    offsite = runtime.settings().offsite_for(project)
    if offsite is not None:
        copied = max(
            (
                a.created
                for a in archives
                if a.offsite_state == "ok" and (a.offsite or {}).get("target") == offsite.target
            ),
            default=None,
        )
        found.append(
            _fresh(runtime, project, env, now, elapsed, "offsite freshness", copied, "offsite copy")
        )
    return found


def _fresh(
    runtime: Runtime,
    project: Project,
    env: str,
    now: datetime,
    elapsed: tuple[datetime, timedelta],
    name: str,
    newest: datetime | None,
    noun: str,
) -> Check:
    assert project.backup is not None
    grace = timedelta(minutes=runtime.settings().freshness_grace_minutes)
    last, period = elapsed
    if newest is not None and (
        newest >= last - grace or (now < last + grace and newest >= last - period - grace)
    ):
        return Check(project.name, env, name, True, f"newest verified {newest:%Y-%m-%d %H:%M} UTC")
    missing = "no verified archive" if noun == "backup" else f"no verified {noun}"
    what = f"newest verified {newest:%Y-%m-%d %H:%M} UTC" if newest else missing
    due = last if newest is None or now >= last + grace else last - period
    return Check(
        project.name, env, name, False,
        f"{what}; the {noun} due at {due.astimezone():%Y-%m-%d %H:%M %Z} ({project.backup.schedule}) is late",
    )  # fmt: skip


def checks(runtime: Runtime, now: datetime) -> list[Check]:
    """Every check of every project and env, taken now."""
    found = [
        Check(c.project, c.environment, c.check, c.ok, c.detail) for c in runtime.health().checks
    ]
    for project in runtime.projects():
        for env in project.environments:
            found += freshness(runtime, project, env, now)
    # Keys name the stored states: two checks of one name (two stacks) stay apart.
    seen: dict[str, int] = {}
    unique = []
    for check in found:
        seen[check.key] = seen.get(check.key, 0) + 1
        if seen[check.key] > 1:
            check = attrs.evolve(check, name=f"{check.name} ({seen[check.key]})")
        unique.append(check)
    return unique


def watch(runtime: Runtime, now: datetime | None = None, job: Job | None = None) -> WatchReport:
    """One pass: take every check, compare with the stored states, send what changed."""
    now = now or datetime.now(UTC)
    settings = runtime.settings()
    remind = timedelta(hours=settings.remind_hours)
    # The state is this machine's, where opskit runs, also with --host ssh://...
    os.makedirs(settings.state_dir, mode=0o700, exist_ok=True)
    # (state, project) -> lines: a project's own notify URLs get its lines
    alerts: dict[tuple[str, str], list[str]] = {}
    database = sqlite3.connect(f"{settings.state_dir}/{STATE_FILE}", timeout=120)
    try:
        database.execute(
            "CREATE TABLE IF NOT EXISTS states (key TEXT PRIMARY KEY, ok INTEGER NOT NULL, "
            "since TEXT NOT NULL, sent TEXT, detail TEXT)"
        )
        # One pass at a time takes the checks, decides and records: a pass never acts on
        # evidence older than what another pass has recorded.
        database.execute("BEGIN IMMEDIATE")
        taken = checks(runtime, now)
        stored = {
            row[0]: (bool(row[1]), row[2], row[3])
            for row in database.execute("SELECT key, ok, since, sent FROM states")
        }
        stamp = now.isoformat()
        for check in taken:
            line = f"{check.key}: {check.detail}"
            before = stored.pop(check.key, None)
            if before is None or before[0] != check.ok:
                changed_to = "recovered" if check.ok else "failed"
                if before is not None or not check.ok:
                    alerts.setdefault((changed_to, check.project), []).append(line)
                sent_at = stamp if (before is not None or not check.ok) else None
                database.execute(
                    "INSERT OR REPLACE INTO states VALUES (?, ?, ?, ?, ?)",
                    (check.key, int(check.ok), stamp, sent_at, check.detail),
                )
            elif not check.ok and (
                before[2] is None or now - datetime.fromisoformat(before[2]) >= remind
            ):
                alerts.setdefault(("reminder", check.project), []).append(
                    f"{line} (failing since {before[1][:16]})"
                )
                database.execute(
                    "UPDATE states SET sent = ?, detail = ? WHERE key = ?",
                    (stamp, check.detail, check.key),
                )
        for gone in stored:  # checks of projects and envs that no longer exist
            database.execute("DELETE FROM states WHERE key = ?", (gone,))
        database.commit()
    finally:
        database.close()
    sent: list[tuple[str, str]] = []
    host = socket.gethostname() if runtime.host.name == "local" else runtime.host.name
    titles = {
        "failed": "opskit: {n} failing on {host}",
        "reminder": "opskit: {n} still failing on {host}",
        "recovered": "opskit: {n} recovered on {host}",
    }
    projects = {p.name: p for p in runtime.projects()}
    for state in ("failed", "reminder", "recovered"):
        # one message per set of notify URLs: projects that share them share a message
        groups: dict[tuple[str, ...], tuple[Notify, list[str]]] = {}
        for (kind, project), lines in alerts.items():
            if kind != state:
                continue
            notify = settings.notify_for(projects.get(project))
            groups.setdefault(notify.urls, (notify, []))[1].extend(lines)
        for notify, lines in groups.values():
            title = titles[state].format(n=_checks(len(lines)), host=host)
            send(notify, title, "\n".join(lines), state)
            sent.append((state, title))
            if job is not None:
                job.log(f"{title}: " + "; ".join(lines))
    report = WatchReport(tuple(taken), tuple(sent))
    if job is not None:
        job.details["failing"] = [c.key for c in taken if not c.ok]
        if not report.ok:
            job.fail("failing: " + ", ".join(c.key for c in taken if not c.ok))
    return report


def _checks(count: int) -> str:
    return "1 check" if count == 1 else f"{count} checks"
