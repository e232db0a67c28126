"""Backups against real MariaDB, PostgreSQL, files and volumes (the example root)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zstandard

from archives import into_store
from conftest import (
    archive_name,
    archives_of,
    assert_one_error_line,
    manifest_of,
    opskit,
    wait_until,
)
from testroot import BACKUPS, OFFSITE, STATE, ns, use_store

pytestmark = pytest.mark.docker


@pytest.fixture
def root(examples_up, store):  # type: ignore[no-untyped-def]
    """The examples' root, its archives in *store*, with no archive of mdf dev, mdf prod
    or seriousletter dev in either store (the repository, shared by the root's projects,
    is made anew)."""
    for env_dir in (
        BACKUPS / "mdf" / "dev",
        BACKUPS / "seriousletter" / "dev",
        BACKUPS / "mdf" / "prod",
        BACKUPS / ".restic",
    ):
        shutil.rmtree(env_dir, ignore_errors=True)
    return str(use_store(examples_up, store))


def sql(root: str, project: str, statement: str) -> str:
    if project == "mdf":
        script = 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mariadb -uroot -N -B wordpress -e "$1"'
    else:
        script = 'PGPASSWORD="$POSTGRES_PASSWORD" psql -h 127.0.0.1 -U postgres -At -d seriousletter -c "$1"'
    run = opskit(
        "exec", project, "dev", "db", "--root", root, "--", "sh", "-c", script, "sh", statement
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def database_state(root: str, project: str) -> dict[str, str]:
    """Every table's rows, hashed (compared by checksums, not by eye)."""
    if project == "mdf":
        tables = sql(root, project, "SHOW TABLES").split()
        return {
            t: hashlib.sha256(
                sql(root, project, f"SELECT * FROM {t} ORDER BY 1").encode()
            ).hexdigest()
            for t in tables
        }
    tables = sql(
        root, project, "SELECT tablename FROM pg_tables WHERE schemaname='public' ORDER BY 1"
    ).split()
    return {
        t: hashlib.sha256(sql(root, project, f"SELECT * FROM {t} ORDER BY 1").encode()).hexdigest()
        for t in tables
    }


def tree_state(path: Path) -> dict[str, tuple[str, int]]:
    """Each file's sha256 and mode under *path*."""
    state = {}
    for item in sorted(path.rglob("*")):
        if item.is_file():
            state[str(item.relative_to(path))] = (
                hashlib.sha256(item.read_bytes()).hexdigest(),
                item.stat().st_mode,
            )
        elif item.is_dir():
            state[str(item.relative_to(path)) + "/"] = ("", item.stat().st_mode)
    return state


