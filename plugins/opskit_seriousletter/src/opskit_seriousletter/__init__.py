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
    from opskit.health import database_checks

    if context.project.handler != NAME:
        return []
    return database_checks(
        context,
        ("postgres",),
        MIGRATION_SQL,
        lambda db: f"postgres {db.name}",
        lambda env, answer: (True, answer or "answers"),
    )
