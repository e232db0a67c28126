"""opskit plugin for seriousletter (FastAPI + PostgreSQL + frontend).

It claims projects whose descriptor says ``plugin: seriousletter``.

Backups: besides what the descriptor's ``backup:`` section names, it adds the app's
PostgreSQL database (the ``db`` service; name and user from its container's
``POSTGRES_DB``/``POSTGRES_USER``, password variable ``POSTGRES_PASSWORD``) and the
uploads folder ``uploads/{env}``.

Health: each env's PostgreSQL database answers; the applied Alembic migration is shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit import hookimpl

if TYPE_CHECKING:
    from opskit.contracts import BackupContext, CheckResult, Component, HealthContext, Project

NAME = "seriousletter"
MIGRATION_SQL = (
    "SELECT CASE WHEN to_regclass('alembic_version') IS NULL THEN 'no migrations' "
    "ELSE (SELECT 'migration ' || string_agg(version_num, ',') FROM alembic_version) END"
)


@hookimpl
def opskit_project_handler(project: Project) -> str | None:
    return NAME if project.plugin == NAME else None


@hookimpl
def opskit_backup_components(
    project: Project, env: str, context: BackupContext
) -> list[Component] | None:
    from opskit.components import existing_path, undeclared_database

    if project.handler != NAME:
        return None
    found: list[Component] = []
    if database := undeclared_database(context, "db", "postgres"):
        found.append(database)
    uploads = existing_path(context, "uploads/{env}")
    if uploads is not None:
        found.append(uploads)
    return found


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
