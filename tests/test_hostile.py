"""Archives that try to reach outside themselves (#10, part 2): refused before anything."""

from __future__ import annotations

import hashlib
import json
import shutil
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
def test_new_archives_are_not_readable_by_another_user(examples_up: Path, store: str) -> None:
    """A folder archive's folder and files; the restic store's repository (whose data
    files restic makes read-only: 0400) and the archive's state folder."""
    import subprocess

    from conftest import archive_name, archives_of, opskit
    from testroot import BACKUPS, use_store

    root = str(use_store(examples_up, store))
    run = opskit("backup", "seriousletter", "prod", "--root", root)
    assert run.returncode == 0, run.stderr
    name = archive_name(run.stdout)
    (listed,) = [a for a in archives_of(root, "seriousletter", "prod") if a["name"] == name]
    archive = Path(str(listed["path"]))
    assert mode(archive) == 0o700 and mode(archive.parent) == 0o700
    if store == "folder":
        assert {mode(f) for f in archive.iterdir()} == {0o600}
        dump = next(archive.glob("*.sql.zst"))
    else:
        assert {mode(f) for f in archive.iterdir()} <= {0o600}
        repository = BACKUPS / ".restic"
        assert mode(repository) == 0o700
        found = {p: mode(p) for p in repository.rglob("*")}
        assert all(m & 0o077 == 0 for m in found.values()), found
        dump = max((p for p in found if p.is_file()), key=lambda p: p.stat().st_size)
    as_nobody = subprocess.run(
        ["runuser", "-u", "nobody", "--", "cat", str(dump)], capture_output=True
    )
    assert as_nobody.returncode != 0 and b"Permission denied" in as_nobody.stderr
    # an archive made readable by hand is a problem for doctor
    kept = mode(dump)
    dump.chmod(0o644)
    try:
        report = opskit("doctor", "--json", "--root", root)
        loose = [f for f in report.json()["findings"] if "read by other users" in f["message"]]  # type: ignore[index]
        # the repository is the root's: each project whose backup.dir holds it names it
        assert report.returncode == 1
        assert any(f["project"] == "seriousletter" and str(dump) in f["message"] for f in loose), (
            loose
        )
    finally:
        dump.chmod(kept)


# -- path restores: links that lead out, and a swap that fails (#10, part 2) ----------------


def tar_of(folder: Path) -> bytes:
    import subprocess

    return subprocess.run(
        ["tar", "-c", "-C", str(folder.parent), folder.name], capture_output=True, check=True
    ).stdout


@pytest.mark.parametrize("kind", ["top-level link", "link inside"])
def test_a_restore_never_creates_a_link_that_leads_out(tmp_path: Path, kind: str) -> None:
    import io

    from opskit.components import swap_in

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
        swap_in(LocalHost(), io.BytesIO(tar_of(crafted)), str(live), "uploads")
    assert (live / "photo.jpg").read_bytes() == b"jpeg" and not live.is_symlink()
    assert sorted(p.name for p in live.parent.iterdir()) == ["uploads"]  # no leftovers
    assert (outside / "precious.txt").read_text() == "not ours\n"


def test_a_swap_that_fails_leaves_the_live_folder(tmp_path: Path) -> None:
    import io

    from opskit.components import swap_in

    other = tmp_path / "crafted" / "downloads"  # the archive holds another folder's name
    other.mkdir(parents=True)
    (other / "x").write_text("x\n")
    live = tmp_path / "site" / "uploads"
    live.mkdir(parents=True)
    (live / "photo.jpg").write_bytes(b"jpeg")
    with pytest.raises(OpskitError, match="restoring uploads failed"):
        swap_in(LocalHost(), io.BytesIO(tar_of(other)), str(live), "uploads")
    assert (live / "photo.jpg").read_bytes() == b"jpeg"
    assert sorted(p.name for p in live.parent.iterdir()) == ["uploads"]


