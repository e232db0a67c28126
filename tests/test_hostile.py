"""Archives that try to reach outside themselves (#10, part 2): refused before anything."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import zstandard

from opskit.archive import FORMAT, MANIFEST, list_archives, read_component, verify
from opskit.errors import OpskitError
from opskit.host import LocalHost


def write_archive(folder: Path, file_name: str, payload: bytes, stored_at: Path) -> None:
    """An archive whose only component is *payload*, stored at *stored_at* and named
    *file_name* in the manifest; the checksums match, so only the name can give it away."""
    stored = zstandard.ZstdCompressor().compress(payload)
    stored_at.parent.mkdir(parents=True, exist_ok=True)
    stored_at.write_bytes(stored)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": FORMAT,
        "project": "mdf",
        "environment": "dev",
        "components": [
            {
                "key": "db-db-wordpress",
                "kind": "database",
                "file": file_name,
                "raw_bytes": len(payload),
                "raw_sha256": hashlib.sha256(payload).hexdigest(),
                "stored_bytes": len(stored),
                "sha256": hashlib.sha256(stored).hexdigest(),
                "details": {},
            }
        ],
    }
    (folder / MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "name", ["../../prod/mdf-prod-20261127T033000Z/db.sql.zst", "..", "/etc/passwd", "a/b.zst"]
)
def test_a_manifest_that_points_outside_its_archive_is_refused(tmp_path: Path, name: str) -> None:
    backups = tmp_path / "backups" / "mdf"
    dev = backups / "dev" / "mdf-dev-20261128T033000Z"
    prod_file = backups / "prod" / "mdf-prod-20261127T033000Z" / "db.sql.zst"
    write_archive(dev, name, b"INSERT INTO prod_secrets VALUES (1);\n", prod_file)
    host = LocalHost()
    (archive,) = list_archives(host, str(backups / "dev"))
    (fault,) = verify(host, archive)
    assert "is not a file inside the archive" in fault.problem and repr(name) in fault.problem
    with pytest.raises(OpskitError, match="not a file inside the archive"):
        b"".join(read_component(host, archive, archive.components[0]))


def test_a_plain_member_name_verifies(tmp_path: Path) -> None:
    folder = tmp_path / "mdf" / "dev" / "mdf-dev-20261128T033000Z"
    write_archive(folder, "db.sql.zst", b"SELECT 1;\n", folder / "db.sql.zst")
    (archive,) = list_archives(LocalHost(), str(tmp_path / "mdf" / "dev"))
    assert verify(LocalHost(), archive) == []


def test_a_service_that_looks_like_an_option_is_refused() -> None:
    from conftest import assert_one_error_line, opskit
    from testroot import EXAMPLES

    run = opskit("stop", "webstack", "dev", "--root", str(EXAMPLES), "--", "-t0")
    assert_one_error_line(run, "'-t0' is not a service name")


def test_a_malformed_host_and_a_nul_byte_are_one_error_line(tmp_path: Path) -> None:
    from conftest import assert_one_error_line, opskit

    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "project.yaml").write_bytes(b"name: x\x00\nenvironments: [dev]\n")
    assert_one_error_line(opskit("status", "--host", "ssh://root@[::1"), "bad host")
    assert_one_error_line(opskit("projects", "--root", str(tmp_path)), "invalid YAML")


# -- archives and the audit log are private (#10, part 2) ----------------------------------


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_audit_log_and_backup_folders_are_private_whatever_the_umask(tmp_path: Path) -> None:
    import os

    from opskit.archive import write_json
    from opskit.audit import append
    from opskit.backups import private_dir
    from opskit.descriptor import DescriptorSource, parse_descriptor

    old = os.umask(0o022)
    try:
        host = LocalHost()
        env_folder = tmp_path / "backups" / "shop" / "prod"
        private_dir(host, str(env_folder))
        write_json(host, str(env_folder / "verified.json"), {"ok": True})
        shop = parse_descriptor(
            DescriptorSource(str(tmp_path / "shop" / "project.yaml"),
                             f"name: shop\nbackup: {{dir: {tmp_path / 'backups'}}}\n")
        )  # fmt: skip
        append(host, shop, {"command": "restore"})
    finally:
        os.umask(old)
    assert mode(env_folder) == 0o700 and mode(env_folder.parent) == 0o700
    assert mode(env_folder / "verified.json") == 0o600
    assert mode(tmp_path / "backups" / "opskit-audit.log") == 0o600


@pytest.mark.docker
def test_new_archives_are_not_readable_by_another_user(examples_up: Path) -> None:
    import subprocess

    from conftest import opskit

    run = opskit("backup", "seriousletter", "prod", "--root", str(examples_up))
    assert run.returncode == 0, run.stderr
    archive = Path(run.stdout.strip())
    assert mode(archive) == 0o700 and mode(archive.parent) == 0o700
    assert {mode(f) for f in archive.iterdir()} == {0o600}
    dump = next(archive.glob("*.sql.zst"))
    as_nobody = subprocess.run(
        ["runuser", "-u", "nobody", "--", "cat", str(dump)], capture_output=True
    )
    assert as_nobody.returncode != 0 and b"Permission denied" in as_nobody.stderr
    # an archive made readable by hand is a problem for doctor
    dump.chmod(0o644)
    try:
        report = opskit("doctor", "--json", "--root", str(examples_up))
        loose = [f for f in report.json()["findings"] if "read by other users" in f["message"]]  # type: ignore[index]
        assert report.returncode == 1 and loose and loose[0]["project"] == "seriousletter"
    finally:
        dump.chmod(0o600)


# -- path restores: links that lead out, and a swap that fails (#10, part 2) ----------------


def tar_of(folder: Path) -> bytes:
    import subprocess

    return subprocess.run(
        ["tar", "-c", "-C", str(folder.parent), folder.name], capture_output=True, check=True
    ).stdout


@pytest.mark.parametrize("kind", ["top-level link", "link inside"])
def test_a_restore_never_creates_a_link_that_leads_out(tmp_path: Path, kind: str) -> None:
    import io

    from opskit.components import _swap_in

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "precious.txt").write_text("not ours\n")
    crafted = tmp_path / "crafted" / "uploads"
    crafted.parent.mkdir()
    if kind == "top-level link":
        crafted.symlink_to(outside)
    else:
        crafted.mkdir()
        (crafted / "escape").symlink_to("../../elsewhere")
    live = tmp_path / "site" / "uploads"
    live.mkdir(parents=True)
    (live / "photo.jpg").write_bytes(b"jpeg")
    with pytest.raises(OpskitError, match="refused"):
        _swap_in(LocalHost(), io.BytesIO(tar_of(crafted)), str(live), "uploads")
    assert (live / "photo.jpg").read_bytes() == b"jpeg" and not live.is_symlink()
    assert sorted(p.name for p in live.parent.iterdir()) == ["uploads"]  # no leftovers
    assert (outside / "precious.txt").read_text() == "not ours\n"


def test_a_swap_that_fails_leaves_the_live_folder(tmp_path: Path) -> None:
    import io

    from opskit.components import _swap_in

    other = tmp_path / "crafted" / "downloads"  # the archive holds another folder's name
    other.mkdir(parents=True)
    (other / "x").write_text("x\n")
    live = tmp_path / "site" / "uploads"
    live.mkdir(parents=True)
    (live / "photo.jpg").write_bytes(b"jpeg")
    with pytest.raises(OpskitError, match="restoring uploads failed"):
        _swap_in(LocalHost(), io.BytesIO(tar_of(other)), str(live), "uploads")
    assert (live / "photo.jpg").read_bytes() == b"jpeg"
    assert sorted(p.name for p in live.parent.iterdir()) == ["uploads"]


def test_sync_never_follows_a_folder_that_is_a_link(tmp_path: Path) -> None:
    from opskit.sync import _rsync

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "precious.txt").write_text("not ours\n")
    source = tmp_path / "prod"
    source.mkdir()
    target = tmp_path / "dev"
    target.symlink_to(outside)
    with pytest.raises(OpskitError, match="is a link"):
        _rsync(LocalHost(), str(source), str(target), dry_run=False)
    assert (outside / "precious.txt").exists()
