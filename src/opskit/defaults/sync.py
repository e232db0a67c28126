"""Built-in plugin: ``opskit sync`` and the core's default dump rewrite for it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from opskit.cli import CliState, confirm_target, job_options, switches
from opskit.plugins import hookimpl

if TYPE_CHECKING:
    from opskit.components import Component
    from opskit.output import Cell
    from opskit.sync import SyncContext, SyncReport
    from opskit.transform import Transform


@hookimpl(trylast=True)
def opskit_sync_transform(context: SyncContext, component: Component) -> Transform | None:
    from opskit.components import DatabaseDump
    from opskit.databases import MARIADB_TYPES
    from opskit.transform import Replacer

    if not isinstance(component, DatabaseDump):
        return None
    dialect = "mariadb" if component.database.type in MARIADB_TYPES else "postgres"
    return Replacer(context.replacements, dialect=dialect, whole_hosts=context.whole_hosts)


@click.command()
@click.argument("project")
@click.option("--from", "source", required=True, metavar="ENV", help="The env to copy from.")
@click.option("--to", "target", required=True, metavar="ENV", help="The env to overwrite.")
@click.option("--dry-run", is_flag=True, help="Report tables, rows, replacements and files.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@job_options
def sync(state: CliState, project: str, source: str, target: str, dry_run: bool, yes: bool) -> int:
    """Copy the data of one env into another: databases (with sync.replace rewritten),
    folders and volumes. The target is backed up first; only sync.pairs directions."""
    ops = state.ops
    found = ops.project(project)
    flags = ["--from", source, "--to", target]
    flags += switches(dry_run=dry_run, yes=yes, json=state.json)

    def ask() -> None:
        from opskit.operation_requests import is_last_env

        last = is_last_env(found, target)
        question = f"Replace the data of {project} {target} with a copy of {source}?"
        confirm_target(project, target, last, yes, "sync", question)

    report = ops.sync(
        project,
        source,
        target,
        dry_run=dry_run,
        progress=sys.stderr,
        before_changes=ask,
        delegate_flags=flags,
    )
    if not report.delegated:  # a delegate printed its own result
        show(state, report)
    return 0


def show(state: CliState, report: SyncReport) -> None:
    from opskit.output import human_bytes, warning

    out = state.out
    for database in report.databases:
        if database.longer_hosts:
            found = state.ops.project(report.project)
            whole = found.sync is not None and found.sync.whole_hosts
            fate = (
                "left alone (sync.whole_hosts)"
                if whole
                else "rewritten too; set sync.whole_hosts: true to leave them alone"
            )
            warning(
                f"{database.key}: a replaced string is part of a longer host name (like "
                f"shop.ch in shop.chocolate.com or cdn.shop.ch) in {_places(database.longer_hosts)}, "
                f"{fate}{_first(database.lookalikes, database.longer_hosts)}"
            )
        if database.too_long_count:
            warning(
                f"{database.key}: once rewritten, {_places(database.too_long_count, 'value')} "
                "would not fit the column, and the sync would fail"
                f"{_first(database.too_long, database.too_long_count)}"
            )
    if state.json:
        out.json(report.as_dict())
        return
    source, target = report.source, report.target
    done = "dry run, nothing changed" if report.dry_run else "done"
    out.line(f"sync {report.project} {source} -> {target} ({done})")
    if report.backup:
        out.line(f"{target} was backed up first: {report.backup}")
    rows: list[list[Cell]] = []
    for database in report.databases:
        tables = database.tables or ()
        for table in tables:
            target_rows = "-" if table.target_rows is None else str(table.target_rows)
            counts = database.replacements
            count = counts.get(table.name, counts.get(table.name.split(".")[-1], 0))
            rows.append([database.key, table.name, str(table.source_rows), target_rows, str(count)])
        if not tables:
            total = sum(database.replacements.values())
            rows.append([database.key, "(all)", "", "", str(total)])
    if rows:
        out.table(
            ["database", "table", f"{source} rows", f"{target} rows now", "replacements"], rows
        )
    if report.files:
        verb = "to copy" if report.dry_run else "copied"
        gone = "to delete" if report.dry_run else "deleted"
        file_rows: list[list[Cell]] = [
            [f.source, f.target, str(f.files), human_bytes(f.bytes), str(f.deleted)]
            for f in report.files
        ]
        out.table([source, target, f"files {verb}", "bytes", gone], file_rows)
    for files in report.files:
        for verb, names, count in (
            ("to delete" if report.dry_run else "deleted", files.deleted_names, files.deleted),
            ("to change" if report.dry_run else "changed", files.changed_names, files.changed),
        ):
            if count:
                out.line(f"{verb} in {files.target} ({count}):")
                for name in names:
                    out.line(f"  {name}")
                if count > len(names):
                    out.line(f"  and {count - len(names)} more")
    if report.skipped:
        out.line(f"skipped (only in one env): {', '.join(report.skipped)}")


def _places(count: int, noun: str = "place") -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def _first(named: tuple[str, ...], count: int) -> str:
    """The places named, and how many more there are."""
    if not named:
        return ""
    more = f"; and {count - len(named)} more" if count > len(named) else ""
    return f": {'; '.join(named)}{more}"


@hookimpl
def opskit_register_commands(cli: click.Group) -> None:
    cli.add_command(sync)
