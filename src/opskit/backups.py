"""The backup engine: write, list, verify, prune and restore archives of one env.

Plugins contribute components; this module owns everything around them.
"""

from __future__ import annotations

import os
import posixpath
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import attrs

from opskit import __version__
from opskit.archive import (
    FORMAT,
    MANIFEST,
    VERIFIED,
    Archive,
    ArchiveError,
    Fault,
    check_name,
    component_stream,
    env_dir,
    list_archives,
    now,
    open_archive,
    stamp,
    verify,
    write_component,
    write_json,
)
from opskit.components import BackupContext, Component
from opskit.errors import NotFoundError, OpskitError
from opskit.locks import env_lock
from opskit.retention import Decision, decide

if TYPE_CHECKING:
    from opskit.api import Ops
    from opskit.descriptor import Project

LOCK_TIMEOUT = float(os.environ.get("OPSKIT_LOCK_TIMEOUT") or 300)


def _say(progress: IO[str] | None, message: str) -> None:
    if progress is not None:
        progress.write(message + "\n")
        progress.flush()


def backup_dir(project: Project, env: str) -> str:
    if project.backup is None:
        raise OpskitError(f"project {project.name} has no backup section in {project.path}")
    return env_dir(project.backup.dir, project.name, env)


@attrs.define
class Engine:
    """Backups of one :class:`~opskit.api.Ops` (its host, plugins and projects)."""

    ops: Ops
    progress: IO[str] | None = None
    meter: Callable[[str], Callable[[int], None]] | None = None  # label -> advance(bytes)
    lock_timeout: float = LOCK_TIMEOUT

    @property
    def host(self) -> Any:
        return self.ops.host

    def components(self, project: Project, env: str) -> list[Component]:
        components = self.ops.plugins.backup_components(self.context(project, env))
        if not components:
            raise OpskitError(
                f"{project.name} {env}: nothing to back up (the backup section names nothing)"
            )
        return components

    def context(self, project: Project, env: str) -> BackupContext:
        return BackupContext(self.host, project, env, tuple(self.ops.status(project.name, env)))

    # -- backup ----------------------------------------------------------------

    def backup(self, project: Project, env: str) -> Archive:
        """Write one archive of *env*; return it once it is complete and on disk."""
        directory = backup_dir(project, env)
        self.host.run(["mkdir", "-p", "--", directory])
        with env_lock(self.host, directory, f"backup of {project.name} {env}", self.lock_timeout):
            return self._backup_locked(project, env, directory)

    def _backup_locked(self, project: Project, env: str, directory: str) -> Archive:
        self._remove_partials(directory)
        components = self.components(project, env)
        started = now()
        name = f"{project.name}-{env}-{stamp(started)}"
        while self.host.exists(posixpath.join(directory, name)):
            time.sleep(0.2)  # one archive per second; names carry the second
            started = now()
            name = f"{project.name}-{env}-{stamp(started)}"
        partial = posixpath.join(directory, f".{name}.partial")
        final = posixpath.join(directory, name)
        self.host.run(["mkdir", "--", partial])
        try:
            records = self._write_components(project, env, components, partial)
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
            write_json(self.host, posixpath.join(partial, MANIFEST), manifest)
            files = [posixpath.join(partial, r.file) for r in records]
            self.host.run(["sync", "--", *files, posixpath.join(partial, MANIFEST), partial])
            self.host.run(["mv", "-T", "--", partial, final])
            self.host.run(["sync", "--", directory])
        except BaseException as exc:
            self.host.run(["rm", "-rf", "--", partial], check=False)
            if isinstance(exc, OSError):
                raise OpskitError(
                    f"{project.name} {env}: writing the archive failed: {exc}"
                ) from None
            raise
        return Archive(final, manifest)

    def _write_components(
        self, project: Project, env: str, components: list[Component], partial: str
    ) -> list[Any]:
        assert project.backup is not None
        running = {p.service for p in self.ops.status(project.name, env) if p.state == "running"}
        stopped = [service for service in project.backup.stop if service in running]
        try:
            for service in stopped:
                _say(self.progress, f"stopping {service} for the backup")
                self.ops.lifecycle(project.name, env, "stop", service, progress=self.progress)
            context = self.context(project, env)
            records = []
            for component in components:
                label = f"{project.name} {env}: {component.key}"
                advance = self.meter(label) if self.meter else None
                if advance is None:
                    _say(self.progress, label)
                records.append(write_component(self.host, component, context, partial, advance))
            return records
        finally:
            for service in stopped:
                _say(self.progress, f"starting {service} again")
                self.ops.lifecycle(project.name, env, "start", service, progress=self.progress)

    def _remove_partials(self, directory: str) -> None:
        stale = [
            n
            for n in self.host.listdir(directory)
            if n.startswith(".") and n.endswith((".partial", ".removing"))
        ]
        if stale:
            self.host.run(["rm", "-rf", "--", *(posixpath.join(directory, n) for n in stale)])

    # -- list, verify, prune ---------------------------------------------------

    def archives(self, project: Project, env: str) -> list[Archive]:
        if project.backup is None:
            return []
        return list_archives(self.host, backup_dir(project, env))

    def find(self, project: Project, env: str, name: str | None) -> Archive:
        """The named archive of this env, or the newest one when *name* is None."""
        directory = backup_dir(project, env)
        if name is None:
            found = list_archives(self.host, directory)
            if not found:
                raise NotFoundError(f"{project.name} {env}: no archives in {directory}")
            return found[0]
        check_name(name)
        prefix = f"{project.name}-{env}-"
        if not name.startswith(prefix):
            raise ArchiveError(f"archive {name} is not one of {project.name} {env}")
        return open_archive(self.host, directory, name)

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

    def prune(self, project: Project, env: str, dry_run: bool) -> Decision:
        assert project.backup is not None
        directory = backup_dir(project, env)
        with env_lock(self.host, directory, f"prune of {project.name} {env}", self.lock_timeout):
            archives = list_archives(self.host, directory)
            verified = next((a.name for a in archives if a.verified_state == "ok"), None)
            retention = project.backup.retention
            decision = decide(
                [(a.name, a.created) for a in archives],
                keep_last=retention.keep_last,
                keep_daily=retention.keep_daily,
                keep_weekly=retention.keep_weekly,
                keep_monthly=retention.keep_monthly,
                newest_verified=verified,
            )
            if not dry_run:
                for name in decision.remove:
                    # Renamed first, so a half-removed archive is never listed.
                    doomed = posixpath.join(directory, f".{name}.removing")
                    self.host.run(["mv", "-T", "--", posixpath.join(directory, name), doomed])
                    self.host.run(["rm", "-rf", "--", doomed])
            return decision

    # -- restore ---------------------------------------------------------------

    def restore(
        self,
        project: Project,
        env: str,
        archive: Archive,
        safety: bool = True,
        health_timeout: float = 120,
    ) -> Archive | None:
        """Restore *archive* into *env*; on any failure put the env back as it was.

        Returns the safety archive taken first (None with ``safety=False``).
        """
        if (
            archive.manifest.get("project") != project.name
            or archive.manifest.get("environment") != env
        ):
            raise ArchiveError(f"archive {archive.name} is not one of {project.name} {env}")
        faults = verify(self.host, archive)
        if faults:
            listed = "; ".join(f"{f.component}: {f.problem}" for f in faults)
            raise ArchiveError(
                f"archive {archive.name} is damaged, nothing was restored ({listed})"
            )
        directory = backup_dir(project, env)
        with env_lock(self.host, directory, f"restore of {project.name} {env}", self.lock_timeout):
            safety_archive = None
            if safety:
                _say(self.progress, f"{project.name} {env}: safety backup of the current state")
                safety_archive = self._backup_locked(project, env, directory)
            try:
                self._restore_components(project, env, archive, health_timeout)
            except (OpskitError, OSError) as exc:
                if safety_archive is None:
                    raise
                _say(self.progress, f"restore failed ({exc}); putting back {safety_archive.name}")
                try:
                    self._restore_components(project, env, safety_archive, health_timeout)
                except (OpskitError, OSError) as again:
                    raise OpskitError(
                        f"restore of {archive.name} failed ({exc}), and so did putting back "
                        f"{safety_archive.path} ({again})"
                    ) from None
                raise OpskitError(
                    f"restore of {archive.name} failed ({exc}); the env was put back from {safety_archive.name}"
                ) from None
            return safety_archive

    def _restore_components(
        self, project: Project, env: str, archive: Archive, health_timeout: float
    ) -> None:
        components = {c.key: c for c in self.components(project, env)}
        records = archive.components
        missing = [r.key for r in records if r.key not in components]
        if missing:
            raise ArchiveError(
                f"archive {archive.name} holds {', '.join(missing)}, which the descriptor no longer names"
            )
        databases = {c.database.service for c in components.values() if c.kind == "database"}  # type: ignore[attr-defined]
        running = [p.service for p in self.ops.status(project.name, env) if p.state == "running"]
        application = sorted({s for s in running if s not in databases})
        step = "stopping the application services"
        try:
            for service in application:
                _say(self.progress, f"stopping {service}")
                self.ops.lifecycle(project.name, env, "stop", service, progress=self.progress)
            context = self.context(project, env)
            for record in records:
                step = f"restoring {record.key}"
                _say(self.progress, f"{project.name} {env}: {step}")
                with component_stream(self.host, archive, record) as source:
                    components[record.key].restore(context, source)
            step = "starting the services"
            self.ops.lifecycle(project.name, env, "start", progress=self.progress)
            step = "waiting until the env is healthy"
            self._wait_healthy(project, env, health_timeout)
        except (OpskitError, OSError) as exc:
            raise OpskitError(f"{step}: {exc}") from None

    def _wait_healthy(self, project: Project, env: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            report = self.ops.health(project.name, env)
            if report.ok:
                return
            if time.monotonic() > deadline:
                failing = "; ".join(f"{c.check}: {c.detail}" for c in report.checks if not c.ok)
                raise OpskitError(f"not healthy after {timeout:g} s ({failing})")
            time.sleep(1)
