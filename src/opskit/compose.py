"""The one place that builds ``docker compose`` command lines, and that decides
under which compose project name each stack runs (:func:`identify_stack`)."""

from __future__ import annotations

import json
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
    (Seafile only in prod) is not ``present``. ``profile`` is the env's expanded
    ``compose.profile``.

    A stack that envs of one project share by profile (one folder, one compose project
    name, a profile of its own each: :func:`share_by_profile`) lists those other envs in
    ``shared_with``; ``services`` are then the services only this env's profile enables
    (None while unknown: no host asked, or compose failed, ``services_error`` says why).
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
    profile: str | None = None
    shared_with: tuple[str, ...] = ()
    services: tuple[str, ...] | None = None
    services_error: str = ""

    @property
    def shared(self) -> bool:
        """Whether other envs share this compose project, each by its own profile."""
        return bool(self.shared_with)

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

    profile = project.expand(project.compose.profile, env) if project.compose.profile else None

    def identity(name: str, source: str) -> StackIdentity:
        return StackIdentity(
            project.name, env, index, directory, files, env_file, name, source, present, profile
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
    found = [
        identify_stack(project, env, index, stack, existing, running)
        for project in projects
        for env in project.environments
        for index, stack in enumerate(project.stacks(env))
    ]
    return share_by_profile(found, host, existing)


def _sharing_key(identity: StackIdentity) -> tuple[str, str, str, int]:
    return (identity.project, identity.dir, identity.name, identity.index)


def share_by_profile(
    found: Sequence[StackIdentity], host: Host | None, existing: Mapping[str, str]
) -> list[StackIdentity]:
    """Mark the stacks that envs of one project share by profile: the same folder and
    compose project name, with a profile (``compose.profile``) that differs in each env.
    With a *host*, each gets the services only its env's profile enables, from compose's
    own ``--profile ENV config --services`` (services no profile or several envs' profiles
    enable belong to no env alone)."""
    groups: dict[tuple[str, str, str, int], list[StackIdentity]] = {}
    for identity in found:
        if identity.present and identity.files:
            groups.setdefault(_sharing_key(identity), []).append(identity)
    shared: dict[tuple[str, str, str, int], list[StackIdentity]] = {}
    for key, group in groups.items():
        profiles = [s.profile for s in group]
        if len(group) > 1 and all(profiles) and len(set(profiles)) == len(profiles):
            shared[key] = group
    if not shared:
        return list(found)
    listed: dict[tuple[str, tuple[str, str, str, int]], tuple[set[str] | None, str]] = {}
    for group in shared.values():
        for identity in group:
            listed[(identity.env, _sharing_key(identity))] = _profile_services(
                host, identity, existing
            )
    result = []
    for identity in found:
        sharing = shared.get(_sharing_key(identity))
        if sharing is None or identity not in sharing:
            result.append(identity)
            continue
        others = tuple(s.env for s in sharing if s.env != identity.env)
        answers = [listed[(env, _sharing_key(identity))] for env in (identity.env, *others)]
        errors = [error for listing, error in answers if listing is None]
        services = None
        if not errors:
            mine, *theirs = [listing or set() for listing, _ in answers]
            services = tuple(sorted(mine.difference(*theirs)))
        error = errors[0] if errors else ""
        result.append(
            attrs.evolve(identity, shared_with=others, services=services, services_error=error)
        )
    return result


def _profile_services(
    host: Host | None, identity: StackIdentity, existing: Mapping[str, str]
) -> tuple[set[str] | None, str]:
    """The services the env's profile enables in the stack (those of no profile too), from
    compose's own ``--profile PROFILE config``: its services whose ``profiles`` name the
    profile or are empty (compose v1 lists every service there, and ``config --services``
    ignores profiles, so the ``profiles`` key decides). None, and why, when that cannot be
    known."""
    profile = str(identity.profile)
    services, error = _profiled_config(host, identity, existing, profile)
    if services is None:
        return None, error
    return {name for name, profiles in services.items() if not profiles or profile in profiles}, ""


def service_profiles(
    host: Host | None, identity: StackIdentity, existing: Mapping[str, str]
) -> tuple[dict[str, tuple[str, ...]] | None, str]:
    """Every service of the stack and the compose profiles it carries (empty: none), from
    compose's own ``--profile '*' config`` (every profile enabled). None, and why, when
    that cannot be known."""
    return _profiled_config(host, identity, existing, "*")


def _profiled_config(
    host: Host | None, identity: StackIdentity, existing: Mapping[str, str], profile: str
) -> tuple[dict[str, tuple[str, ...]] | None, str]:
    """The services of ``compose --profile PROFILE config`` and each one's ``profiles``.
    Cached on the host per compose and env file contents."""
    if host is None:
        return None, "no host was asked"
    argv = [*compose_program(host), "--project-name", identity.name]
    for path in identity.files:
        argv += ["-f", path]
    if identity.env_file and identity.env_file in existing:
        argv += ["--env-file", identity.env_file]
    argv += ["--profile", profile, "config"]
    texts = [existing.get(path) or "" for path in (*identity.files, identity.env_file or "")]
    key = "profile services " + json.dumps([argv, texts])
    if key not in host.cache:
        result = host.run(argv, cwd=identity.dir, check=False)
        if result.returncode == 0:
            host.cache[key] = _service_profiles(result.text)
        else:
            stderr = result.stderr.decode("utf-8", "replace")
            why = " ".join(stderr.split())[-300:] or f"exit {result.returncode}"
            host.cache[key] = (None, f"compose config failed: {why}")
    cached: tuple[dict[str, tuple[str, ...]] | None, str] = host.cache[key]
    return cached


def _service_profiles(config: str) -> tuple[dict[str, tuple[str, ...]] | None, str]:
    """The services of a ``compose config`` output and the profiles each carries."""
    try:
        document = yaml.safe_load(config)
    except yaml.YAMLError as exc:
        return None, f"compose config printed no YAML: {exc}"
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, dict):
        return None, "compose config printed no services"
    found = {}
    for name, service in services.items():
        profiles = (service or {}).get("profiles") if isinstance(service, dict) else None
        found[str(name)] = tuple(str(p) for p in profiles or ())
    return found, ""


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
        one = {_sharing_key(s) for s in stacks}
        shared = len(one) == 1 and all(s.shared for s in stacks)  # one stack, by profile
        elsewhere = sorted(
            {
                posixpath.normpath(c.labels[COMPOSE_WORKING_DIR])
                for c in running
                if c.labels.get(COMPOSE_PROJECT) == name
                and c.labels.get(COMPOSE_WORKING_DIR)
                and posixpath.normpath(c.labels[COMPOSE_WORKING_DIR]) not in folders
            }
        )
        if (len(stacks) > 1 and not shared) or elsewhere:
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
    defines it, and the service name is appended. A stack the env shares with other envs
    by profile gets the env's own services appended (with *service*, that one of them):
    a command never acts on another env's services.
    """
    if stacks is None:
        stacks = identities(host, [project], ())
    mine = sorted(
        (s for s in stacks if s.project == project.name and s.env == env and s.present),
        key=lambda s: s.index,
    )
    commands = [stack_command(host, identity, project, args) for identity in mine]
    if any(identity.shared for identity in mine):
        return _shared_commands(project, env, mine, commands, service)
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


def env_services(project: Project, identity: StackIdentity) -> tuple[str, ...]:
    """The services of a stack shared by profile that belong to the identity's env alone;
    raises :class:`OpskitError` when compose could not say which they are."""
    if identity.services is None:
        raise OpskitError(f"{project.name} {identity.env}: {env_services_problem(identity)}")
    return identity.services


def env_services_problem(identity: StackIdentity) -> str:
    """Why the env's own services of a stack shared by profile are unknown."""
    return (
        f"the services of profile {identity.profile!r} in {identity.dir} are unknown "
        f"({identity.services_error or 'not asked'})"
    )


