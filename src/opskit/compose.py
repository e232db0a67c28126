"""The one place that builds ``docker compose`` command lines, and that decides
under which compose project name each stack runs (:func:`identify_stack`)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import yaml

from opskit.descriptor import COMPOSE_FILE_CANDIDATES, COMPOSE_NAME_RE
from opskit.errors import HostError, NotFoundError, OpskitError

if TYPE_CHECKING:
    from opskit.containers import Container
    from opskit.descriptor import Project, Stack
    from opskit.host import Host


# The labels compose puts on the containers it starts.
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
COMPOSE_WORKING_DIR = "com.docker.compose.project.working_dir"
COMPOSE_CONFIG_FILES = "com.docker.compose.project.config_files"


def default_compose_project_name(directory: str) -> str:
    """The project name compose derives from a folder when nothing else names it."""
    return re.sub(r"[^a-z0-9_-]", "", posixpath.basename(directory.rstrip("/")).lower())


@attrs.frozen
class ComposeCommand:
    """A compose command line and the folder it runs in."""

    argv: tuple[str, ...]
    cwd: str


def compose_program(host: Host) -> list[str]:
    """``docker compose`` (v2) when the host has it, else ``docker-compose`` (v1)."""
    if "compose" not in host.cache:
        for program in (["docker", "compose"], ["docker-compose"]):
            try:
                works = host.run([*program, "version"], check=False).returncode == 0
            except HostError:  # the program is not installed
                works = False
            if works:
                host.cache["compose"] = program
                break
        else:
            raise HostError(f"neither 'docker compose' nor 'docker-compose' works on {host.name}")
    return list(host.cache["compose"])


# Where a compose project's name comes from, in the order they are tried.
NAME_SOURCES = ("descriptor", "adopted", "env file", "compose file", "folder")


@attrs.frozen
class StackIdentity:
    """One compose stack of one env, and the compose project name opskit runs it under.

    ``index`` is 0 for the main stack, then 1, 2 … for ``compose.extra``. ``files`` are the
    absolute compose files (empty when none was found); ``source`` says where ``name``
    came from (one of :data:`NAME_SOURCES`). An extra stack whose folder an env lacks
    (Seafile only in prod) is not ``present``.
    """

    project: str
    env: str
    index: int
    dir: str
    files: tuple[str, ...]
    env_file: str | None
    name: str
    source: str
    present: bool = True

    def label(self) -> str:
        """How messages name the stack: ``shop prod``, or with its folder for extra stacks."""
        return f"{self.project} {self.env}" + (f" ({self.dir})" if self.index else "")

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Collision:
    """Stacks that resolve to one compose project name, and the working folders of
    containers elsewhere (not under the root) that run under that name."""

    name: str
    stacks: tuple[StackIdentity, ...]
    elsewhere: tuple[str, ...] = ()

    def involves(self, project: str, env: str) -> bool:
        return any(s.project == project and s.env == env for s in self.stacks)

    def message(self) -> str:
        users = [f"{s.label()} ({s.dir})" if not s.index else s.label() for s in self.stacks]
        users += [f"containers from {folder}" for folder in self.elsewhere]
        return (
            f"compose project name {self.name!r} is used by both {' and '.join(users)}: "
            "set compose.project_name in project.yaml to keep them apart"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stacks": [s.as_dict() for s in self.stacks],
            "elsewhere": list(self.elsewhere),
            "message": self.message(),
        }


def _dotenv_value(text: str, key: str) -> str | None:
    """The value of *key* in a compose env file (``KEY=value``, optional quotes)."""
    value = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, rest = line.partition("=")
        if sep and name.strip() == key:
            rest = rest.strip()
            if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "'\"":
                rest = rest[1:-1]
            value = rest
    return value


def _top_level_name(text: str) -> str | None:
    """The top-level ``name:`` of a compose file, when it is a plain valid name."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None  # compose itself will say what is wrong with it
    name = document.get("name") if isinstance(document, dict) else None
    return name if isinstance(name, str) and COMPOSE_NAME_RE.match(name) else None


