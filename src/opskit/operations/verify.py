"""``verify``: archives (all in scope, or one by name) checked against their checksums;
each result is recorded in the archive."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from opskit.errors import NotFoundError
from opskit.operations import Context, engine
from opskit.operations.backup import archives

if TYPE_CHECKING:
    from opskit.archive import Archive, Fault


@attrs.frozen
class Request:
    """Verify the archives of *project* *env* in scope, or the one called *name*."""

    project: str | None = None
    env: str | None = None
    name: str | None = None


def run(ctx: Context, request: Request) -> list[tuple[Archive, list[Fault]]]:
    """Verify archives, each as a job that fails when its archive has faults."""
    runtime = ctx.runtime
    runtime.check_settings()
    backups = engine(ctx)
    if request.name is not None:
        if request.project is None or request.env is None:
            raise NotFoundError("--name needs PROJECT and ENV")
        found = runtime.project(request.project)
        listed = [backups.find(found, found.check_env(request.env), request.name)]
    else:
        listed = archives(runtime, request.project, request.env)
    results = []
    for archive in listed:
        found_env = str(archive.manifest.get("environment", ""))
        with ctx.job("verify", str(archive.manifest.get("project", "")), [found_env]) as job:
            job.details["archive"] = archive.location
            faults = backups.verify(archive)
            job.details["faults"] = [f"{f.component}: {f.problem}" for f in faults]
            if faults:
                listed_faults = "; ".join(f"{f.component}: {f.problem}" for f in faults)
                job.fail(f"archive {archive.name}: {listed_faults}")
        results.append((archive, faults))
    return results