def _shared_commands(
    project: Project,
    env: str,
    mine: Sequence[StackIdentity],
    commands: Sequence[ComposeCommand],
    service: str | None,
) -> list[ComposeCommand]:
    result = []
    for identity, command in zip(mine, commands, strict=True):
        if not identity.shared:
            if service is None:
                result.append(command)
            continue
        own = env_services(project, identity)
        if service is not None:
            if service in own:
                return [attrs.evolve(command, argv=(*command.argv, service))]
            continue
        if not own:
            raise OpskitError(
                f"{project.name} {env}: profile {identity.profile!r} enables no service of "
                f"its own in {identity.dir} (shared with {', '.join(identity.shared_with)})"
            )
        result.append(attrs.evolve(command, argv=(*command.argv, *own)))
    if service is not None:
        raise NotFoundError(f"{project.name} {env}: {service!r} is no service of {env}'s profile")
    return result


def own_volumes(
    host: Host, project: Project, identity: StackIdentity, stacks: Sequence[StackIdentity]
) -> list[str]:
    """The named volumes (their engine names) of a stack shared by profile that only the
    env's own services mount: none of the other envs' services (nor a service of no env)
    mounts them, and they are not external. From compose's own ``config`` of each env."""
    group = [
        s
        for s in stacks
        if _sharing_key(s) == _sharing_key(identity)
        and s.env in (identity.env, *identity.shared_with)
    ]
    own = set(env_services(project, identity))
    mine: set[str] = set()
    theirs: set[str] = set()
    declared: dict[str, Any] = {}
    for member in group:
        config = stack_config(host, project, member)
        declared.update(config.get("volumes") or {})
        for name, service in (config.get("services") or {}).items():
            used = _named_volumes(service or {})
            (mine if name in own else theirs).update(used)
    names = []
    for key in sorted(mine - theirs):
        spec = declared.get(key) or {}
        if key not in declared or spec.get("external"):
            continue
        names.append(str(spec.get("name") or f"{identity.name}_{key}"))
    return names


