"""Measure `opskit sync mdf --from prod --to dev` against a plain dump-and-load pipeline.

Run by bench/sync. Needs the test bed and the example root's mdf prod and dev running.
It fills mdf prod's WordPress database with about --db-mb MB of WordPress-like rows:
wp_posts whose every post_content links to the prod URL (so every line of the dump goes
through the rewrite, the worst case), a guid per post, and wp_postmeta with a
PHP-serialized array holding the URL on every row. Then, in the same run, per round:

  opskit:  opskit sync mdf --from prod --to dev --yes
           (backup of dev, databases streamed through the rewrite, uploads and volume
           mirrored, dev started and waited for until healthy)
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
import threading
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
from backup import peak_memory  # noqa: E402


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


def prepare(prod: str, db_mb: float) -> None:
    rows = int(db_mb * 1000)  # about 1 KB per post, plus its meta row
    if (
        mariadb(prod, "SHOW TABLES LIKE 'wp_postmeta'")
        and int(mariadb(prod, "SELECT COUNT(*) FROM wp_postmeta")) == rows
    ):
        return
    print(f"creating {rows} posts and post meta rows in mdf prod ...", file=sys.stderr)
    mariadb(prod, "DELETE FROM wp_posts WHERE ID > 1; DROP TABLE IF EXISTS wp_postmeta")
    mariadb(
        prod,
        "CREATE TABLE wp_postmeta (meta_id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, "
        "post_id BIGINT UNSIGNED NOT NULL, meta_key VARCHAR(255), meta_value LONGTEXT, KEY (post_id))",
    )
    step = 50_000
    for start in range(2, rows + 2, step):
        end = min(start + step - 1, rows + 1)
        url = f"{PROD_URL}/"
        mariadb(
            prod,
            "INSERT INTO wp_posts (ID, post_title, post_content, guid) SELECT seq, CONCAT('Post ', seq), "
            f"CONCAT('<p>', REPEAT(MD5(seq), 16), ' <a href=\"{url}', seq, '/\">more</a> ', "
            f"'<img src=\"{url}wp-content/uploads/', seq, '.jpg\"></p>'), CONCAT('{url}?p=', seq) "
            f"FROM seq_{start}_to_{end}",
        )
        # a:2:{s:3:"url";s:N:"…";s:4:"size";i:…;} with N computed by MariaDB
        link = f"CONCAT('{url}wp-content/uploads/', seq, '.jpg')"
        mariadb(
            prod,
            "INSERT INTO wp_postmeta (post_id, meta_key, meta_value) SELECT seq, '_wp_attachment_metadata', "
            f"CONCAT('a:2:{{s:3:\"url\";s:', LENGTH({link}), ':\"', {link}, '\";s:4:\"size\";i:', seq, ';}}') "
            f"FROM seq_{start}_to_{end}",
        )


def reset_dev(dev: str) -> None:
    mariadb(dev, "DROP DATABASE wordpress; CREATE DATABASE wordpress")
    mariadb(dev, "", stdin=DEV_SEED.read_bytes())


def timed_opskit(*args: str) -> tuple[float, int, str]:
    started = time.perf_counter()
    process = subprocess.Popen([*OPSKIT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stop, peak = threading.Event(), []  # type: ignore[var-annotated]
    sampler = threading.Thread(target=peak_memory, args=(process.pid, stop, peak))
    sampler.start()
    out, err = process.communicate()
    elapsed = time.perf_counter() - started
    stop.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"opskit {' '.join(args)} failed: {err.decode()[-2000:]}")
    return elapsed, peak[0] if peak else 0, out.decode()


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
    parser.add_argument("--cleanup", action="store_true")
    options = parser.parse_args()
    prod, dev = container("prod"), container("dev")
    backups = Path("/var/lib/opskit-examples/backups/mdf/dev")
    if options.cleanup:
        mariadb(prod, "DELETE FROM wp_posts WHERE ID > 1; DROP TABLE IF EXISTS wp_postmeta")
        reset_dev(dev)
        shutil.rmtree(backups, ignore_errors=True)
        return
    prepare(prod, options.db_mb)
    print(f"mdf prod database: {size_mb(prod):.0f} MB (tables and indexes)", file=sys.stderr)
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
    print(f"database: {options.db_mb:g} MB of rows; {options.rounds} rounds, medians")
    for name, value in median.items():
        print(f"{name:15} {value:7.1f} s")
    print(
        f"ratio          {median['opskit sync'] / median['shell pipeline']:7.2f}  (target <= 1.5)"
    )
    print(f"replacements   {replacements:7d}  (opskit; the shell pipeline makes none)")
    print(f"peak memory    {max(peaks) / 2**20:.0f} MiB (opskit)")


if __name__ == "__main__":
    main()
