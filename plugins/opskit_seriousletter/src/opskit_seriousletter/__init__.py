"""opskit plugin for seriousletter (FastAPI + PostgreSQL + frontend).

It claims projects whose descriptor says ``plugin: seriousletter`` and checks that each
env's PostgreSQL database answers, reporting the applied Alembic migration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit import hookimpl

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.health import CheckResult, HealthContext

NAME = "seriousletter"
MIGRATION_SQL = (
    "SELECT CASE WHEN to_regclass('alembic_version') IS NULL THEN 'no migrations' "
    "ELSE (SELECT 'migration ' || string_agg(version_num, ',') FROM alembic_version) END"
)


@hookimpl
def opskit_project_handler(project: Project) -> str | None:
    return NAME if project.plugin == NAME else None


@hookimpl
def opskit_health_checks(context: HealthContext) -> list[CheckResult]:
    from opskit.databases import query
    from opskit.errors import OpskitError
    from opskit.health import CheckResult

    project = context.project
    if project.handler != NAME or project.backup is None:
        return []
    results = []
    for env in context.environments:
        for database in (db for db in project.backup.databases if db.type == "postgres"):
            check = f"postgres {database.name}"
            running = [
                p.container
                for p in context.placements
                if p.environment == env
                and p.service == database.service
                and p.state == "running"
                and p.container
            ]
            if not running:
                results.append(
                    CheckResult(
                        project.name, env, check, False, f"no running {database.service} container"
                    )
                )
                continue
            try:
                answer = query(context.host, running[0].name, database, MIGRATION_SQL).strip()
            except OpskitError as exc:
                results.append(CheckResult(project.name, env, check, False, str(exc)))
                continue
            results.append(CheckResult(project.name, env, check, True, answer or "answers"))
    return results
