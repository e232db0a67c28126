"""Data sync: copy an env's data (databases, paths, volumes) into another env of the project.

The components are the ones a backup of each env is made of (``opskit_backup_components``),
paired across the two envs by :attr:`~opskit.components.Component.sync_key`. Databases
stream from the source container's dump client through the transform chosen by
``opskit_sync_transform`` into the target container's client: no temporary copy, nothing
held in memory. Folders and volumes are mirrored with rsync on the host (changed files
replaced, extra files removed, modes and numeric owners kept).

The target is backed up first (a normal archive), its application services are stopped
for the copy, and any failure puts the target back from that archive.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any, cast

import attrs

from opskit import databases
from opskit.components import CHUNK, BackupContext, Component, DatabaseDump, Prefetched

# Defined in opskit.contracts (the types plugins and engines share); re-exported here.
from opskit.contracts import SyncContext as SyncContext
from opskit.errors import NotFoundError, OpskitError
from opskit.output import progress as say
from opskit.transform import Replacer, Transform, TransformedReader

if TYPE_CHECKING:
    from opskit.archive import Archive
    from opskit.descriptor import Project
    from opskit.host import Host, Process
    from opskit.jobs import Job
    from opskit.runtime import Runtime

SWITCH_INTERVAL = 0.0002  # seconds; Python's default is 0.005
FILES_NAMED = 20  # files a report names for each folder, of those deleted and of those changed


# -- checks -------------------------------------------------------------------


def check_direction(project: Project, source: str, target: str) -> None:
    """Refuse a direction the descriptor's ``sync.pairs`` does not list."""
    project.check_env(source)
    project.check_env(target)
    pairs = project.sync.pairs if project.sync else ()
    if (source, target) not in pairs:
        allowed = ", ".join(f"{a}->{b}" for a, b in pairs) or "none"
        raise OpskitError(
            f"{project.name}: sync from {source} to {target} is not allowed "
            f"(sync.pairs in {project.path} allows: {allowed})"
        )


def replacements(project: Project, source: str, target: str) -> tuple[tuple[str, str], ...]:
    """The rewrite for this direction from ``sync.replace``; refuses one that would change
    nothing (the same string for both envs, or a string for one env only)."""
    if project.sync is None or not project.sync.replace:
        return ()
    old, new = project.sync.strings(source), project.sync.strings(target)
    if not old and not new:
        return ()
    if not old or not new:
        missing = source if not old else target
        raise OpskitError(
            f"{project.name}: sync.replace has no value for {missing}, so the replacement "
            f"from {source} to {target} would change nothing"
        )
    for before, after in zip(old, new, strict=True):
        if before == after:
            raise OpskitError(
                f"{project.name}: sync.replace is {before!r} for both {source} and {target}; "
                "the replacement would change nothing"
            )
    return tuple(zip(old, new, strict=True))


# -- reports ------------------------------------------------------------------


@attrs.frozen
class TableReport:
    name: str
    source_rows: int
    target_rows: int | None  # None: the target has no such table


@attrs.frozen
class DatabaseReport:
    key: str
    service: str
    name: str
    tables: tuple[TableReport, ...]
    replacements: Mapping[str, int]  # per table; counted on the way (dry run: on a read)
    # Places where a replaced string is part of a longer host name (see sync.whole_hosts),
    # each counted once, and the first few named; a dry run only.
    longer_hosts: int = 0
    lookalikes: tuple[str, ...] = ()
    # Values that will not fit their column once rewritten (the first few named, and how
    # many); a dry run only, from the source's schema.
    too_long: tuple[str, ...] = ()
    too_long_count: int = 0


@attrs.frozen
class FilesReport:
    key: str
    source: str
    target: str
    files: int  # regular files copied (new or changed)
    bytes: int  # their size
    deleted: int  # files and folders removed from the target
    changed: int = 0  # files, links and modes that change in the target (new ones too)
    changed_names: tuple[str, ...] = ()  # the first FILES_NAMED of them
    deleted_names: tuple[str, ...] = ()  # the first FILES_NAMED deleted


