"""``opskit doctor``: what runs that nobody looks after. Read-only.

It compares the whole root with what runs on the host: compose project names that
collide or are only adopted, data that no backup component covers, databases that are
not dumped, envs that back up only by hand, backups on the data's own disk, containers
that no project claims, containers placed under a service name no command could address
(an ``ops.service`` label such as ``-x``: left alone by every change), descriptor
paths that do not exist, and restic passwords of which no copy off the server is recorded
(:mod:`opskit.escrow`).

Each finding is a *problem* (``doctor`` exits 1), a *warning* or a *note*. Coverage
(:func:`survey`, then :func:`coverage` per env: data and databases no backup covers) is also
what the watch checks once a day (:mod:`opskit.watch`).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from opskit.containers import COMPOSE_WORKING_DIR, LABEL_PROJECT, Container, Placement
from opskit.errors import OpskitError

if TYPE_CHECKING:
    from opskit.components import Component
    from opskit.descriptor import Project
    from opskit.host import Host
    from opskit.runtime import Runtime
    from opskit.stacks import ComposeState

PROBLEM, WARNING, NOTE = "problem", "warning", "note"
# Processes that mean "a database server runs in this container", by database type.
DATABASE_PROCESSES = {
    "mariadbd": "mariadb",
    "mysqld": "mysql",
    "postgres": "postgres",
    "postmaster": "postgres",
}


@attrs.frozen
class Finding:
    severity: str
    kind: str
    project: str
    environment: str
    message: str
    # What the finding is about, for a key that stays the same from day to day (the
    # watch's check), e.g. ``volume shop-prod_cache``; and what to do about it.
    subject: str = attrs.field(default="", kw_only=True)
    fix: str = attrs.field(default="", kw_only=True)

    def as_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "kind": self.kind,
            "project": self.project,
            "environment": self.environment,
            "message": self.message,
        }


@attrs.frozen
class Survey:
    """What runs on the host, each container placed in the root's projects and envs."""

    state: ComposeState
    placed: tuple[Placement, ...]

    def of(self, project: Project, env: str) -> list[Placement]:
        """The placements of *project* *env*, the ignored ones included."""
        return [p for p in self.placed if p.project == project.name and p.environment == env]


def survey(runtime: Runtime) -> Survey:
    """Ask the engine what runs and place it. :class:`~opskit.errors.DockerUnavailable`
    (or :class:`~opskit.errors.HostError`) when the engine cannot be asked."""
    from opskit import containers as placing

    state = runtime.stacks.compose_state()
    placed = placing.resolve(runtime.projects(), state.containers, state.stacks)
    return Survey(state, tuple(placed))


def collisions(found: Survey) -> list[Finding]:
    """One problem per compose project name that two stacks (or a stack and containers
    started elsewhere) use."""
    findings = []
    for collision in found.state.collisions:
        first = collision.stacks[0]
        findings.append(
            Finding(
                PROBLEM, "compose name", first.project, first.env, collision.message(),
                subject=f"compose name {collision.name!r}",
                fix="set compose.project_name in project.yaml to keep them apart",
            )
        )  # fmt: skip
    return findings


@attrs.frozen
class DoctorReport:
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not any(f.severity == PROBLEM for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "findings": [f.as_dict() for f in self.findings]}


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _database_processes(host: Host, container: Container) -> set[str]:
    """The database types whose server process runs in *container* (``docker top``)."""
    from opskit.host import docker_sdk

    APIError = docker_sdk().errors.APIError
    try:
        top = host.docker().top(container.id, ps_args="-eo pid,comm")
    except APIError:  # stopped meanwhile
        return set()
    names = {str(row[-1]).strip() for row in top.get("Processes") or [] if row}
    return {kind for process, kind in DATABASE_PROCESSES.items() if process in names}


def coverage(runtime: Runtime, project: Project, env: str, found: Survey) -> list[Finding]:
    """What of *env*'s running data no backup component covers: writable volumes and bind
    mounts, database servers whose service has no database in ``backup.databases``.
    :class:`~opskit.errors.OpskitError` when that cannot be told (the engine cannot be
    asked, the env's backup components cannot be listed)."""
    from opskit import containers as placing

    return _coverage(runtime, project, env, placing.managed(found.of(project, env)))


