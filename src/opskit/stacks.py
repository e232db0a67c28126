"""The stacks of a root on its host: what runs (compose state, status, health checks),
lifecycle through compose, logs, exec and disk use.

Every method takes the :class:`~opskit.descriptor.Project` it acts on, resolved once by the
caller; the health gate that waits on these stacks is in :mod:`opskit.gate`.
"""

from __future__ import annotations

import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

import attrs

from opskit import compose, containers
from opskit.containers import Container
from opskit.descriptor import SERVICE_RE, Project
from opskit.errors import CommandFailed, NotFoundError, OpskitError
from opskit.health import HealthContext, HealthReport
from opskit.host import output_lines

if TYPE_CHECKING:
    from opskit.disk import DiskReport
    from opskit.host import Host
    from opskit.plugins import Plugins
    from opskit.runtime import Runtime

# What each lifecycle action runs through compose.
LIFECYCLE = {
    "start": ["up", "-d"],
    "stop": ["stop"],
    "restart": ["restart"],
    "build": ["build"],
    "destroy": ["down", "--remove-orphans"],
}
# ``destroy`` of an env that shares its compose project with other envs by profile: ``down``
# would remove theirs too, so only the env's own containers go (with their anonymous volumes
# when asked; named volumes no other env mounts are removed by name afterwards).
DESTROY_SHARED = ["rm", "--stop", "--force"]

SHELL = "command -v bash >/dev/null 2>&1 && exec bash || exec sh"  # what "a shell" runs


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


