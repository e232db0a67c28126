"""opskit against its peer, borgmatic + borg, on the same data (issue #22, "Measure it against
the peer").

Run by bench/peer, which installs the peers when they are missing (borg from Debian,
borgmatic from PyPI into build/bench-venv-borgmatic, the MariaDB client for borgmatic's
hook). Everything lives apart from the examples and the tests: a root of its own with one
project ``peer`` (env ``dev``: web + MariaDB, compose project ``opskit-bench-peer``) under
/var/tmp/opskit-bench-peer, with the archives, the borg repository and the state beside it.

Data, deterministic (seeded) and scaled by ``--scale`` (1.0 = the issue's shape): a table
``bench_rows`` whose dump is about 380 MB, 634 MB of uploads in about 20k files (mostly
incompressible, as photos are), a 106 MB volume. Each round starts both tools on empty
repositories and runs, the tools alternated (the first tool of a round goes second in the
next):

  first night          opskit backup peer dev    vs  borgmatic create
  a later night        after 1 % of the rows (one run of consecutive ids) and 20 files changed
  an unchanged night   nothing changed
  storage              du of the archive folder vs du of the borg repository, after each night
  database restore     opskit restore --only db-db-wordpress (when opskit has --only; else the
                       full restore, and the table says so) vs borgmatic restore --database;
                       both proven by CHECKSUM TABLE against the value before

borgmatic dumps the database with its own mariadb hook over TCP (hostname 127.0.0.1 and the
db container's published port, the host's mariadb-dump), and backs up the uploads folder and
the volume's folder under /var/lib/docker/volumes. Its repository is encrypted
(repokey-blake2, as restic always is) with borg's default compression (lz4) unless
--borg-compression says otherwise. A night is ``borgmatic create`` against ``opskit backup``:
neither prunes nor checks.

``--store`` goes into the project's ``backup.store`` (a restic store keeps its repository in
backup.dir too, so the same du measures it); ``--opskit PATH`` measures another checkout's
opskit (e.g. a branch's .venv/bin/opskit). Peak memory is the most the process tree held at
once (the tool, docker exec, zstd, restic, borg, ...) and the tool's own process apart.

Prints the table (medians over the rounds) and, from opskit's --events, the seconds of each
of its phases, and writes both to build/bench/peer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchlib import Run, mariadb, measured, phases, volume_mountpoint

REPO = Path(__file__).resolve().parent.parent
HOME = Path("/var/tmp/opskit-bench-peer")
ROOT = HOME / "root"
ENV_DIR = ROOT / "peer" / "dev"
UPLOADS = ENV_DIR / "wp-content" / "uploads"
BACKUPS = HOME / "backups"
STATE = HOME / "state"
BORG_REPO = HOME / "borg"
BORG_HOME = HOME / "borg-home"
BORGMATIC_CONFIG = HOME / "borgmatic.yaml"
NAME = "opskit-bench-peer"
DB = f"{NAME}-db"
VOLUME = f"{NAME}_media"
DB_PASSWORD = "bench-peer-db-password"
OPSKIT = [str(REPO / ".venv" / "bin" / "opskit"), "--root", str(ROOT)]
BORGMATIC = [str(REPO / "build" / "bench-venv-borgmatic" / "bin" / "borgmatic")]
RESULT = REPO / "build" / "bench" / "peer.json"
MB = 1_000_000

# The shape at scale 1.0: about 850 bytes a row in the dump, a ~380 MB dump.
ROWS, FILES, FILES_BYTES, VOLUME_FILES, VOLUME_BYTES = 450_000, 20_000, 634 * MB, 400, 106 * MB

COMPOSE = """\
services:
  web:
    init: true
    image: opskit-test/web:1
    container_name: {name}-web
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    volumes: ["./wp-content:/srv/wp-content", "./index.html:/srv/index.html:ro", "media:/srv/media"]
    healthcheck: {{test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"], interval: 2s, timeout: 10s, retries: 3}}
  db:
    init: true
    image: opskit-test/db:1
    container_name: {name}-db
    command: ["/stacks/mariadb.sh"]
    environment: {{MYSQL_ROOT_PASSWORD: "${{MYSQL_ROOT_PASSWORD}}", MYSQL_DATABASE: wordpress}}
    ports: ["127.0.0.1:${{DB_PORT}}:3306"]
    volumes: ["db_data:/var/lib/mysql", "../../_stacks:/stacks:ro"]
    healthcheck: {{test: ["CMD", "mariadb-admin", "ping", "--silent"], interval: 2s, timeout: 10s, retries: 30}}
volumes:
  db_data: {{}}
  media: {{}}
"""

PROJECT = """\
name: peer
description: opskit against borgmatic (bench/peer)
environments: [dev]
container_prefix: "{name}"
compose: {{dir: "{{env}}", files: [docker-compose.yml], env_file: ".env.{{env}}", project_name: "{name}"}}
services: {{web: {{}}, db: {{}}}}
backup:
  dir: {backups}
  retention: {{keep_daily: 30}}
  databases:
    - {{service: db, type: mariadb, name: wordpress, user: root, password_env: MYSQL_ROOT_PASSWORD}}
  paths: ["{{env}}/wp-content/uploads"]
  volumes: ["{volume}"]
"""

BORGMATIC_YAML = """\
source_directories:
  - {uploads}
  - {volume}
repositories:
  - {{path: {repo}, label: local}}
encryption_passcommand: cat {home}/borg-passphrase
compression: {compression}
user_runtime_directory: {home}/run-borgmatic  # not "borgmatic-*": borgmatic globs that prefix away
user_state_directory: {home}/state-borgmatic
keep_daily: 30
mariadb_databases:
  - {{name: wordpress, hostname: 127.0.0.1, port: {port}, username: root, password: {password}}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def opskit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OPSKIT, *args], capture_output=True, text=True)


def write_root(store: str) -> str:
    """The bench's root: the peer project with ``backup.store`` *store*. Returns a note when
    this opskit has no ``backup.store`` yet (then folder, today's only format, is used)."""
    (ROOT / "_stacks").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "examples" / "root" / "_stacks" / "mariadb.sh", ROOT / "_stacks")
    UPLOADS.mkdir(parents=True, exist_ok=True)
    (ENV_DIR / "index.html").write_text("bench peer\n")
    (ENV_DIR / "docker-compose.yml").write_text(COMPOSE.format(name=NAME))
    env_file = ENV_DIR / ".env.dev"
    if not env_file.exists():  # the published port stays what the running container has
        env_file.write_text(f"MYSQL_ROOT_PASSWORD={DB_PASSWORD}\nDB_PORT={free_port()}\n")
    (ROOT / "opskit.yaml").write_text(f"state_dir: {STATE}\n")
    project = PROJECT.format(name=NAME, backups=BACKUPS, volume=VOLUME)
    descriptor = ROOT / "peer" / "project.yaml"
    descriptor.write_text(project + f"  store: {store}\n")
    checked = opskit("projects")
    if checked.returncode == 0:
        return ""
    if "backup.store" in checked.stderr and store == "folder":
        descriptor.write_text(project)
        return "this opskit has no backup.store: folder archives, today's only format"
    raise SystemExit(f"the bench's project.yaml is refused: {checked.stderr.strip()}")


