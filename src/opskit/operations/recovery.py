"""``rebuild --all --offsite --from TARGET``: a whole server back from offsite alone.

The newest configuration backup is laid out under the root (:mod:`opskit.recovery`), then
every env, in ``rebuild.order``: its newest complete offsite archive downloaded and
verified, the external networks and volumes created, the stacks built and started, the
archive restored behind the health gate (:func:`opskit.rebuild.rebuild`). It ends with
each env's health, read again, and ``doctor``. Run again after an interruption, it goes on
where it stopped: an env recorded as back and healthy now is left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from opskit.archive import ArchiveError
from opskit.errors import OpskitError
from opskit.operations import Context

if TYPE_CHECKING:
    from opskit.archive import Archive
    from opskit.descriptor import Project
    from opskit.doctor import DoctorReport
    from opskit.recovery import Configuration
    from opskit.restic import Restic
    from opskit.runtime import Runtime


@attrs.frozen
class Request:
    target: str
    password_file: str | None = None  # default: the state folder's restic-password
    from_root: str | None = None  # the old root, where the repository holds several
    rewrites: tuple[tuple[str, str], ...] = ()
    dry_run: bool = False


@attrs.frozen
class EnvBack:
    """One env of a whole-server rebuild: what was restored and how it is now."""

    project: str
    env: str
    state: str  # "restored", "already back", "started empty", or in a dry run "would restore"…
    archive: str | None = None
    archive_time: str | None = None
    rows: int | None = None  # rows the restore proved loaded, all tables of all databases
    files: int | None = None  # files of the archive's paths and volumes
    healthy: bool | None = None  # read after every env was back (None: dry run)
    health: str = ""  # the failing checks

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Recovered:
    target: str
    snapshot: str
    snapshot_time: str
    old_root: str
    root: str
    files: int  # configuration files (written now, or that a dry run would write)
    envs: tuple[EnvBack, ...]
    doctor: DoctorReport | None = None
    dry_run: bool = False

    @classmethod
    def of(
        cls,
        config: Configuration,
        root: str,
        files: int,
        envs: list[EnvBack],
        doctor: DoctorReport | None = None,
        dry_run: bool = False,
    ) -> Recovered:
        """What came back of *config* under *root*."""
        return cls(
            config.target, config.snapshot, config.time, config.old_root, root, files,
            tuple(envs), doctor, dry_run,
        )  # fmt: skip

    @property
    def ok(self) -> bool:
        healthy = all(e.healthy is not False for e in self.envs)
        return healthy and (self.doctor is None or self.doctor.ok)

    def as_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=False)
        data["envs"] = [e.as_dict() for e in self.envs]
        data["doctor"] = self.doctor.as_dict() if self.doctor is not None else None
        data["ok"] = self.ok
        return data


def run(ctx: Context, request: Request) -> Recovered:
    from opskit import recovery
    from opskit.offsite import password_file
    from opskit.restic import ResticError
    from opskit.settings import DEFAULT_STATE_DIR

    runtime = ctx.runtime
    host, root = runtime.host, runtime.root.rstrip("/") or "/"
    given = request.password_file
    password = given or password_file(runtime.settings().state_dir)
    restic = recovery.open_target(runtime, request.target, password)
    try:
        snapshot = recovery.newest(restic, request.from_root)
        config = recovery.read(restic, snapshot, root, request.rewrites)
    except ResticError as exc:
        raise recovery.RecoveryError(f"cannot read the offsite repository: {exc}") from None
    settings, projects = recovery.projects_of(config, root)
    pairs = recovery.order(settings, [(p, e) for p in projects for e in p.environments])
    if request.dry_run:
        opened = {request.target: restic}

        def repository(project: Project) -> Restic:
            offsite = settings.offsite_for(project)
            target = offsite.target if offsite is not None else request.target
            if target not in opened:
                opened[target] = recovery.open_target(runtime, target, password)
            return opened[target]

        return _dry_run(repository, config, root, pairs)

    state_dir = settings.state_dir or DEFAULT_STATE_DIR
    progress = recovery.load_progress(host, state_dir)
    if progress.get("snapshot") != config.snapshot or not progress.get("laid_out"):
        host.run(["mkdir", "-p", "--", root])
        written = recovery.lay_out(host, config)
        progress = {"snapshot": config.snapshot, "target": config.target, "envs": {}}
        progress.update(laid_out=True, files=written)
        _keep_password(host, password, password_file(state_dir))
        recovery.save_progress(host, state_dir, progress)
    runtime.reload()
    if given and given != password_file(state_dir):
        _escrowed(runtime)
    projects_now = {p.name: p for p in runtime.projects()}
    pairs = [(projects_now[p.name], e) for p, e in pairs]

    from opskit.output import progress as say

    def renamed(key: str) -> str:  # a volume's key holds its engine name
        return recovery.rewritten(key, config.rewrites)

    say(ctx.progress, f"rebuild --all: {root} from {config.target} ({len(pairs)} envs)")
    envs: list[EnvBack] = []
    for i, (project, env) in enumerate(pairs, 1):
        key = f"{project.name} {env}"
        say(ctx.progress, f"[{i}/{len(pairs)}] {key}")
        try:
            done = _bring_back(ctx, project, env, progress["envs"].get(key), renamed)
        except OpskitError as exc:
            back_now = [f"{e.project} {e.env}" for e in envs] or ["none"]
            why = _without(str(exc), key)
            if isinstance(exc, ArchiveError):  # the archive and the configuration disagree
                why += f" (the configuration laid out is of {config.time[:19]})"
            raise recovery.RecoveryError(
                f"{key}: {why}; stopped there (back: {', '.join(back_now)})"
            ) from None
        progress["envs"][key] = {"archive": done.archive, "state": done.state}
        recovery.save_progress(host, state_dir, progress)
        say(ctx.progress, f"[{i}/{len(pairs)}] {key}: {done.state}")
        envs.append(done)

    from opskit.doctor import examine

    checked = _healthy_now(runtime, envs)
    files = int(progress.get("files") or 0)
    return Recovered.of(config, root, files, checked, examine(runtime, root_only=True))


def _healthy_now(runtime: Runtime, envs: list[EnvBack]) -> list[EnvBack]:
    """*envs* with their health read again, now that all are back (fresh evidence); an
    env that failed or was not drilled is not healthy whatever its containers say."""
    checked = []
    for back in envs:
        report = runtime.stacks.health(runtime.project(back.project), back.env)
        failing = "; ".join(f"{c.check}: {c.detail}" for c in report.checks if not c.ok)
        proven = report.ok and not back.state.startswith(("FAILED", "not drilled"))
        checked.append(attrs.evolve(back, healthy=proven, health=failing))
    return checked


def _without(message: str, key: str) -> str:
    return message.removeprefix(f"{key}: ")


def _escrowed(runtime: Runtime) -> None:
    """The password came from outside the server, and opened the repository: a copy is
    kept off the server, as ``opskit password offsite --confirm-escrowed`` records it."""
    from opskit import escrow

    with contextlib.suppress(OpskitError):  # else doctor says what is missing
        escrow.confirm(runtime.host, escrow.find(runtime, "offsite"))


def _keep_password(host: Any, given: str, kept: str) -> None:
    """Keep the password file the rebuild was given in the laid-out state folder (0600),
    where every later offsite command reads it."""
    if given == kept or host.exists(kept):
        return
    import posixpath

    host.run(["mkdir", "-p", "-m", "700", "--", posixpath.dirname(kept)])
    host.run(["install", "-m", "600", "--", given, kept])


def _bring_back(
    ctx: Context, project: Project, env: str, record: Any, renamed: Callable[[str], str]
) -> EnvBack:
    from opskit.offsite import target_of
    from opskit.operations import offsite
    from opskit.rebuild import rebuild

    runtime = ctx.runtime
    if record is not None and runtime.stacks.health(project, env).ok:
        return EnvBack(project.name, env, "already back", record.get("archive"))
    if project.backup is None:
        with ctx.job("rebuild", project.name, [env]) as job:
            rebuild(runtime, project, env, job=job, data=False)
        return EnvBack(project.name, env, "started empty")
    archive = offsite.download(ctx, project, env, None, local_first=True)
    with ctx.job("rebuild", project.name, [env]) as job:
        job.details.update(offsite_target=target_of(runtime, project))
        rebuild(runtime, project, env, job=job, verified=archive, renamed=renamed)
    return EnvBack(project.name, env, "restored", archive.name, *_archive_facts(archive))


def _archive_facts(archive: Archive) -> tuple[str | None, int | None, int | None]:
    """The archive's time, the rows of its databases and the files of its trees."""
    from opskit.archive import NAME_RE, parse_stamp, part_of

    match = NAME_RE.match(archive.name)
    when = parse_stamp(match["stamp"]).isoformat() if match else None
    parts = [part_of(record) for record in archive.components]
    rows = [p["rows"] for p in parts if p["rows"] is not None]
    files = [p["files"] for p in parts if p["files"] is not None]
    return when, sum(rows) if rows else None, sum(files) if files else None


