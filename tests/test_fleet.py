"""A fleet (#25): commands over several servers at once with ``--hosts``.

The test bed's servers are sshd processes on the loopback, each on its own port with its
own root and its own compose namespace on the one engine (as separate servers would have);
one more is this machine itself (``url: local``). A stopped server is an sshd killed; a slow
one accepts connections and never answers."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import opskit
from fleetbed import SSH_USER, Server, make_root, silent_server, ssh_servers, sshd
from testroot import ns

pytestmark = [pytest.mark.docker, pytest.mark.ssh]

TIMEOUT = 4  # hosts.timeout of the inventory


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("fleet")
    servers = ssh_servers(base, ["web1", "web2", "web3"])
    make_root(base / "here" / "root", "here")
    servers.append(Server("here", "local", base / "here" / "root", None))
    control = base / "control"
    control.mkdir()
    inventory = [f"  timeout: {TIMEOUT}"] + [
        f'  {s.name}: {{url: "{s.url}", root: {s.root}, tags: [{"web" if s.process else "local"}]}}'
        for s in servers
    ]
    (control / "opskit.yaml").write_text("hosts:\n" + "\n".join(inventory) + "\n")
    for server in servers:
        assert opskit("--root", str(server.root), "start", "site", "prod").returncode == 0
    later: list[subprocess.Popen[bytes]] = []  # sshd restarted by a test
    yield {"servers": servers, "control": str(control), "later": later}
    for process in later:
        process.kill()
        process.wait()
    for server in servers:
        opskit("--root", str(server.root), "destroy", "site", "prod", "--yes")
        if server.process is not None:
            server.process.kill()
            server.process.wait()
    shutil.rmtree(base, ignore_errors=True)


def one_by_one(server: Server, *args: str) -> Any:
    host = [] if server.url == "local" else ["--host", server.url]
    run = opskit("--root", str(server.root), *host, "--json", *args)
    assert run.returncode in (0, 1), run.stderr
    return json.loads(run.stdout)


def without_host(rows: list[dict[str, Any]], host: str) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k != "host"} for row in rows if row["host"] == host]


def settled(checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Checks without what moves between two calls: a disk's free bytes (CI 34)."""
    return [{**c, "detail": ""} if c["check"].startswith("disk ") else c for c in checks]


