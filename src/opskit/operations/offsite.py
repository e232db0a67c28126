"""Offsite copies as operations (the engine, :mod:`opskit.offsite`, opens no jobs itself):
archives uploaded and their copies verified, an archive downloaded from its copy, the
copies pruned; each archive or env as a job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import attrs

from opskit.errors import NotFoundError
from opskit.operations import Context, engine
from opskit.operations.prune import Request as PruneRequest

__all__ = [
    "Copied",
    "CopyRequest",
    "PruneRequest",
    "configuration",
    "copies",
    "download",
    "prune",
    "scope",
]

if TYPE_CHECKING:
    from opskit.archive import Archive
    from opskit.descriptor import Project
    from opskit.offsite import Upload, Verification
    from opskit.retention import Decision
    from opskit.rootconfig import Sent
    from opskit.runtime import Runtime


def scope(runtime: Runtime, project: str | None, env: str | None) -> list[tuple[Project, str]]:
    """The (project, env) pairs in scope that have an offsite target. Without *project*,
    those of projects with a backup section: a project without backups has nothing to
    copy, which is no error (a project named on the command line must have one)."""
    from opskit.offsite import OffsiteError

    found = [
        (p, e)
        for p, e in runtime.scope(project, env)
        if runtime.settings().offsite_for(p) is not None
        and (project is not None or p.backup is not None)
    ]
    if not found:
        where = " ".join(part for part in (project, env) if part) or "any project with backups"
        raise OffsiteError(
            f"{where}: no offsite target (offsite.target in the descriptor or in opskit.yaml)"
        )
    return found


@attrs.frozen
class CopyRequest:
    """The archive *name* (None: each env's newest) of the envs in scope: uploaded first
    when *upload_first*, then its copy verified, reading back *read_data* of the repository."""

    project: str | None = None
    env: str | None = None
    name: str | None = None
    read_data: str = "5%"
    upload_first: bool = False


@attrs.frozen
class Copied:
    """One archive's copy: what the upload sent (None: no upload) and the verification."""

    archive: Archive
    target: str
    upload: Upload | None
    verification: Verification


def copies(ctx: Context, request: CopyRequest) -> Iterator[Copied]:
    """Each archive in scope as an ``offsite upload`` (or ``offsite verify``) job, yielded
    as soon as its job has ended; a copy that does not verify fails its job."""
    from opskit import offsite
    from opskit.output import warning

    if request.name is not None and request.env is None:
        raise NotFoundError("--name needs PROJECT and ENV")
    runtime = ctx.runtime
    kind = "offsite upload" if request.upload_first else "offsite verify"
    backups = engine(ctx)
    for found, e in scope(runtime, request.project, request.env):
        target = offsite.target_of(runtime, found)
        try:
            archive = backups.find(found, e, request.name)
        except NotFoundError as exc:
            if request.env is not None:
                raise
            warning(str(exc))
            continue
        with ctx.job(kind, found.name, [e]) as job:
            job.details.update(archive=archive.location, target=target)
            with offsite.about(archive.name):
                restic = offsite.connect(runtime, target)
            done = None
            if request.upload_first:
                done = offsite.upload(restic, archive, job)
                job.details["sent"] = done.sent
            checked = offsite.verify(restic, archive, request.read_data, job)
            if not checked.ok:
                job.fail(f"archive {archive.name} on {target}: " + "; ".join(checked.faults))
        yield Copied(archive, target, done, checked)


def download(
    ctx: Context, project: Project, env: str, name: str | None, *, local_first: bool = False
) -> Archive:
    """Download archive *name* (None: the newest with a complete copy) as an ``offsite
    download`` job. With *local_first*, an archive that is still here is used as it is."""
    from opskit import offsite

    runtime = ctx.runtime
    name = name or offsite.newest_copied(runtime, project, env)
    if local_first:
        try:
            return engine(ctx).find(project, env, name)
        except NotFoundError:
            pass
    with ctx.quiet().job("offsite download", project.name, [env]) as job:
        job.details.update(archive=name, target=offsite.target_of(runtime, project))
        archive = offsite.download(runtime, project, env, name, job)
        job.details["archive"] = archive.location
    return archive


def prune(ctx: Context, request: PruneRequest) -> list[tuple[str, str, Decision]]:
    """Forget the offsite archives beyond each env's rules, each env as a job; with
    *dry_run* only decide. Every env is planned, and what restic returned checked, before
    anything is forgotten: a refusal in one env leaves every env as it was."""
    from opskit import offsite

    runtime = ctx.runtime
    plans = [
        offsite.plan_prune(runtime, found, e)
        for found, e in scope(runtime, request.project, request.env)
    ]
    last = {plan.target: i for i, plan in enumerate(plans) if plan.doomed}
    results = []
    for i, plan in enumerate(plans):
        decision = plan.decision
        with ctx.job("offsite prune", plan.project, [plan.env]) as job:
            if not request.dry_run and plan.doomed:  # one 'restic prune' per repository, at the end
                offsite.forget(runtime, plan, then_prune=last[plan.target] == i)
            job.details.update(kept=list(decision.keep), removed=list(decision.remove))
        results.append((plan.project, plan.env, decision))
    return results


def configuration(ctx: Context) -> list[Sent]:
    """Back the root's own configuration up into every offsite repository it uses (see
    :mod:`opskit.rootconfig`), as one job."""
    from opskit import rootconfig

    ctx.runtime.check_settings()
    with ctx.job("offsite config", "", []) as job:
        sent = rootconfig.send(ctx.runtime)
        for copy in sent:
            job.log(
                f"{copy.target}: snapshot {copy.snapshot[:8]}, {len(copy.files)} files, "
                f"{copy.bytes} bytes"
            )
            for line in copy.left_out:
                job.log(f"left out {line}")
        job.details["snapshots"] = [copy.snapshot for copy in sent]
    return sent
