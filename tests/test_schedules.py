"""Schedules (#18, #19): the watch's freshness for every calendar form systemd accepts,
computed by the test bed's own ``systemd-analyze`` (systemd 252 prints ``Iter. #2:``, newer
ones ``Iteration #2:``); calendars and paths written into unit files safely; the watch's
state folder.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clock import local_time_zone
from conftest import assert_one_error_line, opskit

OPSKIT = str(Path(sys.executable).parent / "opskit")
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
NOW = datetime(2026, 11, 30, 9, 30, tzinfo=UTC)  # a Monday
GRACE = 10  # freshness_grace_minutes of the tests' opskit.yaml

# (schedule, when its timer last fired before NOW, the time before), the server on UTC
FORMS = [
    ("daily", "2026-11-30 00:00", "2026-11-29 00:00"),
    ("Mon..Fri 02:00", "2026-11-30 02:00", "2026-11-27 02:00"),  # Friday's, over the weekend
    ("*-*-* 02,14:15:00", "2026-11-30 02:15", "2026-11-29 14:15"),
    ("hourly", "2026-11-30 09:00", "2026-11-30 08:00"),
    ("*-*-* 03:30:00", "2026-11-30 03:30", "2026-11-29 03:30"),
    ("03:30", "2026-11-30 03:30", "2026-11-29 03:30"),
]

# What newer systemd versions print (255 here), word for word but the wording.
NEWER = """\
  Original form: Mon..Fri 02:00
Normalized form: Mon..Fri *-*-* 02:00:00
    Next elapse: Tue 2026-12-01 02:00:00 CET
       (in UTC): Tue 2026-12-01 01:00:00 UTC
       From now: 16h left
   Iteration #2: Wed 2026-12-02 02:00:00 CET
       (in UTC): Wed 2026-12-02 01:00:00 UTC
       From now: 1 day 16h left
"""
SYSTEMD_252 = """\
  Original form: daily
Normalized form: *-*-* 00:00:00
    Next elapse: Fri 2026-12-04 00:00:00 UTC
       From now: 13h left
       Iter. #2: Sat 2026-12-05 00:00:00 UTC
       From now: 1 day 13h left
"""


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


@pytest.fixture
def utc() -> Iterator[None]:
    """The server's local time is UTC (systemd-analyze reads TZ too)."""
    with local_time_zone("UTC"):
        yield


