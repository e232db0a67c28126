"""Disaster recovery: ``opskit rebuild PROJECT ENV``.

Create the networks and volumes its compose files name external where the engine lacks
them, build and start the env's stacks, wait until every container is healthy, then
restore the newest archive that verifies (older ones when it is damaged) and wait for
full health.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from opskit.backups import Engine
from opskit.errors import NotFoundError
from opskit.gate import engine_time

if TYPE_CHECKING:
    from opskit.archive import Archive
    from opskit.descriptor import Project
    from opskit.jobs import Job
    from opskit.runtime import Runtime


@attrs.frozen
class RebuildPlan:
    """What ``rebuild`` runs: the compose commands, then a restore of *archive*."""

    project: str
    environment: str
    commands: tuple[str, ...]
    archive: str

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def rebuild(
    runtime: Runtime,
    found: Project,
    env: str,
    *,
    dry_run: bool = False,
    job: Job | None = None,
    verified: Archive | None = None,
    data: bool = True,
    renamed: Callable[[str], str] | None = None,
) -> RebuildPlan:
    """Rebuild *env* of *found* as *job*; with *dry_run*, return the plan and change nothing.

    *verified*: restore this archive, verified just now (a download from offsite), instead
    of the newest local one that verifies; without *data*, start the env empty (a project
    that backs nothing up). *renamed*: see :meth:`opskit.backups.Engine.restore`."""
    project = found.name
    found.check_env(env)
    stacks = runtime.stacks
    stacks.refuse_collisions(found, [env])
    engine = Engine(runtime, job=job)
    if verified is not None or not data:
        candidates = [verified] if verified is not None else []
    else:
        candidates = [a for a in engine.whole_archives(found, env) if a.verified_state != "FAILED"]
        if not candidates:
            raise NotFoundError(
                f"{project} {env}: no archive to restore (none, or all failed verify)"
            )
    missing = stacks.missing_externals(found, env)
    commands = [
        *(f"docker {kind} create {name}" for kind, name in missing),
        *(" ".join(c.argv) for c in stacks.compose_commands(found, env, "build")),
        *(" ".join(c.argv) for c in stacks.compose_commands(found, env, "start")),
    ]
    timeout = found.gate_timeout("rebuild")
    plan = RebuildPlan(project, env, tuple(commands), candidates[0].name if candidates else "")
    if dry_run or job is None:
        return plan

    job.changing()
    progress = job.lines("opskit")
    for kind, name in missing:
        job.log(f"phase 1/4: creating the {kind} {name} (the compose files name it external)")
    stacks.create_externals(missing)
    stacks.bring_up(
        found,
        env,
        timeout,
        since=engine_time(runtime.host),
        build=f"phase 1/4: building images of {project} {env}",
        containers_only=True,
        notes=(
            f"phase 2/4: starting {project} {env}",
            "phase 3/4: waiting until every container is healthy and stable",
        ),
        progress=progress,
    )
    if not candidates:
        return plan
    for archive in candidates:
        if archive is verified:
            break
        job.log(f"phase 4/4: verifying {archive.name}")
        if not engine.verify(archive):
            break
        job.log(f"{archive.name} is damaged; trying the next older archive")
    else:
        raise NotFoundError(f"{project} {env}: every archive failed verify; nothing restored")
    job.details["archive"] = archive.name
    job.log(f"phase 4/4: restoring {archive.name}")
    engine.restore(
        found, env, archive, safety=False, health_timeout=timeout, check=False, renamed=renamed
    )
    return attrs.evolve(plan, archive=archive.name)
