"""Built-in plugin: ``opskit promote`` and the core's git and rsync code movers."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from opskit.cli import CliState, confirm_target, job_options, switches
from opskit.plugins import hookimpl

if TYPE_CHECKING:
    from collections.abc import Iterator

    from opskit.descriptor import Project
    from opskit.promote import Promoter, PromoteReport


@hookimpl(trylast=True)
def opskit_promoter(project: Project) -> Promoter | None:
    from opskit.promote import GitPromoter, RsyncPromoter

    kind = project.promote.type if project.promote else None
    if kind == "git":
        return GitPromoter()
    if kind == "rsync":
        return RsyncPromoter()
    return None


@click.command()
@click.argument("project")
@click.option("--from", "source", required=True, metavar="ENV", help="The env whose code moves up.")
@click.option("--to", "target", required=True, metavar="ENV", help="The next env up.")
@click.option("--dry-run", is_flag=True, help="Show what would arrive (the preview) and stop.")
@click.option("--diff", "show_diff", is_flag=True, help="Show the content diff in the preview.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@job_options
def promote(
    state: CliState,
    project: str,
    source: str,
    target: str,
    dry_run: bool,
    show_diff: bool,
    yes: bool,
) -> int:
    """Promote code one step (dev->int, int->prod): preview, move, rebuild when needed,
    wait until healthy and stable; roll back (exit 1) when the new code is not healthy."""
    ops = state.ops
    ops.runtime.check_settings()  # before any question
    found = ops.project(project)
    if show_diff and (ops.delegates(found, "promote") or _scripted(found)):
        from opskit.errors import OpskitError

        how = "its delegate CLI" if ops.delegates(found, "promote") else "a script"
        raise OpskitError(
            f"{project}: --diff shows what a git or rsync promotion changes; "
            f"{project} promotes with {how}"
        )
    if ops.delegates(found, "promote"):
        flags = ["--from", source, "--to", target]
        flags += switches(dry_run=dry_run, yes=yes, json=state.json)
        return ops.run_delegate(found, "promote", None, flags, cli_env=target)
    if found.promote is None:
        from opskit.errors import OpskitError

        raise OpskitError(f"{project}: no promote section in {found.path}")
    if found.promote.type == "script":
        from opskit.promote import check_step

        check_step(found, source, target)
        if not dry_run:
            from opskit.operation_requests import is_last_env

            last = is_last_env(found, target)
            question = f"Run {found.promote.script} to promote {project} from {source} to {target}?"
            confirm_target(project, target, last, yes, "promote", question)
        return ops.promote_script(project, source, target, dry_run=dry_run)

    def diff(report: PromoteReport) -> Iterator[str]:
        from opskit.promote import content_diff

        if not show_diff or report.preview.empty:
            return iter(())
        return content_diff(ops.runtime, found, report)

    def preview(report: PromoteReport, stream: object) -> None:
        show_preview(state, report, stream)
        for line in diff(report):
            _line(state, stream, line.rstrip("\n"))

    def ask(report: PromoteReport) -> None:
        preview(report, sys.stderr if state.json else None)
        from opskit.operation_requests import is_last_env

        last = is_last_env(found, target)
        question = f"Promote {project} {target} to this code?"
        confirm_target(project, target, last, yes, "promote", question)

    report = ops.promote(
        project, source, target, dry_run=dry_run, progress=sys.stderr, before_changes=ask
    )
    if state.json:
        extra = {"diff": "".join(diff(report))} if show_diff and report.dry_run else {}
        state.out.json({**report.as_dict(), **extra})
        return 0
    from opskit.promote import move_label

    if report.dry_run or report.preview.empty:
        preview(report, None)
    else:
        moved = move_label(source, target, report.preview.new)
        state.out.line(f"promoted {project} {moved}; healthy")
    for note in report.notes:
        state.out.line(note)
    return 0


def _scripted(project: Project) -> bool:
    return project.promote is not None and project.promote.type == "script"


def _line(state: CliState, stream: object, text: str) -> None:
    """A line on stdout (*stream* None) or on stderr."""
    from opskit.output import visible

    if stream is None:
        state.out.line(text)
    else:  # commit subjects are anyone's text
        click.echo(visible(text, keep="\n\t"), err=True)


def show_preview(state: CliState, report: PromoteReport, stream: object) -> None:
    """The preview: commits or files that arrive, the diffstat and the rebuild decision."""
    from opskit.promote import code_label, move_label

    preview = report.preview

    def line(text: str) -> None:
        _line(state, stream, text)

    if preview.empty:
        label = code_label(preview.new)
        has = f"has {report.source}'s files" if label == "working tree" else f"runs {label}"
        line(f"{report.project} {report.target} already {has}: nothing to promote")
        return
    now = f", now at {code_label(preview.old)}" if code_label(preview.old) != "working tree" else ""
    line(
        f"promote {report.project} {move_label(report.source, report.target, preview.new)}"
        f" ({report.type}{now})"
    )
    for change in preview.changes:
        line(f"  {change}")
    if preview.diffstat:
        line(preview.diffstat)
    line(f"rebuild: yes ({report.rebuild})" if report.rebuild else "rebuild: no")
    if report.dry_run:
        line("dry run: nothing changed")


@hookimpl
def opskit_register_commands(cli: click.Group) -> None:
    cli.add_command(promote)
