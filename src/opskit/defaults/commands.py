"""Built-in plugin: the core commands, registered through ``opskit_register_commands``.

Only click is imported here; the work happens in :class:`opskit.Ops`, imported on use.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from opskit.cli import CliState, command_options, confirm
from opskit.plugins import hookimpl

if TYPE_CHECKING:
    from opskit.archive import Archive
    from opskit.compose import ComposeCommand
    from opskit.doctor import DoctorReport
    from opskit.output import Cell

STATE_STYLES = {
    "running": "green",
    "exited": "red",
    "dead": "red",
    "missing": "red",
    "restarting": "yellow",
}
HEALTH_STYLES = {"healthy": "green", "unhealthy": "red", "starting": "yellow"}


@click.command()
@command_options
def projects(state: CliState) -> None:
    """The projects found under the root, their environments and plugin."""
    found = state.ops.projects()
    if state.json:
        state.out.json(
            [
                {
                    "name": p.name,
                    "description": p.description,
                    "plugin": p.plugin,
                    "handler": p.handler,
                    "environments": list(p.environments),
                    "path": p.path,
                }
                for p in found
            ]
        )
        return
    rows: list[list[Cell]] = [
        [p.name, ", ".join(p.environments), p.handler, p.description] for p in found
    ]
    state.out.table(["project", "environments", "plugin", "description"], rows)


@click.command()
@command_options
def plugins(state: CliState) -> None:
    """Installed plugins (name, version, where from) and the hooks each implements."""
    infos = state.plugins.describe()
    if state.json:
        state.out.json(
            [
                {"name": i.name, "version": i.version, "source": i.source, "hooks": list(i.hooks)}
                for i in infos
            ]
        )
        return
    rows: list[list[Cell]] = [[i.name, i.version, i.source, ", ".join(i.hooks)] for i in infos]
    state.out.table(["plugin", "version", "source", "hooks"], rows)


@click.command()
@click.argument("project", required=False)
@click.argument("env", required=False)
@command_options
def status(state: CliState, project: str | None, env: str | None) -> None:
    """Containers per project and environment: state, health, uptime, image."""
    from opskit.output import warning

    placements, collisions = state.ops.status_and_collisions(project, env)
    newest = state.ops.newest_backups(project, env)
    for collision in collisions:
        warning(collision.message())
    for placement in placements:
        if placement.ignored is not None:
            warning(f"{placement.project} {placement.environment}: {placement.ignored}")
    if state.json:
        state.out.json(
            {
                "containers": [p.as_dict() for p in placements],
                "backups": [
                    {"project": p, "environment": e, "newest": a.as_dict() if a else None}
                    for p, e, a in newest
                ],
            }
        )
        return
    rows: list[list[Cell]] = [
        [
            p.project,
            p.environment,
            p.service,
            p.container.name if p.container else "-",
            (p.state, STATE_STYLES.get(p.state, "")),
            (p.health, HEALTH_STYLES.get(p.health, "")),
            p.container.status if p.container else "",
            p.container.image if p.container else "",
        ]
        for p in placements
    ]
    state.out.table(
        ["project", "env", "service", "container", "state", "health", "status", "image"], rows
    )
    if newest:
        state.out.line()
        state.out.table(
            ["project", "env", "newest backup", "time", "age", "size", "verified"],
            _backup_rows(newest),
        )


def _backup_rows(newest: list[tuple[str, str, Archive | None]]) -> list[list[Cell]]:
    """Newest backup per env, grouped by date, the age coloured by freshness."""
    from datetime import UTC, datetime

    from opskit.output import human_bytes

    rows: list[list[Cell]] = []
    ordered = sorted(
        newest,
        key=lambda item: item[2].created if item[2] else datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    for project, env, archive in ordered:
        if archive is None:
            rows.append([project, env, ("none", "red"), "", "", "", ""])
            continue
        hours = (datetime.now(UTC) - archive.created).total_seconds() / 3600
        colour = "green" if hours < 26 else "yellow" if hours < 50 else "red"
        age = f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.0f} d"
        local = archive.created.astimezone()
        rows.append(
            [
                project,
                env,
                archive.name,
                local.strftime("%Y-%m-%d %H:%M"),
                (age, colour),
                human_bytes(archive.size),
                archive.verified_state,
            ]
        )
    return rows


@click.command()
@click.argument("project", required=False)
@click.argument("env", required=False)
@command_options
def health(state: CliState, project: str | None, env: str | None) -> int:
    """Container health, HTTP probes and disk space; exit 1 when anything is unhealthy."""
    report = state.ops.health(project, env)
    if state.json:
        state.out.json(report.as_dict())
    else:
        rows: list[list[Cell]] = [
            [
                c.project,
                c.environment or "-",
                c.check,
                ("ok", "green") if c.ok else ("FAIL", "red"),
                c.detail,
            ]
            for c in report.checks
        ]
        state.out.table(["project", "env", "check", "result", "detail"], rows)
    return 0 if report.ok else 1


@click.command()
@command_options
def disk(state: CliState) -> None:
    """Disk usage of the data and backup folders and of Docker's images and volumes."""
    from opskit.output import human_bytes

    report = state.ops.disk()
    if state.json:
        state.out.json(report.as_dict())
        return
    rows = [
        [
            f.path,
            human_bytes(f.bytes),
            f"{f.used_percent}%",
            human_bytes(f.filesystem_free),
        ]
        for f in report.folders
    ]
    state.out.table(["folder", "size", "filesystem used", "free"], rows)
    state.out.line()
    docker_rows: list[list[Cell]] = [
        [name.removesuffix("_bytes"), human_bytes(size)] for name, size in report.docker.items()
    ]
    state.out.table(["docker", "size"], docker_rows)


