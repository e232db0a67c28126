"""The dashboard without a browser: the page script parses, the operations' command lines
are built from checked fields only, tokens and sessions."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from opskit.descriptor import DescriptorSource, parse_descriptor

STATIC = Path(__file__).resolve().parent.parent / "src" / "opskit" / "web" / "static"


@pytest.mark.skipif(shutil.which("node") is None, reason="node checks the script's syntax")
@pytest.mark.parametrize(
    "script", ["app.js", *sorted(p.name for p in (STATIC / "pages").glob("*.js"))]
)
def test_the_page_scripts_parse(script: str) -> None:
    path = STATIC / script if script == "app.js" else STATIC / "pages" / script
    done = subprocess.run(["node", "--check", str(path)], capture_output=True)
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
    restore = {
        "operation": "restore",
        "project": "mdf",
        "env": "dev",
        "archive": "mdf-dev-20260101T000000Z",
    }
    assert operation_argv(ops, restore) == [
        "restore", "mdf", "dev", "--name", "mdf-dev-20260101T000000Z", "--yes",
    ]  # fmt: skip
    stop = {"operation": "stop", "project": "mdf", "env": "dev", "service": "web"}
    assert operation_argv(ops, stop) == ["stop", "mdf", "dev", "web"]
    assert operation_argv(ops, {**stop, "operation": "start", "env": "prod"}) == [
        "start", "mdf", "prod", "web",
    ]  # fmt: skip
    whole = {"operation": "restart", "project": "mdf", "env": "prod", "confirm": "mdf"}
    assert operation_argv(ops, whole) == ["restart", "mdf", "prod"]
    refused = [
        {**whole, "confirm": ""},  # stopping the last env needs the typed name
        {**stop, "service": "-x"},
        {**stop, "service": "a b"},
        {**rebuild},  # the last env without the typed name
        {**rebuild, "confirm": "other"},
        {"operation": "sync", "project": "mdf", "from": "dev", "to": "prod"},  # not in sync.pairs
        {"operation": "backup", "project": "mdf", "env": "--all"},
        {"operation": "backup", "project": "nope", "env": "dev"},
        {"operation": "restore", "project": "mdf", "env": "dev", "archive": "--help"},
        {"operation": "restore", "project": "mdf", "env": "dev", "archive": ".."},
        {
            "operation": "restore",
            "project": "mdf",
            "env": "dev",
            "archive": "mdf-int-20260101T000000Z",
        },
        {"operation": "verify", "project": "mdf", "env": "dev", "archive": "mdf-dev-2026\x00"},
        {"operation": "backup", "project": "mdf", "env": "dev\x00"},
        {**rebuild, "dry_run": "yes"},  # true or false, nothing that only looks true
        {**rebuild, "confirm": ["mdf"]},
        {"operation": "exec", "project": "mdf", "env": "dev"},
        ["backup"],
    ]
    for body in refused:
        with pytest.raises(HTTPException) as error:
            operation_argv(ops, body)
        assert error.value.status_code == 422, body


def test_offsite_and_drill_requests_name_one_of_the_envs_archives() -> None:
    from fastapi import HTTPException

    from opskit.web.app import operation_argv

    ops = FakeOps()
    name = "mdf-dev-20260101T000000Z"
    archive = {"project": "mdf", "env": "dev", "archive": name}
    assert operation_argv(ops, {"operation": "drill", **archive}) == [
        "drill", "mdf", "dev", "--name", name,
    ]  # fmt: skip
    assert operation_argv(ops, {"operation": "drill", "project": "mdf", "env": "dev"}) == [
        "drill", "mdf", "dev",
    ]  # fmt: skip
    for verb in ("upload", "verify", "download"):
        assert operation_argv(ops, {"operation": f"offsite-{verb}", **archive}) == [
            "offsite", verb, "mdf", "dev", "--name", name,
        ]  # fmt: skip
    assert operation_argv(ops, {"operation": "restore", "offsite": True, **archive}) == [
        "restore", "mdf", "dev", "--name", name, "--offsite", "--yes",
    ]  # fmt: skip
    prod = {"project": "mdf", "env": "prod", "archive": "mdf-prod-20260101T000000Z"}
    assert operation_argv(ops, {"operation": "restore", "offsite": True, "confirm": "mdf", **prod})[
        -2:
    ] == ["--offsite", "--yes"]
    refused = [
        {"operation": "restore", "offsite": True, **prod},  # the last env: the typed name
        {"operation": "restore", "offsite": "yes", **archive},  # true or false
        {"operation": "verify", "offsite": True, **archive},  # offsite-verify names it
        {"operation": "offsite-upload", "project": "mdf", "env": "dev"},  # which archive?
        {"operation": "offsite-download", "project": "mdf", "env": "dev", "archive": ""},
        {"operation": "offsite-verify", **archive, "archive": "--name"},
        {"operation": "offsite-download", **archive, "archive": "-mdf-dev-20260101T000000Z"},
        {"operation": "offsite-download", **archive, "archive": "mdf-prod-20260101T000000Z"},
        {"operation": "drill", **archive, "archive": "../mdf-dev-20260101T000000Z"},
        {"operation": "drill", **archive, "env": "--all"},
        {"operation": "drill", **archive, "env": "staging"},
        {"operation": "offsite-upload", **archive, "project": "nope"},
        {"operation": "offsite upload", **archive},  # the page's names only
        {"operation": "offsite-prune", "project": "mdf", "env": "dev"},  # not from the page
        {"operation": "backup", **archive},  # a backup takes no archive
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


def test_each_jobs_end_outlives_its_run_for_the_backup_plots(tmp_path: Path) -> None:
    import json
    import sqlite3
    from datetime import UTC, datetime, timedelta

    from opskit.runs import SCHEMA, RunStore

    def days_ago(days: float) -> str:
        return (datetime.now(UTC) - timedelta(days=days)).isoformat()

    def ended(env: str, time: str, size: int) -> dict[str, Any]:
        return {"event": "job.finished", "kind": "backup", "project": "mdf", "envs": [env],
                "time": time, "result": "ok", "seconds": 2.5, "details": {"size": size}}  # fmt: skip

    path = str(tmp_path / "runs.sqlite")
    with sqlite3.connect(path) as before:  # a store from before the jobs table
        before.executescript(SCHEMA)
        before.execute(
            "INSERT INTO runs VALUES ('old', '[]', '/srv', 'cron', '2026-01-01', 1, 'finished',"
            " 0, '2026-01-01T00:00:00+00:00')"
        )
        before.execute(
            "INSERT INTO events (run, data) VALUES ('old', ?)",
            (json.dumps(ended("dev", days_ago(40), 100)),),
        )
    store = RunStore(path)
    run = store.create(["backup", "mdf"], "/srv", "olivia")
    store.append(run.id, {"event": "job.started", "kind": "backup", "project": "mdf"})
    store.append(run.id, ended("dev", days_ago(2), 200))
    store.append(run.id, ended("prod", days_ago(2), 300))
    store.append(run.id, {**ended("dev", days_ago(1), 0), "kind": "verify"})
    store.finish(run.id, 0)
    sizes = [
        j["details"]["size"] for j in store.finished_jobs("backup", "mdf", "dev", days_ago(60))
    ]
    assert sizes == [100, 200]  # oldest first, the run from before the table included
    assert store.finished_jobs("backup", "mdf", "dev", days_ago(30))[0]["run"] == run.id
    assert store.prune(keep_days=0) == 2  # the runs and their logs go
    assert not store.events()
    assert len(store.finished_jobs("backup", "mdf", "dev", days_ago(60))) == 2  # their ends stay
    assert RunStore(path).finished_jobs("backup", "mdf", "prod", days_ago(60))[0]["details"] == {
        "size": 300
    }


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


def test_a_malformed_resize_frame_is_ignored_and_a_good_one_is_a_size() -> None:
    from opskit.web.terminal import IGNORED, _frame

    def text(value: str) -> dict[str, str]:
        return {"type": "websocket.receive", "text": value}

    assert _frame(text('{"resize": [120, 40]}')) == (120, 40)
    assert _frame(text("ls\r")) == b"ls\r"
    assert _frame({"type": "websocket.disconnect"}) is None
    for bad in ('{"resize": "x"}', '{"resize": [1]}', '{"resize": ["a", "b"]}', '{"resize"',
                '{"resize": [0, 40]}', '{"resize": [99999, 40]}', '{"resize": [-1, 40]}',
                '{"resize": [80.5, 24]}', '{"resize": null}', '{"resize": {"a": 1, "b": 2}}'):  # fmt: skip
        assert _frame(text(bad)) == IGNORED, bad


def test_failed_logins_are_limited_per_address_until_the_window_passes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from opskit.web.auth import FAILURES, WINDOW_SECONDS, LoginLimit

    now = [1000.0]
    limit = LoginLimit(clock=lambda: now[0])
    assert (FAILURES, WINDOW_SECONDS) == (10, 300.0)  # as docs/dashboard.md says
    for _ in range(FAILURES - 1):
        limit.failed("203.0.113.7")
        now[0] += 1
    assert limit.wait("203.0.113.7") == 0  # one more try
    limit.failed("203.0.113.7")
    assert limit.wait("203.0.113.7") == pytest.approx(WINDOW_SECONDS - (FAILURES - 1))
    assert limit.wait("198.51.100.1") == 0  # another address is not held back
    now[0] += WINDOW_SECONDS - FAILURES + 1.5  # the first failure left the window
    assert limit.wait("203.0.113.7") == 0
    limit.failed("203.0.113.7")  # the first left, a new one came: again ten in the window
    assert limit.wait("203.0.113.7") > 0
    now[0] += WINDOW_SECONDS
    assert limit.wait("203.0.113.7") == 0 and not limit.seen  # stale addresses are dropped
    limit.failed("203.0.113.7\x1b[2J")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == FAILURES + 2  # one line per failure
    assert (
        lines[0]
        == "opskit serve: [warning] login failed from 203.0.113.7 (1 of 10 allowed in 300 s)"
    )
    assert "\x1b" not in lines[-1]


def test_the_tokens_are_read_again_when_opskit_yaml_changes(tmp_path: Path) -> None:
    """A removed, demoted or replaced token loses its sessions at the next request, and an
    opskit.yaml that became invalid lets nobody in (and says why)."""
    from opskit.errors import OpskitError
    from opskit.host import LocalHost
    from opskit.runs import RunStore
    from opskit.web.auth import Sessions, TokenFile, check_token, new_token

    (alice, alice_sha), (bob, bob_sha) = new_token(), new_token()
    settings = tmp_path / "opskit.yaml"

    def write(*lines: str) -> None:
        settings.write_text("serve:\n  tokens:\n" + "".join(f"    - {line}\n" for line in lines))

    write(f"{{name: alice, role: operator, sha256: {alice_sha}}}",
          f"{{name: bob, role: operator, sha256: {bob_sha}}}")  # fmt: skip
    tokens = TokenFile(LocalHost(), str(tmp_path))
    sessions = Sessions(RunStore(str(tmp_path / "runs.sqlite")), hours=1)
    cookies = {
        name: sessions.open(check_token(tokens.current(), token))  # type: ignore[arg-type]
        for name, token in (("alice", alice), ("bob", bob))
    }
    assert sessions.user(cookies["alice"], tokens.current()).operator  # type: ignore[union-attr]
    write(
        f"{{name: alice, role: viewer, sha256: {alice_sha}}}",  # demoted
        f"{{name: bob, role: operator, sha256: {new_token()[1]}}}",
    )  # replaced (leaked)
    assert sessions.user(cookies["alice"], tokens.current()) is None
    assert sessions.user(cookies["bob"], tokens.current()) is None  # same name and role
    assert check_token(tokens.current(), bob) is None
    assert check_token(tokens.current(), alice).role == "viewer"  # type: ignore[union-attr]
    write(f"{{name: bob, role: operator, sha256: {bob_sha}}}")
    assert check_token(tokens.current(), alice) is None  # removed
    settings.write_text("serve: {tokens: [{name: x}]}\n")
    with pytest.raises(OpskitError, match="nobody can log in"):
        tokens.current()
    settings.unlink()
    assert tokens.current() == ()


def test_a_closed_terminal_ends_a_command_that_ignores_hup_and_term() -> None:
    """The command starts with every signal at its default, even from a server that
    ignores SIGHUP (started under nohup); close() escalates to SIGKILL within seconds."""
    import signal
    import sys
    import threading
    import time

    from opskit.host import LocalHost

    child = (
        "import signal, time\n"
        "print('ignored', open('/proc/self/status').read().split('SigIgn:')[1].split()[0],"
        " flush=True)\n"
        "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('stubborn', flush=True)\n"
        "time.sleep(300)\n"
    )
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        terminal = LocalHost().terminal([sys.executable, "-c", child])
    finally:
        signal.signal(signal.SIGHUP, previous)
    seen: list[bytes] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(terminal.read, b"")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 20
    while b"stubborn" not in b"".join(seen):
        assert time.monotonic() < deadline, seen
        time.sleep(0.05)
    closing = threading.Thread(target=terminal.close, daemon=True)
    closing.start()
    closing.join(timeout=5)
    process = terminal.process  # type: ignore[attr-defined]
    if closing.is_alive():  # the old close() waited for ever after its SIGHUP
        process.kill()
        raise AssertionError("the command outlived close() by 5 s")
    assert process.returncode == -signal.SIGKILL
    # Python ignores SIGPIPE itself and SIGXFSZ; the command inherited nothing else
    ignored = int(b"".join(seen).split(b"ignored ")[1].split()[0], 16)
    assert not ignored & ~(1 << (signal.SIGPIPE - 1) | 1 << (signal.SIGXFSZ - 1)), hex(ignored)


def test_the_shells_process_id_is_taken_out_of_the_output_however_it_is_split() -> None:
    """The mark alone in the first read once ended the session: b"" means the end."""
    from opskit.web.terminal import ShellPid

    shell = ShellPid()
    assert shell.feed(b"\x1b]opskit-pid;7") == b""  # held back
    assert shell.feed(b"84\x07") == b""  # the mark alone: nothing to show, not the end
    assert shell.pid == "784"
    assert shell.feed(b"/ # ") == b"/ # "
    other = ShellPid()
    assert other.feed(b"ls\r\n\x1b]opskit-pid;12\x07\r\n/ # ") == b"ls\r\n\r\n/ # "
    assert other.pid == "12"
    none = ShellPid()  # a shell that never says: its output is not held back for long
    assert none.feed(b"x" * 5000) == b"x" * 5000 and none.pid is None
    short = ShellPid()
    assert short.feed(b"error: no such container\r\n") == b""
    assert short.rest() == b"error: no such container\r\n"


# -- the app's parts without a browser: one guard, the routers, the shared operations (#20)


def test_operation_requests_are_checked_by_the_cores_own_rules() -> None:
    """The dashboard's request becomes a typed request whose refusals are the core's words
    (an unknown env as check_env says it, a direction as sync.pairs allows it)."""
    from opskit.operation_requests import RequestError, is_last_env, parse_operation

    projects = FakeOps().projects()
    request = parse_operation(projects, {"operation": "sync", "project": "mdf",
                                         "from": "prod", "to": "dev"})  # fmt: skip
    assert (request.operation, request.source, request.target) == ("sync", "prod", "dev")
    assert is_last_env(request.project, "prod") and not is_last_env(request.project, "dev")
    with pytest.raises(RequestError, match="has no environment 'staging'"):
        parse_operation(projects, {"operation": "backup", "project": "mdf", "env": "staging"})
    with pytest.raises(
        RequestError, match=r"sync\.pairs in /r/mdf/project\.yaml allows: prod->dev"
    ):
        parse_operation(projects, {"operation": "sync", "project": "mdf",
                                   "from": "dev", "to": "int"})  # fmt: skip
    with pytest.raises(RequestError, match="type the project name"):
        parse_operation(projects, {"operation": "promote", "project": "mdf",
                                   "from": "int", "to": "prod"})  # fmt: skip


def test_one_origin_check_for_requests_and_websockets_and_behind_a_proxy() -> None:
    from starlette.requests import Request
    from starlette.websockets import WebSocket

    from opskit.web.guard import expected_origin, same_origin

    def scope(kind: str, scheme: str, **headers: str) -> dict[str, object]:
        encoded = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
        return {"type": kind, "scheme": scheme, "path": "/api/x", "query_string": b"",
                "headers": [(b"host", b"ops.example:8765"), *encoded]}  # fmt: skip

    async def nothing() -> dict[str, object]:
        return {}

    async def ignore(message: object) -> None:
        pass

    request = Request(scope("http", "http", origin="http://ops.example:8765"))
    socket = WebSocket(scope("websocket", "ws", origin="http://ops.example:8765"), nothing, ignore)
    assert same_origin(request, False) and same_origin(socket, False)
    assert not same_origin(Request(scope("http", "http")), False)  # no Origin at all
    assert not same_origin(Request(scope("http", "http", origin="http://evil.example")), False)
    proxied = scope("websocket", "ws", origin="https://ops.example",
                    x_forwarded_host="ops.example", x_forwarded_proto="https")  # fmt: skip
    assert expected_origin(WebSocket(proxied, nothing, ignore), True) == "https://ops.example"
    assert not same_origin(WebSocket(proxied, nothing, ignore), False)  # headers not trusted


SCHEDULED = (
    "name: shop\nenvironments: [dev, prod]\nbackup:\n  # nightly\n  retention: {keep_daily: 7}\n"
)


def test_opskit_schedule_sets_the_descriptor_and_refuses_what_systemd_cannot_parse(
    root_with: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command the schedules page shares: the descriptor rewritten in one rename with
    its mode, or left alone with one [error] line."""
    from conftest import Run, assert_one_error_line
    from opskit.cli import run

    def opskit(*argv: str) -> Run:
        code = run(["--root", str(root), *argv])
        out, err = capsys.readouterr()
        return Run(code, out, err)

    root = root_with({"shop": SCHEDULED, "site": "name: site\nenvironments: [dev]\n"})
    descriptor = root / "shop" / "project.yaml"
    descriptor.chmod(0o640)
    assert_one_error_line(opskit("schedule", "shop", "Mon *-*-* 25:00"),
                          "is not a systemd calendar expression")  # fmt: skip
    assert_one_error_line(opskit("schedule", "shop", "25:99"), "not a valid time")
    assert_one_error_line(opskit("schedule", "shop", "03:30\x1b[2J"), "printable")
    assert_one_error_line(opskit("schedule", "nope", "03:30"), "nope")
    assert_one_error_line(opskit("schedule", "site", "03:30"), "no backup")
    assert descriptor.read_text() == SCHEDULED
    done = opskit("--json", "schedule", "shop", "04:15")
    assert done.returncode == 0, done.stderr
    edited = SCHEDULED.replace("  retention", '  schedule: "04:15"\n  retention')
    assert descriptor.read_text() == edited
    assert descriptor.stat().st_mode & 0o777 == 0o640
    assert not list(root.glob("shop/*.opskit-new"))
    [row] = done.json()  # type: ignore[misc]
    assert (row["project"], row["schedule"]) == ("shop", "04:15")
    assert "04:15:00" in row["next"], row
    listed = opskit("--json", "schedule").json()
    assert [(r["project"], r["backup"]) for r in listed] == [("shop", True), ("site", False)]  # type: ignore[union-attr]
    (root / "opskit.yaml").write_text(f"timers: {{unit_dir: {root / 'units'}}}\n")
    (root / "units").mkdir()
    installed = opskit("schedule", "shop", "Sat *-*-* 05:00", "--install")
    assert installed.returncode == 0, installed.stderr
    timer = (root / "units" / "opskit-backup-shop.timer").read_text()
    assert "OnCalendar=Sat *-*-* 05:00\n" in timer


