"""The drill engine's decisions on a fake host: a throw-away server beside the env, the
archive loaded and counted there, files extracted to a scratch folder, everything removed
afterwards, and each failure recorded as a fault, never as a missing check."""

from __future__ import annotations

import json
import os
import re
import socket

import pytest

from fakeroot import DRILL_SERVER, DUMP, LOADING, client, compose, make_world
from opskit.errors import NotFoundError
from opskit.events import JobFinished

DRILL = client(DRILL_SERVER)


def backed_up(tmp_path):
    world = make_world(tmp_path)
    world.database()
    with world.ops() as ops:
        [archive] = ops.backup("shop", "prod")
    world.fake.calls.clear()
    world.recorder.clear()
    return world, archive.name


def test_a_drill_loads_the_archive_into_a_throw_away_server_and_removes_it(tmp_path):
    world, _name = backed_up(tmp_path)
    world.database(container=DRILL_SERVER)
    live_data = {"Type": "volume", "Name": "shop-prod_db", "Destination": "/var/lib/mysql"}
    world.containers["prod-db"].mounts = [{**live_data, "RW": True}]
    with world.ops() as ops:
        result = ops.drill("shop", "prod")
        [shown] = ops.backups("shop", "prod")
    assert (result.ok, result.faults) == (True, ())
    assert result.checked == ("db-db-shop", "path-prod-uploads", "volume-shop-prod_media")
    assert shown.drill_state == "ok"
    fake = world.fake
    fake.order(
        ["docker", "run", "--detach", "--name", DRILL_SERVER, "--network", "none"],
        DRILL["load"],
        DRILL["counting"],
        ["tar", "--extract"],
        ["docker", "rm", "--force", "--volumes"],
        ["docker", "volume", "rm", "--force"],
    )
    [run] = fake.matching(["docker", "run"])
    assert "s3cret" not in " ".join(run.argv)  # the password travels in the environment
    assert "MARIADB_ROOT_PASSWORD" in run.env and run.env["MARIADB_ROOT_PASSWORD"] != "s3cret"
    assert run.argv[run.argv.index("--") + 1] == "opskit-test:fake"  # the live db's image
    [mount] = [run.argv[i + 1] for i, word in enumerate(run.argv) if word == "--mount"]
    assert mount.startswith("type=volume,source=opskit-drill-")  # a fresh volume of its own
    assert mount.endswith(",target=/var/lib/mysql") and "shop-prod_db" not in mount
    assert fake.matching(DRILL["load"])[0].stdin == DUMP
    # The live env is never touched, and nothing of the drill is left.
    assert not fake.ran(LOADING)
    assert not fake.ran(compose())
    assert [c.name for c in fake.engine.containers_ if c.name.startswith("opskit-drill")] == []
    assert fake.engine.volume_labels == {}
    assert [n for n in world.archive_names() if n.startswith(".opskit-drill")] == []
    assert world.recorder.results() == ["ok"]


def test_a_load_that_fails_in_the_drill_is_a_fault_and_everything_is_removed(tmp_path):
    world, _name = backed_up(tmp_path)
    world.database(container=DRILL_SERVER)
    world.fake.on(DRILL["load"], returncode=1, stdout=b"opskit-load-status 1\n",
                  stderr="ERROR 1118 (42000) at line 2: Row size too large\n")  # fmt: skip
    with world.ops() as ops:
        result = ops.drill("shop", "prod")
        [shown] = ops.backups("shop", "prod")
    assert not result.ok
    [fault] = result.faults
    assert fault.startswith("db-db-shop: mariadb shop in opskit-drill-")
    assert "Row size too large" in fault
    assert result.checked == ("path-prod-uploads", "volume-shop-prod_media")  # still drilled
    assert shown.drill_state == "FAILED"
    assert world.fake.ran(["docker", "rm", "--force"])
    assert [c.name for c in world.fake.engine.containers_ if "drill" in c.name] == []
    [finished] = world.recorder.of(JobFinished)
    assert finished.result == "failed" and "Row size too large" in finished.error


