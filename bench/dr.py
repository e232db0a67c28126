"""Measure a whole-server rebuild from offsite against restic's own restore of the same
snapshots (the floor: the bytes back, nothing started, loaded or proven).

Run by bench/dr. The example root is copied into a namespace of its own (server A, as the
tests' copy: tests/testroot.py), started, backed up offsite into a folder repository
(``backup --all --offsite``) with its configuration (``offsite config``). Then, in each
round, alternating which goes first:

  rebuild: opskit --root B rebuild --all --offsite --from TARGET --password-file P
           --rewrite A=B ... --yes     (an empty root B, a fresh state folder, namespace B)
  floor:   restic restore of every snapshot of the archives that rebuild restores, and of
           the configuration backup, into an empty folder

B is removed (containers, volumes, network, folders) after each round. It prints wall times,
their medians and ratio, and the peak memory of opskit's process tree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import measured

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
os.environ.setdefault("OPSKIT_TEST_NS", "bdr")

import testroot  # noqa: E402

HOME = Path("/var/tmp/opskit-bench-dr")
NS_A, NS_B = "bdra", "bdrb"
OPSKIT = str(REPO / ".venv" / "bin" / "opskit")
ENVS = [(p, e) for p in ("mdf", "seriousletter", "shop", "webstack") for e in ("dev", "prod")]


def opskit(*args: str, timeout: float = 1800) -> str:
    done = subprocess.run([OPSKIT, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise SystemExit(f"opskit {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def remove(namespace: str, root: Path, home: Path) -> None:
    for kind in ("container", "volume", "network"):
        listing = ["docker", kind, "ls", "-q", "--filter", f"name=^{namespace}-"]
        if kind == "container":
            listing.insert(3, "-a")
        names = subprocess.run(listing, capture_output=True, text=True).stdout.split()
        if names:
            subprocess.run(["docker", kind, "rm", "-f", *names], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)


def server_a() -> tuple[Path, dict[int, int], str]:
    """Root A running and backed up offsite; its root, ports and target."""
    remove(NS_A, HOME / "a", HOME / "a-home")
    root, ports = testroot.build(HOME / "a", NS_A, HOME / "a-home")
    target = f"file://{HOME / 'a-home' / 'offsite'}"
    for project, env in ENVS:
        opskit("--root", str(root), "start", project, env)
    for _ in range(90):
        if (
            subprocess.run([OPSKIT, "--root", str(root), "health"], capture_output=True).returncode
            == 0
        ):
            break
        time.sleep(2)
    else:
        raise SystemExit("server A never became healthy")
    for args in (("offsite", "init"), ("backup", "--all", "--offsite"), ("offsite", "config")):
        opskit("--root", str(root), *args)
    return root, ports, target


def snapshots(target: str, password: Path) -> list[str]:
    """The snapshots a rebuild restores: each env's newest archive's, and the newest
    configuration backup."""
    listed = json.loads(
        subprocess.run(
            ["restic", "-r", target.removeprefix("file://"), "--password-file", str(password),
             "snapshots", "--json", "--tag", "opskit"],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    newest: dict[str, str] = {}
    config: dict[str, str] = {}
    for snapshot in listed:
        tags = dict(t.split("=", 1) for t in snapshot.get("tags") or [] if "=" in t)
        if "config" in (snapshot.get("tags") or []):
            if snapshot["time"] > config.get("time", ""):
                config = {"time": snapshot["time"], "id": snapshot["id"]}
        elif "archive" in tags:
            key = f"{tags['project']} {tags['env']}"
            newest[key] = max(newest.get(key, ""), tags["archive"])
    chosen = [config["id"]]
    for snapshot in listed:
        tags = dict(t.split("=", 1) for t in snapshot.get("tags") or [] if "=" in t)
        if "archive" in tags and newest.get(f"{tags['project']} {tags['env']}") == tags["archive"]:
            chosen.append(snapshot["id"])
    return chosen


def floor(target: str, password: Path, chosen: list[str]) -> float:
    scratch = HOME / "floor"
    shutil.rmtree(scratch, ignore_errors=True)
    started = time.perf_counter()
    for snapshot in chosen:
        subprocess.run(
            ["restic", "-r", target.removeprefix("file://"), "--password-file", str(password),
             "restore", snapshot, "--target", str(scratch / snapshot[:8])],
            capture_output=True, check=True,
        )  # fmt: skip
    elapsed = time.perf_counter() - started
    shutil.rmtree(scratch, ignore_errors=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cleanup", action="store_true", help="Remove A and B, and stop.")
    options = parser.parse_args()
    if options.cleanup:
        remove(NS_B, HOME / "b", HOME / "b-home")
        remove(NS_A, HOME / "a", HOME / "a-home")
        shutil.rmtree(HOME, ignore_errors=True)
        return
    _root, ports_a, target = server_a()
    password = HOME / "kept-password"
    shutil.copy(HOME / "a-home" / "state" / "restic-password", password)
    chosen = snapshots(target, password)
    ports_b = dict(zip(ports_a, testroot.free_ports(len(ports_a)), strict=True))
    rewrites = ["--rewrite", f"{NS_A}={NS_B}"]  # the names; the repository stays where it is
    for folder in ("state", "backups"):
        rewrites += ["--rewrite", f"{HOME / 'a-home' / folder}={HOME / 'b-home' / folder}"]
    for example, port in ports_a.items():
        rewrites += ["--rewrite", f"{port}={ports_b[example]}"]
    times: dict[str, list[float]] = {"rebuild": [], "floor": []}
    peaks = []
    for round_ in range(options.rounds):
        for which in ("rebuild", "floor") if round_ % 2 == 0 else ("floor", "rebuild"):
            if which == "floor":
                times["floor"].append(floor(target, password, chosen))
                continue
            remove(NS_B, HOME / "b", HOME / "b-home")
            run = measured(
                [OPSKIT, "--root", str(HOME / "b" / "root"), "rebuild", "--all", "--offsite",
                 "--from", target, "--password-file", str(password), *rewrites, "--yes"]
            )  # fmt: skip
            times["rebuild"].append(run.elapsed)
            peaks.append(run.peak)
            table = run.out
        print(
            f"round {round_ + 1}: rebuild {times['rebuild'][-1]:.1f} s, "
            f"floor {times['floor'][-1]:.1f} s",
            file=sys.stderr,
        )
    remove(NS_B, HOME / "b", HOME / "b-home")
    median = {k: statistics.median(v) for k, v in times.items()}
    print(table)
    print(
        f"the example root: {len(ENVS)} envs, {len(chosen)} snapshots; medians of {options.rounds} rounds"
    )
    print(f"rebuild --all --offsite  {median['rebuild']:7.1f} s")
    print(f"restic restore (floor)   {median['floor']:7.1f} s")
    print(f"rebuild/floor            {median['rebuild'] / median['floor']:7.2f}")
    print(f"peak memory (rebuild)    {max(peaks) / 2**20:.0f} MiB")
    print("bench/dr --cleanup removes server A and the repository", file=sys.stderr)


if __name__ == "__main__":
    main()
