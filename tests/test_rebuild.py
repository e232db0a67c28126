"""``opskit rebuild``: disaster recovery of an env whose containers and volumes are gone."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import archive_name, opskit, wait_healthy
from testroot import compose_container, ns, use_store

pytestmark = pytest.mark.docker


def checksum(env: str) -> str:
    done = subprocess.run(
        ["docker", "exec", compose_container(f"wp-{env}", "db"), "mariadb", "--default-character-set=utf8mb4", "--batch", "wordpress", "-e",
         "CHECKSUM TABLE wp_options, wp_posts EXTENDED"],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    return done.stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rebuild_after_containers_and_volumes_are_gone(wp_root: Path, store: str) -> None:
    root = str(use_store(wp_root, store))
    wait_healthy(wp_root, "wp", "int")  # the tests before may have left it restarting
    # a row of each store's run: the first run's rebuild brought its own back
    inserted = subprocess.run(
        ["docker", "exec", compose_container("wp-int", "db"), "mariadb", "wordpress", "-e",
         f"INSERT INTO wp_options (option_name, option_value) VALUES ('before_disaster_{store}', 'kept')"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert inserted.returncode == 0, inserted.stderr
    media = Path(f"/var/lib/docker/volumes/{ns('wp-int')}_media/_data/poster.bin")
    media.write_bytes(b"\x00\x01poster" * 5000)
    uploads = wp_root / "wp" / "int" / "uploads"
    expected = (checksum("int"), digest(media), sorted(p.name for p in uploads.rglob("*")))
    run = opskit("--root", root, "backup", "wp", "int")
    assert run.returncode == 0, run.stderr
    archive = archive_name(run.stdout)

    plan = opskit("--root", root, "rebuild", "wp", "int", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert f"restore {archive}" in plan.stdout and " build" in plan.stdout

    run = opskit("--root", root, "destroy", "wp", "int", "--volumes", "--yes")
    assert run.returncode == 0, run.stderr
    shutil.rmtree(uploads)
    assert not media.exists()

    run = opskit("--root", root, "rebuild", "wp", "int", "--yes", timeout=400)
    assert run.returncode == 0, run.stderr
    assert f"rebuilt wp int from {archive}" in run.stdout
    for phase in ("phase 1/4", "phase 2/4", "phase 3/4", "phase 4/4: restoring"):
        assert phase in run.stderr
    assert (checksum("int"), digest(media), sorted(p.name for p in uploads.rglob("*"))) == expected
    assert opskit("--root", root, "health", "wp", "int").returncode == 0
    entry = opskit("--root", root, "history", "wp", "--json").json()[-1]  # type: ignore[index]
    assert entry["command"] == "rebuild" and entry["archive"] == archive
    assert entry["result"] == "ok"
