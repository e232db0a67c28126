"""The Python API: :class:`Ops`. The command line is a thin layer over it."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

import attrs

from opskit import compose, containers
from opskit.descriptor import Project, load_projects
from opskit.disk import FolderUsage, docker_usage, folder_usage
from opskit.errors import CommandFailed, NotFoundError, OpskitError
from opskit.health import HealthContext, HealthReport
from opskit.host import Host, open_host
from opskit.plugins import Plugins, create_plugins

# A progress meter: given a label, returns the callback that counts bytes done.
Meter = Callable[[str], Callable[[int], None]]

if TYPE_CHECKING:
    from opskit.archive import Archive, Fault
    from opskit.backups import Engine
    from opskit.promote import PromoteReport
    from opskit.retention import Decision
    from opskit.sync import SyncReport

DEFAULT_ROOT = "/opt/data"
# Seconds between two polls of an env's health while waiting for it.
HEALTH_POLL = 1.0

# What each lifecycle action runs through compose.
LIFECYCLE = {
    "start": ["up", "-d"],
    "stop": ["stop"],
    "restart": ["restart"],
    "build": ["build"],
    "destroy": ["down", "--remove-orphans"],
}


@attrs.frozen
class DiskReport:
    folders: tuple[FolderUsage, ...]
    docker: Mapping[str, int]

    def as_dict(self) -> dict[str, Any]:
        return {"folders": [f.as_dict() for f in self.folders], "docker": dict(self.docker)}


@attrs.frozen
class ComposeState:
    """What runs, and under which compose project name each stack of the root runs."""

    containers: tuple[containers.Container, ...]
    stacks: tuple[compose.StackIdentity, ...]
    collisions: tuple[compose.Collision, ...]


@attrs.frozen
class RebuildPlan:
    """What ``rebuild`` runs: the compose commands, then a restore of *archive*."""

    project: str
    environment: str
    commands: tuple[str, ...]
    archive: str

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class Ops:
    """Everything opskit does, for scripts and for the CLI.

    :param root: the folder holding ``*/project.yaml`` (default ``OPSKIT_ROOT`` or ``/opt/data``).
    :param host: ``"local"``, ``"ssh://user@server[:port]"`` or a :class:`~opskit.host.Host`
        (default ``OPSKIT_HOST`` or local).
    :param plugins: a plugin manager from :func:`opskit.plugins.create_plugins` (default: all installed).
    """

    def __init__(
        self,
        root: str | None = None,
        host: str | Host | None = None,
        *,
        plugins: Plugins | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.root = os.path.abspath(root or environ.get("OPSKIT_ROOT") or DEFAULT_ROOT)
        self.host = (
            host if isinstance(host, Host) else open_host(host or environ.get("OPSKIT_HOST"))
        )
        self.plugins = plugins if plugins is not None else create_plugins(environ)
        self._projects: list[Project] | None = None

    def close(self) -> None:
        self.host.close()

    def __enter__(self) -> Ops:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- projects --------------------------------------------------------------

    def projects(self) -> list[Project]:
        """Every project under the root, validated, each with its handler set."""
        if self._projects is None:
            loaded = load_projects(self.plugins.discover_projects(self.root, self.host))
            if not loaded and not self.host.exists(self.root):
                where = "" if self.host.name == "local" else f" on {self.host.name}"
                raise NotFoundError(
                    f"projects root {self.root} does not exist{where} (use --root or OPSKIT_ROOT)"
                )
            projects = []
            for project in loaded:
                handler = self.plugins.project_handler(project) or "generic"
                if handler != project.plugin:
                    print(
                        f"[warning] project {project.name}: plugin {project.plugin!r} is not installed; "
                        f"handled by {handler!r}",
                        file=sys.stderr,
                    )
                projects.append(attrs.evolve(project, handler=handler))
            self._projects = projects
        return self._projects

    def project(self, name: str) -> Project:
        for project in self.projects():
            if project.name == name:
                return project
        known = ", ".join(p.name for p in self.projects()) or f"none under {self.root}"
        raise NotFoundError(f"unknown project {name!r} (projects: {known})")

    def scope(
        self, project: str | None = None, env: str | None = None
    ) -> list[tuple[Project, str]]:
        """The (project, env) pairs a command acts on: one env, a project's envs, or all."""
        if project is None:
            return [(p, e) for p in self.projects() for e in p.environments]
        found = self.project(project)
        if env is not None:
            return [(found, found.check_env(env))]
        return [(found, e) for e in found.environments]

    # -- status and health -----------------------------------------------------

    def compose_state(self) -> ComposeState:
        """Every container, every stack's compose project name and the collisions among
        them: one Docker API call and one read of the compose and env files."""
        found = containers.list_containers(self.host)
        stacks = compose.identities(self.host, self.projects(), found)
        return ComposeState(tuple(found), tuple(stacks), tuple(compose.collisions(stacks, found)))

    def refuse_collisions(self, project: str, envs: Sequence[str]) -> ComposeState:
        """Raise before anything changes when a stack of these envs shares its compose
        project name with another stack; else return the state for the change."""
        state = self.compose_state()
        compose.refuse_collisions(state.collisions, project, envs)
        return state

    def status(
        self, project: str | None = None, env: str | None = None
    ) -> list[containers.Placement]:
        """The containers of the envs in scope, with declared services that have none."""
        return self.status_and_collisions(project, env)[0]

    def status_and_collisions(
        self, project: str | None = None, env: str | None = None
    ) -> tuple[list[containers.Placement], list[compose.Collision]]:
        """:meth:`status`, and the compose project name collisions of the envs in scope."""
        scope = self.scope(project, env)
        state = self.compose_state()
        placements = containers.status(self.projects(), scope, state.containers, state.stacks)
        found = [c for c in state.collisions if any(c.involves(p.name, e) for p, e in scope)]
        return placements, found

    def containers(
        self, project: str, env: str, service: str | None = None, running: bool = False
    ) -> list[containers.Container]:
        """The containers of one env (of one service), resolved like ``status`` does."""
        placements = [p for p in self.status(project, env) if p.container is not None]
        if service is not None:
            placements = [p for p in placements if p.service == service]
            if not placements:
                raise NotFoundError(f"{project} {env}: no container for service {service!r}")
        found = [p.container for p in placements if p.container is not None]
        if running:
            found = [c for c in found if c.state == "running"]
            if not found:
                what = f"service {service!r}" if service else "any service"
                raise NotFoundError(f"{project} {env}: no running container for {what}")
        return found

    def health(self, project: str | None = None, env: str | None = None) -> HealthReport:
        """Every plugin's health checks for the envs in scope, and a failed check for
        each env whose compose project name collides with another stack's."""
        from opskit.health import CheckResult

        scope = self.scope(project, env)
        state = self.compose_state()
        placements = containers.status(self.projects(), scope, state.containers, state.stacks)
        checks = [
            CheckResult(p.name, e, "compose project name", False, c.message())
            for c in state.collisions
            for p, e in scope
            if c.involves(p.name, e)
        ]
        by_project: dict[str, list[str]] = {}
        projects: dict[str, Project] = {}
        for found, e in self.scope(project, env):
            by_project.setdefault(found.name, []).append(e)
            projects[found.name] = found
        for name, envs in by_project.items():
            context = HealthContext(
                project=projects[name],
                environments=tuple(envs),
                placements=tuple(p for p in placements if p.project == name),
                host=self.host,
            )
            checks.extend(self.plugins.health_checks(context))
        return HealthReport(tuple(checks))

    def engine_time(self) -> datetime:
        """The Docker engine's clock: the one that stamps healthcheck runs and starts."""
        from opskit.gate import parse_time

        return parse_time(str(self.host.docker().info().get("SystemTime", "")))

    def check_gate(self, project: str, env: str, timeout: float, setting: str) -> None:
        """Refuse, before a change, when the gate could not get fresh evidence within
        *timeout*: a container whose healthcheck runs less often than that."""
        from opskit.gate import healthcheck_interval

        docker = self.host.docker()
        for placement in self.status(project, env):
            if placement.container is None:
                continue
            interval = healthcheck_interval(docker.inspect_container(placement.container.id))
            if interval is not None and interval > timeout:
                raise _too_slow(project, env, placement.service, interval, timeout, setting)

    def wait_healthy(
        self,
        project: str,
        env: str,
        timeout: float,
        *,
        since: datetime | None = None,
        containers_only: bool = False,
        setting: str = "health.timeout",
        progress: IO[str] | None = None,
    ) -> None:
        """The health gate: wait until the env shows evidence, newer than the change made
        at *since* (the engine's clock; default now), that it is healthy: each container
        as :func:`opskit.gate.judge` says, and (unless *containers_only*) every plugin
        check and HTTP probe, run after the change.

        Raises :class:`OpskitError` at once when a fresh healthcheck fails or no fresh
        evidence can arrive within *timeout* seconds, and when *timeout* passes; the
        message names *setting*, the descriptor key that sets the timeout.
        """
        from docker.errors import NotFound

        from opskit.gate import healthcheck_interval, judge

        since = since if since is not None else self.engine_time()
        deadline = time.monotonic() + timeout
        docker = self.host.docker()
        steady: dict[str, tuple[tuple[str, int], float]] = {}
        while True:
            placements = self.status(project, env)
            failing = []
            for placement in placements:
                if placement.container is None:
                    failing.append(f"{placement.service}: no container")
                    continue
                try:
                    inspected = docker.inspect_container(placement.container.id)
                except NotFound:  # removed between the listing and now
                    failing.append(f"{placement.service}: container gone")
                    continue
                interval = healthcheck_interval(inspected)
                if interval is not None and interval > timeout:
                    raise _too_slow(project, env, placement.service, interval, timeout, setting)
                state = inspected.get("State") or {}
                mark = (str(state.get("StartedAt")), int(state.get("RestartCount") or 0))
                seen = steady.get(placement.container.id)
                if seen is None or seen[0] != mark:
                    steady[placement.container.id] = seen = (mark, time.monotonic())
                verdict = judge(placement.service, inspected, since, time.monotonic() - seen[1])
                if verdict.failed:
                    raise OpskitError(verdict.detail)
                if not verdict.ok:
                    failing.append(verdict.detail)
            if not placements:
                failing.append("no containers")
            if not failing and not containers_only:
                report = self.health(project, env)
                failing = [f"{c.check}: {c.detail}" for c in report.checks if not c.ok]
            if not failing:
                return
            if time.monotonic() > deadline:
                raise OpskitError(
                    f"not healthy after {timeout:g} s ({'; '.join(failing)}); "
                    f"raise {setting} in project.yaml if it needs longer"
                )
            time.sleep(HEALTH_POLL)

    def disk(self) -> DiskReport:
        """Sizes of the root, the project folders and backup folders, and of Docker's data."""
        paths = [self.root]
        for project in self.projects():
            paths.append(project.folder)
            if project.backup is not None:
                paths.append(project.backup.dir)
        return DiskReport(tuple(folder_usage(self.host, paths)), docker_usage(self.host))

    # -- lifecycle -------------------------------------------------------------

    def compose_commands(
        self, project: str, env: str, action: str, service: str | None = None, volumes: bool = False
    ) -> list[compose.ComposeCommand]:
        """The compose commands a lifecycle action runs, without running them.

        Refuses an env whose compose project name collides with another stack's.
        """
        found = self.project(project)
        found.check_env(env)
        args = list(LIFECYCLE[action])
        if action == "destroy" and volumes:
            args.append("--volumes")
        if action in ("destroy", "build") and service is not None:
            raise NotFoundError(f"{action} acts on a whole environment, not on one service")
        state = self.refuse_collisions(project, [env])
        return compose.env_commands(self.host, found, env, args, service, stacks=state.stacks)

    def lifecycle(
        self,
        project: str,
        env: str,
        action: str,
        service: str | None = None,
        *,
        volumes: bool = False,
        dry_run: bool = False,
        progress: IO[str] | None = None,
    ) -> list[compose.ComposeCommand]:
        """Run ``start``, ``stop``, ``restart``, ``build`` or ``destroy`` for one env.

        Compose's own output goes to *progress* as it comes (the CLI passes stderr).
        """
        commands = self.compose_commands(project, env, action, service, volumes)
        if action == "stop":
            commands.reverse()  # extra stacks usually depend on the main one
        if not dry_run:
            for command in commands:
                self._run_streamed(list(command.argv), command.cwd, progress)
        return commands

    def _run_streamed(self, argv: list[str], cwd: str, progress: IO[str] | None) -> None:
        process = self.host.popen(argv, cwd=cwd)
        tail: deque[str] = deque(maxlen=20)
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            tail.append(line)
            if progress is not None:
                progress.write(line)
                progress.flush()
        returncode = process.wait()
        if returncode != 0:
            raise CommandFailed(argv, returncode, "".join(tail), self.host.name)

    def start(self, project: str, env: str, service: str | None = None) -> None:
        self.lifecycle(project, env, "start", service)

    def stop(self, project: str, env: str, service: str | None = None) -> None:
        self.lifecycle(project, env, "stop", service)

    def restart(self, project: str, env: str, service: str | None = None) -> None:
        self.lifecycle(project, env, "restart", service)

    def build(self, project: str, env: str) -> None:
        self.lifecycle(project, env, "build")

    def destroy(self, project: str, env: str, volumes: bool = False) -> None:
        self.lifecycle(project, env, "destroy", volumes=volumes)

    # -- delegates -------------------------------------------------------------

    def delegates(self, project: Project, command: str) -> bool:
        """Whether the project hands *command* to its own CLI (``delegate:``)."""
        return project.delegate is not None and command in project.delegate.commands

    def run_delegate(
        self, project: Project, command: str, env: str | None, flags: Sequence[str]
    ) -> int:
        """Run the project's own CLI as docs/cli-contract.md says; return its exit code."""
        assert project.delegate is not None
        cli = project.resolve_path(project.delegate.cli, env or "")
        variables = [
            f"OPSKIT_PROJECT={project.name}",
            f"OPSKIT_ENV={env or ''}",
            f"OPSKIT_ROOT={self.root}",
        ]
        argv = ["env", *variables, cli, command, project.name, *([env] if env else []), *flags]
        return self.host.call(argv, cwd=project.folder)

    # -- backups ---------------------------------------------------------------

    def backup_engine(self, progress: IO[str] | None = None, meter: Meter | None = None) -> Engine:
        from opskit.backups import Engine

        return Engine(self, progress=progress, meter=meter)

    def backup(
        self,
        project: str | None = None,
        env: str | None = None,
        *,
        progress: IO[str] | None = None,
        meter: Meter | None = None,
    ) -> list[Archive]:
        """Back up one env, a project's envs, or (no project) every project with a backup section.

        Returns the archives written, each complete and on disk.
        """
        engine = self.backup_engine(progress, meter)
        scope = self.scope(project, env)
        if project is None:
            scope = [
                (p, e) for p, e in scope if p.backup is not None and not self.delegates(p, "backup")
            ]
        return [engine.backup(p, e) for p, e in scope]

    def backups(self, project: str | None = None, env: str | None = None) -> list[Archive]:
        """The complete archives in scope, newest first."""
        engine = self.backup_engine()
        found = [a for p, e in self.scope(project, env) for a in engine.archives(p, e)]
        return sorted(found, key=lambda a: a.created, reverse=True)

    def newest_backups(
        self, project: str | None = None, env: str | None = None
    ) -> list[tuple[str, str, Archive | None]]:
        """The newest archive of each env in scope that has a backup section (None: no archive)."""
        engine = self.backup_engine()
        newest = []
        for found, e in self.scope(project, env):
            if found.backup is not None:
                archives = engine.archives(found, e)
                newest.append((found.name, e, archives[0] if archives else None))
        return newest

    def verify(
        self, project: str | None = None, env: str | None = None, name: str | None = None
    ) -> list[tuple[Archive, list[Fault]]]:
        """Verify archives (all in scope, or one by name); each result is recorded in the archive."""
        engine = self.backup_engine()
        if name is not None:
            if project is None or env is None:
                raise NotFoundError("--name needs PROJECT and ENV")
            found = self.project(project)
            archives = [engine.find(found, found.check_env(env), name)]
        else:
            archives = self.backups(project, env)
        return [(archive, engine.verify(archive)) for archive in archives]

    def prune(
        self, project: str | None = None, env: str | None = None, *, dry_run: bool = False
    ) -> list[tuple[str, str, Decision]]:
        """Apply each env's retention rules; with *dry_run* only decide."""
        engine = self.backup_engine()
        scope = [(p, e) for p, e in self.scope(project, env) if p.backup is not None]
        return [(p.name, e, engine.prune(p, e, dry_run)) for p, e in scope]

    def restore(
        self,
        project: str,
        env: str,
        name: str | None = None,
        *,
        safety: bool = True,
        progress: IO[str] | None = None,
        meter: Meter | None = None,
    ) -> tuple[Archive, Archive | None]:
        """Restore an archive (the newest when *name* is None) into one env.

        Returns the archive restored and the safety archive taken before.
        """
        from opskit.audit import audited

        found = self.project(project)
        found.check_env(env)
        self.refuse_collisions(project, [env])
        engine = self.backup_engine(progress, meter)
        archive = engine.find(found, env, name)
        timeout = found.gate_timeout("restore")
        self.check_gate(project, env, timeout, found.gate_setting("restore"))
        with audited(self.host, found, "restore", [env]) as audit:
            audit.details["archive"] = archive.name
            safety_archive = engine.restore(
                found, env, archive, safety=safety, health_timeout=timeout
            )
            audit.details["safety_backup"] = safety_archive.name if safety_archive else None
        return archive, safety_archive

    # -- moving between environments --------------------------------------------

    def sync(
        self,
        project: str,
        source: str,
        target: str,
        *,
        dry_run: bool = False,
        progress: IO[str] | None = None,
        before_changes: Callable[[], None] | None = None,
    ) -> SyncReport:
        """Copy the data of env *source* into env *target* (a direction ``sync.pairs``
        allows): back up the target, stream databases through the ``sync.replace``
        rewrite, mirror folders and volumes, start the target and wait for health.

        With *dry_run*, report tables, rows, replacements and files; change nothing.
        *before_changes* runs after every check and before the first change.
        """
        from opskit import sync
        from opskit.audit import audited

        found = self.project(project)
        if dry_run:
            return sync.run(self, found, source, target, dry_run=True, progress=progress)
        sync.check_direction(found, source, target)  # refused before anything is read
        sync.replacements(found, source, target)
        self.refuse_collisions(project, [target])
        self.check_gate(project, target, found.gate_timeout("sync"), found.gate_setting("sync"))
        with audited(self.host, found, "sync", [source, target], begun=False) as audit:

            def begin() -> None:
                if before_changes is not None:
                    before_changes()
                audit.begin()

            return sync.run(
                self,
                found,
                source,
                target,
                progress=progress,
                before_changes=begin,
                details=audit.details,
            )

    def promote(
        self,
        project: str,
        source: str,
        target: str,
        *,
        dry_run: bool = False,
        progress: IO[str] | None = None,
        before_changes: Callable[[PromoteReport], None] | None = None,
    ) -> PromoteReport:
        """Promote code one step (``promote.type`` git or rsync): preview, move, rebuild
        when needed, wait until healthy and stable; roll back and raise when it is not.

        ``type: script`` runs through :meth:`promote_script` instead.
        """
        from opskit import promote
        from opskit.audit import audited

        found = self.project(project)
        promote.check_step(found, source, target)
        if dry_run:
            return promote.run(self, found, source, target, dry_run=True, progress=progress)
        self.refuse_collisions(project, [target])
        setting = found.gate_setting("promote")
        self.check_gate(project, target, found.gate_timeout("promote"), setting)
        self.check_gate(project, target, found.gate_timeout("sync"), found.gate_setting("sync"))
        with audited(self.host, found, "promote", [source, target], begun=False) as audit:

            def begin(report: PromoteReport) -> None:
                if before_changes is not None:
                    before_changes(report)
                audit.begin()

            return promote.run(
                self,
                found,
                source,
                target,
                progress=progress,
                before_changes=begin,
                details=audit.details,
            )

    def promote_script(
        self, project: str, source: str, target: str, *, dry_run: bool = False
    ) -> int:
        """Run the descriptor's promote script with ``--from``, ``--to`` [``--dry-run``]
        in the project folder; return its exit code."""
        from opskit import promote
        from opskit.audit import audited

        found = self.project(project)
        promote.check_step(found, source, target)
        assert found.promote is not None and found.promote.script is not None
        script = found.resolve_path(found.promote.script, target)
        argv = [script, "--from", source, "--to", target, *(["--dry-run"] if dry_run else [])]
        if dry_run:
            return self.host.call(argv, cwd=found.folder)
        with audited(self.host, found, "promote", [source, target]) as audit:
            code = self.host.call(argv, cwd=found.folder)
            audit.details["result"] = "ok" if code == 0 else f"failed (exit {code})"
        return code

    def rebuild(
        self,
        project: str,
        env: str,
        *,
        dry_run: bool = False,
        progress: IO[str] | None = None,
        meter: Meter | None = None,
    ) -> RebuildPlan:
        """Disaster recovery: build and start the env's stacks, wait until every container
        is healthy and stable, then restore the newest verified archive.

        With *dry_run*, return the plan (commands and archive) and change nothing.
        """
        from opskit.audit import audited
        from opskit.output import progress as say

        found = self.project(project)
        found.check_env(env)
        self.refuse_collisions(project, [env])
        engine = self.backup_engine(progress, meter)
        archives = engine.archives(found, env)
        candidates = [a for a in archives if a.verified_state != "FAILED"]
        if not candidates:
            raise NotFoundError(
                f"{project} {env}: no archive to restore (none, or all failed verify)"
            )
        commands = [
            *self.compose_commands(project, env, "build"),
            *self.compose_commands(project, env, "start"),
        ]
        timeout = found.gate_timeout("rebuild")
        plan = RebuildPlan(
            project, env, tuple(" ".join(c.argv) for c in commands), candidates[0].name
        )
        if dry_run:
            return plan

        with audited(self.host, found, "rebuild", [env]) as audit:
            since = self.engine_time()
            say(progress, f"phase 1/4: building images of {project} {env}")
            self.lifecycle(project, env, "build", progress=progress)
            say(progress, f"phase 2/4: starting {project} {env}")
            self.lifecycle(project, env, "start", progress=progress)
            say(progress, "phase 3/4: waiting until every container is healthy and stable")
            self.wait_healthy(
                project, env, timeout, since=since, containers_only=True, progress=progress
            )
            for archive in candidates:
                say(progress, f"phase 4/4: verifying {archive.name}")
                faults = engine.verify(archive)
                if not faults:
                    break
                say(progress, f"{archive.name} is damaged; trying the next older archive")
            else:
                raise NotFoundError(
                    f"{project} {env}: every archive failed verify; nothing restored"
                )
            audit.details["archive"] = archive.name
            say(progress, f"phase 4/4: restoring {archive.name}")
            engine.restore(found, env, archive, safety=False, health_timeout=timeout, check=False)
        return attrs.evolve(plan, archive=archive.name)

    def history(self, project: str | None = None) -> list[dict[str, Any]]:
        """The audit log (sync, promote, restore, rebuild), oldest first."""
        from opskit.audit import read

        if project is not None:
            self.project(project)
        return read(self.host, self.projects(), project)

    # -- containers ------------------------------------------------------------

    def logs(
        self,
        project: str,
        env: str,
        service: str | None = None,
        *,
        follow: bool = False,
        tail: int | None = None,
        stream: IO[str] | None = None,
    ) -> int:
        """Write the logs of an env's (or one service's) containers to *stream* (stdout).

        The containers' stdout and stderr are merged, so the output pipes into grep; with
        several containers each line starts with the container's name.
        """
        targets = self.containers(project, env, service)
        if not targets:
            raise NotFoundError(f"{project} {env}: no containers")
        argv = ["docker", "logs"]
        if follow:
            argv.append("--follow")
        if tail is not None:
            argv += ["--tail", str(tail)]
        commands = [([*argv, c.name], c.name if len(targets) > 1 else "") for c in targets]
        return _multiplex(self.host, commands, stream or sys.stdout, follow)

    def exec(
        self, project: str, env: str, service: str, command: Sequence[str], *, tty: bool = False
    ) -> int:
        """Run *command* in the service's running container; return its exit code."""
        container = self.containers(project, env, service, running=True)[0]
        flags = ["-i", "-t"] if tty else ["-i"] if _stdin_is_usable() else []
        return self.host.call(["docker", "exec", *flags, container.name, *command], tty=tty)

    def shell(self, project: str, env: str, service: str) -> int:
        """An interactive shell (bash where the image has it, else sh) in the service's container."""
        pick = "command -v bash >/dev/null 2>&1 && exec bash || exec sh"
        return self.exec(project, env, service, ["sh", "-c", pick], tty=sys.stdin.isatty())


def _too_slow(
    project: str, env: str, service: str, interval: float, timeout: float, setting: str
) -> OpskitError:
    return OpskitError(
        f"{project} {env}: no fresh health evidence can arrive in time: the healthcheck of "
        f"{service} runs every {interval:g} s, longer than the gate's {timeout:g} s; "
        f"raise {setting} in project.yaml"
    )


def _stdin_is_usable() -> bool:
    try:
        sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def _multiplex(host: Host, commands: list[tuple[list[str], str]], stream: Any, follow: bool) -> int:
    """Run several log commands and write their lines prefixed with the container's name."""
    width = max(len(label) for _, label in commands)

    def prefix(label: str) -> str:
        return f"{label.ljust(width)} | " if width else ""

    lock = threading.Lock()
    codes: list[int] = []

    def pump(argv: list[str], label: str) -> None:
        process = host.popen(argv)
        for raw in iter(process.stdout.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\n")
            with lock:
                stream.write(f"{prefix(label)}{text}\n")
                stream.flush()
        codes.append(process.wait())

    if not follow:
        for argv, label in commands:
            pump(argv, label)
    else:
        threads = [threading.Thread(target=pump, args=item, daemon=True) for item in commands]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return max(codes, default=0)
