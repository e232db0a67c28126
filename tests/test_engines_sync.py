"""The sync engine's decisions on a fake host: the target's backup first, the stream from
the source's dump client through the rewrite into the target's, and how the target is
put back when the copy fails (prod -> dev of the shop in fakeroot)."""

from __future__ import annotations

import re

import pytest

import opskit
from fakeroot import DUMP, DUMPING, LOADED, World, make_world
from opskit.errors import NotFoundError, OpskitError
from opskit.events import JobFinished
from opskit.plugins import hookimpl
from opskit.testing import plugin_manager

PROD_URL = b"https://shop.example.test"
DEV_URL = b"https://dev.shop.example.test"
# prod's data, with its site URL in it; dev's data as dev had it before the sync.
PROD_DUMP = DUMP.replace(b"(1,'ann')", b"(1,'ann " + PROD_URL + b"/u/1')")
DEV_DUMP = DUMP.replace(b"(1,'ann')", b"(1,'dev " + DEV_URL + b"/u/1')")

DEV_DUMPING = ["docker", "exec", "shop-dev-db-1", "sh", "-c", re.compile("mariadb-dump")]
DEV_LOADING = ["docker", "exec", "-i", "shop-dev-db-1"]
DEV_QUERY = ["docker", "exec", "shop-dev-db-1", "sh", "-c", re.compile("--execute"), "root"]
RSYNC = ["rsync", "--archive"]


def dev_compose(*words: str) -> list[str | re.Pattern[str]]:
    return ["docker", "compose", "--project-name", "shop-dev", *words]


def synced_world(tmp_path) -> World:
    """shop with prod's database answering PROD_DUMP and dev's answering DEV_DUMP, each
    loading as MariaDB's script does and counting the rows the dump holds."""
    world = make_world(tmp_path)
    world.database()
    fake = world.fake
    fake.on(DUMPING, stdout=PROD_DUMP)
    fake.on(DEV_DUMPING, stdout=DEV_DUMP)
    fake.on(DEV_LOADING, stdout=LOADED)
    fake.on([*DEV_QUERY, "shop", re.compile("information_schema")], stdout="orders\nusers\n")
    fake.on([*DEV_QUERY, "shop", re.compile("COUNT")], stdout="0\t2\n1\t1\n")
    return world


def loads(world: World) -> list[bytes]:
    """What each load into dev's database was given, in order."""
    return [call.stdin for call in world.fake.matching(DEV_LOADING)]


def test_a_sync_backs_up_the_target_then_streams_the_rewritten_dump_and_mirrors_folders(
    tmp_path,
):
    world = synced_world(tmp_path)
    with world.ops() as ops:
        report = ops.sync("shop", "prod", "dev")
    fake = world.fake
    fake.order(
        DEV_DUMPING,  # the target's archive first
        ["mv", "-T", "--", re.compile(r"\.partial$"), report.backup],
        dev_compose("stop", "web"),
        dev_compose("stop", "worker"),
        DUMPING,
        DEV_LOADING,
        [*RSYNC, re.compile("prod/uploads/$"), re.compile("dev/uploads/$")],
        [*RSYNC, re.compile("shop-prod_media/_data/$"), re.compile("shop-dev_media/_data/$")],
        dev_compose("up", "-d"),
    )
    assert not fake.ran(dev_compose("stop", "db"))  # the target database takes the load
    assert not fake.ran(["docker", "compose", "--project-name", "shop-prod", "stop"])
    assert loads(world) == [PROD_DUMP.replace(PROD_URL, DEV_URL)]
    assert report.databases[0].replacements == {"users": 1}
    assert world.archive_names("dev") == [report.backup.rpartition("/")[2]]
    assert world.recorder.results() == ["ok"]


