"""The Python API: :class:`Ops`. The command line is a thin layer over it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from opskit.disk import DiskReport, docker_usage, folder_usage
from opskit.errors import DelegateFailed, NotFoundError
from opskit.host import Host, open_host
from opskit.plugins import Plugins, create_plugins
from opskit.runtime import ComposeState, Meter, Runtime

if TYPE_CHECKING:
    from opskit import compose, containers
    from opskit.archive import Archive, Fault
    from opskit.backups import Engine
    from opskit.descriptor import Project
    from opskit.health import HealthReport
    from opskit.jobs import Job
    from opskit.promote import PromoteReport
    from opskit.rebuild import RebuildPlan
    from opskit.retention import Decision
    from opskit.sync import SyncReport

DEFAULT_ROOT = "/opt/data"

__all__ = ["DEFAULT_ROOT", "ComposeState", "Meter", "Ops"]


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

    def close(self) -> None:
        self.host.close()

    def __enter__(self) -> Ops:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- projects --------------------------------------------------------------

    def projects(self) -> list[Project]:
        """Every project under the root, validated, each with its handler set."""
        return self.runtime.projects()

    def project(self, name: str) -> Project:
        return self.runtime.project(name)

    def scope(
        self, project: str | None = None, env: str | None = None
    ) -> list[tuple[Project, str]]:
        """The (project, env) pairs a command acts on: one env, a project's envs, or all."""
        return self.runtime.scope(project, env)

    # -- status and health -----------------------------------------------------

    def status(
        self, project: str | None = None, env: str | None = None
    ) -> list[containers.Placement]:
        """The containers of the envs in scope, with declared services that have none."""
        return self.runtime.status(project, env)

    def status_and_collisions(
        self, project: str | None = None, env: str | None = None
    ) -> tuple[list[containers.Placement], list[compose.Collision]]:
        """:meth:`status`, and the compose project name collisions of the envs in scope."""
        return self.runtime.status_and_collisions(project, env)

    def compose_state(self) -> ComposeState:
        return self.runtime.compose_state()

    def refuse_collisions(self, project: str, envs: Sequence[str]) -> ComposeState:
        return self.runtime.refuse_collisions(project, envs)

    def containers(
        self, project: str, env: str, service: str | None = None, running: bool = False
    ) -> list[containers.Container]:
        """The containers of one env (of one service), resolved like ``status`` does."""
        return self.runtime.containers(project, env, service, running)

    def health(self, project: str | None = None, env: str | None = None) -> HealthReport:
        """Every plugin's health checks for the envs in scope."""
        return self.runtime.health(project, env)

    def disk(self) -> DiskReport:
        """Sizes of the root, the project folders and backup folders, and of Docker's data."""
        paths = [self.root]
        for project in self.projects():
            paths.append(project.folder)
            if project.backup is not None:
                paths.append(project.backup.dir)
        return DiskReport(tuple(folder_usage(self.host, paths)), docker_usage(self.host))

    # -- lifecycle -------------------------------------------------------------

    def compose_commands(
        self, project: str, env: str, action: str, service: str | None = None, volumes: bool = False
    ) -> list[compose.ComposeCommand]:
        """The compose commands a lifecycle action runs, without running them."""
        return self.runtime.compose_commands(project, env, action, service, volumes)

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
    ) -> list[compose.ComposeCommand]:
        """Run ``start``, ``stop``, ``restart``, ``build`` or ``destroy`` for one env."""
        return self.runtime.lifecycle(
            project, env, action, service, volumes=volumes, dry_run=dry_run, progress=progress
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

    # -- delegates -------------------------------------------------------------

    def delegates(self, project: Project, command: str) -> bool:
        """Whether the project hands *command* to its own CLI (``delegate:``)."""
        return self.runtime.delegates(project, command)

    def _delegated(
        self, found: Project, command: str, env: str | None, flags: Sequence[str]
    ) -> bool:
        """Run the project's own CLI when it takes *command* (``delegate:``): True when it
        did and succeeded; raises :class:`DelegateFailed` with its exit code otherwise."""
        if not self.delegates(found, command):
            return False
        code = self.run_delegate(found, command, env, flags)
        if code != 0:
            raise DelegateFailed(found.name, command, code)
        return True

    def run_delegate(
        self, project: Project, command: str, env: str | None, flags: Sequence[str]
    ) -> int:
        """Run the project's own CLI as docs/cli-contract.md says; return its exit code."""
        assert project.delegate is not None
        cli = project.resolve_path(project.delegate.cli, env or "")
        variables = [
            f"OPSKIT_PROJECT={project.name}",
            f"OPSKIT_ENV={env or ''}",
            f"OPSKIT_ROOT={self.root}",
        ]
        argv = ["env", *variables, cli, command, project.name, *([env] if env else []), *flags]
        return self.host.call(argv, cwd=project.folder)

    # -- backups ---------------------------------------------------------------

    def backup_engine(self, progress: IO[str] | None = None, meter: Meter | None = None) -> Engine:
        return self.runtime.backup_engine(progress, meter)

    def backup(
        self,
        project: str | None = None,
        env: str | None = None,
        *,
        progress: IO[str] | None = None,
        meter: Meter | None = None,
        delegate_flags: Sequence[str] = (),
    ) -> list[Archive]:
        """Back up one env, a project's envs, or (no project) every project with a backup section.

        Returns the archives written, each complete and on disk. A project that delegates
        ``backup`` (``delegate:``) runs its own CLI with *delegate_flags* instead.
        """
        if project is not None:
            found = self.project(project)
            if env is not None:
                found.check_env(env)
            if self._delegated(found, "backup", env, delegate_flags):
                return []  # the project's own CLI wrote (and printed) its archives
        engine = self.backup_engine()
        scope = self.scope(project, env)
        failed: DelegateFailed | None = None
        if project is None:
            for found in self.projects():
                try:
                    self._delegated(found, "backup", None, delegate_flags)
                except DelegateFailed as exc:  # the others are still backed up
                    failed = exc if failed is None or exc.exit_code > failed.exit_code else failed
            scope = [
                (p, e) for p, e in scope if p.backup is not None and not self.delegates(p, "backup")
            ]
        archives = []
        for found, e in scope:
            with self._job("backup", found.name, [e], progress, meter) as job:
                engine.job = job
                archives.append(engine.backup(found, e))
        if failed is not None:
            failed.archives = list(archives)
            raise failed
        return archives

    def backups(self, project: str | None = None, env: str | None = None) -> list[Archive]:
        """The complete archives in scope, newest first."""
        engine = self.backup_engine()
        found = [a for p, e in self.scope(project, env) for a in engine.archives(p, e)]
        return sorted(found, key=lambda a: a.created, reverse=True)

    def newest_backups(
        self, project: str | None = None, env: str | None = None
    ) -> list[tuple[str, str, Archive | None]]:
        """The newest archive of each env in scope that has a backup section (None: no archive)."""
        engine = self.backup_engine()
        newest = []
        for found, e in self.scope(project, env):
            if found.backup is not None:
                archives = engine.archives(found, e)
                newest.append((found.name, e, archives[0] if archives else None))
        return newest

    def verify(
        self, project: str | None = None, env: str | None = None, name: str | None = None
    ) -> list[tuple[Archive, list[Fault]]]:
        """Verify archives (all in scope, or one by name); each result is recorded in the archive."""
        engine = self.backup_engine()
        if name is not None:
            if project is None or env is None:
                raise NotFoundError("--name needs PROJECT and ENV")
            found = self.project(project)
            archives = [engine.find(found, found.check_env(env), name)]
        else:
            archives = self.backups(project, env)
        results = []
        for archive in archives:
            found_env = str(archive.manifest.get("environment", ""))
            with self._job("verify", str(archive.manifest.get("project", "")), [found_env]) as job:
                job.details["archive"] = archive.path
                faults = engine.verify(archive)
                job.details["faults"] = [f"{f.component}: {f.problem}" for f in faults]
                if faults:
                    job.result = "failed"
            results.append((archive, faults))
        return results

    def prune(
        self, project: str | None = None, env: str | None = None, *, dry_run: bool = False
    ) -> list[tuple[str, str, Decision]]:
        """Apply each env's retention rules; with *dry_run* only decide."""
        engine = self.backup_engine()
        scope = [(p, e) for p, e in self.scope(project, env) if p.backup is not None]
        if dry_run:
            return [(p.name, e, engine.prune(p, e, True)) for p, e in scope]
        decisions = []
        for found, e in scope:
            with self._job("prune", found.name, [e]) as job:
                decision = engine.prune(found, e, False)
                job.details.update(kept=list(decision.keep), removed=list(decision.remove))
            decisions.append((found.name, e, decision))
        return decisions

    def restore(
        self,
        project: str,
        env: str,
        name: str | None = None,
        *,
        safety: bool = True,
        progress: IO[str] | None = None,
        meter: Meter | None = None,
    ) -> tuple[Archive, Archive | None]:
        """Restore an archive (the newest when *name* is None) into one env.

        Returns the archive restored and the safety archive taken before.
        """
        found = self.project(project)
        found.check_env(env)
        self.refuse_collisions(project, [env])
        engine = self.backup_engine()
        archive = engine.find(found, env, name)
        timeout = found.gate_timeout("restore")
        self.runtime.check_gate(project, env, timeout, found.gate_setting("restore"))
        with self._job("restore", project, [env], progress, meter) as job:
            engine.job = job
            job.details["archive"] = archive.name
            job.changing()
            safety_archive = engine.restore(
                found, env, archive, safety=safety, health_timeout=timeout
            )
            job.details["safety_backup"] = safety_archive.name if safety_archive else None
        return archive, safety_archive

    @contextlib.contextmanager
    def _job(
        self,
        kind: str,
        project: str,
        envs: Sequence[str],
        progress: IO[str] | None = None,
        meter: Meter | None = None,
    ) -> Iterator[Job]:
        """Run the block as a job; *progress* and *meter* get its lines and bytes."""
        from opskit import jobs
        from opskit.output import Reporter

        reporter = Reporter(progress, meter) if progress or meter else None
        with (
            self.runtime.events.subscribed(reporter),
            jobs.run(self.runtime.events, kind, project, envs) as job,
        ):
            yield job

    # -- moving between environments --------------------------------------------

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
        """Copy the data of env *source* into env *target* (a direction ``sync.pairs``
        allows): back up the target, stream databases through the ``sync.replace``
        rewrite, mirror folders and volumes, start the target and wait for health.

        With *dry_run*, report tables, rows, replacements and files; change nothing.
        *before_changes* runs after every check and before the first change. A project
        that delegates ``sync`` runs its own CLI with *delegate_flags* (default: the
        direction, ``--yes`` and ``--dry-run`` as asked) and reports only that it did.
        """
        from opskit import sync

        found = self.project(project)
        if delegate_flags is None:
            delegate_flags = ["--from", source, "--to", target, "--yes"]
            delegate_flags += ["--dry-run"] if dry_run else []
        if self._delegated(found, "sync", None, delegate_flags):
            return sync.SyncReport(project, source, target, dry_run, (), (), (), None, True)
        if dry_run:
            return sync.run(self.runtime, found, source, target, dry_run=True, progress=progress)
        sync.check_direction(found, source, target)  # refused before anything is read
        sync.replacements(found, source, target)
        self.refuse_collisions(project, [target])
        self.runtime.check_gate(
            project, target, found.gate_timeout("sync"), found.gate_setting("sync")
        )
        with self._job("sync", project, [source, target], progress) as job:

            def begin() -> None:
                if before_changes is not None:
                    before_changes()
                job.changing()

            return sync.run(
                self.runtime,
                found,
                source,
                target,
                progress=job.lines("opskit"),
                before_changes=begin,
                details=job.details,
                job=job,
            )

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
        """Promote code one step (``promote.type`` git or rsync): preview, move, rebuild
        when needed, wait until healthy and stable; roll back and raise when it is not.

        ``type: script`` runs through :meth:`promote_script` instead.
        """
        from opskit import promote

        found = self.project(project)
        promote.check_step(found, source, target)
        if dry_run:
            return promote.run(self.runtime, found, source, target, dry_run=True, progress=progress)
        self.refuse_collisions(project, [target])
        setting = found.gate_setting("promote")
        self.runtime.check_gate(project, target, found.gate_timeout("promote"), setting)
        with self._job("promote", project, [source, target], progress) as job:

            def begin(report: PromoteReport) -> None:
                if before_changes is not None:
                    before_changes(report)
                job.changing()

            try:
                return promote.run(
                    self.runtime,
                    found,
                    source,
                    target,
                    progress=job.lines("opskit"),
                    before_changes=begin,
                    details=job.details,
                )
            finally:
                if job.details.get("result") == "rolled back":
                    job.result = "rolled back"

    def promote_script(
        self, project: str, source: str, target: str, *, dry_run: bool = False
    ) -> int:
        """Run the descriptor's promote script with ``--from``, ``--to`` [``--dry-run``]
        in the project folder; return its exit code."""
        from opskit import promote

        found = self.project(project)
        promote.check_step(found, source, target)
        assert found.promote is not None and found.promote.script is not None
        script = found.resolve_path(found.promote.script, target)
        argv = [script, "--from", source, "--to", target, *(["--dry-run"] if dry_run else [])]
        if dry_run:
            return self.host.call(argv, cwd=found.folder)
        with self._job("promote", project, [source, target]) as job:
            job.changing()
            code = self.host.call(argv, cwd=found.folder)
            if code != 0:
                job.result = "failed"
                job.details["result"] = f"failed (exit {code})"
        return code

    def rebuild(
        self,
        project: str,
        env: str,
        *,
        dry_run: bool = False,
        progress: IO[str] | None = None,
        meter: Meter | None = None,
    ) -> RebuildPlan:
        """Disaster recovery (:func:`opskit.rebuild.rebuild`): build and start the env,
        wait until healthy, restore the newest verified archive. With *dry_run*, the plan."""
        from opskit.rebuild import rebuild

        found = self.project(project)
        plan = rebuild(self.runtime, found, env, dry_run=True)  # refused before any job
        if dry_run:
            return plan
        with self._job("rebuild", project, [env], progress, meter) as job:
            return rebuild(self.runtime, found, env, job=job)

    def history(self, project: str | None = None) -> list[dict[str, Any]]:
        """The audit log (sync, promote, restore, rebuild), oldest first."""
        from opskit.audit import read

        if project is not None:
            self.project(project)
        return read(self.host, self.projects(), project)

    # -- containers ------------------------------------------------------------

    def logs(
        self,
        project: str,
        env: str,
        service: str | None = None,
        *,
        follow: bool = False,
        tail: int | None = None,
        stream: IO[str] | None = None,
    ) -> int:
        """Write the logs of an env's (or one service's) containers to *stream* (stdout)."""
        return self.runtime.logs(project, env, service, follow=follow, tail=tail, stream=stream)

    def exec(
        self, project: str, env: str, service: str, command: Sequence[str], *, tty: bool = False
    ) -> int:
        """Run *command* in the service's running container; return its exit code."""
        return self.runtime.exec(project, env, service, command, tty=tty)

    def shell(self, project: str, env: str, service: str) -> int:
        """An interactive shell (bash where the image has it, else sh) in the service's container."""
        return self.runtime.shell(project, env, service)
