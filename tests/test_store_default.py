"""Which store a project's archives go to when ``backup.store`` is not set (#22): the
deduplicated store for a new root, folders for a root that already holds folder archives."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fakeroot import World, make_world
from opskit.store import folder_archives, store_kind

STAMP = "20261201T033000Z"


def unset(tmp_path: Path) -> World:
    """shop on a fake host, its descriptor naming no store."""
    world = make_world(tmp_path)
    path = f"{world.root}/shop/project.yaml"
    text = world.fake.read(path).decode()
    world.fake.write(path, text.replace("  store: folder  # the fake host runs no restic\n", ""))
    world.fake.write(f"{world.root}/opskit.yaml", f"state_dir: {world.fake.path('state')}\n")
    return world


def folder_archive(world: World, project: str, env: str, name: str) -> None:
    world.fake.write(f"{world.backups}/{project}/{env}/{name}/manifest.json", "{}")


def kind(world: World) -> str:
    from opskit.store import kind_of

    with world.ops() as ops:
        return kind_of(ops.runtime, ops.runtime.project("shop"))


def test_a_new_root_gets_the_store(tmp_path: Path) -> None:
    world = unset(tmp_path)
    assert kind(world) == "restic"  # no backup folder at all yet
    world.fake.write(f"{world.backups}/.keep", "")
    assert kind(world) == "restic"  # a backup folder with no archive in it


def test_a_root_with_folder_archives_stays_on_folders_until_a_store_exists(
    tmp_path: Path,
) -> None:
    world = unset(tmp_path)
    # Another project's archive counts too: the default is the root's.
    folder_archive(world, "wiki", "prod", f"wiki-prod-{STAMP}")
    assert kind(world) == "folder"
    world.fake.write(f"{world.backups}/.restic/config", "")  # a migration made the store
    assert kind(world) == "restic"


def test_what_is_not_a_folder_archive_does_not_count(tmp_path: Path) -> None:
    world = unset(tmp_path)
    fake = world.fake
    fake.write(f"{world.backups}/shop/prod/.{f'shop-prod-{STAMP}'}.partial/manifest.json", "{}")
    fake.write(f"{world.backups}/shop/prod/.state/shop-prod-{STAMP}/manifest.json", "{}")
    fake.write(f"{world.backups}/shop/prod/notes/manifest.json", "{}")  # not an archive name
    fake.write(f"{world.backups}/shop/prod/shop-prod-{STAMP}/verified.json", "{}")  # no manifest
    assert folder_archives(fake, world.backups) == []
    assert kind(world) == "restic"
    folder_archive(world, "shop", "prod", f"shop-prod-{STAMP}")
    assert folder_archives(fake, world.backups) == [f"shop/prod/shop-prod-{STAMP}"]
    assert folder_archives(fake, world.backups + "/") == [f"shop/prod/shop-prod-{STAMP}"]


@pytest.mark.parametrize("named", ["folder", "restic"])
def test_a_store_named_in_the_descriptor_wins(tmp_path: Path, named: str) -> None:
    world = unset(tmp_path)
    folder_archive(world, "shop", "prod", f"shop-prod-{STAMP}")
    assert store_kind(world.fake, world.backups, named) == named
    assert store_kind(world.fake, world.backups, None) == "folder"


def test_doctor_notes_a_root_that_stays_on_folders_and_names_the_migration(
    tmp_path: Path,
) -> None:
    world = unset(tmp_path)
    with world.ops() as ops:
        notes = [f for f in ops.doctor().findings if "migrate" in f.message]
    assert notes == []
    folder_archive(world, "shop", "prod", f"shop-prod-{STAMP}")
    with world.ops() as ops:
        [note] = [f for f in ops.doctor().findings if "migrate" in f.message]
    assert note.severity == "note" and note.project == "shop"
    assert "'opskit backups migrate shop'" in note.message
    assert "backup.store: folder" in note.message
    path = f"{world.root}/shop/project.yaml"
    text = world.fake.read(path).decode()
    world.fake.write(path, text.replace("backup:\n", "backup:\n  store: folder\n"))
    with world.ops() as ops:  # chosen: nothing to note
        assert [f for f in ops.doctor().findings if "migrate" in f.message] == []


@pytest.mark.docker
def test_a_root_written_before_the_store_stays_on_folders_until_migrated(tmp_path: Path) -> None:
    """A root with folder archives and a descriptor naming no store (an opskit from before
    the store wrote them): backups stay folders, doctor names the migration, and after
    ``backups migrate`` every archive and every new backup is in the store."""
    from conftest import archive_name, archives_of, opskit
    from test_interrupt import write_cut

    data = write_cut(tmp_path, "folder")
    (data / "page.html").write_text("night 1\n")
    args = ("--root", str(tmp_path))
    first = opskit("backup", "cut", "dev", *args)
    assert first.returncode == 0, first.stderr
    descriptor = tmp_path / "cut" / "project.yaml"
    descriptor.write_text(descriptor.read_text().replace("store: folder, ", ""))
    assert "store" not in descriptor.read_text()

    second = opskit("backup", "cut", "dev", *args)
    assert second.returncode == 0, second.stderr
    assert ".restic" not in second.stdout and not (tmp_path / "backups" / ".restic").exists()
    assert [a["store"] for a in archives_of(tmp_path, "cut", "dev")] == ["folder", "folder"]
    doctor = opskit("doctor", "--json", *args)
    notes = [f for f in doctor.json()["findings"] if "migrate" in f["message"]]  # type: ignore[index]
    assert [n["severity"] for n in notes] == ["note"]

    moved = opskit("backups", "migrate", "cut", *args)
    assert moved.returncode == 0, moved.stderr
    listed = archives_of(tmp_path, "cut", "dev")
    assert [a["store"] for a in listed] == ["restic", "restic"]
    assert {a["name"] for a in listed} == {archive_name(first.stdout), archive_name(second.stdout)}
    third = opskit("backup", "cut", "dev", *args)
    assert third.returncode == 0, third.stderr
    assert f".restic:{archive_name(third.stdout)}" in third.stdout
    assert [a["store"] for a in archives_of(tmp_path, "cut", "dev")] == ["restic"] * 3
    doctor = opskit("doctor", "--json", *args)
    assert not [f for f in doctor.json()["findings"] if "migrate" in f["message"]]  # type: ignore[index]


@pytest.mark.docker
def test_a_scheduled_backup_asks_restic_for_each_thing_once(tmp_path: Path) -> None:
    """A scheduled night (back up, verify, prune) ran restic 21 times, six of them for the
    same listing and six for its version, 0.3-0.6 s each: the store keeps what it read
    until it changes the repository."""
    import os
    import stat

    from conftest import opskit
    from test_interrupt import write_cut

    data = write_cut(tmp_path, "restic")
    descriptor = tmp_path / "cut" / "project.yaml"
    descriptor.write_text(
        descriptor.read_text().replace(
            "backup: {",
            "backup: {retention: {keep_last: 2, keep_daily: 0, keep_weekly: 0, keep_monthly: 0}, ",
        )
    )
    calls = tmp_path / "calls"
    spy = tmp_path / "bin" / "restic"
    spy.parent.mkdir()
    restic = subprocess.run(["sh", "-c", "command -v restic"], capture_output=True, text=True)
    spy.write_text(
        '#!/bin/sh\nfor a in "$@"; do case "$a" in -*|/*) ;; *) echo "$a" >> "$CALLS"; '
        f'break;; esac; done\nexec {restic.stdout.strip()} "$@"\n'
    )
    spy.chmod(spy.stat().st_mode | stat.S_IXUSR)
    env = {"PATH": f"{spy.parent}:{os.environ['PATH']}", "CALLS": str(calls)}
    for night in range(3):
        (data / "index.html").write_text(f"night {night}\n")
        calls.unlink(missing_ok=True)
        run = opskit("backup", "cut", "dev", "--scheduled", "--root", str(tmp_path), env=env)
        assert run.returncode == 0, run.stderr
        made = calls.read_text().split()
        assert made.count("version") == 1, made
        assert made.count("snapshots") <= 2, made  # the backup's own, then verify's and prune's
    assert "prune" in made and "forget" in made  # the third night pruned the first
