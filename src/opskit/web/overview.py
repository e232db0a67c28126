"""The overview by env, computed once per change for every open page.

Two parts, because they cost very different amounts: the *containers* (one Docker API
call, the descriptors read again) and the *checks* (what the watch takes: container
health and probes, backup and offsite freshness through systemd-analyze and the archive
lists; and per env the newest verified archive, the next and the last scheduled run, the
disk of its data). :class:`OverviewFeed` keeps each part for the change counter it was
computed at: a ``docker events`` container event or a job's end raises the counter, the
containers are read again at once and the open pages told (``changed``), the checks
follow in the background (``checked``). However many pages are open, each part is
computed once per change (single-flight); a page's read between changes is a cached one.
"""

from __future__ import annotations

import asyncio
import json
import posixpath
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opskit.errors import DockerUnavailable, HostError, OpskitError

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.host import Host
    from opskit.plugins import Plugins
    from opskit.runs import RunStore
    from opskit.runtime import Runtime
    from opskit.web.changes import EngineEvents
    from opskit.web.run_service import Broadcaster

# A read without a page open (a script) trusts a part this long; with pages open the feed
# computes both parts again on each change and after REFRESH_SECONDS without one (a probe
# fails, a descriptor is edited, a backup grows late: no event of the engine's).
CONTAINERS_SECONDS = 1.0
CHECKS_SECONDS = 10.0
REFRESH_SECONDS = 15.0
BURST_SECONDS = 0.1  # the events of one change that come within this are one change
ENDS = ("job.finished", "run.finished")
SCHEDULED_RUNS = 200  # the newest scheduled runs searched for each env's last one


