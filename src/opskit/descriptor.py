"""Load and validate ``project.yaml`` descriptors into attrs models.

The models (:class:`Project` and its sections) are defined in :mod:`opskit.contracts`,
beside the other types plugins share, and re-exported here. Every error names the file,
the line and the field (:mod:`opskit.yamlreader`). Strings may hold ``{env}`` (and
``{project}``); :func:`expand` is the one place that replaces them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import yaml

# Defined in opskit.contracts (the types plugins and engines share); re-exported here.
from opskit.contracts import DEFAULT_BACKUP_DIR as DEFAULT_BACKUP_DIR
from opskit.contracts import DEFAULT_HEALTH_TIMEOUT as DEFAULT_HEALTH_TIMEOUT
from opskit.contracts import DELEGATE_COMMANDS as DELEGATE_COMMANDS
from opskit.contracts import PING_KINDS as PING_KINDS
from opskit.contracts import STORES as STORES
from opskit.contracts import Backup as Backup
from opskit.contracts import Compose as Compose
from opskit.contracts import Database as Database
from opskit.contracts import Delegate as Delegate
from opskit.contracts import DescriptorSource as DescriptorSource
from opskit.contracts import HttpProbe as HttpProbe
from opskit.contracts import Notify as Notify
from opskit.contracts import Offsite as Offsite
from opskit.contracts import Project as Project
from opskit.contracts import Promote as Promote
from opskit.contracts import Retention as Retention
from opskit.contracts import Service as Service
from opskit.contracts import Stack as Stack
from opskit.contracts import Sync as Sync
from opskit.contracts import expand as expand
from opskit.errors import DescriptorError
from opskit.yamlreader import Node, Reader, read_yaml

NAME_RE = re.compile(r"[a-z0-9][a-z0-9-]*\Z")
SERVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
HHMM_RE = re.compile(r"([01]\d|2[0-3]):[0-5]\d\Z")
# What no value written into a systemd unit file may hold: a line break would start a new
# setting (Unit=...).
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# What compose accepts as a project name (``-p``).
COMPOSE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
# What compose accepts as a profile name (``--profile``).
PROFILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
DATABASE_TYPES = ("mariadb", "mysql", "postgres")
PROMOTE_TYPES = ("git", "rsync", "script")
REBUILD_MODES = ("auto", "always", "never")
OFFSITE_SCHEMES = ("sftp://", "file://", "s3://", "s3+http://")
OFFSITE_URL_RE = re.compile(r"[a-z][a-z0-9+.-]*://\S+\Z")
COMPOSE_FILE_CANDIDATES = (
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def read_notify(r: Reader, node: Node, field: str) -> Notify:
    m = r.mapping(node, field, {"urls", "successes", "pings"})
    successes = None
    if "successes" in m:
        successes = r.scalar(m["successes"], f"{field}.successes")
        if not isinstance(successes, bool):
            raise r.error(m["successes"], f"{field}.successes", "expected true or false")
    pings: list[tuple[str, str]] = []
    if "pings" in m:
        for kind, url in r.mapping(m["pings"], f"{field}.pings", PING_KINDS).items():
            pings.append((kind, _url(r, url, f"{field}.pings.{kind}", ("http://", "https://"))))
    urls: tuple[str, ...] = ()
    if "urls" in m:
        urls = r.each(m["urls"], f"{field}.urls", lambda n, f: _url(r, n, f, ()))
    return Notify(urls=urls, successes=successes, pings=tuple(pings))


def _url(r: Reader, node: Node, field: str, schemes: tuple[str, ...]) -> str:
    value = r.string(node, field)
    if "://" not in value or (schemes and not value.startswith(schemes)):
        expected = ", ".join(schemes) if schemes else "an apprise URL (scheme://...)"
        raise r.error(node, field, f"expected a URL starting with {expected}")
    return value


def _read_project_name(r: Reader, node: Node, field: str, project: str) -> str:
    """A compose project name template; it must expand to a valid name in every env."""
    template = r.string(node, field)
    for env in r.environments:
        name = expand(template, env, project)
        if not COMPOSE_NAME_RE.match(name):
            raise r.error(
                node,
                field,
                f"{name!r} (for {env}) is not a valid compose project name "
                "(lowercase letters, digits, '-' and '_', starting with a letter or digit)",
            )
    return template


def _read_profile(r: Reader, node: Node, project: str) -> str:
    """A profile template; it must expand to a valid compose profile in every env."""
    template = r.string(node, "compose.profile")
    for env in r.environments:
        name = expand(template, env, project)
        if not PROFILE_RE.match(name):
            raise r.error(
                node,
                "compose.profile",
                f"{name!r} (for {env}) is not a valid compose profile "
                "(letters, digits, '_', '.' and '-', starting with a letter or digit)",
            )
    return template


def _read_stack(r: Reader, node: Node, field: str, project: str) -> Stack:
    m = r.mapping(node, field, {"dir", "files", "project_name"})
    return Stack(
        dir=r.string(m["dir"], f"{field}.dir") if "dir" in m else ".",
        files=r.strings(m["files"], f"{field}.files") if "files" in m else (),
        project_name=_read_project_name(r, m["project_name"], f"{field}.project_name", project)
        if "project_name" in m
        else None,
    )


def _read_compose(r: Reader, node: Node, project: str) -> Compose:
    keys = {"dir", "files", "env_file", "profile", "project_name", "extra"}
    m = r.mapping(node, "compose", keys)
    return Compose(
        dir=r.string(m["dir"], "compose.dir") if "dir" in m else ".",
        files=r.strings(m["files"], "compose.files") if "files" in m else (),
        env_file=r.string(m["env_file"], "compose.env_file") if "env_file" in m else None,
        profile=_read_profile(r, m["profile"], project) if "profile" in m else None,
        project_name=_read_project_name(r, m["project_name"], "compose.project_name", project)
        if "project_name" in m
        else None,
        extra=r.each(m["extra"], "compose.extra", lambda n, f: _read_stack(r, n, f, project))
        if "extra" in m
        else (),
    )


def _read_services(r: Reader, node: Node) -> tuple[Service, ...]:
    services = []
    for name, value in r.free_mapping(node, "services").items():
        field = f"services.{name}"
        if not SERVICE_RE.match(name):
            raise r.error(value, field, f"{name!r} is not a valid service name")
        m = r.mapping(value, field, {"environments"})
        envs = (
            r.each(m["environments"], f"{field}.environments", r.env_name)
            if "environments" in m
            else None
        )
        services.append(Service(name=name, environments=envs))
    return tuple(services)


def _read_probe(r: Reader, node: Node, field: str) -> HttpProbe:
    m = r.mapping(
        node, field, {"service", "http", "expect", "timeout", "environments"}, required={"http"}
    )
    url = r.string(m["http"], f"{field}.http")
    if not url.startswith(("http://", "https://")):
        raise r.error(m["http"], f"{field}.http", "expected an http:// or https:// URL")
    return HttpProbe(
        http=url,
        service=r.string(m["service"], f"{field}.service", SERVICE_RE, "service name")
        if "service" in m
        else None,
        expect=r.integer(m["expect"], f"{field}.expect", minimum=100) if "expect" in m else 200,
        timeout=r.number(m["timeout"], f"{field}.timeout") if "timeout" in m else 5.0,
        environments=r.each(m["environments"], f"{field}.environments", r.env_name)
        if "environments" in m
        else None,
    )


def _read_health(r: Reader, node: Node) -> tuple[tuple[HttpProbe, ...], list[Node], int | None]:
    """``health`` is a list of probes, or ``{timeout: SECONDS, probes: [...]}``.

    Returns the probes, their nodes and the gate timeout (None: not set)."""
    if isinstance(node, yaml.SequenceNode):
        return r.each(node, "health", lambda n, f: _read_probe(r, n, f)), list(node.value), None
    m = r.mapping(node, "health", {"timeout", "probes"})
    timeout = r.integer(m["timeout"], "health.timeout", minimum=1) if "timeout" in m else None
    if "probes" not in m:
        return (), [], timeout
    probes = r.each(m["probes"], "health.probes", lambda n, f: _read_probe(r, n, f))
    return probes, list(m["probes"].value), timeout


def _read_service_template(r: Reader, node: Node, field: str) -> str:
    """A service name, or a template (``db-{env}``: envs that share one compose project by
    profile) that expands to a service name in every env."""
    template = r.string(node, field)
    if "{" not in template:
        return r.string(node, field, SERVICE_RE, "service name")
    for env in r.environments:
        name = expand(template, env)
        if not SERVICE_RE.match(name):
            raise r.error(node, field, f"{name!r} (for {env}) is not a valid service name")
    return template


def _read_database(r: Reader, node: Node, field: str) -> Database:
    m = r.mapping(
        node,
        field,
        {"service", "type", "name", "user", "password_env"},
        required={"service", "type", "name"},
    )
    return Database(
        service=_read_service_template(r, m["service"], f"{field}.service"),
        type=r.choice(m["type"], f"{field}.type", DATABASE_TYPES),
        name=r.string(m["name"], f"{field}.name"),
        user=r.string(m["user"], f"{field}.user") if "user" in m else None,
        password_env=r.string(
            m["password_env"],
            f"{field}.password_env",
            re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z"),
            "variable name",
        )
        if "password_env" in m
        else None,
    )


def _read_backup(r: Reader, node: Node) -> Backup:
    m = r.mapping(
        node,
        "backup",
        {
            "dir",
            "store",
            "schedule",
            "retention",
            "databases",
            "paths",
            "volumes",
            "stop",
            "expendable",
        },
    )
    retention = Retention()
    if "retention" in m:
        keys = ("keep_daily", "keep_weekly", "keep_monthly", "keep_last", "keep_undo_days")
        rm = r.mapping(m["retention"], "backup.retention", keys)
        retention = Retention(**{k: r.integer(v, f"backup.retention.{k}") for k, v in rm.items()})
    schedule, schedule_line = None, None
    if "schedule" in m:
        schedule = read_calendar(r, m["schedule"], "backup.schedule")
        schedule_line = m["schedule"].start_mark.line + 1
    return Backup(
        dir=r.string(m["dir"], "backup.dir") if "dir" in m else DEFAULT_BACKUP_DIR,
        store=r.choice(m["store"], "backup.store", STORES) if "store" in m else None,
        schedule=schedule,
        retention=retention,
        databases=r.each(m["databases"], "backup.databases", lambda n, f: _read_database(r, n, f))
        if "databases" in m
        else (),
        paths=r.strings(m["paths"], "backup.paths") if "paths" in m else (),
        volumes=r.strings(m["volumes"], "backup.volumes") if "volumes" in m else (),
        stop=r.each(m["stop"], "backup.stop", lambda n, f: _read_service_template(r, n, f))
        if "stop" in m
        else (),
        expendable=r.strings(m["expendable"], "backup.expendable") if "expendable" in m else (),
        schedule_line=schedule_line,
    )


def read_calendar(r: Reader, node: Node, field: str) -> str:
    """A schedule for a timer's ``OnCalendar=``: ``HH:MM`` (a valid time) or a systemd
    calendar, on one line. Whether systemd parses it is checked where the units are made
    (:func:`opskit.timers.check_calendar`): the descriptor is read without a host."""
    # YAML 1.1 reads an unquoted 03:30 as the sexagesimal number 210: keep the text.
    if (
        isinstance(node, yaml.ScalarNode)
        and node.tag == "tag:yaml.org,2002:int"
        and ":" in node.value
    ):
        value = str(node.value)
    else:
        value = r.string(node, field)
    if CONTROL_RE.search(value) or value.endswith("\\"):  # a backslash continues the line
        raise r.error(
            node, field, f"{value!r} must be one line, without control characters or a trailing "
            "backslash (a systemd calendar such as '*-*-* 02:00:00', or HH:MM)"
        )  # fmt: skip
    if re.fullmatch(r"\d{1,2}:\d{2}", value) and not HHMM_RE.match(value.zfill(5)):
        raise r.error(node, field, f"{value!r} is not a valid time (HH:MM)")
    return value


def _read_offsite(r: Reader, node: Node, field: str = "offsite") -> Offsite:
    m = r.mapping(node, field, {"target", "keep"}, required={"target"})
    return Offsite(
        target=read_offsite_target(r, m["target"], f"{field}.target"),
        keep=r.integer(m["keep"], f"{field}.keep", minimum=1) if "keep" in m else None,
    )


def read_offsite_target(r: Reader, node: Node, field: str) -> str:
    """A target URL: the built-in schemes, or another that a plugin's
    ``opskit_offsite_target`` maps (checked when it is used)."""
    value = r.string(node, field)
    if not OFFSITE_URL_RE.match(value):
        raise r.error(
            node, field, f"expected a URL such as {', '.join(OFFSITE_SCHEMES)} (scheme://...)"
        )
    return value


def _read_sync(r: Reader, node: Node) -> Sync:
    m = r.mapping(node, "sync", {"pairs", "replace", "whole_hosts"})
    whole_hosts = r.scalar(m["whole_hosts"], "sync.whole_hosts") if "whole_hosts" in m else False
    if not isinstance(whole_hosts, bool):
        raise r.error(m["whole_hosts"], "sync.whole_hosts", "expected true or false")
    pairs = []
    for i, pair_node in enumerate(r.sequence(m["pairs"], "sync.pairs") if "pairs" in m else []):
        field = f"sync.pairs[{i}]"
        items = r.sequence(pair_node, field)
        if len(items) != 2:
            raise r.error(pair_node, field, "expected [from, to]")
        source, target = r.env_name(items[0], field), r.env_name(items[1], field)
        if source == target:
            raise r.error(pair_node, field, "an environment cannot sync to itself")
        pairs.append((source, target))
    replace: list[tuple[str, tuple[str, ...]]] = []
    if "replace" in m:
        for env, value in r.free_mapping(m["replace"], "sync.replace").items():
            field = f"sync.replace.{env}"
            if env not in r.environments:
                raise r.error(value, field, f"unknown environment {env!r}")
            if isinstance(value, yaml.SequenceNode):
                strings = r.strings(value, field)
                if not strings:
                    raise r.error(value, field, "needs at least one string")
            else:
                strings = (r.string(value, field),)
            if replace and len(strings) != len(replace[0][1]):
                raise r.error(
                    value,
                    field,
                    f"has {len(strings)} strings, {replace[0][0]} has {len(replace[0][1])}: "
                    "the lists are aligned by position",
                )
            replace.append((env, strings))
    return Sync(pairs=tuple(pairs), replace=tuple(replace), whole_hosts=whole_hosts)


def _read_promote(r: Reader, node: Node) -> Promote:
    keys = {"type", "dir", "branches", "script", "rebuild", "health_timeout", "exclude"}
    m = r.mapping(node, "promote", keys, required={"type"})
    kind = r.choice(m["type"], "promote.type", PROMOTE_TYPES)
    branches = []
    if "branches" in m:
        for env, value in r.free_mapping(m["branches"], "promote.branches").items():
            if env not in r.environments:
                raise r.error(value, f"promote.branches.{env}", f"unknown environment {env!r}")
            branches.append((env, r.string(value, f"promote.branches.{env}")))
    if kind == "script" and "script" not in m:
        raise r.error(node, "promote.script", "required when promote.type is script")
    if kind in ("git", "rsync") and "dir" not in m:
        raise r.error(node, "promote.dir", f"required when promote.type is {kind}")
    return Promote(
        type=kind,
        dir=r.string(m["dir"], "promote.dir") if "dir" in m else None,
        branches=tuple(branches),
        script=r.string(m["script"], "promote.script") if "script" in m else None,
        rebuild=r.choice(m["rebuild"], "promote.rebuild", REBUILD_MODES)
        if "rebuild" in m
        else "auto",
        health_timeout=r.integer(m["health_timeout"], "promote.health_timeout", minimum=1)
        if "health_timeout" in m
        else None,
        exclude=r.strings(m["exclude"], "promote.exclude") if "exclude" in m else (),
    )


def _read_delegate(r: Reader, node: Node) -> Delegate:
    m = r.mapping(node, "delegate", {"cli", "commands"}, required={"cli"})
    commands: tuple[str, ...] = DELEGATE_COMMANDS
    if "commands" in m:
        commands = r.each(
            m["commands"], "delegate.commands", lambda n, f: r.choice(n, f, DELEGATE_COMMANDS)
        )
    return Delegate(cli=r.string(m["cli"], "delegate.cli"), commands=commands)


TOP_LEVEL_KEYS = (
    "name", "plugin", "description", "environments", "container_prefix", "compose", "services",
    "health", "backup", "offsite", "sync", "promote", "delegate", "notify",
)  # fmt: skip


def parse_descriptor(source: DescriptorSource) -> Project:
    """Parse and validate one descriptor; raise :class:`DescriptorError` on any fault."""
    path = source.path
    root, loader = read_yaml(path, source.text)
    r = Reader(path, loader)
    m = r.mapping(root, "", TOP_LEVEL_KEYS, required=("name",))
    name = r.string(m["name"], "name", NAME_RE, "project name ([a-z0-9][a-z0-9-]*)")
    environments: tuple[str, ...] = ("dev", "int", "prod")
    if "environments" in m:
        environments = r.each(
            m["environments"],
            "environments",
            lambda n, f: r.string(n, f, NAME_RE, "environment name"),
        )
        if not environments:
            raise r.error(m["environments"], "environments", "needs at least one environment")
        if len(set(environments)) != len(environments):
            raise r.error(m["environments"], "environments", "duplicate environment")
    r.environments = environments
    probes, probe_nodes, health_timeout = (
        _read_health(r, m["health"]) if "health" in m else ((), [], None)
    )
    probes_field = "health.probes" if isinstance(m.get("health"), yaml.MappingNode) else "health"

    project = Project(
        name=name,
        path=path,
        environments=environments,
        plugin=r.string(m["plugin"], "plugin", NAME_RE, "plugin name")
        if "plugin" in m
        else "generic",
        description=r.string(m["description"], "description") if "description" in m else "",
        container_prefix=r.string(m["container_prefix"], "container_prefix")
        if "container_prefix" in m
        else "{env}-{project}",
        compose=_read_compose(r, m["compose"], name) if "compose" in m else Compose(),
        services=_read_services(r, m["services"]) if "services" in m else (),
        health=probes,
        health_timeout=health_timeout if health_timeout is not None else DEFAULT_HEALTH_TIMEOUT,
        backup=_read_backup(r, m["backup"]) if "backup" in m else None,
        offsite=_read_offsite(r, m["offsite"]) if "offsite" in m else None,
        sync=_read_sync(r, m["sync"]) if "sync" in m else None,
        promote=_read_promote(r, m["promote"]) if "promote" in m else None,
        delegate=_read_delegate(r, m["delegate"]) if "delegate" in m else None,
        notify=read_notify(r, m["notify"], "notify") if "notify" in m else None,
    )
    declared = {service.name for service in project.services}
    if declared:
        for i, probe in enumerate(project.health):
            if probe.service and probe.service not in declared:
                raise r.error(
                    probe_nodes[i],
                    f"{probes_field}[{i}].service",
                    f"unknown service {probe.service!r}",
                )
    return project


def load_projects(sources: Iterable[DescriptorSource]) -> list[Project]:
    """Parse every descriptor and reject duplicate project names; sorted by name."""
    projects: dict[str, Project] = {}
    for source in sources:
        project = parse_descriptor(source)
        if project.name in projects:
            other = projects[project.name].path
            raise DescriptorError(
                source.path, None, "name", f"project {project.name!r} is also defined in {other}"
            )
        projects[project.name] = project
    return sorted(projects.values(), key=lambda p: p.name)


def with_backup_schedule(path: str, text: str, schedule: str) -> str:
    """The descriptor *text* with ``backup.schedule`` set to *schedule*, everything else
    (comments, order, quoting) as it was; validated like any descriptor. Raises
    :class:`DescriptorError` for a descriptor without a ``backup`` section or a schedule
    that is not valid."""
    root, _loader = read_yaml(path, text)
    backup = None
    if isinstance(root, yaml.MappingNode):
        backup = next((v for k, v in root.value if k.value == "backup"), None)
    if not isinstance(backup, yaml.MappingNode):
        raise DescriptorError(path, None, "backup", "no backup section to schedule")
    if "\n" in schedule or not schedule.strip():
        raise DescriptorError(path, None, "backup.schedule", "expected one line of text")
    value = json.dumps(schedule.strip())  # a double-quoted YAML scalar
    current = next((v for k, v in backup.value if k.value == "schedule"), None)
    start, end = (
        (current.start_mark.index, current.end_mark.index) if current is not None else (0, 0)
    )
    if current is not None:
        edited = text[:start] + value + text[end:]
    elif backup.flow_style:
        close = backup.end_mark.index - 1  # the closing brace
        separator = ", " if backup.value else ""
        edited = text[:close] + f"{separator}schedule: {value}" + text[close:]
    else:
        first_key = backup.value[0][0]
        indent = " " * first_key.start_mark.column
        line_start = text.rfind("\n", 0, first_key.start_mark.index) + 1
        edited = text[:line_start] + f"{indent}schedule: {value}\n" + text[line_start:]
    project = parse_descriptor(DescriptorSource(path, edited))
    if project.backup is None or project.backup.schedule != schedule.strip():
        raise DescriptorError(path, None, "backup.schedule", "could not be set")
    return edited
