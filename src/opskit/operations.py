"""The operations behind :class:`opskit.Ops`: each runs as a job (:mod:`opskit.jobs`) on a
:class:`~opskit.runtime.Runtime`, after its checks and, for a project that hands the
command to its own CLI (``delegate:``), instead of opskit's own work.

The facade only resolves names and calls these; the CLI and Python callers get the same
behaviour, delegation and events included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING

from opskit.errors import DelegateFailed, NotFoundError, OpskitError
from opskit.gate import check_gate

if TYPE_CHECKING:
    from opskit.archive import Archive, Fault
    from opskit.backups import Engine
    from opskit.descriptor import Project
    from opskit.drill import DrillResult
    from opskit.jobs import Job
    from opskit.promote import PromoteReport
    from opskit.rebuild import RebuildPlan
    from opskit.retention import Decision
    from opskit.runtime import Meter, Runtime
    from opskit.sync import SyncReport
    from opskit.watch import WatchReport


def _engine(runtime: Runtime, job: Job | None = None) -> Engine:
    from opskit.backups import Engine

    return Engine(runtime, job=job)


def delegated(
    runtime: Runtime,
    found: Project,
    command: str,
    env: str | None,
    flags: Sequence[str],
    cli_env: str | None = None,
) -> bool:
    """Run the project's own CLI when it takes *command* (``delegate:``): True when it
    did and succeeded; raises :class:`DelegateFailed` with its exit code otherwise.

    A CLI per env (``{env}`` in ``delegate.cli``) backs up each env itself when no ENV is
    given. Run from a timer (``--scheduled``), each call is a job, so that its dead-man
    ping and a failure's alert go out as for opskit's own jobs."""
    if not runtime.delegates(found, command):
        return False
    assert found.delegate is not None
    calls: list[str | None] = [env]
    if command == "backup" and env is None and "{env}" in found.delegate.cli:
        calls = list(found.environments)
    failed: DelegateFailed | None = None
    for each in calls:
        try:
            if runtime.scheduled:
                envs = [each] if each else list(found.environments)
                with as_job(runtime, command, found.name, envs):
                    _delegate(runtime, found, command, each, flags, cli_env)
            else:
                _delegate(runtime, found, command, each, flags, cli_env)
        except DelegateFailed as exc:  # the other envs still run
            failed = exc if failed is None or exc.exit_code > failed.exit_code else failed
    if failed is not None:
        raise failed
    return True


def _delegate(
    runtime: Runtime,
    found: Project,
    command: str,
    env: str | None,
    flags: Sequence[str],
    cli_env: str | None,
) -> None:
    code = run_delegate(runtime, found, command, env, flags, cli_env)
    if code != 0:
        raise DelegateFailed(found.name, command, code)


def run_delegate(
    runtime: Runtime,
    project: Project,
    command: str,
    env: str | None,
    flags: Sequence[str],
    cli_env: str | None = None,
) -> int:
    """Run the project's own CLI as docs/cli-contract.md says; return its exit code.
    ``{env}`` in ``delegate.cli`` is *env*, else *cli_env* (sync and promote: the env
    they change, ``--to``)."""
    assert project.delegate is not None
    cli = project.resolve_path(project.delegate.cli, env or cli_env or "")
    variables = [
        f"OPSKIT_PROJECT={project.name}",
        f"OPSKIT_ENV={env or ''}",
        f"OPSKIT_ROOT={runtime.root}",
    ]
    argv = ["env", *variables, cli, command, project.name, *([env] if env else []), *flags]
    return runtime.host.call(argv, cwd=project.folder)


def backup(
    runtime: Runtime,
    project: str | None = None,
    env: str | None = None,
    *,
    progress: IO[str] | None = None,
    meter: Meter | None = None,
    delegate_flags: Sequence[str] = (),
    verify_and_prune: bool = False,
    offsite: bool = False,
) -> list[Archive]:
    """Back up one env, a project's envs, or (no project) every project with a backup section.

    Returns the archives written, each complete and on disk. With *verify_and_prune* (what
    the nightly timer does) each new archive is verified, and once it verified the env is
    pruned by its retention rules; a damaged archive fails the job. With *offsite* each
    archive of a project with an ``offsite`` section is uploaded and its copy verified. A
    project that delegates ``backup`` (``delegate:``) runs its own CLI with
    *delegate_flags* instead.
    """
    runtime.check_settings()
    if project is not None:
        found = runtime.project(project)
        if env is not None:
            found.check_env(env)
        if delegated(runtime, found, "backup", env, delegate_flags):
            return []  # the project's own CLI wrote (and printed) its archives
    engine = _engine(runtime)
    scope = runtime.scope(project, env)
    failed: DelegateFailed | None = None
    if project is None:
        for found in runtime.projects():
            try:
                delegated(runtime, found, "backup", None, delegate_flags)
            except DelegateFailed as exc:  # the others are still backed up
                failed = exc if failed is None or exc.exit_code > failed.exit_code else failed
        scope = [
            (p, e) for p, e in scope if p.backup is not None and not runtime.delegates(p, "backup")
        ]
    archives = []
    for found, e in scope:
        with as_job(runtime, "backup", found.name, [e], progress, meter) as job:
            engine = _engine(runtime, job)
            archive = engine.backup(found, e)
            archives.append(archive)
            if verify_and_prune:
                with job.phase("verifying"):
                    faults = engine.verify(archive)
                if faults:
                    listed = "; ".join(f"{f.component}: {f.problem}" for f in faults)
                    raise OpskitError(f"archive {archive.name} does not verify: {listed}")
                decision = engine.prune(found, e, dry_run=False)
                job.details["pruned"] = list(decision.remove)
            if offsite:
                from opskit import offsite as offsite_copies

                if runtime.settings().offsite_for(found) is not None:
                    offsite_copies.copy(runtime, found, archive, job)
    if failed is not None:
        failed.archives = list(archives)
        raise failed
    return archives


def backups(runtime: Runtime, project: str | None = None, env: str | None = None) -> list[Archive]:
    """The complete archives in scope, newest first."""
    engine = _engine(runtime)
    found = [a for p, e in runtime.scope(project, env) for a in engine.archives(p, e)]
    return sorted(found, key=lambda a: a.created, reverse=True)


def newest_backups(
    runtime: Runtime, project: str | None = None, env: str | None = None
) -> list[tuple[str, str, Archive | None]]:
    """The newest archive of each env in scope that has a backup section (None: no archive)."""
    engine = _engine(runtime)
    newest = []
    for found, e in runtime.scope(project, env):
        if found.backup is not None:
            archives = engine.archives(found, e)
            newest.append((found.name, e, archives[0] if archives else None))
    return newest


def verify(
    runtime: Runtime, project: str | None = None, env: str | None = None, name: str | None = None
) -> list[tuple[Archive, list[Fault]]]:
    """Verify archives (all in scope, or one by name); each result is recorded in the archive."""
    runtime.check_settings()
    engine = _engine(runtime)
    if name is not None:
        if project is None or env is None:
            raise NotFoundError("--name needs PROJECT and ENV")
        found = runtime.project(project)
        archives = [engine.find(found, found.check_env(env), name)]
    else:
        archives = backups(runtime, project, env)
    results = []
    for archive in archives:
        found_env = str(archive.manifest.get("environment", ""))
        with as_job(
            runtime, "verify", str(archive.manifest.get("project", "")), [found_env]
        ) as job:
            job.details["archive"] = archive.path
            faults = engine.verify(archive)
            job.details["faults"] = [f"{f.component}: {f.problem}" for f in faults]
            if faults:
                listed = "; ".join(f"{f.component}: {f.problem}" for f in faults)
                job.fail(f"archive {archive.name}: {listed}")
        results.append((archive, faults))
    return results


def drill(
    runtime: Runtime,
    project: str,
    env: str,
    name: str | None = None,
    *,
    progress: IO[str] | None = None,
) -> DrillResult:
    """Prove that an archive (the newest when *name* is None) restores, in throw-away
    containers beside the env (see :mod:`opskit.drill`); the result is recorded in it."""
    runtime.check_settings()
    from opskit import drill as drills

    found = runtime.project(project)
    checked = found.check_env(env)
    with as_job(runtime, "drill", found.name, [checked], progress) as job:
        return drills.drill(runtime, found, checked, name, job)


def watch(runtime: Runtime, now: datetime | None = None) -> WatchReport:
    """One pass over every project and env (see :mod:`opskit.watch`): alerts on changes
    of state and reminders, as ``opskit.yaml`` says."""
    runtime.check_settings()
    from opskit import watch as watching

    with as_job(runtime, "watch", "", []) as job:
        return watching.watch(runtime, now, job)


def prune(
    runtime: Runtime, project: str | None = None, env: str | None = None, *, dry_run: bool = False
) -> list[tuple[str, str, Decision]]:
    """Apply each env's retention rules; with *dry_run* only decide."""
    runtime.check_settings()
    engine = _engine(runtime)
    scope = [(p, e) for p, e in runtime.scope(project, env) if p.backup is not None]
    if dry_run:
        return [(p.name, e, engine.prune(p, e, True)) for p, e in scope]
    decisions = []
    for found, e in scope:
        with as_job(runtime, "prune", found.name, [e]) as job:
            decision = engine.prune(found, e, False)
            job.details.update(kept=list(decision.keep), removed=list(decision.remove))
        decisions.append((found.name, e, decision))
    return decisions


