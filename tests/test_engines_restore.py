"""The restore engine's decisions on a fake host: the safety backup, what stops, what is
loaded, the health gate, and the rollback to the safety backup on each kind of failure."""

from __future__ import annotations

import re

import pytest

from fakeroot import DUMP, DUMPING, LOADED, LOADING, compose, make_world
from opskit.archive import ArchiveError
from opskit.errors import Cancelled, OpskitError
from opskit.events import JobFinished

SAFETY_DUMP = DUMP.replace(b"(1,'ann')", b"(1,'bob')")  # the live data at restore time


def backed_up(tmp_path, **options):
    """A world with one prod archive (an hour old) of DUMP; the database now holds
    SAFETY_DUMP, so each load's stdin tells which of the two it loads."""
    world = make_world(tmp_path, **options)
    world.database()
    with world.ops() as ops:
        [archive] = ops.backup("shop", "prod")
    name = world.backdate(archive.name)
    world.fake.on(DUMPING, stdout=SAFETY_DUMP)
    world.fake.calls.clear()
    world.recorder.clear()
    return world, name


def test_a_restore_takes_a_safety_backup_then_stops_loads_starts_and_waits(tmp_path):
    world, name = backed_up(tmp_path)
    uploads = f"{world.root}/shop/prod/uploads"
    media = world.fake.engine.volumes["shop-prod_media"]
    world.fake.write(f"{uploads}/logo.png", b"changed since")
    world.fake.write(f"{uploads}/new.txt", b"added since")
    world.fake.write(f"{media}/cover.jpg", b"changed since")
    with world.ops() as ops:
        _archive, safety = ops.restore("shop", "prod", name)
    fake = world.fake
    fake.order(
        DUMPING,  # the safety backup first
        ["mv", "-T", "--", re.compile(r"\.partial$"), safety.path],
        compose("stop", "web"),
        compose("stop", "worker"),
        LOADING,
        ["tar", "--extract"],
        compose("up", "-d"),
        ["sh", "-c", re.compile("stat -f")],  # the health checks: after the start
    )
    assert not fake.ran(compose("stop", "db"))  # the database keeps running for its load
    [load] = fake.matching(LOADING)
    assert load.stdin == DUMP
    # The files are the archive's again, in the folder and in the volume (its mount point
    # stays, Docker owns it); the safety archive holds what was there before.
    assert fake.listdir(uploads) == ["logo.png"]
    assert fake.read(f"{uploads}/logo.png") == b"\x89PNG prod"
    assert fake.read(f"{media}/cover.jpg") == b"JFIF prod"
    assert [n for n in fake.listdir(f"{world.root}/shop/prod") if n.startswith(".opskit")] == []
    assert [c.key for c in safety.components][1:] == ["path-prod-uploads", "volume-shop-prod_media"]
    assert world.recorder.results() == ["ok"]
    assert {c.state for c in world.containers.values()} == {"running"}


def test_a_failed_load_rolls_back_to_the_safety_backup_in_order(tmp_path):
    world, name = backed_up(tmp_path)
    fake = world.fake
    fake.on(LOADING, times=1, returncode=1, stdout=b"opskit-load-pid 7\nopskit-load-status 1\n",
            stderr="ERROR 1064 (42000) at line 3: You have an error in your SQL syntax\n")  # fmt: skip
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.restore("shop", "prod", name)
    safety = world.recorder.of(JobFinished)[0].details["safety_backup"]
    message = str(raised.value)
    assert message.startswith(f"restore of {name} failed (restoring db-db-shop: mariadb shop in")
    assert "table orders: You have an error in your SQL syntax (line 3)" in message
    assert message.endswith(f"; shop prod was put back from {safety}")
    first, second = fake.order(LOADING, LOADING)
    assert fake.calls[first].stdin == DUMP  # the archive: refused by the database
    assert fake.calls[second].stdin == SAFETY_DUMP  # then the safety backup, loaded again
    fake.order(DUMPING, compose("stop", "web"), LOADING, LOADING, ["tar", "--extract"],
               compose("up", "-d"))  # fmt: skip
    # The paths after the failed database were not touched by the archive: only put back.
    assert len(fake.matching(["tar", "--extract"])) == 2  # uploads and media, once each
    assert world.recorder.results() == ["failed"]
    assert {c.state for c in world.containers.values()} == {"running"}


def test_a_load_that_leaves_rows_missing_is_a_failure_and_rolls_back(tmp_path):
    world, name = backed_up(tmp_path)
    world.fake.on(
        ["docker", "exec", "shop-prod-db-1", "sh", "-c", re.compile("COUNT")],
        times=1,
        stdout="0\t2\n1\t0\n",  # users lost its row
    )
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.restore("shop", "prod", name)
    assert "the load is incomplete: table users has 0 rows, the backup recorded 1" in str(
        raised.value
    )
    assert "was put back from" in str(raised.value)
    assert len(world.fake.matching(LOADING)) == 2


