"""``opskit init``'s work: read the compose projects that run and propose a ``project.yaml``
for each.

Three steps, each testable on its own:

1. :func:`observe` reads the host: every running container's compose labels (project,
   working dir, config files, service), ``docker inspect`` (image, environment variable
   *names*, mounts, published ports, healthcheck) and ``docker top`` (which server
   processes run). A published port is asked once with an HTTP GET. Secret values never
   leave the engine: of the environment, only the names are kept, and the values of the
   few variables that name a database or its user. Compose's own ``--profile '*' config``
   tells the compose profiles of each stack's services.
2. :func:`candidates` groups the stacks into would-be projects under the root: a stack
   whose running services carry compose profiles is one project with an env per profile;
   else the env comes from a folder name (``mdf/dev``, ``app-prod``), else from the compose
   project's suffix (``shop-dev``), else from the compose file's name
   (``docker-compose.prod.yml``), else a single env ``prod`` is guessed.
3. :func:`propose` makes the generic descriptor of one candidate (plugins may answer first,
   :func:`opskit.hookspecs.opskit_discover`), with a comment on every guess and a
   ``fill in`` for what it cannot tell; :func:`render` prints it as YAML.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import yaml

from opskit.compose import (
    COMPOSE_CONFIG_FILES,
    COMPOSE_PROJECT,
    COMPOSE_SERVICE,
    COMPOSE_WORKING_DIR,
    StackIdentity,
    service_profiles,
)
from opskit.contracts import (
    DEFAULT_BACKUP_DIR,
    DEFAULT_HEALTH_TIMEOUT,
    Candidate,
    Proposal,
    SeenContainer,
    SeenPort,
    SeenStack,
)
from opskit.descriptor import COMPOSE_NAME_RE, NAME_RE
from opskit.doctor import DATABASE_PROCESSES

if TYPE_CHECKING:
    from opskit.host import Host

COMPOSE_ENV_FILE = "com.docker.compose.project.environment_file"
# Folder names and suffixes that name an env, in promotion order.
ENV_WORDS = (
    "dev", "develop", "development", "test", "testing", "qa", "int", "integration",
    "stage", "staging", "preprod", "prod", "production", "live",
)  # fmt: skip
# Environment variables whose values init may read: they name a database or its user.
SETTINGS = (
    "MYSQL_DATABASE", "MARIADB_DATABASE", "MYSQL_USER", "MARIADB_USER",
    "POSTGRES_DB", "POSTGRES_USER", "PGDATA",
)  # fmt: skip
# Where a database server keeps its files: dumped, so not copied.
DATA_DIRS = ("/var/lib/mysql", "/var/lib/mariadb", "/var/lib/postgresql")
# Images and processes of data stores opskit cannot dump: copied with the service stopped.
UNDUMPABLE = (
    "mongo", "redis", "valkey", "elasticsearch", "opensearch", "influxdb", "couchdb",
    "cassandra", "clickhouse", "neo4j", "etcd", "rabbitmq",
)  # fmt: skip
# Container ports that never speak HTTP (a GET would only wait).
NOT_HTTP = {21, 22, 25, 110, 143, 465, 587, 993, 995, 3306, 5432, 6379, 11211, 27017}
# Host paths that are never data (sockets, the kernel's views).
SYSTEM_PATHS = ("/var/run", "/run", "/dev", "/proc", "/sys")
PROBE_TIMEOUT = 3.0


# ---------------------------------------------------------------------------
# 1. What runs
# ---------------------------------------------------------------------------


def observe(host: Host) -> tuple[list[SeenStack], list[str]]:
    """The running compose stacks of the host, and the names of running containers that
    no compose project labels (init cannot place them)."""
    client = host.docker()
    grouped: dict[tuple[str, str], list[tuple[Mapping[str, str], SeenContainer]]] = {}
    loose = []
    for item in client.containers(all=False):
        labels = dict(item.get("Labels") or {})
        name = str((item.get("Names") or ["/?"])[0]).lstrip("/")
        if not labels.get(COMPOSE_PROJECT):
            loose.append(name)
            continue
        seen = _seen_container(host, str(item["Id"]), name, labels)
        if seen is None:  # gone meanwhile
            continue
        key = (labels[COMPOSE_PROJECT], posixpath.normpath(labels.get(COMPOSE_WORKING_DIR) or "."))
        grouped.setdefault(key, []).append((labels, seen))
    stacks = []
    for (project, directory), members in sorted(grouped.items()):
        first = members[0][0]
        working_dir = directory if directory != "." else ""
        files = tuple(
            posixpath.normpath(posixpath.join(working_dir or "/", f))
            for f in (first.get(COMPOSE_CONFIG_FILES) or "").split(",")
            if f
        )
        env_file = first.get(COMPOSE_ENV_FILE) or None
        if env_file:
            env_file = posixpath.normpath(posixpath.join(working_dir or "/", env_file))
        stack = SeenStack(
            compose_project=project,
            working_dir=working_dir,
            config_files=files,
            env_file=env_file,
            containers=tuple(sorted((c for _, c in members), key=lambda c: c.service)),
            files_exist=bool(files) and all(host.exists(f) for f in files),
        )
        if stack.files_exist and working_dir:
            stack = _with_profiles(host, stack)
        stacks.append(stack)
    return stacks, sorted(loose)


def _with_profiles(host: Host, stack: SeenStack) -> SeenStack:
    """*stack* with the compose profiles of its services, as compose itself reads its files."""
    wanted = [*stack.config_files, *([stack.env_file] if stack.env_file else [])]
    identity = StackIdentity(
        project="",
        env="",
        index=0,
        dir=stack.working_dir,
        files=stack.config_files,
        env_file=stack.env_file,
        name=stack.compose_project,
        source="adopted",
    )
    profiles, error = service_profiles(host, identity, host.read_existing(wanted))
    return attrs.evolve(stack, profiles=profiles or {}, profiles_error=error)


def _seen_container(
    host: Host, identity: str, name: str, labels: Mapping[str, str]
) -> SeenContainer | None:
    from opskit.host import docker_sdk

    errors = docker_sdk().errors
    client = host.docker()
    try:
        data = client.inspect_container(identity)
        top = client.top(identity, ps_args="-eo pid,comm")
    except (errors.NotFound, errors.APIError):
        return None
    config = data.get("Config") or {}
    env = dict(str(v).partition("=")[::2] for v in config.get("Env") or [])
    check = config.get("Healthcheck") or {}
    test = check.get("Test") or []
    interval = None
    if test and test[0] != "NONE":
        interval = (check.get("Interval") or 30_000_000_000) / 1e9
    processes = tuple(
        sorted({posixpath.basename(str(row[-1]).strip()) for row in top.get("Processes") or []})
    )
    return SeenContainer(
        name=name,
        service=labels.get(COMPOSE_SERVICE) or name,
        image=str(config.get("Image") or ""),
        processes=processes,
        env_names=tuple(sorted(env)),
        settings={k: env[k] for k in SETTINGS if env.get(k)},
        mounts=tuple(dict(m) for m in data.get("Mounts") or []),
        ports=tuple(_ports(host, data, _health_paths(test), bool(_database_kind(processes, "")))),
        healthcheck_seconds=interval,
    )


def _health_paths(test: Sequence[str]) -> dict[int, str]:
    """Container port -> the path a healthcheck asks there (``wget http://127.0.0.1:8080/up``)."""
    found: dict[int, str] = {}
    pattern = r"https?://(?:localhost|127\.0\.0\.1|0\.0\.0\.0)(?::(\d+))?(/[^\s'\"]*)?"
    for match in re.finditer(pattern, " ".join(str(word) for word in test[1:])):
        found.setdefault(int(match.group(1) or 80), match.group(2) or "/")
    return found


def _ports(
    host: Host, data: Mapping[str, Any], paths: Mapping[int, str], skip: bool
) -> Iterable[SeenPort]:
    """The container's published TCP ports, each asked once with an HTTP GET (at the path
    its healthcheck asks, else ``/``)."""
    published = (data.get("NetworkSettings") or {}).get("Ports") or {}
    done = set()
    for spec, bindings in sorted(published.items()):
        port, _, protocol = str(spec).partition("/")
        if protocol != "tcp" or not bindings:
            continue
        for binding in bindings:
            host_port = int(binding.get("HostPort") or 0)
            if not host_port or host_port in done:
                continue
            done.add(host_port)
            ip = str(binding.get("HostIp") or "")
            ip = "127.0.0.1" if ip in ("", "0.0.0.0", "::") else ip
            status, path = None, paths.get(int(port), "/")
            if not skip and int(port) not in NOT_HTTP:
                status = _http_status(host, f"http://{_host_part(ip)}:{host_port}{path}")
            yield SeenPort(ip, host_port, int(port), status, path)


def _host_part(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def _http_status(host: Host, url: str) -> int | None:
    try:
        return host.http_status(url, PROBE_TIMEOUT)
    except Exception:  # no HTTP answer (refused, reset, not HTTP, timeout): no probe
        return None


# ---------------------------------------------------------------------------
# 2. Stacks grouped into would-be projects
# ---------------------------------------------------------------------------


def _env_word(text: str) -> str | None:
    return text if text in ENV_WORDS else None


def _suffix_env(text: str) -> tuple[str, str] | None:
    """``shop-dev`` -> (``shop``, ``dev``)."""
    match = re.fullmatch(r"(.+?)[-_.](" + "|".join(ENV_WORDS) + r")", text)
    return (match.group(1), match.group(2)) if match else None


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def project_name(text: str) -> str:
    """*text* as an opskit project name (``[a-z0-9][a-z0-9-]*``), or "" if nothing is left."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return re.sub(r"-{2,}", "-", name)


def _place(root: str, stack: SeenStack) -> tuple[str, str, str]:
    """(project folder, env, how the env was guessed) of one stack."""
    directory = stack.working_dir
    inside = bool(directory) and _within(directory, root) and directory != root
    parts = posixpath.relpath(directory, root).split("/") if inside else []
    if inside:
        for part in parts[1:]:
            if _env_word(part):
                return posixpath.join(root, parts[0]), part, "from the folder name"
    elif directory:
        base, last = posixpath.split(directory)
        if _env_word(last) and posixpath.basename(base):
            return posixpath.join(root, posixpath.basename(base)), last, "from the folder name"
    folder_name = parts[0] if inside else posixpath.basename(directory)
    by_folder = _suffix_env(folder_name)
    if by_folder:
        return posixpath.join(root, by_folder[0]), by_folder[1], "from the folder name's suffix"
    home = posixpath.join(root, parts[0]) if inside else ""
    by_name = _suffix_env(stack.compose_project)
    if by_name:
        return home or posixpath.join(root, by_name[0]), by_name[1], "from the compose name"
    for path in stack.config_files:
        for word in re.split(r"[^a-z0-9]+", posixpath.basename(path).lower()):
            if _env_word(word):
                folder = home or posixpath.join(root, stack.compose_project)
                return folder, word, "from the compose file's name"
    return (
        home or posixpath.join(root, stack.compose_project),
        "prod",
        "as the only env (no env in its folder, compose name or files)",
    )


def candidates(
    root: str, stacks: Sequence[SeenStack], backup_dir: str = DEFAULT_BACKUP_DIR
) -> tuple[list[Candidate], list[str]]:
    """The would-be projects of the root, and what could not be placed (as sentences)."""
    root = posixpath.normpath(root)
    grouped: dict[str, dict[str, SeenStack]] = {}
    notes: dict[str, dict[str, str]] = {}
    profiled: set[str] = set()
    unplaced = []
    for stack in stacks:
        folder, env, how = _place(root, stack)
        by_profile = _by_profile(stack)
        if folder in profiled or (by_profile and folder in grouped):
            unplaced.append(
                f"compose project {stack.compose_project} ({stack.working_dir or 'no folder'}) "
                f"would share {posixpath.basename(folder)} with a stack whose envs are compose "
                "profiles: write its descriptor by hand"
            )
            continue
        if by_profile:
            grouped[folder] = by_profile
            profiled.add(folder)
            notes[folder] = {e: "" for e in by_profile}
            continue
        envs = grouped.setdefault(folder, {})
        if env in envs:
            unplaced.append(
                f"compose project {stack.compose_project} ({stack.working_dir or 'no folder'}) "
                f"would be env {env} of {posixpath.basename(folder)}, which "
                f"{envs[env].compose_project} already is: write its descriptor by hand"
            )
            continue
        envs[env] = stack
        notes.setdefault(folder, {})[env] = how
    found = []
    for index, (folder, envs) in enumerate(sorted(grouped.items())):
        ordered = {env: envs[env] for env in sorted(envs, key=_env_rank)}
        said = "; ".join(f"{env} {notes[folder][env]}" for env in ordered)
        if folder in profiled:
            said = (
                f"the compose profiles of the services that run in "
                f"{next(iter(envs.values())).compose_project}, one env each"
            )
        found.append(
            Candidate(
                name=project_name(posixpath.basename(folder)),
                folder=folder,
                envs=ordered,
                index=index,
                notes={"environments": f"guessed: {said}"},
                backup_dir=backup_dir,
                by_profile=folder in profiled,
            )
        )
    return found, unplaced


def _by_profile(stack: SeenStack) -> dict[str, SeenStack] | None:
    """The envs of a stack whose running services carry compose profiles: one per profile,
    each with the containers its profile enables (those of no profile too); None when no
    running service has a profile."""
    running = {c.service: tuple(stack.profiles.get(c.service, ())) for c in stack.containers}
    envs = {profile for profiles in running.values() for profile in profiles}
    if not envs:
        return None
    return {
        env: attrs.evolve(
            stack,
            containers=tuple(
                c for c in stack.containers if not running[c.service] or env in running[c.service]
            ),
        )
        for env in sorted(envs, key=_env_rank)
    }


def _env_rank(env: str) -> tuple[int, str]:
    return (ENV_WORDS.index(env) if env in ENV_WORDS else len(ENV_WORDS), env)


# ---------------------------------------------------------------------------
# 3. The generic proposal
# ---------------------------------------------------------------------------


def templated(text: str, env: str) -> str:
    """*text* with the whole-word *env* replaced by ``{env}``: ``mdf-dev_media`` ->
    ``mdf-{env}_media``."""
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(env)}(?![A-Za-z0-9])", "{env}", text)


def _one_template(values: Mapping[str, str]) -> str | None:
    """The template that gives each env's value (env -> value), or None if there is none."""
    templates = {templated(value, env) for env, value in values.items()}
    if len(templates) == 1:
        return templates.pop()
    # an env inside a word (compose v1's "appdev" from the folder "app_dev"): the last one
    templates = {value[::-1].replace(env[::-1], "}vne{", 1)[::-1] for env, value in values.items()}
    if len(templates) == 1 and "{env}" in (found := templates.pop()):
        return found
    literal = set(values.values())
    return literal.pop() if len(literal) == 1 else None


def database_kind(container: SeenContainer) -> str | None:
    """``mariadb``, ``mysql`` or ``postgres`` from the server process that runs (else the
    image), or None."""
    return _database_kind(container.processes, container.image)


def _database_kind(processes: Iterable[str], image: str) -> str | None:
    kinds = {DATABASE_PROCESSES[p] for p in processes if p in DATABASE_PROCESSES}
    for kind in ("mariadb", "mysql", "postgres"):
        if kind in kinds:
            return kind
    image = image.rsplit("/", 1)[-1].split(":")[0].lower()
    for word, kind in (("mariadb", "mariadb"), ("mysql", "mysql"), ("postgres", "postgres")):
        if word in image or (word == "postgres" and ("postgis" in image or "timescale" in image)):
            return kind
    return None


def _undumpable(container: SeenContainer) -> str | None:
    image = container.image.rsplit("/", 1)[-1].split(":")[0].lower()
    words = {image, *(p.lower() for p in container.processes)}
    return next((u for u in UNDUMPABLE for w in words if w.startswith(u)), None)


def _database(kind: str, container: SeenContainer) -> tuple[dict[str, Any], list[str]]:
    """One ``backup.databases`` entry, and what is missing from it."""
    s, names, missing = container.settings, set(container.env_names), []
    entry: dict[str, Any] = {"service": container.service, "type": kind}
    password: str
    if kind == "postgres":
        user = s.get("POSTGRES_USER", "postgres")
        entry["name"] = s.get("POSTGRES_DB", user)
        entry["user"] = user
        password = "POSTGRES_PASSWORD"
    else:
        name = s.get("MARIADB_DATABASE") or s.get("MYSQL_DATABASE")
        if name:
            entry["name"] = name
        else:
            missing.append("name")
        root = next((n for n in ("MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD") if n in names), "")
        user = s.get("MARIADB_USER") or s.get("MYSQL_USER") or ""
        if root or not user:
            entry["user"] = "root"
            password = root or "MYSQL_ROOT_PASSWORD"
        else:
            entry["user"] = user
            mariadb = {"MARIADB_PASSWORD", "MARIADB_PASSWORD_FILE"} & names
            password = "MARIADB_PASSWORD" if mariadb else "MYSQL_PASSWORD"
    if password in names:
        entry["password_env"] = password
    elif f"{password}_FILE" in names:
        missing.append(f"password ({password}_FILE is a file; opskit reads a variable)")
    return entry, missing


def _data_dir(kind: str, container: SeenContainer, destination: str) -> bool:
    dirs = [*DATA_DIRS, container.settings.get("PGDATA", "/var/lib/postgresql/data")]
    return any(_within(destination, d) for d in dirs)


def propose(candidate: Candidate) -> Proposal:
    """The generic descriptor of *candidate*: every guess commented, every gap a
    ``fill in`` (blocking where the file would be wrong without it)."""
    envs = list(candidate.envs)
    p = Proposal(name=candidate.name, folder=candidate.folder, data={})
    p.guess("", f"proposed by opskit init from the compose projects that run in {', '.join(envs)}")
    if not NAME_RE.match(candidate.name):
        p.fill_in("name", "a project name ([a-z0-9][a-z0-9-]*)", blocking=True)
    elif candidate.name != posixpath.basename(candidate.folder):
        p.guess("name", f"guessed from the folder name {posixpath.basename(candidate.folder)!r}")
    else:
        p.guess("name", "guessed from the folder name")
    p.data["name"] = candidate.name
    p.data["environments"] = envs
    for field, note in candidate.notes.items():
        p.guess(field, note)
    bad = [env for env in envs if not NAME_RE.match(env)]
    if bad:
        p.fill_in("environments", f"{', '.join(bad)}: no env name ([a-z0-9][a-z0-9-]*)", True)
    p.data["compose"] = _compose(candidate, p)
    p.data["services"] = _services(candidate)
    health = _health(candidate, p)
    if health:
        p.data["health"] = health
    p.data["backup"] = _backup(candidate, p)
    return p


def _compose(candidate: Candidate, p: Proposal) -> dict[str, Any]:
    compose: dict[str, Any] = {}
    dirs: dict[str, str] = {}
    files: dict[str, str] = {}
    env_files: dict[str, str] = {}
    names: dict[str, str] = {}
    for env, stack in candidate.envs.items():
        names[env] = stack.compose_project
        if not COMPOSE_NAME_RE.match(stack.compose_project):
            p.fill_in(
                "compose.project_name",
                f"{stack.compose_project!r} ({env}) is not a valid compose name: rename the stack",
                blocking=True,
            )
        if not stack.working_dir:
            p.fill_in("compose.dir", f"compose recorded no folder for {env}", blocking=True)
            continue
        rel = posixpath.relpath(stack.working_dir, candidate.folder)
        dirs[env] = stack.working_dir if rel.startswith("..") else rel
        files[env] = ",".join(posixpath.relpath(f, stack.working_dir) for f in stack.config_files)
        if not stack.files_exist:
            shown = ", ".join(stack.config_files) or "none recorded"
            p.fill_in(
                "compose.files",
                f"no compose file in {stack.working_dir} for {env} ({shown}): the stack was "
                "started from files that are gone",
                blocking=True,
            )
        if stack.env_file:
            env_files[env] = posixpath.relpath(stack.env_file, stack.working_dir)
    directory = _one_template(dirs) if dirs else None
    if dirs and directory is None:
        p.fill_in("compose.dir", f"the envs run from unlike folders: {dirs}", blocking=True)
    if directory and directory != ".":
        compose["dir"] = directory
    listed = _one_template(files) if files else None
    if listed:
        compose["files"] = [f for f in listed.split(",") if f]
        p.guess("compose.files", "the files the running stacks were started from")
    elif files:
        p.fill_in("compose.files", f"the envs run from unlike files: {files}", blocking=True)
    automatic = {env: value for env, value in env_files.items() if value in (".env", f".env.{env}")}
    if env_files and len(automatic) < len(env_files):
        env_file = _one_template(env_files)
        if env_file:
            compose["env_file"] = env_file
        else:
            p.fill_in("compose.env_file", f"the envs use unlike env files: {env_files}")
    for error in sorted({s.profiles_error for s in candidate.envs.values() if s.profiles_error}):
        p.guess("compose", f"compose profiles not read ({error}): envs by profile not looked for")
    if candidate.by_profile:
        compose["profile"] = "{env}"
        p.guess("compose.profile", "each env is the compose profile of its name, in one project")
    name = _one_template(names)
    shared = candidate.by_profile and len(set(names.values())) == 1
    if name is None or (len(names) > 1 and "{env}" not in name and not shared):
        p.fill_in("compose.project_name", f"the envs run as {names}", blocking=True)
        name = None
    if name:
        compose["project_name"] = name
        p.guess("compose.project_name", "pinned to what runs")
    return compose


def _services(candidate: Candidate) -> dict[str, Any]:
    where: dict[str, list[str]] = {}
    for env, stack in candidate.envs.items():
        for container in stack.containers:
            where.setdefault(container.service, [])
            if env not in where[container.service]:
                where[container.service].append(env)
    every = list(candidate.envs)
    return {
        service: ({} if envs == every else {"environments": envs})
        for service, envs in sorted(where.items())
    }


def _health(candidate: Candidate, p: Proposal) -> dict[str, Any]:
    probes = []
    intervals = {}
    for env, stack in candidate.envs.items():
        for container in stack.containers:
            if container.healthcheck_seconds is not None:
                intervals[container.service] = container.healthcheck_seconds
            for port in container.ports:
                if port.status is None:
                    continue
                url = f"http://{_host_part(port.host_ip)}:{port.host_port}{port.path}"
                probes.append(
                    {
                        "service": container.service,
                        "http": url,
                        "expect": port.status,
                        "environments": [env],
                    }
                )
                p.guess(
                    f"health.probes[{len(probes) - 1}]",
                    f"guessed: {container.service} publishes port {port.container_port}; "
                    f"it answered {port.status} when init looked"
                    + (" (at the path its healthcheck asks)" if port.path != "/" else ""),
                )
    health: dict[str, Any] = {}
    if intervals:
        shown = ", ".join(sorted(intervals))
        p.guess("health", f"the healthchecks of {shown} are read by health and the health gate")
        slowest = max(intervals.values())
        if slowest * 3 > DEFAULT_HEALTH_TIMEOUT:
            health["timeout"] = math.ceil(slowest * 3)
            p.guess("health.timeout", "three of the slowest healthcheck's intervals")
    if probes:
        health["probes"] = probes
    return health


def _backup(candidate: Candidate, p: Proposal) -> dict[str, Any]:
    envs = list(candidate.envs)
    minutes = 2 * 60 + 15 * (candidate.index % 16)
    backup: dict[str, Any] = {
        "dir": candidate.backup_dir,
        "schedule": f"{minutes // 60:02d}:{minutes % 60:02d}",
        "retention": {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 6},
    }
    p.guess("backup.schedule", "guessed: nightly, a quarter of an hour after the previous project")
    p.guess("backup.retention", "guessed: a week of dailies, a month of weeklies, half a year")
    databases: dict[str, dict[str, Any]] = {}
    database_envs: dict[str, list[str]] = {}
    volumes: dict[tuple[str, str], dict[str, str]] = {}
    paths: dict[tuple[str, str], dict[str, str]] = {}
    stop: list[str] = []
    for env, stack in candidate.envs.items():
        for container in stack.containers:
            service = _service(candidate, env, container)
            kind = database_kind(container)
            if kind:
                entry, missing = _database(kind, container)
                entry["service"] = service
                field = f"backup.databases.{service}"
                database_envs.setdefault(service, []).append(env)
                if service not in databases:
                    databases[service] = entry
                    how = "from its server process" if container.processes else "from its image"
                    p.guess(field, f"a {kind} server runs in {service} ({how})")
                    for gap in missing:
                        p.fill_in(field, f"the database's {gap}", blocking=gap == "name")
                elif databases[service].get("name") != entry.get("name"):
                    p.fill_in(field, f"the database's name differs by env ({env})", blocking=True)
            other = _undumpable(container)
            if other and service not in stop:
                stop.append(service)
                p.fill_in(
                    "backup.stop",
                    f"{service} looks like {other}, which opskit cannot dump: its "
                    "data is copied with the service stopped; a dump of your own is better",
                )
            for mount in container.mounts:
                _mount(candidate, p, env, kind, container, mount, volumes, paths)
    if candidate.by_profile:
        _pair_databases(p, databases, database_envs, envs)
    if databases:
        backup["databases"] = list(databases.values())
    if paths:
        backup["paths"] = _templates(p, "backup.paths", paths, envs, nested=True)
    if volumes:
        backup["volumes"] = _templates(p, "backup.volumes", volumes, envs, nested=False)
    if stop:
        backup["stop"] = stop
    return backup


def _service(candidate: Candidate, env: str, container: SeenContainer) -> str:
    """How the descriptor names the container's service: with envs chosen by profile, the
    env in its name becomes ``{env}`` (``db-dev`` -> ``db-{env}``)."""
    return templated(container.service, env) if candidate.by_profile else container.service


def _pair_databases(
    p: Proposal,
    databases: dict[str, dict[str, Any]],
    found: Mapping[str, Sequence[str]],
    envs: Sequence[str],
) -> None:
    """Keep the databases that every env has under one service template (``db-{env}``);
    each other one is left out, a blocking ``fill in``."""
    for service, where in found.items():
        if sorted(where) == sorted(envs):
            if "{env}" in service:
                p.guess(f"backup.databases.{service}", "the envs' services differ by the env only")
            continue
        del databases[service]
        p.fill_in(
            "backup.databases",
            f"the database service {service} runs in {', '.join(where)} only, and no service "
            "of the other envs differs from it by the env alone: name each env's database "
            "service in backup.databases",
            blocking=True,
        )


def _mount(
    candidate: Candidate,
    p: Proposal,
    env: str,
    kind: str | None,
    container: SeenContainer,
    mount: Mapping[str, Any],
    volumes: dict[tuple[str, str], dict[str, str]],
    paths: dict[tuple[str, str], dict[str, str]],
) -> None:
    """Put one writable mount into *volumes* or *paths* ((service, destination) -> env ->
    name or path)."""
    destination = str(mount.get("Destination") or "")
    if not mount.get("RW", True) or mount.get("Type") not in ("volume", "bind"):
        return  # read-only: configuration or code
    if kind and _data_dir(kind, container, destination):
        return  # the database's own files: dumped instead
    key = (_service(candidate, env, container), destination)
    if mount["Type"] == "volume":
        name = str(mount.get("Name") or "")
        if re.fullmatch(r"[0-9a-f]{64}", name):
            p.fill_in(
                "backup.volumes",
                f"{container.service}:{destination} is an anonymous volume ({env}); name it in "
                "the compose file to back it up",
            )
            return
        volumes.setdefault(key, {})[env] = name
        return
    source = posixpath.normpath(str(mount.get("Source") or ""))
    if any(_within(source, s) for s in SYSTEM_PATHS) or source == "/":
        p.guess("backup.paths", f"{source} ({container.service}) is a system path: not backed up")
        return
    rel = posixpath.relpath(source, candidate.folder)
    paths.setdefault(key, {})[env] = source if rel.startswith("..") else rel


def _templates(
    p: Proposal,
    field: str,
    found: Mapping[tuple[str, str], Mapping[str, str]],
    envs: Sequence[str],
    nested: bool,
) -> list[str]:
    """One ``{env}`` template per mount that gives each env's name or path; a mount that
    runs in some envs only (or under unlike names) is a blocking ``fill in``."""
    chosen: list[str] = []
    for (service, destination), values in sorted(found.items()):
        template = _one_template(values)
        if template is None or ("{env}" not in template and len(envs) > 1):
            shown = ", ".join(f"{env}: {v}" for env, v in values.items())
            p.fill_in(field, f"{service}:{destination} has one per env ({shown})", blocking=True)
            continue
        if len(values) < len(envs):
            p.fill_in(
                field,
                f"{service}:{destination} ({template}) is in {', '.join(values)} only; a "
                "backup of the other envs would miss it",
                blocking=True,
            )
            continue
        if template not in chosen:
            chosen.append(template)
    if nested:  # a folder inside another backed-up folder is in it already
        chosen = [t for t in chosen if not any(o != t and _within(t, o) for o in chosen)]
    return chosen


# ---------------------------------------------------------------------------
# The descriptor as YAML, with its comments
# ---------------------------------------------------------------------------


def render(proposal: Proposal) -> str:
    """The proposal as a ``project.yaml`` text: block style, one comment per guess."""
    comments = proposal.comments
    lines = [f"# {proposal.folder}/project.yaml"]
    if comments.get(""):
        lines.append(f"# {comments['']}")
    for key, value in proposal.data.items():
        _emit(lines, key, value, key, 0, comments)
    # the comments of list entries and keys that are not in the data (a field left out)
    said = set()
    for line in lines:
        said.update(re.findall(r"\x00(.*?)\x00", line))
    missing = [f"# {f}: {t}" for f, t in comments.items() if f and f not in said]
    text = "\n".join(re.sub(r"\x00.*?\x00", "", line) for line in lines)
    return text + "\n" + "".join(f"{line}\n" for line in missing)


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False)
    return text.removesuffix("\n").removesuffix("\n...").strip()


def _emit(
    lines: list[str], key: str, value: Any, path: str, indent: int, comments: Mapping[str, str]
) -> None:
    pad = " " * indent
    note = f"  # {comments[path]}" if path in comments else ""
    mark = f"\x00{path}\x00"
    if isinstance(value, dict) and value:
        lines.append(f"{pad}{key}:{note}{mark}")
        for sub, item in value.items():
            _emit(lines, sub, item, f"{path}.{sub}", indent + 2, comments)
    elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        lines.append(f"{pad}{key}:{note}{mark}")
        for index, item in enumerate(value):
            entry = f"{path}[{index}]"
            by_service = f"{path}.{item.get('service')}" if "service" in item else ""
            said = [comments[f] for f in (entry, by_service) if f in comments]
            tail = f"  # {'; '.join(said)}" if said else ""
            lines.append(f"{pad}  - {_flow(item)}{tail}\x00{entry}\x00\x00{by_service}\x00")
    else:
        lines.append(f"{pad}{key}: {_flow(value)}{note}{mark}")
