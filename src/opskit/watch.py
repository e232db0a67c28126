"""One unattended pass over every project and env: health (compose name collisions
included), probes, disk, freshness, and once every ``coverage_hours`` (24) backup coverage,
``doctor``'s check of data and databases that no backup covers.

Meant for the 5-minute timer and useful by hand. It alerts on a change of state (ok to
failing; failing to ok with a "recovered" message) and reminds of a state that stays failing
every ``remind_hours``, never on every pass. The states live in ``watch.sqlite`` in the
state folder; a pass holds SQLite's write lock from reading the states to recording what
it will send, so two watches at once never send the same alert twice.
"""

from __future__ import annotations

import os
import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from opskit.backups import Engine
from opskit.errors import DescriptorError, DockerUnavailable, HostError, OpskitError
from opskit.notify import one_line, send
from opskit.timers import on_calendar, previous_elapses

if TYPE_CHECKING:
    from opskit.descriptor import Notify, Project
    from opskit.jobs import Job
    from opskit.runtime import Runtime
    from opskit.settings import Settings

STATE_FILE = "watch.sqlite"
STATE_VERSION = 2  # 2: the table "passes" (when coverage was last computed)
# The check that stands for every container check when the engine cannot be asked.
ENGINE_CHECK = "docker engine"
# The check that stands for every check when the descriptors cannot be read.
DESCRIPTORS_CHECK = "descriptors"
# The health check of a compose project name that two stacks use (opskit.stacks).
COLLISION_CHECK = "compose project name"
# Per env: whether its backup coverage could be computed; and the names of the checks of
# what no backup covers, one per volume, bind mount or database.
COVERAGE_CHECK = "backup coverage"
UNCOVERED = "not backed up: "


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
    runtime: Runtime, schedule: str, now: datetime, cache: dict[str, Any] | None = None
) -> tuple[datetime, datetime]:
    """When the timer of *schedule* last fired before *now*, and the time before, as the
    server's systemd computes it (its time zone; ``HH:MM`` is its local time); asked once
    per schedule in *cache*. :class:`OpskitError` when it cannot be told."""
    cache = {} if cache is None else cache
    if schedule not in cache:
        try:
            cache[schedule] = previous_elapses(runtime.host, on_calendar(schedule), now)
        except OpskitError as exc:
            cache[schedule] = exc
    if isinstance(cache[schedule], OpskitError):
        raise cache[schedule]
    return cache[schedule]  # type: ignore[no-any-return]


def freshness(
    runtime: Runtime,
    project: Project,
    env: str,
    now: datetime,
    cache: dict[str, Any] | None = None,
) -> list[Check]:
    """Whether the newest verified archive of a scheduled env is recent enough: made for
    the schedule's last run, or (while that run is within its grace) for the one before.
    With an offsite target, the same for the newest archive whose offsite copy was read
    back and matched."""
    if project.backup is None or not project.backup.schedule:
        return []
    if runtime.delegates(project, "backup"):
        return []  # its own CLI keeps the archives; 'doctor' says so
    offsite = runtime.settings().offsite_for(project)
    try:
        elapsed = previous_run(runtime, project.backup.schedule, now, cache)
    except OpskitError as exc:
        problem = f"cannot tell when {project.name} {env}'s backup was due: {exc}"
        names = ["backup freshness", *(["offsite freshness"] if offsite else [])]
        return [Check(project.name, env, name, False, problem) for name in names]
    try:
        # a partial archive (the safety backup of ``restore --only``) stands for no whole env
        archives = [a for a in Engine(runtime).archives(project, env) if not a.only]
    except OpskitError as exc:  # the store cannot be read: its freshness is unknown, a failure
        problem = f"cannot list {project.name} {env}'s archives: {exc}"
        names = ["backup freshness", *(["offsite freshness"] if offsite else [])]
        return [Check(project.name, env, name, False, problem) for name in names]
    newest = max((a.created for a in archives if a.verified_state == "ok"), default=None)
    found = [_fresh(runtime, project, env, now, elapsed, "backup freshness", newest, "backup")]
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
    elapsed: tuple[datetime, datetime],
    name: str,
    newest: datetime | None,
    noun: str,
) -> Check:
    assert project.backup is not None
    grace = timedelta(minutes=runtime.settings().freshness_grace_minutes)
    last, before = elapsed
    if newest is not None and (
        newest >= last - grace or (now < last + grace and newest >= before - grace)
    ):
        return Check(project.name, env, name, True, f"newest verified {newest:%Y-%m-%d %H:%M} UTC")
    missing = "no verified archive" if noun == "backup" else f"no verified {noun}"
    what = f"newest verified {newest:%Y-%m-%d %H:%M} UTC" if newest else missing
    due = last if newest is None or now >= last + grace else before
    return Check(
        project.name, env, name, False,
        f"{what}; the {noun} due at {due.astimezone():%Y-%m-%d %H:%M %Z} ({project.backup.schedule}) is late",
    )  # fmt: skip


