"""Restore drills (#11): an archive proven to restore in throw-away containers, the live
env untouched, nothing of the drill left behind."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from archives import altered_copy
from conftest import finished, opskit, started
from drills import drill_leftovers, drilled, of
from sink import Sink
from testroot import use_store

pytestmark = pytest.mark.docker


def started_at(root: str, project: str, env: str) -> dict[str, str]:
    """Each container of the env with the time it last started: a drill changes none."""
    listing = json.loads(opskit("status", project, env, "--json", "--root", root).stdout)
    ids = [c["id"] for c in listing["containers"] if c.get("id")]
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.Name}} {{.State.StartedAt}}", *ids],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(line.split(" ", 1) for line in out.splitlines())


def newest(root: str, project: str, env: str) -> dict[str, object]:
    archives = json.loads(opskit("backups", project, env, "--json", "--root", root).stdout)
    return archives["archives"][0]  # type: ignore[no-any-return]


@pytest.mark.parametrize("project", ["mdf", "seriousletter"])
def test_a_drill_of_each_example_archive_passes(
    examples_up: Path, project: str, store: str
) -> None:
    root = str(use_store(examples_up, store))
    assert opskit("backup", project, "prod", "--root", root, timeout=300).returncode == 0
    before = started_at(root, project, "prod")
    done, its = drilled(project, "prod", "--root", root)
    assert done.returncode == 0, done.stderr
    assert "drilled ok" in done.stdout
    archive = newest(root, project, "prod")
    assert archive["drilled"] == "ok" and archive["drilled_at"], archive
    again = opskit("drill", project, "prod", "--root", root, timeout=600)  # the same archive
    assert again.returncode == 0, again.stderr
    table = opskit("backups", project, "prod", "--root", root).stdout.splitlines()
    assert table[0].split()[-3:] == ["VERIFIED", "DRILLED", "OFFSITE"], table[0]
    assert table[1].split()[-3:] == ["ok", "ok", "never"], table[1]  # the drill verified it too
    assert started_at(root, project, "prod") == before  # the live env was not touched
    assert drill_leftovers(its) == []


def _broken_copy(archive: Path) -> Path:
    """A well-formed archive (checksums recomputed) whose SQL does not load."""

    def break_it(dump: bytes) -> bytes:
        start = dump.index(b"INSERT INTO `wp_posts` VALUES")
        row = dump.index(b"\n(", start) + 1
        return dump[:row] + b"!!" + dump[row:]  # a syntax error inside the INSERT

    name = archive.name[: -len("20261128T000000Z")] + "20991231T235959Z"
    return altered_copy(archive, name, break_it)


def test_a_drill_of_an_archive_that_does_not_load_fails_naming_the_table(
    examples_up: Path, sink: Sink, store: str
) -> None:
    """The dump is broken in a folder archive's file; for the restic store, that archive
    is then moved into the store, as ``backups migrate`` moves one."""
    from archives import into_store, out_of_store
    from testroot import STATE

    root = str(use_store(examples_up, "folder"))
    assert opskit("backup", "mdf", "dev", "--root", root, timeout=300).returncode == 0
    copy = _broken_copy(Path(str(newest(root, "mdf", "dev")["path"])))
    use_store(examples_up, store)
    state = into_store(copy, str(STATE)) if store == "restic" else ""
    settings = examples_up / "opskit.yaml"
    original = settings.read_text()  # the copy's own (tests/testroot.py) comes back after
    # its state folder stays (the root's restic store keeps its password there)
    settings.write_text(original + f"notify: {{urls: ['ntfy://127.0.0.1:{sink.port}/opskit']}}\n")
    try:
        assert opskit("verify", "mdf", "dev", "--name", copy.name, "--root", root).returncode == 0
        done, its = drilled("mdf", "dev", "--name", copy.name, "--root", root)
        assert done.returncode == 1, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("[error]")]
        assert errors and "table wp_posts" in errors[0], done.stderr
        assert "Traceback" not in done.stderr
        result = json.loads((Path(state or copy) / "drill.json").read_text())
        assert result["ok"] is False and "wp_posts" in result["faults"][0]
        assert newest(root, "mdf", "dev")["drilled"] == "FAILED"
        assert drill_leftovers(its) == []
        (alert,) = sink.messages()  # a failed drill is an alert
        assert alert["title"] == "opskit: drill of mdf dev failed"
        assert "wp_posts" in str(alert["message"])
    finally:
        settings.write_text(original)
        if state:
            out_of_store(state, str(STATE))
        shutil.rmtree(copy, ignore_errors=True)


def _drill_until_its_server_runs(root: str) -> subprocess.Popen[str]:
    process = started("drill", "seriousletter", "dev", "--root", root)
    while process.poll() is None and not drill_leftovers(of(process)):
        time.sleep(0.2)  # each look is two docker commands
    assert process.poll() is None, "the drill ended before its server started"
    return process


def test_an_interrupted_drill_removes_what_it_started(examples_up: Path, store: str) -> None:
    root = str(use_store(examples_up, store))
    assert opskit("backup", "seriousletter", "dev", "--root", root, timeout=300).returncode == 0
    process = _drill_until_its_server_runs(root)
    process.send_signal(signal.SIGTERM)
    _out, err = finished(process, 120)
    assert process.returncode == 2, err
    assert [line for line in err.splitlines() if line.startswith("[error]")] == [
        "[error] terminated (SIGTERM)"
    ], err
    assert drill_leftovers(of(process)) == []

    process = _drill_until_its_server_runs(root)
    process.kill()  # nothing can clean up after SIGKILL ...
    finished(process, 60)
    assert drill_leftovers(of(process)) != []
    done = opskit("drill", "seriousletter", "dev", "--root", root, timeout=600)
    assert done.returncode == 0, done.stderr  # ... but the next drill does
    assert drill_leftovers(of(process)) == []


# -- a server as it is configured: PostgreSQL on its socket only (#18) --------------------

# Like the official postgres image: the entrypoint initialises with a temporary server on
# the socket only (and takes a while over it), then execs the command as postgres.
ENTRYPOINT = """\
#!/bin/sh
set -eu
PGDATA=/var/lib/postgresql/data
mkdir -p "$PGDATA" /run/postgresql
chown postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  as_postgres initdb -D "$PGDATA" --username=postgres --auth-local=trust >/dev/null
  as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=" -w start >/dev/null
  as_postgres createdb sock
  as_postgres psql -q -v ON_ERROR_STOP=1 -d sock -c \\
    "CREATE TABLE notes (id int PRIMARY KEY, body text);
     INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 500) g"
  sleep "${INIT_SECONDS:-0}"
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
touch /run/postgresql/initialised
exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
"""
SOCKET_ONLY = ["postgres", "-D", "/var/lib/postgresql/data", "-c", "listen_addresses="]

SOCK = """\
name: sock
environments: [prod]
compose: {{dir: "{{env}}", project_name: "{ns}-sock-{{env}}"}}
backup:
  dir: {backups}
  databases:
    - {{service: db, type: postgres, name: sock, user: postgres}}