@attrs.frozen
class SyncReport:
    project: str
    source: str
    target: str
    dry_run: bool
    databases: tuple[DatabaseReport, ...]
    files: tuple[FilesReport, ...]
    skipped: tuple[str, ...]  # components one env has and the other lacks
    backup: str | None  # the target's archive taken first
    delegated: bool = False  # run by the project's own CLI (``delegate:``), which reported it

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=True)


# -- the work -----------------------------------------------------------------


@attrs.frozen
class Plan:
    context: SyncContext
    source: BackupContext
    target: BackupContext
    pairs: tuple[tuple[Component, Component], ...]
    skipped: tuple[str, ...]


def plan(runtime: Runtime, project: Project, source: str, target: str) -> Plan:
    """Check everything a sync needs, read-only: direction, replacements, components,
    running databases. Raises before anything is copied."""
    check_direction(project, source, target)
    rewrite = replacements(project, source, target)
    if project.backup is None:
        raise OpskitError(
            f"{project.name}: sync needs a backup section, because the target is backed up first"
        )
    from opskit.backups import Engine

    engine = Engine(runtime)
    source_context = engine.context(project, source)
    target_context = engine.context(project, target)
    by_key = {c.sync_key: c for c in engine.components(project, target, target_context)}
    pairs, skipped = [], []
    for component in engine.components(project, source, source_context):
        counterpart = by_key.pop(component.sync_key, None)
        if counterpart is None or counterpart.kind != component.kind:
            skipped.append(component.key)
        else:
            pairs.append((component, counterpart))
    skipped += [c.key for c in by_key.values()]
    for component, counterpart in pairs:
        if isinstance(component, DatabaseDump) and isinstance(counterpart, DatabaseDump):
            source_context.running_container(component.database.service)
            target_context.running_container(counterpart.database.service)
    if not pairs:
        raise NotFoundError(f"{project.name}: {source} and {target} have no data in common to sync")
    whole = project.sync.whole_hosts if project.sync else False
    context = SyncContext(runtime.host, project, source, target, rewrite, whole)
    return Plan(context, source_context, target_context, tuple(pairs), tuple(skipped))


def _transform(runtime: Runtime, plan: Plan, component: Component) -> Transform | None:
    if not plan.context.replacements:
        return None
    return runtime.plugins.sync_transform(plan.context, component)


def rsync_changes(listing: str) -> Iterator[tuple[bool, str]]:
    """(deleted, name) for each entry rsync's ``--itemize-changes --out-format='%i %n'``
    lists as changed or deleted (a deleted folder's name ends in "/"); folders are listed
    only when deleted: what changes in them is listed on its own."""
    for line in listing.splitlines():
        if line.startswith("*deleting "):
            yield True, line.removeprefix("*deleting ").lstrip(" ")  # a folder ends in "/"
            continue
        flags, _, name = line.partition(" ")
        if not name or len(flags) != 11 or flags[0] not in "<>ch.":
            continue  # a line of --stats
        if name.endswith("/"):
            continue  # a folder: what changes in it is listed
        if flags[0] == "." and not flags[2:].strip("."):
            continue  # listed, but nothing about it changes
        yield False, name


def rsync_tree(host: Host, source: str, target: str, dry_run: bool) -> FilesReport:
    """Mirror folder *source* into *target*; report what changed (or would, *dry_run*).

    A folder that is itself a link is refused: rsync would write (and delete) through it
    in whatever folder it leads to."""
    for folder in (source, target):
        if host.run(["test", "-L", folder.rstrip("/")], check=False).returncode == 0:
            raise OpskitError(f"{folder} is a link; sync copies only real folders")
    argv = ["rsync", "--archive", "--hard-links", "--numeric-ids", "--delete", "--stats"]
    argv += ["--itemize-changes", "--out-format=%i %n"]
    if dry_run:
        argv.append("--dry-run")
    result = host.run([*argv, "--", source.rstrip("/") + "/", target.rstrip("/") + "/"])
    text = result.text

    def number(label: str) -> int:
        found = re.search(rf"^{label}: ([\d,.]+)", text, re.MULTILINE)
        return int(re.sub(r"[,.]", "", found.group(1))) if found else 0

    changed: list[str] = []
    deleted: list[str] = []
    for gone, name in rsync_changes(text):
        (deleted if gone else changed).append(name)
    return FilesReport(
        "",
        source,
        target,
        number("Number of regular files transferred"),
        number("Total transferred file size"),
        len(deleted),
        len(changed),
        tuple(changed[:FILES_NAMED]),
        tuple(deleted[:FILES_NAMED]),
    )