def volume_path(name: str) -> Path:
    out = subprocess.run(
        ["docker", "volume", "inspect", "-f", "{{.Mountpoint}}", name],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def listed(root: str, project: str, env: str) -> list[str]:
    run = opskit("backups", project, env, "--json", "--root", root)
    assert run.returncode == 0, run.stderr
    return [a["name"] for a in run.json()["archives"]]  # type: ignore[index]


def test_mariadb_files_and_volume_round_trip(root: str, store: str) -> None:
    uploads = Path(root) / "mdf" / "dev" / "wp-content" / "uploads"
    media = volume_path(ns("mdf-dev_media"))
    (media / "cover.jpg").write_bytes(os.urandom(300_000))
    (media / "deep" / "er").mkdir(parents=True, exist_ok=True)
    (media / "deep" / "er" / "notes.txt").write_text("volume file\n")
    (uploads / "2026" / "11" / "private.txt").write_text("secret upload\n")
    (uploads / "2026" / "11" / "private.txt").chmod(0o600)
    before = (database_state(root, "mdf"), tree_state(uploads), tree_state(media))

    run = opskit("backup", "mdf", "dev", "--root", root)
    assert run.returncode == 0, run.stderr
    (printed,) = run.stdout.splitlines()
    (archive,) = archives_of(root, "mdf", "dev")
    assert archive_name(printed) == archive["name"] and archive["name"].startswith("mdf-dev-")
    where = f"{BACKUPS}/.restic:" if store == "restic" else f"{BACKUPS}/mdf/dev/"
    assert printed == where + str(archive["name"])
    manifest = manifest_of(archive["path"])
    assert {c["kind"] for c in manifest["components"]} == {"database", "path", "volume"}
    assert manifest["descriptor"]["text"].startswith("# Example")

    sql(root, "mdf", "DROP TABLE wp_posts")
    sql(root, "mdf", "UPDATE wp_options SET option_value='changed' WHERE option_name='blogname'")
    (uploads / "2026" / "11" / "hello.txt").write_text("edited\n")
    (uploads / "2026" / "11" / "private.txt").unlink()
    (uploads / "extra.txt").write_text("not in the backup\n")
    for item in media.iterdir():
        shutil.rmtree(item) if item.is_dir() else item.unlink()
    assert database_state(root, "mdf") != before[0]

    run = opskit("restore", "mdf", "dev", "--latest", "--yes", "--root", root)
    assert run.returncode == 0, run.stderr
    assert (database_state(root, "mdf"), tree_state(uploads), tree_state(media)) == before
    assert opskit("health", "mdf", "dev", "--root", root).returncode == 0
    # the safety backup of the changed state is an archive too
    assert len(listed(root, "mdf", "dev")) == 2


def test_postgres_round_trip(root: str) -> None:
    uploads = Path(root) / "seriousletter" / "uploads" / "dev"
    sql(
        root,
        "seriousletter",
        "INSERT INTO letters (subject, body) SELECT 'bulk ' || g, repeat('x', 500) FROM generate_series(1, 2000) g",
    )
    before = (database_state(root, "seriousletter"), tree_state(uploads))
    assert opskit("backup", "seriousletter", "dev", "--root", root).returncode == 0
    sql(root, "seriousletter", "DROP TABLE letters")
    (uploads / "letter.txt").write_text("changed\n")
    run = opskit(
        "restore", "seriousletter", "dev", "--latest", "--yes", "--no-safety-backup", "--root", root
    )
    assert run.returncode == 0, run.stderr
    assert (database_state(root, "seriousletter"), tree_state(uploads)) == before
    assert len(listed(root, "seriousletter", "dev")) == 1


# folder alone: the test alters a folder archive's files by hand (the restic store's
# damaged packs: tests/test_store_faults.py)
@pytest.mark.stores("folder")
def test_verify_and_restore_refuse_an_altered_archive(root: str) -> None:
    run = opskit("backup", "mdf", "dev", "--root", root)
    archive = Path(run.stdout.strip())
    assert opskit("verify", "mdf", "dev", "--root", root).returncode == 0
    target = next(archive.glob("path-*.tar.zst"))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    run = opskit("verify", "mdf", "dev", "--root", root)
    assert run.returncode == 1
    assert "path-dev-wp-content-uploads" in run.stderr
    state = database_state(root, "mdf")
    sql(root, "mdf", "UPDATE wp_options SET option_value='live' WHERE option_name='blogname'")
    live = database_state(root, "mdf")
    run = opskit("restore", "mdf", "dev", "--name", archive.name, "--yes", "--root", root)
    assert_one_error_line(run, "is damaged, nothing was restored", "path-dev-wp-content-uploads")
    assert database_state(root, "mdf") == live != state
    assert json.loads((archive / "verified.json").read_text())["ok"] is False
    assert (
        opskit("backups", "mdf", "dev", "--json", "--root", root).json()["archives"][0]["verified"]
        == "FAILED"
    )  # type: ignore[index]


# folder alone: the test alters a folder archive's files by hand (the restic store's
# damaged packs: tests/test_store_faults.py)
@pytest.mark.stores("folder")
def test_a_truncated_archive_is_refused(root: str) -> None:
    archive = Path(opskit("backup", "mdf", "dev", "--root", root).stdout.strip())
    target = next(archive.glob("db-*.sql.zst"))
    target.write_bytes(target.read_bytes()[:-20])
    run = opskit("verify", "mdf", "dev", "--name", archive.name, "--root", root)
    assert run.returncode == 1 and "db-db-wordpress" in run.stderr


def _partial(directory: Path) -> Path | None:
    return next((p for p in directory.glob(".*.partial")), None) if directory.exists() else None


KILL_POINTS = {
    "archive folder created": lambda d: _partial(d) is not None,
    "database dumped": lambda d: bool((p := _partial(d)) and list(p.glob("path-*"))),
    "volume half written": lambda d: bool(
        (p := _partial(d)) and any(f.stat().st_size > 40 << 20 for f in p.glob("volume-*"))
    ),
    "volume written": lambda d: bool(
        (p := _partial(d)) and any(f.stat().st_size > 100 << 20 for f in p.glob("volume-*"))
    ),
}


def _reached(predicate, directory: Path) -> bool:  # type: ignore[no-untyped-def]
    try:
        return bool(predicate(directory))
    except OSError:  # the folder moved on under us
        return False


# folder alone: the kill points are the folder writer's steps (its .partial folder); a
# restic backup cut off is tests/test_store_faults.py's
@pytest.mark.stores("folder")
def test_backup_killed_at_any_point_leaves_nothing(root: str) -> None:
    directory = BACKUPS / "mdf" / "dev"
    big = volume_path(ns("mdf-dev_media")) / "big.bin"
    with big.open("wb") as handle:
        for _ in range(120):
            handle.write(os.urandom(1 << 20))  # incompressible: the backup takes a while
    hit = []
    try:
        assert opskit("backup", "mdf", "dev", "--root", root).returncode == 0
        first = listed(root, "mdf", "dev")
        for point, reached in KILL_POINTS.items():
            process = subprocess.Popen(
                [sys.executable, "-m", "opskit", "backup", "mdf", "dev", "--root", root],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            while process.poll() is None and not _reached(reached, directory):
                time.sleep(0.005)
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                hit.append(point)
            process.wait()
            if point in hit:
                assert listed(root, "mdf", "dev") == first, f"killed when {point}"
            first = listed(root, "mdf", "dev")
        assert len(hit) >= 3, hit
        run = opskit("backup", "mdf", "dev", "--root", root, env={"OPSKIT_LOCK_TIMEOUT": "5"})
        assert run.returncode == 0, run.stderr  # the lock is free
        assert _partial(directory) is None  # leftovers cleaned by the next backup
        assert opskit("verify", "mdf", "dev", "--root", root).returncode == 0
    finally:
        big.unlink()


def test_a_locked_env_makes_a_second_backup_wait_then_fail(root: str) -> None:
    directory = BACKUPS / "mdf" / "dev"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ".lock.holder").write_text("restore of mdf dev by tester\n")
    holder = subprocess.Popen(["flock", str(directory / ".lock"), "sleep", "30"])
    try:
        time.sleep(0.5)
        started = time.monotonic()
        run = opskit("backup", "mdf", "dev", "--root", root, env={"OPSKIT_LOCK_TIMEOUT": "2"})
        assert time.monotonic() - started >= 2
        assert_one_error_line(run, "is locked by restore of mdf dev by tester")
    finally:
        holder.kill()
        holder.wait()
    assert listed(root, "mdf", "dev") == []


def test_two_backups_at_once_run_one_after_the_other(root: str) -> None:
    command = [sys.executable, "-m", "opskit", "backup", "mdf", "dev", "--root", root]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert first.wait(timeout=120) == 0 and second.wait(timeout=120) == 0
    printed = [p.stdout.read().decode().strip() for p in (first, second)]  # type: ignore[union-attr]
    assert len(set(printed)) == 2
    archives = archives_of(root, "mdf", "dev")
    assert sorted(a["name"] for a in archives) == sorted(map(archive_name, printed))
    spans = sorted(
        (manifest_of(a["path"])["started"], manifest_of(a["path"])["finished"]) for a in archives
    )
    assert spans[0][1] <= spans[1][0]  # they did not overlap


def test_restore_whose_import_fails_half_way_puts_the_env_back(root: str, store: str) -> None:
    # The archive is written as a folder and its dump broken by hand; for the store it then
    # goes in as 'backups migrate' moves one (checked against its manifest on the way).
    use_store(Path(root), "folder")
    archive = Path(opskit("backup", "mdf", "dev", "--root", root).stdout.strip())
    # Make a valid archive (checksums right) whose SQL breaks in the middle, as a dump
    # from an incompatible server would.
    dump_file = next(archive.glob("db-*.sql.zst"))
    dump = zstandard.ZstdDecompressor().decompressobj().decompress(dump_file.read_bytes())
    lines = dump.split(b"\n")
    broken = b"\n".join([*lines[: len(lines) // 2], b"THIS IS NOT SQL;", *lines[len(lines) // 2 :]])
    stored = zstandard.ZstdCompressor().compress(broken)
    dump_file.write_bytes(stored)
    manifest = json.loads((archive / "manifest.json").read_text())
    for component in manifest["components"]:
        if component["file"] == dump_file.name:
            component.update(
                raw_bytes=len(broken),
                raw_sha256=hashlib.sha256(broken).hexdigest(),
                stored_bytes=len(stored),
                sha256=hashlib.sha256(stored).hexdigest(),
            )
    (archive / "manifest.json").write_text(json.dumps(manifest))
    if store == "restic":
        into_store(archive, str(STATE))
        use_store(Path(root), "restic")
        assert [a["store"] for a in archives_of(root, "mdf", "dev")] == ["restic"]

    sql(
        root,
        "mdf",
        "UPDATE wp_options SET option_value='before restore' WHERE option_name='blogname'",
    )
    uploads = Path(root) / "mdf" / "dev" / "wp-content" / "uploads"
    (uploads / "2026" / "11" / "hello.txt").write_text("before restore\n")
    before = (
        database_state(root, "mdf"),
        tree_state(uploads),
        tree_state(volume_path(ns("mdf-dev_media"))),
    )
    run = opskit("restore", "mdf", "dev", "--name", archive.name, "--yes", "--root", root)
    assert run.returncode == 1
    assert "put back from" in run.stderr and "restoring db-db-wordpress" in run.stderr
    assert (
        database_state(root, "mdf"),
        tree_state(uploads),
        tree_state(volume_path(ns("mdf-dev_media"))),
    ) == before
    wait_until(
        lambda: opskit("health", "mdf", "dev", "--root", root).returncode == 0,
        timeout=60,
        what="mdf dev healthy",
    )


def test_backup_stop_services_are_started_again_even_on_failure(root: str) -> None:
    def mail_state() -> str:
        rows = opskit("status", "mdf", "prod", "--json", "--root", root).json()["containers"]  # type: ignore[index]
        return next(r["state"] for r in rows if r["service"] == "mail")

    assert opskit("backup", "mdf", "prod", "--root", root).returncode == 0
    assert mail_state() == "running"
    assert opskit("stop", "mdf", "prod", "db", "--root", root).returncode == 0
    try:
        run = opskit("backup", "mdf", "prod", "--root", root)
        assert run.returncode == 1
        assert "the db container is not running (" in run.stderr
        assert "db_1 is exited)" in run.stderr or "db-1 is exited)" in run.stderr
        assert mail_state() == "running"
        assert not [
            n
            for n in os.listdir(BACKUPS / "mdf" / "prod")
            if n.startswith(".") and n.endswith(".partial")
        ]
        assert len(listed(root, "mdf", "prod")) == 1
    finally:
        assert opskit("start", "mdf", "prod", "--root", root).returncode == 0
    wait_until(
        lambda: opskit("health", "mdf", "prod", "--root", root).returncode == 0,
        timeout=90,
        what="mdf prod healthy",
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--name", "../../etc"], "is not an archive name"),
        (["--name", "mdf-dev-20261127T000000Z/x"], "is not an archive name"),
        (["--name", "seriousletter-dev-20261127T000000Z"], "is not one of mdf dev"),
        (["--name", "mdf-dev-20200101T000000Z"], "no archive mdf-dev-20200101T000000Z"),
    ],
)
def test_bad_archive_names(root: str, args: list[str], fragment: str) -> None:
    assert_one_error_line(opskit("restore", "mdf", "dev", *args, "--yes", "--root", root), fragment)


def test_restore_without_a_choice_on_a_non_terminal(examples_up: Path) -> None:
    assert_one_error_line(
        opskit("restore", "mdf", "dev", "--root", str(examples_up)), "--name ARCHIVE or --latest"
    )


def test_wrong_password_variable(examples_up: Path, tmp_path: Path) -> None:
    import opskit as api
    from opskit.components import BackupContext, DatabaseDump
    from opskit.descriptor import Database
    from opskit.errors import OpskitError

    with api.Ops(root=str(examples_up)) as ops:
        project = ops.project("mdf")
        context = BackupContext(ops.host, project, "dev", tuple(ops.status("mdf", "dev")))
        component = DatabaseDump(
            Database(
                service="db",
                type="mariadb",
                name="wordpress",
                user="root",
                password_env="NO_SUCH_VARIABLE",
            )
        )
        from opskit.archive import write_component

        with pytest.raises(
            OpskitError, match="variable NO_SUCH_VARIABLE is not set in the container"
        ):
            write_component(ops.host, component, context, str(tmp_path))


# folder alone: the test makes 135 archives of past days by copying a folder archive
# (the restic store's prune: tests/test_store.py)
@pytest.mark.stores("folder")
def test_prune_follows_the_retention_rules(root: str) -> None:
    from datetime import UTC, datetime, timedelta

    from opskit.retention import decide

    run = opskit("backup", "mdf", "dev", "--root", root)
    assert run.returncode == 0, run.stderr  # else the copies below would go to the cwd
    source = Path(run.stdout.strip())
    directory = source.parent
    assert directory.is_absolute() and directory.name == "dev"
    start = datetime(2026, 1, 1, 3, 30, tzinfo=UTC)
    names = []
    for day in range(0, 200, 3):
        for hour in (0, 10):
            moment = start + timedelta(days=day, hours=hour)
            name = f"mdf-dev-{moment:%Y%m%dT%H%M%SZ}"
            shutil.copytree(source, directory / name)
            names.append((name, moment))
    names.append(
        (source.name, datetime.strptime(source.name[-16:], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
    )
    old_verified = names[5][0]
    (directory / old_verified / "verified.json").write_text(
        '{"ok": true, "time": "2026-01-08T00:00:00+00:00"}'
    )
    expected = decide(
        names,
        keep_last=1,
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=6,
        newest_verified=old_verified,
    )
    dry = opskit("prune", "mdf", "dev", "--dry-run", "--json", "--root", root).json()["envs"][0]  # type: ignore[index]
    assert dry["keep"] == list(expected.keep) and dry["remove"] == list(expected.remove)
    assert old_verified in dry["keep"]
    assert len(listed(root, "mdf", "dev")) == len(names)  # dry run removed nothing
    assert opskit("prune", "mdf", "dev", "--root", root).returncode == 0
    assert listed(root, "mdf", "dev") == list(expected.keep)


def test_a_full_disk_leaves_no_partial_archive(root: str, tmp_path: Path) -> None:
    """The mdf descriptor's backup folder, for one backup, is a 1 MiB tmpfs.

    The descriptor is changed in place, not copied to another root: a copy elsewhere does
    not own the containers compose started from this root's folders (containers.resolve).
    """
    disk = tmp_path / "disk"
    disk.mkdir()
    descriptor = Path(root) / "mdf" / "project.yaml"
    original = descriptor.read_text()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], check=True)
    try:
        descriptor.write_text(original.replace(str(BACKUPS), str(disk)))
        big = volume_path(ns("mdf-dev_media")) / "incompressible.bin"
        big.write_bytes(os.urandom(3 << 20))
        try:
            run = opskit("backup", "mdf", "dev", "--root", root)
            listed_there = archives_of(root, "mdf", "dev")  # the folders or the repository
        finally:
            big.unlink()
            descriptor.write_text(original)
        assert_one_error_line(run)
        assert "no space left on device" in run.stderr.lower()  # the OS's words, or restic's
        leftovers = [
            p.name for p in (disk / "mdf" / "dev").iterdir() if not p.name.startswith(".lock")
        ]
        assert leftovers == []
        assert listed_there == []
        assert opskit("health", "mdf", "dev", "--root", root).returncode == 0
    finally:
        descriptor.write_text(original)
        subprocess.run(["umount", str(disk)], check=True)


def test_status_shows_the_newest_backup(root: str) -> None:
    printed = opskit("backup", "mdf", "dev", "--root", root).stdout.strip()
    (archive,) = archives_of(root, "mdf", "dev")
    data = opskit("status", "mdf", "--json", "--root", root).json()
    newest = {(b["project"], b["environment"]): b["newest"] for b in data["backups"]}  # type: ignore[index]
    assert newest[("mdf", "dev")]["path"] == archive["path"]
    assert newest[("mdf", "dev")]["name"] == archive_name(printed) == archive["name"]
    assert newest[("mdf", "prod")] is None or newest[("mdf", "prod")]["name"].startswith(
        "mdf-prod-"
    )
    plain = opskit("status", "mdf", "dev", "--root", root).stdout
    assert "NEWEST BACKUP" in plain and archive["name"] in plain


def test_project_plugins_add_what_their_stacks_need(root: str) -> None:
    assert opskit("backup", "mdf", "prod", "--root", root).returncode == 0
    newest = archives_of(root, "mdf", "prod")[0]
    keys = [c["key"] for c in manifest_of(newest["path"])["components"]]  # type: ignore[attr-defined]
    # from the descriptor: the database, the uploads, the media volume; from opskit_mdf: the mail data
    assert keys == [
        "db-db-wordpress",
        "path-prod-wp-content-uploads",
        f"volume-{ns('mdf-prod')}_media",
        f"volume-{ns('mdf-prod-mail')}_mail_data",
    ]

    # with no external plugin the core still backs up all that the descriptor names
    bare = opskit("backup", "mdf", "prod", "--root", root, env={"OPSKIT_PLUGINS": ""})
    assert bare.returncode == 0, bare.stderr
    newest = archives_of(root, "mdf", "prod")[0]
    assert newest["name"] == archive_name(bare.stdout)
    manifest = manifest_of(newest["path"])
    assert [c["key"] for c in manifest["components"]] == keys[:3]  # type: ignore[attr-defined]

    import opskit as api
    from opskit.components import BackupContext, container_database

    with api.Ops(root=root) as ops:
        context = BackupContext(
            ops.host, ops.project("seriousletter"), "dev", tuple(ops.status("seriousletter", "dev"))
        )
        database = container_database(context, "db", "postgres")
        assert database is not None
        assert (database.database.name, database.database.user, database.database.password_env) == (
            "seriousletter",
            "postgres",
            "POSTGRES_PASSWORD",
        )
        keys = [c.key for c in ops.plugins.backup_components(context)]
        assert keys == [
            "db-db-seriousletter",
            "path-uploads-dev",
        ]  # the plugin's and the descriptor's are the same


def test_restore_offsite_of_a_lost_database_archive_gives_the_same_rows_and_files(
    examples_up: Path, store: str
) -> None:
    """The server-wide target of the examples' opskit.yaml (tests/testroot.py points it at
    this checkout's folder); the archive's local copy deleted (its folder, or the whole
    restic repository with its state); restore --offsite --latest downloads it, verifies
    it and restores it."""
    root = str(use_store(examples_up, store))
    assert f"target: file://{OFFSITE}\n" in (examples_up / "opskit.yaml").read_text()
    uploads = examples_up / "seriousletter" / "uploads" / "dev"
    try:
        sql(root, "seriousletter", "INSERT INTO letters (subject, body) VALUES ('offsite', 'x')")
        before = (database_state(root, "seriousletter"), tree_state(uploads))
        assert opskit("offsite", "init", "seriousletter", "--root", root).returncode == 0
        done = opskit("backup", "seriousletter", "dev", "--offsite", "--root", root, timeout=600)
        assert done.returncode == 0, done.stderr
        name = archive_name(done.stdout)
        (listed,) = [a for a in archives_of(root, "seriousletter", "dev") if a["name"] == name]
        shutil.rmtree(str(listed["path"]))  # the local copy is lost: its folder, its state
        shutil.rmtree(BACKUPS / ".restic", ignore_errors=True)  # and the store's repository
        sql(root, "seriousletter", "DELETE FROM letters WHERE subject = 'offsite'")
        (uploads / "letter.txt").write_text("changed after the backup\n")

        restored = opskit(
            "restore", "seriousletter", "dev", "--offsite", "--latest", "--yes",
            "--no-safety-backup", "--root", root, timeout=600,
        )  # fmt: skip
        assert restored.returncode == 0, restored.stderr
        (said,) = [line for line in restored.stdout.splitlines() if line.startswith("restored ")]
        assert archive_name(said) == name
        assert (database_state(root, "seriousletter"), tree_state(uploads)) == before
        back = [a for a in archives_of(root, "seriousletter", "dev") if a["name"] == name]
        assert back and back[0]["verified"] == "ok"
    finally:
        shutil.rmtree(BACKUPS / "seriousletter" / "dev", ignore_errors=True)
        shutil.rmtree(BACKUPS / ".restic", ignore_errors=True)
