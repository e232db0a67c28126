"""Built-in plugin: ``opskit promote`` and the core's git and rsync code movers."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from opskit.cli import CliState, confirm_target, job_options, switches
from opskit.plugins import hookimpl

if TYPE_CHECKING:
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
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@job_options
def promote(
    state: CliState, project: str, source: str, target: str, dry_run: bool, yes: bool
) -> int:
    """Promote code one step (dev->int, int->prod): preview, move, rebuild when needed,
    wait until healthy and stable; roll back (exit 1) when the new code is not healthy."""
    ops = state.ops
    found = ops.project(project)
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
            last = target == found.environments[-1]
            question = f"Run {found.promote.script} to promote {project} from {source} to {target}?"
            confirm_target(project, target, last, yes, "promote", question)
        return ops.promote_script(project, source, target, dry_run=dry_run)

    def ask(report: PromoteReport) -> None:
        show_preview(state, report, sys.stderr if state.json else None)
        last = target == found.environments[-1]
        question = f"Promote {project} {target} to this code?"
        confirm_target(project, target, last, yes, "promote", question)

    report = ops.promote(
        project, source, target, dry_run=dry_run, progress=sys.stderr, before_changes=ask
    )
    if state.json:
        state.out.json(report.as_dict())
        return 0
    from opskit.promote import short

    if report.dry_run or report.preview.empty:
        show_preview(state, report, None)
    else:
        state.out.line(f"promoted {project} {target} to {short(report.preview.new)}; healthy")
    for note in report.notes:
        state.out.line(note)
    return 0


def show_preview(state: CliState, report: PromoteReport, stream: object) -> None:
    """The preview: commits or files that arrive, the diffstat and the rebuild decision."""
    from opskit.output import visible
    from opskit.promote import short

    preview = report.preview

    def line(text: str) -> None:
        if stream is None:
            state.out.line(text)
        else:  # commit subjects are anyone's text
            click.echo(visible(text, keep="\n\t"), err=True)

    if preview.empty:
        line(
            f"{report.project} {report.target} already runs {short(preview.new)}: nothing to promote"
        )
        return
    line(
        f"promote {report.project} {report.source} -> {report.target} ({report.type}): "
        f"{short(preview.old)} -> {short(preview.new)}"
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
