"""Built-in plugin: ``opskit offsite`` (restic repositories; see :mod:`opskit.offsite`)."""

from __future__ import annotations

import click

from opskit.cli import CliState, command_options, job_options
from opskit.plugins import hookimpl


@click.group()
def offsite() -> None:
    """Offsite copies in restic repositories (offsite.target), proven by reading them back."""


@offsite.command()
@click.argument("project", required=False)
@command_options
def init(state: CliState, project: str | None) -> None:
    """Create the repository password (once, in the state folder) and each target's repository."""
    from opskit import offsite as engine

    runtime = state.ops.runtime
    targets = {
        engine.target_of(p) for p, _e in runtime.scope(project, None) if p.offsite is not None
    }
    if not targets:
        raise click.UsageError("no project in scope has an offsite section")
    for target in sorted(targets):
        path, created = engine.init(runtime.host, runtime.settings().state_dir, target)
        state.out.line(f"{target}: {'created' if created else 'exists'} (password {path})")


def _copies(
    state: CliState,
    kind: str,
    project: str,
    env: str,
    name: str | None,
    read_data: str,
    upload_first: bool,
) -> int:
    """Each archive in scope as a job: uploaded first if asked, then its copy verified;
    one line per archive on stdout, one ``[error]`` line per fault. Returns the exit code."""
    from opskit import offsite as engine
    from opskit.operations import as_job
    from opskit.output import error

    runtime = state.ops.runtime
    found = runtime.project(project)
    found.check_env(env)
    target = engine.target_of(found)
    state_dir = runtime.settings().state_dir
    code = 0
    for archive in engine.archives_in(runtime, found, env, name):
        with as_job(runtime, kind, found.name, [env]) as job:
            job.details.update(archive=archive.path, target=target)
            done = None
            if upload_first:
                done = engine.upload(runtime.host, state_dir, target, archive, job)
                job.details["sent"] = done.sent
            checked = engine.verify(runtime.host, state_dir, target, archive, read_data)
            if not checked.ok:
                job.fail(f"archive {archive.name} on {target}: " + "; ".join(checked.faults))
        verdict = "ok" if checked.ok else "FAILED"
        if done is not None:
            state.out.line(
                f"{archive.name}: {len(done.uploaded)} sent ({done.sent} bytes added), "
                f"{len(done.present)} already there; verified {verdict}"
            )
        else:
            state.out.line(f"{archive.name}: offsite copy {verdict}")
        for fault in checked.faults:
            error(f"{archive.name} on {target}: {fault}")
            code = 1
    return code


READ_DATA = click.option(
    "--read-data",
    default="5%",
    show_default=True,
    help="Share of the repository read back ('100%' for all).",
)


@offsite.command()
@click.argument("project")
@click.argument("env")
@click.option("--name", help="The archive (default: the newest).")
@READ_DATA
@job_options
def upload(state: CliState, project: str, env: str, name: str | None, read_data: str) -> int:
    """Send an archive's components the repository lacks, then verify the copy."""
    return _copies(state, "offsite upload", project, env, name, read_data, upload_first=True)


@offsite.command()
@click.argument("project")
@click.argument("env")
@click.option("--name", help="The archive (default: the newest).")
@READ_DATA
@job_options
def verify(state: CliState, project: str, env: str, name: str | None, read_data: str) -> int:
    """Check the repository and stream an archive's copy back against its checksums."""
    return _copies(state, "offsite verify", project, env, name, read_data, upload_first=False)


@offsite.command()
@click.argument("project")
@click.argument("env")
@click.option("--name", required=True, help="The archive to bring back.")
@job_options
def download(state: CliState, project: str, env: str, name: str) -> None:
    """Rebuild an archive from its offsite copy, verify it, then list it locally."""
    from opskit import offsite as engine
    from opskit.operations import as_job

    runtime = state.ops.runtime
    found = runtime.project(project)
    found.check_env(env)
    with as_job(runtime, "offsite download", found.name, [env]) as job:
        archive = engine.download(runtime, found, env, name)
        job.details["archive"] = archive.path
    state.out.line(archive.path)


@offsite.command(name="prune")
@click.argument("project")
@click.argument("env")
@click.option("--dry-run", is_flag=True, help="Say what would be forgotten; change nothing.")
@job_options
def prune_(state: CliState, project: str, env: str, dry_run: bool) -> None:
    """Forget offsite archives beyond offsite.keep (else the retention rules), then prune."""
    from opskit import offsite as engine
    from opskit.operations import as_job

    runtime = state.ops.runtime
    found = runtime.project(project)
    found.check_env(env)
    with as_job(runtime, "offsite prune", found.name, [env]) as job:
        decision = engine.prune(runtime, found, env, dry_run)
        job.details.update(kept=list(decision.keep), removed=list(decision.remove))
    if state.json:
        state.out.json(
            {"keep": list(decision.keep), "remove": list(decision.remove), "dry_run": dry_run}
        )
        return
    verb = "would forget" if dry_run else "forgot"
    for name in decision.keep:
        state.out.line(f"keep    {name} ({', '.join(decision.reasons.get(name, ()))})")
    for name in decision.remove:
        state.out.line(f"{verb:7} {name}")


@offsite.command(name="list")
@click.argument("project")
@click.argument("env")
@command_options
def list_(state: CliState, project: str, env: str) -> None:
    """Each archive: local, offsite or both, and when its offsite copy was last verified."""
    import attrs

    from opskit import offsite as engine

    runtime = state.ops.runtime
    found = runtime.project(project)
    rows = engine.listing(runtime, found, found.check_env(env))
    if state.json:
        state.out.json({"archives": [attrs.asdict(row) for row in rows]})
        return
    styles = {"yes": "green", "FAILED": "red", "unverified": "yellow", "no": ""}
    table = [
        [
            r.archive,
            "yes" if r.local else "no",
            (r.offsite, styles[r.offsite]),
            r.verified_at or "-",
        ]
        for r in rows
    ]
    state.out.table(["archive", "local", "offsite", "verified at"], table)


@hookimpl
def opskit_register_commands(cli: click.Group) -> None:
    cli.add_command(offsite)
