"""Drills run by a test, and what they leave on the engine: only this test's own drill
counts, since another checkout's tests (or another runner of this one) may be drilling
something at the same moment."""

from __future__ import annotations

import subprocess

from conftest import Run, finished, started

LABEL = "opskit.drill"


def drill_leftovers(component: str = "") -> list[str]:
    """The names of drill containers and volumes on the engine; with *component*, only
    those whose name holds it (a drill's names are ``opskit-drill-HOST-PID-HEX-KEY``)."""
    containers = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label={LABEL}", "--format", "{{.Names}}"],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    volumes = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", f"label={LABEL}"],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    return [name for name in containers + volumes if component in name]


def of(process: subprocess.Popen[str]) -> str:
    """What the names of the drill run by *process* hold: its drill id has the pid."""
    return f"-{process.pid}-"


def drilled(*args: str, timeout: float = 600) -> tuple[Run, str]:
    """``opskit drill ARGS`` run to its end, and what its containers' names hold (give
    that to :func:`drill_leftovers`)."""
    process = started("drill", *args)
    out, err = finished(process, timeout)
    return Run(process.returncode, out, err), of(process)
