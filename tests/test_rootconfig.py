"""``opskit offsite config``: the root's own configuration in the offsite repository, for a
server that has to come back from nothing (#23). Real restic, a file:// target."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import opskit
from testroot import NS

pytestmark = pytest.mark.docker

SHOP = """\
name: shop
environments: [dev, prod]
compose: {{dir: "{{env}}", project_name: "{ns}-rc-shop-{{env}}", env_file: shop.env}}
backup: {{dir: "{backups}", paths: ["{{env}}/uploads"]}}
"""
COMPOSE = """\
services:
  web:
    image: opskit-test/web:1
    environment: [SITE=${SITE}]
"""


def _root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    for env in ("dev", "prod"):
        folder = root / "shop" / env
        folder.mkdir(parents=True)
        (folder / "compose.yaml").write_text(COMPOSE)
        (folder / "shop.env").write_text(f"SITE=https://{env}.shop.example.test\n")
        (folder / ".env").write_text("COMPOSE_HTTP_TIMEOUT=120\n")
        (folder / "uploads").mkdir()
        (folder / "uploads" / "photo.jpg").write_bytes(b"data, not configuration")
    (root / "shop" / "project.yaml").write_text(SHOP.format(ns=NS, backups=tmp_path / "backups"))
    (root / "opskit.yaml").write_text(
        f"state_dir: {tmp_path / 'state'}\noffsite: {{target: 'file://{tmp_path / 'offsite'}'}}\n"
    )
    return root


def _snapshot_files(tmp_path: Path) -> dict[str, bytes]:
    """The files of the newest configuration backup, read back with restic itself."""
    dumped = subprocess.run(
        ["restic", "--repo", str(tmp_path / "offsite"), "--no-cache", "dump", "latest",
         "/opskit-config.tar"],
        capture_output=True, check=True,
        env={**os.environ, "RESTIC_PASSWORD_FILE": str(tmp_path / "state" / "restic-password")},
    ).stdout  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(dumped)) as tar:
        return {
            "/" + m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_the_roots_configuration_goes_offsite_and_never_a_password(tmp_path: Path) -> None:
    root = _root(tmp_path)
    state = tmp_path / "state"
    assert opskit("offsite", "init", "--root", str(root)).returncode == 0
    (state / "notes.txt").write_text("kept with the state\n")
    watch = sqlite3.connect(state / "watch.sqlite")  # as the watch keeps its state: WAL
    watch.execute("PRAGMA journal_mode=WAL")
    watch.execute("CREATE TABLE checks (key TEXT, ok INTEGER)")
    with watch:
        watch.execute("INSERT INTO checks VALUES ('shop prod container web', 1)")
    first = opskit("offsite", "config", "--root", str(root))
    assert first.returncode == 0, first.stderr
    assert f"file://{tmp_path / 'offsite'}: snapshot " in first.stdout
    sent = opskit("offsite", "config", "--json", "--root", str(root))  # runs.sqlite now too
    assert sent.returncode == 0, sent.stderr
    (copy,) = sent.json()["sent"]  # type: ignore[index]

    files = _snapshot_files(tmp_path)
    expected = {
        str(root / "opskit.yaml"),
        str(root / "shop" / "project.yaml"),
        *(str(root / "shop" / env / name) for env in ("dev", "prod")
          for name in ("compose.yaml", "shop.env", ".env")),
        str(state / "notes.txt"),
    }  # fmt: skip
    assert expected <= set(files), sorted(files)
    assert set(copy["files"]) == set(files)
    assert (
        files[str(root / "shop" / "prod" / "shop.env")] == b"SITE=https://prod.shop.example.test\n"
    )
    assert not [name for name in files if "password" in name], sorted(files)
    assert not [name for name in files if "uploads" in name]
    assert (state / "restic-password").exists()  # it exists: it was left out on purpose
    copied = files[str(state / "watch.sqlite")]  # SQLite's own copy, with what the WAL held
    assert copied.startswith(b"SQLite format 3\x00")
    (tmp_path / "back.sqlite").write_bytes(copied)
    back = sqlite3.connect(tmp_path / "back.sqlite")
    assert back.execute("SELECT key, ok FROM checks").fetchall() == [("shop prod container web", 1)]
    watch.close()

    listed = opskit("offsite", "config", "--list", "--json", "--root", str(root)).json()
    snapshots = listed["targets"][f"file://{tmp_path / 'offsite'}"]  # type: ignore[index]
    assert len(snapshots) == 2 and snapshots[0]["id"].startswith(copy["snapshot"][:8])

    timers = opskit("timers", "--root", str(root))
    assert "offsite config --scheduled" in timers.stdout, timers.stdout


def test_no_offsite_target_is_one_error_line(tmp_path: Path) -> None:
    from conftest import assert_one_error_line

    root = _root(tmp_path)
    (root / "opskit.yaml").write_text(f"state_dir: {tmp_path / 'state'}\n")
    run = opskit("offsite", "config", "--root", str(root))
    assert_one_error_line(run, "no offsite target: the configuration goes where the archives go")
