"""The backup engine: write, list, verify, prune and restore archives of one env.

Plugins contribute components; this module owns everything around them.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import IO, TYPE_CHECKING, Any

import attrs

from opskit import __version__
from opskit.archive import (
    FORMAT,
    VERIFIED,
    Archive,
    ArchiveError,
    ComponentRecord,
    Fault,
    Put,
    TreePut,
    check_name_of,
    component_stream,
    env_dir,
    is_tree,
    now,
    stamp,
    store_component,
    verify,
    write_json,
)
from opskit.components import BackupContext, Component, TarTree, extract_member, from_record
from opskit.containers import managed
from opskit.errors import Cancelled, NotFoundError, OpskitError
from opskit.gate import engine_time, wait_healthy
from opskit.locks import env_lock
from opskit.output import progress as say
from opskit.output import warning
from opskit.processes import signals_deferred
from opskit.retention import Decision, decide
from opskit.store import FolderStore, ResticStore, kind_of, store_of

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.host import Host
    from opskit.jobs import Job
    from opskit.runtime import Runtime


def lock_timeout_from_env() -> float:
    """How long a command waits for an env's lock: ``OPSKIT_LOCK_TIMEOUT`` seconds, else 300
    (read when an engine is made, not when opskit is imported)."""
    return float(os.environ.get("OPSKIT_LOCK_TIMEOUT") or 300)


def backup_dir(project: Project, env: str) -> str:
    if project.backup is None:
        raise OpskitError(f"project {project.name} has no backup section in {project.path}")
    return env_dir(project.backup.dir, project.name, env)


def lock_dir(project: Project, env: str) -> str:
    """Where the env's lock lives: its backup folder, else ``.opskit/{env}`` in the project."""
    if project.backup is not None:
        return backup_dir(project, env)
    return posixpath.join(project.folder, ".opskit", env)