def db_port() -> int:
    for line in (ENV_DIR / ".env.dev").read_text().splitlines():
        if line.startswith("DB_PORT="):
            return int(line.split("=", 1)[1])
    raise SystemExit(f"no DB_PORT in {ENV_DIR / '.env.dev'}")


def start() -> None:
    started = opskit("start", "peer", "dev")
    if started.returncode:
        raise SystemExit(f"opskit start peer dev failed: {started.stderr.strip()}")
    for _ in range(90):
        if opskit("health", "peer", "dev").returncode == 0:
            return
        time.sleep(2)
    raise SystemExit("peer dev did not become healthy")


# -- data ------------------------------------------------------------------------------------


def row_sql(seed: int, first: int, last: int) -> str:
    digests = ", ".join(f"MD5(CONCAT('{seed}-', seq, '-{k}'))" for k in range(16))
    return (
        "INSERT INTO bench_rows SELECT seq, CONCAT('post ', seq, ' ', MD5(seq)), "
        f"CONCAT({digests}, ' ', REPEAT(CONCAT('word', seq % 97, ' '), 40)) "
        f"FROM seq_{first}_to_{last}"
    )


def make_rows(rows: int, seed: int) -> None:
    print(f"creating {rows} rows (~850 bytes each in a dump) in bench_rows ...", file=sys.stderr)
    mariadb(DB, "DROP TABLE IF EXISTS bench_rows")
    mariadb(
        DB,
        "CREATE TABLE bench_rows (id INT PRIMARY KEY, title VARCHAR(250), body TEXT) ENGINE=InnoDB",
    )
    for first in range(1, rows + 1, 50_000):
        mariadb(DB, row_sql(seed, first, min(first + 49_999, rows)))


