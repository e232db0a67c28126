"""Built-in plugin: ``opskit offsite`` and the built-in target schemes (restic
repositories; see :mod:`opskit.offsite`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from opskit.cli import CliState, command_options, job_options, scheduled_option
from opskit.plugins import hookimpl

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.offsite import Repository
    from opskit.settings import Settings


@click.group()
def offsite() -> None:
    """Offsite copies in restic repositories (offsite.target), proven by reading them back."""


def _scope(state: CliState, project: str | None, env: str | None) -> list[tuple[Project, str]]:
    """The (project, env) pairs in scope that have an offsite target."""
    from opskit.operations.offsite import scope

    return scope(state.ops.runtime, project, env)


@offsite.command()
@click.argument("project", required=False)
@command_options
def init(state: CliState, project: str | None) -> None:
    """Create the repository password (once, in the state folder) and each target's repository."""
    from opskit import offsite as engine

    runtime = state.ops.runtime
    pairs = _scope(state, project, None)
    targets = {engine.target_of(runtime, p) for p, _e in pairs}
    stores = engine.stores_of(runtime, pairs)
    for target in sorted(targets):
        path, created = engine.init(runtime, target, stores.get(target))
        state.out.line(f"{target}: {'created' if created else 'exists'} (password {path})")
    if targets:
        _remind_escrow(state)


def _remind_escrow(state: CliState) -> None:
    """A note on stderr while no current copy of the password is recorded as kept."""
    from opskit.output import info

    (escrow,) = state.ops.password("offsite").escrows
    if escrow.state != "current":
        info(
            f"Keep a copy of {escrow.password.path} off this server: 'opskit password offsite "
            "--show', then 'opskit password offsite --confirm-escrowed' (doctor warns until then)"
        )


def _copies(
    state: CliState,
    project: str | None,
    env: str | None,
    name: str | None,
    read_data: str,
    upload_first: bool,
) -> int:
    """Each archive in scope as a job: uploaded first if asked, then its copy verified;
    one line per archive on stdout, one ``[error]`` line per fault. Returns the exit code."""
    from opskit.operations import Context
    from opskit.operations.offsite import CopyRequest, copies
    from opskit.output import error

    if name is not None and env is None:
        raise click.UsageError("--name needs PROJECT and ENV")
    request = CopyRequest(project, env, name, read_data, upload_first)
    code = 0
    for copied in copies(Context(state.ops.runtime), request):
        archive, done, checked = copied.archive, copied.upload, copied.verification
        verdict = "ok" if checked.ok else "FAILED"
        if done is not None:
            how = "copied from the store" if done.sent is None else f"{done.sent} bytes added"
            state.out.line(
                f"{archive.name}: {len(done.uploaded)} sent ({how}), "
                f"{len(done.present)} already there; verified {verdict}"
            )
        else:
            state.out.line(f"{archive.name}: offsite copy {verdict}")
        for fault in checked.faults:
            error(f"{archive.name} on {copied.target}: {fault}")
            code = 1
    return code


READ_DATA = click.option(
    "--read-data",
    default="5%",
    show_default=True,
    help="Share of the repository read back ('100%' for all).",
)
NAME = click.option("--name", help="The archive (default: each env's newest).")


def _copies_command(action: str, summary: str, upload_first: bool) -> click.Command:
    """``offsite upload`` and ``offsite verify``: the same arguments, one job per archive."""

    @click.argument("project", required=False)
    @click.argument("env", required=False)
    @NAME
    @READ_DATA
    @job_options
    def command(
        state: CliState, project: str | None, env: str | None, name: str | None, read_data: str
    ) -> int:
        return _copies(state, project, env, name, read_data, upload_first=upload_first)

    return offsite.command(name=action, help=summary)(command)


upload = _copies_command(
    "upload", "Send an archive's components the repository lacks, then verify the copy.", True
)
verify = _copies_command(
    "verify", "Check the repository and stream an archive's copy back against its checksums.", False
)


@offsite.command()
@click.argument("project")
@click.argument("env")
@click.option("--name", help="The archive to bring back.")
@click.option("--latest", is_flag=True, help="The newest archive with a complete copy.")
@job_options
def download(state: CliState, project: str, env: str, name: str | None, latest: bool) -> None:
    """Rebuild an archive from its offsite copy, verify it, then list it locally."""
    from opskit.operations import Context
    from opskit.operations.offsite import download as download_copy

    if (name is None) == (not latest):
        raise click.UsageError("give --name ARCHIVE or --latest")
    runtime = state.ops.runtime
    found = runtime.project(project)
    found.check_env(env)
    archive = download_copy(Context(runtime), found, env, name)
    state.out.line(archive.path)


