"""The restic archive store (``backup.store: restic``, #22): archives as snapshots in one
repository per backup root, against the real engine and real restic. The folder store's
behaviour is covered everywhere else; the interrupted restore of tests/test_interrupt.py
runs on both."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from conftest import assert_one_error_line, opskit, wait_until
from opskit import Ops
from opskit.archive import ArchiveError, raw_tar
from opskit.store import manifest_snapshots
from test_interrupt import tree, write_cut


def cut_root(tmp_path: Path, store: str, files: int = 8, size: int = 1 << 20) -> Path:
    """A one-service root (``cut`` of tests/test_interrupt.py) whose archives go to
    *store*; its state folder (the store's password) is inside *tmp_path*."""
    data = write_cut(tmp_path, store)
    for i in range(files):  # incompressible: only restic's deduplication makes it small
        (data / f"blob-{i:03}.bin").write_bytes(os.urandom(size))
    return tmp_path


def du(path: Path) -> int:
    """Bytes on disk under *path* (``du``, as an operator measures it)."""
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def snapshots(root: Path) -> list[dict[str, Any]]:
    """Every snapshot in the root's store, straight from restic."""
    repo, password = root / "backups" / ".restic", root / "state" / "restic-store-password"
    out = subprocess.run(
        ["restic", "--repo", str(repo), "--password-file", str(password), "--no-cache",
         "snapshots", "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return list(json.loads(out.stdout or "[]"))


def archives(root: Path) -> list[dict[str, Any]]:
    run = opskit("backups", "cut", "dev", "--json", "--root", str(root))
    assert run.returncode == 0, run.stderr
    return list(run.json()["archives"])  # type: ignore[index]


@pytest.mark.docker
def test_the_restic_store_backs_up_lists_verifies_restores_and_prunes(tmp_path: Path) -> None:
    root = cut_root(tmp_path, "restic")
    data, repo, args = (
        root / "cut" / "dev" / "data",
        root / "backups" / ".restic",
        ["--root", str(root)],
    )
    assert opskit("start", "cut", "dev", *args).returncode == 0
    try:
        wait_until(lambda: opskit("health", "cut", "dev", *args).returncode == 0, 60)
        first = opskit("backup", "cut", "dev", *args)
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip().startswith(f"{repo}:cut-dev-")
        password = root / "state" / "restic-store-password"
        assert password.stat().st_mode & 0o777 == 0o600
        # The store's one key derives cheaply (src/opskit/restic_key.py), and no warning said
        # it stayed slow.
        [key] = [json.loads(path.read_text()) for path in (repo / "keys").iterdir()]
        assert (key["N"], key["r"], key["p"]) == (1 << 14, 8, 1)
        assert "[warning]" not in first.stderr
        after_first = du(repo)
        # Two nights of the same data: the second adds far less than the first.
        second = opskit("backup", "cut", "dev", *args)
        assert second.returncode == 0, second.stderr
        assert du(repo) - after_first < after_first / 10, (after_first, du(repo))
        listed = archives(root)
        assert [a["store"] for a in listed] == ["restic", "restic"]
        assert listed[0]["components"] == ["path-dev-data"]
        assert not list((root / "backups" / "cut" / "dev").glob("cut-dev-*"))  # no folders
        assert len(snapshots(root)) == 4  # a component and a manifest per archive
        loose = ["find", str(root / "backups" / "cut"), "-perm", "/077", "!", "-name", ".lock*"]
        assert subprocess.run(loose, capture_output=True, text=True).stdout == ""  # 0700/0600

        verify = opskit("verify", "cut", "dev", "--name", listed[1]["name"], *args)
        assert verify.returncode == 0, verify.stderr
        # The dashboard's download of a store archive: its manifest and raw streams.
        with Ops(root=str(root)) as ops:
            archive = ops.backup_engine().find(ops.project("cut"), "dev", listed[1]["name"])
            download = tmp_path / "download.tar"
            download.write_bytes(b"".join(raw_tar(ops.host, archive)))
        # The path is kept as a tree (#22): its files come under {archive}/{key}/.
        inside = f"{archive.name}/path-dev-data/data"
        with tarfile.open(download) as tar:
            names = tar.getnames()
            page = tar.extractfile(f"{inside}/index.html").read()  # type: ignore[union-attr]
        assert names[:2] == [f"{archive.name}/manifest.json", inside]
        assert sorted(names[2:]) == sorted(f"{inside}/{name}" for name in tree(data))
        assert page == (data / "index.html").read_bytes()
        drill = opskit("drill", "cut", "dev", "--name", listed[1]["name"], *args)
        assert drill.returncode == 0, drill.stderr
        # An offsite copy of a store archive: its raw streams and manifest, read back.
        yaml = root / "cut" / "project.yaml"
        yaml.write_text(
            yaml.read_text() + f"offsite: {{target: 'file://{tmp_path / 'offsite'}'}}\n"
        )
        assert opskit("offsite", "init", *args).returncode == 0
        upload = opskit("offsite", "upload", "cut", "dev", "--name", listed[1]["name"], *args)
        assert upload.returncode == 0, upload.stderr
        assert "verified ok" in upload.stdout
        before = tree(data)
        (data / "index.html").write_text("version 2, after the backup\n")
        (data / "blob-000.bin").unlink()
        run = opskit("restore", "cut", "dev", "--name", listed[1]["name"], "--yes", *args)
        assert run.returncode == 0, run.stderr
        assert tree(data) == before
        assert opskit("health", "cut", "dev", *args).returncode == 0
        # One file out of a store archive, with its exact bytes.
        out = tmp_path / "out"
        got = opskit("extract", "cut", "dev", "--name", listed[1]["name"], "dev/data/index.html",
                     "--to", str(out), *args)  # fmt: skip
        assert got.returncode == 0, got.stderr
        assert hashlib.sha256((out / "index.html").read_bytes()).hexdigest() == before["index.html"]
        listed = archives(root)
        assert len(listed) == 3  # the safety backup is an archive of the store too
        assert [a["verified"] for a in listed] == ["never", "never", "ok"]
        assert [(a["drilled"], a["offsite"]) for a in listed][2] == ("ok", "ok")

        # keep_last 1: the newest, and the newest verified one (the oldest) stay.
        yaml.write_text(
            yaml.read_text().replace(
                "paths:",
                "retention: {keep_last: 1, keep_daily: 0, keep_weekly: 0, keep_monthly: 0, keep_undo_days: 0}, paths:",
            )
        )
        pruned = opskit("prune", "cut", "dev", "--json", *args)
        assert pruned.returncode == 0, pruned.stderr
        assert [a["name"] for a in archives(root)] == [listed[0]["name"], listed[2]["name"]]
        assert {t for s in snapshots(root) for t in s["tags"] if t.startswith("archive=")} == {
            f"archive={listed[0]['name']}",
            f"archive={listed[2]['name']}",
        }
        assert not (root / "backups" / "cut" / "dev" / ".state" / listed[1]["name"]).exists()

        # A store whose password file is gone: one line, nothing changed.
        password.rename(password.with_suffix(".away"))
        assert_one_error_line(opskit("backups", "cut", "dev", *args), str(password))
        assert_one_error_line(opskit("backup", "cut", "dev", *args), str(password))
        password.with_suffix(".away").rename(password)
        kept = password.read_text()
        password.write_text("not the password\n")
        assert_one_error_line(opskit("backups", "cut", "dev", *args), "wrong password")
        password.write_text(kept)
        assert len(archives(root)) == 2
    finally:
        opskit("destroy", "cut", "dev", "--yes", *args)


def restic_config(repo: Path, password: Path) -> dict[str, Any]:
    """A repository's config (its chunker polynomial), straight from restic."""
    out = subprocess.run(
        ["restic", "--repo", str(repo), "--password-file", str(password), "--no-cache",
         "cat", "config"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


@pytest.mark.docker
def test_offsite_copies_store_archives_with_restic_copy_sending_only_new_blobs(
    tmp_path: Path,
) -> None:
    """``offsite init`` before the first backup creates the store, then the target with
    its chunker parameters; each upload is a ``restic copy`` that sends only what the
    target lacks; an archive restored from the target alone comes back identical."""
    # restic cuts chunks of about 1 MiB: a changed file costs a chunk, so 32 MiB of data
    root = cut_root(tmp_path, "restic", files=32)
    data, store, offsite = (
        root / "cut" / "dev" / "data",
        root / "backups" / ".restic",
        tmp_path / "offsite",
    )
    args = ["--root", str(root)]
    yaml = root / "cut" / "project.yaml"
    yaml.write_text(yaml.read_text() + f"offsite: {{target: 'file://{offsite}'}}\n")
    init = opskit("offsite", "init", *args)
    assert init.returncode == 0, init.stderr
    passwords = root / "state" / "restic-store-password", root / "state" / "restic-password"
    configs = restic_config(store, passwords[0]), restic_config(offsite, passwords[1])
    assert configs[0]["chunker_polynomial"] == configs[1]["chunker_polynomial"]
    assert configs[0]["id"] != configs[1]["id"]
    empty = du(offsite)
    assert opskit("start", "cut", "dev", *args).returncode == 0
    try:
        wait_until(lambda: opskit("health", "cut", "dev", *args).returncode == 0, 60)
        sizes = []
        (data / "index.html").write_text("night 1\n")
        assert opskit("backup", "cut", "dev", *args).returncode == 0
        upload = opskit("offsite", "upload", "cut", "dev", *args)
        assert upload.returncode == 0, upload.stderr
        assert "2 sent (copied from the store), 0 already there; verified ok" in upload.stdout
        assert "[warning]" not in upload.stderr
        sizes.append(du(offsite) - empty)
        # The second night, as its timer runs it: the backup, then its copy.
        (data / "index.html").write_text("night 2\n")
        before = du(offsite)
        backup = opskit("backup", "cut", "dev", "--offsite", *args)
        assert backup.returncode == 0, backup.stderr
        assert "[warning]" not in backup.stderr
        sizes.append(du(offsite) - before)
        print(f"offsite upload: first {sizes[0]} bytes, second {sizes[1]} bytes")
        assert sizes[0] > 32 << 20  # the blobs of random bytes
        assert sizes[1] < sizes[0] / 20, sizes
        repeated = opskit("offsite", "upload", "cut", "dev", *args)
        assert "0 sent (copied from the store), 2 already there" in repeated.stdout
        listed = opskit("offsite", "list", "cut", "dev", "--json", *args)
        assert listed.returncode == 0, listed.stderr
        assert [(a["copied"], a["offsite"]) for a in listed.json()["archives"]] == [  # type: ignore[index]
            (True, "yes"),
            (True, "yes"),
        ]

        # Only the copy is left: the archive goes from the store, the data changes, and
        # the restore from offsite brings back the same tree.
        name = archives(root)[0]["name"]
        expected = tree(data)
        with Ops(root=str(root)) as ops:
            engine = ops.backup_engine()
            local = engine.store(ops.project("cut"), "dev")
            local.remove([engine.find(ops.project("cut"), "dev", name)])
        assert name not in [a["name"] for a in archives(root)]
        (data / "index.html").write_text("after the backup\n")
        (data / "blob-003.bin").unlink()
        run = opskit("restore", "cut", "dev", "--offsite", "--name", name, "--yes", *args)
        assert run.returncode == 0, run.stderr
        assert tree(data) == expected

        # A target made without the store's chunker parameters still takes copies, with
        # one warning that they do not deduplicate against what it holds.
        other = tmp_path / "other"
        subprocess.run(["restic", "--repo", str(other), "--password-file", str(passwords[1]),
                        "--no-cache", "init"], capture_output=True, check=True)  # fmt: skip
        yaml.write_text(yaml.read_text().replace(str(offsite), str(other)))
        apart = opskit("offsite", "upload", "cut", "dev", *args)  # the safety backup's
        assert apart.returncode == 0, apart.stderr
        assert "2 sent (copied from the store), 0 already there; verified ok" in apart.stdout
        warned = [line for line in apart.stderr.splitlines() if line.startswith("[warning]")]
        assert len(warned) == 1 and "chunker parameters" in warned[0], apart.stderr
        # A store made by 'offsite init' for an existing target takes the target's.
        (root / "backups" / ".restic").rename(tmp_path / "old-store")
        again = opskit("offsite", "init", *args)
        assert again.returncode == 0, again.stderr
        made = restic_config(store, passwords[0])["chunker_polynomial"]
        assert made == restic_config(other, passwords[1])["chunker_polynomial"]
        assert made != configs[0]["chunker_polynomial"]
    finally:
        opskit("destroy", "cut", "dev", "--yes", *args)


def test_restic_copy_and_init_name_the_source_and_its_password_file_never_a_password() -> None:
    from opskit.contracts import Repository
    from opskit.host import LocalHost
    from opskit.restic import Restic

    store = Restic(LocalHost(), "/b/.restic", "/s/restic-store-password", Repository("/b/.restic"))
    target = Restic(
        LocalHost(),
        "s3://host/bucket",
        "/s/restic-password",
        Repository("s3:https://host/bucket", {"AWS_SECRET_ACCESS_KEY": "secret"}),
    )
    base = ["restic", "--repo", "s3:https://host/bucket", "--password-file", "/s/restic-password"]
    source = ["--from-repo", "/b/.restic", "--from-password-file", "/s/restic-store-password"]
    assert target.copy_argv(store, ["1a2b3c4d", "5e6f7a8b"]) == [
        *base, "copy", *source, "1a2b3c4d", "5e6f7a8b"
    ]  # fmt: skip
    assert target.init_argv(store) == [*base, "init", "--copy-chunker-params", *source]
    assert target.init_argv() == [*base, "init"]
    # The other way round (a store made for an existing target): the target's URL, and
    # its credentials only in the environment.
    assert store.init_argv(target)[-5:] == [
        "--copy-chunker-params",
        "--from-repo",
        "s3:https://host/bucket",
        "--from-password-file",
        "/s/restic-password",
    ]
    assert "secret" not in " ".join(store.init_argv(target) + target.copy_argv(store, []))


def _snapshot(archive: str, key: str, at: str = "2026-12-01") -> dict[str, Any]:
    tags = ["opskit", "project=cut", "env=dev", f"archive={archive}", f"component={key}"]
    return {"id": f"{archive}-{key}-{at}", "time": at, "tags": tags}


def test_the_store_reads_without_restic_locks_under_its_own_and_offsite_keeps_them(
    tmp_path: Path,
) -> None:
    """restic 0.14 sleeps 200 ms after writing the lock of every command; the store's own
    flock already keeps its forget and prune apart from its readers."""
    import contextlib

    from opskit.contracts import Repository
    from opskit.host import LocalHost
    from opskit.restic import Restic

    repo, password = tmp_path / "repo", tmp_path / "password"
    password.write_text("a password\n")
    held: list[bool] = []

    @contextlib.contextmanager
    def guard(exclusive: bool) -> Any:
        held.append(exclusive)
        yield

    store = Restic(LocalHost(), str(repo), str(password), Repository(str(repo)), guard=guard)
    offsite = Restic(LocalHost(), str(repo), str(password), Repository(str(repo)))
    for command in ("snapshots", "cat", "dump", "ls"):
        assert "--no-lock" in store.command(command, "x")
        assert "--no-lock" not in offsite.command(command, "x")
    for command in ("backup", "tag", "forget", "prune", "copy", "init", "unlock"):
        assert "--no-lock" not in store.command(command)
    subprocess.run(
        ["restic", "--repo", str(repo), "--password-file", str(password), "init"],
        check=True, capture_output=True,
    )  # fmt: skip
    (repo / "locks").rmdir()
    # Where restic would write a lock it cannot: a listing that locked would fail (after
    # restic's retries, most of a minute).
    (repo / "locks").write_text("")
    assert store.snapshots() == []
    assert held == [False]  # under the store's shared flock


def test_only_archives_with_a_manifest_are_listed() -> None:
    whole, cut = "cut-dev-20261201T030000Z", "cut-dev-20261202T030000Z"
    groups = {
        whole: [_snapshot(whole, "path-dev-data"), _snapshot(whole, "manifest")],
        cut: [_snapshot(cut, "path-dev-data")],  # killed before its manifest
        "not-an-archive": [_snapshot("not-an-archive", "manifest")],
    }
    assert manifest_snapshots(groups) == {whole: groups[whole][1]}


def test_an_archive_written_twice_is_refused_by_name() -> None:
    name = "cut-dev-20261201T030000Z"
    group = [
        _snapshot(name, "path-dev-data"),
        _snapshot(name, "manifest"),
        _snapshot(name, "path-dev-data", at="2026-12-02"),
        _snapshot(name, "manifest", at="2026-12-02"),
    ]
    with pytest.raises(ArchiveError, match=f"archive {name} has 2 manifests"):
        manifest_snapshots({name: group})


def test_the_root_lock_is_shared_by_readers_and_writers_and_exclusive_for_removal(
    tmp_path: Path,
) -> None:
    """The projects of a root share one repository and restic 0.14 fails instead of
    waiting for its lock: opskit holds the root's lock around each restic command,
    shared to read and add, alone to forget and prune."""
    from opskit.host import LocalHost
    from opskit.locks import LockBusy
    from opskit.store import ResticStore

    def busy(store: ResticStore, exclusive: bool, match: str = "is locked by") -> None:
        with pytest.raises(LockBusy, match=match), store.restic.locked(exclusive):
            pass

    host = LocalHost()
    one = ResticStore(host, str(tmp_path), str(tmp_path / "state"), "cut", "dev", 0.5)
    other = ResticStore(host, str(tmp_path), str(tmp_path / "state"), "mdf", "prod", 0.5)
    with one.restic.locked(), other.restic.locked():  # two backups at once
        busy(other, exclusive=True)  # a prune waits for both
    with one.restic.locked(exclusive=True):
        busy(other, exclusive=False, match="removing from")  # a backup waits, naming the prune
    assert oct((tmp_path / ".restic.lock").stat().st_mode & 0o777) == "0o600"
