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
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

SETTLE_SECONDS = 3.0
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
