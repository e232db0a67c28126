"""The dashboard without a browser: the page script parses, the operations' command lines
are built from checked fields only, tokens and sessions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from opskit.descriptor import DescriptorSource, parse_descriptor

STATIC = Path(__file__).resolve().parent.parent / "src" / "opskit" / "web" / "static"


@pytest.mark.skipif(shutil.which("node") is None, reason="node checks the script's syntax")
def test_the_page_script_parses() -> None:
    done = subprocess.run(["node", "--check", str(STATIC / "app.js")], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()


class FakeOps:
    """Only what operation_argv reads: the validated projects."""

    def projects(self) -> list[object]:
        text = "name: mdf\nenvironments: [dev, int, prod]\nsync: {pairs: [[prod, dev]]}\n"
        return [parse_descriptor(DescriptorSource("/r/mdf/project.yaml", text))]


def test_operations_become_command_lines_from_checked_fields_only() -> None:
    from fastapi import HTTPException

    from opskit.web.app import operation_argv

    ops = FakeOps()
    assert operation_argv(ops, {"operation": "backup", "project": "mdf", "env": "dev"}) == [
        "backup", "mdf", "dev",
    ]  # fmt: skip
    sync = {"operation": "sync", "project": "mdf", "from": "prod", "to": "dev"}
    assert operation_argv(ops, sync) == ["sync", "mdf", "--from", "prod", "--to", "dev", "--yes"]
    rebuild = {"operation": "rebuild", "project": "mdf", "env": "prod"}
    assert operation_argv(ops, {**rebuild, "confirm": "mdf"})[-1] == "--yes"
    assert operation_argv(ops, {**rebuild, "dry_run": True})[-1] == "--dry-run"
    refused = [
        {**rebuild},  # the last env without the typed name
        {**rebuild, "confirm": "other"},
        {"operation": "sync", "project": "mdf", "from": "dev", "to": "prod"},  # not in sync.pairs
        {"operation": "backup", "project": "mdf", "env": "--all"},
        {"operation": "backup", "project": "nope", "env": "dev"},
        {"operation": "restore", "project": "mdf", "env": "dev", "archive": "--help"},
        {"operation": "exec", "project": "mdf", "env": "dev"},
        ["backup"],
    ]
    for body in refused:
        with pytest.raises(HTTPException) as error:
            operation_argv(ops, body)
        assert error.value.status_code == 422, body


def test_tokens_are_compared_by_hash_and_sessions_end_with_their_token(tmp_path: Path) -> None:
    from opskit.runs import RunStore
    from opskit.settings import Token
    from opskit.web.auth import Sessions, check_token, new_token

    token, digest = new_token()
    tokens = (Token("alice", "operator", digest),)
    assert check_token(tokens, token) is not None and check_token(tokens, token + "x") is None
    store = RunStore(str(tmp_path / "runs.sqlite"))
    sessions = Sessions(store, hours=1)
    cookie = sessions.open(check_token(tokens, token))  # type: ignore[arg-type]
    assert sessions.user(cookie, tokens).operator  # type: ignore[union-attr]
    for stored in tmp_path.iterdir():  # the database and its write-ahead log
        assert cookie.encode() not in stored.read_bytes(), stored
    assert sessions.user(cookie, (Token("alice", "viewer", digest),)) is None  # role changed
    sessions.close(cookie)
    assert sessions.user(cookie, tokens) is None


def test_timers_add_a_service_for_the_dashboard_when_serve_bind_is_set(tmp_path: Path) -> None:
    from opskit import Ops
    from opskit.timers import SERVE_UNIT, unit_files

    (tmp_path / "opskit.yaml").write_text("serve: {bind: '127.0.0.1:8765'}\n")
    runtime = Ops(str(tmp_path)).runtime
    unit = unit_files(runtime, "/usr/local/bin/opskit")[SERVE_UNIT]
    assert (
        f"ExecStart=/usr/local/bin/opskit --root {tmp_path} serve --bind 127.0.0.1:8765\n" in unit
    )
    assert "KillMode=process\n" in unit  # a restart leaves the runs it started alone
    (tmp_path / SERVE_UNIT).write_text(unit.replace("/usr/local/bin/opskit", "/bin/true"))
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / SERVE_UNIT)], capture_output=True, text=True
    )
    assert verify.returncode == 0, verify.stderr
    (tmp_path / "opskit.yaml").write_text("state_dir: /x\n")
    assert SERVE_UNIT not in unit_files(Ops(str(tmp_path)).runtime, "/usr/local/bin/opskit")


def test_a_schedule_is_set_in_the_descriptor_text_and_nothing_else_changes() -> None:
    from opskit.descriptor import with_backup_schedule
    from opskit.errors import DescriptorError

    block = "name: a\nbackup:\n  dir: /b  # where\n  paths: [data]\n"
    assert with_backup_schedule("/r/a/project.yaml", block, "03:30") == (
        'name: a\nbackup:\n  schedule: "03:30"\n  dir: /b  # where\n  paths: [data]\n'
    )
    flow = 'name: a\nbackup: {paths: [data], schedule: "01:00"}  # nightly\n'
    assert with_backup_schedule("/r/a/project.yaml", flow, "Mon *-*-* 02:00") == (
        'name: a\nbackup: {paths: [data], schedule: "Mon *-*-* 02:00"}  # nightly\n'
    )
    for text, schedule in (("name: a\n", "03:30"), (block, "24:61"), (block, "a\nb")):
        with pytest.raises(DescriptorError):
            with_backup_schedule("/r/a/project.yaml", text, schedule)


def test_serve_refuses_a_public_bind_without_a_proxy_and_a_server_without_logins(
    tmp_path: Path,
) -> None:
    import sys

    opskit = [sys.executable, "-m", "opskit", "--root", str(tmp_path), "serve"]
    public = subprocess.run([*opskit, "--bind", "0.0.0.0:8765"], capture_output=True, text=True)
    assert public.returncode == 1
    (line,) = public.stderr.splitlines()
    assert line.startswith("[error] --bind 0.0.0.0:8765 is reachable from other machines")
    assert "--behind-proxy" in line
    bare = subprocess.run([*opskit, "--bind", "127.0.0.1:1"], capture_output=True, text=True)
    assert bare.returncode == 1
    assert bare.stderr.startswith("[error] no logins: add serve.tokens to opskit.yaml")


def test_runs_are_kept_for_keep_runs_days_and_running_ones_always(tmp_path: Path) -> None:
    from opskit.runs import RunStore

    store = RunStore(str(tmp_path / "runs.sqlite"))
    old, recent, running = (store.create(["backup", name], "/srv", "olivia") for name in "abc")
    for run in (old, recent):
        store.append(run.id, {"event": "output", "stream": "stdout", "line": run.id})
        store.finish(run.id, 0)
    store.started(running.id, 1)
    store.query(  # old finished long ago; running started then and goes on
        "UPDATE runs SET finished = '2026-01-01T00:00:00+00:00', created = '2026-01-01'"
        " WHERE id IN (?, ?)",
        (old.id, running.id),
    )
    assert store.prune(keep_days=7) == 1
    assert {r.id for r in store.runs()} == {recent.id, running.id}
    assert [e.run for e in store.events()] == [recent.id]  # and its events went with it


def test_the_local_terminal_is_the_commands_controlling_terminal() -> None:
    """A resize reaches the command as SIGWINCH only if the pty is its controlling
    terminal; without that, docker exec in the dashboard's terminal kept its first size."""
    import sys
    import threading
    import time

    from opskit.host import LocalHost

    child = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGWINCH, lambda *_: print('size', *os.get_terminal_size(0),"
        " flush=True) or sys.exit(0))\n"
        "print('ready', os.getsid(0) == os.getpid(), flush=True)\n"
        "time.sleep(30)\n"
    )
    terminal = LocalHost().terminal([sys.executable, "-c", child], cols=80, rows=24)
    seen: list[bytes] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(terminal.read, b"")), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 20
        while b"ready" not in b"".join(seen):
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
        terminal.resize(120, 40)
        reader.join(timeout=20)
    finally:
        terminal.close()
    assert b"ready True" in b"".join(seen)  # a session of its own
    assert b"size 120 40" in b"".join(seen)
