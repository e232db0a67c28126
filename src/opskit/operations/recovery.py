"""``rebuild --all --offsite --from TARGET``: a whole server back from offsite alone.

The newest configuration backup is laid out under the root (:mod:`opskit.recovery`), then
every env, in ``rebuild.order``: its newest complete offsite archive downloaded and
verified, the external networks and volumes created, the stacks built and started, the
archive restored behind the health gate (:func:`opskit.rebuild.rebuild`). It ends with
each env's health, read again, and ``doctor``. Run again after an interruption, it goes on
where it stopped: an env recorded as back and healthy now is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from opskit.errors import OpskitError
from opskit.operations import Context

if TYPE_CHECKING:
    from opskit.archive import Archive
    from opskit.descriptor import Project
    from opskit.doctor import DoctorReport
    from opskit.recovery import Configuration
    from opskit.restic import Restic


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
            raise recovery.RecoveryError(
                f"{key}: {_without(str(exc), key)}; stopped before it (back: {', '.join(back_now)})"
            ) from None
        progress["envs"][key] = {"archive": done.archive, "state": done.state}
        recovery.save_progress(host, state_dir, progress)
        say(ctx.progress, f"[{i}/{len(pairs)}] {key}: {done.state}")
        envs.append(done)

    from opskit.doctor import examine

    checked = []
    for back in envs:  # fresh evidence: every env read again once all are back
        report = runtime.stacks.health(runtime.project(back.project), back.env)
        failing = "; ".join(f"{c.check}: {c.detail}" for c in report.checks if not c.ok)
        checked.append(attrs.evolve(back, healthy=report.ok, health=failing))
    return Recovered(
        config.target,
        config.snapshot,
        config.time,
        config.old_root,
        root,
        int(progress.get("files") or 0),
        tuple(checked),
        examine(runtime, root_only=True),
    )


def _without(message: str, key: str) -> str:
    return message.removeprefix(f"{key}: ")


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
    from opskit.archive import NAME_RE, parse_stamp

    match = NAME_RE.match(archive.name)
    when = parse_stamp(match["stamp"]).isoformat() if match else None
    rows = files = None
    for record in archive.components:
        counted = record.details.get("rows")
        if isinstance(counted, dict):
            rows = (rows or 0) + sum(int(n) for n in counted.values())
        if isinstance(record.details.get("files"), int):
            files = (files or 0) + int(record.details["files"])
    return when, rows, files


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
    return Recovered(
        config.target,
        config.snapshot,
        config.time,
        config.old_root,
        root,
        len(config.files),
        tuple(envs),
        dry_run=True,
    )