"""
SOCK_COMPOSE = f"""\
services:
  db:
    init: true
    image: opskit-test/db:1
    entrypoint: ["/entry/entrypoint.sh"]
    command: {json.dumps(SOCKET_ONLY)}
    environment: {{INIT_SECONDS: "4"}}
    volumes: ["data:/var/lib/postgresql/data", "./entry:/entry:ro"]
    healthcheck:
      test: ["CMD-SHELL", "test -e /run/postgresql/initialised && pg_isready --quiet"]
      interval: 1s
      timeout: 10s
      retries: 60
volumes:
  data: {{}}
"""


def _entry_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    script = folder / "entrypoint.sh"
    script.write_text(ENTRYPOINT)
    script.chmod(0o755)
    return folder


def test_the_readiness_of_a_socket_only_server_waits_for_the_images_initialisation(
    tmp_path: Path,
) -> None:
    """The drill's own readiness wait, against a container in its initialisation: a
    temporary server that answers on the socket is not the server to load into."""
    from opskit.containers import Container
    from opskit.databases import wait_ready
    from opskit.descriptor import Database
    from opskit.host import LocalHost
    from testroot import ns

    name = ns("sock-ready")
    entry = _entry_folder(tmp_path / "entry")
    subprocess.run(["docker", "rm", "-f", "--volumes", name], capture_output=True)
    subprocess.run(
        ["docker", "run", "--detach", "--init", "--name", name, "--network", "none",
         "--env", "INIT_SECONDS=6", "--mount", f"type=bind,source={entry},target=/entry,readonly",
         "--entrypoint", "/entry/entrypoint.sh", "opskit-test/db:1", *SOCKET_ONLY],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        container = Container(name, name, "opskit-test/db:1", "running", "", "none", {})
        database = Database(service="db", type="postgres", name="sock", user="postgres")
        wait_ready(LocalHost(), container, database)
        initialised = subprocess.run(
            ["docker", "exec", name, "test", "-e", "/run/postgresql/initialised"]
        )
        assert initialised.returncode == 0, "ready while the image was still initialising"
        count = subprocess.run(
            ["docker", "exec", name, "psql", "-U", "postgres", "-At", "-d", "sock",
             "-c", "SELECT count(*) FROM notes"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert count.stdout.strip() == "500", count.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", "--volumes", name], capture_output=True)


def test_a_drill_of_a_socket_only_postgres_passes(tmp_path: Path, store: str) -> None:
    from conftest import wait_until
    from testroot import NS

    root = tmp_path / "root"
    (root / "sock" / "prod").mkdir(parents=True)
    (root / "sock" / "project.yaml").write_text(SOCK.format(ns=NS, backups=tmp_path / "backups"))
    use_store(root, store)
    (root / "sock" / "prod" / "docker-compose.yml").write_text(SOCK_COMPOSE)
    _entry_folder(root / "sock" / "prod" / "entry")
    try:
        assert opskit("start", "sock", "prod", "--root", str(root)).returncode == 0
        wait_until(
            lambda: opskit("health", "sock", "prod", "--root", str(root)).returncode == 0,
            timeout=120, what="a healthy socket-only postgres",
        )  # fmt: skip
        backup = opskit("backup", "sock", "prod", "--root", str(root), timeout=300)
        assert backup.returncode == 0, backup.stderr
        done = opskit("drill", "sock", "prod", "--root", str(root), timeout=600)
        assert done.returncode == 0, done.stderr
        assert "drilled ok" in done.stdout
        archive = newest(str(root), "sock", "prod")
        assert archive["drilled"] == "ok", archive
        assert drill_leftovers("sock") == []  # the wp drills of other runners are theirs
    finally:
        opskit("destroy", "sock", "prod", "--volumes", "--yes", "--root", str(root))


def test_the_readiness_of_a_mariadb_without_networking(tmp_path: Path) -> None:
    """``skip-networking``: the server answers on its socket only, and is ready."""
    from opskit.containers import Container
    from opskit.databases import wait_ready
    from opskit.descriptor import Database
    from opskit.host import LocalHost
    from testroot import ns

    name = ns("maria-socket-ready")
    command = (
        "mkdir -p /run/mysqld && chown mysql /run/mysqld && "
        "(test -d /var/lib/mysql/mysql || mariadb-install-db --user=mysql >/dev/null) && "
        "exec mariadbd --user=mysql --skip-networking"
    )
    subprocess.run(["docker", "rm", "-f", "--volumes", name], capture_output=True)
    subprocess.run(
        ["docker", "run", "--detach", "--init", "--name", name, "--network", "none",
         "opskit-test/db:1", "sh", "-c", command],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        container = Container(name, name, "opskit-test/db:1", "running", "", "none", {})
        wait_ready(LocalHost(), container, Database(service="db", type="mariadb", name="x"))
        answer = subprocess.run(
            ["docker", "exec", name, "mariadb", "-uroot", "-N", "-e", "SELECT @@skip_networking"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert answer.stdout.strip() == "1", answer.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", "--volumes", name], capture_output=True)