def _coverage(
    runtime: Runtime, project: Project, env: str, placements: Sequence[Placement]
) -> list[Finding]:
    from opskit.components import BackupContext, DatabaseDump, PathTree, VolumeTree
    from opskit.host import docker_sdk

    NotFound = docker_sdk().errors.NotFound
    host = runtime.host
    found: list[Finding] = []
    if runtime.delegates(project, "backup"):
        return [
            Finding(
                NOTE,
                "backup",
                project.name,
                env,
                "backups are delegated to the project's own CLI; coverage not checked",
            )
        ]
    components: list[Component] = []
    if project.backup is not None:
        context = BackupContext(host, project, env, tuple(placements))
        components = runtime.plugins.backup_components(context)  # none: nothing is covered
    volumes = {c.volume for c in components if isinstance(c, VolumeTree)}
    paths = [c.path for c in components if isinstance(c, PathTree)]
    expendable = project.backup.expendable if project.backup is not None else ()
    spare_volumes = {project.expand(entry, env) for entry in expendable}
    spare_paths = [project.resolve_path(entry, env) for entry in expendable]
    dumped = {c.database.service for c in components if isinstance(c, DatabaseDump)}
    client = host.docker()
    descriptor = project.path

    def add(severity: str, kind: str, message: str, subject: str, fix: str) -> None:
        found.append(Finding(severity, kind, project.name, env, message, subject=subject, fix=fix))

    for placement in placements:
        container = placement.container
        if container is None:
            continue
        service = placement.service
        if container.state == "running":
            for kind in sorted(_database_processes(host, container)):
                if service not in dumped:
                    add(
                        PROBLEM,
                        "database",
                        f"{service} runs a {kind} server, but no database of it is in "
                        "backup.databases",
                        f"{kind} database of {service}",
                        f"add it to backup.databases in {descriptor}",
                    )
        try:
            mounts = client.inspect_container(container.id).get("Mounts") or []
        except NotFound:  # removed meanwhile
            continue
        for mount in mounts:
            if not mount.get("RW", True) or mount.get("Type") not in ("volume", "bind"):
                continue  # read-only mounts are configuration or code, not data
            where = f"{service}:{mount.get('Destination', '')}"
            if mount["Type"] == "volume":
                name = str(mount.get("Name") or "")
                if name in volumes or service in dumped:
                    continue  # a database's own volumes are covered by its dump
                if name in spare_volumes:
                    add(NOTE, "backup", f"volume {name} ({where}) is expendable: not backed up",
                        f"volume {name}", "")  # fmt: skip
                    continue
                add(
                    PROBLEM,
                    "backup",
                    f"volume {name} ({where}) is in no backup component",
                    f"volume {name}",
                    f"add it to backup.volumes in {descriptor}, or to backup.expendable "
                    "if it holds nothing to keep",
                )
                continue
            source = posixpath.normpath(str(mount.get("Source") or ""))
            if any(_within(source, path) for path in paths) or service in dumped:
                continue
            if any(_within(source, path) for path in spare_paths):
                add(NOTE, "backup", f"bind mount {source} ({where}) is expendable: not backed up",
                    f"bind mount {source}", "")  # fmt: skip
                continue
            inside = [path for path in paths if _within(path, source)]
            if inside:
                shown = ", ".join(posixpath.relpath(p, source) for p in inside)
                add(
                    WARNING,
                    "backup",
                    f"bind mount {source} ({where}) is backed up only in part ({shown})",
                    f"bind mount {source}",
                    f"add it to backup.paths in {descriptor}",
                )
            else:
                add(
                    PROBLEM,
                    "backup",
                    f"bind mount {source} ({where}) is in no backup component",
                    f"bind mount {source}",
                    f"add it to backup.paths in {descriptor}, or to backup.expendable "
                    "if it holds nothing to keep",
                )
    return found


def _readable_by_others(host: Host, project: Project) -> list[str]:
    """The project's archive folders and files, the archive store's repository (which
    the root's projects share), and its audit log, that group or others may read (folders
    0700 and files 0600 are what opskit writes; restic's 0400 are fine)."""
    from opskit.audit import log_path
    from opskit.store import REPOSITORY

    assert project.backup is not None
    folder = posixpath.join(project.backup.dir, project.name)
    repository = posixpath.join(project.backup.dir, REPOSITORY)
    script = (
        'for f in "$1" "$3"; do [ -e "$f" ] && find "$f" -perm /077 ! -type l ! -name ".lock*" '
        "-print; done; "
        '[ -e "$2" ] && find "$2" -perm /077 -print; true'
    )
    result = host.run(
        ["sh", "-c", script, "opskit", folder, log_path(project), repository], check=False
    )
    return result.text.splitlines()


def _same_filesystem(host: Host, first: str, second: str) -> bool | None:
    """Whether two paths (or their nearest existing parents) share a filesystem."""
    script = (
        'for p; do while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done; '
        'stat -c %d "$p"; done'
    )
    result = host.run(["sh", "-c", script, "opskit", first, second], check=False)
    devices = result.text.split()
    return devices[0] == devices[1] if result.returncode == 0 and len(devices) == 2 else None