def call(app: Any, scope: dict[str, Any], first: dict[str, Any]) -> list[dict[str, Any]]:
    """Drive the app itself with one connection (no server, no browser): *first* is all it
    receives; what it sends back."""
    import asyncio

    headers = [(b"host", b"127.0.0.1:8765"),
               *((k.lower().encode(), v.encode()) for k, v in scope.pop("headers").items())]  # fmt: skip
    path, _, query = scope.pop("target").partition("?")
    scope = {"asgi": {"version": "3.0"}, "http_version": "1.1", "path": path, "root_path": "",
             "raw_path": path.encode(), "query_string": query.encode(), "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8765), **scope}  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return first

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def asgi(
    app: Any, method: str, target: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, bytes]:
    """One HTTP request: the answer's status and body."""
    scope = {"type": "http", "method": method, "scheme": "http", "target": target,
             "headers": headers}  # fmt: skip
    sent = call(app, scope, {"type": "http.request", "body": body, "more_body": False})
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def terminal(app: Any, query: str, headers: dict[str, str]) -> int:
    """The close code the terminal's WebSocket answers a connection with (0: none)."""
    scope = {"type": "websocket", "scheme": "ws", "target": f"/api/terminal?{query}",
             "subprotocols": [], "headers": headers}  # fmt: skip
    sent = call(app, scope, {"type": "websocket.connect"})
    return int(sent[-1]["code"]) if sent and sent[-1]["type"] == "websocket.close" else 0


def test_the_schedules_route_runs_the_shared_operation_for_operators_from_the_page_only(
    root_with: Any, tmp_path: Path
) -> None:
    """PUT /api/schedules/NAME: refused from another origin and for a viewer, refused with
    the operation's own words for a bad schedule (the descriptor untouched), else the
    descriptor rewritten and a run of ``timers --install --remove-stale`` started."""
    import json
    import time

    from opskit.web.app import Options, create_app
    from opskit.web.auth import COOKIE, check_token, new_token

    root = root_with({"shop": SCHEDULED})
    (olivia, olivia_sha), (victor, victor_sha) = new_token(), new_token()
    (root / "opskit.yaml").write_text(
        f"state_dir: {tmp_path / 'state'}\ntimers: {{unit_dir: {tmp_path / 'units'}}}\n"
        f"serve:\n  tokens:\n    - {{name: olivia, role: operator, sha256: {olivia_sha}}}\n"
        f"    - {{name: victor, role: viewer, sha256: {victor_sha}}}\n"
    )
    (tmp_path / "units").mkdir()
    app = create_app(Options(root=str(root)))
    board = app.state.dashboard
    tokens = board.token_file.current()
    cookies = {name: f"{COOKIE}={board.sessions.open(check_token(tokens, token))}"
               for name, token in (("olivia", olivia), ("victor", victor))}  # fmt: skip
    page = {"Origin": "http://127.0.0.1:8765", "Content-Type": "application/json"}
    descriptor = root / "shop" / "project.yaml"

    def put(who: str, schedule: str, **headers: str) -> tuple[int, Any]:
        status, answer = asgi(app, "PUT", "/api/schedules/shop",
                              {**page, "Cookie": cookies[who], **headers},
                              json.dumps({"schedule": schedule}).encode())  # fmt: skip
        return status, json.loads(answer)

    assert put("olivia", "04:15", Origin="http://evil.example")[0] == 403
    assert put("victor", "04:15")[0] == 403
    query = "project=shop&env=dev&service=web"
    assert terminal(app, query, {**page, "Cookie": cookies["olivia"], "Origin": "null"}) == 4403
    assert terminal(app, query, {**page, "Cookie": cookies["victor"]}) == 4403
    status, answer = put("olivia", "25:99")
    assert status == 422 and "not a valid time" in answer["detail"], answer
    assert put("olivia", "Mon *-*-* 25:00")[0] == 422
    assert descriptor.read_text() == SCHEDULED
    status, started = put("olivia", "04:15")
    assert status == 200 and started["argv"] == ["timers", "--install", "--remove-stale"]
    assert 'schedule: "04:15"' in descriptor.read_text()
    status, listed = asgi(app, "GET", "/api/schedules", {"Cookie": cookies["victor"]})
    assert status == 200 and json.loads(listed)["schedules"][0]["schedule"] == "04:15"
    deadline = time.monotonic() + 60
    while board.runs.one(started["id"])["run"]["state"] != "finished":
        assert time.monotonic() < deadline, board.runs.one(started["id"])
        time.sleep(0.2)
    assert board.runs.one(started["id"])["run"]["exit_code"] == 0
    timer = tmp_path / "units" / "opskit-backup-shop.timer"
    assert "OnCalendar=*-*-* 04:15:00\n" in timer.read_text()


def test_log_times_compare_as_text_once_their_fractions_are_whole() -> None:
    from opskit.web.streams import log_time

    # docker drops trailing zeros: "…05.12Z" is after "…05.1199Z", not before it
    assert log_time("2026-12-05T02:11:05.12Z") == "2026-12-05T02:11:05.120000000Z"
    assert log_time("2026-12-05T02:11:05Z") == "2026-12-05T02:11:05.000000000Z"
    assert log_time("2026-12-05T02:11:05.1199Z") < log_time("2026-12-05T02:11:05.12Z")
    assert log_time("not-a-time") == "not-a-time"
