"""The Python API: :class:`Ops`. The command line is a thin layer over it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from opskit.host import Host, open_host
from opskit.plugins import Plugins, create_plugins
from opskit.runtime import Runtime

if TYPE_CHECKING:
    from datetime import datetime

    from opskit import compose, containers
    from opskit.archive import Archive, Fault
    from opskit.backups import Engine, Extracted, Migration
    from opskit.descriptor import Project
    from opskit.disk import DiskReport
    from opskit.doctor import DoctorReport
    from opskit.drill import DrillResult
    from opskit.health import HealthReport
    from opskit.operations import Context
    from opskit.operations.init import InitReport
    from opskit.operations.password import Report as PasswordReport
    from opskit.operations.recovery import Recovered
    from opskit.promote import PromoteReport
    from opskit.rebuild import RebuildPlan
    from opskit.retention import Decision
    from opskit.runtime import Meter
    from opskit.sync import SyncReport
    from opskit.watch import WatchReport

DEFAULT_ROOT = "/opt/data"


class Ops:
    """Everything opskit does, for scripts and for the CLI.

    :param root: the folder holding ``*/project.yaml`` (default ``OPSKIT_ROOT`` or ``/opt/data``).
    :param host: ``"local"``, ``"ssh://user@server[:port]"`` or a :class:`~opskit.host.Host`
        (default ``OPSKIT_HOST`` or local).
    :param plugins: a plugin manager from :func:`opskit.plugins.create_plugins` (default: all installed).
    """

    def __init__(
        self,
        root: str | None = None,
        host: str | Host | None = None,
        *,
        plugins: Plugins | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        environ = os.environ if environ is None else environ
        self.root = os.path.abspath(root or environ.get("OPSKIT_ROOT") or DEFAULT_ROOT)
        self.host = (
            host if isinstance(host, Host) else open_host(host or environ.get("OPSKIT_HOST"))
        )
        self.plugins = plugins if plugins is not None else create_plugins(environ)
        self.runtime = Runtime(self.root, self.host, self.plugins)
        self._subscribe_listeners()

    def _subscribe_listeners(self) -> None:
        """The audit log and the notifier listen to every job of the runtime."""
        from opskit.audit import AuditLog
        from opskit.notify import Notifier

        runtime = self.runtime
        runtime.events.subscribe(AuditLog(self.host, runtime.projects))
        runtime.events.subscribe(Notifier(self.host.name, runtime.projects, runtime.settings))

    def _context(self, progress: IO[str] | None = None, meter: Meter | None = None) -> Context:
        from opskit.operations import Context

        return Context(self.runtime, progress, meter)

    def backup_engine(self, progress: IO[str] | None = None) -> Engine:
        """The backup engine of this root (archives, verify, prune), outside any job."""
        from opskit.backups import Engine

        return Engine(self.runtime, progress=progress)

    def close(self) -> None:
        self.host.close()

    def __enter__(self) -> Ops:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def projects(self) -> list[Project]:
        """Every project under the root, validated, each with its handler set."""
        return self.runtime.projects()

    def project(self, name: str) -> Project:
        return self.runtime.project(name)

    def _found(self, project: str | None) -> Project | None:
        return None if project is None else self.runtime.project(project)

    def scope(
        self, project: str | None = None, env: str | None = None
    ) -> list[tuple[Project, str]]:
        """The (project, env) pairs a command acts on: one env, a project's envs, or all."""
        return self.runtime.scope(project, env)

    def status(
        self, project: str | None = None, env: str | None = None
    ) -> list[containers.Placement]:
        """The containers of the envs in scope, with declared services that have none."""
        return self.runtime.stacks.status(self._found(project), env)

    def status_and_collisions(
        self, project: str | None = None, env: str | None = None
    ) -> tuple[list[containers.Placement], list[compose.Collision]]:
        """:meth:`status`, and the compose project name collisions of the envs in scope."""
        return self.runtime.stacks.status_and_collisions(self._found(project), env)

    def containers(
        self, project: str, env: str, service: str | None = None, running: bool = False
    ) -> list[containers.Container]:
        """The containers of one env (of one service), resolved like ``status`` does."""
        return self.runtime.stacks.containers(self.project(project), env, service, running)

    def health(self, project: str | None = None, env: str | None = None) -> HealthReport:
        """Every plugin's health checks for the envs in scope."""
        return self.runtime.stacks.health(self._found(project), env)

    def disk(self) -> DiskReport:
        """Sizes of the root, the project folders and backup folders, and of Docker's data."""
        return self.runtime.stacks.disk()

    def lifecycle(
        self,
        project: str,
        env: str,
        action: str,
        service: str | None = None,
        *,
        volumes: bool = False,
        dry_run: bool = False,
        progress: IO[str] | None = None,
        announce: Callable[[], None] | None = None,
    ) -> list[compose.ComposeCommand]:
        """Run ``start``, ``stop``, ``restart``, ``build`` or ``destroy`` for one env;
        *announce* runs once the commands are decided, before the first one runs."""
        self.runtime.check_settings()  # a settings fault first, as for every change
        found = self.project(project)
        if dry_run:
            return self.runtime.stacks.lifecycle(
                found, env, action, service, volumes=volumes, dry_run=True, progress=progress
            )
        from opskit.jobs import as_job

        # a job like every change: a run of its own, and (start, stop, restart, destroy)
        # an entry in the audit log
        found.check_env(env)  # refused before any job
        with as_job(self.runtime, action, found.name, [env]) as job:
            if service:
                job.details["service"] = service

            def begin() -> None:
                job.changing()
                if announce is not None:
                    announce()

            return self.runtime.stacks.lifecycle(
                found,
                env,
                action,
                service,
                volumes=volumes,
                dry_run=False,
                progress=progress,
                announce=begin,
            )

    def start(self, project: str, env: str, service: str | None = None) -> None:
        self.lifecycle(project, env, "start", service)

    def stop(self, project: str, env: str, service: str | None = None) -> None:
        self.lifecycle(project, env, "stop", service)

    def restart(self, project: str, env: str, service: str | None = None) -> None:
        self.lifecycle(project, env, "restart", service)

    def build(self, project: str, env: str) -> None:
        self.lifecycle(project, env, "build")

    def destroy(self, project: str, env: str, volumes: bool = False) -> None:
        self.lifecycle(project, env, "destroy", volumes=volumes)

    def delegates(self, project: Project, command: str) -> bool:
        """Whether the project hands *command* to its own CLI (``delegate:``)."""
        return self.runtime.delegates(project, command)

    def run_delegate(
        self,
        project: Project,
        command: str,
        env: str | None,
        flags: Sequence[str],
        cli_env: str | None = None,
    ) -> int:
        """Run the project's own CLI as docs/cli-contract.md says; return its exit code.
        *cli_env* is ``{env}`` in ``delegate.cli`` for a command without ENV (``--to``)."""
        from opskit.operations import delegate

        request = delegate.Request(project, command, env, flags, cli_env)
        return delegate.run(self._context(), request)

    def backup(
        self,
        project: str | None = None,
        env: str | None = None,
        *,
        progress: IO[str] | None = None,
        meter: Meter | None = None,
        delegate_flags: Sequence[str] = (),
        verify_and_prune: bool = False,
        offsite: bool = False,
    ) -> list[Archive]:
        """Back up one env, a project's envs, or (no project) every project with a backup
        section; returns the archives written. See :func:`opskit.operations.backup.run`."""
        from opskit.operations import backup

        request = backup.Request(project, env, delegate_flags, verify_and_prune, offsite)
        return backup.run(self._context(progress, meter), request)

    def backups(self, project: str | None = None, env: str | None = None) -> list[Archive]:
        """The complete archives in scope, newest first."""
        from opskit.operations import backup

        return backup.archives(self.runtime, project, env)

    def newest_backups(
        self, project: str | None = None, env: str | None = None
    ) -> list[tuple[str, str, Archive | None]]:
        """The newest archive of each env in scope that has a backup section (None: no archive)."""
        from opskit.operations import backup

        return backup.newest(self.runtime, project, env)

    def verify(
        self, project: str | None = None, env: str | None = None, name: str | None = None
    ) -> list[tuple[Archive, list[Fault]]]:
        """Verify archives (all in scope, or one by name); each result is recorded in the archive."""
        from opskit.operations import verify

        return verify.run(self._context(), verify.Request(project, env, name))

    def drill(
        self,
        project: str,
        env: str,
        name: str | None = None,
        *,
        progress: IO[str] | None = None,
    ) -> DrillResult:
        """Prove that an archive (the newest when *name* is None) restores, in throw-away
        containers; the result is recorded in the archive and shown by ``backups``."""
        from opskit.operations import drill

        return drill.run(self._context(progress), drill.Request(project, env, name))

    def doctor(self, *, root_only: bool = False) -> DoctorReport:
        """The root checked against what runs (collisions, data no backup covers, ...);
        *root_only* leaves out containers that no project of the root claims."""
        from opskit.operations import doctor

        return doctor.run(self._context(), doctor.Request(root_only))

    def password(
        self, kind: str | None = None, *, show: bool = False, confirm_escrowed: bool = False
    ) -> PasswordReport:
        """The restic passwords of the root (``store``, ``offsite``) and whether a copy of
        each is kept off the server; *show*: the password *kind* itself (for the user to
        keep); *confirm_escrowed*: record that a copy of it is kept."""
        from opskit.operations import password

        request = password.Request(kind, show=show, confirm=confirm_escrowed)
        return password.run(self._context(), request)

    def init(
        self, write: bool = False, backup_dir: str | None = None, under: str | None = None
    ) -> InitReport:
        """A ``project.yaml`` proposed for each compose project that runs (started from
        *under* or below, if given) and no descriptor covers; with *write*, written (never
        over a file), then ``doctor``."""
        from opskit.contracts import DEFAULT_BACKUP_DIR
        from opskit.operations import init

        request = init.Request(write, backup_dir or DEFAULT_BACKUP_DIR, under)
        return init.run(self._context(), request)

    def watch(self, now: datetime | None = None, *, coverage: bool = False) -> WatchReport:
        """One watch pass over every project and env; *now* stands in for the clock;
        *coverage* computes backup coverage now, not only once every ``coverage_hours``."""
        from opskit.operations import watch

        return watch.run(self._context(), watch.Request(now, coverage))

    def prune(
        self, project: str | None = None, env: str | None = None, *, dry_run: bool = False
    ) -> list[tuple[str, str, Decision]]:
        """Apply each env's retention rules; with *dry_run* only decide."""
        from opskit.operations import prune

        return prune.run(self._context(), prune.Request(project, env, dry_run))

    def migrate(
        self,
        project: str,
        env: str | None = None,
        *,
        dry_run: bool = False,
        progress: IO[str] | None = None,
        meter: Meter | None = None,
    ) -> list[Migration]:
        """Move the folder archives of *project* (one *env*, or each) into the root's
        restic store, each verified there before its folder goes; with *dry_run* only list."""
        from opskit.operations import migrate

        request = migrate.Request(project, env, dry_run)
        return migrate.run(self._context(progress, meter), request)

    def restore(
        self,
        project: str,
        env: str,
        name: str | None = None,
        *,
        safety: bool = True,
        offsite: bool = False,
        only: Sequence[str] = (),
        from_env: str | None = None,
        progress: IO[str] | None = None,
        meter: Meter | None = None,
    ) -> tuple[Archive, Archive | None]:
        """Restore an archive (the newest when *name* is None) into one env, with *offsite*
        from its offsite copy, with *only* (component keys) those components alone, with
        *from_env* an archive of that env rewritten as a sync rewrites; returns it and the
        safety archive taken before. See :func:`opskit.operations.restore.run`."""
        from opskit.operations import restore

        request = restore.Request(project, env, name, safety, offsite, tuple(only), from_env)
        return restore.run(self._context(progress, meter), request)

    def extract(
        self,
        project: str,
        env: str,
        path: str,
        to: str,
        name: str | None = None,
        *,
        overwrite: bool = False,
    ) -> Extracted:
        """A file or folder of an archive (the newest when *name* is None) into the folder
        *to*, under its own name. See :func:`opskit.operations.extract.run`."""
        from opskit.operations import extract

        request = extract.Request(project, env, path, to, name, overwrite)
        return extract.run(self._context(), request)

    def sync(
        self,
        project: str,
        source: str,
        target: str,
        *,
        dry_run: bool = False,
        progress: IO[str] | None = None,
        before_changes: Callable[[], None] | None = None,
        delegate_flags: Sequence[str] | None = None,
    ) -> SyncReport:
        """Copy the data of env *source* into env *target*; see
        :func:`opskit.operations.sync.run`."""
        from opskit.operations import sync

        request = sync.Request(project, source, target, dry_run, before_changes, delegate_flags)
        return sync.run(self._context(progress), request)

    def promote(
        self,
        project: str,
        source: str,
        target: str,
        *,
        dry_run: bool = False,
        progress: IO[str] | None = None,
        before_changes: Callable[[PromoteReport], None] | None = None,
    ) -> PromoteReport:
        """Promote code one step; see :func:`opskit.operations.promote.run`."""
        from opskit.operations import promote

        request = promote.Request(project, source, target, dry_run, before_changes)
        return promote.run(self._context(progress), request)

    def promote_script(
        self, project: str, source: str, target: str, *, dry_run: bool = False
    ) -> int:
        """Run the descriptor's promote script; return its exit code."""
        from opskit.operations import promote

        request = promote.Request(project, source, target, dry_run)
        return promote.script(self._context(), request)

    def rebuild(
        self,
        project: str,
        env: str,
        *,
        dry_run: bool = False,
        progress: IO[str] | None = None,
        meter: Meter | None = None,
    ) -> RebuildPlan:
        """Disaster recovery; see :func:`opskit.rebuild.rebuild`. With *dry_run*, the plan."""
        from opskit.operations import rebuild

        return rebuild.run(self._context(progress, meter), rebuild.Request(project, env, dry_run))

    def rebuild_all(
        self,
        target: str,
        *,
        password_file: str | None = None,
        from_root: str | None = None,
        rewrites: Sequence[tuple[str, str]] = (),
        dry_run: bool = False,
        progress: IO[str] | None = None,
        meter: Meter | None = None,
    ) -> Recovered:
        """The whole server back from offsite (``rebuild --all --offsite``); see
        :mod:`opskit.operations.recovery`. With *dry_run*, what it would do."""
        from opskit.operations import recovery

        request = recovery.Request(target, password_file, from_root, tuple(rewrites), dry_run)
        return recovery.run(self._context(progress, meter), request)

    def drill_all(
        self,
        target: str | None = None,
        *,
        progress: IO[str] | None = None,
        meter: Meter | None = None,
    ) -> Recovered:
        """The whole root rebuilt from offsite in a throw-away namespace, checked, removed
        (``drill --all --offsite``); see :func:`opskit.operations.recovery.drill_all`."""
        from opskit.operations import recovery

        return recovery.drill_all(self._context(progress, meter), recovery.DrillRequest(target))

    def history(self, project: str | None = None) -> list[dict[str, Any]]:
        """The audit log (sync, promote, restore, rebuild, migrate, start, stop, restart, destroy), oldest first."""
        from opskit.audit import read

        if project is not None:
            self.project(project)
        return read(self.host, self.projects(), project)

    def logs(
        self,
        project: str,
        env: str,
        service: str | None = None,
        *,
        follow: bool = False,
        tail: int | None = None,
        stream: IO[str] | None = None,
        since: str | None = None,
        timestamps: bool = False,
    ) -> int:
        """Write the logs of an env's (or one service's) containers to *stream* (stdout);
        see :meth:`opskit.stacks.Stacks.logs`."""
        return self.runtime.stacks.logs(
            self.project(project), env, service, follow=follow, tail=tail, stream=stream,
            since=since, timestamps=timestamps,
        )  # fmt: skip

    def exec(
        self, project: str, env: str, service: str, command: Sequence[str], *, tty: bool = False
    ) -> int:
        """Run *command* in the service's running container; return its exit code."""
        return self.runtime.stacks.exec(self.project(project), env, service, command, tty=tty)

    def shell(self, project: str, env: str, service: str) -> int:
        """An interactive shell (bash where the image has it, else sh) in the service's container."""
        return self.runtime.stacks.shell(self.project(project), env, service)
