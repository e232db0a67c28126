"""Measure `opskit sync mdf --from prod --to dev` against a plain dump-and-load pipeline.

Run by bench/sync. Needs the test bed and the example root's mdf prod and dev running.
It fills mdf prod's WordPress database with about --db-mb MB of dump:

  wordpress (default): 400 posts a MB, every one with its guid (the prod URL, left
           alone), half of them linking to the site twice; five wp_postmeta rows a post:
           edit locks, serialized attachment metadata (relative paths), page-builder
           JSON with escaped URLs, and serialized menu items holding a URL.
  --worst-case: every post links twice and every meta row is a serialized array
           holding the URL, so every line of the dump is rewritten.

Then, in the same run, per round:

  opskit:  opskit sync mdf --from prod --to dev --yes
           (backup of dev, databases streamed through the rewrite, uploads and volume
           mirrored, dev stopped and started, waited for until healthy and stable)
  shell:   docker exec prod-db mariadb-dump … | docker exec -i dev-db mariadb …
           (the same dump options; no rewrite, no backup, no health wait)

Before each timed run dev's database is put back to its small seed, so both start from
the same state and the backup opskit takes first is of a small database (what a backup
of a large one costs is bench/backup's subject). It prints wall times, the ratio, the
replacements opskit made and its peak memory. --cleanup drops the rows it added.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / "examples" / "root"
OPSKIT = [str(REPO / ".venv" / "bin" / "opskit"), "--root", str(ROOT)]
DEV_SEED = ROOT / "mdf" / "dev" / "seed" / "wordpress.sql"
PROD_URL = "https://mdf.example.test"
DUMP = (
    'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mariadb-dump --user=root --single-transaction '
    "--routines --triggers --events --hex-blob --default-character-set=utf8mb4 wordpress"
)
LOAD = 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mariadb --user=root --binary-mode wordpress'
sys.path.insert(0, str(REPO / "bench"))
from backup import timed_opskit  # noqa: E402


def container(env: str, service: str = "db") -> str:
    out = subprocess.run(
        [*OPSKIT, "status", "mdf", env, "--json"], capture_output=True, text=True, check=True
    ).stdout
    for placement in json.loads(out)["containers"]:
        if placement["service"] == service and placement["name"]:
            return str(placement["name"])
    raise SystemExit(f"mdf {env}: no {service} container; is it running?")


def mariadb(name: str, sql: str, stdin: bytes | None = None) -> str:
    argv = ["docker", "exec", "-i", name, "sh", "-c", LOAD.replace("exec mariadb", "exec mariadb -N -B") + (' -e "$1"' if sql else ""), "sh", sql]  # fmt: skip
    return (
        subprocess.run(argv, input=stdin, capture_output=True, check=True).stdout.decode().strip()
    )


def size_mb(name: str) -> float:
    return float(
        mariadb(
            name,
            "SELECT COALESCE(SUM(data_length + index_length), 0) / 1e6 FROM information_schema.tables "
            "WHERE table_schema = 'wordpress'",
        )
    )


def prepare(prod: str, db_mb: float, profile: str) -> None:
    """Fill mdf prod with about *db_mb* MB of dump; *profile* is "wordpress" or "worst"."""
    posts = int(db_mb * (1000 if profile == "worst" else 400))
    marker = f"{profile} {posts}"
    have = mariadb(prod, "SELECT option_value FROM wp_options WHERE option_name = 'bench_profile'")
    if have == marker:
        return
    print(f"creating the {profile} data set ({posts} posts) in mdf prod ...", file=sys.stderr)
    mariadb(
        prod,
        "DELETE FROM wp_posts WHERE ID > 1; DROP TABLE IF EXISTS wp_postmeta; "
        "DELETE FROM wp_options WHERE option_name = 'bench_profile'",
    )
    mariadb(
        prod,
        "CREATE TABLE wp_postmeta (meta_id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, "
        "post_id BIGINT UNSIGNED NOT NULL, meta_key VARCHAR(255), meta_value LONGTEXT, KEY (post_id))",
    )
    url = f"{PROD_URL}/"
    slash = "\\\\/"  # in SQL text; stored as \/, the way JSON escapes a slash
    json_url = url.replace("/", slash)
    step = 20_000
    for start in range(2, posts + 2, step):
        end = min(start + step - 1, posts + 1)
        seq = f"seq_{start}_to_{end}"
        if profile == "worst":
            # Every post links twice, every meta row is a serialized array holding the URL.
            mariadb(
                prod,
                "INSERT INTO wp_posts (ID, post_title, post_content, guid) SELECT seq, CONCAT('Post ', seq), "
                f"CONCAT('<p>', REPEAT(MD5(seq), 16), ' <a href=\"{url}', seq, '/\">more</a> ', "
                f"'<img src=\"{url}wp-content/uploads/', seq, '.jpg\"></p>'), CONCAT('{url}?p=', seq) "
                f"FROM {seq}",
            )
            link = f"CONCAT('{url}wp-content/uploads/', seq, '.jpg')"
            mariadb(
                prod,
                "INSERT INTO wp_postmeta (post_id, meta_key, meta_value) SELECT seq, '_wp_attachment_metadata', "
                f"CONCAT('a:2:{{s:3:\"url\";s:', LENGTH({link}), ':\"', {link}, '\";s:4:\"size\";i:', seq, ';}}') "
                f"FROM {seq}",
            )
            continue
        # A WordPress site: every post has its guid, half of them link to the site; five
        # meta rows a post: edit locks, attachment metadata (relative paths, serialized),
        # page-builder JSON with escaped URLs, menu items serialized with a URL.
        mariadb(
            prod,
            "INSERT INTO wp_posts (ID, post_title, post_content, guid) SELECT seq, CONCAT('Post ', seq), "
            "CONCAT('<p>', REPEAT(MD5(seq), 45), IF(seq % 2 = 0, "
            f"CONCAT(' <a href=\"{url}', seq, '/\">more</a> <img src=\"{url}wp-content/uploads/', seq, '.jpg\">'), "
            f"' no links here'), '</p>'), CONCAT('{url}?p=', seq) FROM {seq}",
        )
        file = "CONCAT('2026/11/photo-', post, '.jpg')"
        page = f"CONCAT('{url}page-', post, '/')"
        mariadb(
            prod,
            "INSERT INTO wp_postmeta (post_id, meta_key, meta_value) "
            "SELECT post, ELT(kind + 1, '_edit_lock', '_edit_lock', '_wp_attachment_metadata', "
            "'_elementor_data', '_menu_item_data'), ELT(kind + 1, CONCAT(post, ':1'), CONCAT(post, ':2'), "
            f"CONCAT('a:3:{{s:4:\"file\";s:', LENGTH({file}), ':\"', {file}, "
            '\'";s:5:"width";i:1024;s:6:"height";i:768;}\'), '
            f'CONCAT(\'[{{"id":"\', post, \'","settings":{{"image":{{"url":"{json_url}wp-content{slash}uploads{slash}\', post, \'.jpg"}}}}}}]\'), '
            f'CONCAT(\'a:2:{{s:3:"url";s:\', LENGTH({page}), \':"\', {page}, \'";s:5:"title";s:4:"Page";}}\')) '
            f"FROM (SELECT p.seq AS post, k.seq AS kind FROM {seq} AS p JOIN seq_0_to_4 AS k) AS m",
        )
    mariadb(
        prod,
        f"INSERT INTO wp_options (option_name, option_value) VALUES ('bench_profile', '{marker}')",
    )


def reset_dev(dev: str) -> None:
    mariadb(dev, "DROP DATABASE wordpress; CREATE DATABASE wordpress")
    mariadb(dev, "", stdin=DEV_SEED.read_bytes())


def shell_sync(prod: str, dev: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["bash", "-o", "pipefail", "-c",
         f"docker exec {prod} sh -c '{DUMP}' | docker exec -i {dev} sh -c '{LOAD}'"],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db-mb", type=float, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--worst-case",
        action="store_true",
        help="every post and meta row holds the URL (half of them serialized)",
    )
    parser.add_argument("--cleanup", action="store_true")
    options = parser.parse_args()
    prod, dev = container("prod"), container("dev")
    backups = Path("/var/lib/opskit-examples/backups/mdf/dev")
    if options.cleanup:
        mariadb(
            prod,
            "DELETE FROM wp_posts WHERE ID > 1; DROP TABLE IF EXISTS wp_postmeta; "
            "DELETE FROM wp_options WHERE option_name = 'bench_profile'",
        )
        reset_dev(dev)
        shutil.rmtree(backups, ignore_errors=True)
        return
    profile = "worst" if options.worst_case else "wordpress"
    prepare(prod, options.db_mb, profile)
    dump = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"docker exec {prod} sh -c '{DUMP}' | wc -c"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    dump_mb = int(dump) / 1e6
    print(
        f"mdf prod database: {dump_mb:.0f} MB of dump, {size_mb(prod):.0f} MB in tables and indexes",
        file=sys.stderr,
    )
    times: dict[str, list[float]] = {"opskit sync": [], "shell pipeline": []}
    peaks, replacements = [], 0
    for round_ in range(options.rounds):
        reset_dev(dev)
        shutil.rmtree(backups, ignore_errors=True)
        elapsed, peak, out = timed_opskit(
            "sync", "mdf", "--from", "prod", "--to", "dev", "--yes", "--json"
        )
        times["opskit sync"].append(elapsed)
        peaks.append(peak)
        report = json.loads(out)
        replacements = sum(sum(d["replacements"].values()) for d in report["databases"])
        reset_dev(dev)
        times["shell pipeline"].append(shell_sync(prod, dev))
        print(
            f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in times.items()),
            file=sys.stderr,
        )
    reset_dev(dev)
    shutil.rmtree(backups, ignore_errors=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"database: {dump_mb:.0f} MB of dump ({profile} profile); {options.rounds} rounds, medians"
    )
    for name, value in median.items():
        print(f"{name:15} {value:7.1f} s")
    print(
        f"ratio          {median['opskit sync'] / median['shell pipeline']:7.2f}  (target <= 1.5)"
    )
    print(f"replacements   {replacements:7d}  (opskit; the shell pipeline makes none)")
    print(f"peak memory    {max(peaks) / 2**20:.0f} MiB (opskit)")


if __name__ == "__main__":
    main()