def _copy_database(
    source: BackupContext,
    component: DatabaseDump,
    target: BackupContext,
    counterpart: DatabaseDump,
    transform: Transform | None,
) -> None:
    dump = component.dump(source)
    stream = dump.stdout
    if transform is not None:
        raw = cast("IO[bytes]", Prefetched(dump.stdout))
        stream = cast("IO[bytes]", TransformedReader(raw, transform))
    switch = sys.getswitchinterval()
    # The transform holds the GIL; the threads that move the data need it for a moment
    # after each read and write. A short switch interval lets them have it at once.
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        counterpart.restore(target, stream)  # reads the stream to its end
    except BaseException:
        dump.kill()  # nobody reads its output any more
        dump.wait()
        raise
    finally:
        sys.setswitchinterval(switch)
    _check_dump(source, component, dump)


def _check_dump(source: BackupContext, component: DatabaseDump, dump: Process) -> None:
    """Wait for the dump client; raise naming the database when it failed."""
    code = dump.wait()
    if code != 0:
        container = source.running_container(component.database.service).name
        raise databases.client_error(component.database, container, code, dump.errors())


def _count_replacements(
    source: BackupContext, component: DatabaseDump, transform: Transform
) -> None:
    dump = component.dump(source)
    while chunk := dump.stdout.read(CHUNK):
        transform.feed(chunk)
    transform.finish()
    _check_dump(source, component, dump)


def _column_limits(
    source: BackupContext, component: DatabaseDump
) -> dict[tuple[str, str], tuple[int | None, int | None]]:
    """The length limit of every text column of the source database, from its schema:
    (table as its dump names it, column) -> (characters, bytes). Bytes are given where
    the dump's UTF-8 bytes are what the column stores (utf8 character sets, binary)."""
    database = component.database
    container = source.running_container(database.service).name
    if database.type in databases.MARIADB_TYPES:
        sql = (
            "SELECT CONCAT_WS(CHAR(31), table_name, column_name, character_maximum_length, "
            "IFNULL(character_octet_length, ''), IFNULL(character_set_name, '')) "
            "FROM information_schema.columns WHERE table_schema = DATABASE() "
            "AND character_maximum_length IS NOT NULL"
        )
    else:
        sql = (
            "SELECT table_schema || '.' || table_name || chr(31) || column_name || chr(31) "
            "|| character_maximum_length FROM information_schema.columns "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "AND character_maximum_length IS NOT NULL"
        )
    limits: dict[tuple[str, str], tuple[int | None, int | None]] = {}
    for line in databases.query(source.host, container, database, sql).splitlines():
        table, column, characters, *rest = [*line.split("\x1f"), "", "", ""]
        if not characters.isdigit():
            continue
        octets, charset = rest[0], rest[1]
        stored_as_utf8 = charset.startswith("utf8") or charset in ("", "binary")
        limit = int(octets) if octets.isdigit() and stored_as_utf8 else None
        limits[(table, column)] = (int(characters), limit)
    return limits


def _table_report(
    plan: Plan, component: DatabaseDump, counterpart: DatabaseDump
) -> list[TableReport]:
    source_rows = databases.table_rows(
        plan.source.host,
        plan.source.running_container(component.database.service).name,
        component.database,
    )
    target_rows = databases.table_rows(
        plan.target.host,
        plan.target.running_container(counterpart.database.service).name,
        counterpart.database,
    )
    return [TableReport(name, rows, target_rows.get(name)) for name, rows in source_rows.items()]


