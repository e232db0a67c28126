"""The health gate's judgement of one container: is there evidence, newer than a change,
that it is healthy?

Docker's health status is the result of the last healthcheck run, which may be older
than the change (a promotion of bind-mounted code recreates no container; with the usual
30 s interval the status can stay "healthy" for half a minute after the code broke). So
the gate reads ``State.Health.Log`` and trusts only runs that started after the change:

- with a healthcheck: at least one run started after the change, and the newest such run
  passed. A container that kept running across the change fails at once on a fresh
  failing run; one that (re)started after the change is still starting up, so its failing
  runs count only once Docker itself calls it unhealthy;
- without one: running, and neither restarted (``RestartCount``) nor started again
  (``StartedAt``) across a settle window of :data:`SETTLE_SECONDS`.

While no run of the engine is fresh, the gate runs the container's healthcheck command
itself (``docker exec``, the healthcheck's own timeout): a pass is fresh evidence, so a
restore does not wait out the interval (30 s on many servers) for the engine's first run.
A failing run of its own never fails the gate; only the engine's runs do, as above.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import attrs

from opskit.errors import OpskitError

if TYPE_CHECKING:
    from opskit.descriptor import Project
    from opskit.host import Host
    from opskit.stacks import Stacks

SETTLE_SECONDS = 3.0
# Seconds between two polls of an env's health while waiting for it. Polls every 0.25 s
# (for the first 5 s of a wait) took up to 0.75 s off each restore's wait in the peer bench,
# but a poll is a listing of every container and an inspect of each of the env's, and the
# two CI runs with them were the two slowest on that machine (25.3 and 25.9 min against
# 24.0): the suite waits many hundred times, four runners on two cores.
HEALTH_POLL = 1.0
DEFAULT_INTERVAL = 30.0  # Docker's healthcheck interval when the image sets none

_FRACTION = re.compile(r"(\.\d{1,6})\d*")


def parse_time(text: str) -> datetime:
    """A Docker timestamp (RFC 3339 with nanoseconds, ``Z`` or an offset) as aware UTC."""
    text = _FRACTION.sub(r"\1", text.strip()).replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@attrs.frozen
class Verdict:
    """``ok``; else ``failed`` (no use waiting) or still waiting, with what is missing."""

    ok: bool
    failed: bool
    detail: str


def healthcheck_interval(inspected: Mapping[str, Any]) -> float | None:
    """Seconds between two healthcheck runs, or None when the container has no healthcheck."""
    config = (inspected.get("Config") or {}).get("Healthcheck") or {}
    test = config.get("Test") or []
    if not (inspected.get("State") or {}).get("Health") or (test and test[0] == "NONE"):
        return None
    nanoseconds = config.get("Interval") or 0
    return nanoseconds / 1e9 if nanoseconds else DEFAULT_INTERVAL


def judge(
    service: str,
    inspected: Mapping[str, Any],
    since: datetime,
    steady_for: float,
) -> Verdict:
    """Judge one container from ``docker inspect`` against the change made at *since*.

    *steady_for* is how long (seconds) its ``StartedAt`` and ``RestartCount`` have been
    seen unchanged; it settles a container without a healthcheck.
    """
    state = inspected.get("State") or {}
    status = state.get("Status", "unknown")
    if status != "running":
        return Verdict(False, status == "dead", f"{service}: {status}")
    started = parse_time(str(state.get("StartedAt") or ""))
    interval = healthcheck_interval(inspected)
    if interval is None:
        if steady_for >= SETTLE_SECONDS:
            return Verdict(True, False, f"{service}: running, steady for {steady_for:.0f} s")
        return Verdict(False, False, f"{service}: running for less than {SETTLE_SECONDS:g} s")
    health = state.get("Health") or {}
    fresh = [run for run in health.get("Log") or [] if parse_time(str(run.get("Start"))) > since]
    if not fresh:
        return Verdict(
            False,
            False,
            f"{service}: no healthcheck has run since the change (it runs every {interval:g} s)",
        )
    newest = fresh[-1]
    if newest.get("ExitCode") == 0:
        return Verdict(True, False, f"{service}: healthcheck passed since the change")
    output = " ".join(str(newest.get("Output") or "").split())[:200]
    detail = f"{service}: healthcheck failed since the change (exit {newest.get('ExitCode')}"
    detail += f": {output})" if output else ")"
    restarted = started > since
    if not restarted or health.get("Status") == "unhealthy":
        return Verdict(False, True, detail)
    return Verdict(False, False, detail + ", still starting")


def healthcheck_command(inspected: Mapping[str, Any]) -> tuple[list[str], float] | None:
    """The healthcheck's command as ``docker exec`` runs it, and its timeout in seconds;
    None for a container without one."""
    config = (inspected.get("Config") or {}).get("Healthcheck") or {}
    test = [str(word) for word in config.get("Test") or []]
    timeout = (config.get("Timeout") or 30e9) / 1e9  # Docker's default: 30 s
    if len(test) > 1 and test[0] == "CMD":
        return test[1:], timeout
    if len(test) == 2 and test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", test[1]], timeout
    return None


def probe(
    host: Host, service: str, container_id: str, inspected: Mapping[str, Any], within: float
) -> Verdict:
    """Run the container's healthcheck command now, for its own timeout but at most
    *within* seconds: ok when it passes, else still waiting with what it said (never
    failed: the engine's own runs decide that)."""
    from opskit.errors import HostError

    command = healthcheck_command(inspected)
    if command is None:
        return Verdict(False, False, f"{service}: no healthcheck command to run")
    argv, seconds = command
    seconds = max(1.0, min(seconds, within))
    try:
        result = host.run(["docker", "exec", container_id, *argv], check=False, timeout=seconds)
    except (HostError, OSError) as exc:  # timed out, or the exec itself failed
        return Verdict(False, False, f"{service}: healthcheck run by opskit: {exc}")
    if result.returncode == 0:
        return Verdict(
            True, False, f"{service}: healthcheck passed, run by opskit after the change"
        )
    said = " ".join((result.stdout + result.stderr).decode("utf-8", "replace").split())[:200]
    detail = f"{service}: healthcheck run by opskit failed (exit {result.returncode}"
    return Verdict(False, False, detail + (f": {said})" if said else ")"))


def engine_time(host: Host) -> datetime:
    """The Docker engine's clock: the one that stamps healthcheck runs and starts."""
    return parse_time(str(host.docker().info().get("SystemTime", "")))


def check_gate(stacks: Stacks, project: Project, env: str, timeout: float, setting: str) -> None:
    """Refuse, before a change, when the gate could not get fresh evidence within
    *timeout*: a container whose healthcheck runs less often than that."""
    from opskit.containers import managed

    docker = stacks.host.docker()
    for placement in managed(stacks.status(project, env)):
        if placement.container is None:
            continue
        interval = healthcheck_interval(docker.inspect_container(placement.container.id))
        if interval is not None and interval > timeout:
            raise _too_slow(project, env, placement.service, interval, timeout, setting)


def wait_healthy(
    stacks: Stacks,
    project: Project,
    env: str,
    timeout: float,
    *,
    since: datetime | None = None,
    containers_only: bool = False,
    setting: str = "health.timeout",
) -> None:
    """The health gate: wait until the env shows evidence, newer than the change made
    at *since* (the engine's clock; default now), that it is healthy: each container
    as :func:`judge` says, and (unless *containers_only*) every plugin check and HTTP
    probe, run after the change.

    Raises :class:`OpskitError` at once when a fresh healthcheck fails or no fresh
    evidence can arrive within *timeout* seconds, and when *timeout* passes; the
    message names *setting*, the descriptor key that sets the timeout.
    """
    from opskit.containers import managed
    from opskit.host import docker_sdk

    NotFound = docker_sdk().errors.NotFound

    since = since if since is not None else engine_time(stacks.host)
    deadline = time.monotonic() + timeout
    docker = stacks.host.docker()
    steady: dict[str, tuple[tuple[str, int], float]] = {}
    while True:
        state = stacks.compose_state()  # one per poll, for the containers and the checks
        placements = managed(stacks.placements(stacks.registry.scope(project, env), state))
        failing = []
        for placement in placements:
            if placement.container is None:
                failing.append(f"{placement.service}: no container")
                continue
            try:
                inspected = docker.inspect_container(placement.container.id)
            except NotFound:  # removed between the listing and now
                failing.append(f"{placement.service}: container gone")
                continue
            interval = healthcheck_interval(inspected)
            if interval is not None and interval > timeout:
                raise _too_slow(project, env, placement.service, interval, timeout, setting)
            docker_state = inspected.get("State") or {}
            mark = (str(docker_state.get("StartedAt")), int(docker_state.get("RestartCount") or 0))
            seen = steady.get(placement.container.id)
            if seen is None or seen[0] != mark:
                steady[placement.container.id] = seen = (mark, time.monotonic())
            verdict = judge(placement.service, inspected, since, time.monotonic() - seen[1])
            if verdict.failed:
                raise OpskitError(verdict.detail)
            if not verdict.ok and interval is not None and docker_state.get("Status") == "running":
                left = deadline - time.monotonic()
                own = probe(stacks.host, placement.service, placement.container.id, inspected, left)
                verdict = own if own.ok else verdict
            if not verdict.ok:
                failing.append(verdict.detail)
        if not placements:
            failing.append("no containers")
        if not failing and not containers_only:
            report = stacks.health(project, env, state)
            failing = [f"{c.check}: {c.detail}" for c in report.checks if not c.ok]
        if not failing:
            return
        if time.monotonic() > deadline:
            raise OpskitError(
                f"not healthy after {timeout:g} s ({'; '.join(failing)}); "
                f"raise {setting} in project.yaml if it needs longer"
            )
        time.sleep(HEALTH_POLL)


def _too_slow(
    project: Project, env: str, service: str, interval: float, timeout: float, setting: str
) -> OpskitError:
    return OpskitError(
        f"{project.name} {env}: no fresh health evidence can arrive in time: the healthcheck of "
        f"{service} runs every {interval:g} s, longer than the gate's {timeout:g} s; "
        f"raise {setting} in project.yaml"
    )
