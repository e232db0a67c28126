"""The audit log: one JSON line per change made to an env (sync, promote, restore, rebuild,
migrate, start, stop, restart, destroy).

The log lives beside the project's backups, ``{backup.dir}/opskit-audit.log`` (the project
folder when it has no backup section), so it survives a rebuild of the env itself. Each
line is written by one ``write`` in append mode, so concurrent writers never interleave.
"""

from __future__ import annotations

import getpass
import json
import os
import posixpath
import socket
import time
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, tzinfo
from typing import TYPE_CHECKING, Any

from opskit import events
from opskit.output import warning

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.host import Host

FILENAME = "opskit-audit.log"


def log_path(project: Project) -> str:
    folder = project.backup.dir if project.backup is not None else project.folder
    return posixpath.join(folder, FILENAME)


def _user() -> str:
    user = getpass.getuser()
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (as {user})" if sudo and sudo != user else user


def append(host: Host, project: Project, entry: dict[str, Any]) -> None:
    """Append one entry to the project's audit log."""
    path = log_path(project)
    line = json.dumps(entry, sort_keys=False, ensure_ascii=False) + "\n"
    # readable by the owner only, whatever the umask: it names users, hosts and archives
    script = 'umask 077 && mkdir -p -- "$(dirname -- "$1")" && cat >> "$1" && chmod 600 -- "$1"'
    process = host.popen(["sh", "-c", script, "opskit", path], stdin=True, merge_stderr=False)
    assert process.stdin is not None
    process.stdin.write(line.encode())
    process.stdin.close()
    process.stdout.read()
    if process.wait() != 0:
        # The change itself is done; a log that cannot be written must not undo it.
        warning(f"cannot write {path}: {process.errors().strip()}")


class AuditLog:
    """The audit log as a listener of jobs: one entry for each ``restore``, ``sync``,
    ``promote``, ``rebuild``, ``migrate`` (``backups migrate``), ``start``, ``stop``,
    ``restart`` and ``destroy`` that began to change something (a refused check or a
    declined confirmation leaves none), written when the job finishes."""

    KINDS = frozenset(
        {"restore", "sync", "promote", "rebuild", "migrate", "start", "stop", "restart", "destroy"}
    )

    def __init__(self, host: Host, projects: Callable[[], Sequence[Project]]) -> None:
        self.host = host
        self.projects = projects
        self._open: dict[str, dict[str, Any]] = {}
        self._started: dict[str, float] = {}

    def __call__(self, event: events.Event) -> None:
        if isinstance(event, events.JobStarted) and event.kind in self.KINDS:
            self._open[event.job] = {
                "time": "",
                "user": _user(),
                "host": socket.gethostname() if self.host.name == "local" else self.host.name,
                "command": event.kind,
                "project": event.project,
                "envs": list(event.envs),
            }
        elif isinstance(event, events.JobChanging) and event.job in self._open:
            self._open[event.job]["time"] = datetime.now(UTC).isoformat()
            self._started[event.job] = time.monotonic()
        elif isinstance(event, events.JobFinished) and event.job in self._open:
            entry = self._open.pop(event.job)
            started = self._started.pop(event.job, None)
            if started is None:
                return  # refused or declined before any change: nothing to record
            details = dict(event.details)
            details.pop("archive_path", None)
            result = {"cancelled": "interrupted"}.get(event.result, event.result)
            entry.update(details)
            entry["result"] = details.get("result", result)
            if event.error is not None and entry["result"] != "ok":
                entry["error"] = event.error
            entry["seconds"] = round(time.monotonic() - started, 1)
            project = next((p for p in self.projects() if p.name == event.project), None)
            if project is not None:
                append(self.host, project, entry)


def read(host: Host, projects: Sequence[Project], name: str | None = None) -> list[dict[str, Any]]:
    """The entries of the logs of *projects* (of project *name* only), oldest first."""
    entries, _damaged = _entries(host, projects, name)
    return entries


def _entries(
    host: Host, projects: Sequence[Project], name: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The entries, oldest first, and the lines that are not entries (cut short by a full
    disk; the rest is still readable)."""
    paths = sorted({log_path(p) for p in projects if name is None or p.name == name})
    entries, damaged = [], []
    for _path, text in host.read_existing(paths).items():
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                damaged.append(line)
                continue
            if isinstance(entry, dict) and (name is None or entry.get("project") == name):
                entries.append(entry)
    return sorted(entries, key=lambda e: str(e.get("time", ""))), damaged


def undo_point(entry: dict[str, Any]) -> tuple[str, str] | None:
    """The env and the archive that the change of *entry* can be undone with: the backup
    of the changed env taken first (the safety backup of a restore, the target's backup
    before a sync); None when there is none."""
    envs = entry.get("envs") or []
    name = entry.get("safety_backup")
    if not name and entry.get("command") == "sync" and entry.get("archive"):
        name = posixpath.basename(str(entry["archive"]))
    return (str(envs[-1]), str(name)) if name and envs else None


def _time(entry: dict[str, Any]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(entry.get("time")))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def undo_points(
    host: Host,
    project: Project,
    env: str,
    archives: Collection[str],
    since: datetime,
    tz: tzinfo | None = None,
) -> dict[str, list[str]]:
    """The archives among *archives* (of *project* *env*) that an audit entry made since
    *since* names as its undo point, each with why: ``"undo point of sync 2026-12-03
    08:35"`` (local time in *tz*). An archive named in a damaged line of the log is kept
    too: what that line said cannot be known."""
    entries, damaged = _entries(host, [project], project.name)
    points: dict[str, list[str]] = {}
    for entry in entries:
        found = undo_point(entry)
        if found is None or found[0] != env or found[1] not in archives:
            continue
        moment = _time(entry)  # None: a time nobody can read, kept as for a damaged line
        if moment is not None and moment < since:
            continue
        when = moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else "unknown time"
        points.setdefault(found[1], []).append(f"undo point of {entry.get('command')} {when}")
    for line in damaged:
        for name in archives:
            if name in line and name not in points:
                points[name] = ["named in a damaged line of the audit log"]
    return points
