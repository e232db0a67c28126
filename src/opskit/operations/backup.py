"""``backup``: one env, a project's envs, or every project with a backup section; and the
listings of the archives written (``backups``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from opskit.errors import DelegateFailed, OpskitError
from opskit.operations import Context, engine
from opskit.operations.delegate import Request as Delegation
from opskit.operations.delegate import delegated, worst

if TYPE_CHECKING:
    from opskit.archive import Archive
    from opskit.runtime import Runtime


@attrs.frozen
class Request:
    """Back up *project* (None: every project) *env* (None: every env). With
    *verify_and_prune* (the nightly timer) each new archive is verified, then the env
    pruned; with *offsite* each archive is copied offsite. A project that delegates
    ``backup`` runs its own CLI with *delegate_flags*."""

    project: str | None = None
    env: str | None = None
    delegate_flags: Sequence[str] = ()
    verify_and_prune: bool = False
    offsite: bool = False


def run(ctx: Context, request: Request) -> list[Archive]:
    """Back up one env, a project's envs, or (no project) every project with a backup section.

    Returns the archives written, each complete and on disk. With *verify_and_prune* (what
    the nightly timer does) each new archive is verified, and once it verified the env is
    pruned by its retention rules; a damaged archive fails the job. With *offsite* each
    archive of a project with an ``offsite`` section is uploaded and its copy verified. A
    project that delegates ``backup`` (``delegate:``) runs its own CLI with
    *delegate_flags* instead.
    """
    runtime = ctx.runtime
    runtime.check_settings()
    project, env, flags = request.project, request.env, request.delegate_flags
    if project is not None:
        found = runtime.project(project)
        if env is not None:
            found.check_env(env)
        if delegated(ctx, Delegation(found, "backup", env, flags)):
            return []  # the project's own CLI wrote (and printed) its archives
    scope = runtime.scope(project, env)
    failed: DelegateFailed | None = None
    if project is None:
        for found in runtime.projects():
            try:
                delegated(ctx, Delegation(found, "backup", None, flags))
            except DelegateFailed as exc:  # the others are still backed up
                failed = worst(failed, exc)
        scope = [
            (p, e) for p, e in scope if p.backup is not None and not runtime.delegates(p, "backup")
        ]
    archives = []
    for found, e in scope:
        with ctx.job("backup", found.name, [e]) as job:
            backups = engine(ctx, job)
            archive = backups.backup(found, e)
            archives.append(archive)
            if request.verify_and_prune:
                with job.phase("verifying"):
                    faults = backups.verify(archive)
                if faults:
                    listed = "; ".join(f"{f.component}: {f.problem}" for f in faults)
                    raise OpskitError(f"archive {archive.name} does not verify: {listed}")
                decision = backups.prune(found, e, dry_run=False)
                job.details["pruned"] = list(decision.remove)
            if request.offsite:
                from opskit import offsite as offsite_copies

                if runtime.settings().offsite_for(found) is not None:
                    offsite_copies.copy(runtime, found, archive, job)
    if failed is not None:
        failed.archives = list(archives)
        raise failed
    return archives


def archives(runtime: Runtime, project: str | None = None, env: str | None = None) -> list[Archive]:
    """The complete archives in scope, newest first."""
    backups = engine(Context(runtime))
    found = [a for p, e in runtime.scope(project, env) for a in backups.archives(p, e)]
    return sorted(found, key=lambda a: a.created, reverse=True)


def newest(
    runtime: Runtime, project: str | None = None, env: str | None = None
) -> list[tuple[str, str, Archive | None]]:
    """The newest archive of each env in scope that has a backup section (None: no archive)."""
    backups = engine(Context(runtime))
    found = []
    for project_found, e in runtime.scope(project, env):
        if project_found.backup is not None:
            listed = backups.whole_archives(project_found, e)
            found.append((project_found.name, e, listed[0] if listed else None))
    return found
