"""Measure `opskit backup` and `opskit restore` against the equivalent shell pipelines.

Run by bench/backup. Needs the test bed (scripts/testbed.sh) and the example root's
mdf dev env running. It adds about 1 GB of database rows (table bench_rows) and 1 GB
of files (wp-content/uploads/bench) to mdf dev, then, in the same run:

  backup:  opskit backup mdf dev
           vs  docker exec … mariadb-dump … | zstd -3 > db.sql.zst
               tar … uploads | zstd -3 > uploads.tar.zst ; tar … volume | zstd -3 > volume.tar.zst
  restore: opskit restore mdf dev --latest --no-safety-backup --yes
           vs  compose stop web; zstd -dc db.sql.zst | docker exec -i … mariadb …;
               tar extraction beside the target and swap; compose up -d

It prints wall times, their ratio, opskit's peak memory (resident memory of the opskit
process and its children, sampled every 50 ms) and where opskit's time went (its --events
phases). ``--store`` (folder or restic) is written into the example descriptor's ``backup.store``
for the run (put back after), whatever the default would choose. With --cleanup it removes
the data it added.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import benchlib
from benchlib import phases, sh

REPO = Path(__file__).resolve().parent.parent
ROOT = REPO / "examples" / "root"
OPSKIT = [str(REPO / ".venv" / "bin" / "opskit"), "--root", str(ROOT)]
UPLOADS = ROOT / "mdf" / "dev" / "wp-content" / "uploads"
BENCH_FILES = UPLOADS / "bench"
DB = "dev-mdf-db"
DESCRIPTOR = ROOT / "mdf" / "project.yaml"
BACKUPS = Path("/var/lib/opskit-examples/backups")
SHELL_OUT = Path("/var/tmp/opskit-bench-shell")


def mariadb(sql: str) -> str:
    return benchlib.mariadb(DB, sql)


def prepare(db_gb: float, files_gb: float) -> None:
    rows = int(db_gb * 1_000_000)
    have = int(
        mariadb(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='wordpress' AND table_name='bench_rows'"
        )
    )
    if not have or int(mariadb("SELECT COUNT(*) FROM bench_rows")) != rows:
        print(f"creating {rows} rows of about 1 KB in bench_rows ...", file=sys.stderr)
        mariadb("DROP TABLE IF EXISTS bench_rows")
        mariadb(
            "CREATE TABLE bench_rows (id INT PRIMARY KEY, title VARCHAR(200), body TEXT) ENGINE=InnoDB"
        )
        step = 100_000
        for start in range(1, rows + 1, step):
            end = min(start + step - 1, rows)
            mariadb(
                "INSERT INTO bench_rows SELECT seq, CONCAT('post ', seq, ' ', MD5(seq)), "
                "CONCAT(REPEAT(MD5(RAND()), 20), ' ', REPEAT(CONCAT('word', seq % 97, ' '), 30)) "
                f"FROM seq_{start}_to_{end}"
            )
    size = int(files_gb * 1024)  # MiB
    if (
        not BENCH_FILES.exists()
        or sum(f.stat().st_size for f in BENCH_FILES.iterdir()) < size << 20
    ):
        print(f"writing {size} MiB of files under {BENCH_FILES} ...", file=sys.stderr)
        shutil.rmtree(BENCH_FILES, ignore_errors=True)
        BENCH_FILES.mkdir(parents=True)
        text = (b"lorem ipsum dolor sit amet " * 40 + b"\n") * 1000
        for i in range(size // 8):
            with (BENCH_FILES / f"file-{i:04}.bin").open("wb") as handle:
                # half random (photos), half text (documents)
                handle.write(os.urandom(4 << 20))
                handle.write((text * 4)[: 4 << 20])


def timed_opskit(*args: str) -> benchlib.Run:
    return benchlib.measured([*OPSKIT, *args, "--events"])


@contextlib.contextmanager
def store(kind: str):  # type: ignore[no-untyped-def]
    """The example descriptor with ``backup.store: kind`` for the run, put back after."""
    original = DESCRIPTOR.read_text()
    DESCRIPTOR.write_text(original.replace("backup:\n", f"backup:\n  store: {kind}\n", 1))
    try:
        yield
    finally:
        DESCRIPTOR.write_text(original)


def stored_size(kind: str) -> int:
    """The bytes the env's archives take: the archive folder, or the whole restic store."""
    folder = BACKUPS / ("mdf/dev" if kind == "folder" else ".restic")
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def volume_mountpoint() -> str:
    return benchlib.volume_mountpoint("mdf-dev_media")


def shell_backup() -> float:
    shutil.rmtree(SHELL_OUT, ignore_errors=True)
    SHELL_OUT.mkdir(parents=True)
    started = time.perf_counter()
    sh(
        f'docker exec {DB} sh -c \'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mariadb-dump --user=root --single-transaction '
        f"--routines --triggers --events --hex-blob --default-character-set=utf8mb4 wordpress' | zstd -q -3 > {SHELL_OUT}/db.sql.zst"
    )
    sh(
        f"tar --create --file=- --numeric-owner --directory {UPLOADS.parent} -- uploads | zstd -q -3 > {SHELL_OUT}/uploads.tar.zst"
    )
    sh(
        f"tar --create --file=- --numeric-owner --directory {volume_mountpoint()} -- . | zstd -q -3 > {SHELL_OUT}/volume.tar.zst"
    )
    sh(f"sync {SHELL_OUT}/*")
    return time.perf_counter() - started


