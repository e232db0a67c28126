"""Restore one part (#22): ``restore --only KEY`` and ``opskit extract``.

Unit tests for what is pure (which component and path a PATH names, a selection of
components, retention of partial archives) and for the tar extraction with the real tar on
this machine, hostile streams included; one docker test on the examples (mdf dev)."""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest

from clock import local_time_zone
from conftest import assert_one_error_line, opskit
from opskit.archive import Archive, ArchiveError
from opskit.backups import locate, selected
from opskit.components import extract_member
from opskit.errors import NotFoundError, OpskitError
from opskit.host import LocalHost
from test_retention import TODAY, site_archives, site_prune, site_root

FOLDER = "/srv/mdf"


def archive(*records: tuple[str, str, dict[str, str]]) -> Archive:
    """An archive of mdf prod whose manifest holds *records* (key, kind, details)."""
    components = [
        {"key": key, "kind": kind, "file": f"{key}.zst", "raw_bytes": 0, "raw_sha256": "",
         "stored_bytes": 0, "sha256": "", "details": details}
        for key, kind, details in records
    ]  # fmt: skip
    manifest = {"project": "mdf", "environment": "prod", "components": components}
    return Archive("/b/mdf/prod/mdf-prod-20261203T033000Z", manifest)


MDF = archive(
    ("db-db-wordpress", "database", {"service": "db"}),
    ("path-prod-wp-content", "path", {"path": f"{FOLDER}/prod/wp-content"}),
    ("path-prod-wp-content-uploads", "path", {"path": f"{FOLDER}/prod/wp-content/uploads"}),
    ("volume-mdf-prod_media", "volume", {"volume": "mdf-prod_media"}),
)


def located(spec: str) -> tuple[str, str]:
    record, inside = locate(MDF, spec, FOLDER)
    return record.key, inside


def test_a_path_names_the_deepest_path_component_that_holds_it() -> None:
    assert located("prod/wp-content/uploads/2026/x.jpg") == (
        "path-prod-wp-content-uploads",
        "2026/x.jpg",
    )
    assert located(f"{FOLDER}/prod/wp-content/uploads/2026/") == (
        "path-prod-wp-content-uploads",
        "2026",
    )
    assert located("prod/wp-content/themes/a.css") == ("path-prod-wp-content", "themes/a.css")
    assert located("prod/wp-content/uploads") == ("path-prod-wp-content-uploads", "")
    assert located("./prod/wp-content/x/../index.php") == ("path-prod-wp-content", "index.php")


def test_key_colon_path_names_a_place_in_any_components_tree() -> None:
    assert located("volume-mdf-prod_media:deep/er/notes.txt") == (
        "volume-mdf-prod_media",
        "deep/er/notes.txt",
    )
    assert located("volume-mdf-prod_media:") == ("volume-mdf-prod_media", "")
    assert located("volume-mdf-prod_media:/deep/") == ("volume-mdf-prod_media", "deep")
    assert located("path-prod-wp-content-uploads:a:b.jpg") == (
        "path-prod-wp-content-uploads",
        "a:b.jpg",
    )
    # not a key: a path whose name holds a colon
    assert located("prod/wp-content/uploads/a:b.jpg") == ("path-prod-wp-content-uploads", "a:b.jpg")


@pytest.mark.parametrize(
    "spec",
    [
        "volume-mdf-prod_media:../../etc/passwd",
        "path-prod-wp-content:x/../../..",
        "volume-mdf-prod_media:..",
    ],
)
def test_names_that_lead_out_of_the_tree_are_refused(spec: str) -> None:
    with pytest.raises(ArchiveError, match="leads out of the component's tree"):
        locate(MDF, spec, FOLDER)


@pytest.mark.parametrize(
    "spec", ["prod/wp-content/../../../etc/passwd", "/etc/passwd", "prod/other", "nope:x"]
)
def test_a_path_inside_no_path_component_is_not_found_and_the_keys_are_named(spec: str) -> None:
    with pytest.raises(NotFoundError, match="inside none of its paths") as raised:
        locate(MDF, spec, FOLDER)
    assert "db-db-wordpress, path-prod-wp-content" in str(raised.value)
    assert "KEY:PATH" in str(raised.value)


def test_a_selection_keeps_the_named_components_and_refuses_an_unknown_key() -> None:
    assert selected(MDF, ()) is MDF
    chosen = selected(MDF, ["volume-mdf-prod_media", "db-db-wordpress"])
    assert [c.key for c in chosen.components] == ["db-db-wordpress", "volume-mdf-prod_media"]
    assert chosen.name == MDF.name and chosen.path == MDF.path
    with pytest.raises(ArchiveError) as raised:
        selected(MDF, ["db-wordpress", "db-db-wordpress"])
    message = str(raised.value)
    assert "holds no component db-wordpress" in message
    assert (
        "(it holds db-db-wordpress, path-prod-wp-content, path-prod-wp-content-uploads," in message
    )