def test_sync_never_follows_a_folder_that_is_a_link(tmp_path: Path) -> None:
    from opskit.sync import rsync_tree

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "precious.txt").write_text("not ours\n")
    source = tmp_path / "prod"
    source.mkdir()
    target = tmp_path / "dev"
    target.symlink_to(outside)
    with pytest.raises(OpskitError, match="is a link"):
        rsync_tree(LocalHost(), str(source), str(target), dry_run=False)
    assert (outside / "precious.txt").exists()


# -- links inside archives, restore leftovers, lock modes (#19) ----------------------------


@pytest.mark.parametrize("earlier", [False, True], ids=["new lock", "lock made by an older opskit"])
def test_lock_files_are_private_whatever_the_umask(tmp_path: Path, earlier: bool) -> None:
    import os

    from opskit.locks import env_lock

    if earlier:
        (tmp_path / ".lock").write_bytes(b"")
        (tmp_path / ".lock").chmod(0o644)
        (tmp_path / ".lock.holder").write_text("left behind by a killed opskit\n")
        (tmp_path / ".lock.holder").chmod(0o644)
    old = os.umask(0o022)
    try:
        with env_lock(LocalHost(), str(tmp_path), "backup of shop prod", timeout=5):
            assert mode(tmp_path / ".lock") == 0o600
            assert mode(tmp_path / ".lock.holder") == 0o600
            assert "backup of shop prod" in (tmp_path / ".lock.holder").read_text()
    finally:
        os.umask(old)
    assert mode(tmp_path / ".lock") == 0o600


