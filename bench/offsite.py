"""Measure opskit's offsite upload against scp, and the second night's share of bytes.

Run by bench/offsite. Uses the example root's mdf dev env with the data of bench/backup.py's
prepare, and the test bed's SFTP-only account (host alias opskit-testbed-sftp). In one run:

  first night:  opskit backup mdf dev, then its upload to a fresh restic repository on the
                SFTP account (opskit.offsite.upload; restic reports the bytes it added)
                vs  scp -r of the same archive folder to the same account
  second night: 100 rows updated and one file changed, a new backup, its upload: the bytes
                restic added as a share of the first night's (goal: under 5 %)

It prints wall times, bytes and the peak memory of the process that streams the archive.
"""

from __future__ import annotations

import argparse
import resource
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from backup import OPSKIT, UPLOADS, mariadb, prepare

from opskit import offsite
from opskit.archive import list_archives
from opskit.host import LocalHost

TARGET = "sftp://opskit-testbed-sftp//repos/bench-offsite"
CHROOT = Path("/var/lib/opskit-testbed/sftp-chroot/repos")
STATE = Path("/var/tmp/opskit-bench-offsite-state")


def newest_archive() -> object:
    directory = "/var/lib/opskit-examples/backups/mdf/dev"
    return list_archives(LocalHost(), directory)[0]


def backup() -> object:
    subprocess.run([*OPSKIT, "backup", "mdf", "dev"], check=True, capture_output=True)
    return newest_archive()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db-gb", type=float, default=0.5)
    parser.add_argument("--files-gb", type=float, default=0.5)
    options = parser.parse_args()
    prepare(options.db_gb, options.files_gb)
    for leftover in (CHROOT / "bench-offsite", CHROOT / "bench-scp", STATE):
        shutil.rmtree(leftover, ignore_errors=True)
    host = LocalHost()
    STATE.mkdir(mode=0o700)
    password = STATE / offsite.PASSWORD_FILE
    password.write_text(secrets.token_urlsafe(32) + "\n")
    password.chmod(0o600)
    restic = offsite.Restic(host, TARGET, str(password), offsite.Repository(TARGET))
    restic.run("init")

    archive = backup()
    size = sum(f.stat().st_size for f in Path(archive.path).iterdir())  # type: ignore[attr-defined]
    started = time.perf_counter()
    first = offsite.upload(restic, archive)  # type: ignore[arg-type]
    upload_time = time.perf_counter() - started
    started = time.perf_counter()
    subprocess.run(
        ["scp", "-q", "-r", archive.path, "opskit-testbed-sftp:/repos/bench-scp"],  # type: ignore[attr-defined]
        check=True,
    )
    scp_time = time.perf_counter() - started

    mariadb("UPDATE bench_rows SET title = CONCAT(title, ' changed') WHERE id <= 100")
    changed = next((UPLOADS / "bench").iterdir())
    with changed.open("ab") as handle:
        handle.write(b"one more line for the second night\n")
    second_archive = backup()
    started = time.perf_counter()
    second = offsite.upload(restic, second_archive)  # type: ignore[arg-type]
    second_time = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    print(
        f"data: {options.db_gb:g} GB of rows, {options.files_gb:g} GB of files; archive {size / 2**20:.0f} MiB"
    )
    print(
        f"first night    opskit upload {upload_time:6.1f} s, restic added {first.sent / 2**20:7.1f} MiB"
    )
    print(f"               scp           {scp_time:6.1f} s, the archive's {size / 2**20:7.1f} MiB")
    print(f"               ratio         {upload_time / scp_time:6.2f}")
    print(
        f"second night   opskit upload {second_time:6.1f} s, restic added {second.sent / 2**20:7.1f} MiB"
    )
    print(
        f"               share of the first night's bytes: {second.sent / max(first.sent, 1):.1%} (goal < 5 %)"
    )
    print(
        f"peak memory    {peak / 2**20:.0f} MiB (this process: it streams the archive into restic)"
    )
    shutil.rmtree(CHROOT / "bench-scp", ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
