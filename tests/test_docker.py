"""Integration tests against the real Docker engine and the example root."""

from __future__ import annotations

import subprocess

import pytest

from conftest import DECOY, assert_one_error_line, opskit, wait_until
from testroot import ns

pytestmark = pytest.mark.docker


def status(root: str, *args: str) -> list[dict[str, str]]:
    run = opskit("status", *args, "--json", "--root", root)
    assert run.returncode == 0, run.stderr
    return run.json()["containers"]  # type: ignore[index,no-any-return]


def test_status_lists_every_container_found_by_labels_prefix_and_compose(examples_up) -> None:  # type: ignore[no-untyped-def]
    rows = status(str(examples_up))
    found = {(r["project"], r["environment"], r["service"]): r for r in rows}
    expected = {
        ("mdf", "dev", "web"): "prefix", ("mdf", "dev", "db"): "prefix",
        ("mdf", "prod", "web"): "label", ("mdf", "prod", "db"): "label", ("mdf", "prod", "mail"): "label",
        ("seriousletter", "dev", "app"): "prefix", ("seriousletter", "dev", "db"): "prefix",
        ("seriousletter", "dev", "frontend"): "prefix",
        ("seriousletter", "prod", "app"): "label", ("seriousletter", "prod", "db"): "label",
        ("seriousletter", "prod", "frontend"): "label",
        ("webstack", "dev", "web"): "compose", ("webstack", "dev", "cache"): "compose",
        ("webstack", "prod", "web"): "compose", ("webstack", "prod", "cache"): "compose",
        ("shop", "dev", "web"): "compose", ("shop", "prod", "web"): "compose",
    }  # fmt: skip
    assert {key: row["matched_by"] for key, row in found.items()} == expected
    assert len(rows) == len(expected)
    for row in rows:
        assert row["state"] == "running"
        assert row["health"] in ("healthy", "none")
        assert row["image"].startswith("opskit-test/")
        assert row["status"].startswith("Up")
    assert found[("mdf", "dev", "db")]["name"] == ns("dev-mdf-db")
    assert found[("mdf", "dev", "db")]["health"] == "healthy"
    assert DECOY not in {row["name"] for row in rows}


def test_status_of_one_project_and_one_env(examples_up) -> None:  # type: ignore[no-untyped-def]
    rows = status(str(examples_up), "seriousletter", "prod")
    assert {(r["project"], r["environment"]) for r in rows} == {("seriousletter", "prod")}
    assert len(rows) == 3


def test_stop_start_restart_a_service(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)

    def web() -> dict[str, str]:
        return next(r for r in status(root, "webstack", "prod") if r["service"] == "web")

    def started_at() -> str:
        return subprocess.run(
            ["docker", "inspect", "-f", "{{.State.StartedAt}}", web()["name"]],
            capture_output=True,
            text=True,
        ).stdout

    before = started_at()
    assert opskit("stop", "webstack", "prod", "web", "--root", root).returncode == 0
    assert web()["state"] == "exited"
    cache = next(r for r in status(root, "webstack", "prod") if r["service"] == "cache")
    assert cache["state"] == "running"  # only the named service stopped
    health = opskit("health", "webstack", "prod", "--root", root)
    assert health.returncode == 1
    assert opskit("start", "webstack", "prod", "web", "--root", root).returncode == 0
    assert web()["state"] == "running"
    started = started_at()
    assert started != before
    assert opskit("restart", "webstack", "prod", "--root", root).returncode == 0
    restarted = started_at()
    assert restarted != started
    wait_until(lambda: web()["health"] == "healthy", what="webstack prod web healthy")


def test_stop_and_start_a_whole_env_with_an_extra_stack(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)
    assert opskit("stop", "mdf", "prod", "--root", root).returncode == 0
    assert {r["state"] for r in status(root, "mdf", "prod")} == {"exited"}
    assert opskit("start", "mdf", "prod", "--root", root).returncode == 0
    assert {r["state"] for r in status(root, "mdf", "prod")} == {"running"}
    wait_until(
        lambda: opskit("health", "mdf", "prod", "--root", root).returncode == 0,
        what="mdf prod healthy",
    )


