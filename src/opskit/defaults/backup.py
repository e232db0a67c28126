"""Built-in plugin: the backup commands (backup, backups, verify, prune, restore, extract,
rebuild, history) and the restic passwords (password)."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING

import click

from opskit.cli import (
    CliState,
    command_options,
    confirm,
    job_options,
    scheduled_option,
    switches,
)
from opskit.plugins import hookimpl

if TYPE_CHECKING:
    from opskit.components import Component
    from opskit.descriptor import Project
    from opskit.operations.recovery import Recovered
    from opskit.output import Cell
    from opskit.runtime import Meter


@contextlib.contextmanager
def _progress() -> Iterator[tuple[IO[str] | None, Meter | None]]:
    """Rich progress on a terminal; nothing for cron and scripts, where only results count."""
    if not sys.stderr.isatty():
        yield None, None
        return
    from rich.console import Console
    from rich.progress import (
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    console = Console(
        stderr=True, color_system=None if "NO_COLOR" in os.environ else "auto", highlight=False
    )
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}", markup=False),  # labels hold names, never markup
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:

        class Lines(io.StringIO):
            def write(self, text: str) -> int:
                for line in text.splitlines():
                    bar.console.print(line, markup=False)
                return len(text)

        def meter(label: str) -> Callable[[int], None]:
            task = bar.add_task(label, total=None)
            return lambda done: bar.advance(task, done)

        yield Lines(), meter


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


@click.command()
@click.argument("project", required=False)
@click.argument("env", required=False)
@click.option("--all", "all_projects", is_flag=True, help="Every project with a backup section.")
@click.option("--offsite", is_flag=True, help="Then upload each archive and verify the copy.")
@scheduled_option
@job_options
def backup(
    state: CliState, project: str | None, env: str | None, all_projects: bool, offsite: bool
) -> int:
    """Back up one env, every env of a project, or --all. Prints each archive's path.
    With --scheduled (the nightly timer) each archive is verified, then the env pruned."""
    if project is None and not all_projects:
        raise click.UsageError("name a PROJECT (and ENV), or use --all")
    if project is not None and all_projects:
        raise click.UsageError("--all takes no PROJECT")
    from opskit.errors import DelegateFailed

    ops = state.ops
    code = 0
    with _progress() as (progress, meter):
        try:
            archives = ops.backup(
                project,
                env,
                progress=progress,
                meter=meter,
                delegate_flags=switches(json=state.json),
                verify_and_prune=state.scheduled,
                offsite=offsite,
            )
        except DelegateFailed as exc:
            if not exc.archives:
                raise
            archives, code = exc.archives, exc.exit_code  # type: ignore[assignment]
    if project is not None and ops.delegates(ops.project(project), "backup"):
        return 0  # the project's own CLI printed its archives
    if state.json:
        state.out.json({"archives": [a.as_dict() for a in archives]})
    else:
        for archive in archives:
            state.out.line(archive.location)
    return code


class _ListingGroup(click.Group):
    """``backups [PROJECT [ENV]]`` lists archives (its hidden subcommand ``list``);
    ``backups migrate …`` and other subcommands are named first."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_ListingGroup)
def backups() -> None:
    """Archives, newest first: name, local time, size, components, verified state
    (``backups [PROJECT [ENV]]``); ``backups migrate`` moves folder archives into the store."""


@backups.command(name="list", hidden=True)
@click.argument("project", required=False)
@click.argument("env", required=False)
@command_options
def backups_list(state: CliState, project: str | None, env: str | None) -> None:
    """Archives, newest first: name, local time, size, components, verified state."""
    from opskit.output import human_bytes

    found = state.ops.backups(project, env)
    if state.json:
        state.out.json({"archives": [a.as_dict() for a in found]})
        return
    styles = {"ok": "green", "FAILED": "red", "never": "yellow"}
    rows = [
        [
            a.name,
            _local(a.created),
            human_bytes(a.size),
            ("only " if a.only else "") + ", ".join(c.key for c in a.components),
            (a.verified_state, styles[a.verified_state]),
            (a.drill_state, styles[a.drill_state] if a.drill_state != "never" else ""),
            (a.offsite_state, styles[a.offsite_state] if a.offsite_state != "never" else ""),
        ]
        for a in found
    ]
    columns = ["archive", "time", "size", "components", "verified", "drilled", "offsite"]
    state.out.table(columns, rows)  # type: ignore[arg-type]