def stable(containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A container's fields that do not change from one second to the next."""
    return [{k: v for k, v in c.items() if k not in ("status", "uptime")} for c in containers]


def test_status_health_and_backups_over_all_hosts_equal_the_hosts_one_by_one(
    fleet: dict[str, Any],
) -> None:
    control, servers = fleet["control"], fleet["servers"]
    run = opskit("--root", control, "--json", "status", "--hosts", "all")
    assert run.returncode == 0, run.stderr
    merged = json.loads(run.stdout)
    assert [h["host"] for h in merged["hosts"]] == [s.name for s in servers]
    assert all(h["ok"] for h in merged["hosts"])
    for server in servers:
        alone = one_by_one(server, "status")
        assert stable(without_host(merged["results"]["containers"], server.name)) == stable(
            alone["containers"]
        )
        names = {c["name"] for c in alone["containers"]}
        assert names == {f"{ns(server.name)}-site-prod-web-1"}, "each its own namespace"

    run = opskit("--root", control, "--json", "health", "--hosts", "all")
    assert run.returncode == 0, run.stderr
    health = json.loads(run.stdout)
    for server in servers:
        checks = without_host(health["results"]["checks"], server.name)
        assert settled(checks) == settled(one_by_one(server, "health")["checks"])

    run = opskit("--root", control, "backup", "--all", "--hosts", "all")
    assert run.returncode == 0, run.stderr
    run = opskit("--root", control, "--json", "backups", "--hosts", "tag:web")
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    assert [h["host"] for h in listed["hosts"]] == ["web1", "web2", "web3"]
    for server in servers[:3]:
        archives = without_host(listed["results"]["archives"], server.name)
        assert len(archives) == 1
        assert archives == one_by_one(server, "backups")["archives"]
        assert archives[0]["path"].startswith(str(server.root))

    # the table: one, with a HOST column, every host's rows in the inventory's order
    run = opskit("--root", control, "status", "--hosts", "web2,here")
    assert run.returncode == 0, run.stderr
    containers, _blank, newest = run.stdout.partition("\n\n")
    lines = containers.splitlines()
    assert lines[0].split()[:3] == ["HOST", "PROJECT", "ENV"]
    assert [line.split()[0] for line in lines[1:]] == ["web2", "here"]
    assert newest.split()[:2] == ["HOST", "PROJECT"], "the newest backups too, once"


def test_a_stopped_and_a_silent_host_are_named_the_others_complete(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    servers = fleet["servers"]
    stopped = servers[1]
    assert stopped.process is not None
    stopped.process.kill()
    stopped.process.wait()
    port, done = silent_server()
    control = tmp_path / "control"
    control.mkdir()
    settings = (Path(fleet["control"]) / "opskit.yaml").read_text()
    settings += f'  hung: {{url: "ssh://{SSH_USER}@127.0.0.1:{port}", root: /opt/data}}\n'
    (control / "opskit.yaml").write_text(settings)
    try:
        started = time.monotonic()
        run = opskit("--root", str(control), "--json", "status", "--hosts", "all")
        took = time.monotonic() - started
        assert run.returncode == 1
        merged = json.loads(run.stdout)
        by_host = {h["host"]: h for h in merged["hosts"]}
        assert by_host["web2"]["error"].startswith("unreachable:")
        assert by_host["hung"]["error"] == f"unreachable: no answer within {TIMEOUT} s"
        for server in (servers[0], servers[2], servers[3]):
            assert by_host[server.name]["ok"]
            rows = without_host(merged["results"]["containers"], server.name)
            assert stable(rows) == stable(one_by_one(server, "status")["containers"])
        assert "2 of 5 hosts failed: web2 (connection refused), hung (timeout)" in run.stderr
        # bounded by the timeout, not by SSH's own (15 s for a banner, 30 s for a login)
        assert took < TIMEOUT + 10, took

        table = opskit("--root", str(control), "status", "--hosts", "all")
        assert table.returncode == 1
        first = table.stdout.partition("\n\n")[0]
        rows = {line.split()[0]: line for line in first.splitlines()[1:]}
        assert rows["hung"].endswith(f"unreachable: no answer within {TIMEOUT} s")
        assert "unreachable: cannot connect" in rows["web2"]
        assert table.stderr.count("[error]") == 1
    finally:
        done.set()


def test_the_watch_over_the_fleet_alerts_an_unreachable_host_once_and_its_return_once(
    fleet: dict[str, Any], tmp_path: Path, sink: Any
) -> None:
    import socket as sockets

    servers = fleet["servers"]
    web3 = servers[2]
    assert web3.process is not None
    port = int(web3.url.rsplit(":", 1)[1])
    control = tmp_path / "control"
    control.mkdir()
    settings = (Path(fleet["control"]) / "opskit.yaml").read_text()
    settings = settings.replace(
        "hosts:\n",
        f"state_dir: {tmp_path / 'state'}\n"
        f'notify:\n  urls: ["ntfy://127.0.0.1:{sink.port}/opskit"]\nhosts:\n',
    )
    (control / "opskit.yaml").write_text(settings)

    def watch() -> list[tuple[str, str]]:
        sink.clear()
        run = opskit("--root", str(control), "watch", "--hosts", "web1,web3,here")
        assert run.returncode in (0, 1), run.stderr
        return [(str(m.get("title")), str(m.get("message"))) for m in sink.messages()]

    me = sockets.gethostname()
    assert watch() == []
    web3.process.kill()
    web3.process.wait()
    try:
        failed = watch()
        assert len(failed) == 1, failed
        title, message = failed[0]
        assert title == f"opskit: 1 check failing on {me}"
        assert message.startswith("host web3: unreachable: cannot connect to ssh://")
        assert watch() == [], "said once, not at every pass"
    finally:
        fleet["later"].append(sshd(web3.root.parent, port))
    assert watch() == [(f"opskit: 1 check recovered on {me}", "host web3: answers")]
    assert watch() == []
    # each host's own checks are kept apart, in a folder of its own on this machine
    assert (tmp_path / "state" / "hosts" / "web3" / "watch.sqlite").exists()
    assert (tmp_path / "state" / "hosts" / "here" / "watch.sqlite").exists()


def test_timers_are_installed_on_each_host_running_the_opskit_there(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    import sys

    servers = {s.name: s for s in fleet["servers"]}
    program = str(Path(sys.executable).parent / "opskit")
    control = tmp_path / "control"
    control.mkdir()
    settings = (Path(fleet["control"]) / "opskit.yaml").read_text()
    # web1 names its opskit; web3 has none on its PATH (the test bed's sshd sets a plain one)
    settings = settings.replace("  web1: {", f"  web1: {{opskit: {program}, ")
    (control / "opskit.yaml").write_text(settings)
    run = opskit(
        "--root", str(control), "--json", "timers", "--install", "--hosts", "web1,web3,here"
    )
    assert run.returncode == 1
    outcome = {h["host"]: h for h in json.loads(run.stdout)["hosts"]}
    assert outcome["web1"]["ok"] and outcome["here"]["ok"]
    assert outcome["web3"]["error"].startswith(
        f"no opskit on the PATH of ssh://{SSH_USER}@127.0.0.1:"
    )
    assert "1 of 3 hosts failed: web3 (no opskit on the PATH" in run.stderr
    for name in ("web1", "here"):
        root = servers[name].root
        watch = (root / "units" / "opskit-watch.service").read_text()
        assert f"--root {root} " in watch or f"--root={root}" in watch or str(root) in watch
        assert program in watch, watch
    assert not (servers["web3"].root / "units").exists()