@attrs.define
class Engine:
    """Backups on one :class:`~opskit.runtime.Runtime` (its host, plugins and projects)."""

    runtime: Runtime
    progress: IO[str] | None = None
    lock_timeout: float = attrs.field(factory=lock_timeout_from_env)
    # The job the engine works for, given at construction: narration and progress go to it
    # as events (None: to *progress*).
    job: Job | None = attrs.field(default=None, kw_only=True, on_setattr=attrs.setters.frozen)
    # each component's bytes in the archive before the one being written (progress totals)
    _expected: dict[str, int] = attrs.field(factory=dict, init=False, repr=False)

    def say(self, text: str) -> None:
        if self.job is not None:
            self.job.log(text)
        else:
            say(self.progress, text)

    def warn(self, text: str) -> None:
        if self.job is not None:
            self.job.warn(text)
        else:
            warning(text)

    @property
    def output(self) -> IO[str] | None:
        """Where the programs the engine runs (compose) write their output."""
        return self.job.lines("compose") if self.job is not None else self.progress

    @property
    def host(self) -> Any:
        return self.runtime.host

    def components(
        self, project: Project, env: str, context: BackupContext | None = None
    ) -> list[Component]:
        """The env's components from every plugin; pass *context* when you have one."""
        context = context or self.context(project, env)
        components = self.runtime.plugins.backup_components(context)
        if not components:
            raise OpskitError(
                f"{project.name} {env}: nothing to back up (the backup section names nothing)"
            )
        return components

    def store(self, project: Project, env: str) -> FolderStore | ResticStore:
        """Where the env's archives live (``backup.store``)."""
        if project.backup is None:
            raise OpskitError(f"project {project.name} has no backup section in {project.path}")
        state_dir = self.runtime.settings().state_dir
        kind = kind_of(self.runtime, project)
        return store_of(
            self.host, project.backup.dir, kind, state_dir, project.name, env, self.lock_timeout
        )

    def context(self, project: Project, env: str) -> BackupContext:
        placements = managed(self.runtime.stacks.status(project, env))
        return BackupContext(self.host, project, env, tuple(placements))

    # -- backup ----------------------------------------------------------------

    def backup(self, project: Project, env: str) -> Archive:
        """Write one archive of *env*; return it once it is complete and on disk."""
        directory = backup_dir(project, env)
        private_dir(self.host, directory)
        with env_lock(self.host, directory, f"backup of {project.name} {env}", self.lock_timeout):
            archive = self._backup_locked(project, env, directory)
        if self.job is not None:
            self.job.details["archive"] = archive.location
            self.job.details["size"] = archive.size
            self.job.details.update(self._disk_sample(archive, directory))
        return archive

    def _disk_sample(self, archive: Archive, directory: str) -> dict[str, int]:
        """What the backups page plots as disk use over time: the env's data as backed up
        (``data_bytes``: the components' bytes before compression) and the used and total
        bytes of the filesystem that holds the env's backups."""
        from opskit.disk import filesystems

        sample = {"data_bytes": sum(r.raw_bytes for r in archive.components)}
        found = filesystems(self.host, [directory]).get(directory)
        if found is not None:
            size, _free, used = found
            sample.update(backup_disk_used=used, backup_disk_size=size)
        return sample

    def _backup_locked(
        self, project: Project, env: str, directory: str, only: Sequence[str] = ()
    ) -> Archive:
        """Write the archive; with *only*, of those components alone (a partial archive,
        whose manifest names them under ``only``)."""
        store = self.store(project, env)
        store.clean()
        components = self.components(project, env)
        if only:
            components = [c for c in components if c.key in only]
            missing = sorted(set(only) - {c.key for c in components})
            if missing:
                raise OpskitError(
                    f"{project.name} {env}: the descriptor names no component {', '.join(missing)}"
                )
        started = now()
        name = f"{project.name}-{env}-{stamp(started)}"
        while store.taken(name):
            time.sleep(0.2)  # one archive per second; names carry the second
            started = now()
            name = f"{project.name}-{env}-{stamp(started)}"
        self._expected = self._sizes_last_time(store)
        writer = store.begin(name)
        try:
            records = self._write_components(project, env, components, writer.put, writer.tree)
            manifest = {
                "format": FORMAT,
                "opskit": __version__,
                "host": self.host.run(["hostname"]).text.strip(),
                "project": project.name,
                "environment": env,
                "started": started.isoformat(),
                "finished": now().isoformat(),
                "descriptor": {"path": project.path, "text": self.host.read_text(project.path)},
                "components": [record.as_dict() for record in records],
            }
            if only:
                manifest["only"] = sorted(only)
            return writer.commit(manifest)
        except BaseException as exc:
            writer.abort()
            if isinstance(exc, OSError):
                raise OpskitError(
                    f"{project.name} {env}: writing the archive failed: {exc}"
                ) from None
            raise

    def _write_components(
        self,
        project: Project,
        env: str,
        components: list[Component],
        put: Put,
        tree: TreePut | None = None,
    ) -> list[Any]:
        assert project.backup is not None
        running = {
            p.service for p in self.runtime.stacks.status(project, env) if p.state == "running"
        }
        wanted = [project.expand(service, env) for service in project.backup.stop]
        stopped = [service for service in wanted if service in running]
        try:
            for service in stopped:
                self.say(f"stopping {service} for the backup")
                self.runtime.stacks.lifecycle(project, env, "stop", service, progress=self.output)
            context = self.context(project, env)
            return self._write_overlapped(project, env, components, context, put, tree)
        finally:
            for service in stopped:
                self.say(f"starting {service} again")
                self.runtime.stacks.lifecycle(project, env, "start", service, progress=self.output)

    def _write_overlapped(
        self,
        project: Project,
        env: str,
        components: list[Component],
        context: BackupContext,
        put: Put,
        tree: TreePut | None,
    ) -> list[Any]:
        """Write the paths and volumes, where the store keeps them as trees (restic reads
        the folders), in a second thread while this one streams the database dumps: a dump
        waits on its database server, a tree on the disk. The manifest keeps the
        descriptor's order; each component's phase is shown in turn, a tree's once the
        dumps are done, with what it did meanwhile. Without *tree*, or on a host that runs
        one stream at a time (:attr:`Host.streams`), one after the other."""
        from concurrent.futures import ThreadPoolExecutor

        aside = [
            c
            for c in components
            if tree is not None and isinstance(c, TarTree) and self.host.streams > 1
        ]
        if not aside or len(aside) == len(components):
            return [self._write_component(project, env, c, context, put, tree) for c in components]
        records: dict[str, Any] = {}
        tallies = {c.key: _Tally() for c in aside}
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="opskit-tree") as pool:
            futures = {
                c.key: pool.submit(store_component, c, context, put, tallies[c.key].add, tree)
                for c in aside
            }
            try:
                for component in components:
                    if component.key not in futures:
                        records[component.key] = self._write_component(
                            project, env, component, context, put, tree
                        )
                for component in aside:
                    records[component.key] = self._collect(
                        project, env, component, futures[component.key], tallies[component.key]
                    )
            except BaseException:
                for future in futures.values():
                    future.cancel()  # the one under way ends first: then the archive is aborted
                raise
        return [records[c.key] for c in components]

    def _sizes_last_time(self, store: Any) -> dict[str, int]:
        """Each component's bytes in the env's newest whole archive: what a progress bar
        expects this time (an estimate; nothing when there is none or it cannot be read)."""
        if self.job is None:
            return {}
        try:
            newest = next((a for a in store.archives() if not a.only), None)
        except OpskitError:
            return {}
        return {r.key: r.raw_bytes for r in newest.components} if newest is not None else {}

    def _collect(
        self, project: Project, env: str, component: Component, future: Any, tally: _Tally
    ) -> Any:
        """The record of a component written in the second thread, under its phase."""
        if self.job is None:
            say(self.progress, f"{project.name} {env}: {component.key}")
            return future.result()
        with self.job.phase(component.key):
            advance = self.job.meter(self._expected.get(component.key))
            while True:
                try:
                    record = future.result(timeout=PROGRESS_WAIT)
                    break
                except TimeoutError:
                    advance(tally.take())
            advance(tally.take())
            advance(0)
            return record

    def _write_component(
        self,
        project: Project,
        env: str,
        component: Component,
        context: BackupContext,
        put: Put,
        tree: TreePut | None = None,
    ) -> Any:
        if self.job is None:
            say(self.progress, f"{project.name} {env}: {component.key}")
            return store_component(component, context, put, tree=tree)
        with self.job.phase(component.key):
            advance = self.job.meter(self._expected.get(component.key))
            record = store_component(component, context, put, advance, tree)
            advance(0)  # the final count: the component's raw size
            return record

    # -- list, verify, prune ---------------------------------------------------

    def archives(self, project: Project, env: str) -> list[Archive]:
        if project.backup is None:
            return []
        return self.store(project, env).archives()

    def whole_archives(self, project: Project, env: str) -> list[Archive]:
        """The archives of the whole env, newest first: without the partial ones (the
        safety backups of ``restore --only``), which never stand for the env."""
        return [a for a in self.archives(project, env) if not a.only]

    def find(self, project: Project, env: str, name: str | None) -> Archive:
        """The named archive of this env, or the newest one of the whole env when *name*
        is None."""
        directory = backup_dir(project, env)
        if name is not None:
            check_name_of(project.name, env, name)
        store = self.store(project, env)
        found = store.archives()
        if name is None:
            found = [a for a in found if not a.only]
            if not found:
                raise NotFoundError(f"{project.name} {env}: no archives in {directory}")
            return found[0]
        for archive in found:
            if archive.name == name:
                return archive
        raise NotFoundError(store.absent(name))

    def verify(self, archive: Archive) -> list[Fault]:
        """Check an archive and record the result in its ``verified.json``."""
        faults = verify(self.host, archive)
        path = posixpath.join(archive.path, VERIFIED)
        self.host.run(["rm", "-f", "--", path])
        record = {
            "time": now().isoformat(),
            "ok": not faults,
            "faults": [attrs.asdict(f) for f in faults],
        }
        write_json(self.host, path, record)
        return faults

    def prune(
        self, project: Project, env: str, dry_run: bool, moment: datetime | None = None
    ) -> Decision:
        """Remove the archives of *env* that its retention keeps for no reason (with
        *dry_run* only decide). Kept whatever the counts: the newest verified archive,
        the newest drilled one, and the undo points named by audit entries of the last
        ``keep_undo_days`` before *moment* (default: now). A partial archive (the safety
        backup of ``restore --only``) counts for no rule: it is kept while it is an undo
        point, else removed."""
        from opskit.audit import undo_points

        assert project.backup is not None
        directory = backup_dir(project, env)
        if not self.host.exists(directory):  # never backed up (its first backup makes it)
            return decide([], keep_last=1, keep_daily=0, keep_weekly=0, keep_monthly=0)
        with env_lock(self.host, directory, f"prune of {project.name} {env}", self.lock_timeout):
            store = self.store(project, env)
            listed = store.archives()
            archives = [a for a in listed if not a.only]
            retention = project.backup.retention
            since = (moment or now()) - timedelta(days=retention.keep_undo_days)
            points = (
                undo_points(self.host, project, env, {a.name for a in listed}, since)
                if retention.keep_undo_days
                else {}
            )
            names = {a.name for a in archives}
            decision = decide(
                [(a.name, a.created) for a in archives],
                keep_last=retention.keep_last,
                keep_daily=retention.keep_daily,
                keep_weekly=retention.keep_weekly,
                keep_monthly=retention.keep_monthly,
                newest_verified=next((a.name for a in archives if a.verified_state == "ok"), None),
                newest_drilled=next((a.name for a in archives if a.drill_state == "ok"), None),
                undo_points={k: v for k, v in points.items() if k in names},
            )
            decision = with_partials(decision, [a.name for a in listed if a.only], points)
            if not dry_run:
                doomed = set(decision.remove)
                store.clean()  # leftovers of an interrupted backup go with the same prune
                store.remove(a for a in listed if a.name in doomed)
            return decision

    # -- migrate ---------------------------------------------------------------

    def migrate(self, project: Project, env: str, dry_run: bool = False) -> Migration:
        """Move the folder archives of *env* into the root's restic store, oldest first:
        each copied, verified from the store (recorded as ``verify`` does), and only then
        its folder removed. An archive that does not copy or verify stays a folder and is
        named in :attr:`Migration.failed`; the others are still moved. A copy left by a
        migration cut short (the archive in both places) is verified and finished. With
        *dry_run* only list what would move."""
        assert project.backup is not None
        if project.backup.store == "folder":
            raise OpskitError(
                f"{project.name}: backup.store is folder in {project.path}: set "
                "backup.store: restic (or remove the line) to migrate its archives into the store"
            )
        state_dir = self.runtime.settings().state_dir
        store = ResticStore(
            self.host, project.backup.dir, state_dir, project.name, env, self.lock_timeout
        )
        if dry_run:
            pending = sorted(store.folders.archives(), key=lambda a: a.name)
            return Migration(project.name, env, True, pending=tuple(pending))
        directory = backup_dir(project, env)
        private_dir(self.host, directory)
        with env_lock(
            self.host, directory, f"migration of {project.name} {env}", self.lock_timeout
        ):
            store.clean()  # what an interrupted backup or migration left
            folders = sorted(store.folders.archives(), key=lambda a: a.name)
            if not folders:
                return Migration(project.name, env, False)
            if self.job is not None:
                self.job.changing()
            store.open(create=True)
            stored = {a.name: a for a in store.stored()}
            moved, failed = [], []
            for archive in folders:
                try:
                    moved.append(self._migrate_one(store, archive, stored.get(archive.name)))
                except ArchiveError as exc:  # named by the caller (the job's error)
                    failed.append((archive.name, str(exc)))
            self.runtime.reload()  # the root's default store may be the store now
            return Migration(project.name, env, False, tuple(moved), tuple(failed))

    def _migrate_one(self, store: ResticStore, archive: Archive, stored: Archive | None) -> Archive:
        """Copy one folder archive into *store* (unless *stored*, its copy, is there
        already), verify the copy and remove the folder; return the store's archive."""
        with self.job.phase(archive.name) if self.job is not None else contextlib.nullcontext():
            if stored is None:
                self.say(f"copying {archive.name} into the store")
                total = sum(record.raw_bytes for record in archive.components)
                advance = self.job.meter(total) if self.job is not None else None
                stored = store.copy_in(archive, advance)
                if advance is not None:
                    advance(0)  # the final count
            else:
                self.say(f"{archive.name} is in the store already: verifying that copy")
                if _contents(stored) != _contents(archive):
                    raise ArchiveError(
                        "the store holds another archive of that name (its components differ "
                        "from the folder's): nothing was removed; compare them and remove one"
                    )
                stored = store.carry_state(archive, stored)
            faults = self.verify(stored)
            if faults:
                listed = "; ".join(f"{f.component}: {f.problem}" for f in faults)
                store.remove([stored])  # the folder stays the archive; a later run copies again
                raise ArchiveError(f"its copy in the store does not verify ({listed})")
            store.folders.remove([archive])
            return attrs.evolve(stored, verified=self._verified(stored))

    def _verified(self, archive: Archive) -> dict[str, Any] | None:
        """The ``verified.json`` of *archive*, as :meth:`verify` wrote it."""
        text = self.host.read_existing([posixpath.join(archive.path, VERIFIED)])
        found = next(iter(text.values()), None)
        return json.loads(found) if found else None

    # -- extract ---------------------------------------------------------------

    def extract(
        self,
        project: Project,
        env: str,
        archive: Archive,
        spec: str,
        directory: str,
        overwrite: bool = False,
    ) -> Extracted:
        """Extract the file or folder *spec* (see :func:`locate`) of *archive* into
        *directory* under its own name, streamed through tar; the env is not touched (and
        need not run: a path or volume is read as the archive recorded it)."""
        record, inside = locate(archive, spec, project.folder)
        component = from_record(record)  # needs neither the engine nor the live data
        if component is None:
            component = {c.key: c for c in self.components(project, env)}.get(record.key)
        if component is None:
            raise ArchiveError(
                f"archive {archive.name} holds {record.key}, which the descriptor no longer names"
            )
        member = component.tree_member(inside)
        if member is None:
            raise ArchiveError(
                f"archive {archive.name}: {record.key} is a {record.kind}, not a file tree; "
                "extract takes files out of path and volume components"
            )
        name = record.key if member in (".", "./") else posixpath.basename(member.rstrip("/"))
        try:
            with component_stream(self.host, archive, record) as source:
                path = extract_member(self.host, source, member, directory, name, overwrite)
        except NotFoundError:
            raise NotFoundError(
                f"archive {archive.name} holds no {spec} ({record.key} has no {inside})"
            ) from None
        except OpskitError as exc:
            raise OpskitError(f"extract of {spec} from {archive.name}: {exc}") from None
        return Extracted(archive.name, record.key, inside, path)

    # -- restore ---------------------------------------------------------------

    def restore(
        self,
        project: Project,
        env: str,
        archive: Archive,
        safety: bool = True,
        health_timeout: float = 120,
        check: bool = True,
        only: Sequence[str] = (),
        renamed: Callable[[str], str] | None = None,
    ) -> Archive | None:
        """Restore *archive* into *env*; on any failure put the env back as it was.

        Returns the safety archive taken first (None with ``safety=False``). With
        ``check=False`` the archive is not verified again (the caller just did). With
        *only* (component keys) those components alone are verified, backed up first and
        restored; the others are left as they are. *renamed* gives the env's key of each
        of the archive's (a server rebuilt under other names, ``rebuild --rewrite``).
        """
        if (
            archive.manifest.get("project") != project.name
            or archive.manifest.get("environment") != env
        ):
            raise ArchiveError(f"archive {archive.name} is not one of {project.name} {env}")
        archive = selected(archive, only)
        if check:
            self.refuse_damaged(archive)
        return self.guarded(
            project,
            env,
            f"restore of {archive.name}",
            lambda: self._restore_components(project, env, archive, health_timeout, renamed),
            safety=safety,
            health_timeout=health_timeout,
            only=only,
        )

    def refuse_damaged(self, archive: Archive) -> None:
        """Verify *archive* before a restore changes anything; raise naming its faults."""
        faults = verify(self.host, archive)
        if faults:
            listed = "; ".join(f"{f.component}: {f.problem}" for f in faults)
            raise ArchiveError(
                f"archive {archive.name} is damaged, nothing was restored ({listed})"
            )

    def guarded(
        self,
        project: Project,
        env: str,
        what: str,
        change: Callable[[], None],
        *,
        safety: bool = True,
        health_timeout: float = 120,
        only: Sequence[str] = (),
    ) -> Archive | None:
        """Run *change* under the env's lock, after a safety backup of the env (with
        *only*, of those components); if it fails, restore the safety archive and raise.
        Returns the safety archive."""
        directory = backup_dir(project, env)
        private_dir(self.host, directory)
        with env_lock(self.host, directory, f"{what} into {project.name} {env}", self.lock_timeout):
            safety_archive = None
            if safety:
                self.say(f"{project.name} {env}: safety backup of the current state")
                try:
                    safety_archive = self._backup_locked(project, env, directory, only)
                except KeyboardInterrupt:
                    raise Cancelled(
                        f"{what} interrupted during the safety backup; nothing was changed"
                    ) from None
                if self.job is not None:
                    self.job.details["safety_backup"] = safety_archive.name
            try:
                change()
            except (OpskitError, OSError, KeyboardInterrupt) as exc:
                # Ctrl-C and SIGTERM (opskit.cli turns it into Terminated) end like a
                # failure: the previous state back, then exit 2.
                if safety_archive is None:
                    raise
                interrupted = isinstance(exc, KeyboardInterrupt)
                reason = "interrupted" if interrupted else f"failed ({exc})"
                self.say(f"{what} {reason}; putting back {safety_archive.name}")
                try:
                    with signals_deferred():
                        self._restore_components(project, env, safety_archive, health_timeout)
                except (OpskitError, OSError) as again:
                    raise OpskitError(
                        f"{what} {reason}, and so did putting back {safety_archive.location} ({again})"
                    ) from None
                put_back = f"{project.name} {env} was put back from {safety_archive.name}"
                if interrupted:
                    raise Cancelled(f"{what} interrupted; {put_back}") from None
                raise OpskitError(f"{what} {reason}; {put_back}") from None
            return safety_archive

    def _restore_components(
        self,
        project: Project,
        env: str,
        archive: Archive,
        health_timeout: float,
        renamed: Callable[[str], str] | None = None,
    ) -> None:
        components = {c.key: c for c in self.components(project, env)}
        if renamed is not None:
            components = {
                key: found
                for key in (r.key for r in archive.components)
                if (found := components.get(renamed(key)) or components.get(key)) is not None
            }
        records = archive.components
        missing = [r.key for r in records if r.key not in components]
        if missing:
            raise ArchiveError(
                f"archive {archive.name} holds {', '.join(missing)}, which the descriptor no longer names"
            )

        def restorer(record: Any) -> Callable[[BackupContext], None]:
            def restore(context: BackupContext) -> None:
                component = components[record.key]
                with component_stream(self.host, archive, record) as source:
                    component.restore(context, source, record)

            return restore

        steps = [(f"restoring {record.key}", restorer(record)) for record in records]
        trees = {f"restoring {record.key}" for record in records if is_tree(record)}
        self.replace_data(
            project, env, steps, database_services(components.values()), health_timeout, trees
        )

    def replace_data(
        self,
        project: Project,
        env: str,
        steps: list[tuple[str, Callable[[BackupContext], None]]],
        keep_running: set[str],
        health_timeout: float,
        aside: Collection[str] = (),
    ) -> None:
        """Stop the env's services except *keep_running* (its databases), run *steps*,
        start the env and wait until it is healthy and stable. Errors name the step.
        Containers no command could address (``Placement.ignored``) are left alone.

        The steps named in *aside* (trees: restic writes the files) run in a second thread
        while this one runs the others (database loads, which wait on the server), unless
        the host runs one stream at a time (:attr:`Host.streams`); each step's phase is
        shown in turn, an aside one's once the others are done."""
        from concurrent.futures import ThreadPoolExecutor

        placements = self.runtime.stacks.status(project, env)
        for placement in placements:
            if placement.ignored is not None:
                self.warn(f"{project.name} {env}: {placement.ignored}")
        # Every service that has a container, whatever its state: a start that an
        # interrupted command asked for goes on in the engine, and a container that comes
        # up during the swap would keep the replaced folder mounted.
        present = [p.service for p in managed(placements) if p.container is not None]
        application = sorted({s for s in present if s not in keep_running})
        step = "stopping the application services"
        since = engine_time(self.host)  # health evidence must be newer than this
        try:
            for service in application:
                self.say(f"stopping {service}")
                self.runtime.stacks.lifecycle(project, env, "stop", service, progress=self.output)
            context = self.context(project, env)
            side = [(name, action) for name, action in steps if name in aside]
            if len(side) in (0, len(steps)) or self.host.streams < 2:
                side = []
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="opskit-tree") as pool:
                futures = {name: pool.submit(action, context) for name, action in side}
                try:
                    for step, action in steps:
                        if step not in futures:
                            self._in_phase(project, env, step, partial(action, context))
                    for step, _action in side:
                        self._in_phase(project, env, step, futures[step].result)
                except BaseException:
                    for future in futures.values():
                        future.cancel()  # the one under way ends first: then the rollback
                    raise
            step = "starting the services"
            self.runtime.stacks.lifecycle(project, env, "start", progress=self.output)
            step = "waiting until the env is healthy"
            wait_healthy(
                self.runtime.stacks,
                project,
                env,
                health_timeout,
                since=since,
                setting=project.gate_setting("restore"),
            )
        except (OpskitError, OSError) as exc:
            raise OpskitError(f"{step}: {exc}") from None

    def _in_phase(self, project: Project, env: str, step: str, action: Callable[[], Any]) -> None:
        """Run *action*, shown as the phase *step* of the job (a line without one)."""
        if self.job is None:
            self.say(f"{project.name} {env}: {step}")
            action()
        else:  # the phase is shown as its own line
            with self.job.phase(step):
                action()


