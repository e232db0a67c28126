"""opskit plugin: handles every project that no dedicated plugin claims.

It answers ``opskit_project_handler`` last, so each project has a handler. What the
descriptor names (databases, paths, volumes, probes) is honoured by the core itself,
with or without this plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit import hookimpl

if TYPE_CHECKING:
    from opskit.contracts import Project

NAME = "generic"


@hookimpl(trylast=True)
def opskit_project_handler(project: Project) -> str:
    return NAME