@offsite.command(name="prune")
@click.argument("project", required=False)
@click.argument("env", required=False)
@click.option("--dry-run", is_flag=True, help="Say what would be forgotten; change nothing.")
@job_options
def prune_(state: CliState, project: str | None, env: str | None, dry_run: bool) -> None:
    """Forget offsite archives beyond offsite.keep (else the retention rules), then prune."""
    from opskit.operations import Context
    from opskit.operations.offsite import PruneRequest, prune

    results = prune(Context(state.ops.runtime), PruneRequest(project, env, dry_run))
    if state.json:
        state.out.json(
            {
                "dry_run": dry_run,
                "envs": [
                    {"project": p, "env": e, "keep": list(d.keep), "remove": list(d.remove)}
                    for p, e, d in results
                ],
            }
        )
        return
    verb = "would forget" if dry_run else "forgot"
    for _p, _e, decision in results:
        for name in decision.keep:
            state.out.line(f"keep    {name} ({', '.join(decision.reasons.get(name, ()))})")
        for name in decision.remove:
            state.out.line(f"{verb:7} {name}")


@offsite.command(name="config")
@click.option("--list", "list_only", is_flag=True, help="List the backups there; send nothing.")
@scheduled_option
@job_options
def config(state: CliState, list_only: bool) -> None:
    """Back up the root's own configuration into every offsite repository it uses:
    opskit.yaml, each project.yaml, the compose and env files, the state folder's small
    files (never a password). A fresh server comes back from it (docs/offsite.md)."""
    from opskit import rootconfig

    runtime = state.ops.runtime
    if list_only:
        runtime.check_settings()
        found = {t: rootconfig.listing(runtime, t) for t in rootconfig.targets(runtime)}
        if state.json:
            state.out.json({"targets": found})
            return
        rows = [
            [target, str(s.get("short_id") or s.get("id", ""))[:8], str(s.get("time", ""))[:19]]
            for target, snapshots in found.items()
            for s in snapshots
        ]
        state.out.table(["target", "snapshot", "time"], rows)
        return
    from opskit.operations import Context
    from opskit.operations.offsite import configuration
    from opskit.output import warning

    sent = configuration(Context(state.ops.runtime))
    if state.json:
        state.out.json({"sent": [copy.as_dict() for copy in sent]})
        return
    for copy in sent:
        state.out.line(
            f"{copy.target}: snapshot {copy.snapshot[:8]} ({len(copy.files)} files, {copy.bytes} bytes)"
        )
    for line in dict.fromkeys(line for copy in sent for line in copy.left_out):
        if not line.endswith("never in a backup it opens"):
            warning(f"left out {line}")


@offsite.command(name="list")
@click.argument("project", required=False)
@click.argument("env", required=False)
@command_options
def list_(state: CliState, project: str | None, env: str | None) -> None:
    """Each archive: local, offsite or both, and when its offsite copy was last verified."""
    import attrs

    from opskit import offsite as engine

    runtime = state.ops.runtime
    rows = [row for p, e in _scope(state, project, env) for row in engine.listing(runtime, p, e)]
    if state.json:
        state.out.json({"archives": [attrs.asdict(row) for row in rows]})
        return
    styles = {"yes": "green", "FAILED": "red", "unverified": "yellow", "no": ""}
    table = [
        [
            r.archive,
            f"{r.size / 2**20:.1f} MiB" if r.size is not None else "-",
            "yes" if r.local else "no",
            r.local_verified or "-",
            (r.offsite, styles[r.offsite]),
            r.verified_at or "-",
        ]
        for r in rows
    ]
    state.out.table(
        ["archive", "size", "local", "local verified", "offsite", "offsite verified"], table
    )


@hookimpl
def opskit_register_commands(cli: click.Group) -> None:
    cli.add_command(offsite)


@hookimpl(trylast=True)
def opskit_offsite_target(target: str, settings: Settings) -> Repository | None:
    from opskit.offsite import builtin_repository

    return builtin_repository(target, settings)