def run(
    runtime: Runtime,
    project: Project,
    source: str,
    target: str,
    *,
    dry_run: bool = False,
    progress: IO[str] | None = None,
    before_changes: Callable[[], None] | None = None,
    job: Job | None = None,
) -> SyncReport:
    """Sync *source* into *target* (see the module docstring); with *dry_run* only report.

    *before_changes* is called once every check has passed and before anything changes
    (the CLI asks for confirmation there). With *job*, the narration goes to the job's log,
    not *progress*, and its details receive what the audit log records.
    """
    from opskit.backups import Engine, database_services

    found = plan(runtime, project, source, target)
    database_reports: list[DatabaseReport] = []
    file_reports: list[FilesReport] = []
    engine = Engine(runtime, progress, job=job)

    if dry_run:
        for component, counterpart in found.pairs:
            if isinstance(component, DatabaseDump) and isinstance(counterpart, DatabaseDump):
                say(progress, f"counting the rows of {component.key} in {source} and {target}")
                tables = _table_report(found, component, counterpart)
                transform = _transform(runtime, found, component)
                if isinstance(transform, Replacer):
                    transform.watch_lengths(_column_limits(found.source, component))
                if transform is not None:
                    say(progress, f"counting replacements in {component.key}")
                    _count_replacements(found.source, component, transform)
                counts = dict(transform.counts) if transform is not None else {}
                replacer = transform if isinstance(transform, Replacer) else None
                database_reports.append(
                    DatabaseReport(
                        component.key,
                        component.database.service,
                        component.database.name,
                        tuple(tables),
                        counts,
                        replacer.longer_hosts if replacer else 0,
                        tuple(replacer.lookalikes) if replacer else (),
                        tuple(replacer.too_long) if replacer else (),
                        replacer.too_long_count if replacer else 0,
                    )
                )
            else:
                say(progress, f"comparing the files of {component.key} with {counterpart.key}")
                file_reports.append(_files(found, component, counterpart, dry_run=True))
        return SyncReport(
            project.name, source, target, True, tuple(database_reports), tuple(file_reports),
            found.skipped, None,
        )  # fmt: skip

    if before_changes is not None:
        before_changes()
    if job is not None:
        job.changing()
        progress = job.lines("opskit")

    def step(component: Component, counterpart: Component) -> Callable[[BackupContext], None]:
        def copy(target_context: BackupContext) -> None:
            if isinstance(component, DatabaseDump) and isinstance(counterpart, DatabaseDump):
                transform = _transform(runtime, found, component)
                _copy_database(found.source, component, target_context, counterpart, transform)
                database_reports.append(
                    DatabaseReport(
                        component.key,
                        component.database.service,
                        component.database.name,
                        (),
                        dict(transform.counts) if transform is not None else {},
                    )
                )
            else:
                file_reports.append(_files(found, component, counterpart, dry_run=False))

        return copy

    steps = [
        (f"copying {component.key} from {source}", step(component, counterpart))
        for component, counterpart in found.pairs
    ]
    timeout = project.gate_timeout("sync")
    keep = database_services(c for _, c in found.pairs)
    archive = engine.guarded(
        project,
        target,
        f"sync from {source}",
        lambda: engine.replace_data(project, target, steps, keep, timeout),
        health_timeout=timeout,
    )
    report = SyncReport(
        project.name, source, target, False, tuple(database_reports), tuple(file_reports),
        found.skipped, archive.location if archive else None,
    )  # fmt: skip
    if job is not None:
        job.details["archive"] = report.backup
        job.details["replacements"] = sum(sum(d.replacements.values()) for d in database_reports)
    return report


def _files(plan: Plan, component: Component, counterpart: Component, dry_run: bool) -> FilesReport:
    source_path = component.location(plan.source)
    if source_path is None:
        # A plugin's component without a folder: stream it across like a restore would.
        if dry_run:
            return FilesReport(component.key, component.key, counterpart.key, 0, 0, 0)
        process = component.dump(plan.source)
        counterpart.restore(plan.target, process.stdout)
        if process.wait() != 0:
            raise OpskitError(f"copying {component.key}: {process.errors().strip()}")
        return FilesReport(component.key, component.key, counterpart.key, 0, 0, 0)
    if not plan.source.host.exists(source_path):
        raise NotFoundError(
            f"{plan.context.project.name} {plan.context.source}: {source_path} does not exist"
        )
    try:
        target_path = counterpart.location(plan.target, create=not dry_run)
    except NotFoundError:
        if not dry_run:
            raise
        target_path = None
    target_path = target_path or f"/nonexistent/{counterpart.key}"  # dry run: all would be new
    report = rsync_tree(plan.source.host, source_path, target_path, dry_run)
    return attrs.evolve(report, key=component.key)


