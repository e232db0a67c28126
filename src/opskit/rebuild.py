"""Disaster recovery: ``opskit rebuild PROJECT ENV``.

Build and start the env's stacks, wait until every container is healthy, then restore the
newest archive that verifies (older ones when it is damaged) and wait for full health.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Any

import attrs

from opskit.errors import NotFoundError
from opskit.output import progress as say

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.runtime import Meter, Runtime


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
    progress: IO[str] | None = None,
    meter: Meter | None = None,
) -> RebuildPlan:
    """Rebuild *env* of *found*; with *dry_run*, return the plan and change nothing."""
    from opskit.audit import audited

    project = found.name
    found.check_env(env)
    runtime.refuse_collisions(project, [env])
    engine = runtime.backup_engine(progress, meter)
    candidates = [a for a in engine.archives(found, env) if a.verified_state != "FAILED"]
    if not candidates:
        raise NotFoundError(f"{project} {env}: no archive to restore (none, or all failed verify)")
    commands = [
        *runtime.compose_commands(project, env, "build"),
        *runtime.compose_commands(project, env, "start"),
    ]
    timeout = found.gate_timeout("rebuild")
    plan = RebuildPlan(project, env, tuple(" ".join(c.argv) for c in commands), candidates[0].name)
    if dry_run:
        return plan

    with audited(runtime.host, found, "rebuild", [env]) as audit:
        runtime.bring_up(
            project,
            env,
            timeout,
            since=runtime.engine_time(),
            build=f"phase 1/4: building images of {project} {env}",
            containers_only=True,
            notes=(
                f"phase 2/4: starting {project} {env}",
                "phase 3/4: waiting until every container is healthy and stable",
            ),
            progress=progress,
        )
        for archive in candidates:
            say(progress, f"phase 4/4: verifying {archive.name}")
            if not engine.verify(archive):
                break
            say(progress, f"{archive.name} is damaged; trying the next older archive")
        else:
            raise NotFoundError(f"{project} {env}: every archive failed verify; nothing restored")
        audit.details["archive"] = archive.name
        say(progress, f"phase 4/4: restoring {archive.name}")
        engine.restore(found, env, archive, safety=False, health_timeout=timeout, check=False)
    return attrs.evolve(plan, archive=archive.name)