def _report_commands(
    state: CliState,
    project: str,
    env: str,
    action: str,
    commands: list[ComposeCommand],
    dry_run: bool,
) -> None:
    if state.json:
        state.out.json(
            {
                "project": project,
                "environment": env,
                "action": action,
                "dry_run": dry_run,
                "commands": [list(c.argv) for c in commands],
            }
        )
    elif dry_run:
        import shlex

        for command in commands:
            state.out.line(f"cd {shlex.quote(command.cwd)} && {shlex.join(command.argv)}")


def _lifecycle_command(action: str, summary: str, takes_service: bool) -> click.Command:
    @click.option("--dry-run", is_flag=True, help="Print the compose commands; run nothing.")
    @command_options
    def command(
        state: CliState, project: str, env: str, dry_run: bool, service: str | None = None
    ) -> None:
        from opskit.output import info

        def announce() -> None:
            if not state.json:
                info(f"{action} {project} {env}{' ' + service if service else ''}")

        commands = state.ops.lifecycle(
            project, env, action, service, dry_run=dry_run, progress=sys.stderr, announce=announce
        )
        _report_commands(state, project, env, action, commands, dry_run)

    # click orders arguments from the outermost decorator in.
    if takes_service:
        command = click.argument("service", required=False)(command)
    command = click.argument("env")(command)
    command = click.argument("project")(command)
    return click.command(name=action, help=summary)(command)


@click.command()
@click.argument("project")
@click.argument("env")
@click.option(
    "--volumes", is_flag=True, help="Remove the env's named volumes too (their data is lost)."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Print the compose commands; run nothing.")
@command_options
def destroy(
    state: CliState, project: str, env: str, volumes: bool, yes: bool, dry_run: bool
) -> None:
    """Remove the containers of an env (and with --volumes its volumes), after confirmation."""
    found = state.ops.project(project)
    found.check_env(env)
    state.ops.runtime.stacks.refuse_collisions(found, [env])  # before the question
    if not dry_run:
        what = "containers and volumes" if volumes else "containers"
        confirm(f"Remove the {what} of {project} {env}?", yes, "destroy")
    commands = state.ops.lifecycle(
        project, env, "destroy", volumes=volumes, dry_run=dry_run, progress=sys.stderr
    )
    _report_commands(state, project, env, "destroy", commands, dry_run)


@click.command()
@click.argument("project")
@click.argument("env")
@click.argument("service", required=False)
@click.option("-f", "--follow", is_flag=True, help="Follow the logs.")
@click.option("--tail", type=click.IntRange(min=0), help="Only the last N lines of each container.")
@click.option("--since", metavar="WHEN", help="From a duration ago (30s, 10m, 2h, 3d) or a time.")
@click.option(
    "-t",
    "--timestamps",
    is_flag=True,
    help="Each line's time; an env's containers merged in time order.",
)
@command_options
def logs(
    state: CliState,
    project: str,
    env: str,
    service: str | None,
    follow: bool,
    tail: int | None,
    since: str | None,
    timestamps: bool,
) -> int:
    """Container logs of an env or one service."""
    return state.ops.logs(
        project, env, service, follow=follow, tail=tail, since=since, timestamps=timestamps
    )


@click.command(name="exec", context_settings={"ignore_unknown_options": True})
@click.argument("project")
@click.argument("env")
@click.argument("service")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("-t", "--tty", is_flag=True, help="Allocate a terminal.")
@command_options
def exec_(
    state: CliState, project: str, env: str, service: str, command: tuple[str, ...], tty: bool
) -> int:
    """Run a command in a service's container: exec PROJECT ENV SERVICE -- CMD...

    The command's exit code is passed through.
    """
    return state.ops.exec(project, env, service, list(command), tty=tty and sys.stdin.isatty())


@click.command()
@click.argument("project")
@click.argument("env")
@click.argument("service")
@command_options
def shell(state: CliState, project: str, env: str, service: str) -> int:
    """An interactive shell in a service's container."""
    return state.ops.shell(project, env, service)


@click.command()
@click.option(
    "--root-only", is_flag=True, help="Leave out containers that no project of the root claims."
)
@command_options
def doctor(state: CliState, root_only: bool) -> int:
    """Check the root against what runs: compose name collisions, data no backup covers,
    databases not dumped, missing paths, containers no project claims or that claim a
    service name no command could address. Read-only; exit 1 when it finds a problem."""
    report = state.ops.doctor(root_only=root_only)
    if state.json:
        state.out.json(report.as_dict())
    else:
        show_doctor(state, report)
    return 0 if report.ok else 1


def show_doctor(state: CliState, report: DoctorReport) -> None:
    """doctor's findings as a table (``doctor``, and ``init --write`` after it wrote)."""
    styles = {"problem": "red", "warning": "yellow", "note": ""}
    rows: list[list[Cell]] = [
        [(f.severity, styles[f.severity]), f.project or "-", f.environment or "-", f.message]
        for f in report.findings
    ]
    state.out.table(["severity", "project", "env", "finding"], rows)


LIFECYCLE_HELP = {
    "start": ("Start an env (docker compose up -d), or one service of it.", True),
    "stop": ("Stop an env, or one service of it.", True),
    "restart": ("Restart an env, or one service of it.", True),
    "build": ("Build an env's images.", False),
}


@hookimpl
def opskit_register_commands(cli: click.Group) -> None:
    for command in (projects, plugins, status, health, disk, doctor, destroy, logs, exec_, shell):
        cli.add_command(command)
    for action, (summary, takes_service) in LIFECYCLE_HELP.items():
        cli.add_command(_lifecycle_command(action, summary, takes_service))
