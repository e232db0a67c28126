"""What the fresh health gate adds to a good promotion of bind-mounted code.

Run by bench/gate. It builds the ``gate`` test project (tests/gatestack.py: a container
whose healthcheck runs every 5 s, code bind-mounted, never recreated by a promotion) in
a temporary root, starts int, then per round commits a new page in dev and runs
``opskit promote gate --from dev --to int --yes``, timing from opskit's own progress
lines, in the same run:

  before the gate:  start -> "waiting until gate int is healthy" (preview, checks,
                    the fast-forward, compose up: the promotion without its gate)
  the gate:         that line -> exit (waiting for a healthcheck run newer than the change)

The goal: the gate adds at most one healthcheck interval plus 2 s. A run from Docker's
point of view lands anywhere in its 5 s cycle, so the gate's median is about half an
interval and its maximum about one interval.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from gatestack import build_gate  # noqa: E402
from wpstack import git  # noqa: E402

INTERVAL = 5.0
GATE_LINE = "waiting until gate int is healthy"


def opskit(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(REPO / ".venv" / "bin" / "opskit"), "--root", str(root), *args]
    return subprocess.run(command, capture_output=True, text=True)


def timed_promotion(root: Path) -> tuple[float, float]:
    """Seconds before the gate and in the gate, from opskit's progress lines."""
    command = [str(REPO / ".venv" / "bin" / "opskit"), "--root", str(root)]
    command += ["promote", "gate", "--from", "dev", "--to", "int", "--yes"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert process.stderr is not None
    gate_at = None
    lines = []
    for line in process.stderr:
        lines.append(line)
        if gate_at is None and GATE_LINE in line:
            gate_at = time.perf_counter()
    if process.wait() != 0 or gate_at is None:
        raise SystemExit("promotion failed:\n" + "".join(lines[-20:]))
    ended = time.perf_counter()
    return gate_at - started, ended - gate_at


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        project = build_gate(root)
        if opskit(root, "start", "gate", "int").returncode:
            raise SystemExit("cannot start gate int")
        try:
            deadline = time.monotonic() + 60
            while opskit(root, "health", "gate", "int").returncode:
                if time.monotonic() > deadline:
                    raise SystemExit("gate int did not become healthy")
                time.sleep(1)
            dev = project / "dev" / "code"
            before, gate = [], []
            for round_ in range(args.rounds):
                (dev / "site" / "index.html").write_text(f"version {round_ + 2}\n")
                git("commit", "--quiet", "-am", f"version {round_ + 2}", cwd=dev)
                git("push", "--quiet", "origin", "develop", cwd=dev)
                first, second = timed_promotion(root)
                before.append(first)
                gate.append(second)
                print(f"round {round_ + 1}: before the gate {first:.2f} s, the gate {second:.2f} s")
        finally:
            opskit(root, "destroy", "gate", "int", "--yes")
    print(
        f"\nhealthcheck interval {INTERVAL:g} s; promotion without its gate: median "
        f"{statistics.median(before):.2f} s; the gate: median {statistics.median(gate):.2f} s, "
        f"max {max(gate):.2f} s (goal: at most {INTERVAL + 2:g} s)"
    )
    if max(gate) > INTERVAL + 2:
        raise SystemExit("the gate added more than one healthcheck interval plus 2 s")


if __name__ == "__main__":
    main()
