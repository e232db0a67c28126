"""The audit log: one JSON line per change made to an env (sync, promote, restore, rebuild).

The log lives beside the project's backups, ``{backup.dir}/opskit-audit.log`` (the project
folder when it has no backup section), so it survives a rebuild of the env itself. Each
line is written by one ``write`` in append mode, so concurrent writers never interleave.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import posixpath
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from opskit.archive import now
from opskit.errors import Cancelled

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
    script = 'mkdir -p -- "$(dirname -- "$1")" && cat >> "$1"'
    process = host.popen(["sh", "-c", script, "opskit", path], stdin=True, merge_stderr=False)
    assert process.stdin is not None
    process.stdin.write(line.encode())
    process.stdin.close()
    process.stdout.read()
    if process.wait() != 0:
        # The change itself is done; a log that cannot be written must not undo it.
        print(f"[warning] cannot write {path}: {process.errors().strip()}", file=sys.stderr)


class Audit:
    """One change being recorded: fill :attr:`details` (archive, commits, result)."""

    def __init__(self, host: Host, project: Project, command: str, envs: Sequence[str]) -> None:
        self.host = host
        self.project = project
        self.entry: dict[str, Any] = {
            "time": "",
            "user": _user(),
            "host": socket.gethostname() if host.name == "local" else host.name,
            "command": command,
            "project": project.name,
            "envs": list(envs),
        }
        self.details: dict[str, Any] = {}
        self.started: float | None = None

    def begin(self) -> None:
        """The first change is about to be made: from now on the outcome is recorded."""
        self.entry["time"] = now().isoformat()
        self.started = time.monotonic()

    def finish(self, result: str, error: str | None) -> None:
        if self.started is None:
            return  # refused or declined before any change: nothing to record
        entry = {**self.entry, **self.details}
        entry["result"] = self.details.get("result", result)
        if error is not None:
            entry["error"] = error
        entry["seconds"] = round(time.monotonic() - self.started, 1)
        append(self.host, self.project, entry)


@contextlib.contextmanager
def audited(
    host: Host, project: Project, command: str, envs: Sequence[str], *, begun: bool = True
) -> Iterator[Audit]:
    """Record one change when the block ends: ``result`` ``ok``, ``failed`` (with the
    error) or ``interrupted``, unless the caller set ``details["result"]``. With
    ``begun=False`` nothing is recorded unless :meth:`Audit.begin` was called, so checks
    that refuse and confirmations that are declined leave no entry."""
    audit = Audit(host, project, command, envs)
    if begun:
        audit.begin()
    try:
        yield audit
    except Cancelled:
        raise
    except KeyboardInterrupt:
        audit.finish("interrupted", None)
        raise
    except Exception as exc:
        audit.finish("failed", str(exc))
        raise
    audit.finish("ok", None)


def read(host: Host, projects: Sequence[Project], name: str | None = None) -> list[dict[str, Any]]:
    """The entries of the logs of *projects* (of project *name* only), oldest first."""
    paths = sorted({log_path(p) for p in projects if name is None or p.name == name})
    entries = []
    for _path, text in host.read_existing(paths).items():
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by a full disk; the rest is still readable
            if isinstance(entry, dict) and (name is None or entry.get("project") == name):
                entries.append(entry)
    return sorted(entries, key=lambda e: str(e.get("time", "")))
