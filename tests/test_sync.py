"""``opskit sync`` against real MariaDB containers, folders and volumes (the ``wp`` project)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import wpstack
from conftest import (
    SSH_URL,
    Run,
    archive_name,
    archives_of,
    assert_one_error_line,
    opskit,
    wait_until,
)
from testroot import compose_container, ns, use_store

pytestmark = pytest.mark.docker

MARKER = {"home": f"{wpstack.URLS['prod']}/marker", "list": [[f"{wpstack.URLS['prod']}/deep"]]}


def sql(env: str, statement: str) -> str:
    done = subprocess.run(
        ["docker", "exec", compose_container(f"wp-{env}", "db"), "mariadb", "--default-character-set=utf8mb4", "--batch", "--skip-column-names",
         "wordpress", "-e", statement],
        capture_output=True, check=True,
    )  # fmt: skip
    return done.stdout.decode()


def _unescape(field: str) -> str:
    table = {"\\": "\\", "n": "\n", "t": "\t", "0": "\0"}
    return re.sub(r"\\(.)", lambda m: table.get(m.group(1), m.group(0)), field)


def rows(env: str, statement: str) -> list[list[str]]:
    """Result rows; the client's batch escapes (tab, newline, backslash) undone. Lines end
    at newlines only (str.splitlines would cut a value at a vertical tab too)."""
    lines = sql(env, statement).split("\n")[:-1]
    return [[_unescape(f) for f in line.split("\t")] for line in lines]


def checksum(env: str) -> str:
    return sql(env, "CHECKSUM TABLE wp_options, wp_posts EXTENDED")


def tree(path: Path) -> dict[str, tuple[int, str]]:
    """Every entry under *path*: relative name -> (mode, sha256 of a file's bytes)."""
    found = {}
    for entry in sorted(path.rglob("*")):
        digest = hashlib.sha256(entry.read_bytes()).hexdigest() if entry.is_file() else "dir"
        found[str(entry.relative_to(path))] = (entry.stat().st_mode, digest)
    return found


def volume(env: str) -> Path:
    return Path(f"/var/lib/docker/volumes/{ns('wp-' + env)}_media/_data")


def php_unserialize(values: list[str]) -> list[object]:
    """PHP's own ``unserialize(trim())`` of each value (Debian's php-cli), as WordPress's
    maybe_unserialize() reads it; fails on any error."""
    script = (
        "$out = []; foreach (json_decode(stream_get_contents(STDIN)) as $v) { "
        '$r = unserialize(trim($v)); if ($r === false && $v !== "b:0;") { fwrite(STDERR, "cannot unserialize: $v"); exit(3); } '
        "$out[] = $r; } echo json_encode($out);"
    )
    done = subprocess.run(
        ["php", "-r", script], input=json.dumps(values), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def wp(root: Path, *args: str, **kwargs: object) -> Run:
    return opskit("--root", str(root), *args, **kwargs)  # type: ignore[arg-type]


def test_direction_not_in_pairs_is_refused_before_anything_is_read(wp_root: Path) -> None:
    before = checksum("prod")
    backups = wp_root / "wp" / "backups"
    listing = sorted(p.name for p in backups.rglob("*"))
    run = wp(wp_root, "sync", "wp", "--from", "dev", "--to", "prod", "--yes",
             env={"OPSKIT_TRACE": "1"})  # fmt: skip
    assert run.returncode == 1
    errors = [line for line in run.stderr.splitlines() if line.startswith("[error]")]
    assert errors == [
        "[error] wp: sync from dev to prod is not allowed "
        f"(sync.pairs in {wp_root}/wp/project.yaml allows: prod->dev, prod->int)"
    ]
    # Nothing was read: no plugin was asked for components, and no archive was written.
    assert "opskit_backup_components" not in run.stderr
    assert sorted(p.name for p in backups.rglob("*")) == listing
    assert checksum("prod") == before


def test_sync_without_terminal_needs_yes(wp_root: Path) -> None:
    before = checksum("dev")
    run = wp(wp_root, "sync", "wp", "--from", "prod", "--to", "dev")
    assert_one_error_line(run, "sync needs --yes when stdin is not a terminal")
    assert checksum("dev") == before


def test_a_declined_sync_changes_nothing(wp_root: Path) -> None:
    from test_cli import run_on_terminal

    before = checksum("int")
    archives = sorted((wp_root / "wp" / "backups").rglob("*"))
    code, output = run_on_terminal(
        ["--root", str(wp_root), "sync", "wp", "--from", "prod", "--to", "int"], b"n\n"
    )
    assert code == 2, output
    assert "[error] cancelled" in output and "Traceback" not in output
    assert checksum("int") == before
    assert sorted((wp_root / "wp" / "backups").rglob("*")) == archives


def test_dry_run_reports_and_changes_nothing(wp_root: Path) -> None:
    bulk = wp_root / "wp" / "prod" / "uploads" / "bulk"
    bulk.mkdir()
    for i in range(25):
        (bulk / f"f{i:02}.txt").write_text(f"file {i}\n")
    before, files = checksum("int"), tree(wp_root / "wp" / "int" / "uploads")
    try:
        run = wp(wp_root, "sync", "wp", "--from", "prod", "--to", "int", "--dry-run", "--json")
        text = wp(wp_root, "sync", "wp", "--from", "prod", "--to", "int", "--dry-run")
    finally:
        subprocess.run(["rm", "-rf", str(bulk)], check=True)
    assert run.returncode == 0, run.stderr
    report = run.json()
    assert isinstance(report, dict)
    assert report["dry_run"] is True and report["backup"] is None
    (database,) = report["databases"]
    tables = {t["name"]: t for t in database["tables"]}
    assert tables["wp_posts"]["source_rows"] == 5
    # Every row of wp_options but blogname holds the URL, some of them twice.
    assert database["replacements"]["wp_options"] >= 8
    assert database["replacements"]["wp_posts"] == 10  # twice per post; the guid is left alone
    assert database["too_long_count"] == 0 and database["longer_hosts"] == 0
    by_target = {Path(f["target"]).name: f for f in report["files"]}
    uploads = by_target["uploads"]
    # The files are named: int's own photo goes, prod's photo, shared.txt and the bulk arrive.
    assert "2026/int-photo.jpg" in uploads["deleted_names"]
    assert len(uploads["deleted_names"]) == uploads["deleted"]
    changed = uploads["changed"]
    assert changed >= 27 and len(uploads["changed_names"]) == 20
    assert uploads["changed_names"][:2] == ["2026/prod-photo.jpg", "2026/shared.txt"]
    assert "bulk/f00.txt" in uploads["changed_names"]
    assert checksum("int") == before
    assert tree(wp_root / "wp" / "int" / "uploads") == files
    assert text.returncode == 0, text.stderr
    assert "dry run, nothing changed" in text.stdout and "wp_options" in text.stdout
    lines = text.stdout.splitlines()
    target = wp_root / "wp" / "int" / "uploads"
    at = lines.index(f"to delete in {target} ({uploads['deleted']}):")
    assert "  2026/int-photo.jpg" in lines[at + 1 : at + 1 + uploads["deleted"]]
    at = lines.index(f"to change in {target} ({changed}):")
    assert lines[at + 1 : at + 3] == ["  2026/prod-photo.jpg", "  2026/shared.txt"]
    assert lines[at + 21] == f"  and {changed - 20} more"


def test_sync_prod_to_dev(wp_root: Path, store: str) -> None:
    use_store(wp_root, store)  # the sync backs dev up first
    prod_url, dev_url = wpstack.URLS["prod"], wpstack.URLS["dev"]
    marker = wpstack.php_serialize(MARKER)
    sql("prod", f"DELETE FROM wp_options WHERE option_name = 'marker'; INSERT INTO wp_options "
                f"(option_name, option_value) VALUES ('marker', {wpstack.sql_literal(marker)})")  # fmt: skip
    sql("dev", "INSERT INTO wp_options (option_name, option_value) VALUES ('dev_only', 'x')")
    uploads = wp_root / "wp" / "prod" / "uploads"
    (uploads / "private").mkdir(exist_ok=True)
    (uploads / "private" / "secret.txt").write_text("only the owner reads this\n")
    os.chmod(uploads / "private" / "secret.txt", 0o600)
    os.chmod(uploads / "private", 0o750)
    (volume("prod") / "media.bin").write_bytes(os.urandom(200_000))
    (volume("dev") / "dev-only.bin").write_bytes(b"gone after the sync")
    prod_before = checksum("prod")
    prod_guids = rows("prod", "SELECT ID, guid FROM wp_posts ORDER BY ID")

    run = wp(wp_root, "sync", "wp", "--from", "prod", "--to", "dev", "--yes", timeout=300)
    assert run.returncode == 0, run.stderr

    # Every value carries the dev URL, byte for byte what WordPress would have written.
    expected = dict(wpstack.options(dev_url))
    expected["marker"] = wpstack.php_serialize(
        {"home": f"{dev_url}/marker", "list": [[f"{dev_url}/deep"]]}
    )
    found = dict(rows("dev", "SELECT option_name, option_value FROM wp_options"))  # type: ignore[arg-type]
    assert "dev_only" not in found
    assert {name: found[name] for name in expected} == expected
    assert not any(prod_url + "/" in v or v == prod_url for v in found.values())
    # PHP itself unserializes every serialized value, and finds the dev URL inside.
    serialized = [v for v in found.values() if v[:2] in ("a:", "O:", "s:")]
    assert len(serialized) == 4
    decoded = json.dumps(php_unserialize(serialized))
    assert dev_url in decoded and "https://wp." not in decoded
    # WordPress trims the vertical tabs away, and finds the lengths right.
    assert php_unserialize([found["vertical_tab"]]) == [{"url": f"{dev_url}/vt"}]
    inner = php_unserialize([found["nested_serialized"]])[0]
    assert isinstance(inner, dict)
    assert php_unserialize([inner["payload"]]) == [{"url": f"{dev_url}/inner"}]
    # Posts: content rewritten, guid untouched.
    posts = rows("dev", "SELECT ID, post_content, guid FROM wp_posts ORDER BY ID")
    assert [[p[0], p[2]] for p in posts] == prod_guids
    assert all(dev_url in p[1] and prod_url not in p[1].replace(dev_url, "") for p in posts)
    # Prod is untouched; files and the volume are equal on both sides.
    assert checksum("prod") == prod_before
    assert tree(wp_root / "wp" / "dev" / "uploads") == tree(uploads)
    assert tree(volume("dev")) == tree(volume("prod"))
    # The target was backed up first, and the sync is in the audit log.
    backup_line = next(line for line in run.stdout.splitlines() if "backed up first" in line)
    printed = backup_line.rsplit(": ", 1)[1]
    name = archive_name(printed)
    assert name.startswith("wp-dev-")
    assert name in [a["name"] for a in archives_of(wp_root, "wp", "dev")]
    history = wp(wp_root, "history", "wp", "--json").json()
    assert isinstance(history, list)
    entry = history[-1]
    assert entry["command"] == "sync" and entry["envs"] == ["prod", "dev"]
    assert entry["result"] == "ok" and entry["archive"] == printed
    assert wp(wp_root, "health", "wp", "dev").returncode == 0


def test_restore_of_last_nights_prod_into_dev(wp_root: Path, store: str) -> None:
    """``restore wp dev --from-env prod``: prod's archive, not the live prod, loaded into
    dev with dev's URLs (serialized lengths right), files and volume as prod had them
    that night; dev backed up first; prod untouched."""
    use_store(wp_root, store)
    dev_url, prod_url = wpstack.URLS["dev"], wpstack.URLS["prod"]
    marker = wpstack.php_serialize(MARKER)
    sql("prod", f"DELETE FROM wp_options WHERE option_name = 'marker'; INSERT INTO wp_options "
                f"(option_name, option_value) VALUES ('marker', {wpstack.sql_literal(marker)})")  # fmt: skip
    (volume("prod") / "night.bin").write_bytes(os.urandom(100_000))
    uploads = wp_root / "wp" / "prod" / "uploads"
    (uploads / "night.txt").write_text("in last night's archive\n")
    backup = wp(wp_root, "backup", "wp", "prod", timeout=300)
    assert backup.returncode == 0, backup.stderr
    night = {"uploads": tree(uploads), "volume": tree(volume("prod"))}
    # The day after: prod changes; the restore must take the night's state, not this.
    sql("prod", "DELETE FROM wp_options WHERE option_name = 'next_day'; "
                "INSERT INTO wp_options (option_name, option_value) VALUES ('next_day', 'x')")  # fmt: skip
    (uploads / "next-day.txt").write_text("after the archive\n")
    sql("dev", "DELETE FROM wp_options WHERE option_name = 'dev_only'; "
               "INSERT INTO wp_options (option_name, option_value) VALUES ('dev_only', 'x')")  # fmt: skip
    prod_before = checksum("prod")
    dev_archives = len(archives_of(wp_root, "wp", "dev"))

    refused = wp(wp_root, "restore", "wp", "prod", "--from-env", "dev", "--latest", "--yes")
    assert_one_error_line(refused, "wp: sync from dev to prod is not allowed")

    run = wp(wp_root, "restore", "wp", "dev", "--from-env", "prod", "--latest", "--yes",
             "--json", timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    result = run.json()
    assert isinstance(result, dict) and result["from_env"] == "prod"
    assert str(result["restored"]["name"]).startswith("wp-prod-")  # type: ignore[index]
    found = dict(rows("dev", "SELECT option_name, option_value FROM wp_options"))  # type: ignore[arg-type]
    assert "dev_only" not in found and "next_day" not in found
    expected = dict(wpstack.options(dev_url))
    expected["marker"] = wpstack.php_serialize(
        {"home": f"{dev_url}/marker", "list": [[f"{dev_url}/deep"]]}
    )
    assert {name: found[name] for name in expected} == expected
    assert not any(prod_url + "/" in v or v == prod_url for v in found.values())
    serialized = [v for v in found.values() if v[:2] in ("a:", "O:", "s:")]
    decoded = json.dumps(php_unserialize(serialized))  # PHP finds every length right
    assert dev_url in decoded and "https://wp." not in decoded
    assert tree(wp_root / "wp" / "dev" / "uploads") == night["uploads"]
    assert tree(volume("dev")) == night["volume"]
    assert checksum("prod") == prod_before
    assert len(archives_of(wp_root, "wp", "dev")) == dev_archives + 1  # the safety backup
    assert result["safety_backup"] is not None
    entry = wp(wp_root, "history", "wp", "--json").json()[-1]  # type: ignore[index]
    assert entry["command"] == "restore" and entry["envs"] == ["dev"], entry
    assert entry["from_env"] == "prod" and entry["archive"] == result["restored"]["name"]  # type: ignore[index]
    assert wp(wp_root, "health", "wp", "dev").returncode == 0
    sql("prod", "DELETE FROM wp_options WHERE option_name = 'next_day'")  # as it was
    (uploads / "next-day.txt").unlink()
    (uploads / "night.txt").unlink()


LOOKALIKES = (
    "see https://mywp.example.test/x, cdn.wp.example.test, https://wp.example.testing.com, "
    "https://wp.example.test-old.net and home https://wp.example.test/ok"
)


def test_whole_hosts_and_columns_are_checked_by_the_dry_run(wp_root: Path, store: str) -> None:
    """With a scheme-less string in an overlapping list and whole_hosts, the dry run names
    the look-alike hosts (each place once) and the value that will not fit its column; the
    real sync fails on that value, and without it leaves the look-alikes alone."""
    use_store(wp_root, store)  # the real sync puts int back from its backup
    descriptor = wp_root / "wp" / "project.yaml"
    original = descriptor.read_text()
    lists = {
        env: [url, "//" + url.split("//")[1], url.split("//")[1]]
        for env, url in wpstack.URLS.items()
    }
    descriptor.write_text(
        original.replace("sync:\n", "sync:\n  whole_hosts: true\n").replace(
            next(line for line in original.splitlines() if line.startswith("  replace:")),
            f"  replace: {json.dumps(lists)}",
        )
    )  # fmt: skip
    long_url = f"{wpstack.URLS['prod']}/{'x' * 230}"  # 254 characters; 258 once rewritten
    sql("prod", "CREATE TABLE wp_links (link_id BIGINT PRIMARY KEY, link_url VARCHAR(255) NOT NULL); "
                f"INSERT INTO wp_links VALUES (7, '{long_url}'), (8, 'https://wp.example.test/a'); "
                f"INSERT INTO wp_options (option_name, option_value) VALUES ('lookalikes', '{LOOKALIKES}')")  # fmt: skip
    (option_id,) = rows("prod", "SELECT option_id FROM wp_options WHERE option_name = 'lookalikes'")
    try:
        before = checksum("int")
        run = wp(wp_root, "sync", "wp", "--from", "prod", "--to", "int", "--dry-run")
        assert run.returncode == 0, run.stderr
        warnings = [line for line in run.stderr.splitlines() if line.startswith("[warning]")]
        place = f"in wp_options.option_value where option_id = {option_id[0]}"
        hosts = ("mywp.example.test", "cdn.wp.example.test", "wp.example.testing.com",
                 "wp.example.test-old.net")  # fmt: skip
        assert [
            "[warning] db-db-wordpress: a replaced string is part of a longer host name (like shop.ch in "
            "shop.chocolate.com or cdn.shop.ch) in 4 places, left alone (sync.whole_hosts): "
            + "; ".join(f"{host} {place}" for host in hosts)
        ] == [w for w in warnings if "longer host name" in w]
        assert [w for w in warnings if "would not fit" in w] == [
            "[warning] db-db-wordpress: once rewritten, 1 value would not fit the column, and the sync "
            "would fail: wp_links.link_url where link_id = 7: 258 characters after the "
            "rewrite, the column holds 255"
        ]
        assert checksum("int") == before

        # The real sync fails where the dry run said, and puts int back.
        run = wp(wp_root, "sync", "wp", "--from", "prod", "--to", "int", "--yes", timeout=300)
        assert run.returncode == 1
        (error,) = [line for line in run.stderr.splitlines() if line.startswith("[error]")]
        assert "link_url" in error and "wp_links" in error
        assert checksum("int") == before

        sql("prod", "DELETE FROM wp_links WHERE link_id = 7")
        run = wp(wp_root, "sync", "wp", "--from", "prod", "--to", "int", "--yes", timeout=300)
        assert run.returncode == 0, run.stderr
        int_url = wpstack.URLS["int"]
        found = dict(rows("int", "SELECT option_name, option_value FROM wp_options"))  # type: ignore[arg-type]
        assert found["lookalikes"] == LOOKALIKES.replace(
            "https://wp.example.test/ok", f"{int_url}/ok"
        )
        assert found["siteurl"] == int_url
        assert rows("int", "SELECT link_url FROM wp_links") == [[f"{int_url}/a"]]
    finally:
        descriptor.write_text(original)
        for env in ("prod", "int"):
            sql(
                env,
                "DROP TABLE IF EXISTS wp_links; DELETE FROM wp_options WHERE option_name = 'lookalikes'",
            )


def test_sync_from_an_env_without_a_running_database(wp_root: Path) -> None:
    before = checksum("dev")
    subprocess.run(
        ["docker", "stop", compose_container("wp-prod", "db")], check=True, capture_output=True
    )
    try:
        run = wp(wp_root, "sync", "wp", "--from", "prod", "--to", "dev", "--yes")
        assert_one_error_line(run, "wp prod: the db container is not running")
    finally:
        subprocess.run(
            ["docker", "start", compose_container("wp-prod", "db")], check=True, capture_output=True
        )
    assert checksum("dev") == before
    wait_until(lambda: wp(wp_root, "health", "wp", "prod").returncode == 0, what="healthy prod")


def test_a_replacement_that_changes_nothing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "same").mkdir()
    (tmp_path / "same" / "project.yaml").write_text(
        "name: same\nenvironments: [dev, prod]\n"
        f"backup: {{dir: {tmp_path}/backups, paths: [data]}}\n"
        "sync: {pairs: [[prod, dev]], replace: {prod: 'https://a.test', dev: 'https://a.test'}}\n"
    )
    run = opskit("--root", str(tmp_path), "sync", "same", "--from", "prod", "--to", "dev", "--yes")
    assert_one_error_line(run, "the replacement would change nothing")
    assert not (tmp_path / "backups").exists()  # no backup, and nothing in the audit log


@pytest.mark.ssh
def test_sync_over_ssh(wp_root: Path, store: str) -> None:
    use_store(wp_root, store)  # the sync backs int up first
    int_url = wpstack.URLS["int"]
    run = opskit(
        "--host", SSH_URL, "--root", str(wp_root),
        "sync", "wp", "--from", "prod", "--to", "int", "--yes", "--json", timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    report = run.json()
    assert isinstance(report, dict) and report["backup"]
    found = dict(rows("int", "SELECT option_name, option_value FROM wp_options"))  # type: ignore[arg-type]
    expected = dict(wpstack.options(int_url))
    assert {name: found[name] for name in expected} == expected
    prod_names = {r[0] for r in rows("prod", "SELECT option_name FROM wp_options")}
    assert set(found) == prod_names
    assert tree(wp_root / "wp" / "int" / "uploads") == tree(wp_root / "wp" / "prod" / "uploads")
    entry = wp(wp_root, "history", "wp", "--json").json()[-1]  # type: ignore[index]
    assert entry["host"] == SSH_URL and entry["envs"] == ["prod", "int"]