def _descriptor_paths(runtime: Runtime, project: Project, state: ComposeState) -> list[Finding]:
    found = []
    wanted: list[tuple[str, str, str]] = []  # (env, what, path)
    for stack in state.stacks:
        if stack.project != project.name or not stack.present:
            continue
        if not stack.files:
            found.append(
                Finding(PROBLEM, "path", project.name, stack.env, f"no compose file in {stack.dir}")
            )
        wanted += [(stack.env, "compose file", path) for path in stack.files]
        if stack.env_file and stack.index == 0 and project.compose.env_file:
            wanted.append((stack.env, "env file", stack.env_file))
    for env in project.environments:
        if project.backup is not None:
            wanted += [
                (env, "backup.paths entry", project.resolve_path(p, env))
                for p in project.backup.paths
            ]
        if project.promote is not None and project.promote.dir:
            wanted.append((env, "promote.dir", project.resolve_path(project.promote.dir, env)))
    if project.delegate is not None:
        cli = project.delegate.cli
        for env in project.environments if "{env}" in cli else [""]:  # a CLI per env
            wanted.append((env, "delegate.cli", project.resolve_path(cli, env)))
    script = 'for p; do [ -e "$p" ] || printf "%s\\n" "$p"; done'
    paths = list(dict.fromkeys(path for _, _, path in wanted))
    missing = set(runtime.host.run(["sh", "-c", script, "opskit", *paths]).text.splitlines())
    for env, what, path in wanted:
        if path in missing:
            found.append(
                Finding(PROBLEM, "path", project.name, env, f"{what} {path} does not exist")
            )
    return found


def _delegated_backups(runtime: Runtime, project: Project) -> Finding:
    """What opskit does not do for backups that a project's own CLI makes (it never sees
    their archives): no freshness check in the watch, no restore drills. A dead-man ping
    of the scheduled backup is then the only alarm; without one that is a warning."""
    scheduled = project.backup is not None and bool(project.backup.schedule)
    pinged = runtime.settings().notify_for(project).ping("backup") is not None
    what = "the timer runs its CLI" if scheduled else "backup.schedule is not set"
    message = (
        f"backups are delegated to its own CLI ({what}): opskit neither checks their "
        "freshness nor drills them"
    )
    if scheduled and pinged:
        return Finding(
            NOTE, "backup", project.name, "", f"{message}; notify.pings.backup watches the runs"
        )
    return Finding(
        WARNING, "backup", project.name, "",
        f"{message}; set notify.pings.backup (with {{env}}) so that a missed or failed run alerts",
    )  # fmt: skip


def unkept_passwords(runtime: Runtime) -> list[Finding]:
    """The restic passwords in use (the archive store's, the offsite copies') of which no
    copy off the server is recorded, or whose file changed since (a warning: lose the
    server and the archives are lost with it); a store repository without its password
    file (a problem: nothing in it can be read). Doctor only: the watch does not alert on
    it every pass."""
    from opskit.escrow import CURRENT, NO_FILE, STORE, UNREADABLE, passwords, status

    found = []
    for password in passwords(runtime):
        if not password.used_by:
            continue
        if password.kind == STORE and not _store_repositories(runtime):
            continue  # no store written yet: nothing to keep (a new root's default)
        escrow = status(runtime.host, password)
        keep = (
            f"keep a copy off this server ('opskit password {password.kind} --show'), "
            f"then 'opskit password {password.kind} --confirm-escrowed'"
        )
        users = ", ".join(password.used_by)
        subject = f"password {password.path}"
        if escrow.state == NO_FILE:
            if password.kind == STORE:
                repositories = _store_repositories(runtime)
                if repositories:
                    found.append(
                        Finding(
                            PROBLEM, "password", "", "",
                            f"the archive store {repositories[0]} has no password file at "
                            f"{password.path}: none of its archives can be read",
                            subject=subject,
                            fix="put back the copy you kept (mode 0600)",
                        )
                    )  # fmt: skip
            continue
        if escrow.state == CURRENT:
            continue
        if escrow.state == UNREADABLE:
            message = f"cannot tell whether a copy of {password.path} is kept: {escrow.problem}"
        elif escrow.recorded_at:
            message = (
                f"{password.path} changed after its copy was recorded as kept "
                f"({escrow.recorded_at}): that copy no longer opens {password.opens}"
            )
        else:
            message = (
                f"no copy of {password.path} is recorded as kept off this server: losing the "
                f"server loses {password.opens} with it"
            )
        found.append(
            Finding(WARNING, "password", "", "", f"{message} (used by {users}); {keep}",
                    subject=subject, fix=keep)
        )  # fmt: skip
    return found