@backups.command()
@click.argument("project")
@click.argument("env", required=False)
@click.option("--dry-run", is_flag=True, help="List what would move, with sizes; move nothing.")
@job_options
def migrate(state: CliState, project: str, env: str | None, dry_run: bool) -> int:
    """Move the folder archives of an env (every env of PROJECT without ENV) into the
    restic store (backup.store: restic), oldest first: each copied, verified from the
    store, and only then its folder removed. An archive that does not verify stays a
    folder and is named (exit 1); running it again finishes a migration cut short."""
    from opskit.output import error, human_bytes

    with _progress() as (progress, meter):
        done = state.ops.migrate(project, env, dry_run=dry_run, progress=progress, meter=meter)
    if state.json:
        state.out.json({"dry_run": dry_run, "envs": [m.as_dict() for m in done]})
    else:
        styles = {"migrated": "green", "would migrate": "", "failed": "red"}
        rows = [
            [
                m.project,
                m.env,
                row["name"],
                human_bytes(row["size"]) if row["size"] is not None else "",
                (row["result"], styles[row["result"]]),
            ]
            for m in done
            for row in m.as_dict()["archives"]
        ]
        state.out.table(["project", "env", "archive", "size", "result"], rows)
    for migration in done:
        for name, why in migration.failed:
            error(f"{name} stays a folder: {why}")
    return 1 if any(m.failed for m in done) else 0


@click.command()
@click.argument("project", required=False)
@click.argument("env", required=False)
@click.option("--name", help="The archive to drill (default: the newest).")
@click.option("--all", "whole", is_flag=True, help="The whole root (with --offsite).")
@click.option(
    "--offsite",
    is_flag=True,
    help="Rebuild the whole root from offsite in a throw-away namespace, then remove it.",
)
@click.option("--from", "target", metavar="TARGET", help="The repository (default: the root's).")
@scheduled_option
@job_options
def drill(
    state: CliState,
    project: str | None,
    env: str | None,
    name: str | None,
    whole: bool,
    offsite: bool,
    target: str | None,
) -> int:
    """Prove that an archive restores: each database loaded into a throw-away server (same
    image, no network) and its tables and row counts checked against the manifest; each
    path and volume extracted to a scratch folder and checked; a plugin's component by its
    own drill, if it has one. The env is never touched.

    With --all --offsite: the whole root rebuilt from its offsite copies alone (its
    configuration, then every env) into a throw-away namespace on the same engine, every
    env's health checked, everything removed (docs/disaster-recovery.md)."""
    from opskit.output import error

    if whole or offsite or target:
        if not (whole and offsite):
            raise click.UsageError("a whole-root drill takes --all --offsite [--from TARGET]")
        if project or env or name:
            raise click.UsageError("--all takes no PROJECT, ENV or --name")
        done = state.ops.drill_all(target, progress=sys.stderr)
        if state.json:
            state.out.json(done.as_dict())
            return 0 if done.ok else 1
        _recovered_table(state, done)
        return 0 if done.ok else 1
    if not (project and env):
        raise click.UsageError("drill takes PROJECT ENV, or --all --offsite")
    result = state.ops.drill(project, env, name, progress=sys.stderr)
    if state.json:
        state.out.json(result.as_dict())
    else:
        verdict = "drilled ok" if result.ok else "drill FAILED"
        skipped = f"; {', '.join(result.not_drilled)} not drilled" if result.not_drilled else ""
        state.out.line(
            f"{result.archive}: {verdict} ({', '.join(result.checked) or 'nothing'} checked"
            f"{skipped}, {result.seconds} s)"
        )
    for fault in result.faults:
        error(f"{result.archive}: {fault}")
    return 0 if result.ok else 1