def test_a_partial_archive_counts_for_no_retention_rule_and_stays_while_an_undo_point(
    tmp_path: Path,
) -> None:
    root = site_root(tmp_path)
    dev = site_archives(root, "dev", range(0, 3))
    folder = root / "backups" / "site" / "dev"
    # the newest two are partial safety backups (restore --only); one is an undo point
    for day in (0, 1):
        manifest = json.loads((folder / dev[day] / "manifest.json").read_text())
        (folder / dev[day] / "manifest.json").write_text(json.dumps({**manifest, "only": ["x"]}))
    entry = {"user": "t", "project": "site", "time": (TODAY - timedelta(hours=1)).isoformat(),
             "command": "restore", "envs": ["dev"], "safety_backup": dev[0], "only": ["x"]}  # fmt: skip
    (root / "backups" / "opskit-audit.log").write_text(json.dumps(entry) + "\n")
    with local_time_zone("UTC"):
        decision = site_prune(root, "dev", TODAY)
    # keep_last 1 and keep_daily 1 keep the newest whole archive, however old
    assert decision.reasons[dev[2]] == ("last 1", "daily 2026-12-01")
    assert decision.reasons[dev[0]] == ("undo point of restore 2026-12-03 07:35",)
    assert decision.remove == (dev[1],)
    assert decision.remove_reasons[dev[1]] == ("a partial safety backup and no undo point",)
    assert decision.keep == (dev[0], dev[2])

    # with no archive of the whole env left, the newest partial one stays all the same
    shutil.rmtree(folder / dev[2])
    (root / "backups" / "opskit-audit.log").unlink()
    with local_time_zone("UTC"):
        decision = site_prune(root, "dev", TODAY)
    assert (decision.keep, decision.remove) == ((dev[0],), (dev[1],))
    assert decision.reasons[dev[0]] == ("newest",)


# -- the tar extraction, with the real tar --------------------------------------------------


