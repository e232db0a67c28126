"""The backup engine's decisions on a fake host: what it runs, in which order, and what
it leaves behind when a command fails (the unit tier: no Docker)."""

from __future__ import annotations

import re

import pytest

from fakeroot import DUMP, DUMP_ROWS, DUMPING, compose, make_world
from opskit.errors import DockerUnavailable, NotFoundError, OpskitError
from opskit.events import JobFinished
from opskit.locks import LockBusy

LOCK = ["sh", "-c", re.compile("flock")]


def test_a_backup_runs_its_steps_in_order_and_writes_a_complete_archive(tmp_path):
    world = make_world(tmp_path)
    world.database()
    with world.ops() as ops:
        [archive] = ops.backup("shop", "prod")
        assert ops.verify("shop", "prod", archive.name)[0][1] == []
    fake = world.fake
    fake.order(
        LOCK,
        ["mkdir", "-m", "700", "--", re.compile(r"\.partial$")],
        compose("stop", "worker"),
        DUMPING,
        ["tar", "--create"],
        compose("up", "-d", "worker"),
        ["mv", "-T", "--", re.compile(r"\.partial$"), archive.path],
        ["sync", "--", world.env_dir()],
    )
    assert world.archive_names() == [archive.name]
    assert [c.key for c in archive.components] == [
        "db-db-shop",
        "path-prod-uploads",
        "volume-shop-prod_media",
    ]
    assert archive.components[0].details["rows"] == DUMP_ROWS
    assert world.recorder.results() == ["ok", "ok"]  # the backup, the verify
    # The password stays in the container: never in an argv.
    assert not [c for c in fake.calls if any("s3cret" in a for a in c.argv)]


def test_a_dump_failing_mid_stream_leaves_no_archive_and_reports_one_error(tmp_path):
    world = make_world(tmp_path)
    half = DUMP[: len(DUMP) // 2]
    world.fake.on(DUMPING, stdout=half, returncode=2, stderr="mariadb-dump: Lost connection\n")
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.backup("shop", "prod")
    assert str(raised.value) == "database db-db-shop failed: mariadb-dump: Lost connection"
    assert world.archive_names() == []  # neither an archive nor a partial one
    assert world.fake.ran(["rm", "-rf", "--", re.compile(r"\.partial$")])
    [finished] = world.recorder.of(JobFinished)
    assert (finished.result, finished.error) == ("failed", str(raised.value))
    # The lock is released: its holder note is gone and the next backup runs.
    assert not world.fake.exists(f"{world.env_dir()}/.lock.holder")
    world.database()
    with world.ops() as ops:
        assert len(ops.backup("shop", "prod")) == 1


def test_a_dump_stream_that_breaks_kills_the_dump_and_leaves_no_archive(tmp_path):
    world = make_world(tmp_path)
    world.fake.on(DUMPING, stdout=[DUMP[:40], ConnectionResetError("connection reset by peer")])
    with world.ops() as ops, pytest.raises(OpskitError, match="connection reset by peer"):
        ops.backup("shop", "prod")
    [dump] = world.fake.matching(DUMPING)
    assert dump.killed
    assert world.archive_names() == []


def test_a_service_stopped_for_the_backup_is_started_again_when_the_backup_fails(tmp_path):
    world = make_world(tmp_path)
    world.fake.on(DUMPING, returncode=1, stderr="Access denied for user 'root'\n")
    with world.ops() as ops, pytest.raises(OpskitError, match="Access denied"):
        ops.backup("shop", "prod")
    world.fake.order(compose("stop", "worker"), DUMPING, compose("up", "-d", "worker"))
    assert world.containers["prod-worker"].state == "running"
    # Only the service the descriptor names, only in the env backed up.
    assert not world.fake.ran(compose("stop", "web"))
    assert not world.fake.ran(["docker", "compose", "--project-name", "shop-dev"])


def test_a_service_that_was_not_running_is_neither_stopped_nor_started(tmp_path):
    world = make_world(tmp_path)
    world.containers["prod-worker"].state = "exited"
    world.database()
    with world.ops() as ops:
        ops.backup("shop", "prod")
    assert not world.fake.ran(compose("stop"))
    assert not world.fake.ran(compose("up"))
    assert world.containers["prod-worker"].state == "exited"


def test_a_stop_that_fails_refuses_the_backup_and_still_starts_the_service(tmp_path):
    world = make_world(tmp_path)
    world.fake.on(compose("stop", "worker"), returncode=1, stderr="Error: timeout\n")
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.backup("shop", "prod")
    assert str(raised.value) == (
        "docker compose --project-name shop-prod failed with exit 1: Error: timeout"
    )
    assert not world.fake.ran(DUMPING)  # nothing dumped from a half-stopped env
    world.fake.order(compose("stop", "worker"), compose("up", "-d", "worker"))
    assert world.archive_names() == []


def test_a_missing_backup_path_fails_the_backup_and_names_it(tmp_path):
    world = make_world(tmp_path)
    world.database()
    world.fake.run(["rm", "-rf", "--", f"{world.root}/shop/prod/uploads"])
    with world.ops() as ops, pytest.raises(NotFoundError) as raised:
        ops.backup("shop", "prod")
    assert f"backup path {world.root}/shop/prod/uploads does not exist" in str(raised.value)
    assert world.archive_names() == []
    assert world.containers["prod-worker"].state == "running"


def test_a_busy_lock_refuses_the_backup_naming_its_holder(tmp_path):
    world = make_world(tmp_path)
    world.fake.write(f"{world.env_dir()}/.lock.holder", "restore of x into shop prod by ann\n")
    world.fake.on(LOCK, returncode=75)  # flock's --conflict-exit-code: the wait timed out
    with world.ops() as ops, pytest.raises(LockBusy, match="locked by restore of x into shop"):
        ops.backup("shop", "prod")
    assert not world.fake.ran(DUMPING)
    assert not world.fake.ran(compose("stop"))


def test_an_unreachable_docker_engine_fails_the_backup_before_anything_runs(tmp_path):
    world = make_world(tmp_path)
    world.fake.docker_error = "connection refused (is dockerd running?)"
    with world.ops() as ops, pytest.raises(DockerUnavailable, match="dockerd"):
        ops.backup("shop", "prod")
    assert not world.fake.ran(DUMPING)
    assert not world.fake.ran(["mkdir"])


def test_a_nightly_backup_that_does_not_verify_fails_its_job_and_prunes_nothing(tmp_path):
    world = make_world(tmp_path)
    world.database()
    with world.ops() as ops:
        [old] = ops.backup("shop", "prod")
    world.backdate(old.name, hours=48)

    # The archive is damaged between the write and the verify (a failing disk).
    def damage(call):
        for name in world.archive_names():
            if not name.startswith("."):
                path = f"{world.env_dir()}/{name}/db-db-shop.sql.zst"
                if world.fake.exists(path):
                    world.fake.write(path, b"not zstd")

    world.fake.on(["sync", "--", world.env_dir()], effect=damage)
    with world.ops() as ops, pytest.raises(OpskitError, match="does not verify"):
        ops.backup("shop", "prod", verify_and_prune=True)
    assert not world.fake.ran(
        ["mv", "-T", "--", re.compile(r"/shop-prod-\d"), re.compile(r"\.removing$")]
    )
    assert len(world.archive_names()) == 2
    assert world.recorder.results()[-1] == "failed"
