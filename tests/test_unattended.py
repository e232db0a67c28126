"""The unattended night (#11): systemd timers, alerts and dead-man pings, the watch.

A local HTTP server on 127.0.0.1 stands in for ntfy and for a healthchecks.io endpoint.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clock import local_time_zone
from conftest import opskit, wait_until
from sink import Sink
from test_schedules import archive, fresh_root
from testroot import NS, use_store

OPSKIT = str(Path(sys.executable).parent / "opskit")


def settings(root: Path, sink: Sink, state: Path, **extra: str) -> None:
    lines = [
        f"state_dir: {state}",
        "notify:",
        f'  urls: ["ntfy://127.0.0.1:{sink.port}/opskit"]',
        "  pings:",
        f'    backup: "http://127.0.0.1:{sink.port}/ping/{{project}}-{{env}}"',
        *(f"{key}: {value}" for key, value in extra.items()),
    ]
    (root / "opskit.yaml").write_text("\n".join(lines) + "\n")


# -- timers --------------------------------------------------------------------------------

TIMED = """\
name: {name}
environments: [dev, prod]
backup: {{dir: {backups}, schedule: "{schedule}", paths: ["{{env}}/data"]}}
{offsite}"""


def test_timers_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for name, schedule in (("daily", "03:30"), ("weekdays", "Mon..Fri *-*-* 22:15:00")):
        (root / name).mkdir(parents=True)
        (root / name / "project.yaml").write_text(
            TIMED.format(
                name=name,
                backups=tmp_path / "b",
                schedule=schedule,
                offsite='offsite: {target: "file:///mnt/copies"}\n' if name == "weekdays" else "",
            )
        )
    units = tmp_path / "units"
    done = subprocess.run(
        [OPSKIT, "--root", str(root), "timers", "--install", "--unit-dir", str(units)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in units.iterdir())
    assert "opskit-backup-daily.timer" in files and "opskit-watch.timer" in files
    assert "opskit-drill-weekdays-prod.service" in files
    daily = (units / "opskit-backup-daily.timer").read_text()
    assert "OnCalendar=*-*-* 03:30:00\n" in daily and "Persistent=true\n" in daily
    weekdays = (units / "opskit-backup-weekdays.timer").read_text()
    assert "OnCalendar=Mon..Fri *-*-* 22:15:00\n" in weekdays  # unchanged
    service = (units / "opskit-backup-daily.service").read_text()
    assert f"ExecStart={OPSKIT} --root {root} backup daily --scheduled\n" in service
    offsite = (units / "opskit-backup-weekdays.service").read_text()  # it has offsite.target
    assert f"ExecStart={OPSKIT} --root {root} backup weekdays --scheduled --offsite\n" in offsite
    assert "Type=oneshot" in service and "IOSchedulingClass=idle" in service
    verify = subprocess.run(
        ["systemd-analyze", "verify", *(str(units / name) for name in files)],
        capture_output=True, text=True, cwd=units,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == "", verify.stderr

    listing = subprocess.run(
        [OPSKIT, "--root", str(root), "timers", "--list", "--json"], capture_output=True, text=True
    )
    rows = {row["timer"]: row for row in json.loads(listing.stdout)}
    assert rows["opskit-backup-daily.timer"]["next"].endswith(("03:30:00 UTC", "03:30:00"))

    shutil.rmtree(root / "weekdays")  # a project that no longer exists
    done = subprocess.run(
        [OPSKIT, "--root", str(root), "timers", "--install", "--remove-stale", "--unit-dir",
         str(units)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    left = sorted(p.name for p in units.iterdir())
    assert not [name for name in left if "weekdays" in name]
    assert "opskit-backup-daily.timer" in left


def test_settings_errors_name_file_line_and_field(tmp_path: Path) -> None:
    (tmp_path / "opskit.yaml").write_text("state_dir: /x\nnotify:\n  pings: {nightly: http://x}\n")
    done = opskit("watch", "--root", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"[error] {tmp_path}/opskit.yaml:3: notify.pings.nightly: unknown key"
    )


# -- scheduled jobs: pings and alerts ------------------------------------------------------

PATHS_ONLY = """\
name: {name}
environments: [dev]
backup:
  dir: {backups}
  paths: ["{folder}"]
  retention: {{keep_daily: 1, keep_weekly: 0, keep_monthly: 0, keep_last: 1}}
