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
    from opskit.databases import query
    from opskit.errors import OpskitError
    from opskit.health import CheckResult

    project = context.project
    if project.handler != NAME or project.backup is None:
        return []
    databases = [db for db in project.backup.databases if db.type in ("mariadb", "mysql")]
    results = []
    for env in context.environments:
        for database in databases:
            check = f"wordpress siteurl ({database.name})"
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
                siteurl = query(context.host, running[0].name, database, SITEURL_SQL).strip()
            except OpskitError as exc:
                results.append(CheckResult(project.name, env, check, False, str(exc)))
                continue
            expected = project.sync.replacement(env) if project.sync else None
            ok = bool(siteurl) and (expected is None or siteurl.rstrip("/") == expected.rstrip("/"))
            detail = siteurl or "siteurl is not set"
            if expected and not ok:
                detail += f" (expected {expected})"
            results.append(CheckResult(project.name, env, check, ok, detail))
    return results