def _contents(archive: Archive) -> dict[str, tuple[int, str]]:
    """Each component's raw size and checksum: what two copies of an archive share."""
    return {r.key: (r.raw_bytes, r.raw_sha256) for r in archive.components}


@attrs.frozen
class Migration:
    """What ``backups migrate`` did with one env: the archives *moved* into the store
    (as the store lists them), those that stay folders with why (*failed*), and with
    *dry_run* the folder archives it would move (*pending*)."""

    project: str
    env: str
    dry_run: bool
    moved: tuple[Archive, ...] = ()
    failed: tuple[tuple[str, str], ...] = ()
    pending: tuple[Archive, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        def row(archive: Archive, result: str) -> dict[str, Any]:
            return {"name": archive.name, "size": archive.size, "result": result, "error": None}

        rows = [row(a, "would migrate") for a in self.pending]
        rows += [row(a, "migrated") for a in self.moved]
        rows += [
            {"name": name, "size": None, "result": "failed", "error": error}
            for name, error in self.failed
        ]
        return {"project": self.project, "environment": self.env, "archives": rows}


@attrs.frozen
class Extracted:
    """What ``extract`` wrote: *inside* (a path in the tree of component *component* of
    *archive*; "" the whole tree) at *path*."""

    archive: str
    component: str
    inside: str
    path: str

    def as_dict(self) -> dict[str, str]:
        return attrs.asdict(self)


def locate(archive: Archive, spec: str, folder: str) -> tuple[ComponentRecord, str]:
    """The component of *archive* and the path inside its tree that *spec* names: either
    ``KEY:PATH`` (PATH inside the tree of component KEY; empty: all of it), or a path on
    the host, relative to the project *folder* or absolute, inside the path that a path
    component records (the deepest such path when several hold it). Names that lead out
    of the tree are refused."""
    records = archive.components
    key, colon, rest = spec.partition(":")
    by_key = {record.key: record for record in records}
    if colon and key in by_key:
        return by_key[key], tree_path(rest, spec)
    wanted = posixpath.normpath(posixpath.join(folder, spec))
    holding = [
        (record, root)
        for record in records
        if (root := str(record.details.get("path") or "").rstrip("/"))
        and (wanted == root or wanted.startswith(root + "/"))
    ]
    found = max(holding, key=lambda pair: len(pair[1]), default=None)
    if found is None:
        raise NotFoundError(
            f"archive {archive.name} holds no {spec}: it is inside none of its paths "
            f"(its components: {', '.join(by_key) or 'none'}; a volume's file is KEY:PATH)"
        )
    record, root = found
    return record, tree_path(posixpath.relpath(wanted, root), spec)


def tree_path(path: str, spec: str) -> str:
    """*path* as a normalised path inside a tree ("" the tree itself); refused when it
    leads out of it."""
    if "\0" in path:
        raise ArchiveError(f"{spec!r} is not a path")
    inside = posixpath.normpath(path.lstrip("/") or ".")
    if inside == ".." or inside.startswith("../"):
        raise ArchiveError(f"{spec} leads out of the component's tree")
    return "" if inside == "." else inside


def selected(archive: Archive, only: Sequence[str]) -> Archive:
    """*archive* narrowed to the components *only* names (all of them when it is empty);
    a key the archive does not hold is an :class:`ArchiveError` listing those it holds."""
    if not only:
        return archive
    keys = [record.key for record in archive.components]
    unknown = [key for key in only if key not in keys]
    if unknown:
        raise ArchiveError(
            f"archive {archive.name} holds no component {', '.join(unknown)} "
            f"(it holds {', '.join(keys) or 'none'})"
        )
    kept = [c for c in archive.manifest.get("components", []) if c.get("key") in only]
    return attrs.evolve(archive, manifest={**archive.manifest, "components": kept})


def with_partials(
    decision: Decision, partials: Sequence[str], points: Mapping[str, Sequence[str]]
) -> Decision:
    """*decision* (on the archives of the whole env) with the partial archives added:
    those among *points* (undo points, with their reasons) kept, the others removed. With
    no archive of the whole env, the newest partial one is kept all the same: a prune
    never removes every archive."""
    if partials and not decision.keep and not decision.remove:
        newest = max(partials)
        points = {**points, newest: [*points.get(newest, ()), "newest"]}
    keep = [*decision.keep, *(n for n in partials if n in points)]
    remove = [*decision.remove, *(n for n in partials if n not in points)]
    reasons = dict(decision.reasons)
    reasons.update({n: tuple(points[n]) for n in partials if n in points})
    remove_reasons = dict(decision.remove_reasons)
    remove_reasons.update(
        {n: ("a partial safety backup and no undo point",) for n in partials if n not in points}
    )
    return Decision(
        tuple(sorted(keep, reverse=True)),
        tuple(sorted(remove, reverse=True)),
        reasons,
        remove_reasons,
    )


def private_dir(host: Host, directory: str) -> None:
    """Create an env's backup folder (and its project's) readable by the owner only,
    whatever the umask: archives hold every row of the databases."""
    script = 'umask 077 && mkdir -p -- "$1" && chmod 700 -- "$1" "$(dirname -- "$1")"'
    host.run(["sh", "-c", script, "opskit", directory])


def database_services(components: Iterable[Component]) -> set[str]:
    """The services that keep running during a restore: those *components* restore
    through (their databases' servers)."""
    return {c.restores_through for c in components if c.restores_through is not None}


# How often the phase of a tree written in the second thread reports its progress.
PROGRESS_WAIT = 0.5


class _Tally:
    """Bytes counted in one thread, taken in another."""

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._count = 0

    def add(self, count: int) -> None:
        with self._lock:
            self._count += count

    def take(self) -> int:
        with self._lock:
            count, self._count = self._count, 0
        return count