def checks(runtime: Runtime, now: datetime) -> list[Check]:
    """Every check of every project and env, taken now."""
    try:
        found = [
            Check(c.project, c.environment, c.check, c.ok, c.detail)
            for c in runtime.stacks.health().checks
        ]
    except (DockerUnavailable, HostError) as exc:
        # No container can be checked: one failing check per env says why, and the states
        # of the checks not taken are kept until they can be taken again.
        found = [
            Check(project.name, env, ENGINE_CHECK, False, f"health not taken: {exc}")
            for project in runtime.projects()
            for env in project.environments
        ]
    elapses: dict[str, Any] = {}  # schedule -> its last two elapses, asked once a pass
    for project in runtime.projects():
        for env in project.environments:
            found += freshness(runtime, project, env, now, elapses)
    # Keys name the stored states: two checks of one name (two stacks) stay apart.
    seen: dict[str, int] = {}
    unique = []
    for check in found:
        seen[check.key] = seen.get(check.key, 0) + 1
        if seen[check.key] > 1:
            check = attrs.evolve(check, name=f"{check.name} ({seen[check.key]})")
        unique.append(check)
    return unique


def is_coverage(name: str) -> bool:
    """Whether a check of this name is one of the coverage checks."""
    return name == COVERAGE_CHECK or name.startswith(UNCOVERED)


