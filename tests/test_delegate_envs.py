"""A project that keeps its own CLI per env (#18): ``{env}`` in ``delegate.cli``, as the
seriousletter layout has (``{env}/code/scripts/...``), and what opskit does and does not
offer for backups it never sees.

Each env's CLI is docs/examples/delegate-cli.sh, with its sync and promote placeholders
writing which CLI ran into ``ran.log``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import opskit
from sink import Sink

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "delegate-cli.sh"
PLACEHOLDERS = {
    'project_sync() { warn "project_sync is a placeholder: nothing copied from $1 to $2"; }': (
        "project_sync() { printf '%s sync %s %s\\n' \"$0\" \"$1\" \"$2\" >> \"$OPSKIT_ROOT/ran.log\"; }"
    ),
    'project_promote() { warn "project_promote is a placeholder: nothing promoted from $1 to $2"; }': (
        "project_promote() { printf '%s promote %s %s\\n' \"$0\" \"$1\" \"$2\" >> \"$OPSKIT_ROOT/ran.log\"; }"
    ),
}  # fmt: skip


def legacy_root(tmp_path: Path, sink: Sink | None = None) -> Path:
    """A root with ``legacy``: envs dev, int, prod, each with its data and its own CLI at
    ``{env}/code/scripts/cli.sh``; delegates everything, backups on a schedule."""
    root = tmp_path / "root"
    folder = root / "legacy"
    script = EXAMPLE.read_text()
    for old, new in PLACEHOLDERS.items():
        assert old in script
        script = script.replace(old, new)
    for env in ("dev", "int", "prod"):
        (folder / env / "data").mkdir(parents=True)
        (folder / env / "data" / "file.txt").write_text(f"{env} data\n")
        cli = folder / env / "code" / "scripts" / "cli.sh"
        cli.parent.mkdir(parents=True)
        cli.write_text(script)
        cli.chmod(0o755)
    (folder / "project.yaml").write_text(
        "name: legacy\nenvironments: [dev, int, prod]\n"
        'delegate: {cli: "{env}/code/scripts/cli.sh"}\n'
        f'backup: {{dir: {tmp_path}/backups, schedule: "02:00"}}\n'
    )
    if sink is not None:
        (root / "opskit.yaml").write_text(
            f"state_dir: {tmp_path}/state\nnotify:\n"
            f'  urls: ["ntfy://127.0.0.1:{sink.port}/opskit"]\n'
            f'  pings: {{backup: "http://127.0.0.1:{sink.port}/ping/{{project}}-{{env}}"}}\n'
        )
    return root


def ran(root: Path) -> list[str]:
    log = root / "ran.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [line.replace(str(root / "legacy") + "/", "") for line in lines]


def test_env_in_the_cli_path_is_the_env_that_sync_and_promote_change(tmp_path: Path) -> None:
    root = legacy_root(tmp_path)
    done = opskit("sync", "legacy", "--from", "prod", "--to", "dev", "--yes", "--root", str(root))
    assert done.returncode == 0, done.stderr
    assert ran(root) == ["dev/code/scripts/cli.sh sync prod dev"]
    done = opskit("promote", "legacy", "--from", "dev", "--to", "int", "--yes", "--root", str(root))
    assert done.returncode == 0, done.stderr
    assert ran(root)[1:] == ["int/code/scripts/cli.sh promote dev int"]


def test_a_cli_per_env_backs_up_each_env_itself(tmp_path: Path) -> None:
    root = legacy_root(tmp_path)
    done = opskit("backup", "legacy", "--root", str(root))
    assert done.returncode == 0, done.stderr
    paths = done.stdout.splitlines()
    assert [Path(p).parent.name for p in paths] == ["dev", "int", "prod"]
    assert all(Path(p).is_file() for p in paths)


def test_scheduled_delegated_backups_ping_and_alert_per_env(tmp_path: Path, sink: Sink) -> None:
    root = legacy_root(tmp_path, sink)
    (root / "legacy" / "prod" / "data" / "file.txt").unlink()
    (root / "legacy" / "prod" / "data").rmdir()  # prod's delegate fails: nothing to back up
    done = opskit("backup", "legacy", "--scheduled", "--root", str(root))
    assert done.returncode == 1
    assert [path for path, _body in sink.pings()] == [
        "/ping/legacy-dev/start", "/ping/legacy-dev",
        "/ping/legacy-int/start", "/ping/legacy-int",
        "/ping/legacy-prod/start", "/ping/legacy-prod/fail",
    ]  # fmt: skip
    (alert,) = sink.messages()
    assert alert["title"] == "opskit: backup of legacy prod failed"
    assert "error: legacy: its own CLI failed at backup (exit 1)" in str(alert["message"])


def test_no_freshness_check_and_no_drill_timer_for_backups_opskit_never_sees(
    tmp_path: Path,
) -> None:
    from opskit import Ops
    from opskit.watch import freshness

    root = legacy_root(tmp_path)
    runtime = Ops(root=str(root)).runtime
    (project,) = runtime.projects()
    now = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)
    assert [freshness(runtime, project, env, now) for env in project.environments] == [[], [], []]
    units = opskit("timers", "--json", "--root", str(root)).json()["units"]  # type: ignore[index]
    assert "opskit-backup-legacy.timer" in units  # the timer runs the project's own CLI
    assert "backup legacy --scheduled" in units["opskit-backup-legacy.service"]
    assert not [name for name in units if name.startswith("opskit-drill-legacy")]


@pytest.mark.docker
def test_doctor_says_what_opskit_does_not_do_for_delegated_backups(
    tmp_path: Path, sink: Sink
) -> None:
    root = legacy_root(tmp_path)
    report = opskit("doctor", "--json", "--root", str(root)).json()
    found = [f for f in report["findings"] if f["project"] == "legacy"]  # type: ignore[index]
    (delegated,) = [f for f in found if "delegated to its own CLI" in f["message"]]
    assert delegated["severity"] == "warning"
    assert "neither checks their freshness nor drills them" in delegated["message"]
    assert "notify.pings.backup" in delegated["message"]
    assert not [f for f in found if "delegate.cli" in f["message"]]  # every env's CLI exists
    assert not [f for f in found if "no backup section" in f["message"]]

    root = legacy_root(tmp_path / "pinged", sink)
    report = opskit("doctor", "--json", "--root", str(root)).json()
    (delegated,) = [
        f
        for f in report["findings"]  # type: ignore[index]
        if f["project"] == "legacy" and "delegated to its own CLI" in f["message"]
    ]
    assert delegated["severity"] == "note"
    assert "notify.pings.backup watches the runs" in delegated["message"]
