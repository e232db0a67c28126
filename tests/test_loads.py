"""Database loads that lose nothing in silence (#10), against real MariaDB and PostgreSQL.

The ``load`` project has dev and prod, each a database with 300k rows and a web service
that a restore stops and starts again. Its sync rewrites ``shop.ch`` with three strings per
env and whole hosts only. Every test leaves the envs as it found them.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import testroot
from conftest import archives_of, docker_ready, finished, manifest_of, opskit, started, wait_until
from testroot import NS
from wpstack import php_serialize

pytestmark = pytest.mark.docker

ROWS = 300_000
PASSWORD = "load-secret-pw"

DESCRIPTOR = """\
name: load
environments: [dev, prod]
compose: {{dir: "{{env}}", project_name: "{ns}-load-{kind}-{{env}}"}}
services: {{web: {{}}, db: {{}}}}
health: {{timeout: 120}}
backup:
  dir: {backups}
  databases:
    - {{service: db, type: {kind}, name: app, user: {user}, password_env: {password_env}}}
sync:
  pairs: [[prod, dev]]
  whole_hosts: true
  replace:
    prod: ["https://shop.ch", "http://shop.ch", "//shop.ch"]
    dev: ["https://dev.shop.ch", "http://dev.shop.ch", "//dev.shop.ch"]
"""

WEB = """\
  web:
    init: true
    image: opskit-test/web:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/"]
    healthcheck: {test: ["CMD", "true"], interval: 1s, timeout: 10s, retries: 3}
"""

COMPOSE = {
    "mariadb": """\
services:
{web}  db:
    init: true
    image: opskit-test/db:1
    command: ["/stacks/mariadb.sh"]
    environment: {{MYSQL_ROOT_PASSWORD: "{password}", MYSQL_DATABASE: app}}
    volumes: ["data:/var/lib/mysql", "{stacks}:/stacks:ro", "./seed:/seed:ro"]
    healthcheck: {{test: ["CMD", "mariadb-admin", "ping", "--silent"], interval: 1s, timeout: 10s, retries: 120}}
volumes: {{data: {{}}}}
""",
    "postgres": """\