def test_rows_missing_after_the_drills_load_are_a_fault(tmp_path):
    world, _name = backed_up(tmp_path)
    world.database(container=DRILL_SERVER, rows={"orders": 2, "users": 0})
    with world.ops() as ops:
        result = ops.drill("shop", "prod")
    assert result.faults == (
        "db-db-shop: mariadb shop in "
        + re.search(r"in (opskit-drill-\S+):", result.faults[0]).group(1)
        + ": the load is incomplete: table users has 0 rows, the backup recorded 1",
    )


def test_a_server_that_does_not_start_is_a_fault_naming_its_last_log_line(tmp_path):
    world, _name = backed_up(tmp_path)
    world.fake.on(
        ["docker", "exec", DRILL_SERVER, "sh", "-c", re.compile("ping")], returncode=1
    )  # not ready
    world.fake.on(["docker", "inspect", "-f"], stdout="exited\n")
    world.fake.on(["docker", "logs"], stdout="[ERROR] InnoDB: out of memory\n")
    with world.ops() as ops:
        result = ops.drill("shop", "prod")
    assert result.faults == (
        "db-db-shop: the throw-away mariadb server did not start: [ERROR] InnoDB: out of memory",
    )
    assert not world.fake.ran(DRILL["load"])
    assert world.fake.ran(["docker", "rm", "--force"])


def test_files_that_do_not_match_the_record_are_a_fault(tmp_path):
    world, name = backed_up(tmp_path)
    world.database(container=DRILL_SERVER)
    manifest = f"{world.env_dir()}/{name}/manifest.json"
    data = json.loads(world.fake.read(manifest))
    data["components"][1]["details"]["files"] = 5  # the uploads held five files
    world.fake.write(manifest, json.dumps(data))
    with world.ops() as ops:
        result = ops.drill("shop", "prod")
    assert result.faults == (
        "path-prod-uploads: extracted 1 files of 9 bytes, the backup recorded 5 files of 9 bytes",
    )


def test_a_damaged_archive_is_a_fault_and_starts_no_server(tmp_path):
    world, name = backed_up(tmp_path)
    world.fake.write(f"{world.env_dir()}/{name}/volume-shop-prod_media.tar.zst", b"junk")
    with world.ops() as ops:
        result = ops.drill("shop", "prod")
    assert not result.ok
    assert result.faults[0].startswith("volume-shop-prod_media: ")
    assert result.checked == ()
    assert not world.fake.ran(["docker", "run"])


def test_leftovers_of_a_drill_whose_process_is_gone_are_removed_first(tmp_path):
    world, _name = backed_up(tmp_path)
    world.database(container=DRILL_SERVER)
    here = socket.gethostname()
    dead = f"{here}-999999999-abcd1234"  # no such pid
    alive = f"{here}-{os.getpid()}-beef0000"  # a drill still running in this process
    engine = world.fake.engine
    engine.cli(["run", "--detach", "--name", "opskit-drill-old", "--label",
                f"opskit.drill={dead}", "--", "img"])  # fmt: skip
    engine.cli(["volume", "create", "--label", f"opskit.drill={dead}", "opskit-drill-old-0"])
    engine.cli(["run", "--detach", "--name", "opskit-drill-busy", "--label",
                f"opskit.drill={alive}", "--", "img"])  # fmt: skip
    world.fake.run(["mkdir", "--", f"{world.env_dir()}/.opskit-drill-{dead}"])
    with world.ops() as ops:
        assert ops.drill("shop", "prod").ok
    names = [c.name for c in engine.containers_]
    assert "opskit-drill-old" not in names
    assert "opskit-drill-busy" in names  # another drill's, still running
    assert "opskit-drill-old-0" not in engine.volumes
    assert not world.fake.exists(f"{world.env_dir()}/.opskit-drill-{dead}")


def test_a_drill_without_a_database_container_is_a_fault_not_a_skip(tmp_path):
    world, _name = backed_up(tmp_path)
    world.fake.engine.containers_.remove(world.containers["prod-db"])
    with world.ops() as ops:
        result = ops.drill("shop", "prod")
    assert not result.ok
    assert result.faults == ("db-db-shop: shop prod: no container for service 'db'",)


def test_a_drill_of_an_env_without_archives_is_refused(tmp_path):
    world = make_world(tmp_path)
    with world.ops() as ops, pytest.raises(NotFoundError, match="no archives in"):
        ops.drill("shop", "prod")
