"""``init``: a ``project.yaml`` proposed for every compose project that runs and that no
descriptor of the root covers yet (see :mod:`opskit.discover`); with *write*, the
proposals are written (never over an existing file) and ``doctor`` checks the root."""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any

import attrs

from opskit.contracts import DEFAULT_BACKUP_DIR
from opskit.operations import Context

if TYPE_CHECKING:
    from opskit.contracts import Project, Proposal, SeenStack
    from opskit.doctor import DoctorReport


@attrs.frozen
class Request:
    write: bool = False
    backup_dir: str = DEFAULT_BACKUP_DIR
    under: str | None = None  # only the stacks compose started from this folder or below


@attrs.frozen
class Written:
    """One proposal and what became of it: ``written``, ``shown`` (no *write*), or
    ``refused`` with the reason."""

    proposal: Proposal
    text: str
    outcome: str
    reason: str = ""

    @property
    def path(self) -> str:
        return posixpath.join(self.proposal.folder, "project.yaml")

    def as_dict(self) -> dict[str, Any]:
        return {
            "project": self.proposal.name,
            "path": self.path,
            "outcome": self.outcome,
            "reason": self.reason,
            "fill_in": list(self.proposal.blockers),
            "descriptor": self.text,
        }


@attrs.frozen
class InitReport:
    proposals: tuple[Written, ...]
    unplaced: tuple[str, ...]  # what runs that init could not place, as sentences
    doctor: DoctorReport | None = None  # after a write

    @property
    def ok(self) -> bool:
        refused = any(w.outcome == "refused" for w in self.proposals)
        return not refused and (self.doctor is None or self.doctor.ok)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "proposals": [w.as_dict() for w in self.proposals],
            "unplaced": list(self.unplaced),
            "doctor": self.doctor.as_dict() if self.doctor is not None else None,
        }


def _projects(ctx: Context) -> list[Project]:
    """The root's projects; none when the root does not exist yet (a new server)."""
    runtime = ctx.runtime
    return runtime.projects() if runtime.host.exists(runtime.root) else []


def _managed(ctx: Context) -> set[tuple[str, str]]:
    """(compose project name, folder) of every stack the root's descriptors already name."""
    if not _projects(ctx):
        return set()
    state = ctx.runtime.stacks.compose_state()
    return {(s.name, posixpath.normpath(s.dir)) for s in state.stacks if s.present}


def _new(stacks: list[SeenStack], managed: set[tuple[str, str]]) -> list[SeenStack]:
    return [s for s in stacks if (s.compose_project, s.working_dir) not in managed]


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def run(ctx: Context, request: Request) -> InitReport:
    from opskit.discover import candidates, observe, render
    from opskit.doctor import examine

    runtime = ctx.runtime
    host = runtime.host
    stacks, loose = observe(host)
    stacks = _new(stacks, _managed(ctx))
    if request.under is not None:
        under = posixpath.normpath(request.under)
        stacks = [s for s in stacks if s.working_dir and _within(s.working_dir, under)]
        loose = []  # no compose labels: where they were started from is not known
    found, unplaced = candidates(runtime.root, stacks, request.backup_dir)
    unplaced += [
        f"container {name} runs without compose labels (docker run?): write its descriptor by hand"
        for name in loose
    ]
    taken = {p.name for p in _projects(ctx)}
    results = []
    for candidate in found:
        proposal = runtime.plugins.discover(candidate)
        assert proposal is not None  # the built-in init plugin always answers
        text = render(proposal)
        path = posixpath.join(proposal.folder, "project.yaml")
        reason = ""
        if proposal.name in taken:
            reason = f"project {proposal.name!r} is already defined under {runtime.root}"
        elif proposal.blockers:
            reason = "fill in first: " + "; ".join(proposal.blockers)
        elif host.exists(path):
            reason = f"{path} exists; not overwritten"
        if not request.write:
            results.append(Written(proposal, text, "shown", reason))
            continue
        if not reason:
            script = 'mkdir -p "$1" && set -C && cat > "$2"'  # -C: never over a file
            done = host.run(
                ["sh", "-c", script, "opskit", proposal.folder, path],
                input=text.encode(),
                check=False,
            )
            if done.returncode != 0:
                reason = f"cannot write {path}: {done.stderr.decode('utf-8', 'replace').strip()}"
        results.append(Written(proposal, text, "refused" if reason else "written", reason))
        taken.add(proposal.name)
    report = InitReport(tuple(results), tuple(unplaced))
    if request.write and any(w.outcome == "written" for w in results):
        runtime.reload()
        report = attrs.evolve(report, doctor=examine(runtime))
    return report
