"""Health checks: the types plugins return from ``opskit_health_checks``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from opskit.containers import Placement
    from opskit.descriptor import Project
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


@attrs.frozen
class HealthReport:
    checks: tuple[CheckResult, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [check.as_dict() for check in self.checks]}
