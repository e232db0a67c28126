"""opskit plugin for the MDF WordPress stacks (WordPress + MariaDB, mail, Seafile).

It claims projects whose descriptor says ``plugin: mdf`` and checks that each env's
WordPress database answers and carries the env's own site URL (``sync.replace``): a
dev site pointing at the prod URL is the classic mistake after copying data down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit import hookimpl

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.health import CheckResult, HealthContext

NAME = "mdf"
SITEURL_SQL = "SELECT option_value FROM wp_options WHERE option_name = 'siteurl'"


@hookimpl
def opskit_project_handler(project: Project) -> str | None:
    return NAME if project.plugin == NAME else None


@hookimpl
def opskit_health_checks(context: HealthContext) -> list[CheckResult]:
    from opskit.health import database_checks

    project = context.project
    if project.handler != NAME:
        return []

    def judge(env: str, siteurl: str) -> tuple[bool, str]:
        expected = project.sync.replacement(env) if project.sync else None
        ok = bool(siteurl) and (expected is None or siteurl.rstrip("/") == expected.rstrip("/"))
        detail = siteurl or "siteurl is not set"
        if expected and not ok:
            detail += f" (expected {expected})"
        return ok, detail

    return database_checks(
        context,
        ("mariadb", "mysql"),
        SITEURL_SQL,
        lambda db: f"wordpress siteurl ({db.name})",
        judge,
    )