def _candidate_paths(project: Project, env: str, stack: Stack, main: bool) -> list[str]:
    directory = project.resolve_path(stack.dir, env)
    paths = [posixpath.join(directory, project.expand(name, env)) for name in stack.files]
    if not stack.files:
        paths += [f"{directory}/{name}" for name in COMPOSE_FILE_CANDIDATES]
    if main and project.compose.env_file:
        paths.append(posixpath.join(directory, project.expand(project.compose.env_file, env)))
    paths += [f"{directory}/.env.{env}", f"{directory}/.env"]
    return paths


def _config_files(container: Container) -> set[str] | None:
    labels = container.labels
    listed = labels.get(COMPOSE_CONFIG_FILES)
    if not listed:
        return None
    base = labels.get(COMPOSE_WORKING_DIR, "")
    return {posixpath.normpath(posixpath.join(base, f)) for f in listed.split(",") if f}


def _adopted(directory: str, files: tuple[str, ...], running: Sequence[Container]) -> str | None:
    """The compose project name of the containers compose started from this stack's
    folder and files, when they all agree; None when there are none or they disagree."""
    names = set()
    for container in running:
        labels = container.labels
        if posixpath.normpath(labels.get(COMPOSE_WORKING_DIR) or "/-") != directory:
            continue
        listed = _config_files(container)
        if listed is not None and files and listed != set(files):
            continue
        if labels.get(COMPOSE_PROJECT):
            names.add(labels[COMPOSE_PROJECT])
    return names.pop() if len(names) == 1 else None


def identify_stack(
    project: Project,
    env: str,
    index: int,
    stack: Stack,
    existing: Mapping[str, str],
    running: Sequence[Container],
) -> StackIdentity:
    """Decide one stack's compose project name; the one rule, in this order: the
    descriptor's ``project_name``; else the name of the stack's existing containers when
    they agree (what runs is adopted, never renamed); else what compose itself would use
    (``COMPOSE_PROJECT_NAME`` in the env file, then the compose file's top-level
    ``name:``); else the folder's name.

    *existing* maps paths to the text of those files that exist (see :func:`identities`).
    """
    main = index == 0
    directory = project.resolve_path(stack.dir, env)
    if stack.files:
        files = tuple(posixpath.join(directory, project.expand(n, env)) for n in stack.files)
        present = main or any(f in existing for f in files)
    else:
        found = [
            f"{directory}/{n}" for n in COMPOSE_FILE_CANDIDATES if f"{directory}/{n}" in existing
        ]
        files = tuple(found[:1])
        present = main or bool(found)
    if main and project.compose.env_file:
        env_file: str | None = posixpath.join(
            directory, project.expand(project.compose.env_file, env)
        )
    else:
        env_file = next(
            (p for p in (f"{directory}/.env.{env}", f"{directory}/.env") if p in existing), None
        )

    def identity(name: str, source: str) -> StackIdentity:
        return StackIdentity(
            project.name, env, index, directory, files, env_file, name, source, present
        )

    if stack.project_name is not None:
        return identity(project.expand(stack.project_name, env), "descriptor")
    adopted = _adopted(directory, files, running)
    if adopted is not None:
        return identity(adopted, "adopted")
    from_env = _dotenv_value(existing.get(env_file or "", ""), "COMPOSE_PROJECT_NAME")
    if from_env and COMPOSE_NAME_RE.match(from_env):
        return identity(from_env, "env file")
    for path in reversed(files):
        named = _top_level_name(existing.get(path, ""))
        if named:
            return identity(named, "compose file")
    return identity(default_compose_project_name(directory), "folder")