def restore(
    runtime: Runtime,
    project: str,
    env: str,
    name: str | None = None,
    *,
    safety: bool = True,
    offsite: bool = False,
    progress: IO[str] | None = None,
    meter: Meter | None = None,
) -> tuple[Archive, Archive | None]:
    """Restore an archive (the newest when *name* is None) into one env.

    With *offsite* the archive comes from the offsite copies (the newest complete one when
    *name* is None): downloaded and verified first, unless it is still here.
    Returns the archive restored and the safety archive taken before.
    """
    runtime.check_settings()
    found = runtime.project(project)
    found.check_env(env)
    runtime.stacks.refuse_collisions(found, [env])
    engine = _engine(runtime)
    if offsite:
        from opskit import offsite as offsite_copies

        archive = offsite_copies.fetch(runtime, found, env, name, local_first=True)
    else:
        archive = engine.find(found, env, name)
    timeout = found.gate_timeout("restore")
    check_gate(runtime.stacks, found, env, timeout, found.gate_setting("restore"))
    with as_job(runtime, "restore", project, [env], progress, meter) as job:
        engine = _engine(runtime, job)
        job.details["archive"] = archive.name
        job.changing()
        safety_archive = engine.restore(found, env, archive, safety=safety, health_timeout=timeout)
        job.details["safety_backup"] = safety_archive.name if safety_archive else None
    return archive, safety_archive