def external_resources(
    host: Host, project: Project, identity: StackIdentity
) -> list[tuple[str, str]]:
    """The networks and volumes one stack's compose files declare ``external`` (made
    outside the stack: a reverse proxy's network), as ("network" or "volume", engine
    name): what ``up`` needs to exist already. From compose's own ``config``."""
    return externals_of(stack_config(host, project, identity))


def stack_config(host: Host, project: Project, identity: StackIdentity) -> Mapping[str, Any]:
    """One stack's compose ``config``: its files as compose reads them, merged."""
    command = stack_command(host, identity, project, ["config"])
    result = host.run(list(command.argv), cwd=command.cwd, check=False)
    if result.returncode != 0:
        raise OpskitError(
            f"{project.name} {identity.env}: compose config failed: "
            + " ".join(result.stderr.decode("utf-8", "replace").split())[-300:]
        )
    return yaml.safe_load(result.text) or {}


def externals_of(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The external networks and volumes of a ``compose config`` document, as
    ("network" or "volume", engine name)."""
    found = []
    for kind in ("network", "volume"):
        for key, spec in (config.get(f"{kind}s") or {}).items():
            spec = spec if isinstance(spec, Mapping) else {}
            external = spec.get("external")
            if not external:
                continue
            # compose v2 writes {external: true, name: N}; v1 also {external: {name: N}}
            legacy = external.get("name") if isinstance(external, Mapping) else None
            found.append((kind, str(spec.get("name") or legacy or key)))
    return sorted(set(found))


def _named_volumes(service: Mapping[str, Any]) -> set[str]:
    """The named volumes a service of a ``compose config`` mounts (long or short syntax)."""
    found = set()
    for entry in service.get("volumes") or ():
        if isinstance(entry, Mapping):
            if entry.get("type") == "volume" and entry.get("source"):
                found.add(str(entry["source"]))
        elif isinstance(entry, str) and ":" in entry:
            source = entry.split(":", 1)[0]
            if source and not source.startswith((".", "/", "~", "$")):
                found.add(source)
    return found