"""


@pytest.mark.docker
def test_scheduled_backups_ping_and_alert(tmp_path: Path, sink: Sink, store: str) -> None:
    root = tmp_path / "root"
    (root / "good" / "data").mkdir(parents=True)
    (root / "good" / "data" / "file.txt").write_text("data\n")
    (root / "good" / "project.yaml").write_text(
        PATHS_ONLY.format(name="good", backups=tmp_path / "b", folder="data")
    )
    (root / "bad").mkdir()
    (root / "bad" / "project.yaml").write_text(
        PATHS_ONLY.format(name="bad", backups=tmp_path / "b", folder="gone")
    )
    settings(root, sink, tmp_path / "state")
    use_store(root, store)

    done = opskit("backup", "good", "--scheduled", "--root", str(root))
    assert done.returncode == 0, done.stderr
    assert [path for path, _ in sink.pings()] == ["/ping/good-dev/start", "/ping/good-dev"]
    assert sink.messages() == []  # a success alerts only with notify.successes
    archives = json.loads(opskit("backups", "good", "--json", "--root", str(root)).stdout)
    assert archives["archives"][0]["verified"] == "ok"  # the timer's backup verifies
    first = archives["archives"][0]["name"]
    assert opskit("backup", "good", "--scheduled", "--root", str(root)).returncode == 0
    archives = json.loads(opskit("backups", "good", "--json", "--root", str(root)).stdout)
    assert len(archives["archives"]) == 1 and archives["archives"][0]["name"] != first  # pruned

    sink.clear()
    done = opskit("backup", "bad", "--scheduled", "--root", str(root))
    assert done.returncode == 1
    pings = sink.pings()
    assert [path for path, _ in pings] == ["/ping/bad-dev/start", "/ping/bad-dev/fail"]
    error = done.stderr.strip().splitlines()[-1].removeprefix("[error] ")
    assert error.encode() in pings[1][1]  # the error is the body of /fail
    (message,) = sink.messages()
    assert message["title"] == "opskit: backup of bad dev failed"
    assert message["headers"]["X-Priority"] == "high"  # type: ignore[index]

    sink.clear()
    assert opskit("backup", "bad", "--root", str(root)).returncode == 1  # by hand: no pings
    assert sink.pings() == [] and len(sink.messages()) == 1  # a failed job always alerts


# -- the watch -----------------------------------------------------------------------------

PULSE = """\
name: pulse
environments: [dev]
compose: {{dir: "{{env}}", project_name: "{ns}-pulse-{{env}}"}}
backup: {{dir: {backups}, schedule: "{schedule}", paths: ["{{env}}/site"]}}
"""

PULSE_COMPOSE = """\
services:
  web:
    init: true
    image: opskit-test/web:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    volumes: ["./site:/srv:ro"]
    healthcheck: {test: ["CMD", "cat", "/srv/health.txt"], interval: 1s, timeout: 10s, retries: 1}