def test_a_move_aside_that_fails_leaves_no_staging_folder(tmp_path: Path) -> None:
    """The live folder cannot be moved aside (immutable): the restore fails, the live
    folder is as it was, and nothing of the restore is left beside it."""
    import io
    import subprocess

    from opskit.components import swap_in

    crafted = tmp_path / "crafted" / "uploads"
    crafted.mkdir(parents=True)
    (crafted / "photo.jpg").write_bytes(b"restored")
    live = tmp_path / "site" / "uploads"
    live.mkdir(parents=True)
    (live / "photo.jpg").write_bytes(b"jpeg")
    if subprocess.run(["chattr", "+i", str(live)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported here")
    try:
        with pytest.raises(OpskitError, match="restoring uploads failed"):
            swap_in(LocalHost(), io.BytesIO(tar_of(crafted)), str(live), "uploads")
    finally:
        subprocess.run(["chattr", "-i", str(live)], check=True)
    assert (live / "photo.jpg").read_bytes() == b"jpeg"
    assert sorted(p.name for p in live.parent.iterdir()) == ["uploads"]


def linked_dump(tmp_path: Path) -> Path:
    """Dev's archive folder, whose dump is a link to prod's (checksums matching)."""
    backups = tmp_path / "backups" / "mdf"
    dev = backups / "dev" / "mdf-dev-20261128T033000Z"
    prod_file = backups / "prod" / "mdf-prod-20261127T033000Z" / "db-db-wordpress.sql.zst"
    write_archive(
        dev, "db-db-wordpress.sql.zst", b"INSERT INTO wp_options VALUES (1);\n", prod_file
    )
    (dev / "db-db-wordpress.sql.zst").symlink_to(prod_file)
    return dev


def test_a_component_file_that_is_a_link_is_refused(tmp_path: Path) -> None:
    """A link to another env's dump, checksums recomputed: the name alone gives nothing away."""
    dev = linked_dump(tmp_path)
    host = LocalHost()
    (archive,) = list_archives(host, str(dev.parent))
    (fault,) = verify(host, archive)
    assert fault.component == "db-db-wordpress" and "is a link" in fault.problem, fault
    with pytest.raises(OpskitError, match="is a link"):
        b"".join(read_component(host, archive, archive.components[0]))


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_component_file_that_is_not_a_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    import os

    folder = tmp_path / "mdf" / "dev" / "mdf-dev-20261128T033000Z"
    write_archive(folder, "db.sql.zst", b"SELECT 1;\n", tmp_path / "elsewhere.zst")
    os.mkfifo(folder / "db.sql.zst") if kind == "fifo" else (folder / "db.sql.zst").mkdir()
    (archive,) = list_archives(LocalHost(), str(tmp_path / "mdf" / "dev"))
    (fault,) = verify(LocalHost(), archive)  # a FIFO must not make it hang
    assert "is not a regular file" in fault.problem, fault


def test_a_manifest_of_another_env_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "mdf" / "prod" / "mdf-prod-20261128T033000Z"  # holds dev's manifest
    write_archive(folder, "db.sql.zst", b"SELECT 1;\n", folder / "db.sql.zst")
    (archive,) = list_archives(LocalHost(), str(tmp_path / "mdf" / "prod"))
    (fault,) = verify(LocalHost(), archive)
    assert fault.component == "manifest" and "mdf dev" in fault.problem, fault


@pytest.mark.ssh
def test_a_component_file_that_is_a_link_is_refused_over_ssh(tmp_path: Path) -> None:
    from conftest import SSH_KEY, SSH_URL
    from opskit.host import SSHHost

    dev = linked_dump(tmp_path)
    with SSHHost(SSH_URL, key_filename=SSH_KEY) as host:
        (archive,) = list_archives(host, str(dev.parent))
        (fault,) = verify(host, archive)
        assert "is a link" in fault.problem and SSH_URL in fault.problem, fault
        with pytest.raises(OpskitError, match="is a link"):
            b"".join(read_component(host, archive, archive.components[0]))
        link = dev / "db-db-wordpress.sql.zst"
        link.resolve().rename(link)
        assert verify(host, archive) == []  # the same file, not a link: fine


def path_archive(tmp_path: Path, tree: Path) -> Path:
    """An env folder with one archive whose only component is the tar of *tree*, recorded
    as the path ``/srv/site/uploads``; checksums right."""
    payload = tar_of(tree)
    env_folder = tmp_path / "backups" / "mdf" / "dev"
    folder = env_folder / "mdf-dev-20261128T033000Z"
    write_archive(folder, "path-uploads.tar.zst", payload, folder / "path-uploads.tar.zst")
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["components"][0].update(
        key="path-uploads", kind="path", details={"path": "/srv/site/uploads"}
    )
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert hashlib.sha256(payload).hexdigest() == manifest["components"][0]["raw_sha256"]
    return env_folder


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("top-level link", "the archive's top-level folder is a link"),
        ("link inside", "the link escape leads out of it (to ../../elsewhere)"),
        ("another folder", "the archive holds no uploads"),
    ],
)
def test_verify_refuses_a_path_that_a_restore_refuses(
    tmp_path: Path, kind: str, problem: str
) -> None:
    """verify checks what restore checks: an archive it passes is one a restore takes."""
    import io

    from opskit.components import swap_in

    (tmp_path / "elsewhere").mkdir()
    crafted = tmp_path / "crafted" / ("downloads" if kind == "another folder" else "uploads")
    crafted.parent.mkdir()
    if kind == "top-level link":
        crafted.symlink_to(tmp_path / "elsewhere")
    else:
        crafted.mkdir()
        (crafted / "escape").symlink_to("../../elsewhere")
    (archive,) = list_archives(LocalHost(), str(path_archive(tmp_path, crafted)))
    (fault,) = verify(LocalHost(), archive)
    assert fault.problem == f"path-uploads.tar.zst: a restore would refuse it: {problem}"
    live = tmp_path / "site" / "uploads"
    live.mkdir(parents=True)
    with pytest.raises(OpskitError):  # and the restore does refuse it
        swap_in(LocalHost(), io.BytesIO(tar_of(crafted)), str(live), "uploads")


