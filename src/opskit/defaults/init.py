"""Built-in plugin: ``opskit init``, and the generic proposal it makes of a running stack
(``opskit_discover``, answered last so that project plugins recognise their own first)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from opskit.cli import CliState, command_options
from opskit.plugins import hookimpl

if TYPE_CHECKING:
    from opskit.contracts import Candidate, Proposal


@hookimpl(trylast=True)
def opskit_discover(candidate: Candidate) -> Proposal:
    from opskit.discover import propose

    return propose(candidate)


@click.command()
@click.option(
    "--write", is_flag=True, help="Write the descriptors (never over a file), then run doctor."
)
@click.option(
    "--backup-dir",
    metavar="DIR",
    default=None,
    help="backup.dir of the proposed descriptors (default /opt/data/backups).",
)
@click.option(
    "--under",
    metavar="DIR",
    default=None,
    help="Only the compose projects started from DIR or a folder below it.",
)
@command_options
def init(state: CliState, write: bool, backup_dir: str | None, under: str | None) -> int:
    """Propose a project.yaml for every compose project that runs and no descriptor of the
    root covers: envs, compose names, services, databases, backup paths and volumes,
    probes, a nightly schedule. Every guess is commented; secrets are named, never shown.
    With --write, write them under the root (an existing file is never replaced) and run
    doctor; exit 1 when a descriptor was not written or doctor finds a problem."""
    from opskit.output import error, info

    report = state.ops.init(write=write, backup_dir=backup_dir, under=under)
    if state.json:
        state.out.json(report.as_dict())
        return 0 if report.ok else 1
    texts = [w.text for w in report.proposals if not write]
    head = "".join(f"# fill in: {sentence}\n" for sentence in report.unplaced)
    if texts or head:
        state.out.line((head + "---\n".join(texts)).rstrip("\n"))
    if not report.proposals and not write:
        info("init: every compose project that runs is already described under the root")
    for written in report.proposals:
        if written.outcome == "written":
            info(f"wrote {written.path}")
        elif written.outcome == "refused":
            error(f"init: {written.proposal.name}: not written: {written.reason}")
    if report.doctor is not None:
        from opskit.defaults.commands import show_doctor

        show_doctor(state, report.doctor)
    return 0 if report.ok else 1


@hookimpl
def opskit_register_commands(cli: click.Group) -> None:
    cli.add_command(init)