def tar_of(*members: tuple[str, bytes | str | None]) -> io.BytesIO:
    """A tar stream: (name, bytes) a file, (name, None) a folder, (name, "->target") a link."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if content is None else 0o644
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content.removeprefix("->")
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    out.seek(0)
    return out


UPLOADS = tar_of(
    ("uploads", None),
    ("uploads/2026", None),
    ("uploads/2026/x.jpg", b"\xff\xd8 jpeg bytes"),
    ("uploads/2026/y.txt", b"why\n"),
    ("uploads/2026/inside", "->y.txt"),
    ("uploads/readme.txt", b"top\n"),
)


def files(folder: Path) -> dict[str, bytes | str]:
    return {
        str(p.relative_to(folder)): (f"->{os.readlink(p)}" if p.is_symlink() else p.read_bytes())
        for p in sorted(folder.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


def extract(source: io.BytesIO, member: str, to: Path, name: str, overwrite: bool = False) -> str:
    source.seek(0)
    return extract_member(LocalHost(), source, member, str(to), name, overwrite)


def test_extract_a_file_and_a_folder_under_their_own_names(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"  # created
    assert extract(UPLOADS, "uploads/2026/x.jpg", out, "x.jpg") == str(out / "x.jpg")
    assert (out / "x.jpg").read_bytes() == b"\xff\xd8 jpeg bytes"
    assert extract(UPLOADS, "uploads/2026", out, "2026") == str(out / "2026")
    assert files(out) == {
        "x.jpg": b"\xff\xd8 jpeg bytes",
        "2026/x.jpg": b"\xff\xd8 jpeg bytes",
        "2026/y.txt": b"why\n",
        "2026/inside": "->y.txt",  # a link that stays inside what was taken is kept
    }
    assert sorted(p.name for p in out.iterdir()) == ["2026", "x.jpg"]  # no staging left


def test_extract_a_volume_s_member_and_its_whole_tree(tmp_path: Path) -> None:
    volume = tar_of((".", None), ("./deep", None), ("./deep/a.txt", b"a\n"), ("./b.txt", b"b\n"))
    extract(volume, "./deep", tmp_path, "deep")
    extract(volume, ".", tmp_path, "volume-media")
    assert files(tmp_path) == {
        "deep/a.txt": b"a\n",
        "volume-media/b.txt": b"b\n",
        "volume-media/deep/a.txt": b"a\n",
    }


def test_an_existing_file_is_replaced_only_with_overwrite(tmp_path: Path) -> None:
    (tmp_path / "x.jpg").write_bytes(b"mine")
    with pytest.raises(OpskitError, match=f"{tmp_path}/x.jpg exists; give --overwrite"):
        extract(UPLOADS, "uploads/2026/x.jpg", tmp_path, "x.jpg")
    assert (tmp_path / "x.jpg").read_bytes() == b"mine"
    (tmp_path / "2026").mkdir()
    (tmp_path / "2026" / "old.txt").write_text("old\n")
    extract(UPLOADS, "uploads/2026/x.jpg", tmp_path, "x.jpg", overwrite=True)
    extract(UPLOADS, "uploads/2026", tmp_path, "2026", overwrite=True)
    assert files(tmp_path) == {
        "x.jpg": b"\xff\xd8 jpeg bytes",
        "2026/x.jpg": b"\xff\xd8 jpeg bytes",
        "2026/y.txt": b"why\n",
        "2026/inside": "->y.txt",
    }


def test_a_member_the_stream_lacks_is_not_found_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"the archive holds no uploads/2026/z\.jpg"):
        extract(UPLOADS, "uploads/2026/z.jpg", tmp_path, "z.jpg")
    with pytest.raises(NotFoundError):
        extract(UPLOADS, "uploads/2026/x*", tmp_path, "x*")  # no wildcards
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("members", "take", "why"),
    [
        ([("data", None), ("data/etc", "->/etc")], "data", "the link etc leads out of it (to /etc)"),
        ([("data", None), ("data/up", "->../..")], "data", "the link up leads out of it (to ../..)"),
        ([("data", None), ("data/x", "->../data")], "data", "the link x leads out of it (to ../data)"),
        ([("data", None), ("data/2026", None), ("data/2026/y", "->../z")], "data/2026",
         "the link y leads out of it (to ../z)"),
        ([("data", "->/etc")], "data", "data is a link (to /etc)"),
        ([("data", None), ("data/pw", "->/etc/passwd")], "data/pw", "data/pw is a link (to /etc/passwd)"),
    ],
)  # fmt: skip
def test_links_leading_out_are_refused_and_nothing_is_written(
    tmp_path: Path, members: list[tuple[str, bytes | str | None]], take: str, why: str
) -> None:
    out = tmp_path / "out"
    with pytest.raises(OpskitError, match="refused: ") as raised:
        extract(tar_of(*members), take, out, Path(take).name)
    assert why in str(raised.value)
    assert list(out.iterdir()) == []


def test_names_outside_the_tree_never_land_outside_the_folder(tmp_path: Path) -> None:
    """A hostile tar names a member ``data/../../escaped``: tar keeps it inside the staging
    folder, and only the member asked for is moved into place."""
    out, victim = tmp_path / "a" / "out", tmp_path / "victim"
    victim.mkdir()
    hostile = tar_of(
        ("data", None),
        ("data/../../escaped", b"outside\n"),
        ("data/ok.txt", b"ok\n"),
        ("data/link", f"->{victim}"),
        ("data/link/through.txt", b"through\n"),
    )
    with pytest.raises(OpskitError):  # the link leads out: refused as a whole
        extract(hostile, "data", out, "data")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "a",
        "a/out",
        "victim",
    ]
    extract(hostile, "data/ok.txt", out, "ok.txt")
    assert files(tmp_path) == {"a/out/ok.txt": b"ok\n"}


# -- on the examples: mdf dev -----------------------------------------------------------------


@pytest.fixture
def mdf_dev(examples_up: Path, store: str) -> str:
    """The examples' root, its archives in *store*, with no archive of mdf dev in either."""
    from testroot import BACKUPS, use_store

    shutil.rmtree(BACKUPS / "mdf" / "dev", ignore_errors=True)
    shutil.rmtree(BACKUPS / ".restic", ignore_errors=True)  # the root's projects share it
    return str(use_store(examples_up, store))