def _said(exc: Exception) -> str:
    """An error as one line: opskit's own message, else its type and text."""
    if isinstance(exc, OpskitError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def coverage_checks(runtime: Runtime) -> tuple[list[Check], set[tuple[str, str]]]:
    """The coverage checks of every env, as ``doctor`` computes them (one failing check
    per volume, bind mount or database that no backup covers, and per env a ``backup
    coverage`` check, failing when its coverage cannot be computed); and the (project, env)
    pairs whose coverage was computed. Collisions are health checks of every pass."""
    from opskit import doctor

    envs = [(project, env) for project in runtime.projects() for env in project.environments]
    # Any failure of the engine or the connection (paramiko's, the docker SDK's) is a
    # coverage that could not be computed: a failing check, never a crashed watch.
    try:
        found = doctor.survey(runtime)
    except Exception as exc:
        problem = f"not computed (doctor cannot run): {_said(exc)}"
        return [Check(p.name, env, COVERAGE_CHECK, False, problem) for p, env in envs], set()
    findings: list[doctor.Finding] = []
    taken: list[Check] = []
    computed: set[tuple[str, str]] = set()
    for project, env in envs:
        try:
            findings += doctor.coverage(runtime, project, env, found)
        except Exception as exc:
            problem = f"not computed (doctor cannot run): {_said(exc)}"
            taken.append(Check(project.name, env, COVERAGE_CHECK, False, problem))
            continue
        computed.add((project.name, env))
        taken.append(Check(project.name, env, COVERAGE_CHECK, True, "computed"))
    # One check per thing not covered (a volume two services mount is one check).
    same: dict[tuple[str, str, str], list[doctor.Finding]] = {}
    for finding in findings:
        if finding.severity == doctor.PROBLEM and finding.subject:
            key = (finding.project, finding.environment, finding.subject)
            same.setdefault(key, []).append(finding)
    for (project_name, env, subject), group in same.items():
        detail = "; ".join(f.message for f in group) + f": {group[0].fix}"
        taken.append(Check(project_name, env, UNCOVERED + subject, False, detail))
    return taken, computed


def _envs(runtime: Runtime) -> set[tuple[str, str]]:
    return {(project.name, env) for project in runtime.projects() for env in project.environments}


def _coverage_due(
    database: sqlite3.Connection, now: datetime, period: timedelta, force: bool
) -> tuple[bool, datetime | None]:
    """Whether this pass computes coverage, and when a pass last did."""
    row = database.execute("SELECT value FROM passes WHERE name = 'coverage'").fetchone()
    last = datetime.fromisoformat(row[0]) if row else None
    due = force or last is None or not last <= now < last + period
    return due, last


def _carried(
    runtime: Runtime,
    stored: dict[str, tuple[bool, str, str | None, str]],
    skip: set[str],
    computed: set[tuple[str, str]],
    note: str,
) -> list[Check]:
    """The stored coverage checks of the envs whose coverage this pass did not compute,
    as they were last computed (a failing one stays failing until a pass computes it
    again)."""
    envs = _envs(runtime)
    carried = []
    for key, (ok, _since, _sent, detail) in stored.items():
        project, env, name = [*key.split(" ", 2), "", ""][:3]
        if key in skip or not is_coverage(name) or (project, env) in computed:
            continue
        if (project, env) in envs:
            shown = note if ok and name == COVERAGE_CHECK else detail
            carried.append(Check(project, env, name, ok, shown))
    return carried


def watch(
    runtime: Runtime,
    now: datetime | None = None,
    job: Job | None = None,
    coverage: bool = False,
) -> WatchReport:
    """One pass: take every check, compare with the stored states, send what changed.
    Coverage is computed when ``coverage_hours`` have passed since a pass last computed it
    for every env, or with *coverage*."""
    now = now or datetime.now(UTC)
    settings = runtime.settings()
    remind = timedelta(hours=settings.remind_hours)
    period = timedelta(hours=settings.coverage_hours)
    broken: Check | None = None
    try:
        runtime.projects()
    except DescriptorError as exc:
        # No check can be taken: one failing check says why; the others' states are kept.
        broken = Check("", "", DESCRIPTORS_CHECK, False, f"no check taken: {exc}")
    database = open_states(runtime.watch_state_dir or settings.state_dir, settings.path)
    try:
        due, last = _coverage_due(database, now, period, coverage)
        taken = checks(runtime, now) if broken is None else [broken]
        stored = {
            row[0]: (bool(row[1]), row[2], row[3], row[4] or "")
            for row in database.execute("SELECT key, ok, since, sent, detail FROM states")
        }
        computed: set[tuple[str, str]] = set()
        covered: list[Check] = []
        due = due and broken is None
        if due:
            covered, computed = coverage_checks(runtime)
            if computed == _envs(runtime):  # else the next pass tries again
                database.execute(
                    "INSERT OR REPLACE INTO passes VALUES ('coverage', ?)", (now.isoformat(),)
                )
                last = now
        if broken is None:
            shown = f"computed at {last:%Y-%m-%d %H:%M} UTC" if last else "not computed yet"
            covered += _carried(runtime, stored, {c.key for c in covered}, computed, shown)
        taken += covered
        # (state, project) -> lines: a project's own notify URLs get its lines
        alerts = decide(database, taken, stored, now, remind)
        engine_down = any(c.name == ENGINE_CHECK and not c.ok for c in taken)
        kept = engine_down or broken is not None
        for gone, (was_ok, _since, _sent, _detail) in ({} if kept else stored).items():
            # checks of envs that no longer exist, and the engine's once it answers again
            project, _env, name = [*gone.split(" ", 2), "", ""][:3]
            if gone == DESCRIPTORS_CHECK and not was_ok:
                alerts.setdefault(("recovered", ""), []).append(f"{gone}: read again")
            elif name == ENGINE_CHECK and not was_ok:
                alerts.setdefault(("recovered", project), []).append(f"{gone}: answers again")
            elif name == COLLISION_CHECK and not was_ok:
                alerts.setdefault(("recovered", project), []).append(f"{gone}: used once now")
            elif is_coverage(name) and not was_ok and (project, _env) in computed:
                alerts.setdefault(("recovered", project), []).append(
                    f"{gone}: covered now, or no longer there"
                )
            database.execute("DELETE FROM states WHERE key = ?", (gone,))
        database.commit()
    except sqlite3.Error as exc:
        raise state_error(
            runtime.watch_state_dir or settings.state_dir, settings.path, exc
        ) from None
    finally:
        database.close()
    host = runtime.label or (
        socket.gethostname() if runtime.host.name == "local" else runtime.host.name
    )
    projects = {p.name: p for p in runtime.projects()} if broken is None else {}
    sent = send_alerts(alerts, settings, projects, host, job)
    report = WatchReport(tuple(taken), tuple(sent))
    if job is not None:
        envs = _envs(runtime) if broken is None else set()
        missing = len(envs - computed)
        job.details["coverage"] = (
            "not due"
            if not due
            else f"not computed for {missing} of {len(envs)} envs"
            if missing
            else "computed"
        )
        job.details["failing"] = [c.key for c in taken if not c.ok]
        if not report.ok:
            job.fail("failing: " + ", ".join(c.key for c in taken if not c.ok))
    return report


def send_alerts(
    alerts: dict[tuple[str, str], list[str]],
    settings: Settings,
    projects: dict[str, Project],
    host: str,
    job: Job | None = None,
) -> list[tuple[str, str]]:
    """Send what :func:`decide` found, one message per state and set of notify URLs;
    the (state, title) of each message sent."""
    sent: list[tuple[str, str]] = []
    titles = {
        "failed": "opskit: {n} failing on {host}",
        "reminder": "opskit: {n} still failing on {host}",
        "recovered": "opskit: {n} recovered on {host}",
    }
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
    return sent


def decide(
    database: sqlite3.Connection,
    taken: list[Check],
    stored: dict[str, tuple[bool, str, str | None, str]],
    now: datetime,
    remind: timedelta,
) -> dict[tuple[str, str], list[str]]:
    """Each check against its stored state (*stored* loses the ones taken): the alerts
    to send, as ``(failed|reminder|recovered, project) -> lines``; the states recorded.
    A check is alerted when it fails, reminded of every *remind* while it fails, and
    said once when it recovers."""
    stamp = now.isoformat()
    alerts: dict[tuple[str, str], list[str]] = {}
    for check in taken:
        line = f"{check.key}: {one_line(check.detail)}"
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
        elif is_coverage(check.name) and check.name != COVERAGE_CHECK:
            # What no backup covers is said once, when it appears, not reminded of:
            # it stays failing (and in 'doctor') until it is covered or gone.
            if check.detail != before[3]:
                database.execute(
                    "UPDATE states SET detail = ? WHERE key = ?", (check.detail, check.key)
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
    return alerts


def open_states(
    state_dir: str, settings_path: str | None, filename: str = STATE_FILE
) -> sqlite3.Connection:
    """``watch.sqlite`` (or *filename*) in the state folder (made if missing), its write
    lock taken."""
    # The state is this machine's, where opskit runs, also with --host ssh://...
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        database = sqlite3.connect(f"{state_dir}/{filename}", timeout=120)
        database.execute(
            "CREATE TABLE IF NOT EXISTS states (key TEXT PRIMARY KEY, ok INTEGER NOT NULL, "
            "since TEXT NOT NULL, sent TEXT, detail TEXT)"
        )
        # When a pass last did what is done less often than every pass (name: 'coverage').
        database.execute(
            "CREATE TABLE IF NOT EXISTS passes (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        # One pass at a time takes the checks, decides and records: a pass never acts on
        # evidence older than what another pass has recorded.
        database.execute("BEGIN IMMEDIATE")
        # The schema's version, written every pass: a file that cannot be written (read-only,
        # immutable) fails here, before any check, not when a state first changes.
        database.execute(f"PRAGMA user_version = {STATE_VERSION}")
    except (OSError, sqlite3.Error) as exc:
        raise state_error(state_dir, settings_path, exc) from None
    return database


def state_error(state_dir: str, settings_path: str | None, exc: Exception) -> OpskitError:
    where = f"state_dir of {settings_path}" if settings_path else "the default state_dir"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return OpskitError(
        f"the watch cannot keep its states in {state_dir}/{STATE_FILE} ({where}): {reason}"
    )


def _checks(count: int) -> str:
    return "1 check" if count == 1 else f"{count} checks"
