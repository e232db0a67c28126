"""Paths and volumes as restic trees in the archive store (#22): ``restic backup`` of the
folder itself against the previous night's snapshot, so a night with nothing changed
reads nothing again; read back by ``restic dump SNAPSHOT /``. Real restic, real engine."""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from conftest import assert_one_error_line, opskit, wait_until
from opskit.archive import ComponentRecord, retar, tree_content_fault, tree_stream
from opskit.restic import ResticError, tree_backup_argv
from test_backup import volume_path
from test_interrupt import write_cut
from test_store import archives, du
from testroot import NS


def fingerprint(top: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under *top*, *top* itself included: type, mode, owner, and a file's
    sha256 or a link's target (never followed)."""
    found = {}
    for path in [top, *sorted(top.rglob("*"))]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            what = os.readlink(path)
        elif stat.S_ISREG(info.st_mode):
            what = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            what = ""
        found[str(path.relative_to(top))] = (info.st_mode, info.st_uid, info.st_gid, what)
    return found


def manifest(root: Path, name: str) -> dict[str, Any]:
    """The manifest of store archive *name*, as its state folder keeps it."""
    (found,) = (root / "backups" / "cut" / "dev" / ".state" / name).glob("manifest-*.json")
    return dict(json.loads(found.read_text()))


def records(root: Path, name: str) -> dict[str, dict[str, Any]]:
    return {c["key"]: c for c in manifest(root, name)["components"]}


def tree_root(tmp_path: Path, store: str = "restic", volume: bool = True) -> tuple[Path, str]:
    """The ``cut`` project (tests/test_interrupt.py) whose path holds a subfolder, a link
    inside, an empty file and a 0600 file of another owner; with *volume*, a volume
    of its own too, its root owned by uid 999. Return its data folder and the volume."""
    data = write_cut(tmp_path, store)
    (data / "sub" / "deeper").mkdir(parents=True)
    (data / "sub" / "page.html").write_text("a page in a subfolder\n")
    (data / "sub" / "deeper" / "link").symlink_to("../page.html")
    (data / "empty").touch()
    secret = data / "secret.txt"
    secret.write_bytes(os.urandom(3000))
    secret.chmod(0o600)
    os.chown(secret, 1234, 555)
    for i in range(4):  # incompressible: the store's size is the data's
        (data / f"blob-{i}.bin").write_bytes(os.urandom(1 << 20))
    name = f"{NS}-trees-{tmp_path.name}"[:60].replace("_", "-")
    if volume:
        subprocess.run(["docker", "volume", "create", name], check=True, capture_output=True)
        mount = volume_path(name)
        (mount / "db").mkdir()
        (mount / "db" / "table.ibd").write_bytes(os.urandom(200_000))
        for path in (mount, mount / "db", mount / "db" / "table.ibd"):
            os.chown(path, 999, 999)
        mount.chmod(0o750)
        yaml = tmp_path / "cut" / "project.yaml"
        yaml.write_text(yaml.read_text().replace("paths: [", f'volumes: ["{name}"], paths: ['))
    return data, name


@pytest.mark.docker
def test_paths_and_volumes_are_trees_that_restore_identically_and_cost_nothing_unchanged(
    tmp_path: Path,
) -> None:
    data, volume = tree_root(tmp_path)
    mount, repo, args = (
        volume_path(volume),
        tmp_path / "backups" / ".restic",
        ["--root", str(tmp_path)],
    )
    path_key, volume_key = "path-dev-data", f"volume-{volume}"
    assert opskit("start", "cut", "dev", *args).returncode == 0
    try:
        wait_until(lambda: opskit("health", "cut", "dev", *args).returncode == 0, 60)
        first = opskit("backup", "cut", "dev", *args)
        assert first.returncode == 0, first.stderr
        assert "[warning]" not in first.stderr, first.stderr
        night_one = du(repo)
        second = opskit("backup", "cut", "dev", *args)
        assert second.returncode == 0, second.stderr
        # Nothing changed: restic read no file again, and the store barely grew.
        assert du(repo) - night_one < night_one / 100, (night_one, du(repo))
        newer, older = (a["name"] for a in archives(tmp_path))
        one, two = records(tmp_path, older), records(tmp_path, newer)
        for key, files in ((path_key, 8), (volume_key, 1)):
            assert one[key]["details"]["stored_as"] == "tree"
            assert one[key]["details"]["files"] == files
            assert two[key]["details"]["files_unmodified"] == files
            assert two[key]["raw_sha256"] == one[key]["raw_sha256"]  # the same tree
        assert two[volume_key]["details"]["root"] == "_data"

        verify = opskit("verify", "cut", "dev", "--name", older, *args)
        assert verify.returncode == 0, verify.stderr
        before = (fingerprint(data), fingerprint(mount))
        (data / "sub" / "page.html").write_text("changed\n")
        (data / "sub" / "deeper" / "link").unlink()
        (data / "secret.txt").chmod(0o644)
        os.chown(mount, 0, 0)
        (mount / "db" / "table.ibd").write_bytes(b"rows written after the backup")
        (mount / "new.log").write_text("not in the archive\n")
        run = opskit("restore", "cut", "dev", "--name", older, "--yes", *args)
        assert run.returncode == 0, run.stderr
        assert (fingerprint(data), fingerprint(mount)) == before
        drill = opskit("drill", "cut", "dev", "--name", older, *args)
        assert drill.returncode == 0, drill.stderr
        out = tmp_path / "out"
        got = opskit("extract", "cut", "dev", "--name", older, "dev/data/secret.txt",
                     "--to", str(out), *args)  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert (out / "secret.txt").read_bytes() == (data / "secret.txt").read_bytes()
        got = opskit("extract", "cut", "dev", "--name", older, f"{volume_key}:db/table.ibd",
                     "--to", str(out), *args)  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert (out / "table.ibd").read_bytes() == (mount / "db" / "table.ibd").read_bytes()

        # Offsite by restic copy, then the local store lost: a restore from offsite alone.
        restored = (fingerprint(data), fingerprint(mount))
        yaml = tmp_path / "cut" / "project.yaml"
        yaml.write_text(yaml.read_text() + f"offsite: {{target: 'file://{tmp_path / 'off'}'}}\n")
        assert opskit("offsite", "init", *args).returncode == 0
        upload = opskit("offsite", "upload", "cut", "dev", "--name", older, *args)
        assert upload.returncode == 0 and "verified ok" in upload.stdout, upload.stderr
        local = tmp_path / "backups-lost"
        (tmp_path / "backups").rename(local)
        (mount / "db" / "table.ibd").unlink()
        (data / "secret.txt").write_text("changed again\n")
        run = opskit("restore", "cut", "dev", "--offsite", "--name", older, "--yes", *args)
        assert run.returncode == 0, run.stderr
        assert (fingerprint(data), fingerprint(mount)) == restored
        subprocess.run(["rm", "-rf", str(tmp_path / "backups")], check=True)
        local.rename(tmp_path / "backups")

        # A night with a new file: the pack holding its data is damaged afterwards.
        packs = set((repo / "data").rglob("*"))
        (data / "unique.bin").write_bytes(os.urandom(300_000))
        third = opskit("backup", "cut", "dev", *args)
        assert third.returncode == 0, third.stderr
        damaged = max((p for p in (repo / "data").rglob("*") if p.is_file() and p not in packs),
                      key=lambda p: p.stat().st_size)  # fmt: skip
        with damaged.open("r+b") as pack:
            pack.seek(damaged.stat().st_size // 2)
            pack.write(os.urandom(64))
        newest = archives(tmp_path)[0]["name"]
        bad = opskit("verify", "cut", "dev", "--name", newest, *args)
        assert bad.returncode != 0 and path_key in bad.stdout + bad.stderr, bad
        before = (fingerprint(data), fingerprint(mount))
        listed = archives(tmp_path)
        refused = opskit("restore", "cut", "dev", "--name", newest, "--yes", *args)
        assert_one_error_line(refused, newest)
        assert (fingerprint(data), fingerprint(mount)) == before
        assert [a["name"] for a in archives(tmp_path)] == [a["name"] for a in listed]
    finally:
        opskit("destroy", "cut", "dev", "--yes", *args)
        subprocess.run(["docker", "volume", "rm", "-f", volume], capture_output=True)


@pytest.mark.docker
def test_a_stream_archive_and_a_tree_archive_of_one_env_list_verify_and_restore(
    tmp_path: Path,
) -> None:
    """An archive of the format before trees (a folder archive migrated into the store:
    its path a stream snapshot) beside a tree archive."""
    data, _ = tree_root(tmp_path, "folder", volume=False)
    args = ["--root", str(tmp_path)]
    yaml = tmp_path / "cut" / "project.yaml"
    assert opskit("start", "cut", "dev", *args).returncode == 0
    try:
        wait_until(lambda: opskit("health", "cut", "dev", *args).returncode == 0, 60)
        assert opskit("backup", "cut", "dev", *args).returncode == 0
        streamed = fingerprint(data)
        (data / "sub" / "page.html").write_text("the second version\n")
        yaml.write_text(yaml.read_text().replace("store: folder", "store: restic"))
        assert opskit("backup", "cut", "dev", *args).returncode == 0
        treed = fingerprint(data)
        migrated = opskit("backups", "migrate", "cut", "dev", *args)
        assert migrated.returncode == 0, migrated.stderr
        tree_archive, stream_archive = (a["name"] for a in archives(tmp_path))
        assert [a["store"] for a in archives(tmp_path)] == ["restic", "restic"]
        assert records(tmp_path, tree_archive)["path-dev-data"]["details"]["stored_as"] == "tree"
        assert "stored_as" not in records(tmp_path, stream_archive)["path-dev-data"]["details"]
        for name in (stream_archive, tree_archive):
            verify = opskit("verify", "cut", "dev", "--name", name, *args)
            assert verify.returncode == 0, verify.stderr
        assert fingerprint(data) == treed  # a tree archive's restore: the other test
        run = opskit("restore", "cut", "dev", "--name", stream_archive, "--yes",
                     "--no-safety-backup", *args)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert fingerprint(data) == streamed
    finally:
        opskit("destroy", "cut", "dev", "--yes", *args)


# -- pure parts ---------------------------------------------------------------------


def test_a_tree_backup_runs_in_the_folders_parent_with_its_name_and_the_parent_snapshot() -> None:
    base = ["restic", "--repo", "/b/.restic", "--password-file", "/s/pw"]
    argv, cwd = tree_backup_argv(
        base, "/var/lib/docker/volumes/v/_data/", ["opskit", "a=b"], "ab12"
    )
    assert cwd == "/var/lib/docker/volumes/v"
    assert argv == [*base, "backup", "--json", "--tag=opskit,a=b", "--host", "opskit",
                    "--parent=ab12", "--", "_data"]  # fmt: skip
    argv, cwd = tree_backup_argv(base, "/srv", [], None)
    assert (cwd, argv[-2:]) == ("/", ["--", "srv"]) and not any("--parent" in a for a in argv)
    with pytest.raises(ResticError):
        tree_backup_argv(base, "/", [], None)


def _tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A tar of folders (None) and files, owned by uid 999, as restic dump writes one."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.uid, info.mode = 999, 0o640
            if content is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o750
            else:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return out.getvalue()


def _record(member: str, files: int, size: int) -> ComponentRecord:
    details = {
        "stored_as": "tree",
        "root": "_data",
        "member": member,
        "files": files,
        "bytes": size,
    }
    return ComponentRecord("volume-v", "volume", "f", size, "t" * 64, size, "t" * 64, details)


def test_a_volume_trees_root_reads_as_the_volume_streams_root_keeping_owners_and_data() -> None:
    dumped = _tar([("_data", None), ("_data/db", None), ("_data/db/t.ibd", b"x" * 70_000)])
    stream = b"".join(tree_stream(iter([dumped[:1000], dumped[1000:]]), _record(".", 1, 70_000)))
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == [".", "./db", "./db/t.ibd"]
        assert [(m.uid, m.mode) for m in members] == [(999, 0o750), (999, 0o750), (999, 0o640)]
        assert tar.extractfile("./db/t.ibd").read() == b"x" * 70_000  # type: ignore[union-attr]
    assert tree_content_fault(io.BytesIO(stream), _record(".", 1, 70_000)) is None
    assert "1 files of 70000 bytes" in str(
        tree_content_fault(io.BytesIO(stream), _record(".", 2, 9))
    )
    # A download puts the members under {archive}/{key}/, the end of archive left out.
    listed = b"".join(
        retar(iter([stream]), lambda n: os.path.normpath("a/volume-v/" + n), end=False)
    )
    with tarfile.open(fileobj=io.BytesIO(listed + b"\0" * 1024)) as tar:
        assert tar.getnames() == ["a/volume-v", "a/volume-v/db", "a/volume-v/db/t.ibd"]


def test_a_path_trees_dump_is_its_stream_as_it_is() -> None:
    dumped = [b"the dump, untouched"]
    record = ComponentRecord(
        "path-x", "path", "f", 0, "t", 0, "t", {"stored_as": "tree", "root": "x", "member": "x"}
    )
    assert list(tree_stream(iter(dumped), record)) == dumped


def test_a_tree_whose_parent_snapshot_is_gone_is_read_in_full_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Real restic, no engine: the tree of a path written with restic's summary in its
    record, and a parent the repository lacks is the first night again."""
    from opskit.components import BackupContext, PathTree
    from opskit.host import LocalHost
    from opskit.store import ResticStore
    from test_components import _project

    context = BackupContext(LocalHost(), _project(tmp_path), "prod", ())
    folder = tmp_path / "site"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("a\n")
    (folder / "b.bin").write_bytes(os.urandom(5000))
    store = ResticStore(LocalHost(), str(tmp_path / "b"), str(tmp_path / "s"), "notes", "prod")
    writer = store.begin("notes-prod-20261204T000000Z")
    writer._parents = {"path-site": "0123456789abcdef" * 4}
    record = writer.tree(PathTree(str(folder), "site"), context, None)
    assert record is not None and record.details["parent"] is None
    assert (record.details["files"], record.details["bytes"]) == (2, 5002)
    assert (record.details["root"], record.details["member"]) == ("site", "site")
    assert record.raw_sha256 == store.restic.tree(writer.written["path-site"])
    assert "previous snapshot 01234567 is gone" in capsys.readouterr().err