@pytest.mark.docker
def test_restore_only_the_database_and_extract_a_file_and_a_folder(
    mdf_dev: str, tmp_path: Path
) -> None:
    from test_backup import database_state, listed, sql, tree_state, volume_path
    from testroot import ns

    root = mdf_dev
    uploads = Path(root) / "mdf" / "dev" / "wp-content" / "uploads"
    media = volume_path(ns("mdf-dev_media"))
    photo = uploads / "2026" / "11" / "only-photo.bin"
    photo.write_bytes(os.urandom(70_000))
    (media / "only-deep" / "er").mkdir(parents=True, exist_ok=True)
    (media / "only-deep" / "er" / "notes.txt").write_text("volume file\n")
    (media / "only-deep" / "top.bin").write_bytes(os.urandom(5000))
    added = [photo, uploads / "only-after.txt", media / "only-deep", media / "only-after.txt"]
    try:
        rows = database_state(root, "mdf")
        backed_up = {"photo": photo.read_bytes(), "deep": tree_state(media / "only-deep")}
        run = opskit("backup", "mdf", "dev", "--root", root)
        assert run.returncode == 0, run.stderr
        keys = opskit("backups", "mdf", "dev", "--json", "--root", root).json()["archives"][0][
            "components"
        ]  # type: ignore[index]
        (db,) = [k for k in keys if k.startswith("db-")]
        (volume,) = [k for k in keys if k.startswith("volume-")]

        sql(
            root, "mdf", "UPDATE wp_options SET option_value='changed' WHERE option_name='blogname'"
        )
        (uploads / "only-after.txt").write_text("written after the backup\n")
        (media / "only-after.txt").write_text("written after the backup\n")
        changed = database_state(root, "mdf")
        files_now = (tree_state(uploads), tree_state(media))
        archives = listed(root, "mdf", "dev")

        # an unknown key: one line naming the archive's keys, nothing changed
        run = opskit("restore", "mdf", "dev", "--latest", "--only", "db-nope", "--yes",
                     "--root", root)  # fmt: skip
        assert_one_error_line(run, "holds no component db-nope", f"it holds {', '.join(keys)}")
        assert listed(root, "mdf", "dev") == archives
        assert database_state(root, "mdf") == changed

        run = opskit("restore", "mdf", "dev", "--latest", "--only", db, "--yes", "--json",
                     "--root", root)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert database_state(root, "mdf") == rows
        assert (tree_state(uploads), tree_state(media)) == files_now  # untouched
        report = run.json()
        assert report["only"] == [db]  # type: ignore[index]
        safety = report["safety_backup"]  # type: ignore[index]
        assert (safety["only"], safety["components"]) == ([db], [db])
        entry = opskit("history", "mdf", "--json", "--root", root).json()[-1]  # type: ignore[index]
        assert (entry["only"], entry["safety_backup"]) == ([db], safety["name"])

        # --latest is the newest archive of the whole env, not the partial safety backup
        out = tmp_path / "out"
        run = opskit("extract", "mdf", "dev", "dev/wp-content/uploads/2026/11/only-photo.bin",
                     "--latest", "--to", str(out), "--root", root)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == str(out / "only-photo.bin")
        assert (out / "only-photo.bin").read_bytes() == backed_up["photo"]
        run = opskit("extract", "mdf", "dev", f"{volume}:only-deep", "--latest", "--to",
                     str(out), "--root", root)  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert tree_state(out / "only-deep") == backed_up["deep"]

        # refusals: an existing file, a path the archive lacks
        (out / "only-photo.bin").write_bytes(b"mine")
        run = opskit("extract", "mdf", "dev", "dev/wp-content/uploads/2026/11/only-photo.bin",
                     "--latest", "--to", str(out), "--root", root)  # fmt: skip
        assert_one_error_line(run, f"{out}/only-photo.bin exists; give --overwrite")
        assert (out / "only-photo.bin").read_bytes() == b"mine"
        run = opskit("extract", "mdf", "dev", "dev/wp-content/uploads/only-after.txt",
                     "--latest", "--to", str(out), "--root", root)  # fmt: skip
        assert_one_error_line(run, "holds no dev/wp-content/uploads/only-after.txt")
        assert sorted(p.name for p in out.iterdir()) == ["only-deep", "only-photo.bin"]
    finally:
        for path in added:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


# -- the engine on a fake host (tests/fakeroot.py): what runs, what is put back -------------


def test_restore_only_the_database_backs_up_and_puts_back_that_alone(tmp_path: Path) -> None:
    from fakeroot import DUMP, DUMPING, LOADING, compose
    from opskit.events import JobFinished
    from test_engines_restore import SAFETY_DUMP, backed_up

    world, name = backed_up(tmp_path)
    fake = world.fake
    uploads = f"{world.root}/shop/prod/uploads"
    fake.write(f"{uploads}/new.txt", b"added since")
    fake.on(LOADING, times=1, returncode=1, stdout=b"opskit-load-pid 7\nopskit-load-status 1\n",
            stderr="ERROR 1064 (42000) at line 3: You have an error in your SQL syntax\n")  # fmt: skip
    with world.ops() as ops, pytest.raises(OpskitError, match="was put back from"):
        ops.restore("shop", "prod", name, only=["db-db-shop"])
    first, second = fake.order(DUMPING, compose("stop", "web"), LOADING, LOADING)[-2:]
    assert (fake.calls[first].stdin, fake.calls[second].stdin) == (DUMP, SAFETY_DUMP)
    assert not fake.ran(compose("stop", "db"))
    assert not fake.matching(["tar"])  # no tree backed up, restored or put back
    assert sorted(fake.listdir(uploads)) == ["logo.png", "new.txt"]
    (finished,) = world.recorder.of(JobFinished)
    assert finished.details["only"] == ["db-db-shop"]
    safety = json.loads(
        fake.read(f"{world.env_dir()}/{finished.details['safety_backup']}/manifest.json")
    )
    assert safety["only"] == ["db-db-shop"]
    assert [c["key"] for c in safety["components"]] == ["db-db-shop"]