@contextlib.contextmanager
def as_job(
    runtime: Runtime,
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
        runtime.events.subscribed(reporter),
        jobs.run(runtime.events, kind, project, envs, scheduled=runtime.scheduled) as job,
    ):
        yield job


def sync(
    runtime: Runtime,
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
    runtime.check_settings()
    from opskit import sync as syncing

    found = runtime.project(project)
    if delegate_flags is None:
        delegate_flags = ["--from", source, "--to", target, "--yes"]
        delegate_flags += ["--dry-run"] if dry_run else []
    if delegated(runtime, found, "sync", None, delegate_flags, cli_env=target):
        return syncing.SyncReport(project, source, target, dry_run, (), (), (), None, True)
    if dry_run:
        return syncing.run(runtime, found, source, target, dry_run=True, progress=progress)
    syncing.check_direction(found, source, target)  # refused before anything is read
    syncing.replacements(found, source, target)
    runtime.stacks.refuse_collisions(found, [target])
    check_gate(
        runtime.stacks, found, target, found.gate_timeout("sync"), found.gate_setting("sync")
    )
    with as_job(runtime, "sync", project, [source, target], progress) as job:

        def begin() -> None:
            if before_changes is not None:
                before_changes()
            job.changing()

        return syncing.run(
            runtime,
            found,
            source,
            target,
            progress=job.lines("opskit"),
            before_changes=begin,
            details=job.details,
            job=job,
        )


def promote(
    runtime: Runtime,
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
    runtime.check_settings()
    from opskit import promote as promoting

    found = runtime.project(project)
    promoting.check_step(found, source, target)
    if dry_run:
        return promoting.run(runtime, found, source, target, dry_run=True, progress=progress)
    runtime.stacks.refuse_collisions(found, [target])
    setting = found.gate_setting("promote")
    check_gate(runtime.stacks, found, target, found.gate_timeout("promote"), setting)
    with as_job(runtime, "promote", project, [source, target], progress) as job:

        def begin(report: PromoteReport) -> None:
            if before_changes is not None:
                before_changes(report)
            job.changing()

        try:
            return promoting.run(
                runtime,
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
    runtime: Runtime, project: str, source: str, target: str, *, dry_run: bool = False
) -> int:
    """Run the descriptor's promote script with ``--from``, ``--to`` [``--dry-run``]
    in the project folder; return its exit code."""
    runtime.check_settings()
    from opskit import promote as promoting

    found = runtime.project(project)
    promoting.check_step(found, source, target)
    assert found.promote is not None and found.promote.script is not None
    script = found.resolve_path(found.promote.script, target)
    argv = [script, "--from", source, "--to", target, *(["--dry-run"] if dry_run else [])]
    if dry_run:
        return runtime.host.call(argv, cwd=found.folder)
    with as_job(runtime, "promote", project, [source, target]) as job:
        job.changing()
        code = runtime.host.call(argv, cwd=found.folder)
        if code != 0:
            job.result = "failed"
            job.details["result"] = f"failed (exit {code})"
    return code


def rebuild(
    runtime: Runtime,
    project: str,
    env: str,
    *,
    dry_run: bool = False,
    progress: IO[str] | None = None,
    meter: Meter | None = None,
) -> RebuildPlan:
    """Disaster recovery (:func:`opskit.rebuild.rebuild`): build and start the env,
    wait until healthy, restore the newest verified archive. With *dry_run*, the plan."""
    runtime.check_settings()
    from opskit.rebuild import rebuild as rebuild_env

    found = runtime.project(project)
    plan = rebuild_env(runtime, found, env, dry_run=True)  # refused before any job
    if dry_run:
        return plan
    with as_job(runtime, "rebuild", project, [env], progress, meter) as job:
        return rebuild_env(runtime, found, env, job=job)
