"""The one place that builds ``docker compose`` command lines."""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

import attrs

from opskit.descriptor import COMPOSE_FILE_CANDIDATES
from opskit.errors import HostError, NotFoundError

if TYPE_CHECKING:
    from opskit.descriptor import Project, Stack
    from opskit.host import Host


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


def _first_existing(host: Host, directory: str, names: tuple[str, ...]) -> str | None:
    for name in names:
        path = f"{directory}/{name}"
        if host.exists(path):
            return path
    return None


def stack_command(
    host: Host, project: Project, env: str, stack: Stack, args: list[str], main: bool
) -> ComposeCommand:
    """The compose command running *args* for one stack of one env."""
    directory = project.resolve_path(stack.dir, env)
    if stack.files:
        files = [posixpath.join(directory, project.expand(name, env)) for name in stack.files]
        missing = [path for path in files if not host.exists(path)]
        if missing:
            raise NotFoundError(f"{project.name} {env}: compose file {missing[0]} does not exist")
    else:
        found = _first_existing(host, directory, COMPOSE_FILE_CANDIDATES)
        if found is None:
            raise NotFoundError(f"{project.name} {env}: no compose file in {directory}")
        files = [found]
    argv = compose_program(host)
    for path in files:
        argv += ["-f", path]
    if main and project.compose.env_file:
        env_file = posixpath.join(directory, project.expand(project.compose.env_file, env))
        if not host.exists(env_file):
            raise NotFoundError(f"{project.name} {env}: env file {env_file} does not exist")
    else:
        env_file = _first_existing(host, directory, (f".env.{env}", ".env")) or ""
    if env_file:
        argv += ["--env-file", env_file]
    if project.compose.profile:
        argv += ["--profile", project.expand(project.compose.profile, env)]
    return ComposeCommand(tuple(argv + args), directory)


def env_commands(
    host: Host, project: Project, env: str, args: list[str], service: str | None = None
) -> list[ComposeCommand]:
    """The compose commands running *args* for every stack of an env.

    With *service*, only the stack that defines it, and the service name is appended.
    """
    main, *extra = project.stacks(env)
    # An extra stack whose folder an env lacks (Seafile only in prod) is not part of that env.
    present = [stack for stack in extra if host.exists(project.resolve_path(stack.dir, env))]
    commands = [stack_command(host, project, env, main, args, main=True)]
    commands += [stack_command(host, project, env, stack, args, main=False) for stack in present]
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