"""


@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[Path]:
    """A running one-service project whose backups are due an hour before the test began."""
    root = tmp_path / "root"
    site = root / "pulse" / "dev" / "site"
    site.mkdir(parents=True)
    (site / "health.txt").write_text("ok\n")
    due = (datetime.now().astimezone() - timedelta(hours=1)).strftime("%H:%M")
    (root / "pulse" / "project.yaml").write_text(
        PULSE.format(ns=NS, backups=tmp_path / "b", schedule=due)
    )
    (root / "pulse" / "dev" / "docker-compose.yml").write_text(PULSE_COMPOSE)
    assert opskit("start", "pulse", "dev", "--root", str(root)).returncode == 0
    try:
        yield root
    finally:
        opskit("destroy", "pulse", "dev", "--yes", "--root", str(root))


def _health(root: Path) -> str:
    listing = json.loads(opskit("status", "pulse", "dev", "--json", "--root", str(root)).stdout)
    return str(listing["containers"][0]["health"])


@pytest.mark.docker
def test_the_watch_alerts_once_reminds_and_recovers(pulse: Path, sink: Sink, store: str) -> None:
    from opskit import Ops

    settings(pulse, sink, pulse.parent / "state", remind_hours="6")
    use_store(pulse, store)  # the watch reads the backup's freshness from the store
    assert opskit("backup", "pulse", "dev", "--scheduled", "--root", str(pulse)).returncode == 0
    wait_until(lambda: _health(pulse) == "healthy", 60, 0.5, "healthy")
    start = datetime.now(UTC)

    def watch(minutes: float) -> list[dict[str, object]]:
        sink.clear()
        report = Ops(root=str(pulse)).watch(now=start + timedelta(minutes=minutes))
        return sink.messages() if report is not None else []

    assert watch(0) == []  # all ok from the start: nothing to say
    (pulse / "pulse" / "dev" / "site" / "health.txt").unlink()
    wait_until(lambda: _health(pulse) == "unhealthy", 60, 0.5, "unhealthy")
    (failing,) = watch(1)
    assert "failing" in str(failing["title"]) and "pulse dev container web" in str(
        failing["message"]
    )
    for minute in range(2, 7):
        assert watch(minute) == []  # unchanged: no message every 5 minutes
    (reminder,) = watch(6 * 60 + 2)
    assert "still failing" in str(reminder["title"])
    assert watch(6 * 60 + 3) == []
    (pulse / "pulse" / "dev" / "site" / "health.txt").write_text("ok\n")
    wait_until(lambda: _health(pulse) == "healthy", 60, 0.5, "healthy")
    (recovered,) = watch(6 * 60 + 4)
    assert "recovered" in str(recovered["title"])
    assert recovered["headers"]["X-Tags"] == "white_check_mark"  # type: ignore[index]
    assert watch(6 * 60 + 5) == []
    done = opskit("watch", "--json", "--root", str(pulse))
    assert done.returncode == 0 and json.loads(done.stdout)["ok"] is True


@pytest.mark.docker
def test_a_stale_backup_raises_a_freshness_alert_and_a_fresh_one_clears_it(
    pulse: Path, sink: Sink, store: str
) -> None:
    from opskit import Ops

    settings(pulse, sink, pulse.parent / "state")
    use_store(pulse, store)
    wait_until(lambda: _health(pulse) == "healthy", 60, 0.5, "healthy")
    Ops(root=str(pulse)).watch()
    (failing,) = sink.messages()  # no verified archive
    assert "pulse dev backup freshness: no verified archive" in str(failing["message"])
    done = opskit("watch", "--root", str(pulse))
    assert done.returncode == 1 and "backup freshness" in done.stdout

    sink.clear()
    assert opskit("backup", "pulse", "dev", "--scheduled", "--root", str(pulse)).returncode == 0
    Ops(root=str(pulse)).watch()
    (recovered,) = sink.messages()
    assert "recovered" in str(recovered["title"]) and "backup freshness" in str(
        recovered["message"]
    )

    sink.clear()
    Ops(root=str(pulse)).watch(now=datetime.now(UTC) + timedelta(days=2))  # two nights missed
    (stale,) = sink.messages()
    assert "backup freshness" in str(stale["message"]) and "is late" in str(stale["message"])


@pytest.mark.docker
def test_two_watches_at_once_do_not_send_twice(pulse: Path, sink: Sink) -> None:
    settings(pulse, sink, pulse.parent / "state")
    wait_until(lambda: _health(pulse) == "healthy", 60, 0.5, "healthy")
    (pulse / "pulse" / "dev" / "site" / "health.txt").unlink()
    wait_until(lambda: _health(pulse) == "unhealthy", 60, 0.5, "unhealthy")
    watches = [
        subprocess.Popen([OPSKIT, "watch", "--root", str(pulse)], stdout=subprocess.DEVNULL)
        for _ in range(2)
    ]
    assert [w.wait(timeout=120) for w in watches] == [1, 1]
    assert len(sink.messages()) == 1


@pytest.mark.parametrize(
    ("newest", "now", "late"),
    [
        ("2026-11-27 03:35", "2026-11-28 04:59", False),  # tonight's run is within its grace
        ("2026-11-27 03:35", "2026-11-28 05:00", True),  # a daily 03:30 backup is late at 05:00
        ("2026-11-28 03:41", "2026-11-28 23:00", False),
        ("2026-11-26 03:35", "2026-11-28 04:00", True),  # last night's run never came
        (None, "2026-11-28 12:00", True),
    ],
)
def test_freshness_follows_the_schedule_not_24_hours(
    tmp_path: Path, newest: str | None, now: str, late: bool
) -> None:
    """HH:MM is the server's local time; the test's server runs on UTC."""
    from opskit import Ops
    from opskit.watch import freshness

    with local_time_zone("UTC"):
        root, folder = fresh_root(tmp_path, "03:30", grace=None)
        utc = {"tzinfo": UTC}
        if newest is not None:
            archive(folder, datetime.strptime(newest, "%Y-%m-%d %H:%M").replace(**utc))
        archive(folder, datetime(2026, 11, 28, 4, 0, tzinfo=UTC), verified=False)
        runtime = Ops(root=str(root)).runtime
        (project,) = runtime.projects()
        moment = datetime.strptime(now, "%Y-%m-%d %H:%M").replace(**utc)
        (check,) = freshness(runtime, project, "dev", moment)
        assert check.ok is (not late), check


def test_offsite_freshness_counts_only_copies_read_back_to_the_current_target(
    tmp_path: Path,
) -> None:
    from opskit import Ops
    from opskit.watch import freshness

    with local_time_zone("UTC"):
        target = "offsite: {target: 'file:///mnt/copies'}\n"
        root, folder = fresh_root(tmp_path, "03:30", target, grace=None)
        copy = {"ok": True, "target": "file:///mnt/copies", "time": "2026-11-27T03:50:00+00:00"}
        archive(folder, datetime(2026, 11, 27, 3, 35, tzinfo=UTC), offsite=copy)
        newest = datetime(2026, 11, 28, 3, 35, tzinfo=UTC)
        archive(folder, newest, offsite={**copy, "ok": False})
        runtime = Ops(root=str(root)).runtime
        (project,) = runtime.projects()
        backup, offsite = freshness(runtime, project, "dev", datetime(2026, 11, 28, 12, tzinfo=UTC))
        assert backup.ok and backup.name == "backup freshness"
        assert not offsite.ok and offsite.name == "offsite freshness"  # tonight's copy FAILED
        assert "newest verified 2026-11-27 03:35 UTC" in offsite.detail
        assert "offsite copy due at 2026-11-28 03:30" in offsite.detail
        archive(
            folder,
            datetime(2026, 11, 28, 4, 0, tzinfo=UTC),
            offsite={**copy, "target": "sftp://elsewhere//x"},  # a copy to another target
        )
        _backup, offsite = freshness(
            runtime, project, "dev", datetime(2026, 11, 28, 12, tzinfo=UTC)
        )
        assert not offsite.ok
        (root / "opskit.yaml").write_text("offsite: {target: 'sftp://elsewhere//x'}\n")
        runtime = Ops(root=str(root)).runtime
        _backup, offsite = freshness(
            runtime, project, "dev", datetime(2026, 11, 28, 12, tzinfo=UTC)
        )
        assert offsite.ok, offsite