class Stacks:
    """The compose stacks of the projects of *registry* (a :class:`~opskit.runtime.Runtime`)
    on *host*."""

    def __init__(self, host: Host, plugins: Plugins, registry: Runtime) -> None:
        self.host = host
        self.plugins = plugins
        self.registry = registry

    # -- what runs -------------------------------------------------------------

    def compose_state(self) -> ComposeState:
        """Every container, every stack's compose project name and the collisions among
        them: one Docker API call and one read of the compose and env files."""
        found = containers.list_containers(self.host)
        stacks = compose.identities(self.host, self.registry.projects(), found)
        return ComposeState(tuple(found), tuple(stacks), tuple(compose.collisions(stacks, found)))

    def refuse_collisions(self, project: Project, envs: Sequence[str]) -> ComposeState:
        """Raise before anything changes when a stack of these envs shares its compose
        project name with another stack; else return the state for the change."""
        state = self.compose_state()
        compose.refuse_collisions(state.collisions, project.name, envs)
        return state

    def placements(
        self, scope: Sequence[tuple[Project, str]], state: ComposeState
    ) -> list[containers.Placement]:
        """The placements of the envs in *scope*, from *state*."""
        return containers.status(self.registry.projects(), scope, state.containers, state.stacks)

    def status(
        self, project: Project | None = None, env: str | None = None
    ) -> list[containers.Placement]:
        """The containers of the envs in scope, with declared services that have none."""
        return self.status_and_collisions(project, env)[0]

    def status_and_collisions(
        self, project: Project | None = None, env: str | None = None
    ) -> tuple[list[containers.Placement], list[compose.Collision]]:
        """:meth:`status`, and the compose project name collisions of the envs in scope."""
        scope = self.registry.scope(project, env)
        state = self.compose_state()
        found = [c for c in state.collisions if any(c.involves(p.name, e) for p, e in scope)]
        return self.placements(scope, state), found

    def containers(
        self, project: Project, env: str, service: str | None = None, running: bool = False
    ) -> list[containers.Container]:
        """The containers of one env (of one service), resolved like ``status`` does."""
        placements = [p for p in self.status(project, env) if p.container is not None]
        name = project.name
        if service is not None:
            placements = [p for p in placements if p.service == service]
            if not placements:
                raise NotFoundError(f"{name} {env}: no container for service {service!r}")
        found = [p.container for p in placements if p.container is not None]
        if running:
            found = [c for c in found if c.state == "running"]
            if not found:
                what = f"service {service!r}" if service else "any service"
                raise NotFoundError(f"{name} {env}: no running container for {what}")
        return found

    def running_container(self, project: Project, env: str, service: str) -> Container:
        """The running container of a service; raises :class:`NotFoundError` when none runs."""
        return self.containers(project, env, service, running=True)[0]

    def health(
        self,
        project: Project | None = None,
        env: str | None = None,
        state: ComposeState | None = None,
    ) -> HealthReport:
        """Every plugin's health checks for the envs in scope, and a failed check for
        each env whose compose project name collides with another stack's. *state* is a
        :meth:`compose_state` the caller has just taken (default: a new one)."""
        from opskit.health import CheckResult

        scope = self.registry.scope(project, env)
        state = state or self.compose_state()
        placements = containers.managed(self.placements(scope, state))
        checks = [
            CheckResult(p.name, e, "compose project name", False, c.message())
            for c in state.collisions
            for p, e in scope
            if c.involves(p.name, e)
        ]
        checks += [
            CheckResult(p.name, e, "profile services", False, compose.env_services_problem(s))
            for s in state.stacks
            for p, e in scope
            if s.project == p.name and s.env == e and s.shared and s.services is None
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
                disk_max_used=self.registry.settings().disk_max_used_percent / 100,
            )
            checks.extend(self.plugins.health_checks(context))
        return HealthReport(tuple(checks))

    def disk(self) -> DiskReport:
        """Sizes of the root, the project folders and backup folders, and of Docker's data."""
        from opskit.disk import DiskReport, docker_usage, folder_usage

        paths = [self.registry.root]
        for project in self.registry.projects():
            paths.append(project.folder)
            if project.backup is not None:
                paths.append(project.backup.dir)
        return DiskReport(tuple(folder_usage(self.host, paths)), docker_usage(self.host))

    # -- lifecycle -------------------------------------------------------------

    def compose_commands(
        self,
        project: Project,
        env: str,
        action: str,
        service: str | None = None,
        volumes: bool = False,
    ) -> list[compose.ComposeCommand]:
        """The compose commands a lifecycle action runs, without running them.

        Refuses an env whose compose project name collides with another stack's. An env
        that shares its compose project with other envs by profile acts on its own
        services only (:func:`opskit.compose.env_commands`); its ``destroy`` never runs
        ``down``.
        """
        project.check_env(env)
        check_service(service)
        if action in ("destroy", "build") and service is not None:
            raise NotFoundError(f"{action} acts on a whole environment, not on one service")
        state = self.refuse_collisions(project, [env])
        shared = [
            s
            for s in state.stacks
            if s.project == project.name and s.env == env and s.present and s.shared
        ]
        args = list(DESTROY_SHARED if action == "destroy" and shared else LIFECYCLE[action])
        if action == "destroy" and volumes:
            args.append("-v" if shared else "--volumes")
        commands = compose.env_commands(self.host, project, env, args, service, stacks=state.stacks)
        if action == "destroy" and volumes:
            for identity in shared:
                names = compose.own_volumes(self.host, project, identity, state.stacks)
                existing = [n for n in names if self._volume_exists(n)]
                if existing:
                    argv = ("docker", "volume", "rm", *existing)
                    commands.append(compose.ComposeCommand(argv, identity.dir))
        return commands

    def missing_externals(self, project: Project, env: str) -> list[tuple[str, str]]:
        """The networks and volumes the env's compose files declare external and the
        engine lacks, as ("network" or "volume", name): on a fresh server, what ``up``
        fails on until someone creates them."""
        import docker.errors

        state = self.refuse_collisions(project, [env])
        wanted: set[tuple[str, str]] = set()
        for identity in state.stacks:
            if identity.project == project.name and identity.env == env and identity.present:
                wanted.update(compose.external_resources(self.host, project, identity))
        client = self.host.docker()
        missing = []
        for kind, name in sorted(wanted):
            inspect = client.inspect_network if kind == "network" else client.inspect_volume
            try:
                inspect(name)
            except docker.errors.NotFound:
                missing.append((kind, name))
        return missing

    def create_externals(self, missing: Sequence[tuple[str, str]]) -> None:
        """Create the networks and volumes of :meth:`missing_externals`, labelled
        ``opskit.created=external`` (the engine's defaults: a bridge, a local volume)."""
        client = self.host.docker()
        labels = {"opskit.created": "external"}
        for kind, name in missing:
            if kind == "network":
                client.create_network(name, labels=labels)
            else:
                client.create_volume(name, labels=labels)

    def _volume_exists(self, name: str) -> bool:
        import docker.errors

        try:
            self.host.docker().inspect_volume(name)
        except docker.errors.NotFound:
            return False
        return True

    def lifecycle(
        self,
        project: Project,
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
        self.registry.check_settings()
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

    def bring_up(
        self,
        project: Project,
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
        (:func:`opskit.gate.wait_healthy`). *notes* replace the lines announcing the start
        and the wait.
        """
        from opskit.gate import wait_healthy
        from opskit.output import progress as say

        starting, waiting = notes or (
            f"starting {project.name} {env}",
            f"waiting until {project.name} {env} is healthy and stable",
        )
        if build is not None:
            say(progress, build)
            self.lifecycle(project, env, "build", progress=progress)
        say(progress, starting)
        self.lifecycle(project, env, "start", progress=progress)
        say(progress, waiting)
        wait_healthy(
            self,
            project,
            env,
            timeout,
            since=since,
            containers_only=containers_only,
            setting=setting,
        )

    # -- containers ------------------------------------------------------------

    def logs(
        self,
        project: Project,
        env: str,
        service: str | None = None,
        *,
        follow: bool = False,
        tail: int | None = None,
        stream: IO[str] | None = None,
        since: str | None = None,
        timestamps: bool = False,
    ) -> int:
        """Write the logs of an env's (or one service's) containers to *stream* (stdout).

        The containers' stdout and stderr are merged, so the output pipes into grep; with
        several containers each line starts with the container's name. *since*: a time
        as :func:`docker_since` reads it. With *timestamps* every line starts with its
        time, and the containers' lines come in time order (one env's log, merged).
        """
        targets = self.containers(project, env, service)
        if not targets:
            raise NotFoundError(f"{project.name} {env}: no containers")
        argv = ["docker", "logs"]
        if follow:
            argv.append("--follow")
        if tail is not None:
            argv += ["--tail", str(tail)]
        if since is not None:
            argv += ["--since", docker_since(since)]
        if timestamps:
            argv.append("--timestamps")
        commands = [([*argv, c.name], c.name if len(targets) > 1 else "") for c in targets]
        if timestamps and not follow and len(commands) > 1:
            return _merged(self.host, commands, stream or sys.stdout)
        return _multiplex(self.host, commands, stream or sys.stdout, follow)

    def exec(
        self, project: Project, env: str, service: str, command: Sequence[str], *, tty: bool = False
    ) -> int:
        """Run *command* in the service's running container; return its exit code."""
        container = self.running_container(project, env, service)
        flags = ["-i", "-t"] if tty else ["-i"] if _stdin_is_usable() else []
        return self.host.call(["docker", "exec", *flags, container.name, *command], tty=tty)

    def shell(self, project: Project, env: str, service: str) -> int:
        """An interactive shell (bash where the image has it, else sh) in the service's container."""
        return self.exec(project, env, service, ["sh", "-c", SHELL], tty=sys.stdin.isatty())


