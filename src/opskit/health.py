"""Health checks: a report of them and the database checks plugins share.

What plugins take and return (:class:`HealthContext`, :class:`CheckResult`) is defined in
:mod:`opskit.contracts` and re-exported here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

# Defined in opskit.contracts (the types plugins and engines share); re-exported here.
from opskit.contracts import CheckResult as CheckResult
from opskit.contracts import HealthContext as HealthContext

if TYPE_CHECKING:
    from collections.abc import Callable

    from opskit.descriptor import Database


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
            service = project.expand(database.service, env)
            container = context.running_container(env, service)
            if container is None:
                detail = f"no running {service} container"
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