def _said(exc: Exception) -> str:
    """An error as one line: opskit's own message, else its type and text."""
    if isinstance(exc, OpskitError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def _folder_of(path: str) -> str:
    """The project folder's name of a descriptor's path (``ROOT/NAME/project.yaml``)."""
    return posixpath.basename(posixpath.dirname(path)) or path


# -- the two parts ----------------------------------------------------------------------


def containers_part(runtime: Runtime) -> dict[str, Any]:
    """Every env with its containers (``status``), a descriptor that does not read as an
    env in error, and why the engine cannot be asked when it cannot."""
    projects, errors = runtime.readable_projects()
    engine, placements = None, []
    try:
        placements = runtime.stacks.status()
    except (DockerUnavailable, HostError) as exc:
        engine = _said(exc)
    except Exception as exc:  # the engine's client failing halfway: said, never a 500
        engine = f"cannot read the containers: {_said(exc)}"
    envs = [
        {
            "project": project.name,
            "env": env,
            "error": None,
            "containers": [
                p.as_dict()
                for p in placements
                if p.project == project.name and p.environment == env
            ],
        }
        for project in projects
        for env in project.environments
    ]
    envs += [
        {"project": _folder_of(exc.path), "env": "", "error": f"[error] {exc}", "containers": []}
        for exc in errors
    ]
    return {"engine": engine, "envs": envs}


def checks_part(runtime: Runtime, store: RunStore | None, now: datetime) -> dict[str, Any]:
    """Per env (``"project env"``): every check of the watch that concerns it (its own
    and its project's), failing ones first; the newest verified archive; the freshness
    checks; the schedule, its next run and the env's last scheduled run; the disk."""
    from opskit import watch
    from opskit.disk import filesystems

    projects, _errors = runtime.readable_projects()
    try:
        taken = watch.checks(runtime, now)
        problem = None
    except Exception as exc:  # opskit.yaml unreadable, a plugin's fault: said on each card
        taken, problem = [], f"checks not taken: {_said(exc)}"
    runs = last_scheduled_runs(store) if store is not None else {}
    next_runs: dict[str, str] = {}
    data_paths = {(p.name, env): _data_paths(p, env) for p in projects for env in p.environments}
    try:
        usage = filesystems(runtime.host, sorted({x for v in data_paths.values() for x in v}))
    except Exception:  # no disk figure is no reason for no card
        usage = {}
    envs: dict[str, Any] = {}
    for project in projects:
        schedule = project.backup.schedule if project.backup else None
        if schedule and schedule not in next_runs:
            next_runs[schedule] = _next_run(runtime.host, schedule)
        for env in project.environments:
            checks = [
                c.as_dict() for c in taken if c.project == project.name and c.env in (env, "")
            ]
            if problem:
                checks.append({"project": project.name, "env": env, "name": "checks",
                               "ok": False, "detail": problem, "key": f"{project.name} {env} checks"})  # fmt: skip
            checks.sort(key=lambda c: c["ok"])  # failing first, each group as the watch has it
            archive, archive_error, count = _newest_verified(runtime, project, env)
            fresh = {c["name"]: {"ok": c["ok"], "detail": c["detail"]} for c in checks
                     if c["name"] in ("backup freshness", "offsite freshness") and c["env"] == env}  # fmt: skip
            envs[f"{project.name} {env}"] = {
                "checks": checks,
                "newest_backup": archive,
                "archive_error": archive_error,
                "backed_up": project.backup is not None,  # the descriptor has a backup section
                "archives": count,  # whole archives, verified or not
                "freshness": fresh.get("backup freshness"),
                "offsite_freshness": fresh.get("offsite freshness"),
                "schedule": schedule,
                "next_run": next_runs.get(schedule) if schedule else None,
                "last_run": runs.get((project.name, env)),
                "disk": _disk(data_paths[(project.name, env)], usage, archive),
            }
    return {"checked_at": now.isoformat(timespec="seconds"), "envs": envs}


def _newest_verified(
    runtime: Runtime, project: Project, env: str
) -> tuple[dict[str, Any] | None, str | None, int]:
    """The newest archive of the whole env whose verification passed (never a partial
    ``only`` archive, never an unverified safety backup), why none can be told, and how
    many whole archives there are."""
    from opskit.backups import Engine

    if project.backup is None:
        return None, None, 0
    if runtime.delegates(project, "backup"):
        return None, "its own CLI keeps the archives", 0
    try:
        archives = Engine(runtime).whole_archives(project, env)
    except Exception as exc:
        return None, f"cannot list the archives: {_said(exc)}", 0
    verified = [a for a in archives if a.verified_state == "ok"]
    return (verified[0].as_dict() if verified else None), None, len(archives)


def _next_run(host: Host, schedule: str) -> str:
    from opskit.timers import next_elapse, on_calendar

    return next_elapse(host, on_calendar(schedule))


def _data_paths(project: Project, env: str) -> list[str]:
    """Where the env's data lives on the host: its backup paths and the project's folder
    (its named volumes live in the engine's data root, which all containers share)."""
    paths = [project.resolve_path(p, env) for p in project.backup.paths] if project.backup else []
    return [*paths, project.folder]


def _disk(
    paths: list[str], usage: dict[str, tuple[int, int, int]], archive: dict[str, Any] | None
) -> dict[str, Any]:
    """The fullest filesystem holding the env's data (``df``'s figures), and the data's
    size as its newest verified archive recorded it (no ``du`` of live data: cheap)."""
    from opskit.disk import FolderUsage

    measured = [FolderUsage(p, None, *usage[p]) for p in paths if p in usage]
    fullest = max(measured, key=lambda f: f.used_fraction, default=None)
    parts = (archive or {}).get("parts") or []
    return {
        "path": fullest.path if fullest else (paths[0] if paths else None),
        "used_percent": fullest.used_percent if fullest else None,
        "free_bytes": fullest.filesystem_free if fullest else None,
        "size_bytes": fullest.filesystem_size if fullest else None,
        "data_bytes": sum(int(p.get("bytes") or 0) for p in parts) if archive else None,
        "data_at": archive["created"] if archive else None,
    }


def last_scheduled_runs(store: RunStore) -> dict[tuple[str, str], dict[str, Any]]:
    """(project, env) -> the newest job a timer ran for it (``--scheduled``), from the
    runs store: its run, kind, result, error and when it finished."""
    rows = store.query(
        "SELECT e.run, e.data FROM events e JOIN (SELECT id FROM runs WHERE argv LIKE ? "
        "ORDER BY created DESC LIMIT ?) r ON e.run = r.id WHERE e.data LIKE ? ORDER BY e.id DESC",
        ('%"--scheduled"%', SCHEDULED_RUNS, '%"job.finished"%'),
    )
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for run, data in rows:
        event = json.loads(data)
        if event.get("event") != "job.finished" or not event.get("scheduled"):
            continue
        for env in event.get("envs") or ():
            newest.setdefault((str(event.get("project")), str(env)), {
                "run": run, "kind": event.get("kind"), "result": event.get("result"),
                "error": event.get("error"), "finished": event.get("time"),
                "seconds": event.get("seconds"),
            })  # fmt: skip
    return newest


def merged(containers: dict[str, Any], checked: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Each env of the containers part with its checks (None while not yet taken) and
    its status: ``error`` (descriptor or engine), ``failing``, ``ok``, or ``checking``."""
    envs = []
    for env in containers["envs"]:
        extra = (checked or {}).get("envs", {}).get(f"{env['project']} {env['env']}")
        row = {**env, **(extra or {"checks": None})}
        down = [
            c for c in env["containers"] if c["state"] != "running" or c["health"] == "unhealthy"
        ]
        if env["error"] or containers["engine"]:
            row["status"] = "error"
        elif down or any(not c["ok"] for c in row["checks"] or ()):
            row["status"] = "failing"
        else:
            row["status"] = "ok" if extra is not None else "checking"
        envs.append(row)
    return envs


# -- the feed ---------------------------------------------------------------------------


class _Part:
    """One part, computed at most once at a time, and kept for the change counter (and
    at most *seconds*) it was computed at."""

    def __init__(self, compute: Callable[[], dict[str, Any]], seconds: float) -> None:
        self.compute, self.seconds = compute, seconds
        self.lock = threading.Lock()
        self.value: dict[str, Any] | None = None
        self.generation = -1
        self.at = 0.0
        self.computed = 0  # how many times it was computed (bench/serve, tests)

    def get(self, generation: int) -> dict[str, Any]:
        with self.lock:  # a second caller waits for the first's result
            if not self.fresh(generation):
                started = time.monotonic()
                self.value = self.compute()
                self.generation, self.at = generation, started
                self.computed += 1
            assert self.value is not None
            return self.value

    def fresh(self, generation: int) -> bool:
        return (
            self.value is not None
            and self.generation == generation
            and time.monotonic() - self.at < self.seconds
        )


class OverviewFeed:
    """The overview of one root for every open page: a change counter, the two parts
    kept for it, and the pages to tell when a part is new."""

    def __init__(
        self,
        root: str,
        host: Host,
        plugins: Plugins,
        store: RunStore | None,
        engine: EngineEvents,
        broadcaster: Broadcaster,
    ) -> None:
        self.root, self.host, self.plugins = root, host, plugins
        self.engine, self.broadcaster = engine, broadcaster
        self.generation = 0
        self.containers = _Part(lambda: containers_part(self._runtime()), CONTAINERS_SECONDS)
        self.checks = _Part(
            lambda: checks_part(self._runtime(), store, datetime.now(UTC)), CHECKS_SECONDS
        )
        self.pages: set[asyncio.Queue[dict[str, Any]]] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self.checks_wanted: asyncio.Event | None = None

    def _runtime(self) -> Runtime:
        """A runtime of its own for each computation: the descriptors as they are now,
        and nothing shared with a request's thread."""
        from opskit.runtime import Runtime

        return Runtime(self.root, self.host, self.plugins)

    def overview(self, checks: bool = True) -> dict[str, Any]:
        """The overview now (blocking: call it in a thread). With pages open the checks
        are the feed's newest (a page is told when newer ones are in); without, they are
        taken again when older than CHECKS_SECONDS. Without *checks*: the containers only
        (``checks`` null), for a page that needs no more."""
        generation = self.generation
        checked: dict[str, Any] | None
        try:
            containers = self.containers.get(generation)
            if not checks:
                checked = None
            elif self.tasks and self.checks.value is not None:
                checked = self.checks.value
            else:
                checked = self.checks.get(generation)
        except (HostError, DockerUnavailable) as exc:  # a server of the fleet that is down
            return {
                "generation": generation,
                "unreachable": f"unreachable: {_said(exc)}",
                "engine": None,
                "envs": [],
                "checks_generation": self.checks.generation,
                "checked_at": None,
                "computed": {"containers": self.containers.computed,
                             "checks": self.checks.computed},
            }  # fmt: skip
        return {
            "generation": generation,
            "unreachable": None,
            "checks_generation": self.checks.generation,
            "checked_at": checked.get("checked_at") if checked else None,
            "engine": containers["engine"],
            "envs": merged(containers, checked),
            # how often each part was computed since the server started: once per change
            # however many pages are open (bench/serve, tests)
            "computed": {"containers": self.containers.computed, "checks": self.checks.computed},
        }

    # -- the pages ------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A page's queue of ``{"changed": reason}`` and ``{"checked": generation}``; the
        first page starts the feed (one ``docker events``, one reader of the runs)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pages.add(queue)
        if not self.tasks:
            self.checks_wanted = asyncio.Event()
            self.tasks = [
                asyncio.get_running_loop().create_task(self._follow()),
                asyncio.get_running_loop().create_task(self._check()),
            ]
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """The last page gone stops the feed."""
        self.pages.discard(queue)
        if not self.pages:
            for task in self.tasks:
                task.cancel()
            self.tasks = []

    def _tell(self, message: dict[str, Any]) -> None:
        for queue in list(self.pages):
            queue.put_nowait(message)

    async def _follow(self) -> None:
        """Raise the counter on each change, read the containers again (a burst once),
        tell the pages, and want the checks again."""
        changes = self.engine.subscribe()
        jobs = self.broadcaster.subscribe()
        merged_changes: asyncio.Queue[str] = asyncio.Queue()

        async def pump(queue: asyncio.Queue[Any], reason: Callable[[Any], str | None]) -> None:
            while True:
                item = await queue.get()
                if (said := reason(item)) is not None:
                    merged_changes.put_nowait(said)

        def ended(event: Any) -> str | None:
            return str(event.data.get("event")) if event.data.get("event") in ENDS else None

        pumps = [
            asyncio.create_task(pump(changes, str)),
            asyncio.create_task(pump(jobs, ended)),
        ]
        assert self.checks_wanted is not None
        failed: str | None = None  # why the containers could not be read last time
        try:
            while True:
                try:
                    reason = await asyncio.wait_for(merged_changes.get(), REFRESH_SECONDS)
                except TimeoutError:
                    # no event for a while: the descriptors (an edit is no event), the
                    # probes and freshness are read again; docker events, if it ended
                    # (the engine restarted), started again
                    reason = "refresh"
                    self.engine.resume()
                if reason != "refresh":  # a burst is one change: docker stop is kill, die, stop
                    await asyncio.sleep(BURST_SECONDS)
                while not merged_changes.empty():
                    reason = merged_changes.get_nowait()
                before, failed_before = self.containers.value, failed
                self.generation += 1
                try:
                    await asyncio.to_thread(self.containers.get, self.generation)
                    failed = None
                except Exception as exc:  # the page's read says why
                    failed = _said(exc)
                # a refresh that found nothing new tells no page; one that found the host
                # gone (or back) does: nothing else will (no engine event comes from it)
                if (
                    reason != "refresh"
                    or self.containers.value != before
                    or failed != failed_before
                ):
                    self._tell({"changed": reason, "generation": self.generation})
                self.checks_wanted.set()
        finally:
            for task in pumps:
                task.cancel()
            self.engine.unsubscribe(changes)
            self.broadcaster.unsubscribe(jobs)

    async def _check(self) -> None:
        """Take the checks again whenever wanted (one at a time); tell the pages when
        what they show would change."""
        assert self.checks_wanted is not None
        while True:
            await self.checks_wanted.wait()
            self.checks_wanted.clear()
            before = self.checks.value
            generation = self.generation
            try:
                found = await asyncio.to_thread(self.checks.get, generation)
            except Exception:  # taken again at the next change or refresh
                continue
            if before is None or {**before, "checked_at": None} != {**found, "checked_at": None}:
                self._tell({"checked": generation})
