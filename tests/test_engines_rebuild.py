"""The rebuild engine's decisions on a fake host: build, start, the containers' gate, then
the newest archive that verifies, and where it stops on each failure."""

from __future__ import annotations

import pytest

from fakeroot import DUMP, DUMPING, LOADING, compose, make_world
from opskit.errors import NotFoundError, OpskitError

OLDER_DUMP = DUMP.replace(b"(1,'ann')", b"(1,'old')")


def with_archives(tmp_path):
    """A world with two prod archives: an older one (OLDER_DUMP) and the newest (DUMP)."""
    world = make_world(tmp_path)
    world.database()
    world.fake.on(DUMPING, stdout=OLDER_DUMP, times=1)
    with world.ops() as ops:
        [older] = ops.backup("shop", "prod")
        older_name = world.backdate(older.name, hours=2)
        [newest] = ops.backup("shop", "prod")
    newest_name = world.backdate(newest.name, hours=1)
    world.fake.calls.clear()
    world.recorder.clear()
    return world, older_name, newest_name


def test_a_rebuild_builds_starts_waits_then_restores_the_newest_archive(tmp_path):
    world, _older, newest = with_archives(tmp_path)
    with world.ops() as ops:
        plan = ops.rebuild("shop", "prod")
    assert plan.archive == newest
    fake = world.fake
    fake.order(compose("build"), compose("up", "-d"), LOADING, ["tar", "--extract"],
               compose("up", "-d"))  # fmt: skip
    assert fake.matching(LOADING)[0].stdin == DUMP
    assert not fake.ran(DUMPING)  # no safety backup of an env being rebuilt
    assert world.recorder.results() == ["ok"]


def test_a_damaged_newest_archive_falls_back_to_the_older_one(tmp_path):
    world, older, newest = with_archives(tmp_path)
    world.fake.write(f"{world.env_dir()}/{newest}/db-db-shop.sql.zst", b"bad")
    with world.ops() as ops:
        plan = ops.rebuild("shop", "prod")
    assert plan.archive == older
    [load] = world.fake.matching(LOADING)
    assert load.stdin == OLDER_DUMP


def test_every_archive_damaged_restores_nothing_after_the_start(tmp_path):
    world, older, newest = with_archives(tmp_path)
    for name in (older, newest):
        world.fake.write(f"{world.env_dir()}/{name}/db-db-shop.sql.zst", b"bad")
    with world.ops() as ops, pytest.raises(NotFoundError, match="every archive failed verify"):
        ops.rebuild("shop", "prod")
    assert not world.fake.ran(LOADING)
    assert world.recorder.results() == ["failed"]


def test_no_archive_refuses_the_rebuild_before_anything_runs(tmp_path):
    world = make_world(tmp_path)
    with world.ops() as ops, pytest.raises(NotFoundError, match="no archive to restore"):
        ops.rebuild("shop", "prod")
    assert not world.fake.ran(compose())
    assert world.recorder.results() == []


def test_archives_that_failed_verify_are_not_candidates(tmp_path):
    world, older, newest = with_archives(tmp_path)
    for name in (older, newest):
        world.fake.write(f"{world.env_dir()}/{name}/verified.json", '{"ok": false}')
    with world.ops() as ops, pytest.raises(NotFoundError, match="all failed verify"):
        ops.rebuild("shop", "prod")
    assert not world.fake.ran(compose())


def test_a_build_that_fails_stops_the_rebuild_before_the_start(tmp_path):
    world, _older, _newest = with_archives(tmp_path)
    world.fake.on(compose("build"), returncode=17, stderr="failed to solve: no such image\n")
    with world.ops() as ops, pytest.raises(OpskitError, match="failed with exit 17"):
        ops.rebuild("shop", "prod")
    assert not world.fake.ran(compose("up"))
    assert not world.fake.ran(LOADING)
    assert world.recorder.results() == ["failed"]


def test_containers_unhealthy_after_the_start_stop_the_rebuild_before_the_restore(tmp_path):
    world, _older, _newest = with_archives(tmp_path)
    db = world.containers["prod-db"]
    db.health, db.health_output = "unhealthy", "mariadb-admin: connect failed"
    with world.ops() as ops, pytest.raises(OpskitError, match="db: healthcheck failed"):
        ops.rebuild("shop", "prod")
    world.fake.order(compose("build"), compose("up", "-d"))
    assert not world.fake.ran(LOADING)


def test_a_restore_that_fails_in_a_rebuild_is_not_rolled_back(tmp_path):
    world, _older, _newest = with_archives(tmp_path)
    world.fake.on(LOADING, returncode=1, stdout=b"opskit-load-status 1\n",
                  stderr="ERROR 1045 (28000): Access denied\n")  # fmt: skip
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.rebuild("shop", "prod")
    assert "Access denied" in str(raised.value)
    assert "put back" not in str(raised.value)
    assert len(world.fake.matching(LOADING)) == 1
    assert world.recorder.results() == ["failed"]
