"""Measure `opskit drill` against a plain `opskit restore` of the same archive.

Run by bench/drill. Uses the example root's mdf dev env with data added by bench/backup.py's
prepare (rows in bench_rows, files under wp-content/uploads/bench). One archive is made,
then in each round:

  drill:   opskit drill mdf dev            (a throw-away MariaDB started, the dump loaded and
                                             its row counts checked, files extracted to scratch)
  restore: opskit restore mdf dev --latest --no-safety-backup --yes

It prints wall times and their ratio (the drill also starts a server and verifies first).
"""

from __future__ import annotations

import argparse
import statistics
import sys

from backup import prepare, timed_opskit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db-gb", type=float, default=0.3)
    parser.add_argument("--files-gb", type=float, default=0.3)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    prepare(options.db_gb, options.files_gb)
    _elapsed, _peak, path = timed_opskit("backup", "mdf", "dev")
    name = path.rsplit("/", 1)[-1]
    results: dict[str, list[float]] = {"drill": [], "restore": []}
    peaks: dict[str, list[int]] = {"drill": [], "restore": []}
    for round_ in range(options.rounds):
        elapsed, peak, _ = timed_opskit("drill", "mdf", "dev", "--name", name)
        results["drill"].append(elapsed)
        peaks["drill"].append(peak)
        elapsed, peak, _ = timed_opskit(
            "restore", "mdf", "dev", "--name", name, "--no-safety-backup", "--yes"
        )
        results["restore"].append(elapsed)
        peaks["restore"].append(peak)
        print(
            f"round {round_ + 1}: drill {results['drill'][-1]:.1f} s, "
            f"restore {results['restore'][-1]:.1f} s",
            file=sys.stderr,
        )
    median = {k: statistics.median(v) for k, v in results.items()}
    print(f"data: {options.db_gb:g} GB of rows, {options.files_gb:g} GB of files; medians")
    print(f"drill          {median['drill']:7.1f} s")
    print(f"restore        {median['restore']:7.1f} s")
    print(f"drill/restore  {median['drill'] / median['restore']:7.2f}")
    print(
        f"peak memory    drill {max(peaks['drill']) / 2**20:.0f} MiB, "
        f"restore {max(peaks['restore']) / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
