"""Built-in plugin: the unattended half (``opskit timers``)."""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING

import click

from opskit.cli import CliState, command_options, job_options, scheduled_option
from opskit.plugins import hookimpl

if TYPE_CHECKING:
    from opskit.host import Host


def this_opskit() -> str:
    """The full path of the opskit program that runs now (what the units will run)."""
    program = os.path.abspath(sys.argv[0])
    if os.path.basename(program) == "opskit" and os.access(program, os.X_OK):
        return program
    beside = os.path.join(os.path.dirname(sys.executable), "opskit")
    if os.access(beside, os.X_OK):
        return beside
    return shutil.which("opskit") or beside


def opskit_on(host: Host) -> str:
    """The opskit program the units of *host* run: this one here, else the one on the
    server's PATH (the units run there, not here)."""
    from opskit.errors import OpskitError
    from opskit.host import LOCAL

    if host.name == LOCAL:
        return this_opskit()
    found = host.run(["sh", "-c", "command -v opskit"], check=False).text.strip()
    if not found.startswith("/"):
        raise OpskitError(
            f"no opskit on the PATH of {host.name}: the timers there would run nothing; "
            "install it there (or name it: hosts.NAME.opskit in opskit.yaml)"
        )
    return found


@click.command()
@click.option("--install", is_flag=True, help="Write the units, reload systemd, enable the timers.")
@click.option(
    "--remove-stale", is_flag=True, help="Remove opskit units of projects gone from the root."
)
@click.option(
    "--dry-run", is_flag=True, help="With --install: say what would change, change nothing."
)
@click.option(
    "--list", "list_timers", is_flag=True, help="Each timer, its schedule and its next run."
)
@click.option(
    "--unit-dir",
    help="Where --install writes the units (default: timers.unit_dir of opskit.yaml, "
    "else /etc/systemd/system).",
)
@command_options
def timers(
    state: CliState,
    install: bool,
    remove_stale: bool,
    dry_run: bool,
    list_timers: bool,
    unit_dir: str | None,
) -> None:
    """systemd units from the descriptors: a backup timer per project with backup.schedule,
    the watch every 5 minutes, a weekly restore drill per env. Prints them without --install."""
    from opskit.operations import Context
    from opskit.operations import timers as operation

    ctx = Context(state.ops.runtime)
    program = state.opskit_program or opskit_on(state.ops.host)
    request = operation.Request(program, unit_dir, install, remove_stale, dry_run)
    unit_dir = operation.unit_dir(ctx, request)
    if list_timers:
        found = operation.listing(ctx, request)
        rows = [[t.name, t.calendar, t.next] for t in found]
        if state.json:
            state.out.json([{"timer": r[0], "calendar": r[1], "next": r[2] or None} for r in rows])
        else:
            state.out.table(["timer", "schedule", "next run"], rows)
        return
    done = operation.run(ctx, request)
    if isinstance(done, operation.Units):
        if state.json:
            state.out.json({"units": done.files, "stale": list(done.stale)})
            return
        for name, text in done.files.items():
            state.out.line(f"### {unit_dir}/{name}\n{text}")
        for name in done.stale:
            state.out.line(f"### would remove {unit_dir}/{name}")
        return
    if state.json:
        state.out.json(
            {"written": list(done.written), "removed": list(done.removed), "enabled": done.enabled}
        )
        return
    for name in done.written:
        state.out.line(f"wrote {unit_dir}/{name}")
    for name in done.removed:
        state.out.line(f"removed {unit_dir}/{name}")
    if not done.enabled:
        timer_names = " ".join(n for n in done.written if n.endswith(".timer"))
        click.echo(
            "systemd does not manage this machine's services (or the units went elsewhere); "
            f"where it does, run: systemctl daemon-reload && systemctl enable --now {timer_names}",
            err=True,
        )


@click.command()
@click.option(
    "--coverage",
    is_flag=True,
    help="Check backup coverage in this pass (else once every coverage_hours, 24 h).",
)
@scheduled_option
@job_options
def watch(state: CliState, coverage: bool) -> int:
    """One pass over every project and env: containers, probes, disk, backup freshness, and
    once a day backup coverage (doctor's: data no backup covers, collisions). Alerts when a
    check changes state, reminds while it stays failing; exit 1 while any fails."""
    report = state.ops.watch(coverage=coverage)
    if state.json:
        state.out.json(
            {
                "ok": report.ok,
                "checks": [c.as_dict() for c in report.checks],
                "sent": [{"state": s, "title": t} for s, t in report.sent],
            }
        )
    else:
        failing = [c for c in report.checks if not c.ok]
        rows = [[c.key, (c.detail, "red")] for c in failing]
        if rows:
            state.out.table(["failing", "detail"], rows)  # type: ignore[arg-type]
        state.out.line(f"{len(report.checks) - len(failing)} of {len(report.checks)} checks ok")
    return 0 if report.ok else 1


@hookimpl
def opskit_register_commands(cli: click.Group) -> None:
    cli.add_command(timers)
    cli.add_command(watch)
