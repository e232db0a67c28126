"""Offsite copies in restic repositories (#12), against the test bed's real targets: a
folder (file://), an SFTP-only chrooted account on a second sshd (``OPSKIT_TEST_SFTP``) and
an S3 server that checks signatures (moto, ``OPSKIT_TEST_S3`` with the access key in
``OPSKIT_TEST_S3_KEYS``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SSH_URL, archive_name, archives_of, assert_one_error_line, opskit
from opskit.offsite import Repository
from opskit.plugins import hookimpl
from testroot import NS, use_store

pytestmark = pytest.mark.docker

PROJECT = """\
name: vault
environments: [dev]
compose: {{project_name: "{ns}-vault-{{env}}"}}
backup: {{dir: {backups}, paths: ["data", "more"]}}
offsite: {{target: "{target}"}}
"""
COMPOSE = """\
services:
  web:
    init: true
    image: opskit-test/web:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    volumes: ["./data:/srv:ro"]
"""
MARKER = b"plaintext that must never reach the repository"


SFTP = os.environ.get("OPSKIT_TEST_SFTP", "sftp://opskit-testbed-sftp//repos")
SFTP_CHROOT = Path("/var/lib/opskit-testbed/sftp-chroot")
S3 = os.environ.get("OPSKIT_TEST_S3", "s3+http://127.0.0.1:2224")
S3_KEYS = Path(os.environ.get("OPSKIT_TEST_S3_KEYS", "/var/lib/opskit-testbed/s3/keys"))
S3_PYTHON = S3_KEYS.parent / "venv" / "bin" / "python"  # the S3 server's venv has boto3
BUCKET = f"{NS}-offsite"
LOCAL_TARGETS = ["file", "sftp"]  # the repository's files can be read here


def s3_keys() -> dict[str, str]:
    return dict(line.split("=", 1) for line in S3_KEYS.read_text().split())


def s3_settings(keys: dict[str, str]) -> str:
    return (
        f"offsite:\n  s3:\n    access_key_id: {keys['AWS_ACCESS_KEY_ID']}\n"
        f"    secret_access_key: {keys['AWS_SECRET_ACCESS_KEY']}\n"
    )


def s3_remove(prefix: str) -> None:
    """Delete the objects under *prefix* (moto keeps them in memory)."""
    script = (
        "import sys, boto3\n"
        "s3 = boto3.resource('s3', endpoint_url=sys.argv[1])\n"
        "s3.Bucket(sys.argv[2]).objects.filter(Prefix=sys.argv[3]).delete()\n"
    )
    endpoint = "http://" + S3.removeprefix("s3+http://")
    subprocess.run(
        [str(S3_PYTHON), "-c", script, endpoint, BUCKET, prefix],
        env={**os.environ, **s3_keys()}, capture_output=True, timeout=120,
    )  # fmt: skip


@pytest.fixture
def data_mib() -> int:
    """The size of each of the two folders' random file (a test that needs a long upload
    parametrizes it)."""
    return 4


@pytest.fixture(params=["file", "sftp", "s3"])
def root(
    request: pytest.FixtureRequest, tmp_path: Path, data_mib: int, store: str
) -> Iterator[Path]:
    """A project with two folders to back up in the archive store *store*, and its
    repository: a folder, one on the SFTP-only account (its files seen here through the
    chroot, for the checks), or a prefix in a bucket of the S3 server (its access key in
    ``opskit.yaml``)."""
    root = tmp_path / "root"
    data = root / "vault" / "data"
    data.mkdir(parents=True)
    (data / "note.txt").write_bytes(MARKER * 100)
    (data / "big.bin").write_bytes(os.urandom(data_mib << 20))
    (root / "vault" / "more").mkdir()
    (root / "vault" / "more" / "big.bin").write_bytes(os.urandom(data_mib << 20))
    settings = f"state_dir: {tmp_path / 'state'}\n"
    local: Path | None = None
    if request.param == "file":
        target, local = f"file://{tmp_path / 'repo'}", tmp_path / "repo"
    elif request.param == "sftp":
        name = f"{NS}-{tmp_path.name}"
        target, local = f"{SFTP}/{name}", SFTP_CHROOT / "repos" / name
    else:
        prefix = f"{tmp_path.parent.name}-{tmp_path.name}"
        target = f"{S3}/{BUCKET}/{prefix}"
        settings += s3_settings(s3_keys())
        s3_remove(prefix)
    (root / "vault" / "project.yaml").write_text(
        PROJECT.format(ns=NS, backups=tmp_path / "backups", target=target)
    )
    use_store(root, store)
    (root / "vault" / "docker-compose.yml").write_text(COMPOSE)
    (root / "opskit.yaml").write_text(settings)
    (tmp_path / "repo-path").write_text(str(local or ""))
    (tmp_path / "target").write_text(target)
    assert opskit("backup", "vault", "dev", "--root", str(root)).returncode == 0
    yield root
    if local is not None:
        shutil.rmtree(local, ignore_errors=True)
    else:
        s3_remove(prefix)


def repo(root: Path) -> Path | None:
    """Where the repository's files are on this machine (None: in the S3 server)."""
    text = (root.parent / "repo-path").read_text()
    return Path(text) if text else None