def _stdin_is_usable() -> bool:
    try:
        sys.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


SINCE = re.compile(
    r"(?P<number>\d+)(?P<unit>[smhd])\Z"
    r"|\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?\Z"
)


def docker_since(text: str) -> str:
    """``--since`` as docker reads it: ``30s``, ``10m``, ``2h``, ``3d`` (a duration back from
    now) or a date or time (``2026-12-04``, ``2026-12-04T03:30``, with a zone or UTC)."""
    found = SINCE.match(text.strip())
    if found is None:
        raise OpskitError(
            f"--since {text!r}: write a duration (30s, 10m, 2h, 3d) or a time (2026-12-04T03:30)"
        )
    if found["unit"] == "d":
        return f"{int(found['number']) * 24}h"
    return text.strip().replace(" ", "T")


def _merged(host: Host, commands: list[tuple[list[str], str]], stream: Any) -> int:
    """The lines of several ``docker logs --timestamps`` in time order, each prefixed with
    its container's name: every log is in order already, so one merge streams them."""
    import heapq

    width = max(len(label) for _, label in commands)
    processes = [(host.popen(argv), label) for argv, label in commands]

    def lines(process: Any, label: str) -> Iterator[tuple[str, str]]:
        for line in output_lines(process):
            yield line.partition(" ")[0], f"{label.ljust(width)} | {line.rstrip(chr(10))}"

    for _moment, text in heapq.merge(*(lines(p, label) for p, label in processes)):
        stream.write(text + "\n")
    stream.flush()
    codes = [process.wait() for process, _ in processes]
    return next((code for code in codes if code), 0)


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