def test_logs_tail(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)
    run = opskit("logs", "webstack", "dev", "cache", "--tail", "1", "--root", root)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "cache ready\n"
    both = opskit("logs", "webstack", "dev", "--tail", "1", "--root", root)
    assert both.returncode == 0
    lines = both.stdout.splitlines()
    assert any(line.endswith("| cache ready") for line in lines)
    assert len(lines) == 2  # one line of each container, prefixed with its name
    assert opskit("logs", "webstack", "dev", "cache", "--tail", "0", "--root", root).stdout == ""


def test_logs_since_and_timestamps_merge_an_envs_containers_in_time_order(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)
    merged = opskit("logs", "webstack", "dev", "--since", "3d", "--timestamps", "--root", root)
    assert merged.returncode == 0, merged.stderr
    lines = merged.stdout.splitlines()
    labels = {line.partition(" | ")[0].strip() for line in lines}
    assert len(labels) == 2, lines  # both containers, each line with its name
    moments = [line.partition(" | ")[2].partition(" ")[0] for line in lines]
    assert moments == sorted(moments) and all(m.endswith("Z") for m in moments)
    future = opskit("logs", "webstack", "dev", "--since", "2099-01-01", "--root", root)
    assert future.returncode == 0 and future.stdout == ""
    bad = opskit("logs", "webstack", "dev", "--since", "yesterday", "--root", root)
    assert bad.returncode == 1 and bad.stderr.startswith("[error] --since 'yesterday'")


def test_exec_runs_in_the_container_and_passes_the_exit_code(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)
    run = opskit(
        "exec", "mdf", "dev", "db", "--root", root, "--", "sh", "-c", "echo $MYSQL_DATABASE; exit 7"
    )
    assert run.returncode == 7
    assert run.stdout == "wordpress\n"
    piped = opskit(
        "exec", "webstack", "dev", "web", "--root", root, "--", "cat", input="from stdin\n"
    )
    assert piped.stdout == "from stdin\n"


def test_exec_in_a_missing_service(examples_up) -> None:  # type: ignore[no-untyped-def]
    run = opskit("exec", "mdf", "dev", "nosuch", "--root", str(examples_up), "--", "true")
    assert_one_error_line(run, "no container for service 'nosuch'")


def test_exec_in_a_stopped_container(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)
    assert opskit("stop", "webstack", "dev", "cache", "--root", root).returncode == 0
    try:
        run = opskit("exec", "webstack", "dev", "cache", "--root", root, "--", "true")
        assert_one_error_line(run, "no running container for service 'cache'")
    finally:
        assert opskit("start", "webstack", "dev", "cache", "--root", root).returncode == 0


def test_health_fails_while_unhealthy_and_recovers(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)
    assert opskit("health", "webstack", "dev", "--root", root).returncode == 0
    assert (
        opskit(
            "exec", "webstack", "dev", "web", "--root", root, "--", "touch", "/tmp/sick"
        ).returncode
        == 0
    )
    try:
        wait_until(
            lambda: opskit("health", "webstack", "dev", "--root", root).returncode == 1,
            timeout=30,
            what="unhealthy",
        )
        report = opskit("health", "webstack", "dev", "--json", "--root", root).json()
        assert report["ok"] is False  # type: ignore[index]
        failing = [c for c in report["checks"] if not c["ok"]]  # type: ignore[index]
        assert [c["check"] for c in failing] == ["container web"]
        assert "unhealthy" in failing[0]["detail"]
    finally:
        opskit("exec", "webstack", "dev", "web", "--root", root, "--", "rm", "-f", "/tmp/sick")
    wait_until(
        lambda: opskit("health", "webstack", "dev", "--root", root).returncode == 0,
        timeout=30,
        what="healthy again",
    )


def test_health_of_the_plugins(examples_up, example_copy) -> None:  # type: ignore[no-untyped-def]
    report = opskit("health", "--json", "--root", str(examples_up)).json()
    checks = {(c["project"], c["environment"], c["check"]): c for c in report["checks"]}  # type: ignore[index]
    assert (
        checks[("mdf", "dev", "wordpress siteurl (wordpress)")]["detail"]
        == "https://dev.mdf.example.test"
    )
    assert (
        checks[("seriousletter", "prod", "postgres seriousletter")]["detail"]
        == "migration 3f2a1c9d0b7e"
    )
    port = example_copy[1][18087]
    assert checks[("webstack", "dev", f"http http://127.0.0.1:{port}/")]["ok"] is True