def test_verify_passes_a_path_with_links_that_stay_inside(tmp_path: Path) -> None:
    tree = tmp_path / "crafted" / "uploads"
    (tree / "2026").mkdir(parents=True)
    (tree / "2026" / "photo.jpg").write_bytes(b"jpeg")
    (tree / "latest").symlink_to("2026/photo.jpg")
    (tree / "2026" / "up").symlink_to("../latest")
    (archive,) = list_archives(LocalHost(), str(path_archive(tmp_path, tree)))
    assert verify(LocalHost(), archive) == []


@pytest.mark.docker
@pytest.mark.parametrize("kind", ["path is a link", "link inside leads out"])
def test_a_backup_that_a_restore_would_refuse_is_not_written(
    tmp_path: Path, kind: str, store: str
) -> None:
    """A backup path that is a link (data kept on another disk) or holds a link out of it:
    the backup says so in one line and writes no archive, instead of an archive that
    verifies and then cannot be restored."""
    from conftest import archives_of, assert_one_error_line, opskit
    from testroot import NS

    project = tmp_path / "root" / "site"
    (project / "dev").mkdir(parents=True)
    (project / "project.yaml").write_text(
        f'name: site\nenvironments: [dev]\ncompose: {{dir: "{{env}}", project_name: "{NS}-site-{{env}}"}}\n'
        f"backup: {{store: {store}, dir: {tmp_path / 'backups'}, paths: ['{{env}}/uploads']}}\n"
    )
    disk = tmp_path / "disk" / "uploads"
    disk.mkdir(parents=True)
    (disk / "photo.jpg").write_bytes(b"jpeg")
    if kind == "path is a link":
        (project / "dev" / "uploads").symlink_to(disk)
        fragments = ["backup path", "uploads is a link (to", "name the folder it leads to"]
    else:
        shutil.copytree(disk, project / "dev" / "uploads")
        (project / "dev" / "uploads" / "shared").symlink_to("/etc")
        fragments = ["holds the link shared, which leads out of it (to /etc)"]
    (tmp_path / "root" / "opskit.yaml").write_text(f"state_dir: {tmp_path / 'state'}\n")
    run = opskit("backup", "site", "dev", "--root", str(tmp_path / "root"))
    assert_one_error_line(run, *fragments, "a restore would refuse it")
    env_folder = tmp_path / "backups" / "site" / "dev"
    assert [p.name for p in env_folder.iterdir() if not p.name.startswith(".lock")] == []
    assert archives_of(tmp_path / "root", "site", "dev") == []


@pytest.mark.docker
@pytest.mark.stores("folder")  # a folder archive's dump made a link by hand
def test_a_dump_linked_to_another_envs_is_refused_by_verify_and_restore(
    examples_up: Path, store: str
) -> None:
    """#19: dev's archive whose dump is a link to prod's, checksums and row counts taken
    from prod's record: verify fails it and restore loads nothing."""
    from archives import linked_copy
    from conftest import assert_one_error_line, opskit
    from test_backup import database_state
    from testroot import use_store

    root = str(use_store(examples_up, store))
    prod = Path(opskit("backup", "mdf", "prod", "--root", root, timeout=300).stdout.strip())
    dev = Path(opskit("backup", "mdf", "dev", "--root", root, timeout=300).stdout.strip())
    copy = linked_copy(dev, "mdf-dev-20991231T235959Z", prod)
    try:
        run = opskit("verify", "mdf", "dev", "--name", copy.name, "--root", root)
        assert run.returncode == 1 and "db-db-wordpress" in run.stderr, run.stderr
        assert "is a link" in run.stderr, run.stderr
        before = database_state(root, "mdf")
        run = opskit("restore", "mdf", "dev", "--name", copy.name, "--yes", "--root", root)
        assert_one_error_line(run, "is damaged, nothing was restored", "is a link")
        assert database_state(root, "mdf") == before
    finally:
        shutil.rmtree(copy)