@click.command()
@click.argument("project", required=False)
@click.argument("env", required=False)
@click.option("--name", help="One archive (needs PROJECT and ENV).")
@job_options
def verify(state: CliState, project: str | None, env: str | None, name: str | None) -> int:
    """Check archives against their checksums and decompress them fully; exit 1 on any fault."""
    results = state.ops.verify(project, env, name)
    if state.json:
        state.out.json(
            {
                "archives": [
                    {
                        "name": a.name,
                        "path": a.location,
                        "ok": not f,
                        "faults": [{"component": x.component, "problem": x.problem} for x in f],
                    }
                    for a, f in results
                ]
            }
        )
    else:
        rows = [
            [
                a.name,
                ("ok", "green") if not f else ("FAILED", "red"),
                "; ".join(f"{x.component}: {x.problem}" for x in f),
            ]
            for a, f in results
        ]
        state.out.table(["archive", "result", "faults"], rows)  # type: ignore[arg-type]
    from opskit.output import error

    for archive, faults in results:
        for fault in faults:
            error(f"{archive.name}: {fault.component}: {fault.problem}")
    return 1 if any(faults for _, faults in results) else 0


@click.command()
@click.argument("project", required=False)
@click.argument("env", required=False)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@job_options
def prune(state: CliState, project: str | None, env: str | None, dry_run: bool) -> None:
    """Apply the retention rules, saying why each archive stays or goes. Never removes the
    newest verified archive, the newest drilled one, nor the undo points of the syncs and
    restores of the last backup.retention.keep_undo_days (default 7)."""
    results = state.ops.prune(project, env, dry_run=dry_run)
    if state.json:
        state.out.json(
            {
                "dry_run": dry_run,
                "envs": [
                    {
                        "project": p,
                        "environment": e,
                        "keep": list(d.keep),
                        "remove": list(d.remove),
                        "reasons": {k: list(v) for k, v in d.reasons.items()},
                        "remove_reasons": {k: list(v) for k, v in d.remove_reasons.items()},
                    }
                    for p, e, d in results
                ],
            }
        )
        return
    rows = []
    for p, e, decision in results:
        rows += [
            [p, e, name, ("keep", "green"), ", ".join(decision.reasons[name])]
            for name in decision.keep
        ]
        rows += [
            [
                p,
                e,
                name,
                ("would remove" if dry_run else "removed", "red"),
                ", ".join(decision.remove_reasons.get(name, ())),
            ]
            for name in decision.remove
        ]
    state.out.table(["project", "env", "archive", "action", "why"], rows)  # type: ignore[arg-type]