def content(rng: random.Random, size: int, text: bool) -> bytes:
    """*size* bytes: random (a photo, an archive: incompressible) or text built from words."""
    if not text:
        return rng.randbytes(size)
    words = [rng.choice(WORDS) for _ in range(size // 6 + 1)]
    return " ".join(words).encode()[:size]


WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
]


def make_files(folder: Path, count: int, total: int, seed: int) -> None:
    """*count* files of *total* bytes under *folder*/YYYY/MM: sizes spread as uploads are
    (many small, some large), 85 % of the bytes incompressible."""
    print(f"writing {total / MB:.0f} MB in {count} files under {folder} ...", file=sys.stderr)
    rng = random.Random(seed)
    sizes = [rng.lognormvariate(0, 1.2) for _ in range(count)]
    factor = total / sum(sizes)
    shutil.rmtree(folder, ignore_errors=True)
    for index, size in enumerate(sizes):
        text = rng.random() < 0.4 and size * factor < 64_000
        target = folder / f"{2018 + index % 8}" / f"{index % 12 + 1:02}" / f"upload-{index:05}"
        target = target.with_suffix(".txt" if text else ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content(rng, max(1, int(size * factor)), text))


def make_data(scale: float, seed: int) -> dict[str, object]:
    """The data of *scale*, made unless an earlier run made it already (marker in HOME; the
    data then carries that run's later-night changes too: same shape, other bytes)."""
    rows = max(1000, int(ROWS * scale))
    wanted = {"scale": scale, "seed": seed, "rows": rows}
    marker = HOME / "data.json"
    have = mariadb(
        DB, "SELECT COUNT(*) FROM information_schema.tables WHERE table_name='bench_rows'"
    )
    if not (marker.exists() and json.loads(marker.read_text()) == wanted and have == "1"):
        marker.unlink(missing_ok=True)
        make_rows(rows, seed)
        make_files(UPLOADS, max(200, int(FILES * scale)), int(FILES_BYTES * scale), seed)
        volume = Path(volume_mountpoint(VOLUME))
        for entry in volume.iterdir():
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        make_files(volume, max(40, int(VOLUME_FILES * scale)), int(VOLUME_BYTES * scale), seed + 1)
        marker.write_text(json.dumps(wanted))
    dump = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"docker exec {DB} sh -c 'MYSQL_PWD=\"$MYSQL_ROOT_PASSWORD\" exec mariadb-dump -uroot --single-transaction wordpress' | wc -c"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {
        "rows": rows,
        "dump_mb": round(int(dump.stdout) / MB, 1),
        "files": sum(1 for p in UPLOADS.rglob("*") if p.is_file()),
        "files_mb": round(du(UPLOADS) / MB, 1),
        "volume_mb": round(du(Path(volume_mountpoint(VOLUME))) / MB, 1),
    }


def change(data: dict, night: int) -> int:
    """A later night's changes: 1 % of the rows (one run of consecutive ids at a seeded place,
    as a batch of edits touches neighbouring rows) and 20 files rewritten with new bytes of the same size. Returns about how many bytes
    of the backed-up data changed: the rows' share of the dump and the files."""
    rng = random.Random(1000 + night)
    rows = int(data["rows"])
    count = max(1, rows // 100)
    first = rng.randint(1, rows - count + 1)
    mariadb(
        DB,
        f"UPDATE bench_rows SET title = CONCAT('edited {night} ', id), "
        f"body = CONCAT(MD5(CONCAT('night {night}', id)), SUBSTRING(body, 33)) "
        f"WHERE id BETWEEN {first} AND {first + count - 1}",
    )
    files = sorted(p for p in UPLOADS.rglob("*") if p.is_file())
    changed = int(float(data["dump_mb"]) * MB * count / rows)
    for path in rng.sample(files, 20):
        changed += path.stat().st_size
        path.write_bytes(content(rng, path.stat().st_size, path.suffix == ".txt"))
    return changed


def checksum() -> str:
    return mariadb(DB, "CHECKSUM TABLE bench_rows EXTENDED").split()[-1]


def du(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


# -- the tools -------------------------------------------------------------------------------


def borg_env() -> dict[str, str]:
    return dict(os.environ, BORG_BASE_DIR=str(BORG_HOME))


def fresh_repositories(compression: str) -> None:
    for folder in (BACKUPS, STATE, BORG_REPO, BORG_HOME):
        shutil.rmtree(folder, ignore_errors=True)
    BACKUPS.mkdir(parents=True)
    STATE.mkdir(mode=0o700)
    passphrase = HOME / "borg-passphrase"
    if not passphrase.exists():
        passphrase.write_text(secrets.token_urlsafe(32) + "\n")
        passphrase.chmod(0o600)
    BORGMATIC_CONFIG.write_text(
        BORGMATIC_YAML.format(
            uploads=UPLOADS,
            volume=volume_mountpoint(VOLUME),
            repo=BORG_REPO,
            home=HOME,
            compression=compression,
            port=db_port(),
            password=DB_PASSWORD,
        )
    )
    BORGMATIC_CONFIG.chmod(0o600)
    measured([*BORGMATIC, "--config", str(BORGMATIC_CONFIG), "repo-create", "--encryption", "repokey-blake2"], borg_env())  # fmt: skip


def night(tool: str) -> Run:
    if tool == "opskit":
        return measured([*OPSKIT, "backup", "peer", "dev", "--events"])
    return measured([*BORGMATIC, "--config", str(BORGMATIC_CONFIG), "create"], borg_env())


def storage(tool: str) -> int:
    return du(BACKUPS if tool == "opskit" else BORG_REPO)


def restore_database(tool: str, only: bool) -> Run:
    if tool == "opskit":
        part = ["--only", "db-db-wordpress"] if only else []
        return measured(
            [
                *OPSKIT,
                "restore",
                "peer",
                "dev",
                "--latest",
                *part,
                "--no-safety-backup",
                "--yes",
                "--events",
            ]
        )
    # --original-port: without it borgmatic 2.1.10 finds no dump taken on a port other than
    # the default ("Cannot restore data source dump wordpress missing from archive")
    argv = [*BORGMATIC, "--config", str(BORGMATIC_CONFIG), "restore", "--archive", "latest", "--database", "wordpress", "--original-port", str(db_port())]  # fmt: skip
    return measured(argv, borg_env())


# -- the run ---------------------------------------------------------------------------------

TOOLS = ("opskit", "borgmatic")
MEASURES = ("first night", "later night", "unchanged night")


def one_round(round_: int, data: dict, compression: str, only: bool, expected: list[str]) -> dict:
    """One round on empty repositories; the order of the tools alternates with the round."""
    order = TOOLS if round_ % 2 == 0 else TOOLS[::-1]
    fresh_repositories(compression)
    result: dict[str, dict] = {tool: {} for tool in (*TOOLS, "opskit phases")}
    runs: dict[str, list[Run]] = {tool: [] for tool in TOOLS}
    for measure in MEASURES:
        if measure == "later night":
            changed = change(data, round_)
            expected[0] = checksum()
        for tool in order:
            before = storage(tool)
            runs[tool].append(night(tool))
            result[tool][measure] = runs[tool][-1].elapsed
            result[tool][f"storage added by the {measure}"] = (storage(tool) - before) / MB
        result["opskit phases"][measure] = phases(runs["opskit"][-1])
    for tool in order:
        result[tool]["storage after three nights"] = storage(tool) / MB
        mariadb(DB, "UPDATE bench_rows SET title = 'damaged' WHERE id = 1")
        runs[tool].append(restore_database(tool, only))
        if checksum() != expected[0]:
            raise SystemExit(f"{tool}'s restore did not give back the table (CHECKSUM TABLE)")
        result[tool]["database restore"] = runs[tool][-1].elapsed
    result["opskit phases"]["database restore"] = phases(runs["opskit"][-1])
    for tool in TOOLS:
        result[tool]["peak memory, process tree"] = max(run.peak for run in runs[tool]) / MB
        result[tool]["peak memory, own process"] = max(run.own_peak for run in runs[tool]) / MB
        result[tool]["data changed for the later night"] = changed / MB
    print(
        f"round {round_ + 1} ({order[0]} first): "
        + "; ".join(f"{m} {result['opskit'][m]:.1f} vs {result['borgmatic'][m]:.1f}" for m in result["opskit"]),
        file=sys.stderr,
    )  # fmt: skip
    return result


GOALS = {
    "first night": ("s", 1.0),
    "later night": ("s", 0.8),
    "unchanged night": ("s", 0.8),
    "storage after three nights": ("MB", 1.0),
    "storage added by the later night": ("MB", None),
    "storage added by the unchanged night": ("MB", None),
    "database restore": ("s", 1.0),
    "peak memory, process tree": ("MB", None),
    "peak memory, own process": ("MB", None),
}


def table(rounds: list[dict], only: bool) -> list[dict[str, object]]:
    rows = []
    for measure, (unit, goal) in GOALS.items():
        values = {tool: statistics.median(r[tool][measure] for r in rounds) for tool in TOOLS}
        ratio = values["opskit"] / values["borgmatic"] if values["borgmatic"] else None
        if measure.startswith("peak memory"):
            goal_text, met = "opskit < 150 MB", values["opskit"] < 150
        elif goal is None:
            changed = statistics.median(
                r["opskit"]["data changed for the later night"] for r in rounds
            )
            what = f"{changed:.1f} MB" if "later" in measure else "nothing"
            goal_text, met = f"little more than what changed ({what})", None
        else:
            goal_text, met = f"<= {goal:.1f}x", ratio is not None and ratio <= goal
        label = measure
        if measure == "database restore" and not only:
            label += " (opskit: full restore, no --only yet)"
        rows.append(
            {
                "measure": label,
                "unit": unit,
                "opskit": round(values["opskit"], 1),
                "borgmatic": round(values["borgmatic"], 1),
                "ratio": None if ratio is None else round(ratio, 2),
                "goal": goal_text,
                "met": met,
            }
        )
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    print("| measure | opskit | borgmatic | ratio | goal | met |\n|---|---|---|---|---|---|")
    for row in rows:
        met = {True: "yes", False: "NO", None: ""}[row["met"]]  # type: ignore[index]
        ratio = "" if row["ratio"] is None else f"{row['ratio']:.2f}"
        print(
            f"| {row['measure']} | {row['opskit']} {row['unit']} | {row['borgmatic']} {row['unit']} "
            f"| {ratio} | {row['goal']} | {met} |"
        )


def time_by_phase(rounds: list[dict]) -> dict[str, dict[str, float]]:
    """Median seconds of each of opskit's phases, per measure."""
    return {
        measure: {
            phase: round(
                statistics.median(r["opskit phases"][measure].get(phase, 0.0) for r in rounds), 1
            )
            for phase in rounds[0]["opskit phases"][measure]
        }
        for measure in rounds[0]["opskit phases"]
    }


def versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        out = subprocess.run(argv, capture_output=True, text=True)
        return (out.stdout or out.stderr).strip().splitlines()[0]

    commit = subprocess.run(
        ["git", "-C", str(Path(OPSKIT[0]).resolve().parent.parent.parent), "describe", "--always", "--dirty"],
        capture_output=True, text=True,
    )  # fmt: skip
    return {
        "opskit": f"{first_line([OPSKIT[0], '--version'])} ({OPSKIT[0]}, commit {commit.stdout.strip() or '?'})",
        "borgmatic": first_line([*BORGMATIC, "--version"]),
        "borg": first_line(["borg", "--version"]),
        "restic": first_line(["restic", "version"]),
        "mariadb-dump (borgmatic's)": first_line(["mariadb-dump", "--version"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = the issue's data")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--store", choices=("folder", "restic"), default="folder")
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--borg-compression", default="lz4")
    parser.add_argument("--opskit", default=OPSKIT[0], help="the opskit program to measure")
    parser.add_argument("--cleanup", action="store_true", help="remove the bench's env and data")
    options = parser.parse_args()
    OPSKIT[0] = options.opskit
    HOME.mkdir(parents=True, exist_ok=True)
    if options.cleanup:
        if (ROOT / "peer").exists():
            opskit("destroy", "peer", "dev", "--volumes", "--yes")
        shutil.rmtree(HOME, ignore_errors=True)
        return
    note = write_root(options.store)
    start()
    data = make_data(options.scale, options.seed)
    only = "--only" in opskit("restore", "--help").stdout
    print(f"data: {data}", file=sys.stderr)
    expected = [checksum()]
    rounds = [
        one_round(r, data, options.borg_compression, only, expected) for r in range(options.rounds)
    ]
    rows = table(rounds, only)
    print(
        f"data (--scale {options.scale:g}): a {data['dump_mb']} MB dump of {data['rows']} rows, "
        f"{data['files_mb']} MB in {data['files']} files, a {data['volume_mb']} MB volume; "
        f"opskit store {options.store}; {options.rounds} rounds, medians, tools alternated"
    )
    if note:
        print(f"note: {note}")
    print_table(rows)
    by_phase = time_by_phase(rounds)
    print("\nwhere opskit's time goes (its --events phases, medians):")
    for measure, seconds in by_phase.items():
        print(
            f"  {measure}: "
            + ", ".join(f"{phase} {value:.1f} s" for phase, value in seconds.items())
        )
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(
        json.dumps(
            {
                "scale": options.scale,
                "rounds": options.rounds,
                "store": options.store,
                "note": note,
                "borg_compression": options.borg_compression,
                "data": data,
                "versions": versions(),
                "table": rows,
                "opskit_phases": by_phase,
                "per_round": rounds,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written: {RESULT}", file=sys.stderr)


if __name__ == "__main__":
    main()