def _store_repositories(runtime: Runtime) -> list[str]:
    """The archive store repositories of the root that exist."""
    from opskit.store import REPOSITORY, kind_of

    folders = sorted(
        {
            p.backup.dir
            for p in runtime.projects()
            if p.backup is not None and kind_of(runtime, p) == "restic"
        }
    )
    paths = [posixpath.join(folder, REPOSITORY) for folder in folders]
    return [path for path in paths if runtime.host.exists(posixpath.join(path, "config"))]


def examine(runtime: Runtime, root_only: bool = False) -> DoctorReport:
    """Every finding for the root of *runtime*, in the order projects and envs are listed;
    with *root_only*, none about containers that no project of the root claims."""
    from opskit.store import kind_of

    found = survey(runtime)
    state, placed = found.state, found.placed
    projects = runtime.projects()
    findings = collisions(found)
    for stack in state.stacks:
        if stack.shared and stack.services is None:
            from opskit.compose import env_services_problem

            problem = env_services_problem(stack)
            findings.append(Finding(PROBLEM, "compose profile", stack.project, stack.env, problem))
        if stack.source == "adopted":
            findings.append(
                Finding(
                    WARNING,
                    "compose name",
                    stack.project,
                    stack.env,
                    f"{stack.label()} runs as compose project {stack.name!r}, adopted from its "
                    f"containers; pin it with compose.project_name: {stack.name}",
                )
            )
    for project in projects:
        findings += _descriptor_paths(runtime, project, state)
        for env in project.environments:
            findings += [
                Finding(PROBLEM, "service name", project.name, env, p.ignored)
                for p in found.of(project, env)
                if p.ignored is not None
            ]
            try:
                findings += coverage(runtime, project, env, found)
            except OpskitError as exc:
                findings.append(
                    Finding(
                        PROBLEM, "backup", project.name, env,
                        f"cannot tell what the backup of {project.name} {env} covers: {exc}",
                    )
                )  # fmt: skip
        if runtime.delegates(project, "backup"):
            findings.append(_delegated_backups(runtime, project))
            continue
        if project.backup is None:
            findings.append(
                Finding(
                    WARNING, "schedule", project.name, "", "no backup section: nothing is backed up"
                )
            )
            continue
        if project.backup.schedule is None:
            findings.append(
                Finding(
                    WARNING,
                    "schedule",
                    project.name,
                    "",
                    "backup.schedule is not set: backups run only by hand",
                )
            )
        loose = _readable_by_others(runtime.host, project)
        if loose:
            findings.append(
                Finding(
                    PROBLEM,
                    "backup",
                    project.name,
                    "",
                    f"{len(loose)} backup folders or files can be read by other users, e.g. "
                    f"{loose[0]}: chmod 700 the folders and 600 the files",
                )
            )
        if project.backup.store is None and kind_of(runtime, project) == "folder":
            findings.append(
                Finding(
                    NOTE,
                    "backup",
                    project.name,
                    "",
                    f"archives stay plain folders in {project.backup.dir} (it holds folder "
                    "archives from before the deduplicated store): 'opskit backups migrate "
                    f"{project.name}' moves them into the store, or set backup.store: folder "
                    "to keep folders",
                )
            )
        same = _same_filesystem(runtime.host, project.backup.dir, project.folder)
        if same:
            findings.append(
                Finding(
                    WARNING,
                    "backup",
                    project.name,
                    "",
                    f"backup.dir {project.backup.dir} is on the same filesystem as the data "
                    f"in {project.folder}: one disk failure loses both (copy them offsite)",
                )
            )
    findings += unkept_passwords(runtime)
    if root_only:
        return DoctorReport(tuple(findings))
    names = {p.name for p in projects}
    claimed = {p.container.id for p in placed if p.container is not None}
    for container in state.containers:
        if container.id in claimed:
            continue
        label = container.labels.get(LABEL_PROJECT)
        if label and label not in names:
            findings.append(
                Finding(
                    WARNING,
                    "unclaimed",
                    label,
                    container.labels.get("ops.environment", ""),
                    f"container {container.name} is labelled for project {label!r}, "
                    "which no descriptor under the root names",
                )
            )
        elif label:
            folder = container.labels.get(COMPOSE_WORKING_DIR, "")
            findings.append(
                Finding(
                    NOTE,
                    "unclaimed",
                    label,
                    container.labels.get("ops.environment", ""),
                    f"container {container.name} is labelled for {label}, but compose started "
                    f"it from {folder}, which is none of that env's stacks",
                )
            )
        else:
            findings.append(
                Finding(
                    NOTE, "unclaimed", "", "", f"container {container.name} belongs to no project"
                )
            )
    return DoctorReport(tuple(findings))
