"""Health checks: the types plugins return from ``opskit_health_checks``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

    from opskit.containers import Container, Placement
    from opskit.descriptor import Database, Project
    from opskit.host import Host


@attrs.frozen
class CheckResult:
    """The outcome of one check. ``environment`` is empty for project-wide checks."""

    project: str
    environment: str
    check: str
    ok: bool
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class HealthContext:
    """What a health-check plugin gets: one project and the envs being checked."""

    project: Project
    environments: tuple[str, ...]
    placements: tuple[Placement, ...]
    host: Host
    disk_max_used: float = 0.90  # a fuller filesystem fails (opskit.yaml: disk_max_used_percent)

    def running_container(self, env: str, service: str) -> Container | None:
        """The first running container of *service* in *env*, if any."""
        for placement in self.placements:
            if (
                placement.environment == env
                and placement.service == service
                and placement.state == "running"
            ):
                return placement.container
        return None


@attrs.frozen
class HealthReport:
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [check.as_dict() for check in self.checks]}


def database_checks(
    context: HealthContext,
    types: tuple[str, ...],
    sql: str,
    name: Callable[[Database], str],
    judge: Callable[[str, str], tuple[bool, str]],
) -> list[CheckResult]:
    """Run *sql* in every ``backup.databases`` entry of *types*, in each env being checked.

    For plugins: *name* names the check of a database; *judge(env, answer)* turns the
    client's output into ``(ok, detail)``. A database whose container is not running, or
    whose query fails, gives a failed check.
    """
    from opskit.databases import query
    from opskit.errors import OpskitError

    project = context.project
    if project.backup is None:
        return []
    results = []
    for env in context.environments:
        for database in (db for db in project.backup.databases if db.type in types):
            check = name(database)
            container = context.running_container(env, database.service)
            if container is None:
                detail = f"no running {database.service} container"
                results.append(CheckResult(project.name, env, check, False, detail))
                continue
            try:
                answer = query(context.host, container.name, database, sql).strip()
            except OpskitError as exc:
                results.append(CheckResult(project.name, env, check, False, str(exc)))
                continue
            ok, detail = judge(env, answer)
            results.append(CheckResult(project.name, env, check, ok, detail))
    return results