# -- restore into another env -------------------------------------------------


def from_archive(
    runtime: Runtime,
    project: Project,
    archive: Archive,
    target: str,
    *,
    safety: bool = True,
    progress: IO[str] | None = None,
    job: Job | None = None,
) -> Archive | None:
    """Restore *archive*, made of another env (the source), into *target*: a sync from
    that night instead of from the live source, which is not touched. Each component goes
    into the target's counterpart (paired by ``sync_key``, as a sync pairs them),
    databases through the same rewrite (``sync.replace``); verify first, safety backup,
    rollback and the health gate as a restore has them. Returns the safety archive."""
    from opskit.archive import ArchiveError, is_tree
    from opskit.backups import Engine, database_services

    source = str(archive.manifest.get("environment"))
    if archive.manifest.get("project") != project.name or source == target:
        raise ArchiveError(f"archive {archive.name} is not one of another env of {project.name}")
    check_direction(project, source, target)
    rewrite = replacements(project, source, target)
    engine = Engine(runtime, progress, job=job)
    engine.refuse_damaged(archive)
    of_source = {c.key: c for c in engine.components(project, source)}
    of_target = {c.sync_key: c for c in engine.components(project, target)}
    unknown = [r.key for r in archive.components if r.key not in of_source]
    if unknown:
        raise ArchiveError(
            f"archive {archive.name} holds {', '.join(unknown)}, which {project.name} "
            f"{source} no longer has (the descriptor, or the container it was found in)"
        )
    whole = project.sync.whole_hosts if project.sync else False
    context = SyncContext(runtime.host, project, source, target, rewrite, whole)
    steps: list[tuple[str, Callable[[BackupContext], None]]] = []
    trees: set[str] = set()
    into: list[Component] = []
    for record in archive.components:
        component = of_source[record.key]
        counterpart = of_target.get(component.sync_key)
        if counterpart is None or counterpart.kind != component.kind:
            engine.warn(f"{record.key}: {target} has no counterpart; left out")
            continue

        step = f"restoring {record.key} into {counterpart.key}"
        steps.append((step, _restorer(runtime, archive, record, component, counterpart, context)))
        into.append(counterpart)
        if is_tree(record):
            trees.add(step)
    if not steps:
        raise NotFoundError(f"{project.name}: {source} and {target} have no data in common")
    timeout = project.gate_timeout("restore")
    keep = database_services(into)
    return engine.guarded(
        project,
        target,
        f"restore of {archive.name}",
        lambda: engine.replace_data(project, target, steps, keep, timeout, trees),
        safety=safety,
        health_timeout=timeout,
    )


def _restorer(
    runtime: Runtime,
    archive: Archive,
    record: Any,
    component: Component,
    counterpart: Component,
    context: SyncContext,
) -> Callable[[BackupContext], None]:
    """The step that restores *record* of *archive* (*component*'s) into *counterpart*,
    a database through the sync's rewrite."""
    from opskit.archive import component_stream

    def restore(target_context: BackupContext) -> None:
        with component_stream(runtime.host, archive, record) as stream:
            transform = (
                runtime.plugins.sync_transform(context, component) if context.replacements else None
            )
            if transform is None:
                counterpart.restore(target_context, stream, record)
                return
            rewritten = TransformedReader(cast("IO[bytes]", Prefetched(stream)), transform)
            switch = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL)  # see _copy_database
            try:
                counterpart.restore(target_context, cast("IO[bytes]", rewritten), record)
            finally:
                sys.setswitchinterval(switch)

    return restore
