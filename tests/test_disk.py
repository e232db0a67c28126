"""Disk usage as ``df`` computes it: used = blocks - bfree, percent = used / (used + bavail)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from opskit.disk import FolderUsage, folder_usage, statvfs_usage
from opskit.host import LocalHost


def test_statvfs_fields_give_what_df_gives() -> None:
    # 2430 blocks of 4 KiB, 2160 free, 730 of them free for users (1430 reserved for root):
    # df says 270 used, 730 available, Use% 27; "1 - bavail / blocks" said 70 %.
    size, free, used = statvfs_usage(4096, 2430, 2160, 730)
    assert (size, free, used) == (2430 * 4096, 730 * 4096, 270 * 4096)
    usage = FolderUsage("/srv", None, size, free, used)
    assert usage.used_percent == 27
    assert usage.used_fraction == pytest.approx(0.27)
    # df rounds up: 1 block used of 1000 is 1 %, not 0 %
    assert FolderUsage("/srv", None, 1000, 999, 1).used_percent == 1
    assert FolderUsage("/srv", None, 0, 0, 0).used_percent == 0


def test_folder_usage_reads_the_statvfs_fields_of_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``stat`` on PATH that answers like ``stat -f`` on a filesystem with a large
    reserve (its arguments are checked too)."""
    stat_answering(
        tmp_path,
        monkeypatch,
        '[ "$1 $2 $3 $4" = "-f -L -c %S %b %f %a" ] || exit 9\necho "4096 2430 2160 730"',
    )
    (usage,) = folder_usage(LocalHost(), [str(tmp_path)], sizes=False)
    assert (usage.used_percent, usage.filesystem_free) == (27, 730 * 4096)
    assert usage.as_dict()["used_percent"] == 27


def df_percent(path: str) -> int:
    line = subprocess.run(["df", "-P", path], capture_output=True, text=True, check=True)
    return int(line.stdout.splitlines()[1].split()[4].rstrip("%"))


def test_percent_matches_df_on_the_real_filesystems(tmp_path: Path) -> None:
    paths = [str(tmp_path), "/", "/dev/shm"]
    for _ in range(3):  # others write to the same disks: retry a count that moved meanwhile
        before = [df_percent(p) for p in paths]
        ours = [u.used_percent for u in folder_usage(LocalHost(), paths, sizes=False)]
        after = [df_percent(p) for p in paths]
        if before == after:
            break
    assert ours == after, (paths, before, after)


def health_of(folder: Path, disk_max_used: float = 0.9) -> list[tuple[str, bool, str]]:
    from opskit.defaults.health import opskit_health_checks
    from opskit.descriptor import DescriptorSource, parse_descriptor
    from opskit.health import HealthContext

    text = f"name: site\nenvironments: [dev]\nbackup: {{dir: {folder}, paths: [data]}}\n"
    project = parse_descriptor(DescriptorSource(str(folder / "project.yaml"), text))
    context = HealthContext(project, (), (), LocalHost(), disk_max_used)
    return [(c.check, c.ok, c.detail) for c in opskit_health_checks(context)]


def stat_answering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    shim = tmp_path / "bin" / "stat"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f"#!/bin/sh\n{script}\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim.parent}{os.pathsep}{os.environ['PATH']}")


def test_the_health_check_uses_dfs_percent_and_fails_when_it_cannot_measure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stat_answering(tmp_path, monkeypatch, 'echo "4096 2430 2160 730"')
    ((check, ok, detail),) = health_of(tmp_path)
    assert (check, ok, detail) == (f"disk {tmp_path}", True, "27% used, 2.9 MiB free")
    assert health_of(tmp_path, disk_max_used=0.27)[0][1] is False  # 27 % is not below 27 %

    stat_answering(
        tmp_path, monkeypatch, "echo 'stat: cannot read file system information' >&2; exit 1"
    )
    assert health_of(tmp_path) == [
        (f"disk {tmp_path}", False, "its filesystem could not be measured (stat -f)")
    ]