services:
{web}  db:
    init: true
    image: opskit-test/db:1
    command: ["/stacks/postgres.sh"]
    environment: {{POSTGRES_PASSWORD: "{password}", POSTGRES_DB: app}}
    volumes: ["data:/var/lib/postgresql/data", "{stacks}:/stacks:ro", "./seed:/seed:ro"]
    healthcheck: {{test: ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres"], interval: 1s, timeout: 10s, retries: 120}}
volumes: {{data: {{}}}}
""",
}

# A serialized option with a trailing newline (WordPress trims before it unserializes).
OPTION = php_serialize({"home": "https://shop.ch", "feed": "//shop.ch/feed.xml"}) + "\n"
URLS = [
    (1, "https://shop.ch/a"),
    (2, "http://shop.ch/b"),
    (3, "//shop.ch/c"),
    (4, "https://shop.chocolate.com/"),
    (5, "see https://shop.ch."),
]
SEED = {
    "mariadb": """\
CREATE TABLE big (id INT PRIMARY KEY, title VARCHAR(200), body TEXT) ENGINE=InnoDB;
INSERT INTO big SELECT seq, CONCAT('row ', seq), REPEAT(MD5(seq), 3) FROM seq_1_to_{rows};
CREATE TABLE users (id INT PRIMARY KEY, url VARCHAR(40) NOT NULL) ENGINE=InnoDB;
INSERT INTO users VALUES {urls};
CREATE TABLE options (id INT PRIMARY KEY, value LONGTEXT) ENGINE=InnoDB;
INSERT INTO options VALUES (1, '{option}');
""",
    "postgres": """\
CREATE TABLE big (id int PRIMARY KEY, title varchar(200), body text);
INSERT INTO big SELECT g, 'row ' || g, repeat(md5(g::text), 3) FROM generate_series(1, {rows}) g;
CREATE TABLE users (id int PRIMARY KEY, url varchar(40) NOT NULL);
INSERT INTO users VALUES {urls};
CREATE TABLE options (id int PRIMARY KEY, value text);
INSERT INTO options VALUES (1, E'{option}');
""",
}
CLIENT = {
    "mariadb": 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" exec mariadb -uroot -N -B -e "$1" "$2"',
    "postgres": 'PGPASSWORD="$POSTGRES_PASSWORD" exec psql -h 127.0.0.1 -U postgres -tA -F "\t" -c "$1" "$2"',
}
# Where the named point is watched from: a database that no load drops.
SERVER = {"mariadb": "information_schema", "postgres": "postgres"}
# The named point inside a load: the client is inserting into (or copying) table big.
LOADING = {
    "mariadb": "SELECT COUNT(*) FROM information_schema.processlist "
    "WHERE db = 'app' AND info LIKE 'INSERT INTO `big`%'",
    "postgres": "SELECT COUNT(*) FROM pg_stat_activity "
    "WHERE datname = 'app' AND state = 'active' AND query LIKE 'COPY public.big %FROM stdin%'",
}


class Load:
    def __init__(self, root: Path, kind: str) -> None:
        self.root = root
        self.kind = kind
        self.containers: dict[str, str] = {}

    def container(self, env: str) -> str:
        """The db container, found by compose's labels (compose v1 and v2 name it apart);
        asked of Docker again only when the one it gave has gone (see :meth:`sql`)."""
        if env in self.containers:
            return self.containers[env]
        project = f"{NS}-load-{self.kind}-{env}"
        found = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={project}",
             "--filter", "label=com.docker.compose.service=db"],
            capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
        assert len(found) == 1, (project, found)
        self.containers[env] = found[0]
        return found[0]

    def sql(self, env: str, query: str, database: str = "app") -> str:
        done = self._client(env, query, database)
        if "No such container" in done.stderr or "is not running" in done.stderr:
            self.containers.pop(env, None)  # compose made a new one: ask Docker again
            done = self._client(env, query, database)
        done.check_returncode()
        return done.stdout.strip()

    def _client(self, env: str, query: str, database: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "exec", self.container(env), "sh", "-c", CLIENT[self.kind], "sh", query,
             database],
            capture_output=True, text=True,
        )  # fmt: skip

    def checksums(self, env: str) -> dict[str, str]:
        """Every table of the database with a checksum of its content."""
        if self.kind == "mariadb":
            tables = self.sql(env, "SHOW TABLES").split()
            out = self.sql(env, "CHECKSUM TABLE " + ", ".join(tables))
            return dict(line.split("\t") for line in out.splitlines())
        tables = self.sql(
            env, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).split()
        return {
            table: self.sql(
                env, f"SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {table} t"
            )
            for table in tables
        }

    def run(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return opskit(*args, "--root", str(self.root), **kwargs)  # type: ignore[arg-type, return-value]


@pytest.fixture(scope="module", params=["mariadb", "postgres"])
def load(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Load]:
    from wpstack import STACKS

    if not docker_ready():
        pytest.fail("no Docker engine: run scripts/testbed.sh (or deselect with -m 'not docker')")
    kind = request.param
    root = tmp_path_factory.mktemp(f"load-{kind}")
    user, variable = (
        ("root", "MYSQL_ROOT_PASSWORD") if kind == "mariadb" else ("postgres", "POSTGRES_PASSWORD")
    )
    (root / "load").mkdir()
    (root / "load" / "project.yaml").write_text(
        DESCRIPTOR.format(
            ns=NS, kind=kind, backups=root / "backups", user=user, password_env=variable
        )
    )
    quote = (
        (lambda s: "'" + s.replace("'", "''") + "'")
        if kind == "postgres"
        else (lambda s: "'" + s.replace("'", "\\'") + "'")
    )
    urls = ", ".join(f"({i}, {quote(url)})" for i, url in URLS)
    option = OPTION.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
    for env in ("dev", "prod"):
        folder = root / "load" / env
        (folder / "seed").mkdir(parents=True)
        (folder / "seed" / "seed.sql").write_text(
            SEED[kind].format(rows=ROWS, urls=urls, option=option)
        )
        (folder / "docker-compose.yml").write_text(
            COMPOSE[kind].format(web=WEB, password=PASSWORD, stacks=STACKS)
        )
    fixture = Load(root, kind)
    try:
        for env in ("dev", "prod"):
            started = opskit("start", "load", env, "--root", str(root), timeout=300)
            assert started.returncode == 0, started.stderr
        wait_until(
            lambda: opskit("health", "load", "--root", str(root)).returncode == 0,
            timeout=240, what="healthy load envs",
        )  # fmt: skip
        # The fixture's backup, once in each store (restic first: the restic store lists
        # the folder archives beside its own, and a test takes the oldest it lists).
        for store in ("restic", "folder"):
            testroot.use_store(root, store)
            backup = opskit("backup", "load", "dev", "--root", str(root), timeout=300)
            assert backup.returncode == 0, backup.stderr
        testroot.put_back_descriptors()
        # dev now differs from its archive: a restore that did nothing would be noticed
        fixture.sql("dev", "UPDATE users SET url = 'https://changed.test/' WHERE id = 1")
        fixture.sql("dev", f"DELETE FROM big WHERE id > {ROWS - 10}")
        yield fixture
    finally:
        for env in ("dev", "prod"):
            opskit("destroy", "load", env, "--volumes", "--yes", "--root", str(root))


def fixture_backup(load: Load) -> dict[str, object]:
    """The archive the fixture made of dev in the store the test uses: its oldest."""
    return min(archives_of(load.root, "load", "dev"), key=lambda a: str(a["created"]))


def test_the_manifest_records_the_row_count_of_every_table(load: Load, store: str) -> None:
    testroot.use_store(load.root, store)
    manifest = manifest_of(str(fixture_backup(load)["path"]))
    (database,) = [c for c in manifest["components"] if c["kind"] == "database"]  # type: ignore[attr-defined]
    prefix = "public." if load.kind == "postgres" else ""
    assert database["details"]["rows"] == {
        f"{prefix}big": ROWS,
        f"{prefix}options": 1,
        f"{prefix}users": len(URLS),
    }


def test_sync_rewrites_every_string_in_order_and_only_whole_hosts(load: Load, store: str) -> None:
    testroot.use_store(load.root, store)  # the sync backs dev up first
    before = load.sql("prod", "SELECT COUNT(*) FROM big")
    done = load.run("sync", "load", "--from", "prod", "--to", "dev", "--yes", timeout=600)
    assert done.returncode == 0, done.stderr
    urls = load.sql("dev", "SELECT id, url FROM users ORDER BY id").splitlines()
    assert urls == [
        "1\thttps://dev.shop.ch/a",
        "2\thttp://dev.shop.ch/b",
        "3\t//dev.shop.ch/c",
        "4\thttps://shop.chocolate.com/",  # another host that begins with shop.ch
        "5\tsee https://dev.shop.ch.",
    ]
    assert load.sql("dev", "SELECT COUNT(*) FROM big") == before
    value = subprocess.run(
        ["docker", "exec", load.container("dev"), "sh", "-c",
         CLIENT[load.kind].replace("-N -B", "-N -r -B"), "sh", "SELECT value FROM options", "app"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    value = value[:-1] if value.endswith(b"\n") else value  # the client's own newline
    assert value.endswith(b";}\n"), value  # the whitespace is kept
    php = subprocess.run(
        ["php", "-r", "echo json_encode(unserialize(trim(stream_get_contents(STDIN))));"],
        input=value, capture_output=True, check=True,
    )  # fmt: skip
    assert json.loads(php.stdout) == {
        "home": "https://dev.shop.ch",
        "feed": "//dev.shop.ch/feed.xml",
    }


def test_a_sync_whose_value_no_longer_fits_fails_and_leaves_the_target(
    load: Load, store: str
) -> None:
    testroot.use_store(load.root, store)  # dev is put back from the sync's backup
    long_url = "https://shop.ch/" + "x" * 22  # 38 characters; 42 once rewritten
    load.sql("prod", f"INSERT INTO users VALUES (99, '{long_url}')")
    try:
        before = load.checksums("dev")
        done = load.run("sync", "load", "--from", "prod", "--to", "dev", "--yes", timeout=600)
        assert done.returncode == 1, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("[error]")]
        assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
        for fragment in ("users", "url", "was put back from load-dev-"):
            assert fragment in errors[0], errors[0]
        assert load.checksums("dev") == before
        assert load.run("health", "load", "dev").returncode == 0
    finally:
        load.sql("prod", "DELETE FROM users WHERE id = 99")


def _interrupt(
    load: Load,
    argv: list[str],
    at: Callable[[], bool],
    act: Callable[[subprocess.Popen[str]], None],
    settle: float = 0.3,
) -> tuple[int, str]:
    process = started(*argv, "--root", str(load.root))
    try:
        while process.poll() is None and not at():
            # each look is a `docker exec` (about 0.1 s): a short pause, or a load of the
            # size these tests use can begin and end between two looks (CI 37)
            time.sleep(0.02)
        assert process.poll() is None, "the command ended before the named point"
        time.sleep(settle)
        act(process)
        _out, err = finished(process, 600)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, err


def _loading(load: Load, env: str) -> Callable[[], bool]:
    return lambda: load.sql(env, LOADING[load.kind], SERVER[load.kind]) not in ("", "0")


@pytest.mark.parametrize("command", ["restore", "sync"])
@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_an_interrupted_database_load_puts_the_env_back(
    load: Load, command: str, number: int, store: str
) -> None:
    testroot.use_store(load.root, store)
    before = load.checksums("dev")
    argv = (
        ["restore", "load", "dev", "--latest", "--yes"]
        if command == "restore"
        else ["sync", "load", "--from", "prod", "--to", "dev", "--yes"]
    )
    code, err = _interrupt(load, argv, _loading(load, "dev"), lambda p: p.send_signal(number))
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("[error]")]
    assert (
        len(errors) == 1 and "interrupted" in errors[0] and "put back from load-dev-" in errors[0]
    ), err
    assert "Traceback" not in err
    assert load.checksums("dev") == before
    assert load.run("health", "load", "dev").returncode == 0  # every service runs
    free = load.run("backup", "load", "dev", env={"OPSKIT_LOCK_TIMEOUT": "5"}, timeout=300)
    assert free.returncode == 0, free.stderr  # the lock is free
    entry = json.loads(load.run("history", "load", "--json").stdout)[-1]
    assert (entry["command"], entry["result"]) == (command, "interrupted")
    assert entry["safety_backup"].startswith("load-dev-")


def test_a_restore_whose_client_is_killed_fails_and_puts_the_env_back(
    load: Load, store: str
) -> None:
    testroot.use_store(load.root, store)
    before = load.checksums("dev")
    client = "mariadb" if load.kind == "mariadb" else "psql"

    def kill_client(_process: subprocess.Popen[str]) -> None:
        killed = subprocess.run(
            ["docker", "exec", load.container("dev"), "pkill", "-KILL", "-x", client]
        )
        # pkill exits 1 when no client ran: the load had ended and the test proves nothing.
        assert killed.returncode == 0, f"no {client} to kill: the load ended before the kill"

    code, err = _interrupt(
        load,
        ["restore", "load", "dev", "--latest", "--yes"],
        _loading(load, "dev"),
        kill_client,
        settle=0,  # at once: a short COPY can end within the usual settling time
    )
    assert code == 1, err
    errors = [line for line in err.splitlines() if line.startswith("[error]")]
    assert len(errors) == 1 and "put back from load-dev-" in errors[0], err
    assert load.checksums("dev") == before
    assert load.run("health", "load", "dev").returncode == 0
    entry = json.loads(load.run("history", "load", "--json").stdout)[-1]
    assert entry["command"] == "restore" and entry["result"] in ("failed", "rolled back"), entry


def _cut_short(dump: bytes, kind: str) -> bytes:
    """The dump without some rows of table big, still a well-formed dump."""
    if kind == "mariadb":
        start = dump.rindex(b"INSERT INTO `big` VALUES")
        end = dump.index(b";\n", start) + 2
        return dump[:start] + dump[end:]
    copy = dump.index(b"COPY public.big ")
    end = dump.index(b"\n\\.\n", copy) + 1
    start = end
    for _ in range(1000):
        start = dump.rindex(b"\n", copy, start - 1) + 1
    return dump[:start] + dump[end:]


def test_a_restore_of_a_dump_cut_short_fails_and_puts_the_env_back(load: Load, store: str) -> None:
    """A dump that lost rows after the backup counted them (checksums recomputed, so that
    verify passes) loads without an error: only the recorded row counts tell. The dump
    is altered in a folder archive's file; for the restic store, that archive is then
    moved into the store, as ``backups migrate`` moves one."""
    import shutil

    from archives import altered_copy, into_store, out_of_store
    from opskit.settings import DEFAULT_STATE_DIR  # the load root has no opskit.yaml

    testroot.use_store(load.root, "folder")
    original = Path(str(fixture_backup(load)["path"]))
    copy = altered_copy(
        original, "load-dev-20991231T235959Z", lambda dump: _cut_short(dump, load.kind)
    )
    testroot.use_store(load.root, store)
    state = into_store(copy, DEFAULT_STATE_DIR) if store == "restic" else ""
    try:
        assert load.run("verify", "load", "dev", "--name", copy.name).returncode == 0

        before = load.checksums("dev")
        done = load.run("restore", "load", "dev", "--name", copy.name, "--yes", timeout=600)
        assert done.returncode == 1, done.stderr
        errors = [line for line in done.stderr.splitlines() if line.startswith("[error]")]
        assert len(errors) == 1, done.stderr
        assert "big" in errors[0] and "the backup recorded" in errors[0], errors[0]
        assert "put back from load-dev-" in errors[0]
        assert load.checksums("dev") == before
        assert load.run("health", "load", "dev").returncode == 0
    finally:
        if state:
            out_of_store(state, DEFAULT_STATE_DIR)
        shutil.rmtree(copy, ignore_errors=True)
