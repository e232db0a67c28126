"""What several bench scripts need: shell pipelines, SQL in a MariaDB container, a volume's
folder, and a command timed with the peak memory of its whole process tree."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import NamedTuple

MYSQL = 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mariadb -uroot {database}'


def sh(command: str, **kwargs) -> subprocess.CompletedProcess[bytes]:  # type: ignore[no-untyped-def]
    return subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True, **kwargs)


def mariadb(container: str, sql: str, database: str = "wordpress") -> str:
    """Run *sql* as root in the MariaDB *container*; its tab-separated output."""
    out = subprocess.run(
        ["docker", "exec", container, "sh", "-c", MYSQL.format(database=database) + ' -N -B -e "$1"', "sh", sql],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    return out.stdout.strip()


def volume_mountpoint(volume: str) -> str:
    return subprocess.run(
        ["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", volume],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    return children


def tree_rss(pid: int) -> int:
    """The resident memory of *pid* and all its descendants now, in bytes (from /proc)."""
    children, total, todo = _children(), 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(children.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class Run(NamedTuple):
    elapsed: float  # seconds
    peak: int  # bytes: the most the process tree held at once
    own_peak: int  # bytes: the process's own high-water mark (VmHWM), its children apart
    out: str


def _sample(pid: int, stop: threading.Event, result: list[int]) -> None:
    peak = own = 0
    while not stop.is_set():
        peak = max(peak, tree_rss(pid))
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    own = max(own, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.05)
    result.extend((peak, own))


def measured(argv: list[str], env: dict[str, str] | None = None) -> Run:
    """Run *argv*: its wall time, the peak resident memory of its process tree and of the
    process alone (sampled every 50 ms from /proc) and its stdout. A failure ends the bench
    with the command's stderr."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    stop, peaks = threading.Event(), []  # type: ignore[var-annotated]
    sampler = threading.Thread(target=_sample, args=(process.pid, stop, peaks))
    sampler.start()
    out, err = process.communicate()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"{' '.join(argv)} failed: {err.decode()[-2000:]}")
    return Run(elapsed, peaks[0], peaks[1], out.decode().strip())


def phases(run: Run) -> dict[str, float]:
    """Where opskit's time went: the seconds of each phase its --events name (a component,
    verify, health, ...) and the rest (start-up, locks, what no phase covers)."""
    seconds: dict[str, float] = {}
    for line in run.out.splitlines():
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("event") == "phase.finished":
            seconds[event["phase"]] = seconds.get(event["phase"], 0.0) + event["seconds"]
    seconds["rest"] = run.elapsed - sum(seconds.values())
    return {phase: round(value, 2) for phase, value in seconds.items()}


def wait_listening(port: int, seconds: float = 10.0) -> None:
    """Return once something listens on 127.0.0.1:*port*; end the bench if nothing does."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port} after {seconds:g} s")