@click.command()
@click.argument("project")
@click.argument("env")
@click.option("--name", help="The archive to restore.")
@click.option("--latest", is_flag=True, help="Restore the newest archive.")
@click.option("--list", "list_only", is_flag=True, help="List the env's archives and exit.")
@click.option("--no-safety-backup", is_flag=True, help="Do not back up the current state first.")
@click.option(
    "--offsite",
    is_flag=True,
    help="Take the archive from the offsite copies (downloaded and verified first).",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="KEY",
    help="Restore this component alone (a key as 'backups --json' names it); repeatable.",
)
@click.option(
    "--from-env",
    metavar="ENV",
    help="Take the archive from this env's archives and restore it into ENV, rewritten as "
    "a sync from that env rewrites (sync.pairs must allow the direction).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@job_options
def restore(
    state: CliState,
    project: str,
    env: str,
    name: str | None,
    latest: bool,
    list_only: bool,
    no_safety_backup: bool,
    offsite: bool,
    only: tuple[str, ...],
    from_env: str | None,
    yes: bool,
) -> int:
    """Restore an archive into an env: verify, safety backup, restore, wait for health.
    With --only, the components named alone (their own safety backup, the rest untouched).
    With --from-env, another env's archive, rewritten as a sync rewrites it."""
    state.ops.runtime.check_settings()  # before the question, and before --offsite reads it
    found = state.ops.project(project)
    found.check_env(env)
    if from_env is not None:
        if only:
            raise click.UsageError("give --only or --from-env, not both")
        from opskit.sync import check_direction

        check_direction(found, from_env, env)
    source = from_env or env
    if state.ops.delegates(found, "restore"):
        if only or from_env:
            flag = "--only" if only else "--from-env"
            raise click.UsageError(
                f"{project} hands restore to its own CLI, whose contract has no {flag}"
            )
        flags = ["--name", name] if name else []
        flags += switches(latest=latest, list=list_only, offsite=offsite, yes=yes, json=state.json)
        return state.ops.run_delegate(found, "restore", env, flags)
    if list_only:
        click.get_current_context().invoke(backups_list, project=project, env=env)
        return 0
    if name and latest:
        raise click.UsageError("give --name or --latest, not both")
    if offsite and not name and latest:
        from opskit import offsite as offsite_copies

        name = offsite_copies.newest_copied(state.ops.runtime, found, source)
    if not name and not latest:
        if offsite:
            raise click.UsageError("restore --offsite needs --name ARCHIVE or --latest")
        if not sys.stdin.isatty():
            from opskit.errors import NeedsConfirmation

            raise NeedsConfirmation(
                "restore needs --name ARCHIVE or --latest when stdin is not a terminal"
            )
        choices = state.ops.backups(project, source)
        if not choices:
            from opskit.errors import NotFoundError

            raise NotFoundError(f"{project} {source}: no archives")
        for i, archive in enumerate(choices, 1):
            click.echo(
                f"{i:3}  {archive.name}  {_local(archive.created)}  verified: {archive.verified_state}",
                err=True,
            )
        choice = click.prompt(
            "Restore which archive", type=click.IntRange(1, len(choices)), default=1, err=True
        )
        name = choices[choice - 1].name
    where = " (from its offsite copy)" if offsite else ""
    if from_env:
        where += f", rewritten as a sync from {from_env}"
    what = f"{', '.join(only)} of {project} {env}" if only else f"the data of {project} {env}"
    confirm(
        f"Replace {what} with {name or 'the newest archive'}{where}?",
        yes,
        "restore",
    )
    with _progress() as (progress, meter):
        restored, safety = state.ops.restore(
            project,
            env,
            name,
            safety=not no_safety_backup,
            offsite=offsite,
            only=only,
            from_env=from_env,
            progress=progress,
            meter=meter,
        )
    if state.json:
        state.out.json(
            {
                "restored": restored.as_dict(),
                "only": list(dict.fromkeys(only)),
                "from_env": from_env,
                "safety_backup": safety.as_dict() if safety else None,
            }
        )
        return 0
    state.out.line(f"restored {restored.location}" + (f" (only {', '.join(only)})" if only else ""))
    if safety is not None:
        state.out.line(f"safety backup {safety.location}")
    return 0


@click.command()
@click.argument("project")
@click.argument("env")
@click.argument("path")
@click.option(
    "--to",
    "to",
    required=True,
    metavar="DIR",
    help="The folder to put it in (created if missing).",
)
@click.option("--name", help="The archive to take it from.")
@click.option("--latest", is_flag=True, help="Take it from the newest archive.")
@click.option("--overwrite", is_flag=True, help="Replace a file or folder of that name in DIR.")
@command_options
def extract(
    state: CliState,
    project: str,
    env: str,
    path: str,
    to: str,
    name: str | None,
    latest: bool,
    overwrite: bool,
) -> int:
    """A file or folder out of an archive's path or volume component, into DIR under its
    own name. PATH is KEY:PATH (inside component KEY's tree), or a path under a backed-up
    folder, relative to the project's folder or absolute."""
    if name and latest:
        raise click.UsageError("give --name or --latest, not both")
    if not name and not latest:
        raise click.UsageError("extract needs --name ARCHIVE or --latest")
    if not to.startswith("/"):
        from opskit.host import LOCAL

        if state.ops.host.name != LOCAL:
            raise click.UsageError("with --host, --to must be an absolute path on that host")
        to = os.path.abspath(to)
    done = state.ops.extract(project, env, path, to, name, overwrite=overwrite)
    if state.json:
        state.out.json(done.as_dict())
    else:
        state.out.line(done.path)
    return 0


@click.command()
@click.argument("project", required=False)
@click.argument("env", required=False)
@click.option("--all", "whole", is_flag=True, help="Every env of the root (with --offsite).")
@click.option(
    "--offsite",
    is_flag=True,
    help="From the offsite copies alone: the root's configuration, then each env's archive.",
)
@click.option("--from", "target", metavar="TARGET", help="The offsite repository (with --offsite).")
@click.option(
    "--password-file",
    metavar="PATH",
    help="The repository's password (default: restic-password in the state folder).",
)
@click.option(
    "--from-root", metavar="ROOT", help="The old server's root, where the repository holds several."
)
@click.option(
    "--rewrite",
    "rewrites",
    multiple=True,
    metavar="OLD=NEW",
    help="Replace OLD by NEW in the configuration's paths and text (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@job_options
def rebuild(
    state: CliState,
    project: str | None,
    env: str | None,
    whole: bool,
    offsite: bool,
    target: str | None,
    password_file: str | None,
    from_root: str | None,
    rewrites: tuple[str, ...],
    dry_run: bool,
    yes: bool,
) -> int:
    """Disaster recovery: build and start the env, wait until every container is healthy
    and stable, then restore the newest verified archive.

    With --all --offsite --from TARGET, on a fresh machine: the whole server from offsite
    alone (docs/disaster-recovery.md)."""
    if whole or offsite:
        if not (whole and offsite and target):
            raise click.UsageError("a rebuild from offsite takes --all --offsite --from TARGET")
        if project or env:
            raise click.UsageError("--all takes no PROJECT or ENV")
        pairs = []
        for item in rewrites:
            old, sep, new = item.partition("=")
            if not sep or not old:
                raise click.UsageError(f"--rewrite {item!r}: write OLD=NEW")
            pairs.append((old, new))
        return _rebuild_all(state, target, password_file, from_root, pairs, dry_run, yes)
    if target or password_file or from_root or rewrites:
        raise click.UsageError(
            "--from, --password-file, --from-root and --rewrite go with --all --offsite"
        )
    if not (project and env):
        raise click.UsageError("rebuild takes PROJECT ENV, or --all --offsite --from TARGET")
    plan = state.ops.rebuild(project, env, dry_run=True)
    if dry_run:
        if state.json:
            state.out.json(plan.as_dict())
            return 0
        state.out.line(f"rebuild {project} {env} (dry run, nothing changed):")
        for i, command in enumerate(plan.commands, 1):
            state.out.line(f"  {i}. {command}")
        n = len(plan.commands)
        state.out.line(f"  {n + 1}. wait until every container is healthy and stable")
        state.out.line(f"  {n + 2}. restore {plan.archive} (or the newest older one that verifies)")
        return 0
    confirm(f"Rebuild {project} {env} and replace its data with {plan.archive}?", yes, "rebuild")
    with _progress() as (_, meter):
        done = state.ops.rebuild(project, env, progress=sys.stderr, meter=meter)
    if state.json:
        state.out.json(done.as_dict())
    else:
        state.out.line(f"rebuilt {project} {env} from {done.archive}")
    return 0


def _rebuild_all(
    state: CliState,
    target: str,
    password_file: str | None,
    from_root: str | None,
    rewrites: list[tuple[str, str]],
    dry_run: bool,
    yes: bool,
) -> int:
    from opskit.defaults.commands import show_doctor

    def ask(dry: bool) -> Recovered:
        return state.ops.rebuild_all(
            target, password_file=password_file, from_root=from_root, rewrites=rewrites, dry_run=dry
        )

    plan = ask(True)
    if dry_run:
        if state.json:
            state.out.json(plan.as_dict())
            return 0
        state.out.line(
            f"rebuild of {plan.root} from {plan.target} (dry run, nothing changed): the "
            f"configuration of {plan.old_root}, snapshot {plan.snapshot[:8]} of {plan.snapshot_time[:19]}, "
            f"{plan.files} files"
        )
        for i, back in enumerate(plan.envs, 1):
            what = f"{back.state} {back.archive}" if back.archive else back.state
            state.out.line(f"  {i}. {back.project} {back.env}: {what}")
        return 0
    confirm(
        f"Rebuild every env under {plan.root} from {plan.target} ({len(plan.envs)} envs)?",
        yes,
        "rebuild --all",
    )
    with _progress() as (_, meter):
        done = state.ops.rebuild_all(
            target,
            password_file=password_file,
            from_root=from_root,
            rewrites=rewrites,
            progress=sys.stderr,
            meter=meter,
        )
    if state.json:
        state.out.json(done.as_dict())
        return 0 if done.ok else 1
    state.out.line(
        f"{plan.root}: the configuration of {done.old_root} (snapshot {done.snapshot[:8]} of "
        f"{done.snapshot_time[:19]})"
    )
    _recovered_table(state, done)
    if done.doctor is not None and done.doctor.findings:
        show_doctor(state, done.doctor)
    return 0 if done.ok else 1


def _recovered_table(state: CliState, done: Recovered) -> None:
    """Each env of a whole-root rebuild or drill: what happened, the archive, its age, the
    rows and files restored, healthy or not."""
    rows: list[list[Cell]] = []
    for back in done.envs:
        healthy = (
            ("yes", "green")
            if back.healthy
            else ("NO" + (f": {back.health}" if back.health else ""), "red")
        )
        rows.append(
            [
                f"{back.project} {back.env}",
                back.state,
                back.archive or "-",
                _age(back.archive_time),
                str(back.rows) if back.rows is not None else "-",
                str(back.files) if back.files is not None else "-",
                healthy,
            ]
        )
    state.out.table(["env", "state", "archive", "age", "rows", "files", "healthy"], rows)


def _age(iso: str | None) -> str:
    """How old a time is, in the unit that reads best: 40 min, 5 h, 3 d."""
    if not iso:
        return "-"
    seconds = (datetime.now(UTC) - datetime.fromisoformat(iso)).total_seconds()
    if seconds < 5400:
        return f"{max(seconds, 0) / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


@click.command()
@click.argument("project", required=False)
@click.option("--limit", type=int, default=50, show_default=True, help="The newest N entries.")
@command_options
def history(state: CliState, project: str | None, limit: int) -> None:
    """What changed the envs (sync, promote, restore, rebuild, backups migrate, start, stop, restart, destroy), from the audit log."""
    entries = state.ops.history(project)[-limit:] if limit > 0 else []
    if state.json:
        state.out.json(entries)
        return
    rows = []
    for entry in entries:
        detail = entry.get("archive") or ""
        if entry.get("from_code"):
            from opskit.promote import move_label

            envs = [str(env) for env in entry.get("envs") or ("?", "?")]
            detail = move_label(envs[0], envs[-1], str(entry.get("to_code", "")))
        result = str(entry.get("result", ""))
        style = "green" if result == "ok" else "yellow" if result.startswith("nothing") else "red"
        moment = datetime.fromisoformat(str(entry.get("time")))
        rows.append(
            [
                _local(moment),
                str(entry.get("project", "")),
                str(entry.get("command", "")),
                " -> ".join(entry.get("envs", [])),
                str(entry.get("user", "")),
                (result, style),
                detail + (f" ({entry['error']})" if entry.get("error") else ""),
            ]
        )
    state.out.table(["time", "project", "command", "envs", "user", "result", "detail"], rows)


ESCROW_STYLES = {"current": "green", "stale": "red", "none": "yellow", "unreadable": "red"}


@click.command()
@click.argument("kind", required=False, type=click.Choice(["store", "offsite"]))
@click.option(
    "--show", is_flag=True, help="Print the password on stdout (a terminal, or --yes) to keep it."
)
@click.option(
    "--confirm-escrowed",
    is_flag=True,
    help="Record that a copy is kept off this server (the time and a fingerprint).",
)
@click.option("--yes", is_flag=True, help="With --show: print it when stdout is no terminal.")
@command_options
def password(
    state: CliState, kind: str | None, show: bool, confirm_escrowed: bool, yes: bool
) -> None:
    """The restic passwords of the archive store and the offsite copies: whether a copy of
    each is kept off this server; --show one to keep it, then --confirm-escrowed."""
    from opskit.output import info

    # The request's own rules (one password, one action) are the operation's.
    if show and kind and not confirm_escrowed and not yes and not state.out.is_terminal:
        raise click.UsageError(
            "password --show prints the password only on a terminal; add --yes to print it "
            "into a pipe (a password manager), never into a log"
        )
    report = state.ops.password(kind, show=show, confirm_escrowed=confirm_escrowed)
    if show:
        (escrow,) = report.escrows
        found = escrow.password
        if state.json:
            state.out.json({**escrow.as_dict(), "password": report.secret})
        else:
            state.out.line(report.secret or "")
        info(
            "Keep this password off this server: in a password manager, or printed and in a "
            f"safe.\nIt opens {found.opens}; without it no archive there can be read.\n"
            f"After a lost server, put it back in {found.path} (mode 0600).\n"
            f"Once it is kept: opskit password {found.kind} --confirm-escrowed"
        )
        return
    if state.json:
        state.out.json({"passwords": [e.as_dict() for e in report.escrows]})
        return
    if confirm_escrowed:
        (escrow,) = report.escrows
        state.out.line(
            f"{escrow.password.kind}: a kept copy of {escrow.password.path} recorded "
            f"({escrow.fingerprint}, {escrow.recorded_at})"
        )
        return
    shown = {
        "current": "kept (recorded {at})",
        "stale": "STALE: the file changed after the copy recorded at {at}",
        "none": "no copy recorded",
        "no file": "no password file",
        "unreadable": "cannot tell: {problem}",
    }
    rows = [
        [
            e.password.kind,
            e.password.path,
            (
                shown[e.state].format(at=e.recorded_at, problem=e.problem),
                ESCROW_STYLES.get(e.state, ""),
            ),
            ", ".join(e.password.used_by) or "-",
        ]
        for e in report.escrows
    ]
    state.out.table(["password", "file", "copy off the server", "used by"], rows)  # type: ignore[arg-type]


@hookimpl
def opskit_register_commands(cli: click.Group) -> None:
    for command in (backup, backups, verify, drill, prune, restore, extract, rebuild, history):
        cli.add_command(command)
    cli.add_command(password)


@hookimpl(trylast=True)
def opskit_backup_components(project: Project, env: str) -> list[Component]:
    """What the descriptor's ``backup:`` section names (databases, paths, volumes), for
    every project, with or without project plugins; they add to it. Called last, so its
    components lead the archive and a plugin's with the same key never replace them."""
    from opskit.components import descriptor_components

    return descriptor_components(project, env)
