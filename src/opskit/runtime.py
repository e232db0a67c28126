"""The runtime the engines work on: a host, the plugins, and the projects under a root.

:class:`opskit.Ops` is the public facade over one :class:`Runtime`; the engines (backups,
sync, promote, rebuild) receive the runtime and never the facade. Everything that reads
or changes what runs goes through here: container resolution, compose project names and
collisions, lifecycle through compose, the health gate, logs and exec.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

import attrs

from opskit import compose, containers
from opskit.audit import AuditLog
from opskit.containers import Container
from opskit.descriptor import SERVICE_RE, Project, load_projects
from opskit.errors import CommandFailed, NotFoundError, OpskitError
from opskit.health import HealthContext, HealthReport
from opskit.host import output_lines
from opskit.jobs import EventBus
from opskit.notify import Notifier
from opskit.output import warning

if TYPE_CHECKING:
    from opskit.backups import Engine
    from opskit.disk import DiskReport
    from opskit.host import Host
    from opskit.plugins import Plugins
    from opskit.settings import Settings

from opskit.contracts import Meter as Meter  # re-exported

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
class ComposeState:
    """What runs, and under which compose project name each stack of the root runs."""

    containers: tuple[containers.Container, ...]
    stacks: tuple[compose.StackIdentity, ...]
    collisions: tuple[compose.Collision, ...]


def check_service(service: str | None) -> None:
    """Refuse what cannot be a service name: compose would read ``-t0`` as an option
    and act on every service."""
    if service is not None and not SERVICE_RE.match(service):
        raise NotFoundError(f"{service!r} is not a service name")


class Runtime:
    """One root on one host, with its plugins: what every engine works on."""

    def __init__(self, root: str, host: Host, plugins: Plugins) -> None:
        self.root = root
        self.host = host
        self.plugins = plugins
        self.events = EventBus(plugins)
        self.events.subscribe(AuditLog(host, self.projects))
        self.events.subscribe(Notifier(self))
        self._projects: list[Project] | None = None
        self._settings: Settings | None = None
        self.scheduled = False  # the jobs run from a timer (see opskit.notify)

    def settings(self) -> Settings:
        """The root's server-wide settings (``opskit.yaml``; the defaults without one)."""
        if self._settings is None:
            from opskit.settings import load_settings

            self._settings = load_settings(self.host, self.root)
        return self._settings

    def check_settings(self) -> None:
        """Load and validate what a change depends on, ``opskit.yaml`` and every
        descriptor, before the change begins: a fault refuses the command with nothing
        changed (one ``[error] file:line: field: …`` line), instead of failing halfway, at
        the health gate or in the rollback. Every command that changes something calls it
        first."""
        self.projects()
        self.settings()

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
                    warning(
                        f"project {project.name}: plugin {project.plugin!r} is not installed; "
                        f"handled by {handler!r}"
                    )
                projects.append(attrs.evolve(project, handler=handler))
            self._projects = projects
        return self._projects

    def reload(self) -> None:
        """Read the descriptors again on next use (a long-running server, after an edit)."""
        self._projects = None

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

    def running_container(self, project: str, env: str, service: str) -> Container:
        """The running container of a service; raises :class:`NotFoundError` when none runs."""
        return self.containers(project, env, service, running=True)[0]

    def health(
        self, project: str | None = None, env: str | None = None, state: ComposeState | None = None
    ) -> HealthReport:
        """Every plugin's health checks for the envs in scope, and a failed check for
        each env whose compose project name collides with another stack's. *state* is a
        :meth:`compose_state` the caller has just taken (default: a new one)."""
        from opskit.health import CheckResult

        scope = self.scope(project, env)
        state = state or self.compose_state()
        placements = containers.managed(
            containers.status(self.projects(), scope, state.containers, state.stacks)
        )
        checks = [
            CheckResult(p.name, e, "compose project name", False, c.message())
            for c in state.collisions
            for p, e in scope
            if c.involves(p.name, e)
        ]
        by_project: dict[str, list[str]] = {}
        projects: dict[str, Project] = {}
        for found, e in scope:
            by_project.setdefault(found.name, []).append(e)
            projects[found.name] = found
        for name, envs in by_project.items():
            context = HealthContext(
                project=projects[name],
                environments=tuple(envs),
                placements=tuple(p for p in placements if p.project == name),
                host=self.host,
                disk_max_used=self.settings().disk_max_used_percent / 100,
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
        for placement in containers.managed(self.status(project, env)):
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
            state = self.compose_state()  # one per poll, for the containers and the checks
            scope = self.scope(project, env)
            placements = containers.managed(
                containers.status(self.projects(), scope, state.containers, state.stacks)
            )
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
                docker_state = inspected.get("State") or {}
                mark = (
                    str(docker_state.get("StartedAt")),
                    int(docker_state.get("RestartCount") or 0),
                )
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
                report = self.health(project, env, state)
                failing = [f"{c.check}: {c.detail}" for c in report.checks if not c.ok]
            if not failing:
                return
            if time.monotonic() > deadline:
                raise OpskitError(
                    f"not healthy after {timeout:g} s ({'; '.join(failing)}); "
                    f"raise {setting} in project.yaml if it needs longer"
                )
            time.sleep(HEALTH_POLL)

    # -- lifecycle -------------------------------------------------------------

    def compose_commands(
        self, project: str, env: str, action: str, service: str | None = None, volumes: bool = False
    ) -> list[compose.ComposeCommand]:
        """The compose commands a lifecycle action runs, without running them.

        Refuses an env whose compose project name collides with another stack's.
        """
        found = self.project(project)
        found.check_env(env)
        check_service(service)
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
        announce: Callable[[], None] | None = None,
    ) -> list[compose.ComposeCommand]:
        """Run ``start``, ``stop``, ``restart``, ``build`` or ``destroy`` for one env.

        Compose's own output goes to *progress* as it comes (the CLI passes stderr).
        *announce* runs once the commands are decided (a collision or a bad service name
        is refused before it) and before the first one runs.
        """
        self.check_settings()
        commands = self.compose_commands(project, env, action, service, volumes)
        if action == "stop":
            commands.reverse()  # extra stacks usually depend on the main one
        if not dry_run:
            if announce is not None:
                announce()
            for command in commands:
                self._run_streamed(list(command.argv), command.cwd, progress)
        return commands

    def _run_streamed(self, argv: list[str], cwd: str, progress: IO[str] | None) -> None:
        process = self.host.popen(argv, cwd=cwd)
        tail: deque[str] = deque(maxlen=20)
        for line in output_lines(process):
            tail.append(line)
            if progress is not None:
                progress.write(line)
                progress.flush()
        returncode = process.wait()
        if returncode != 0:
            raise CommandFailed(argv, returncode, "".join(tail), self.host.name)

    def disk(self) -> DiskReport:
        """Sizes of the root, the project folders and backup folders, and of Docker's data."""
        from opskit.disk import DiskReport, docker_usage, folder_usage

        paths = [self.root]
        for project in self.projects():
            paths.append(project.folder)
            if project.backup is not None:
                paths.append(project.backup.dir)
        return DiskReport(tuple(folder_usage(self.host, paths)), docker_usage(self.host))

    def delegates(self, project: Project, command: str) -> bool:
        """Whether the project hands *command* to its own CLI (``delegate:``)."""
        return project.delegate is not None and command in project.delegate.commands

    def bring_up(
        self,
        project: str,
        env: str,
        timeout: float,
        *,
        since: datetime,
        build: str | None = None,
        containers_only: bool = False,
        setting: str = "health.timeout",
        notes: tuple[str, str] | None = None,
        progress: IO[str] | None = None,
    ) -> None:
        """Bring an env up after a change made at *since*: build its images (*build* is
        the line that says why), ``up -d`` every stack, then the health gate
        (:meth:`wait_healthy`). *notes* replace the lines announcing the start and the wait.
        """
        from opskit.output import progress as say

        starting, waiting = notes or (
            f"starting {project} {env}",
            f"waiting until {project} {env} is healthy and stable",
        )
        if build is not None:
            say(progress, build)
            self.lifecycle(project, env, "build", progress=progress)
        say(progress, starting)
        self.lifecycle(project, env, "start", progress=progress)
        say(progress, waiting)
        self.wait_healthy(
            project,
            env,
            timeout,
            since=since,
            containers_only=containers_only,
            setting=setting,
            progress=progress,
        )

    def backup_engine(self, progress: IO[str] | None = None) -> Engine:
        from opskit.backups import Engine

        return Engine(self, progress=progress)

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
        container = self.running_container(project, env, service)
        flags = ["-i", "-t"] if tty else ["-i"] if _stdin_is_usable() else []
        return self.host.call(["docker", "exec", *flags, container.name, *command], tty=tty)

    def shell(self, project: str, env: str, service: str) -> int:
        """An interactive shell (bash where the image has it, else sh) in the service's container."""
        return self.exec(project, env, service, ["sh", "-c", SHELL], tty=sys.stdin.isatty())


SHELL = "command -v bash >/dev/null 2>&1 && exec bash || exec sh"  # what "a shell" runs


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
        for line in output_lines(process):
            text = line.rstrip("\n")
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