@pytest.fixture(params=["252", "newer"])
def wording(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The real systemd-analyze, as is (252: ``Iter. #2:``), or with its output in the
    newer wording (``Iteration #2:``) through a wrapper first on PATH."""
    if request.param == "newer":
        bin_dir = tmp_path / "newer-systemd"
        bin_dir.mkdir()
        wrapper = bin_dir / "systemd-analyze"
        wrapper.write_text(
            "#!/bin/sh\n"
            f'out=$("{SYSTEMD_ANALYZE}" "$@") || exit $?\n'
            "printf '%s\\n' \"$out\" | sed 's/Iter\\. #/Iteration #/'\n"
        )
        wrapper.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
        shown = subprocess.run(
            ["systemd-analyze", "calendar", "--iterations=2", "daily"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "Iteration #2:" in shown and "Iter. #2:" not in shown
    return str(request.param)


def fresh_root(
    tmp_path: Path, schedule: str, extra: str = "", grace: int | None = GRACE
) -> tuple[Path, Path]:
    """A root holding project fresh (env dev, backed up on *schedule*) and an opskit.yaml
    of *grace* (None: the default) and *extra*; returns it and dev's backup folder."""
    root, backups = tmp_path / "root", tmp_path / "backups"
    (root / "fresh").mkdir(parents=True)
    (root / "fresh" / "project.yaml").write_text(
        f"name: fresh\nenvironments: [dev]\nbackup: {{dir: {backups}, schedule: {json.dumps(schedule)}}}\n"
    )
    settings = (f"freshness_grace_minutes: {grace}\n" if grace is not None else "") + extra
    if settings:
        (root / "opskit.yaml").write_text(settings)
    return root, backups / "fresh" / "dev"


def archive(
    folder: Path,
    created: datetime,
    verified: bool = True,
    offsite: dict[str, object] | None = None,
) -> None:
    """An archive of fresh dev made at *created*, as the watch reads it: its manifest, its
    verification (unless not *verified*) and, given *offsite*, its offsite state."""
    name = f"fresh-dev-{created:%Y%m%dT%H%M%SZ}"
    (folder / name).mkdir(parents=True)
    manifest = {"format": "opskit-archive/1", "project": "fresh", "environment": "dev",
                "started": created.isoformat(), "components": []}  # fmt: skip
    (folder / name / "manifest.json").write_text(json.dumps(manifest))
    if verified:
        checked = {"ok": True, "time": created.isoformat()}
        (folder / name / "verified.json").write_text(json.dumps(checked))
    if offsite is not None:
        (folder / name / "offsite.json").write_text(json.dumps(offsite))


def freshness_at(root: Path, now: datetime) -> list[object]:
    from opskit import Ops
    from opskit.watch import freshness

    runtime = Ops(root=str(root)).runtime
    (project,) = runtime.projects()
    return list(freshness(runtime, project, "dev", now))


@pytest.mark.parametrize(("schedule", "last", "before"), FORMS)
def test_freshness_follows_every_calendar_form(
    tmp_path: Path, utc: None, wording: str, schedule: str, last: str, before: str
) -> None:
    root, folder = fresh_root(tmp_path, schedule)
    (check,) = freshness_at(root, NOW)
    assert not check.ok and check.name == "backup freshness"  # type: ignore[attr-defined]
    assert f"the backup due at {last} UTC ({schedule}) is late" in check.detail  # type: ignore[attr-defined]

    archive(folder, at(before) + timedelta(minutes=5))  # the run before the last one
    (check,) = freshness_at(root, NOW)
    assert not check.ok, check  # type: ignore[attr-defined]
    assert f"due at {last} UTC" in check.detail  # type: ignore[attr-defined]
    # While the last run is within its grace, the one before still counts.
    (check,) = freshness_at(root, at(last) + timedelta(minutes=GRACE - 1))
    assert check.ok, check  # type: ignore[attr-defined]

    archive(folder, at(last) + timedelta(minutes=5))
    (check,) = freshness_at(root, NOW)
    assert check.ok, check  # type: ignore[attr-defined]


def test_hhmm_and_calendars_are_the_servers_local_time(tmp_path: Path) -> None:
    with local_time_zone("America/New_York"):  # EST in November: UTC-5
        root, _folder = fresh_root(tmp_path, "03:30")
        (check,) = freshness_at(root, NOW)
        assert "due at 2026-11-30 03:30 EST" in check.detail  # type: ignore[attr-defined]
        root, folder = fresh_root(tmp_path / "weekdays", "Mon..Fri 02:00")
        archive(folder, datetime(2026, 11, 27, 7, 5, tzinfo=UTC))  # Friday 02:05 EST
        (check,) = freshness_at(root, datetime(2026, 11, 30, 7, 5, tzinfo=UTC))
        assert check.ok, check  # type: ignore[attr-defined]  # Monday's run is within grace


def test_a_calendar_systemd_cannot_parse_is_a_failing_check_never_a_missing_one(
    tmp_path: Path, utc: None
) -> None:
    root, _folder = fresh_root(
        tmp_path, "Mon..Fry 02:00", extra="offsite: {target: 'file:///mnt/copies'}\n"
    )
    checks = freshness_at(root, NOW)
    assert [c.name for c in checks] == ["backup freshness", "offsite freshness"]  # type: ignore[attr-defined]
    for check in checks:
        assert not check.ok  # type: ignore[attr-defined]
        assert check.detail.startswith("cannot tell when fresh dev's backup was due: ")  # type: ignore[attr-defined]
        assert "Mon..Fry 02:00" in check.detail  # systemd's own words  # type: ignore[attr-defined]


def test_both_wordings_are_read_in_utc() -> None:
    from opskit.timers import elapses

    newer = elapses(NEWER)
    assert [e.utc for e in newer] == [
        datetime(2026, 12, 1, 1, 0, tzinfo=UTC),
        datetime(2026, 12, 2, 1, 0, tzinfo=UTC),
    ]
    assert newer[0].shown == "Tue 2026-12-01 02:00:00 CET"
    old = elapses(SYSTEMD_252)
    assert [e.utc for e in old] == [
        datetime(2026, 12, 4, tzinfo=UTC),
        datetime(2026, 12, 5, tzinfo=UTC),
    ]
    assert elapses("  Original form: 2020-01-01\n    Next elapse: never\n") == []


# -- what reaches a unit file --------------------------------------------------------------


def test_a_newline_in_a_schedule_is_refused_at_file_line_and_field(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "evil").mkdir(parents=True)
    descriptor = root / "evil" / "project.yaml"
    descriptor.write_text(
        "name: evil\nenvironments: [dev]\n"
        'backup: {dir: /srv/b, schedule: "03:00\\nUnit=evil.service", paths: [compose.yaml]}\n'
    )
    done = opskit("timers", "--root", str(root))
    assert_one_error_line(done, f"{descriptor}:3: backup.schedule: ", "must be one line")
    assert "Unit=evil" not in done.stdout

    descriptor.write_text(
        'name: evil\nenvironments: [dev]\nbackup: {dir: /srv/b, schedule: "daily \\\\"}\n'
    )
    assert_one_error_line(opskit("timers", "--root", str(root)), f"{descriptor}:3: backup.schedule")

    descriptor.write_text(
        "name: evil\nenvironments: [dev]\nbackup:\n  dir: /srv/b\n  schedule: Mon..Fry 02:00\n"
    )
    assert_one_error_line(
        opskit("timers", "--root", str(root)),
        f"{descriptor}:5: backup.schedule: 'Mon..Fry 02:00' is not a calendar systemd accepts",
    )


def test_a_newline_in_the_drill_calendar_is_refused_at_file_line_and_field(
    tmp_path: Path,
) -> None:
    settings = tmp_path / "opskit.yaml"
    settings.write_text(
        'remind_hours: 6\ntimers:\n  drill_calendar: "weekly\\nUnit=evil.service"\n'
    )
    assert_one_error_line(
        opskit("timers", "--root", str(tmp_path)),
        f"{settings}:3: timers.drill_calendar: ",
        "must be one line",
    )
    settings.write_text("timers: {drill_calendar: fortnightly}\n")
    assert_one_error_line(
        opskit("timers", "--root", str(tmp_path)),
        f"{settings}:1: timers.drill_calendar: 'fortnightly' is not a calendar systemd accepts",
    )


def test_a_root_with_percent_and_space_round_trips_through_systemd_analyze_verify(
    tmp_path: Path,
) -> None:
    """systemd expands %h (home) and $VAR in ExecStart and splits on blanks: the units must
    carry the root and the program's path so that systemd reads them back unchanged. The
    program sits in such a folder too: verify fails when the path it reads does not exist."""
    root = tmp_path / "r 15%h $HOME"
    (root / "site").mkdir(parents=True)
    (root / "site" / "project.yaml").write_text(
        f'name: site\nenvironments: [dev]\nbackup: {{dir: {tmp_path}/b, schedule: "03:00"}}\n'
    )
    programs = tmp_path / "bin 50%n $USER"
    programs.mkdir()
    (programs / "opskit").symlink_to(OPSKIT)
    units = tmp_path / "units"
    done = subprocess.run(
        [str(programs / "opskit"), "--root", str(root), "timers", "--install", "--unit-dir",
         str(units)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    service = (units / "opskit-backup-site.service").read_text()
    assert f'--root "{tmp_path}/r 15%%h $$HOME" backup site' in service, service
    files = sorted(str(p) for p in units.iterdir())
    verify = subprocess.run(
        ["systemd-analyze", "verify", *files], capture_output=True, text=True, cwd=units
    )
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == "", verify.stderr


def test_exec_start_words_come_back_from_systemd_as_written(tmp_path: Path) -> None:
    """The quoting of an argument, checked by systemd's own parser: the program's path is
    the one word whose reading systemd-analyze verify shows (it must exist)."""
    from opskit.errors import OpskitError
    from opskit.timers import exec_line

    folder = tmp_path / "a 15%h; $c"
    folder.mkdir()
    program = folder / "run"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    unit = tmp_path / "probe.service"
    unit.write_text(f"[Service]\nType=oneshot\nExecStart={exec_line([str(program)])}\n")
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True
    )
    assert "not executable" not in verify.stderr and "special characters" not in verify.stderr
    assert exec_line(["/bin/x", 'a "b" \\ c', "", "50%"]) == '/bin/x "a \\"b\\" \\\\ c" "" 50%%'
    for bad in (["/bin/x", "a\nb"], ["relative/x"], ["/bin/x\\y"]):
        with pytest.raises(OpskitError):
            exec_line(bad)


# -- the watch's state folder --------------------------------------------------------------


def test_a_state_dir_that_cannot_be_made_is_one_error_line(tmp_path: Path) -> None:
    (tmp_path / "opskit.yaml").write_text("state_dir: /proc/1/nope\n")
    assert_one_error_line(
        opskit("watch", "--root", str(tmp_path)),
        "the watch cannot keep its states in /proc/1/nope/watch.sqlite",
        f"state_dir of {tmp_path}/opskit.yaml",
    )


def test_a_read_only_watch_database_is_one_error_line(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (tmp_path / "opskit.yaml").write_text(f"state_dir: {state}\n")
    database = state / "watch.sqlite"
    made = sqlite3.connect(database)
    made.execute("CREATE TABLE other (x)")  # a database file that exists and is valid
    made.commit()
    made.close()
    if subprocess.run(["chattr", "+i", str(database)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (root on ext4 needed)")
    try:
        assert_one_error_line(
            opskit("watch", "--root", str(tmp_path)),
            f"the watch cannot keep its states in {database}",
            "readonly",
        )
    finally:
        subprocess.run(["chattr", "-i", str(database)], check=True)
    database.write_text("not a database\n")
    assert_one_error_line(opskit("watch", "--root", str(tmp_path)), "file is not a database")