def test_the_wordpress_check_catches_a_prod_url_in_dev(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)
    sql = (
        "UPDATE wp_options SET option_value='https://mdf.example.test' WHERE option_name='siteurl'"
    )
    restore = "UPDATE wp_options SET option_value='https://dev.mdf.example.test' WHERE option_name='siteurl'"
    exec_sql = [
        "exec",
        "mdf",
        "dev",
        "db",
        "--root",
        root,
        "--",
        "sh",
        "-c",
        'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mariadb -uroot wordpress -e "$1"',
        "sh",
    ]
    assert opskit(*exec_sql, sql).returncode == 0
    try:
        run = opskit("health", "mdf", "dev", "--json", "--root", root)
        assert run.returncode == 1
        failing = [c for c in run.json()["checks"] if not c["ok"]]  # type: ignore[index]
        assert [c["check"] for c in failing] == ["wordpress siteurl (wordpress)"]
        assert "expected https://dev.mdf.example.test" in failing[0]["detail"]
    finally:
        assert opskit(*exec_sql, restore).returncode == 0


def test_disk(examples_up) -> None:  # type: ignore[no-untyped-def]
    data = opskit("disk", "--json", "--root", str(examples_up)).json()
    paths = [f["path"] for f in data["folders"]]  # type: ignore[index]
    assert str(examples_up) in paths
    assert all(
        f["bytes"] >= 0 and f["filesystem_size"] > f["filesystem_free"] >= 0
        for f in data["folders"]
    )  # type: ignore[index]
    assert data["docker"]["images_bytes"] > 0  # type: ignore[index]


def test_destroy_and_bring_back(examples_up) -> None:  # type: ignore[no-untyped-def]
    root = str(examples_up)
    assert opskit("destroy", "webstack", "prod", "--yes", "--root", root).returncode == 0
    assert {r["state"] for r in status(root, "webstack", "prod")} == set()
    assert opskit("start", "webstack", "prod", "--root", root).returncode == 0
    assert len(status(root, "webstack", "prod")) == 2
    wait_until(
        lambda: opskit("health", "webstack", "prod", "--root", root).returncode == 0,
        what="webstack prod healthy",
    )


def test_python_api_status(examples_up) -> None:  # type: ignore[no-untyped-def]
    import opskit as api

    with api.Ops(root=str(examples_up)) as ops:
        rows = ops.status("mdf", "dev")
        assert {(p.service, p.state) for p in rows} == {("web", "running"), ("db", "running")}
        assert ops.health("mdf", "dev").ok


def test_status_costs_a_constant_number_of_docker_api_calls(examples_up) -> None:  # type: ignore[no-untyped-def]
    import opskit as api

    def calls(*scope: str) -> tuple[int, int]:
        with api.Ops(root=str(examples_up)) as ops:
            client = ops.host.docker()
            requests: list[str] = []
            client.hooks["response"].append(lambda response, *a, **k: requests.append(response.url))
            rows = ops.status(*scope)
        return len(requests), len(rows)

    one_env, few = calls("webstack", "dev")
    everything, many = calls()
    assert many > few * 5
    assert one_env == everything == 1


def test_shell_on_a_terminal(examples_up) -> None:  # type: ignore[no-untyped-def]
    from test_cli import run_on_terminal_script

    code, output = run_on_terminal_script(
        ["shell", "webstack", "dev", "web", "--root", str(examples_up)],
        [b"echo shell-says-$((6*7))\n", b"exit 3\n"],
    )
    assert "shell-says-42" in output
    assert code == 3


def test_logs_follow_streams_until_ctrl_c(examples_up) -> None:  # type: ignore[no-untyped-def]
    import os
    import select
    import signal
    import sys
    import time

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opskit",
            "logs",
            "webstack",
            "dev",
            "web",
            "-f",
            "--tail",
            "0",
            "--root",
            str(examples_up),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdout is not None
    # The web container logs its healthcheck's request every second (on its stderr,
    # which opskit merges into stdout).
    seen = b""
    deadline = time.monotonic() + 20
    while seen.count(b"\n") < 2 and time.monotonic() < deadline:
        if select.select([process.stdout], [], [], 0.5)[0]:
            seen += os.read(process.stdout.fileno(), 4096)
    assert seen.count(b"response:200") >= 2, seen
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    assert process.wait(timeout=20) == 2
    assert b"Traceback" not in process.stderr.read()  # type: ignore[union-attr]