def test_restore_only_a_path_leaves_the_database_and_the_volume(tmp_path: Path) -> None:
    from fakeroot import DUMPING, LOADING
    from test_engines_restore import backed_up

    world, name = backed_up(tmp_path)
    fake = world.fake
    uploads = f"{world.root}/shop/prod/uploads"
    media = fake.engine.volumes["shop-prod_media"]
    fake.write(f"{uploads}/new.txt", b"added since")
    fake.write(f"{media}/cover.jpg", b"changed since")
    with world.ops() as ops:
        _archive, safety = ops.restore("shop", "prod", name, only=["path-prod-uploads"])
        assert safety is not None and safety.only == ("path-prod-uploads",)
        # the partial safety backup is newer, but --latest means the whole env's newest
        assert ops.backup_engine().find(ops.project("shop"), "prod", None).name == name
    assert not fake.matching(DUMPING) and not fake.matching(LOADING)
    assert fake.listdir(uploads) == ["logo.png"]
    assert fake.read(f"{media}/cover.jpg") == b"changed since"


def test_extract_through_the_engine_by_path_and_by_key(tmp_path: Path) -> None:
    from test_engines_restore import backed_up

    world, name = backed_up(tmp_path)
    fake = world.fake
    out = fake.path("out")
    with world.ops() as ops:
        done = ops.extract("shop", "prod", "prod/uploads/logo.png", out, name)
        assert (done.component, done.inside, done.path) == (
            "path-prod-uploads",
            "logo.png",
            f"{out}/logo.png",
        )
        ops.extract("shop", "prod", "volume-shop-prod_media:", out, name)
        ops.extract("shop", "prod", "prod/uploads", out, name)
        with pytest.raises(ArchiveError, match="db-db-shop is a database, not a file tree"):
            ops.extract("shop", "prod", "db-db-shop:", out, name)
        with pytest.raises(NotFoundError, match=f"archive {name} holds no prod/uploads/x.png"):
            ops.extract("shop", "prod", "prod/uploads/x.png", out, name)
    # the live folder gone and no Docker engine (a server being rebuilt): still readable
    fake.run(["rm", "-rf", "--", f"{world.root}/shop/prod/uploads"])
    fake.docker_error = "connection refused"
    with world.ops() as ops:
        ops.extract("shop", "prod", "prod/uploads/logo.png", fake.path("again"), name)
    assert fake.read(fake.path("again", "logo.png")) == b"\x89PNG prod"
    assert fake.read(f"{out}/logo.png") == b"\x89PNG prod"
    assert fake.read(f"{out}/volume-shop-prod_media/cover.jpg") == b"JFIF prod"
    assert fake.read(f"{out}/uploads/logo.png") == b"\x89PNG prod"
    assert sorted(fake.listdir(out)) == ["logo.png", "uploads", "volume-shop-prod_media"]


def test_a_partial_archive_does_not_make_the_backup_fresh(tmp_path: Path) -> None:
    """The watch's backup freshness: a verified safety backup of one component, newer than
    the schedule's last run, is no backup of the env."""
    from test_schedules import NOW, fresh_root, freshness_at
    from test_schedules import archive as made

    with local_time_zone("UTC"):
        root, folder = fresh_root(tmp_path, "*-*-* 09:00")
        made(folder, NOW - timedelta(minutes=10))
        (partial,) = folder.iterdir()
        manifest = json.loads((partial / "manifest.json").read_text())
        (partial / "manifest.json").write_text(json.dumps({**manifest, "only": ["db-x"]}))
        (check,) = freshness_at(root, NOW)
        assert not check.ok, check  # type: ignore[attr-defined]
        made(folder, NOW - timedelta(minutes=20))
        (check,) = freshness_at(root, NOW)
        assert check.ok, check  # type: ignore[attr-defined]
