"""The same commands on a "remote" server: this machine through the private sshd."""

from __future__ import annotations

import pytest

from conftest import (
    SSH_KEY,
    SSH_URL,
    archive_name,
    archives_of,
    assert_one_error_line,
    manifest_of,
    opskit,
)
from drills import drill_leftovers, drilled
from testroot import BACKUPS, STATE, use_store

pytestmark = [pytest.mark.docker, pytest.mark.ssh]


def comparable(run_stdout: dict) -> list[dict]:  # type: ignore[type-arg]
    # Docker's status text ("Up 5 seconds") may tick between the two calls.
    return [{k: v for k, v in row.items() if k != "status"} for row in run_stdout["containers"]]


def test_status_over_ssh_equals_local(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)
    local = opskit("status", "--json", "--root", root)
    remote = opskit("status", "--json", "--root", root, "--host", SSH_URL)
    assert remote.returncode == 0, remote.stderr
    assert comparable(remote.json()) == comparable(local.json())  # type: ignore[arg-type]
    assert len(comparable(remote.json())) == 17  # type: ignore[arg-type]
    from_env = opskit("status", "--json", "--root", root, env={"OPSKIT_HOST": SSH_URL})
    assert comparable(from_env.json()) == comparable(local.json())  # type: ignore[arg-type]


def test_plain_status_over_ssh_matches_local_layout(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)
    local = opskit("projects", "--root", root)
    remote = opskit("projects", "--root", root, "--host", SSH_URL)
    assert remote.stdout == local.stdout


def test_health_exec_and_logs_over_ssh(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)
    health = opskit("health", "--json", "--root", root, "--host", SSH_URL)
    assert health.returncode == 0, health.stdout
    assert any(c["check"].startswith("http ") and c["ok"] for c in health.json()["checks"])  # type: ignore[index]
    run = opskit(
        "exec",
        "mdf",
        "prod",
        "db",
        "--root",
        root,
        "--host",
        SSH_URL,
        "--",
        "sh",
        "-c",
        "echo $MYSQL_DATABASE; exit 3",
    )
    assert (run.returncode, run.stdout) == (3, "wordpress\n")
    logs = opskit(
        "logs", "webstack", "prod", "cache", "--tail", "1", "--root", root, "--host", SSH_URL
    )
    assert logs.stdout.strip() == "cache ready"


def test_lifecycle_over_ssh(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)
    assert (
        opskit("stop", "webstack", "dev", "cache", "--root", root, "--host", SSH_URL).returncode
        == 0
    )
    rows = opskit("status", "webstack", "dev", "--json", "--root", root).json()["containers"]  # type: ignore[index]
    assert {r["service"]: r["state"] for r in rows}["cache"] == "exited"
    assert (
        opskit("start", "webstack", "dev", "cache", "--root", root, "--host", SSH_URL).returncode
        == 0
    )
    rows = opskit("status", "webstack", "dev", "--json", "--root", root).json()["containers"]  # type: ignore[index]
    assert {r["service"]: r["state"] for r in rows}["cache"] == "running"


def test_unknown_project_over_ssh(examples_up) -> None:  # type: ignore[no-untyped-def]
    run = opskit("status", "nope", "--root", str(examples_up), "--host", SSH_URL)
    assert_one_error_line(run, "unknown project 'nope'")


def test_missing_root_over_ssh() -> None:
    run = opskit("status", "--root", "/nonexistent/root", "--host", SSH_URL)
    assert_one_error_line(run, "does not exist on ssh://")


def test_secrets_reach_the_remote_command_through_stdin_not_argv() -> None:
    from opskit.host import SSHHost

    with SSHHost(SSH_URL, key_filename=SSH_KEY) as host:
        result = host.run(
            ["sh", "-c", 'echo "$SECRET"; cat /proc/$$/cmdline | tr "\\0" " "'],
            env={"SECRET": "hunter2 x"},
        )
    shown, cmdline = result.text.splitlines()
    assert shown == "hunter2 x"
    assert "hunter2" not in cmdline