def test_a_source_dump_failing_mid_stream_puts_the_target_back_in_order(tmp_path):
    world = synced_world(tmp_path)
    half = PROD_DUMP[: len(PROD_DUMP) // 2]
    world.fake.on(DUMPING, stdout=half, returncode=2, stderr="mariadb-dump: Lost connection\n")
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.sync("shop", "prod", "dev")
    message = str(raised.value)
    [backup] = world.archive_names("dev")
    assert message.startswith("sync from prod failed (")
    assert "Lost connection" in message
    assert message.endswith(f"shop dev was put back from {backup}")
    fake = world.fake
    fake.order(DEV_DUMPING, dev_compose("stop", "web"), DUMPING, DEV_LOADING, DEV_LOADING,
               dev_compose("up", "-d"))  # fmt: skip
    # The half dump went in, then dev's own data from its archive: nothing of prod stays.
    assert loads(world) == [half.replace(PROD_URL, DEV_URL), DEV_DUMP]
    assert not fake.ran(RSYNC)  # the folders after the failed database are not touched
    assert world.fake.read(f"{world.root}/shop/dev/uploads/logo.png") == b"\x89PNG dev"
    [finished] = world.recorder.of(JobFinished)
    assert finished.result == "failed"
    assert {c.state for c in world.containers.values()} == {"running"}


def test_a_source_stream_that_breaks_kills_the_dump_and_puts_the_target_back(tmp_path):
    world = synced_world(tmp_path)
    world.fake.on(DUMPING, stdout=[PROD_DUMP[:30], ConnectionResetError("connection reset")])
    with world.ops() as ops, pytest.raises(OpskitError, match="was put back from"):
        ops.sync("shop", "prod", "dev")
    [dump] = world.fake.matching(DUMPING)
    assert dump.killed
    assert loads(world)[-1] == DEV_DUMP


class Unrewritable:
    """A project's rewrite that meets data it cannot rewrite, part way through."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def feed(self, chunk: bytes) -> bytes:
        raise OpskitError("table users: a serialized value does not parse at byte 12")

    def finish(self) -> bytes:
        return b""


class UnrewritablePlugin:
    @hookimpl(tryfirst=True)
    def opskit_sync_transform(self, context, component):
        return Unrewritable()


def test_a_rewrite_that_cannot_apply_fails_the_sync_and_puts_the_target_back(tmp_path):
    world = synced_world(tmp_path)
    plugins = plugin_manager(world.recorder, UnrewritablePlugin())
    with (
        opskit.Ops(root=world.root, host=world.fake, plugins=plugins) as ops,
        pytest.raises(OpskitError) as raised,
    ):
        ops.sync("shop", "prod", "dev")
    assert "a serialized value does not parse at byte 12" in str(raised.value)
    assert "shop dev was put back from" in str(raised.value)
    # Not a byte of unrewritten prod data reaches dev: what was loaded is dev's own.
    assert all(PROD_URL not in load for load in loads(world))
    assert loads(world)[-1] == DEV_DUMP
    assert world.fake.matching(DUMPING)[0].killed
    assert world.recorder.results() == ["failed"]


def test_a_target_unhealthy_after_the_sync_is_put_back(tmp_path):
    world = synced_world(tmp_path)
    web = world.containers["dev-web"]
    starts = []

    def start(call):  # prod's data breaks dev's web app; dev's own data heals it
        if call.argv[-1] != "-d":
            return  # the backup starts its stopped worker again
        starts.append(call)
        web.health = "unhealthy" if len(starts) == 1 else "healthy"
        web.health_output = "HTTP 500" if len(starts) == 1 else ""

    world.fake.on(dev_compose("up", "-d"), effect=start)
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.sync("shop", "prod", "dev")
    assert "web: healthcheck" in str(raised.value)
    assert "HTTP 500" in str(raised.value)
    assert "was put back from" in str(raised.value)
    assert loads(world) == [PROD_DUMP.replace(PROD_URL, DEV_URL), DEV_DUMP]
    assert len(starts) == 2
    assert web.health == "healthy"


def test_a_failing_rsync_after_the_database_puts_the_database_back_too(tmp_path):
    world = synced_world(tmp_path)
    world.fake.on([*RSYNC, re.compile("shop-prod_media")], returncode=23,
                  stderr="rsync: send_files failed to open \"cover.jpg\": Permission denied\n")  # fmt: skip
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.sync("shop", "prod", "dev")
    assert "Permission denied" in str(raised.value)
    assert "was put back from" in str(raised.value)
    assert loads(world) == [PROD_DUMP.replace(PROD_URL, DEV_URL), DEV_DUMP]
    # The uploads rsync'ed before the failure are put back from the archive as well.
    assert world.fake.read(f"{world.root}/shop/dev/uploads/logo.png") == b"\x89PNG dev"


def test_a_dry_run_reports_and_changes_nothing(tmp_path):
    world = synced_world(tmp_path)
    with world.ops() as ops:
        report = ops.sync("shop", "prod", "dev", dry_run=True)
    fake = world.fake
    assert report.dry_run and report.backup is None
    assert report.databases[0].replacements == {"users": 1}
    assert [(t.name, t.source_rows, t.target_rows) for t in report.databases[0].tables] == [
        ("orders", 2, 2),
        ("users", 1, 1),
    ]
    assert not fake.ran(dev_compose())
    assert not fake.ran(DEV_DUMPING)
    assert not fake.ran(DEV_LOADING)
    assert all("--dry-run" in call.argv for call in fake.matching(RSYNC))
    assert not fake.exists(world.env_dir("dev"))  # not even the backup folder
    assert world.recorder.results() == []


def test_a_direction_the_descriptor_does_not_list_is_refused_before_anything_runs(tmp_path):
    world = synced_world(tmp_path)
    with world.ops() as ops, pytest.raises(OpskitError, match="prod->dev"):
        ops.sync("shop", "dev", "prod")
    assert not world.fake.ran(["docker"])
    assert not world.fake.ran(RSYNC)
    assert world.recorder.results() == []


def test_a_stopped_target_database_is_refused_before_the_backup(tmp_path):
    world = synced_world(tmp_path)
    world.containers["dev-db"].state = "exited"
    with world.ops() as ops, pytest.raises(NotFoundError, match="db container is not running"):
        ops.sync("shop", "prod", "dev")
    assert not world.fake.ran(DEV_DUMPING)
    assert not world.fake.ran(DEV_LOADING)
    assert not world.fake.ran(dev_compose("stop"))
