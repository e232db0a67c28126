"""``opskit backups migrate`` (#22): folder archives moved into the root's restic store,
each verified there before its folder goes; a migration cut short is finished by the next."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import assert_one_error_line, opskit, wait_until
from opskit import Ops
from test_interrupt import tree, write_cut
from test_store import archives, cut_root, snapshots

MANIFEST = {
    "format": "opskit-archive/1",
    "project": "cut",
    "environment": "dev",
    "components": [
        {
            "key": "path-dev-data",
            "kind": "path",
            "file": "path-dev-data.tar.zst",
            "raw_bytes": 10240,
            "raw_sha256": "0" * 64,
            "stored_bytes": 2048,
            "sha256": "1" * 64,
            "details": {},
        }
    ],
}


def test_the_dry_run_lists_the_folder_archives_oldest_first_with_sizes(tmp_path: Path) -> None:
    write_cut(tmp_path, "restic")
    env = tmp_path / "backups" / "cut" / "dev"
    names = ["cut-dev-20261202T030000Z", "cut-dev-20261201T030000Z"]
    for name in names:
        (env / name).mkdir(parents=True)
        (env / name / "manifest.json").write_text(json.dumps(MANIFEST))
    run = opskit("backups", "migrate", "cut", "--dry-run", "--json", "--root", str(tmp_path))
    assert run.returncode == 0, run.stderr
    (found,) = run.json()["envs"]  # type: ignore[index]
    assert found["environment"] == "dev"
    assert [(a["name"], a["size"], a["result"]) for a in found["archives"]] == [
        (names[1], 2048, "would migrate"),
        (names[0], 2048, "would migrate"),
    ]
    assert sorted(p.name for p in env.iterdir()) == sorted(names)  # nothing moved
    assert not (tmp_path / "backups" / ".restic").exists()
    # The listing is still ``backups [PROJECT [ENV]]``, beside its subcommand.
    listed = opskit("backups", "cut", "dev", "--json", "--root", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    assert [a["name"] for a in listed.json()["archives"]] == names  # type: ignore[index]


def test_a_folder_store_is_refused_with_one_line_saying_what_to_set(tmp_path: Path) -> None:
    write_cut(tmp_path, "folder")
    for extra in ([], ["--dry-run"]):
        run = opskit("backups", "migrate", "cut", "dev", *extra, "--root", str(tmp_path))
        assert_one_error_line(run, "backup.store is folder", "set backup.store: restic")
    assert_one_error_line(
        opskit("backups", "migrate", "cut", "prod", "--root", str(tmp_path)), "prod"
    )


# Not run once per store (no ``store`` fixture): a migration moves folder archives into
# the restic store, so the test has both stores by nature.
@pytest.mark.docker
def test_folder_archives_migrate_verified_restore_identically_and_a_cut_migration_finishes(
    tmp_path: Path,
) -> None:
    root = cut_root(tmp_path, "folder", files=3, size=1 << 18)
    data, env = root / "cut" / "dev" / "data", root / "backups" / "cut" / "dev"
    args = ["--root", str(root)]
    assert opskit("start", "cut", "dev", *args).returncode == 0
    try:
        wait_until(lambda: opskit("health", "cut", "dev", *args).returncode == 0, 60)
        first_tree = tree(data)
        made = []
        for version in (2, 3, 4):
            run = opskit("backup", "cut", "dev", *args)
            assert run.returncode == 0, run.stderr
            made.append(Path(run.stdout.strip()))
            (data / "index.html").write_text(f"version {version}\n")
        oldest, middle, newest = made
        (oldest / "drill.json").write_text('{"ok": true, "time": "2026-12-01T03:00:00+00:00"}\n')
        # The middle archive's component is damaged: it stays a folder, the others move.
        (component,) = middle.glob("*.tar.zst")
        good = component.read_bytes()
        component.write_bytes(good[:100] + bytes([good[100] ^ 0xFF]) + good[101:])
        yaml = root / "cut" / "project.yaml"
        yaml.write_text(yaml.read_text().replace("store: folder", "store: restic"))

        run = opskit("backups", "migrate", "cut", *args)
        assert run.returncode == 1
        errors = [line for line in run.stderr.splitlines() if line.startswith("[error]")]
        assert len(errors) == 1 and errors[0].startswith(f"[error] {middle.name} stays a folder")
        listed = {a["name"]: a for a in archives(root)}
        assert {n: a["store"] for n, a in listed.items()} == {
            oldest.name: "restic",
            middle.name: "folder",
            newest.name: "restic",
        }
        assert listed[oldest.name]["verified"] == "ok"  # verified from the store
        assert listed[oldest.name]["drilled"] == "ok"  # its state carried over
        assert sorted(p.name for p in env.glob("cut-dev-*")) == [middle.name]
        named = {t for s in snapshots(root) for t in s["tags"] if t.startswith("archive=")}
        assert named == {f"archive={oldest.name}", f"archive={newest.name}"}  # none half-copied

        # Killed between the copy and the removal of its folder: both there; listing
        # refuses and says what to run, and the next migration finishes the job.
        component.write_bytes(good)
        with Ops(root=str(root)) as ops:
            store = ops.backup_engine().store(ops.project("cut"), "dev")
            folder = next(a for a in store.folders.archives() if a.name == middle.name)
            store.copy_in(folder)  # type: ignore[union-attr]
        assert_one_error_line(
            opskit("backups", "cut", "dev", *args), middle.name, "backups migrate cut dev"
        )
        # A store copy whose content is not the folder's: neither is removed.
        manifest = middle / "manifest.json"
        kept = manifest.read_text()
        digest = json.loads(kept)["components"][0]["raw_sha256"]
        manifest.write_text(kept.replace(digest, "0" * 64))
        refused = opskit("backups", "migrate", "cut", "dev", *args)
        assert_one_error_line(refused, middle.name, "another archive of that name")
        assert manifest.exists()
        manifest.write_text(kept)
        again = opskit("backups", "migrate", "cut", "dev", "--json", *args)
        assert again.returncode == 0, again.stderr
        (found,) = again.json()["envs"]  # type: ignore[index]
        assert [(a["name"], a["result"]) for a in found["archives"]] == [(middle.name, "migrated")]
        assert [a["store"] for a in archives(root)] == ["restic"] * 3
        assert not list(env.glob("cut-dev-*")) and not list(env.glob(".cut-dev-*"))
        assert opskit("verify", "cut", "dev", *args).returncode == 0

        run = opskit("restore", "cut", "dev", "--name", oldest.name, "--yes", *args)
        assert run.returncode == 0, run.stderr
        assert tree(data) == first_tree
        history = opskit("history", "cut", "--json", *args).json()
        moves = [e for e in history if e["command"] == "migrate"]  # type: ignore[union-attr]
        assert [(e["result"], e["migrated"]) for e in moves] == [
            ("failed", [oldest.name, newest.name]),
            ("failed", []),  # the store's copy differed
            ("ok", [middle.name]),
        ]
    finally:
        opskit("destroy", "cut", "dev", "--yes", *args)
