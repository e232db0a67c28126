"""Code promotion: move an env's code one step up the ladder (dev -> int -> prod).

A :class:`Promoter` (from ``opskit_promoter``; the core ships git and rsync) only moves
code: ``preview`` says what would arrive, ``apply`` moves it, ``rollback`` puts the
previous code back. The core does the rest, the same for every mover: the one-step
rule, the rebuild decision, bringing the env up, the health gate and the rollback.
"""

from __future__ import annotations

import itertools
import posixpath
import re
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any

import attrs
import yaml

from opskit import compose

# Defined in opskit.contracts (the types plugins and engines share); re-exported here.
from opskit.contracts import Preview as Preview
from opskit.contracts import PromoteContext as PromoteContext
from opskit.contracts import Promoter as Promoter
from opskit.errors import CommandFailed, NotFoundError, OpskitError, RolledBack
from opskit.gate import engine_time
from opskit.output import progress as say

if TYPE_CHECKING:
    from datetime import datetime

    from opskit.descriptor import Project
    from opskit.host import Host
    from opskit.jobs import Job
    from opskit.runtime import Runtime


def short(ref: str) -> str:
    """A commit id cut to 12 characters; anything else as it is."""
    return ref[:12] if _is_commit(ref) else ref


def _is_commit(ref: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{40}", ref) is not None


def code_label(ref: str) -> str:
    """What a promotion moves, in words: ``commit abc123def456`` for a commit, else
    ``working tree`` (an rsync promotion takes the source env's folder as it is)."""
    return f"commit {short(ref)}" if _is_commit(ref) else "working tree"


def move_label(source: str, target: str, new: str) -> str:
    """``dev (commit abc123def456) → int``: the one wording of a promotion, for its
    preview, its result and ``history``."""
    return f"{source} ({code_label(new)}) → {target}"


def _stream(host: Host, argv: list[str], ok: tuple[int, ...] = (0,)) -> Iterator[str]:
    """The lines *argv* writes, as they come; raise when it exits with another code."""
    from opskit.host import output_lines

    process = host.popen(argv, merge_stderr=False)
    yield from output_lines(process)
    code = process.wait()
    if code not in ok:
        raise OpskitError(f"{argv[0]} failed (exit {code}): {process.errors().strip()}")


# -- git ----------------------------------------------------------------------


def _git(host: Host, tree: str, *args: str, check: bool = True) -> str:
    return host.run(["git", "-C", tree, *args], check=check).text.strip()


class GitPromoter(Promoter):
    """Fast-forwards the target env's branch to the source env's branch (from ``origin``)."""

    name = "git"

    def _branches(self, context: PromoteContext) -> tuple[str, str]:
        promote = context.project.promote
        assert promote is not None
        branches = []
        for env in (context.source, context.target):
            branch = promote.branch(env)
            if branch is None:
                raise OpskitError(
                    f"{context.project.name}: promote.branches names no branch for {env}"
                )
            branches.append(branch)
        return branches[0], branches[1]

    def _remote(self, host: Host, tree: str, branch: str) -> str:
        return _git(host, tree, "config", f"branch.{branch}.remote", check=False) or "origin"

    def preview(self, context: PromoteContext) -> Preview:
        host, tree = context.host, context.target_dir
        source_branch, target_branch = self._branches(context)
        if host.run(["git", "-C", tree, "rev-parse", "--git-dir"], check=False).returncode != 0:
            raise NotFoundError(
                f"{context.project.name} {context.target}: {tree} is not a git working tree"
            )
        current = _git(host, tree, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
        if current != target_branch:
            raise OpskitError(
                f"{context.project.name} {context.target}: {tree} is on {current or 'a detached HEAD'}, "
                f"not on {target_branch} (promote.branches)"
            )
        remote = self._remote(host, tree, target_branch)
        try:
            _git(host, tree, "fetch", "--quiet", "--prune", remote)
        except CommandFailed as exc:
            raise OpskitError(
                f"git fetch {remote} in {tree} failed: {exc.stderr.strip()}"
            ) from None
        ref = f"refs/remotes/{remote}/{source_branch}"
        new = _git(host, tree, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        if not new:
            raise NotFoundError(
                f"{context.project.name}: branch {source_branch} ({context.source}) does not exist on {remote}"
            )
        old = _git(host, tree, "rev-parse", "HEAD")
        if (
            old != new
            and host.run(
                ["git", "-C", tree, "merge-base", "--is-ancestor", old, new], check=False
            ).returncode
            != 0
        ):
            raise OpskitError(
                f"{context.project.name} {context.target}: {target_branch} has commits that "
                f"{source_branch} lacks, so it cannot be fast-forwarded"
            )
        log = _git(host, tree, "log", "--format=%h %s", f"{old}..{new}")
        files = _git(host, tree, "diff", "--name-only", old, new)
        stat = _git(host, tree, "diff", "--stat", old, new)
        return Preview(old, new, tuple(log.splitlines()), tuple(files.splitlines()), stat)

    def check(self, context: PromoteContext, preview: Preview) -> None:
        changed = _git(
            context.host, context.target_dir, "status", "--porcelain", "--untracked-files=no"
        )
        if changed:
            count = len(changed.splitlines())
            raise OpskitError(
                f"{context.project.name} {context.target}: the working tree {context.target_dir} has "
                f"local changes ({count} file{'s' if count != 1 else ''}); commit or discard them first"
            )

    def apply(self, context: PromoteContext, preview: Preview) -> None:
        _git(context.host, context.target_dir, "merge", "--ff-only", "--quiet", preview.new)

    def diff(self, context: PromoteContext, preview: Preview) -> Iterator[str]:
        argv = ["git", "-C", context.target_dir, "diff", "--no-color", "--no-ext-diff"]
        return _stream(context.host, [*argv, preview.old, preview.new, "--"])

    def rollback(self, context: PromoteContext, preview: Preview) -> None:
        _git(context.host, context.target_dir, "reset", "--hard", "--quiet", preview.old)

    def finish(self, context: PromoteContext, preview: Preview) -> str | None:
        _, target_branch = self._branches(context)
        host, tree = context.host, context.target_dir
        remote = self._remote(host, tree, target_branch)
        pushed = host.run(
            ["git", "-C", tree, "push", "--quiet", remote, f"HEAD:refs/heads/{target_branch}"],
            check=False,
        )
        if pushed.returncode != 0:
            return f"[warning] could not push {target_branch} to {remote}: {pushed.stderr.decode(errors='replace').strip()}"
        return f"pushed {target_branch} to {remote}"


# -- rsync --------------------------------------------------------------------


def _rsync_argv(context: PromoteContext, *flags: str) -> list[str]:
    promote = context.project.promote
    excludes = [f"--exclude={pattern}" for pattern in (promote.exclude if promote else ())]
    return ["rsync", "--archive", "--delete", "--checksum", *excludes, *flags]


class RsyncPromoter(Promoter):
    """Mirrors the source env's folder into the target's, keeping a snapshot for rollback."""

    name = "rsync"

    def _snapshot(self, context: PromoteContext) -> str:
        parent, name = posixpath.split(context.target_dir.rstrip("/"))
        return posixpath.join(parent, f".opskit-promote-snapshot-{name}")

    def preview(self, context: PromoteContext) -> Preview:
        host = context.host
        for env, tree in (
            (context.source, context.source_dir),
            (context.target, context.target_dir),
        ):
            if not host.exists(tree):
                raise NotFoundError(f"{context.project.name} {env}: {tree} does not exist")
        argv = _rsync_argv(context, "--dry-run", "--itemize-changes", "--out-format=%i %n")
        listing = host.run([*argv, "--", context.source_dir.rstrip("/") + "/", context.target_dir])
        from opskit.sync import rsync_changes

        files, lines = [], []
        for deleted, name in rsync_changes(listing.text):
            files.append(name.rstrip("/"))
            lines.append(f"{'deleted' if deleted else 'changed'} {name}")
        stat = f"{len(files)} file{'s' if len(files) != 1 else ''} would change"
        return Preview("working tree", context.source_dir, tuple(lines), tuple(files), stat)

    def diff(self, context: PromoteContext, preview: Preview) -> Iterator[str]:
        # File by file, as rsync listed them (so promote.exclude holds); a folder that goes
        # is left out, its files were listed before it.
        seen: list[str] = []
        for name in preview.files:
            if any(path.startswith(name + "/") for path in seen):
                continue
            seen.append(name)
            old = posixpath.join(context.target_dir, name)
            new = posixpath.join(context.source_dir, name)
            argv = ["diff", "-u", "-N", f"--label=a/{name}", f"--label=b/{name}", old, new]
            yield from _stream(context.host, argv, ok=(0, 1))

    def apply(self, context: PromoteContext, preview: Preview) -> None:
        host, snapshot = context.host, self._snapshot(context)
        host.run(["rm", "-rf", "--", snapshot])
        host.run([*_rsync_argv(context), "--", context.target_dir.rstrip("/") + "/", snapshot])
        host.run(
            [*_rsync_argv(context), "--", context.source_dir.rstrip("/") + "/", context.target_dir]
        )

    def rollback(self, context: PromoteContext, preview: Preview) -> None:
        snapshot = self._snapshot(context)
        context.host.run([*_rsync_argv(context), "--", snapshot + "/", context.target_dir])
        context.host.run(["rm", "-rf", "--", snapshot])

    def finish(self, context: PromoteContext, preview: Preview) -> str | None:
        context.host.run(["rm", "-rf", "--", self._snapshot(context)])
        return None


# -- the core's part ------------------------------------------------------------


def check_step(project: Project, source: str, target: str) -> None:
    """Only one step up ``environments`` (dev -> int, int -> prod)."""
    project.check_env(source)
    project.check_env(target)
    envs = list(project.environments)
    if envs.index(target) != envs.index(source) + 1:
        steps = ", ".join(f"{a}->{b}" for a, b in itertools.pairwise(envs))
        raise OpskitError(
            f"{project.name}: promote goes one step up the environments ({steps}), "
            f"not {source}->{target}"
        )


def build_inputs(host: Host, project: Project, env: str) -> tuple[list[str], list[str]]:
    """The env's compose files and the build contexts of services that build an image."""
    files = [
        path
        for stack in compose.identities(host, [project], ())
        if stack.env == env and stack.present
        for path in stack.files
    ]
    contexts = []
    for path in files:
        try:
            document = yaml.safe_load(host.read_text(path)) or {}
        except yaml.YAMLError:
            continue  # compose itself will say what is wrong with it
        services = document.get("services") if isinstance(document, dict) else None
        for service in (services or {}).values():
            build = service.get("build") if isinstance(service, dict) else None
            if build is None:
                continue
            context = build if isinstance(build, str) else str(build.get("context", "."))
            contexts.append(posixpath.normpath(posixpath.join(posixpath.dirname(path), context)))
    return [posixpath.normpath(f) for f in files], contexts


def rebuild_reason(
    host: Host, project: Project, env: str, tree: str, changed: tuple[str, ...]
) -> str | None:
    """Why the env's images must be rebuilt for *changed* files, or None (``rebuild``)."""
    mode = project.promote.rebuild if project.promote else "auto"
    if mode == "never" or not changed:
        return None
    if mode == "always":
        return "promote.rebuild is always"
    files, contexts = build_inputs(host, project, env)
    for name in changed:
        path = posixpath.normpath(posixpath.join(tree, name))
        base = posixpath.basename(path)
        if base.startswith(("Dockerfile", "Containerfile")) or base.endswith(".dockerfile"):
            return f"{name} changed"
        if path in files:
            return f"compose file {name} changed"
        if any(path == c or path.startswith(c.rstrip("/") + "/") for c in contexts):
            return f"{name} is in a build context"
    return None


@attrs.frozen
class PromoteReport:
    project: str
    source: str
    target: str
    type: str
    dry_run: bool
    preview: Preview
    rebuild: str | None  # why images are rebuilt; None: no rebuild
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self, recurse=True)


def context_for(project: Project, host: Host, source: str, target: str) -> PromoteContext:
    promote = project.promote
    assert promote is not None and promote.dir is not None
    return PromoteContext(
        host,
        project,
        source,
        target,
        project.resolve_path(promote.dir, source),
        project.resolve_path(promote.dir, target),
    )


def content_diff(runtime: Runtime, project: Project, report: PromoteReport) -> Iterator[str]:
    """The unified diff of what *report*'s promotion changes (see :meth:`Promoter.diff`)."""
    promoter = runtime.plugins.promoter(project)
    if promoter is None:
        raise OpskitError(f"{project.name}: no plugin promotes type {report.type!r}")
    context = context_for(project, runtime.host, report.source, report.target)
    return promoter.diff(context, report.preview)


def run(
    runtime: Runtime,
    project: Project,
    source: str,
    target: str,
    *,
    dry_run: bool = False,
    progress: IO[str] | None = None,
    before_changes: Callable[[PromoteReport], None] | None = None,
    job: Job | None = None,
) -> PromoteReport:
    """Promote code from *source* to *target* (git or rsync) as *job*; see the module
    docstring.

    *before_changes* gets the preview once every check has passed, before anything
    changes (the CLI shows it and asks there). Raises :class:`RolledBack` after a
    rollback when the new code is not healthy, :class:`OpskitError` when the old code is
    not healthy either. With *job*, the narration goes to the job's log, not *progress*.
    """
    from opskit.backups import lock_dir
    from opskit.locks import env_lock

    check_step(project, source, target)
    promote = project.promote
    if promote is None:
        raise OpskitError(f"{project.name}: no promote section in {project.path}")
    promoter = runtime.plugins.promoter(project)
    if promoter is None:
        raise OpskitError(f"{project.name}: no plugin promotes type {promote.type!r}")
    context = context_for(project, runtime.host, source, target)

    preview = promoter.preview(context)
    promoter.check(context, preview)
    reason = rebuild_reason(runtime.host, project, target, context.target_dir, preview.files)
    report = PromoteReport(project.name, source, target, promoter.name, dry_run, preview, reason)
    if job is not None:
        job.details.update({"from_code": preview.old, "to_code": preview.new})
    if dry_run or preview.empty:
        return report
    if before_changes is not None:
        before_changes(report)
    if job is not None:
        job.changing()
        progress = job.lines("opskit")

    def bring_up(since: datetime) -> None:
        runtime.stacks.bring_up(
            project,
            target,
            project.gate_timeout("promote"),
            since=since,
            build=f"rebuilding images ({reason})" if reason is not None else None,
            setting=project.gate_setting("promote"),
            progress=progress,
        )

    directory = lock_dir(project, target)
    runtime.host.run(["mkdir", "-p", "--", directory])
    with env_lock(runtime.host, directory, f"promote into {project.name} {target}", 300):
        say(progress, f"moving {move_label(source, target, preview.new)}")
        since = engine_time(runtime.host)  # health evidence must be newer than the new code
        promoter.apply(context, preview)
        try:
            bring_up(since)
        except OpskitError as exc:
            say(
                progress,
                f"{project.name} {target} is not healthy ({exc}); rolling back to {short(preview.old)}",
            )
            try:
                since = engine_time(runtime.host)
                promoter.rollback(context, preview)
                bring_up(since)
            except OpskitError as again:
                raise OpskitError(
                    f"promotion of {project.name} {target} failed ({exc}); rolled back to "
                    f"{short(preview.old)}, but that is not healthy either ({again})"
                ) from None
            raise RolledBack(
                f"promotion of {project.name} {target} failed ({exc}); rolled back to "
                f"{short(preview.old)}, which is healthy"
            ) from None
    note = promoter.finish(context, preview)
    return attrs.evolve(report, notes=(note,) if note else ())
