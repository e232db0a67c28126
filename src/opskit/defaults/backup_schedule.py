"""Built-in plugin: ``opskit schedule``, each project's backup schedule, shown and set (the
same operation as the dashboard's schedules page: :mod:`opskit.schedule_edit`)."""

from __future__ import annotations

import click

from opskit.cli import CliState, command_options
from opskit.plugins import hookimpl


@click.command()
@click.argument("project", required=False)
@click.argument("schedule", required=False)
@click.option(
    "--install",
    is_flag=True,
    help="Then write the timers (opskit timers --install --remove-stale).",
)
@command_options
def schedule(state: CliState, project: str | None, schedule: str | None, install: bool) -> None:
    """Each project's backup schedule and its next run. With PROJECT SCHEDULE, set
    backup.schedule in the descriptor (HH:MM or a systemd calendar, e.g. 'Mon *-*-* 02:00'),
    the rest of the file as it was."""
    from opskit import schedule_edit

    if schedule is not None:
        assert project is not None  # click fills the arguments in order
        schedule_edit.set_schedule(state.ops, project, schedule)
    rows = schedule_edit.schedules(state.ops)
    if project is not None:
        state.ops.project(project)  # an unknown name is an error, not an empty table
        rows = [row for row in rows if row.project == project]
    if state.json:
        state.out.json([row.as_dict() for row in rows])
    else:
        state.out.table(
            ["project", "schedule", "next run"],
            [[r.project, r.schedule or ("-" if r.backup else "no backup"), r.next or ""]
             for r in rows],
        )  # fmt: skip
    if install:
        from opskit.defaults.schedule import timers

        click.get_current_context().invoke(timers, install=True, remove_stale=True)
    elif schedule is not None:
        click.echo("the timers change with: opskit timers --install --remove-stale", err=True)


@hookimpl
def opskit_register_commands(cli: click.Group) -> None:
    cli.add_command(schedule)
