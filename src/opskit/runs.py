"""Runs: commands started from the dashboard, each in a process of its own, every event
stored in SQLite as it happens.

A run is one ``opskit`` command line (``backup mdf dev``, ``restore … --yes``). The
dashboard records it in ``runs.sqlite`` in the state folder and starts
``python -m opskit.runner RUN_ID DB_PATH`` in a new session, so the run survives the
browser going away and a restart of ``opskit serve``. That process (:mod:`opskit.runner`)
runs the command line through the ordinary CLI with one plugin more, whose ``opskit_event``
stores each job event, and stores the command's own output lines as ``output`` events.
Every stored event has an id that grows across all runs: a stream resumes exactly after the
last id it delivered.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from opskit.processes import pid_alive

FILENAME = "runs.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    argv TEXT NOT NULL,        -- JSON list: the opskit command line
    root TEXT NOT NULL,
    user TEXT NOT NULL,
    created TEXT NOT NULL,
    pid INTEGER,
    state TEXT NOT NULL,       -- queued, running, finished
    exit_code INTEGER,
    finished TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL,
    data TEXT NOT NULL         -- JSON: a job event, or {"event": "output", ...}
);
CREATE INDEX IF NOT EXISTS events_by_run ON events (run, id);
"""
# Each job's end, kept for HISTORY_DAYS apart from the runs and their logs (keep_runs_days):
# the backups page plots 60 nights of sizes, durations and disk use from it.
JOBS = """
CREATE TABLE jobs (
    event INTEGER PRIMARY KEY, -- the id of its job.finished event
    run TEXT NOT NULL,
    kind TEXT NOT NULL,
    project TEXT NOT NULL,
    envs TEXT NOT NULL,        -- JSON list
    time TEXT NOT NULL,        -- when it ended (UTC, ISO 8601)
    data TEXT NOT NULL         -- JSON: the job.finished event
);
CREATE INDEX jobs_by_kind ON jobs (kind, project, time);
INSERT INTO jobs SELECT id, run, json_extract(data, '$.kind'), json_extract(data, '$.project'),
    json_extract(data, '$.envs'), json_extract(data, '$.time'), data
    FROM events WHERE json_extract(data, '$.event') = 'job.finished';
"""
HISTORY_DAYS = 400


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@attrs.frozen
class Run:
    id: str
    argv: tuple[str, ...]
    root: str
    user: str
    created: str
    pid: int | None
    state: str
    exit_code: int | None
    finished: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "argv": list(self.argv), "command": " ".join(self.argv)}


@attrs.frozen
class StoredEvent:
    id: int
    run: str
    data: dict[str, Any]


class RunStore:
    """``runs.sqlite``: the runs and their events (WAL: readers never wait for the writer)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self.lock = threading.Lock()  # one connection, used by the server's threads in turn
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        if not self._has_jobs():
            self._add_jobs()
        os.chmod(path, 0o600)

    def _has_jobs(self) -> bool:
        return bool(self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchall())

    def _add_jobs(self) -> None:
        """The jobs table, with the jobs of the runs stored before it (once: a second
        process that opens the store meanwhile finds it there)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            if not self._has_jobs():
                for statement in JOBS.split(";"):
                    if statement.strip():
                        self.db.execute(statement)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            return self.db.execute(sql, parameters).fetchall()

    def close(self) -> None:
        self.db.close()

    def create(self, argv: Sequence[str], root: str, user: str) -> Run:
        run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
        self.query(
            "INSERT INTO runs (id, argv, root, user, created, state) VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, json.dumps(list(argv)), root, user, _now(), "queued"),
        )
        return self.get(run_id)

    def get(self, run_id: str) -> Run:
        rows = self.query("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise KeyError(run_id)
        return _run(rows[0])

    def runs(self, limit: int = 100) -> list[Run]:
        rows = self.query("SELECT * FROM runs ORDER BY created DESC LIMIT ?", (limit,))
        return [_run(row) for row in rows]

    def started(self, run_id: str, pid: int) -> None:
        self.query("UPDATE runs SET pid = ?, state = 'running' WHERE id = ?", (pid, run_id))

    def finish(self, run_id: str, exit_code: int) -> None:
        self.query(
            "UPDATE runs SET state = 'finished', exit_code = ?, finished = ? WHERE id = ?",
            (exit_code, _now(), run_id),
        )

    def append(self, run_id: str, data: dict[str, Any]) -> int:
        text = json.dumps(data, ensure_ascii=False, default=str)
        with self.lock:
            cursor = self.db.execute("INSERT INTO events (run, data) VALUES (?, ?)", (run_id, text))
            event_id = int(cursor.lastrowid or 0)
            if data.get("event") == "job.finished":
                self.db.execute(
                    "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (event_id, run_id, str(data.get("kind")), str(data.get("project")),
                     json.dumps(list(data.get("envs") or [])), str(data.get("time")), text),
                )  # fmt: skip
            return event_id

    def finished_jobs(self, kind: str, project: str, env: str, since: str) -> list[dict[str, Any]]:
        """The job.finished events of *kind* jobs of *project* *env* that ended after
        *since* (ISO 8601, UTC), oldest first, each with its ``run``; kept for
        :data:`HISTORY_DAYS`, whatever ``keep_runs_days`` keeps of the runs."""
        rows = self.query(
            "SELECT run, data FROM jobs WHERE kind = ? AND project = ? AND time > ?"
            " AND EXISTS (SELECT 1 FROM json_each(jobs.envs) WHERE value = ?) ORDER BY time",
            (kind, project, since, env),
        )
        return [{**json.loads(data), "run": run} for run, data in rows]

    def events(
        self, after: int = 0, run: str | None = None, limit: int = 1000
    ) -> list[StoredEvent]:
        """Events with an id above *after*, oldest first (of one run, or of all)."""
        if run is None:
            rows = self.query(
                "SELECT id, run, data FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, limit)
            )
        else:
            rows = self.query(
                "SELECT id, run, data FROM events WHERE run = ? AND id > ? ORDER BY id LIMIT ?",
                (run, after, limit),
            )
        return [StoredEvent(row[0], row[1], json.loads(row[2])) for row in rows]

    def last_id(self) -> int:
        return int(self.query("SELECT COALESCE(MAX(id), 0) FROM events")[0][0])

    def reap(self) -> None:
        """Mark runs whose process is gone without finishing (killed, the server rebooted)."""
        for run in self.query("SELECT * FROM runs WHERE state != 'finished'"):
            found = _run(run)
            if found.pid is not None and not pid_alive(found.pid):
                self.append(found.id, {"event": "output", "stream": "stderr",
                                       "line": "[error] the run's process ended without a result"})  # fmt: skip
                self.finish(found.id, -1)

    def prune(self, keep_days: float) -> int:
        """Forget finished runs older than *keep_days*, with their events; the end of each
        job (:meth:`finished_jobs`) stays for :data:`HISTORY_DAYS`."""
        cutoff = (datetime.now(UTC) - timedelta(days=keep_days)).isoformat()
        old = [
            row[0]
            for row in self.query(
                "SELECT id FROM runs WHERE state = 'finished' AND finished < ?", (cutoff,)
            )
        ]
        for run_id in old:
            self.query("DELETE FROM events WHERE run = ?", (run_id,))
            self.query("DELETE FROM runs WHERE id = ?", (run_id,))
        history = (datetime.now(UTC) - timedelta(days=max(keep_days, HISTORY_DAYS))).isoformat()
        self.query("DELETE FROM jobs WHERE time < ?", (history,))
        return len(old)