def test_a_load_that_never_reports_its_status_is_incomplete(tmp_path):
    world, name = backed_up(tmp_path)
    world.fake.on(LOADING, times=1, stdout=b"opskit-load-pid 7\n")  # docker exec said 0
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.restore("shop", "prod", name)
    assert "ended without reporting its exit status; the load is incomplete" in str(raised.value)
    assert "was put back from" in str(raised.value)


def test_an_env_that_is_unhealthy_after_the_restore_is_put_back(tmp_path):
    world, name = backed_up(tmp_path)
    web = world.containers["prod-web"]

    starts = []

    def start(call):  # the restored data breaks the web app; the put-back data heals it
        if call.argv[-1] != "-d":
            return  # the safety backup starts its stopped worker again
        starts.append(call)
        broken = len(starts) == 1
        web.health = "unhealthy" if broken else "healthy"
        web.health_output = "curl: (7) Failed to connect" if broken else ""

    world.fake.on(compose("up", "-d"), effect=start)
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.restore("shop", "prod", name)
    message = str(raised.value)
    assert (
        f"restore of {name} failed (waiting until the env is healthy: web: healthcheck " in message
    )
    assert "Failed to connect" in message
    assert "was put back from" in message
    assert len(starts) == 2
    assert web.health == "healthy"


def test_a_rollback_that_fails_too_says_so_and_names_the_safety_archive(tmp_path):
    world, name = backed_up(tmp_path)
    world.fake.on(LOADING, returncode=1, stdout=b"opskit-load-status 1\n",
                  stderr="ERROR 2006 (HY000): MySQL server has gone away\n")  # fmt: skip
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.restore("shop", "prod", name)
    message = str(raised.value)
    safety = world.recorder.of(JobFinished)[0].details["safety_backup"]
    assert f", and so did putting back {world.env_dir()}/{safety} (" in message
    assert "server has gone away" in message
    # Nothing is left half done silently: the safety archive is still there to use by hand.
    assert safety in world.archive_names()


def test_an_interrupted_restore_is_put_back_and_cancelled(tmp_path):
    world, name = backed_up(tmp_path)
    world.fake.on(LOADING, times=1, raises=KeyboardInterrupt())
    with world.ops() as ops, pytest.raises(Cancelled) as raised:
        ops.restore("shop", "prod", name)
    assert str(raised.value).startswith(f"restore of {name} interrupted; shop prod was put back")
    _interrupted, put_back = world.fake.matching(LOADING)
    assert put_back.stdin == SAFETY_DUMP


def test_without_a_safety_backup_a_failure_is_not_put_back(tmp_path):
    world, name = backed_up(tmp_path)
    world.fake.on(LOADING, returncode=1, stdout=b"opskit-load-status 1\n", stderr="ERROR 1 x\n")
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.restore("shop", "prod", name, safety=False)
    assert "put back" not in str(raised.value)
    assert not world.fake.ran(DUMPING)
    assert len(world.fake.matching(LOADING)) == 1


def test_a_damaged_archive_is_refused_before_anything_changes(tmp_path):
    world, name = backed_up(tmp_path)
    world.fake.write(f"{world.env_dir()}/{name}/path-prod-uploads.tar.zst", b"garbage")
    with world.ops() as ops, pytest.raises(ArchiveError) as raised:
        ops.restore("shop", "prod", name)
    assert f"archive {name} is damaged, nothing was restored" in str(raised.value)
    assert "path-prod-uploads" in str(raised.value)
    assert not world.fake.ran(DUMPING)
    assert not world.fake.ran(compose())
    assert not world.fake.ran(LOADING)


def test_an_archive_of_another_env_is_refused(tmp_path):
    world, name = backed_up(tmp_path)
    with world.ops() as ops, pytest.raises(ArchiveError, match="is not one of shop dev"):
        ops.restore("shop", "dev", name)
    assert not world.fake.ran(["docker"])


def test_a_gate_that_cannot_get_fresh_evidence_in_time_refuses_before_any_change(tmp_path):
    world, name = backed_up(tmp_path, timeout=5)
    world.containers["prod-web"].interval = 30  # a healthcheck every 30 s, a 5 s gate
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.restore("shop", "prod", name)
    assert "the healthcheck of web runs every 30 s, longer than the gate's 5 s" in str(raised.value)
    assert not world.fake.ran(DUMPING)
    assert not world.fake.ran(compose())
    assert world.recorder.results() == []  # refused before the job began


def test_a_restore_is_written_to_the_audit_log_with_its_safety_backup(tmp_path):
    world, name = backed_up(tmp_path)
    with world.ops() as ops:
        _archive, safety = ops.restore("shop", "prod", name)
        [entry] = ops.history("shop")
    assert (entry["command"], entry["archive"], entry["safety_backup"]) == (
        "restore",
        name,
        safety.name,
    )
    assert LOADED  # the load answered as MariaDB's script does