def test_backup_verify_and_restore_over_ssh(examples_up, store) -> None:  # type: ignore[no-untyped-def]
    import shutil
    from pathlib import Path

    root = str(use_store(examples_up, store))
    run = opskit("backup", "seriousletter", "dev", "--root", root, "--host", SSH_URL)
    assert run.returncode == 0, run.stderr
    (made,) = [
        a
        for a in archives_of(root, "seriousletter", "dev")
        if a["name"] == archive_name(run.stdout)
    ]
    assert manifest_of(str(made["path"]))["environment"] == "dev"
    assert opskit("verify", "seriousletter", "dev", "--root", root).returncode == 0  # read locally
    assert (
        opskit("verify", "seriousletter", "dev", "--root", root, "--host", SSH_URL).returncode == 0
    )
    letter = Path(root) / "seriousletter" / "uploads" / "dev" / "letter.txt"
    original = letter.read_text()
    letter.write_text("changed over ssh\n")
    run = opskit(
        "restore",
        "seriousletter",
        "dev",
        "--latest",
        "--yes",
        "--no-safety-backup",
        "--root",
        root,
        "--host",
        SSH_URL,
    )
    assert run.returncode == 0, run.stderr
    assert letter.read_text() == original
    # one file out of the archive, into a folder on the server (#22)
    out = BACKUPS.parent / "extracted-over-ssh"
    shutil.rmtree(out, ignore_errors=True)
    run = opskit("extract", "seriousletter", "dev", "uploads/dev/letter.txt", "--latest",
                 "--to", str(out), "--root", root, "--host", SSH_URL)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (out / "letter.txt").read_text() == original
    shutil.rmtree(out)


def test_drill_and_watch_over_ssh(examples_up, tmp_path, store) -> None:  # type: ignore[no-untyped-def]
    """The drill's docker run takes the server's variables through the SSH env preamble;
    the watch keeps its state where opskit runs."""
    import json
    import shutil

    root = str(use_store(examples_up, store))
    assert opskit("backup", "mdf", "prod", "--root", root).returncode == 0
    drill, its = drilled("mdf", "prod", "--json", "--root", root, "--host", SSH_URL)
    assert drill.returncode == 0, drill.stderr
    assert json.loads(drill.stdout)["ok"] is True
    assert drill_leftovers(its) == []  # this drill's: another runner may be drilling
    original = (examples_up / "opskit.yaml").read_text()  # the copy's own comes back after
    (examples_up / "opskit.yaml").write_text(f"state_dir: {tmp_path / 'state'}\n")
    (tmp_path / "state").mkdir()  # with the archive store's password: the watch reads the store
    if (STATE / "restic-store-password").exists():
        shutil.copy2(STATE / "restic-store-password", tmp_path / "state")
    try:
        watch = opskit("watch", "--json", "--root", root, "--host", SSH_URL)
        assert watch.stdout, watch.stderr
        checks = {c["key"]: c for c in json.loads(watch.stdout)["checks"]}
        assert checks["mdf prod container db"]["ok"] is True, checks
        assert "mdf prod backup freshness" in checks  # archives read on the server
        assert watch.returncode == (0 if all(c["ok"] for c in checks.values()) else 1)
        assert (tmp_path / "state" / "watch.sqlite").exists()
    finally:
        (examples_up / "opskit.yaml").write_text(original)


def test_one_docker_connection_serves_every_request_over_ssh(  # type: ignore[no-untyped-def]
    examples_up, monkeypatch
) -> None:
    """docker's SSH adapter kept a pool per request URL: each new API path opened another
    channel and another ``docker system dial-stdio`` process on the server."""
    import paramiko

    from opskit.api import Ops

    commands: list[str] = []
    original = paramiko.Channel.exec_command

    def exec_command(channel, command):  # type: ignore[no-untyped-def]
        commands.append(command)
        return original(channel, command)

    monkeypatch.setattr(paramiko.Channel, "exec_command", exec_command)
    monkeypatch.setenv("OPSKIT_SSH_KEY", SSH_KEY)
    with Ops(root=str(examples_up), host=SSH_URL) as ops:
        assert ops.status()  # _ping, then the containers
        ops.health()  # the containers again, and inspections
    assert commands.count("docker system dial-stdio") == 1, commands
