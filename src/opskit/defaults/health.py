"""Built-in plugin: container state and healthchecks, HTTP probes, free disk space."""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit.plugins import hookimpl

if TYPE_CHECKING:
    from opskit.containers import Placement
    from opskit.health import CheckResult, HealthContext
    from opskit.host import Host

# Seconds a healthcheck run by opskit may take here: the engine's own timeout is often 30 s.
PROBE_WITHIN = 10.0


@hookimpl
def opskit_health_checks(context: HealthContext) -> list[CheckResult]:
    from opskit.disk import folder_usage
    from opskit.health import CheckResult
    from opskit.output import human_bytes

    project, host = context.project, context.host
    results = []
    for env in context.environments:
        placements = [p for p in context.placements if p.environment == env]
        if not placements:
            results.append(
                CheckResult(project.name, env, "containers", False, "no containers found")
            )
        for p in placements:
            ok = p.state == "running" and p.health in ("healthy", "none")
            if p.container is None:
                detail = "no container"
            else:
                state = p.state if p.health == "none" else f"{p.state}, {p.health}"
                detail = f"{p.container.name}: {state}"
                if p.state == "running" and p.health == "starting" and _passes_now(host, p):
                    ok, detail = True, f"{detail}; its healthcheck passed when opskit ran it"
            results.append(CheckResult(project.name, env, f"container {p.service}", ok, detail))
        declared = {s.name for s in project.services_in(env)}
        for probe in project.health:
            if not probe.in_env(env) or (
                probe.service and project.services and probe.service not in declared
            ):
                continue
            url = project.expand(probe.http, env)
            try:
                status = host.http_status(url, probe.timeout)
            except Exception as exc:  # any failure to get an answer is an unhealthy probe
                results.append(
                    CheckResult(project.name, env, f"http {url}", False, f"no answer: {exc}")
                )
                continue
            results.append(
                CheckResult(
                    project.name,
                    env,
                    f"http {url}",
                    status == probe.expect,
                    f"HTTP {status} (expected {probe.expect})",
                )
            )
    folders = [project.folder] + ([project.backup.dir] if project.backup else [])
    measured = {usage.path: usage for usage in folder_usage(host, folders, sizes=False)}
    for path in dict.fromkeys(folders):
        usage = measured.get(path)
        if usage is not None:
            ok = usage.used_percent / 100 < context.disk_max_used  # df's Use%, as seen there
            detail = f"{usage.used_percent}% used, {human_bytes(usage.filesystem_free)} free"
            results.append(CheckResult(project.name, "", f"disk {path}", ok, detail))
        elif host.exists(path):  # a check that cannot be computed fails; it is never missing
            detail = "its filesystem could not be measured (stat -f)"
            results.append(CheckResult(project.name, "", f"disk {path}", False, detail))
    return results


def _passes_now(host: Host, placement: Placement) -> bool:
    """Whether the healthcheck of a container the engine still calls "starting" (its first
    run has not come, after a start or a restore) passes when opskit runs it now."""
    from opskit.gate import probe
    from opskit.host import docker_sdk

    assert placement.container is not None
    try:
        inspected = host.docker().inspect_container(placement.container.id)
    except docker_sdk().errors.NotFound:
        return False
    return probe(host, placement.service, placement.container.id, inspected, PROBE_WITHIN).ok
