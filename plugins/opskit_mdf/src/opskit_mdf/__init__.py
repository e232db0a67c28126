"""opskit plugin for the MDF WordPress stacks (WordPress + MariaDB, mail, Seafile).

It claims projects whose descriptor says ``plugin: mdf``.

Backups: besides what the descriptor's ``backup:`` section names (the generic plugin
backs that up), it adds what a WordPress stack needs where the descriptor has it: the
site's uploads (``{compose.dir}/wp-content/uploads``), the WordPress database of the
``db`` service (from its container's ``MYSQL_DATABASE``/``MARIADB_DATABASE``), and the
data (writable volumes and bind-mounted folders) of the ``mail`` and ``seafile*``
services.

Sync: the WordPress database is rewritten with the core's transform (``sync.replace``,
PHP-serialized and JSON-escaped values included), but the ``guid`` column of posts is
left alone: WordPress uses it as a permanent identifier, not as a link.

Init: a running stack with a WordPress service (its image, or the ``WORDPRESS_DB_*``
variables the official image reads) and a MariaDB/MySQL server is proposed with
``plugin: mdf`` (``opskit_discover``).

Health: each env's WordPress database answers and carries the env's own site URL
(``sync.replace``): a dev site pointing at the prod URL is the classic mistake after
copying data down.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit import hookimpl

if TYPE_CHECKING:
    from opskit.contracts import (
        BackupContext,
        Candidate,
        CheckResult,
        Component,
        HealthContext,
        Project,
        Proposal,
        SyncContext,
        Transform,
    )

NAME = "mdf"
SITEURL_SQL = "SELECT option_value FROM wp_options WHERE option_name = 'siteurl'"


@hookimpl
def opskit_project_handler(project: Project) -> str | None:
    return NAME if project.plugin == NAME else None


def _wordpress(image: str, env_names: tuple[str, ...]) -> bool:
    return "wordpress" in image.lower() or any(n.startswith("WORDPRESS_DB_") for n in env_names)


@hookimpl
def opskit_discover(candidate: Candidate) -> Proposal | None:
    from opskit.databases import MARIADB_TYPES
    from opskit.discover import database_kind, propose

    running = [c for stack in candidate.envs.values() for c in stack.containers]
    sites = sorted({c.service for c in running if _wordpress(c.image, c.env_names)})
    if not sites or not any(database_kind(c) in MARIADB_TYPES for c in running):
        return None
    proposal = propose(candidate)
    name = proposal.data.pop("name")
    proposal.data = {"name": name, "plugin": NAME, **proposal.data}
    proposal.guess("plugin", f"WordPress ({', '.join(sites)}) with MariaDB: the mdf plugin")
    return proposal


@hookimpl
def opskit_backup_components(
    project: Project, env: str, context: BackupContext
) -> list[Component] | None:
    from opskit.components import existing_path, service_data, undeclared_database

    if project.handler != NAME:
        return None
    found: list[Component] = []
    declared = {s.name for s in project.services_in(env)} or {p.service for p in context.placements}
    if "db" in declared and (database := undeclared_database(context, "db", "mariadb")):
        found.append(database)
    uploads = existing_path(context, f"{project.compose.dir}/wp-content/uploads")
    if uploads is not None:
        found.append(uploads)
    for service in sorted(declared):
        if service == "mail" or service.startswith("seafile"):
            found += service_data(context, service)
    return found


@hookimpl
def opskit_sync_transform(context: SyncContext, component: Component) -> Transform | None:
    from opskit.components import DatabaseDump
    from opskit.databases import MARIADB_TYPES
    from opskit.transform import Replacer

    if context.project.handler != NAME or not isinstance(component, DatabaseDump):
        return None
    if component.database.type not in MARIADB_TYPES:
        return None
    return Replacer(
        context.replacements,
        dialect="mariadb",
        skip_columns={"guid"},
        whole_hosts=context.whole_hosts,
    )


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
