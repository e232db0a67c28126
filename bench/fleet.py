"""Measure ``opskit status --hosts all`` over a fleet against one host's ``status``.

Run by bench/fleet. The fleet is this machine: N private sshd processes on the loopback
(the test bed's config on ports of their own), each a "server" with its own root and one
running stack of its own (a busybox container), as tests/test_fleet.py builds them. Each
round, alternated: ``opskit --host ssh://… status`` of one server (the baseline), then
``status --hosts all`` over inventories of 1, 10 and 30 of them. Medians; the ratio of ten
hosts against one host's status (goal: at most 1.3), and how the time grows to 30.

Here the "servers" share this machine's cores with opskit: each host's own work (its sshd
sessions, ``docker system dial-stdio``, dockerd) adds to the wall time as it would not on
separate servers. So each line also shows the CPU seconds of opskit itself (the client)
and of the whole machine during the run: where the time goes.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from benchlib import measured, wait_listening

REPO = Path(__file__).resolve().parent.parent
OPSKIT = [str(REPO / ".venv" / "bin" / "opskit")]
BASE = Path("/tmp/opskit-bench-fleet")
TESTBED_SSH = Path("/var/lib/opskit-testbed/ssh")
FIRST_PORT = 39100
NAME = "benchfleet"
# the test bed's login (scripts/testbed.sh): root's powers with a plain /bin/sh, as a
# server's deploy user has; root's own ~/.bashrc here runs pyenv for every command
USER = "opskit-root"


def sshd(folder: Path, port: int) -> subprocess.Popen[bytes]:
    config = [
        f"Port {port}" if line.startswith("Port ")
        else f"PidFile {folder / 'sshd.pid'}" if line.startswith("PidFile ")
        else line
        for line in (TESTBED_SSH / "sshd_config").read_text().splitlines()
    ]  # fmt: skip
    (folder / "sshd_config").write_text("\n".join(config) + "\n")
    process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", str(folder / "sshd_config")])
    wait_listening(port)
    return process


def server(index: int) -> Path:
    root = BASE / f"h{index}" / "root"
    (root / "site" / "prod").mkdir(parents=True, exist_ok=True)
    (root / "opskit.yaml").write_text(f"state_dir: {root / 'state'}\n")
    (root / "site" / "project.yaml").write_text(
        "name: site\nenvironments: [prod]\n"
        f'compose: {{dir: "{{env}}", project_name: "{NAME}-h{index}-site-{{env}}"}}\n'
    )
    (root / "site" / "prod" / "compose.yaml").write_text(
        "services:\n  web:\n    image: opskit-test/web:1\n    init: true\n"
        '    command: ["sh", "-c", "exec sleep 2147483647"]\n'
    )
    return root


def inventory(count: int, ports: list[int]) -> Path:
    control = BASE / f"control-{count}"
    control.mkdir(parents=True, exist_ok=True)
    lines = ["hosts:"] + [
        f'  h{i}: {{url: "ssh://{USER}@127.0.0.1:{ports[i]}", root: {BASE / f"h{i}" / "root"}}}'
        for i in range(count)
    ]
    (control / "opskit.yaml").write_text("\n".join(lines) + "\n")
    return control


def busy() -> float:
    """CPU seconds the whole machine has spent (all cores, idle and iowait left out)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cleanup() -> None:
    for folder in sorted(BASE.glob("h*")):
        pid = folder / "sshd.pid"
        if pid.exists():
            subprocess.run(["kill", pid.read_text().strip()], check=False)
        root = folder / "root"
        if root.exists():
            subprocess.run([*OPSKIT, "--root", str(root), "destroy", "site", "prod", "--yes"],
                           capture_output=True, check=False)  # fmt: skip
    shutil.rmtree(BASE, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cleanup", action="store_true", help="Stop and remove what a run left.")
    options = parser.parse_args()
    cleanup()
    if options.cleanup:
        return
    ports = list(range(FIRST_PORT, FIRST_PORT + options.hosts))
    processes = []
    try:
        for index, port in enumerate(ports):
            root = server(index)
            processes.append(sshd(root.parent, port))
            subprocess.run([*OPSKIT, "--root", str(root), "start", "site", "prod"],
                           check=True, capture_output=True)  # fmt: skip
        sizes = [n for n in (1, 10, 30) if n <= options.hosts]
        controls = {n: inventory(n, ports) for n in sizes}
        one = [*OPSKIT, "--host", f"ssh://{USER}@127.0.0.1:{ports[0]}", "--root",
               str(BASE / "h0" / "root"), "status"]  # fmt: skip
        keys = ["one host", *(f"{n} hosts" for n in sizes)]
        times: dict[str, list[float]] = {key: [] for key in keys}
        client: dict[str, list[float]] = {key: [] for key in keys}
        machine: dict[str, list[float]] = {key: [] for key in keys}
        peaks: dict[str, int] = {}
        measured(one)  # warm: the page cache, sshd's first fork
        for round_ in range(options.rounds):
            for key in keys:
                argv = one if key == "one host" else [
                    *OPSKIT, "--root", str(controls[int(key.split()[0])]), "status", "--hosts", "all"
                ]  # fmt: skip
                before, own = busy(), children_cpu()
                run = measured(argv)
                machine[key].append(busy() - before)
                client[key].append(children_cpu() - own)
                times[key].append(run.elapsed)
                peaks[key] = max(peaks.get(key, 0), run.peak)
                if key != "one host":
                    assert len(run.out.splitlines()) == int(key.split()[0]) + 1, run.out
            print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()),
                  file=sys.stderr)  # fmt: skip
        median = {k: statistics.median(v) for k, v in times.items()}
        base = median["one host"]
        print(f"opskit status over ssh on this machine ({options.rounds} rounds, medians;"
              f" {os.cpu_count()} cores shared by opskit and every 'server')")  # fmt: skip
        for key in keys:
            label = "one host (--host)" if key == "one host" else f"{key} (--hosts all)"
            print(f"  {label:24} {median[key]:6.2f} s  {median[key] / base:5.2f}x"
                  f"  opskit CPU {statistics.median(client[key]):5.2f} s"
                  f"  machine CPU {statistics.median(machine[key]):6.2f} s"
                  f"  peak {peaks[key] / 2**20:.0f} MiB")  # fmt: skip
        if 10 in sizes:
            ratio = median["10 hosts"] / base
            print(
                f"10 hosts against one: {ratio:.2f}x (goal <= 1.3): {'met' if ratio <= 1.3 else 'MISSED'}"
            )
    finally:
        for process in processes:
            process.kill()
        cleanup()


if __name__ == "__main__":
    main()
