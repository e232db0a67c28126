"""The promote engine's decisions on a fake host (the rsync promoter, dev -> prod of the
shop in fakeroot): the preview, the snapshot, the move, the rebuild and the health gate,
and the rollback to the snapshot when the new code is not healthy."""

from __future__ import annotations

import re

import pytest

from fakeroot import World, compose, make_world
from opskit.errors import OpskitError

PROMOTE = '\npromote:\n  type: rsync\n  dir: "{env}/code"\n  exclude: [".env"]\n'
CHANGED = ">f.st...... app.py\n>f+++++++++ static/new.css\n"
DOCKERFILE_CHANGED = ">f.st...... Dockerfile\n"

PREVIEW = ["rsync", "--archive", "--dry-run"]
SNAPSHOT = re.compile(r"/shop/prod/\.opskit-promote-snapshot-code/?$")
TAKE_SNAPSHOT = ["rsync", "--checksum", "--", re.compile("prod/code/$"), SNAPSHOT]
MOVE = ["rsync", "--checksum", "--exclude=.env", "--", re.compile("dev/code/$"),
        re.compile("prod/code$")]  # fmt: skip
PUT_BACK = ["rsync", "--checksum", "--", SNAPSHOT, re.compile("prod/code$")]
DROP_SNAPSHOT = ["rm", "-rf", "--", SNAPSHOT]


def promotable(tmp_path, listing: str = CHANGED) -> World:
    """shop with code folders in dev and prod; rsync's preview lists *listing*."""
    world = make_world(tmp_path)
    fake = world.fake
    with open(f"{world.root}/shop/project.yaml", "a") as descriptor:
        descriptor.write(PROMOTE)
    for env in ("dev", "prod"):
        fake.write(f"{world.root}/shop/{env}/code/app.py", f"print('{env}')\n")
    fake.on(PREVIEW, stdout=listing)
    return world


def moves(world: World) -> list[tuple[str, ...]]:
    """The rsync commands that change a folder (the preview's dry run aside)."""
    return [c.argv for c in world.fake.matching(["rsync"]) if "--dry-run" not in c.argv]


def test_a_promotion_snapshots_moves_starts_waits_then_drops_the_snapshot(tmp_path):
    world = promotable(tmp_path)
    with world.ops() as ops:
        report = ops.promote("shop", "dev", "prod")
    assert report.preview.files == ("app.py", "static/new.css")
    assert report.rebuild is None  # no Dockerfile, compose file or build context changed
    world.fake.order(PREVIEW, DROP_SNAPSHOT, TAKE_SNAPSHOT, MOVE, compose("up", "-d"),
                     DROP_SNAPSHOT)  # fmt: skip
    assert not world.fake.ran(compose("build"))
    assert not world.fake.ran(PUT_BACK)
    assert world.recorder.results() == ["ok"]


def test_a_preview_lists_what_would_change_and_runs_nothing(tmp_path):
    world = promotable(tmp_path, DOCKERFILE_CHANGED + CHANGED + "*deleting old.py\n")
    with world.ops() as ops:
        report = ops.promote("shop", "dev", "prod", dry_run=True)
    assert report.dry_run
    assert report.preview.changes == (
        "changed Dockerfile",
        "changed app.py",
        "changed static/new.css",
        "deleted old.py",
    )
    assert report.rebuild == "Dockerfile changed"
    assert [c.argv[0] for c in world.fake.calls] == ["rsync"]  # the preview, nothing else
    assert world.recorder.results() == []
    assert world.fake.read(f"{world.root}/shop/prod/code/app.py") == b"print('prod')\n"


def test_nothing_to_promote_changes_nothing(tmp_path):
    world = promotable(tmp_path, listing="")
    with world.ops() as ops:
        report = ops.promote("shop", "dev", "prod")
    assert report.preview.empty
    assert moves(world) == []
    assert not world.fake.ran(compose())


def test_new_code_that_is_unhealthy_is_rolled_back_to_the_snapshot_in_order(tmp_path):
    world = promotable(tmp_path)
    web = world.containers["prod-web"]
    starts = []

    def start(call):  # the new code breaks the web app; the old code heals it
        starts.append(call)
        web.health = "unhealthy" if len(starts) == 1 else "healthy"
        web.health_output = "ImportError: no module named shop.v2" if len(starts) == 1 else ""

    world.fake.on(compose("up", "-d"), effect=start)
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.promote("shop", "dev", "prod")
    message = str(raised.value)
    assert message.startswith("promotion of shop prod failed (")
    assert "no module named shop.v2" in message
    assert message.endswith("rolled back to working tree, which is healthy")
    world.fake.order(TAKE_SNAPSHOT, MOVE, compose("up", "-d"), PUT_BACK, DROP_SNAPSHOT,
                     compose("up", "-d"))  # fmt: skip
    assert len(starts) == 2
    assert world.recorder.results() == ["rolled back"]


def test_a_failed_rebuild_after_the_move_is_rolled_back_and_rebuilt_from_the_old_code(
    tmp_path,
):
    world = promotable(tmp_path, DOCKERFILE_CHANGED)
    world.fake.on(compose("build"), times=1, returncode=17,
                  stderr="failed to solve: pip install: no matching distribution\n")  # fmt: skip
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.promote("shop", "dev", "prod")
    assert "failed with exit 17" in str(raised.value)
    assert "which is healthy" in str(raised.value)
    fake = world.fake
    fake.order(MOVE, compose("build"), PUT_BACK, compose("build"), compose("up", "-d"))
    assert [c.returncode for c in fake.matching(compose("build"))] == [17, 0]
    # The broken images never started: the only start is the old code's.
    assert len(fake.matching(compose("up", "-d"))) == 1
    assert world.recorder.results() == ["rolled back"]


def test_a_rollback_that_is_unhealthy_too_says_so(tmp_path):
    world = promotable(tmp_path)
    web = world.containers["prod-web"]
    web.health, web.health_output = "unhealthy", "database is down"
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.promote("shop", "dev", "prod")
    message = str(raised.value)
    assert "rolled back to working tree, but that is not healthy either (" in message
    assert message.count("database is down") == 2
    assert world.fake.ran(PUT_BACK)
    assert world.recorder.results() == ["failed"]


def test_a_promotion_that_skips_a_step_is_refused_before_anything_runs(tmp_path):
    world = promotable(tmp_path)
    with world.ops() as ops, pytest.raises(OpskitError, match="one step up the environments"):
        ops.promote("shop", "prod", "dev")
    assert world.fake.calls == []
    assert world.recorder.results() == []


def test_a_missing_source_tree_is_refused_before_anything_changes(tmp_path):
    world = promotable(tmp_path)
    world.fake.run(["rm", "-rf", "--", f"{world.root}/shop/dev/code"])
    world.fake.calls.clear()
    with world.ops() as ops, pytest.raises(OpskitError, match=r"shop dev: .*/code does not exist"):
        ops.promote("shop", "dev", "prod")
    assert moves(world) == []
    assert not world.fake.ran(compose())
