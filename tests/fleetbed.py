"""The fleet's test bed (#25), shared by test_fleet and test_dashboard_fleet: "servers"
that are private sshd processes on the loopback, each on its own port with its own root
and its own compose namespace on the one engine (as separate servers would have), and a
server that accepts connections and never answers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import attrs

from conftest import SSH_URL
from testroot import free_ports, ns

TESTBED_SSH = Path("/var/lib/opskit-testbed/ssh")
SSH_USER = urlsplit(SSH_URL).username  # the test bed's login (scripts/testbed.sh)


@attrs.frozen
class Server:
    name: str
    url: str
    root: Path
    process: subprocess.Popen[bytes] | None  # its sshd (None: this machine)


def sshd(directory: Path, port: int) -> subprocess.Popen[bytes]:
    """A private sshd like the test bed's, on *port*, in the foreground (killed to stop)."""
    config = (TESTBED_SSH / "sshd_config").read_text()
    lines = [
        f"Port {port}" if line.startswith("Port ")
        else f"PidFile {directory / 'sshd.pid'}" if line.startswith("PidFile ")
        else line
        for line in config.splitlines()
    ]  # fmt: skip
    (directory / "sshd_config").write_text("\n".join(lines) + "\n")
    process = subprocess.Popen(
        ["/usr/sbin/sshd", "-D", "-e", "-f", str(directory / "sshd_config")],
        stderr=open(directory / "sshd.log", "ab"),  # noqa: SIM115
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.1)
    raise AssertionError(f"sshd on {port} did not listen")


def make_root(root: Path, name: str, stack: str | None = None) -> None:
    """A server's root: one project whose stack has a name of its own (its namespace,
    ``ns(stack or name)``)."""
    (root / "site" / "prod" / "data").mkdir(parents=True)
    (root / "site" / "prod" / "data" / "hello.txt").write_text(f"hello from {name}\n")
    (root / "opskit.yaml").write_text(
        f"state_dir: {root / 'state'}\ntimers: {{unit_dir: {root / 'units'}}}\n"
    )
    (root / "site" / "project.yaml").write_text(
        "name: site\nenvironments: [prod]\n"
        f'compose: {{dir: "{{env}}", project_name: "{ns(stack or name)}-site-{{env}}"}}\n'
        f'backup: {{dir: {root / "backups"}, store: folder, paths: ["{{env}}/data"]}}\n'
    )
    (root / "site" / "prod" / "compose.yaml").write_text(
        "services:\n  web:\n    image: opskit-test/web:1\n    init: true\n"
        f'    command: ["sh", "-c", "echo {name} up; exec sleep 2147483647"]\n'
    )


def ssh_servers(base: Path, names: list[str], stack: str = "") -> list[Server]:
    """One sshd server per name, each with its root under *base*/NAME (its namespace:
    *stack* + NAME)."""
    servers = []
    for name, port in zip(names, free_ports(len(names)), strict=True):
        (base / name).mkdir()
        make_root(base / name / "root", name, stack + name)
        servers.append(
            Server(
                name,
                f"ssh://{SSH_USER}@127.0.0.1:{port}",
                base / name / "root",
                sshd(base / name, port),
            )
        )
    return servers


def kill_server(process: subprocess.Popen[bytes]) -> None:
    """A server gone down: its sshd and every session it forked (which keep the
    connections already open, as a killed sshd alone would)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.isdigit():
            parent = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(entry))
    tree, todo = [], [process.pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def silent_server() -> tuple[int, threading.Event]:
    """A server that accepts connections and never says a word (a hung machine)."""
    (port,) = free_ports(1)
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen(8)
    done = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
        for connection in held:
            connection.close()
        listener.close()

    threading.Thread(target=accept, daemon=True).start()
    return port, done
