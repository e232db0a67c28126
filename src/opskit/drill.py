"""Restore drills: proof that an archive restores, without touching the live env.

After the archive's checksums are verified, each of its components is drilled by the
component itself (:meth:`opskit.components.Component.drill`), with the env's current
components paired to the archive's by key, as a restore pairs them: a database is loaded
into a throw-away server started from the image of the env's database service (its own
container and volume, no network, no published port) by the same code that restores it for
real, and checked: the client's exit status, every table of the dump present, each with
the row count the backup recorded. A path or volume is extracted into a scratch folder
and its regular files and their bytes checked against the manifest. A component without a
drill of its own (a plugin's) is reported as not drilled: only its checksums were
verified. Everything the drill starts carries the label ``opskit.drill``; it is removed
when the drill ends, also when it fails or is interrupted, and a later drill removes what
an earlier one could not.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import socket
import time
from collections.abc import Iterable
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import attrs

from opskit.archive import DRILLED, Archive, component_stream, now, write_json
from opskit.components import Component, DrillContext, NotDrilled
from opskit.errors import OpskitError
from opskit.processes import pid_alive, signals_deferred

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.host import Host
    from opskit.jobs import Job
    from opskit.runtime import Runtime

LABEL = "opskit.drill"
SCRATCH = ".opskit-drill-"  # scratch folders, beside the env's archives


@attrs.frozen
class DrillResult:
    archive: str
    ok: bool
    time: str
    seconds: float
    checked: tuple[str, ...]
    faults: tuple[str, ...]
    not_drilled: tuple[str, ...] = ()  # components with no drill: only their checksums verified

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.define
class Drilled:
    """What :func:`drill_components` found, by component key."""

    checked: list[str] = attrs.Factory(list)
    not_drilled: list[str] = attrs.Factory(list)
    faults: list[str] = attrs.Factory(list)  # "KEY: what is wrong"


def drill(
    runtime: Runtime, project: Project, env: str, name: str | None = None, job: Job | None = None
) -> DrillResult:
    """Drill *name* (the newest archive when None) of *env*; record and return the result."""
    from opskit.backups import Engine, backup_dir

    engine = Engine(runtime, job=job)
    archive = engine.find(project, env, name)
    if job is not None:
        job.details["archive"] = archive.location
    host = runtime.host
    started = time.monotonic()
    env_dir = backup_dir(project, env)
    remove_leftovers(host, env_dir)
    drill_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    scratch = posixpath.join(env_dir, f"{SCRATCH}{drill_id}")
    drilled = Drilled()
    try:
        drilled.faults += [f"{f.component}: {f.problem}" for f in engine.verify(archive)]
        if not drilled.faults:
            try:
                live = engine.context(project, env)
                components = engine.components(project, env, live)
            except OpskitError as exc:  # the env's components cannot be told: nothing drilled
                drilled.faults.append(str(exc))
            else:
                label, prefix = f"{LABEL}={drill_id}", f"opskit-drill-{drill_id}"
                context = DrillContext(live, scratch, label, prefix, engine.warn)
                drilled = drill_components(archive, components, context, job)
    finally:
        with signals_deferred():
            _remove(host, drill_id)
            host.run(["rm", "-rf", "--", scratch], check=False, timeout=600)
    faults = drilled.faults
    result = DrillResult(
        archive=archive.name,
        ok=not faults,
        time=now().isoformat(),
        seconds=round(time.monotonic() - started, 1),
        checked=tuple(drilled.checked),
        faults=tuple(faults),
        not_drilled=tuple(drilled.not_drilled),
    )
    recorded = posixpath.join(archive.path, DRILLED)
    host.run(["rm", "-f", "--", recorded])  # the last drill's result is replaced
    write_json(host, recorded, result.as_dict())
    if job is not None:
        job.details["faults"] = list(faults)
        if faults:
            job.fail(f"archive {archive.name}: " + "; ".join(faults))
    return result


def drill_components(
    archive: Archive, components: Iterable[Component], context: DrillContext, job: Job | None
) -> Drilled:
    """Drill each component of *archive* (verified already) with the env's component of
    the same key, as a restore pairs them; a fault of one does not stop the others."""
    by_key = {component.key: component for component in components}
    host = context.live.host
    drilled = Drilled()
    for record in archive.components:
        component = by_key.get(record.key)
        if component is None:
            drilled.faults.append(
                f"{record.key}: the env has no such component any more, so a restore "
                "would refuse this archive"
            )
            continue
        listed_in = drilled.checked
        try:
            with job.phase(f"drilling {record.key}") if job is not None else nullcontext():
                try:
                    with component_stream(host, archive, record) as source:
                        component.drill(context, source, record)
                except NotDrilled as exc:
                    context.warn(f"{record.key}: {exc}")
                    listed_in = drilled.not_drilled
        except OpskitError as exc:
            drilled.faults.append(f"{record.key}: {exc}")
        else:
            listed_in.append(record.key)
    return drilled


# -- cleaning up -------------------------------------------------------------------------


def _remove(host: Host, drill_id: str) -> None:
    """Remove the containers, volumes and scratch folders of one drill (or, with a
    drill id of None, of every drill)."""
    selector = f"label={LABEL}={drill_id}"
    ids = host.run(["docker", "ps", "-aq", "--filter", selector], check=False).text.split()
    if ids:
        host.run(["docker", "rm", "--force", "--volumes", *ids], check=False, timeout=120)
    volumes = host.run(["docker", "volume", "ls", "-q", "--filter", selector], check=False)
    if names := volumes.text.split():
        host.run(["docker", "volume", "rm", "--force", *names], check=False, timeout=120)


def remove_leftovers(host: Host, env_dir: str) -> None:
    """Remove what drills started by processes that no longer run on this machine: their
    containers and volumes (by label) and their scratch folders in *env_dir*."""
    label = f'{{{{.Label "{LABEL}"}}}}'
    found: list[str] = []
    for listing in (["ps", "-a"], ["volume", "ls"]):
        argv = ["docker", *listing, "--filter", f"label={LABEL}", "--format", label]
        found += host.run(argv, check=False).text.split()
    scratches = [n for n in host.listdir(env_dir) if n.startswith(SCRATCH)]
    found += [n.removeprefix(SCRATCH) for n in scratches]
    here = socket.gethostname()
    for drill_id in set(found):
        machine, _, rest = drill_id.rpartition("-")[0].rpartition("-")
        if machine == here and rest.isdigit() and not pid_alive(int(rest)):
            _remove(host, drill_id)
            host.run(["rm", "-rf", "--", posixpath.join(env_dir, SCRATCH + drill_id)], check=False)


# -- a whole root, from offsite (drill --all --offsite) -------------------------------------

WHOLE = "all-"  # the folders of whole-root drills, in STATE_DIR/drills


def whole_drill_id() -> tuple[str, str]:
    """A whole-root drill's id (machine, pid: see :func:`remove_leftovers`) and its
    namespace on the engine (lower case, as compose wants project names)."""
    token = secrets.token_hex(3)
    return f"{socket.gethostname()}-{os.getpid()}-{token}", f"opskit-drill-{os.getpid()}-{token}"


def remove_whole(host: Host, drill_id: str, namespace: str, folder: str) -> None:
    """Remove everything of one whole-root drill: its containers, volumes and networks (by
    label, and by the namespace: the external ones the rebuild created), its folder."""
    selector = f"label={LABEL}={drill_id}"
    ids = host.run(["docker", "ps", "-aq", "--filter", selector], check=False).text.split()
    ids += host.run(
        ["docker", "ps", "-aq", "--filter", f"name=^{namespace}-"], check=False
    ).text.split()
    if ids:
        host.run(["docker", "rm", "--force", "--volumes", *set(ids)], check=False, timeout=300)
    for kind in ("volume", "network"):
        names: set[str] = set()
        for selection in (selector, f"name=^{namespace}-"):
            listed = host.run(["docker", kind, "ls", "-q", "--filter", selection], check=False)
            names.update(listed.text.split())
        if names:
            host.run(["docker", kind, "rm", *(["--force"] if kind == "volume" else []),
                      *sorted(names)], check=False, timeout=120)  # fmt: skip
    images = host.run(
        ["docker", "image", "ls", "--format", '{{.ID}} {{.Label "com.docker.compose.project"}}'],
        check=False,
    ).text.splitlines()  # images compose built for the namespace's stacks
    built = set()
    for line in images:
        image, _, compose_project = line.partition(" ")
        if compose_project.startswith(f"{namespace}-"):
            built.add(image)
    if built:
        host.run(["docker", "image", "rm", "--force", *sorted(built)], check=False, timeout=300)
    host.run(["rm", "-rf", "--", folder], check=False, timeout=600)


def remove_whole_leftovers(host: Host, drills_dir: str) -> None:
    """Remove what whole-root drills of processes that no longer run here left: their
    folders in *drills_dir* (each holds its id and namespace) and all they started."""
    here = socket.gethostname()
    for name in host.listdir(drills_dir):
        if not name.startswith(WHOLE):
            continue
        drill_id = name.removeprefix(WHOLE)
        machine, _, rest = drill_id.rpartition("-")[0].rpartition("-")
        if machine != here or not rest.isdigit() or pid_alive(int(rest)):
            continue
        pid, token = rest, drill_id.rpartition("-")[2]
        remove_whole(
            host, drill_id, f"opskit-drill-{pid}-{token}", posixpath.join(drills_dir, name)
        )