def shell_restore() -> float:
    compose = f"docker-compose -p mdf-dev -f {ROOT}/mdf/dev/docker-compose.yml --env-file {ROOT}/mdf/dev/.env.dev"
    staging = UPLOADS.parent / ".bench-restore"
    started = time.perf_counter()
    sh(f"cd {ROOT}/mdf/dev && {compose} stop web 2>/dev/null")
    sh(
        f'docker exec {DB} sh -c \'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mariadb -uroot -e "DROP DATABASE IF EXISTS wordpress; CREATE DATABASE wordpress"\' && '
        f"zstd -q -dc {SHELL_OUT}/db.sql.zst | docker exec -i {DB} sh -c 'MYSQL_PWD=\"$MYSQL_ROOT_PASSWORD\" exec mariadb -uroot --binary-mode wordpress'"
    )
    sh(
        f"rm -rf {staging} && mkdir {staging} && zstd -q -dc {SHELL_OUT}/uploads.tar.zst | tar -x --numeric-owner -p -C {staging} && "
        f"mv {UPLOADS} {UPLOADS.parent}/.bench-old && mv {staging}/uploads {UPLOADS} && rm -rf {UPLOADS.parent}/.bench-old {staging}"
    )
    mount = volume_mountpoint()
    sh(
        f"rm -rf {mount}/* && zstd -q -dc {SHELL_OUT}/volume.tar.zst | tar -x --numeric-owner -p -C {mount}"
    )
    sh(f"cd {ROOT}/mdf/dev && {compose} up -d 2>/dev/null")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db-gb", type=float, default=1.0)
    parser.add_argument("--files-gb", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--store", choices=("folder", "restic"), default="folder")
    parser.add_argument("--cleanup", action="store_true")
    options = parser.parse_args()
    if options.cleanup:
        mariadb("DROP TABLE IF EXISTS bench_rows")
        shutil.rmtree(BENCH_FILES, ignore_errors=True)
        shutil.rmtree(SHELL_OUT, ignore_errors=True)
        return
    prepare(options.db_gb, options.files_gb)
    results: dict[str, list[float]] = {
        "opskit backup": [],
        "shell backup": [],
        "opskit restore": [],
        "shell restore": [],
    }
    peaks: dict[str, list[int]] = {"backup": [], "restore": []}
    where: dict[str, list[dict[str, float]]] = {"backup": [], "restore": []}
    with store(options.store):
        for round_ in range(options.rounds):
            # a first night each round, in either store
            shutil.rmtree(BACKUPS / "mdf" / "dev", ignore_errors=True)
            shutil.rmtree(BACKUPS / ".restic", ignore_errors=True)
            run = timed_opskit("backup", "mdf", "dev")
            results["opskit backup"].append(run.elapsed)
            peaks["backup"].append(run.peak)
            where["backup"].append(phases(run))
            results["shell backup"].append(shell_backup())
            archive_size = stored_size(options.store)
            shell_size = sum(f.stat().st_size for f in SHELL_OUT.iterdir())
            run = timed_opskit("restore", "mdf", "dev", "--latest", "--no-safety-backup", "--yes")
            results["opskit restore"].append(run.elapsed)
            peaks["restore"].append(run.peak)
            where["restore"].append(phases(run))
            results["shell restore"].append(shell_restore())
            print(
                f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in results.items())
                + f"; archive {archive_size / 2**20:.0f} MiB, shell output {shell_size / 2**20:.0f} MiB",
                file=sys.stderr,
            )  # fmt: skip
    median = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"data: {options.db_gb:g} GB of rows, {options.files_gb:g} GB of files; store {options.store}; "
        f"{options.rounds} rounds, medians"
    )
    for name, value in median.items():
        print(f"{name:15} {value:7.1f} s")
    backup_ratio = median["opskit backup"] / median["shell backup"]
    restore_ratio = median["opskit restore"] / median["shell restore"]
    print(f"backup ratio   {backup_ratio:7.2f}  (target <= 1.1)")
    print(
        f"restore ratio  {restore_ratio:7.2f}  (opskit also verifies the archive and waits for health)"
    )
    print(
        f"peak memory    backup {max(peaks['backup']) / 2**20:.0f} MiB, restore {max(peaks['restore']) / 2**20:.0f} MiB (target < 150 MiB)"
    )

    for command, runs in where.items():
        shown = {p: statistics.median(r.get(p, 0.0) for r in runs) for p in runs[0]}
        print(f"opskit {command}: " + ", ".join(f"{p} {v:.1f} s" for p, v in shown.items()))


if __name__ == "__main__":
    main()