def _run(row: Sequence[Any]) -> Run:
    return Run(row[0], tuple(json.loads(row[1])), *row[2:])


def start(
    store: RunStore, argv: Sequence[str], root: str, user: str, host: str | None = None
) -> Run:
    """Record a run and start its process in a session of its own (not a child that dies
    with the server); its output goes to the store, not to the server. *host* is the
    server's ``--host``: the run works on the same machine as the pages show."""
    run = store.create(argv, root, user)
    env = dict(os.environ)
    env.pop("OPSKIT_HOST", None)
    if host:
        env["OPSKIT_HOST"] = host
    process = subprocess.Popen(
        [sys.executable, "-m", "opskit.runner", run.id, store.path],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True, env=env,
    )  # fmt: skip
    store.started(run.id, process.pid)
    _reap_later(process)
    return store.get(run.id)


def _reap_later(process: subprocess.Popen[bytes]) -> None:
    """Wait for the child in a thread, so that it does not stay a zombie while we run."""
    import threading

    threading.Thread(target=process.wait, daemon=True).start()


def follow(store: RunStore, after: int, interval: float = 0.1) -> Iterator[StoredEvent]:
    """Events after *after* as they are stored (for tests and scripts; the server streams
    them asynchronously)."""
    while True:
        found = store.events(after)
        for event in found:
            after = event.id
            yield event
        if not found:
            time.sleep(interval)


class CommandRun:
    """A command line's jobs recorded as a run (the CLI's and the timers': a run of the
    dashboard records its own, :mod:`opskit.runner`): subscribed to the runtime's event
    bus, it creates the run at the first event and stores each event as it comes; the
    caller ends it with :meth:`finish`. A command whose only jobs are watch passes is kept
    only when it failed (a pass every five minutes would bury everything else)."""

    QUIET = ("watch",)

    def __init__(self, path: str, argv: Sequence[str], root: str, user: str) -> None:
        self.path, self.argv, self.root, self.user = path, list(argv), root, user
        self.store: RunStore | None = None
        self.run_id: str | None = None
        self.held: list[dict[str, Any]] = []
        self.failed = False  # the store could not be written: the command goes on

    def __call__(self, event: Any) -> None:
        data = event.as_dict()
        if self.failed:
            return
        if self.run_id is None and not (
            data.get("event") == "job.started" and data.get("kind") not in self.QUIET
        ):
            self.held.append(data)
            return
        self._write([*self.held, data])
        self.held = []

    def _write(self, events: list[dict[str, Any]]) -> None:
        try:
            if self.store is None:
                os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
                self.store = RunStore(self.path)
                self.run_id = self.store.create(self.argv, self.root, self.user).id
                self.store.started(self.run_id, os.getpid())
            for data in events:
                self.store.append(str(self.run_id), data)
        except (OSError, sqlite3.Error):
            self.failed = True

    def finish(self, exit_code: int) -> None:
        """End the run with the command's exit code (a held watch run is kept if it failed)."""
        if self.held and exit_code != 0:
            self._write(self.held)
        if self.store is None or self.run_id is None or self.failed:
            return
        try:
            self.store.append(self.run_id, {"event": "run.finished", "exit_code": exit_code})
            self.store.finish(self.run_id, exit_code)
            self.store.close()
        except sqlite3.Error:
            pass
