"""opskit plugin: handles every project that no dedicated plugin claims.

It answers ``opskit_project_handler`` last, so each project has a handler, and backs up
what the descriptor's ``backup:`` section names, for every project: databases, paths
and volumes. Project plugins add their own components on top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit import hookimpl

if TYPE_CHECKING:
    from opskit.components import Component
    from opskit.descriptor import Project

NAME = "generic"


@hookimpl(trylast=True)
def opskit_project_handler(project: Project) -> str:
    return NAME


@hookimpl
def opskit_backup_components(project: Project, env: str) -> list[Component]:
    from opskit.components import descriptor_components

    return descriptor_components(project, env)