def identities(
    host: Host | None, projects: Sequence[Project], running: Sequence[Container]
) -> list[StackIdentity]:
    """The identity of every stack of every env of *projects*: one round trip to the
    host for the compose and env files of all of them (none without a *host*)."""
    wanted = [
        path
        for project in projects
        for env in project.environments
        for index, stack in enumerate(project.stacks(env))
        for path in _candidate_paths(project, env, stack, index == 0)
    ]
    existing = host.read_existing(list(dict.fromkeys(wanted))) if host is not None else {}
    return [
        identify_stack(project, env, index, stack, existing, running)
        for project in projects
        for env in project.environments
        for index, stack in enumerate(project.stacks(env))
    ]


def collisions(found: Sequence[StackIdentity], running: Sequence[Container]) -> list[Collision]:
    """Compose project names shared by two stacks (present, with a compose file), or by a
    stack and containers that compose started from a folder that is none of that name's
    stacks."""
    by_name: dict[str, list[StackIdentity]] = {}
    for identity in found:
        if identity.present and identity.files:
            by_name.setdefault(identity.name, []).append(identity)
    result = []
    for name, stacks in sorted(by_name.items()):
        folders = {s.dir for s in stacks}
        elsewhere = sorted(
            {
                posixpath.normpath(c.labels[COMPOSE_WORKING_DIR])
                for c in running
                if c.labels.get(COMPOSE_PROJECT) == name
                and c.labels.get(COMPOSE_WORKING_DIR)
                and posixpath.normpath(c.labels[COMPOSE_WORKING_DIR]) not in folders
            }
        )
        if len(stacks) > 1 or elsewhere:
            result.append(Collision(name, tuple(stacks), tuple(elsewhere)))
    return result


def refuse_collisions(found: Sequence[Collision], project: str, envs: Sequence[str]) -> None:
    """Raise :class:`OpskitError` when a stack of *project* in one of *envs* collides."""
    for collision in found:
        if any(collision.involves(project, env) for env in envs):
            raise OpskitError(collision.message())


def stack_command(
    host: Host, identity: StackIdentity, project: Project, args: list[str]
) -> ComposeCommand:
    """The compose command running *args* for one stack, under its compose project name."""
    if not identity.files:
        raise NotFoundError(f"{project.name} {identity.env}: no compose file in {identity.dir}")
    missing = [path for path in identity.files if not host.exists(path)]
    if missing:
        raise NotFoundError(
            f"{project.name} {identity.env}: compose file {missing[0]} does not exist"
        )
    argv = [*compose_program(host), "--project-name", identity.name]
    for path in identity.files:
        argv += ["-f", path]
    if identity.env_file:
        if not host.exists(identity.env_file):
            raise NotFoundError(
                f"{project.name} {identity.env}: env file {identity.env_file} does not exist"
            )
        argv += ["--env-file", identity.env_file]
    if project.compose.profile:
        argv += ["--profile", project.expand(project.compose.profile, identity.env)]
    return ComposeCommand(tuple(argv + args), identity.dir)


def env_commands(
    host: Host,
    project: Project,
    env: str,
    args: list[str],
    service: str | None = None,
    *,
    stacks: Sequence[StackIdentity] | None = None,
) -> list[ComposeCommand]:
    """The compose commands running *args* for every stack of an env.

    *stacks* are the identities of :func:`identities` (computed here, without adopting
    names from running containers, when not given). With *service*, only the stack that
    defines it, and the service name is appended.
    """
    if stacks is None:
        stacks = identities(host, [project], ())
    mine = sorted(
        (s for s in stacks if s.project == project.name and s.env == env and s.present),
        key=lambda s: s.index,
    )
    commands = [stack_command(host, identity, project, args) for identity in mine]
    if service is None:
        return commands
    if len(commands) > 1:
        for command in commands:
            listing = (*command.argv[: -len(args) or None], "config", "--services")
            result = host.run(list(listing), cwd=command.cwd, check=False)
            if service in result.text.split():
                return [attrs.evolve(command, argv=(*command.argv, service))]
        raise NotFoundError(f"{project.name} {env}: no compose stack defines a service {service!r}")
    return [attrs.evolve(commands[0], argv=(*commands[0].argv, service))]
