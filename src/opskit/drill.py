"""Restore drills: proof that an archive restores, without touching the live env.

Each database of the archive is loaded into a throw-away server started from the image
of the env's database service (its own container and volume, no network, no published
port) by the same code that restores it for real, and checked: the client's exit status,
every table of the dump present, each with the row count the backup recorded. Each path
and volume is extracted into a scratch folder and checked against the manifest: its
checksums (``verify``), its regular files and their bytes. Everything the drill starts
carries the label ``opskit.drill``; it is removed when the drill ends, also when it fails
or is interrupted, and a later drill removes what an earlier one could not.
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import secrets
import socket
import time
from typing import TYPE_CHECKING, Any

import attrs

from opskit import databases
from opskit.archive import DRILLED, Archive, component_stream, now, write_json
from opskit.components import BackupContext, DatabaseDump, _extract
from opskit.containers import Container, Placement
from opskit.descriptor import Database
from opskit.errors import OpskitError
from opskit.runs import pid_alive

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.host import Host
    from opskit.jobs import Job
    from opskit.runtime import Runtime

LABEL = "opskit.drill"
SCRATCH = ".opskit-drill-"  # scratch folders, beside the env's archives
READY_TIMEOUT = 180


@attrs.frozen
class DrillResult:
    archive: str
    ok: bool
    time: str
    seconds: float
    checked: tuple[str, ...]
    faults: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def drill(
    runtime: Runtime, project: Project, env: str, name: str | None = None, job: Job | None = None
) -> DrillResult:
    """Drill *name* (the newest archive when None) of *env*; record and return the result."""
    from opskit.backups import Engine

    engine = Engine(runtime, job=job)
    archive = engine.find(project, env, name)
    if job is not None:
        job.details["archive"] = archive.path
    host = runtime.host
    started = time.monotonic()
    env_dir = posixpath.dirname(archive.path)
    remove_leftovers(host, env_dir)
    drill_id = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
    scratch = posixpath.join(env_dir, f"{SCRATCH}{drill_id}")
    checked: list[str] = []
    faults: list[str] = []
    try:
        faults += [f"{f.component}: {f.problem}" for f in engine.verify(archive)]
        if not faults:
            for record in archive.components:
                try:
                    if record.kind == "database":
                        _drill_database(runtime, project, env, archive, record, drill_id, job)
                    elif record.kind in ("path", "volume"):
                        _drill_files(runtime.host, archive, record, scratch, job)
                    else:  # a plugin's own kind: only its checksums were checked
                        if job is not None:
                            job.warn(f"{record.key}: a {record.kind} is verified, not drilled")
                        continue
                    checked.append(record.key)
                except OpskitError as exc:
                    faults.append(f"{record.key}: {exc}")
    finally:
        from opskit.backups import signals_deferred

        with signals_deferred():
            _remove(host, drill_id)
            host.run(["rm", "-rf", "--", scratch], check=False, timeout=600)
    result = DrillResult(
        archive=archive.name,
        ok=not faults,
        time=now().isoformat(),
        seconds=round(time.monotonic() - started, 1),
        checked=tuple(checked),
        faults=tuple(faults),
    )
    recorded = posixpath.join(archive.path, DRILLED)
    host.run(["rm", "-f", "--", recorded])  # the last drill's result is replaced
    write_json(host, recorded, result.as_dict())
    if job is not None:
        job.details["faults"] = list(faults)
        if faults:
            job.fail(f"archive {archive.name}: " + "; ".join(faults))
    return result


# -- databases ---------------------------------------------------------------------------


def _drill_database(
    runtime: Runtime,
    project: Project,
    env: str,
    archive: Archive,
    record: Any,
    drill_id: str,
    job: Job | None,
) -> None:
    details = record.details
    service, name = str(details.get("service")), str(details.get("name"))
    configured = [
        db
        for db in (project.backup.databases if project.backup else ())
        if db.service == service and db.name == name
    ]
    database = (
        configured[0]
        if configured
        else Database(service=service, type=str(details.get("type")), name=name)
    )
    database = attrs.evolve(database, user=details.get("user") or database.user)
    found = runtime.stacks.containers(project, env, service)  # raises when it has none
    with job.phase(f"drilling {record.key}") if job is not None else contextlib.nullcontext():
        container = _start_server(runtime.host, found[0], database, drill_id, record.key)
        _wait_ready(runtime.host, container, database)
        context = BackupContext(
            runtime.host,
            project,
            env,
            (Placement(project.name, env, service, "drill", container),),
        )
        rows = details.get("rows")
        with component_stream(runtime.host, archive, record) as source:
            DatabaseDump(database).restore(context, source, recorded_rows=rows)
        if rows is None and job is not None:
            job.warn(f"{record.key}: the archive records no row counts (made by an older opskit)")


def _start_server(
    host: Host, live: Container, database: Database, drill_id: str, key: str
) -> Container:
    """A throw-away copy of *live*'s database server: same image, command, variables and
    read-only mounts; a fresh volume where *live* writes; no network."""
    inspected = json.loads(host.run(["docker", "inspect", live.id]).text)[0]
    config = inspected.get("Config") or {}
    name = f"opskit-drill-{drill_id}-{key}"[:120]
    argv = ["docker", "run", "--detach", "--name", name, "--label", f"{LABEL}={drill_id}"]
    argv += ["--network", "none"]
    if config.get("User"):
        argv += ["--user", str(config["User"])]
    # The variables' values travel in the docker client's environment, not in argv.
    environment: dict[str, str] = {}
    for item in config.get("Env") or []:
        variable, _, value = str(item).partition("=")
        environment[variable] = value
    if database.password_env:
        environment[database.password_env] = secrets.token_urlsafe(18)
    for variable in environment:
        argv += ["--env", variable]
    for index, mount in enumerate(inspected.get("Mounts") or []):
        target = str(mount.get("Destination"))
        if mount.get("RW"):
            volume = f"{name}-{index}"
            host.run(["docker", "volume", "create", "--label", f"{LABEL}={drill_id}", volume])
            argv += ["--mount", f"type=volume,source={volume},target={target}"]
        elif mount.get("Type") == "bind":
            argv += ["--mount", f"type=bind,source={mount.get('Source')},target={target},readonly"]
    entrypoint = list(config.get("Entrypoint") or [])
    if entrypoint:
        argv += ["--entrypoint", str(entrypoint[0])]
    argv += ["--", str(config.get("Image") or live.image)]
    argv += [str(part) for part in entrypoint[1:]] + [str(c) for c in config.get("Cmd") or []]
    created = host.run(argv, env=environment).text.strip()
    return Container(
        id=created[:12],
        name=name,
        image=str(config.get("Image") or live.image),
        state="running",
        status="",
        health="none",
        labels={LABEL: drill_id},
    )


def _wait_ready(host: Host, container: Container, database: Database) -> None:
    """Until the server the container keeps accepts connections (:func:`databases.ready_script`):
    over TCP, or on its socket once the image's initialisation has ended, so that a server
    configured for its socket only is drilled as it runs."""
    deadline = time.monotonic() + READY_TIMEOUT
    argv = databases.client_argv(container.name, databases.ready_script(database), database)
    while True:
        result = host.run(argv, check=False, timeout=30)
        if result.returncode == 0:
            return
        state = host.run(
            ["docker", "inspect", "-f", "{{.State.Status}}", container.name], check=False
        ).text.strip()
        if state != "running":
            logs = host.run(["docker", "logs", "--tail", "5", container.name], check=False).text
            last = [line for line in logs.splitlines() if line.strip()][-1:] or [state]
            raise OpskitError(f"the throw-away {database.type} server did not start: {last[0]}")
        if time.monotonic() > deadline:
            why = result.text.strip().splitlines()[-1:] or [f"exit {result.returncode}"]
            raise OpskitError(
                f"the throw-away {database.type} server was not ready after "
                f"{READY_TIMEOUT} s: {why[0]}"
            )
        time.sleep(1)


# -- files -------------------------------------------------------------------------------


def _drill_files(host: Host, archive: Archive, record: Any, scratch: str, job: Job | None) -> None:
    host.run(["mkdir", "-p", "-m", "700", "--", scratch])
    target = posixpath.join(scratch, record.key)
    with component_stream(host, archive, record) as source:
        _extract(host, source, target, f"{record.key} into a scratch folder")
    listing = host.run(
        ["find", target, "-type", "f", "-printf", "%i %s\\n"], check=False, timeout=600
    ).text
    inodes = {line.split()[0]: int(line.split()[1]) for line in listing.splitlines() if line}
    files, size = len(inodes), sum(inodes.values())
    expected_files, expected_bytes = record.details.get("files"), record.details.get("bytes")
    if expected_files is None:
        if job is not None:
            job.warn(f"{record.key}: the archive records no file counts (made by an older opskit)")
        return
    if (files, size) != (expected_files, expected_bytes):
        raise OpskitError(
            f"extracted {files} files of {size} bytes, the backup recorded "
            f"{expected_files} files of {expected_bytes} bytes"
        )


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