def _dry_run(
    repository: Callable[[Project], Restic],
    config: Configuration,
    root: str,
    pairs: list[tuple[Project, str]],
) -> Recovered:
    """What a rebuild would do, from the repository alone: the files it would lay out and,
    per env, the archive it would restore (the newest whose copy is complete)."""
    from opskit.archive import NAME_RE, parse_stamp
    from opskit.offsite import complete_copies

    envs = []
    for project, env in pairs:
        if project.backup is None:
            envs.append(EnvBack(project.name, env, "would start empty"))
            continue
        restic = repository(project)
        complete = complete_copies(restic, project.name, env)
        if not complete:
            envs.append(EnvBack(project.name, env, f"no complete copy on {restic.target}"))
            continue
        name = complete[0]
        when = parse_stamp(NAME_RE.match(name)["stamp"]).isoformat()  # type: ignore[index]
        envs.append(EnvBack(project.name, env, "would restore", name, when))
    return Recovered.of(config, root, len(config.files), envs, dry_run=True)


# -- drill --all --offsite ------------------------------------------------------------------


@attrs.frozen
class DrillRequest:
    target: str | None = None  # default: the repository the root's configuration goes to


def drill_all(ctx: Context, request: DrillRequest) -> Recovered:
    """Rebuild the whole root from offsite into a throw-away namespace on the same engine
    (:mod:`opskit.namespaced`), check every env's health, then remove it all: proof that
    the server comes back from offsite alone. A job of kind ``drill``: it fails, and
    alerts when scheduled, when any env did not come back healthy."""
    import posixpath
    import time

    from opskit import namespaced, recovery
    from opskit.drill import (
        LABEL,
        WHOLE,
        remove_whole,
        remove_whole_leftovers,
        whole_drill_id,
    )
    from opskit.offsite import password_file
    from opskit.output import progress as say
    from opskit.processes import signals_deferred
    from opskit.restic import ResticError
    from opskit.rootconfig import targets
    from opskit.runtime import Runtime

    runtime = ctx.runtime
    runtime.check_settings()
    host, settings = runtime.host, runtime.settings()
    found = targets(runtime)
    target = request.target or (found[0] if found else None)
    if target is None:
        raise recovery.RecoveryError(
            "no offsite target: a whole-root drill rebuilds from the offsite copies"
        )
    drills_dir = posixpath.join(settings.state_dir, "drills")
    remove_whole_leftovers(host, drills_dir)
    drill_id, namespace = whole_drill_id()
    folder = posixpath.join(drills_dir, WHOLE + drill_id)
    started = time.monotonic()
    with ctx.job("drill", "", []) as job:
        job.details.update(target=target, namespace=namespace)
        host.run(["mkdir", "-p", "-m", "700", "--", folder])
        try:
            password = password_file(settings.state_dir)
            restic = recovery.open_target(runtime, target, password)
            backup_dirs = sorted({p.backup.dir for p in runtime.projects() if p.backup})
            rewrites = [(settings.state_dir, posixpath.join(folder, "state"))]
            rewrites += [
                (d, posixpath.join(folder, "backups", str(i))) for i, d in enumerate(backup_dirs)
            ]
            try:
                snapshot = recovery.newest(restic, runtime.root)
                root = posixpath.join(folder, "root")
                config = recovery.read(restic, snapshot, root, tuple(rewrites))
            except ResticError as exc:
                raise recovery.RecoveryError(f"cannot read the offsite repository: {exc}") from None
            job.details["snapshot"] = config.snapshot
            recovery.lay_out(host, config)
            drilled = Runtime(root, host, runtime.plugins)
            _keep_password(host, password, password_file(drilled.settings().state_dir))
            refused = namespaced.move(drilled, namespace, {LABEL: drill_id})
            pairs = recovery.order(drilled.settings(), drilled.scope())
            inner = Context(drilled, ctx.progress, ctx.meter)

            def renamed(key: str) -> str:  # the volumes' engine names are in the namespace
                kind, _, name = key.partition("-")
                return f"volume-{namespace}-{name}" if kind == "volume" else key

            say(ctx.progress, f"drill --all: {runtime.root} from {target} as {namespace}")
            envs: list[EnvBack] = []
            for i, (project, env) in enumerate(pairs, 1):
                key = f"{project.name} {env}"
                say(ctx.progress, f"[{i}/{len(pairs)}] {key}")
                if key in refused:
                    envs.append(EnvBack(project.name, env, f"not drilled: {refused[key]}"))
                    continue
                try:
                    done = _bring_back(inner, project, env, None, renamed)
                except OpskitError as exc:
                    done = EnvBack(project.name, env, f"FAILED: {_without(str(exc), key)}")
                say(ctx.progress, f"[{i}/{len(pairs)}] {key}: {done.state}")
                envs.append(done)
            checked = _healthy_now(drilled, envs)
        finally:
            with signals_deferred():
                say(ctx.progress, f"drill --all: removing {namespace}")
                remove_whole(host, drill_id, namespace, folder)
        result = Recovered.of(config, runtime.root, len(config.files), checked)
        job.details["seconds"] = round(time.monotonic() - started, 1)
        bad = [f"{e.project} {e.env}" for e in result.envs if not e.healthy]
        if bad:
            job.fail(f"the whole-root drill from {target}: {', '.join(bad)} did not come back")
    return result