def stored(root: Path) -> list[Any]:
    """The env's archives as its archive store holds them (either store), newest first."""
    from opskit import Ops

    with Ops(root=str(root)) as ops:
        store = ops.backup_engine().store(ops.project("vault"), "dev")
        return sorted(store.archives(), key=lambda a: a.name, reverse=True)


def lose_local(root: Path, name: str) -> None:
    """The local copy of archive *name* is lost: removed from its archive store."""
    from opskit import Ops

    with Ops(root=str(root)) as ops:
        store = ops.backup_engine().store(ops.project("vault"), "dev")
        store.remove(a for a in store.archives() if a.name == name)


def state_files(path: str | Path) -> dict[str, str]:
    """The sha256 of each file of an archive's folder (a folder archive's, or a store
    archive's state folder)."""
    import hashlib

    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in Path(path).iterdir()
        if p.is_file()
    }


def listing(root: Path) -> list[dict[str, object]]:
    done = opskit("offsite", "list", "vault", "dev", "--json", "--root", str(root))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["archives"]  # type: ignore[no-any-return]


def test_upload_list_verify_and_no_plaintext(root: Path, tmp_path: Path) -> None:
    missing = opskit("offsite", "upload", "vault", "dev", "--root", str(root))
    assert_one_error_line(missing, "archive vault-dev-", "no repository password", "offsite init")
    assert opskit("offsite", "init", "--root", str(root)).returncode == 0
    password = tmp_path / "state" / "restic-password"
    assert oct(password.stat().st_mode & 0o777) == "0o600"

    done = opskit("offsite", "upload", "vault", "dev", "--root", str(root), timeout=600)
    assert done.returncode == 0, done.stderr
    assert "verified ok" in done.stdout
    (row,) = listing(root)
    assert (row["local"], row["copied"], row["offsite"]) == (True, True, "yes")
    assert row["size"] and row["verified_at"]  # the offsite copy's last read-back
    again = opskit("offsite", "upload", "vault", "dev", "--root", str(root), timeout=600)
    assert "0 sent" in again.stdout and "3 already there" in again.stdout  # 2 paths, the manifest
    checked = opskit("offsite", "verify", "--read-data", "100%", "--root", str(root), timeout=600)
    assert checked.returncode == 0, checked.stderr  # every project and env in scope
    assert "offsite copy ok" in checked.stdout

    files = repo(root)
    if files is None:
        return  # the damage and the plaintext are looked for in the repository's files
    for path in files.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert MARKER not in content and b"note.txt" not in content, path

    pack = max((files / "data").rglob("*"), key=lambda p: p.stat().st_size)
    damaged = bytearray(pack.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    pack.chmod(0o600)
    pack.write_bytes(bytes(damaged))
    checked = opskit(
        "offsite", "verify", "vault", "dev", "--read-data", "100%", "--root", str(root)
    )
    assert checked.returncode == 1
    errors = [line for line in checked.stderr.splitlines() if line.startswith("[error]")]
    target = (root.parent / "target").read_text()
    assert errors and target in errors[0] and "vault-dev-" in errors[0], errors
    (row,) = listing(root)
    assert row["offsite"] == "FAILED"  # it no longer counts as offsite


@pytest.mark.parametrize("data_mib", [40])  # long enough to be killed half way
@pytest.mark.parametrize("root", LOCAL_TARGETS, indirect=True)
def test_an_upload_killed_half_way_is_not_a_copy_until_run_again(root: Path, store: str) -> None:
    """A folder archive goes up component by component (``restic backup --stdin``): killed
    while the second folder is on its way. A store archive goes by one ``restic copy``:
    killed while it runs (before opskit marks the copies complete)."""
    assert opskit("offsite", "init", "--root", str(root)).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "opskit", "offsite", "upload", "vault", "dev", "--root", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    # the named point: the second folder is on its way, or the store's copy runs
    point = "restic.*--stdin-filename .*/path-more" if store == "folder" else "restic.* copy "

    def running(pattern: str) -> bool:
        return subprocess.run(["pgrep", "-f", pattern], capture_output=True).returncode == 0

    while process.poll() is None and not running(point):
        time.sleep(0.05)
    assert process.poll() is None, "the upload ended before the named point"
    if store == "folder":
        time.sleep(0.3)
    process.send_signal(signal.SIGKILL)  # nothing of opskit's own can run now
    process.wait()
    while running(point):  # restic itself ends at the end of its input, or of its copy
        time.sleep(0.05)
    (row,) = listing(root)
    assert row["copied"] is False and row["offsite"] == "no"
    password = root.parent / "state" / "restic-password"
    snapshots = json.loads(
        subprocess.run(
            ["restic", "--repo", str(repo(root)), "--password-file", str(password), "--no-lock",
             "snapshots", "--json"],
            capture_output=True, check=True,
        ).stdout
    )  # fmt: skip
    complete = [s for s in snapshots if "complete" in s["tags"]]
    components = [t for s in complete for t in s["tags"] if t.startswith("component=")]
    if store == "restic":  # nothing counts before the copies are marked complete
        assert components == []
        done = opskit("offsite", "upload", "vault", "dev", "--root", str(root), timeout=600)
        assert done.returncode == 0, done.stderr
        assert "3 sent (copied from the store)" in done.stdout, done.stdout
        (row,) = listing(root)
        assert row["offsite"] == "yes"
        return
    assert components == ["component=path-data"]  # the first folder made it, not the second

    done = opskit("offsite", "upload", "vault", "dev", "--root", str(root), timeout=600)
    assert done.returncode == 0, done.stderr
    assert "2 sent" in done.stdout and "1 already there" in done.stdout, done.stdout
    sent = int(done.stdout.split("(")[1].split()[0])  # restic's own count of bytes added
    assert sent < 60 << 20  # less than the whole (two folders of 40 MiB)
    (row,) = listing(root)
    assert row["offsite"] == "yes"


@pytest.mark.parametrize("root", LOCAL_TARGETS, indirect=True)
def test_a_snapshot_of_a_cut_off_stream_never_counts(root: Path) -> None:
    """restic takes the end of its input for the end of the data: a stream cut off by a
    killed opskit becomes a snapshot. Only snapshots marked complete count."""
    import io

    from opskit import offsite
    from opskit.host import LocalHost
    from opskit.settings import Settings

    assert opskit("offsite", "init", "--root", str(root)).returncode == 0
    host = LocalHost()
    (archive,) = stored(root)
    target = (root.parent / "target").read_text()  # over SFTP for the SFTP repository
    repository = offsite.builtin_repository(target, Settings())
    assert repository is not None
    restic = offsite.Restic(
        host, target, str(root.parent / "state" / "restic-password"), repository
    )
    for record in archive.components:  # every component, each cut off after 1 kB
        restic.backup(
            io.BytesIO(b"x" * 1024),
            offsite._filename(archive, record.key),
            offsite._tags(archive, record.key),
        )
    restic.backup(
        io.BytesIO(b"{"), offsite._filename(archive, "manifest"), offsite._tags(archive, "manifest")
    )
    (row,) = listing(root)
    assert row["copied"] is False
    done = opskit("offsite", "upload", "vault", "dev", "--root", str(root), timeout=600)
    assert done.returncode == 0, done.stderr
    assert "3 sent" in done.stdout  # the cut-off ones were not taken for copies
    (row,) = listing(root)
    assert row["offsite"] == "yes"


def test_an_offsite_only_archive_comes_back_and_restores(root: Path) -> None:
    import hashlib

    data = root / "vault" / "data"

    def files() -> dict[str, str]:
        return {
            str(p.relative_to(data)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data.rglob("*"))
            if p.is_file()
        }

    original = files()
    assert opskit("offsite", "init", "--root", str(root)).returncode == 0
    assert (
        opskit("offsite", "upload", "vault", "dev", "--root", str(root), timeout=600).returncode
        == 0
    )
    (row,) = listing(root)
    name = str(row["archive"])
    there = opskit("offsite", "download", "vault", "dev", "--name", name, "--root", str(root))
    assert_one_error_line(there, name, "already in")  # never a second archive of the name
    lose_local(root, name)
    (row,) = listing(root)
    assert (row["local"], row["copied"]) == (False, True)
    (data / "note.txt").write_text("changed after the backup\n")

    done = opskit(
        "offsite", "download", "vault", "dev", "--name", name, "--root", str(root), timeout=600
    )
    assert done.returncode == 0, done.stderr
    archives = json.loads(opskit("backups", "vault", "dev", "--json", "--root", str(root)).stdout)
    assert [(a["name"], a["verified"]) for a in archives["archives"]] == [(name, "ok")]
    again = opskit("offsite", "download", "vault", "dev", "--name", name, "--root", str(root))
    assert_one_error_line(again, name, "already in")
    # The downloaded archive (a folder archive, whose components are streams) is proven
    # against the copy it came from, also where that copy holds a store's trees.
    checked = opskit("offsite", "verify", "vault", "dev", "--name", name, "--root", str(root))
    assert checked.returncode == 0, checked.stderr

    restored = opskit(
        "restore", "vault", "dev", "--name", name, "--yes", "--root", str(root), timeout=600
    )
    try:
        assert restored.returncode == 0, restored.stderr
        assert files() == original
    finally:
        opskit("destroy", "vault", "dev", "--yes", "--root", str(root))


@pytest.mark.parametrize("root", ["file", "s3"], indirect=True)
def test_prune_keeps_offsite_keep_and_never_the_newest_verified(root: Path) -> None:
    text = (root / "vault" / "project.yaml").read_text()
    (root / "vault" / "project.yaml").write_text(
        text.replace("offsite: {target:", "offsite: {keep: 1, target:")
    )
    assert opskit("offsite", "init", "--root", str(root)).returncode == 0
    names = []
    for _ in range(3):
        archives = json.loads(
            opskit("backups", "vault", "dev", "--json", "--root", str(root)).stdout
        )
        names.append(archives["archives"][0]["name"])
        done = opskit("offsite", "upload", "vault", "dev", "--root", str(root), timeout=600)
        assert done.returncode == 0, done.stderr
        assert opskit("backup", "vault", "dev", "--root", str(root)).returncode == 0
    dry = opskit("offsite", "prune", "vault", "dev", "--dry-run", "--json", "--root", str(root))
    assert json.loads(dry.stdout) == {
        "dry_run": True,
        "envs": [
            {"project": "vault", "env": "dev", "keep": [names[2]], "remove": [names[1], names[0]]}
        ],
    }
    assert [r["archive"] for r in listing(root) if r["copied"]] == names[::-1]  # nothing changed
    done = opskit("offsite", "prune", "vault", "dev", "--root", str(root), timeout=600)
    assert done.returncode == 0, done.stderr
    assert [r["archive"] for r in listing(root) if r["copied"]] == [names[2]]
    checked = opskit(
        "offsite",
        "verify",
        "vault",
        "dev",
        "--name",
        names[2],
        "--read-data",
        "100%",
        "--root",
        str(root),
    )
    assert checked.returncode == 0, checked.stderr  # what is kept still reads back whole


@pytest.mark.parametrize("root", ["file"], indirect=True)
def test_backup_offsite_copies_and_backups_shows_it(root: Path) -> None:
    assert opskit("offsite", "init", "--root", str(root)).returncode == 0
    done = opskit("backup", "vault", "dev", "--offsite", "--root", str(root), timeout=600)
    assert done.returncode == 0, done.stderr
    archive = archives_of(root, "vault", "dev")[0]
    assert archive["name"] == archive_name(done.stdout)
    assert (archive["offsite"], archive["offsite_target"]) == (
        "ok",
        (root.parent / "target").read_text(),
    )
    table = opskit("backups", "vault", "dev", "--root", str(root)).stdout.splitlines()
    assert table[0].split()[-1] == "OFFSITE" and table[1].split()[-1] == "ok"


@pytest.mark.parametrize("root", ["file"], indirect=True)
def test_an_unreachable_target_or_a_wrong_password_is_one_line_and_leaves_the_archive(
    root: Path,
) -> None:
    assert opskit("offsite", "init", "--root", str(root)).returncode == 0
    listed = archives_of(root, "vault", "dev")
    archive = Path(str(listed[0]["path"]))

    def sums() -> tuple[dict[str, str], list[dict[str, object]]]:
        return state_files(archive), archives_of(root, "vault", "dev")

    before = sums()
    password = root.parent / "state" / "restic-password"
    right = password.read_text()
    password.write_text("not the password\n")
    wrong = opskit("offsite", "upload", "vault", "dev", "--root", str(root))
    assert_one_error_line(wrong, f"archive {archive.name} on file://", "wrong password")
    password.write_text(right)

    descriptor = root / "vault" / "project.yaml"
    text = descriptor.read_text()
    descriptor.write_text(
        re.sub(r'target: "[^"]*"', 'target: "sftp://opskit-nowhere//repos/x"', text)
    )
    gone = opskit("offsite", "upload", "vault", "dev", "--root", str(root), timeout=120)
    assert_one_error_line(gone, f"archive {archive.name} on sftp://opskit-nowhere//repos/x")
    descriptor.write_text(text)
    assert sums() == before  # the local archive untouched
    (row,) = listing(root)
    assert row["copied"] is False


@pytest.mark.parametrize("root", ["s3"], indirect=True)
def test_wrong_or_missing_s3_credentials_are_one_line_and_never_a_copy(root: Path) -> None:
    settings = root / "opskit.yaml"
    right = settings.read_text()
    keys = s3_keys()
    settings.write_text(right.replace(keys["AWS_SECRET_ACCESS_KEY"], "not-the-secret"))
    target = (root.parent / "target").read_text()
    refused = opskit("offsite", "init", "--root", str(root), timeout=120)
    assert_one_error_line(refused, target)
    settings.write_text(right)
    assert opskit("offsite", "init", "--root", str(root)).returncode == 0

    archive = json.loads(opskit("backups", "vault", "dev", "--json", "--root", str(root)).stdout)
    name = archive["archives"][0]["name"]
    settings.write_text(right.replace(keys["AWS_SECRET_ACCESS_KEY"], "not-the-secret"))
    wrong = opskit("offsite", "upload", "vault", "dev", "--root", str(root), timeout=120)
    assert_one_error_line(wrong, f"archive {name} on {target}")
    assert "not-the-secret" not in wrong.stderr + wrong.stdout
    settings.write_text(right)
    (row,) = listing(root)
    assert row["copied"] is False


class DiskTargets:
    """A third party's scheme: ``disk://NAME`` is a folder under one base folder."""

    def __init__(self, base: Path) -> None:
        self.base = base

    @hookimpl
    def opskit_offsite_target(self, target: str, settings: object) -> Repository | None:
        if not target.startswith("disk://"):
            return None
        return Repository(str(self.base / target.removeprefix("disk://")))


def test_a_plugin_maps_its_own_scheme_to_a_repository(tmp_path: Path) -> None:
    from opskit import Ops, offsite
    from opskit.plugins import create_plugins

    (tmp_path / "opskit.yaml").write_text(f"state_dir: {tmp_path / 'state'}\n")
    plugins = create_plugins({"OPSKIT_PLUGINS": ""}, extra=[("disk", DiskTargets(tmp_path))])
    runtime = Ops(str(tmp_path), plugins=plugins).runtime
    path, created = offsite.init(runtime, "disk://one")
    assert path == str(tmp_path / "state" / "restic-password")
    assert created and (tmp_path / "one" / "config").is_file()
    assert offsite.connect(runtime, "disk://one").snapshots() == []
    with pytest.raises(offsite.OffsiteError, match="no plugin knows the scheme 'rclone'"):
        offsite.connect(runtime, "rclone://remote/path")


@pytest.mark.parametrize("root", ["file"], indirect=True)
def test_a_full_target_is_one_line_and_never_a_copy(root: Path, tmp_path: Path) -> None:
    full = tmp_path / "small-disk"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(full)])
    assert mounted.returncode == 0, "the test needs root to mount a small tmpfs"
    try:
        descriptor = root / "vault" / "project.yaml"
        target = f"file://{full / 'repo'}"
        descriptor.write_text(
            re.sub(r'target: "[^"]*"', f'target: "{target}"', descriptor.read_text())
        )
        assert opskit("offsite", "init", "--root", str(root)).returncode == 0
        listed = archives_of(root, "vault", "dev")
        archive = Path(str(listed[0]["path"]))
        before = (state_files(archive), listed)

        done = opskit("offsite", "upload", "vault", "dev", "--root", str(root), timeout=600)
        assert_one_error_line(done, f"archive {archive.name} on {target}")
        assert "no space left" in done.stderr.lower(), done.stderr
        after = (state_files(archive), archives_of(root, "vault", "dev"))
        assert after == before  # the local archive untouched
        (row,) = listing(root)
        assert row["copied"] is False and row["offsite"] == "no"
    finally:
        subprocess.run(["umount", "--lazy", str(full)])


@pytest.mark.ssh
@pytest.mark.parametrize("root", ["s3"], indirect=True)
def test_offsite_over_ssh_gives_restic_the_s3_key_in_its_environment(root: Path) -> None:
    over = ["--root", str(root), "--host", SSH_URL]
    assert opskit("offsite", "init", *over).returncode == 0
    done = opskit("offsite", "upload", "vault", "dev", *over, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "verified ok" in done.stdout
    (row,) = listing(root)  # read here, without --host: the same repository
    assert (row["copied"], row["offsite"]) == (True, "yes")
