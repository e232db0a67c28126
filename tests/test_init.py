"""``opskit init`` on a root with no descriptors, against the real engine: stacks started
by hand with ``docker compose -p`` (a WordPress-like web + MariaDB in env folders, an
app + PostgreSQL whose env is in its compose name, a web + cache with one env, and a web +
MariaDB per compose profile in one folder, the "ringsaday" layout). ``init --write`` gives
descriptors with which ``doctor`` is clean, every env backs up, and a restore gives the same
data back."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import archives_of, containers_under, opskit, remove_namespaced, wait_until
from test_backup import tree_state, volume_path
from testroot import compose, free_ports, ns, use_store

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parent.parent
STACKS = REPO / "examples" / "root" / "_stacks"
SEED = REPO / "examples" / "root" / "mdf" / "dev" / "seed" / "wordpress.sql"
PASSWORD = "init-secret-pw"
CHECK = "interval: 2s, timeout: 10s"

BLOG = f"""\
services:
  web:
    init: true
    image: opskit-test/web:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    ports: ["127.0.0.1:${{WEB_PORT}}:8080"]
    environment: {{WORDPRESS_DB_HOST: db, WORDPRESS_DB_PASSWORD: "${{MYSQL_ROOT_PASSWORD}}"}}
    volumes: ["./wp-content:/srv/wp-content", "{STACKS}/index.html:/srv/index.html:ro", "media:/srv/media"]
    healthcheck: {{test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"], {CHECK}, retries: 3}}
  db:
    init: true
    image: opskit-test/db:1
    command: ["/stacks/mariadb.sh"]
    environment: {{MYSQL_ROOT_PASSWORD: "${{MYSQL_ROOT_PASSWORD}}", MYSQL_DATABASE: wordpress}}
    volumes: ["db_data:/var/lib/mysql", "{STACKS}:/stacks:ro", "{SEED.parent}:/seed:ro"]
    healthcheck: {{test: ["CMD", "mariadb-admin", "ping", "--silent"], {CHECK}, retries: 30}}
volumes:
  db_data: {{}}
  media: {{}}
"""

LETTERS = f"""\
services:
  app:
    init: true
    image: opskit-test/web:1
    command: ["httpd", "-f", "-p", "8000", "-h", "/srv"]
    ports: ["127.0.0.1:${{APP_PORT}}:8000"]
    environment: {{DATABASE_URL_FILE: /run/secrets/db}}
    volumes: ["./uploads:/srv/uploads", "{STACKS}/index.html:/srv/index.html:ro"]
    healthcheck: {{test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/"], {CHECK}, retries: 3}}
  db:
    init: true
    image: opskit-test/db:1
    command: ["/stacks/postgres.sh"]
    environment: {{POSTGRES_PASSWORD: "${{POSTGRES_PASSWORD}}", POSTGRES_DB: letters}}
    volumes: ["pg_data:/var/lib/postgresql/data", "{STACKS}:/stacks:ro"]
    healthcheck: {{test: ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres"], {CHECK}, retries: 30}}
volumes:
  pg_data: {{}}
"""

SHOP = f"""\
services:
  web:
    init: true
    image: opskit-test/web:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    ports: ["127.0.0.1:${{WEB_PORT}}:8080"]
    volumes: ["{STACKS}/index.html:/srv/index.html:ro"]
    healthcheck: {{test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"], {CHECK}, retries: 3}}
  cache:
    init: true
    image: opskit-test/web:1
    command: ["sh", "-c", "exec sleep 2147483647"]
    volumes: ["cache_data:/data"]
volumes:
  cache_data: {{}}
"""


def rings_env(env: str) -> str:
    """The services of one env of the profile layout: ``web-ENV`` and ``db-ENV``."""
    return f"""\
  web-{env}:
    profiles: [{env}]
    init: true
    image: opskit-test/web:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    volumes: ["./{env}/uploads:/srv/uploads", "{STACKS}/index.html:/srv/index.html:ro", "{env}_media:/srv/media"]
    healthcheck: {{test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"], {CHECK}, retries: 3}}
  db-{env}:
    profiles: [{env}]
    init: true
    image: opskit-test/db:1
    command: ["/stacks/mariadb.sh"]
    environment: {{MYSQL_ROOT_PASSWORD: "${{MYSQL_ROOT_PASSWORD}}", MYSQL_DATABASE: rings}}
    volumes: ["{env}_db:/var/lib/mysql", "{STACKS}:/stacks:ro", "{SEED.parent}:/seed:ro"]
    healthcheck: {{test: ["CMD", "mariadb-admin", "ping", "--silent"], {CHECK}, retries: 30}}
"""


RINGS = (
    "services:\n"
    + rings_env("dev")
    + rings_env("prod")
    + "volumes: {dev_db: {}, dev_media: {}, prod_db: {}, prod_media: {}}\n"
)


def up(folder: Path, name: str, file: str, *options: str) -> None:
    """``docker compose -p NAME -f FILE [OPTIONS] up -d`` in *folder*, as a user does by hand."""
    done = subprocess.run(
        [*compose(), "-p", name, "-f", file, *options, "up", "-d"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("init")
    root = base / "root"
    ports = iter(free_ports(4))
    for env in ("dev", "prod"):
        folder = root / "blog" / env
        (folder / "wp-content" / "themes").mkdir(parents=True)
        (folder / "wp-content" / "themes" / "style.css").write_text(f"/* blog {env} */\n")
        (folder / "docker-compose.yml").write_text(BLOG)
        (folder / ".env").write_text(f"MYSQL_ROOT_PASSWORD={PASSWORD}\nWEB_PORT={next(ports)}\n")
    letters = root / "letters"
    (letters / "uploads").mkdir(parents=True)
    (letters / "uploads" / "letter.txt").write_text("Dear reader\n")
    (letters / "docker-compose.prod.yml").write_text(LETTERS)
    (letters / ".env").write_text(f"POSTGRES_PASSWORD={PASSWORD}\nAPP_PORT={next(ports)}\n")
    shop = root / "shop"
    shop.mkdir()
    (shop / "compose.yaml").write_text(SHOP)
    (shop / ".env").write_text(f"WEB_PORT={next(ports)}\n")
    rings = root / "rings"
    for env in ("dev", "prod"):
        (rings / env / "uploads").mkdir(parents=True)
        (rings / env / "uploads" / "ring.txt").write_text(f"a ring of {env}\n")
    (rings / "compose.yaml").write_text(RINGS)
    (rings / ".env").write_text(f"MYSQL_ROOT_PASSWORD={PASSWORD}\n")
    (root / "opskit.yaml").write_text(f"state_dir: {base / 'state'}\n")
    try:
        up(root / "blog" / "dev", ns("blog-dev"), "docker-compose.yml")
        up(root / "blog" / "prod", ns("blog-prod"), "docker-compose.yml")
        up(letters, ns("letters-prod"), "docker-compose.prod.yml")
        up(shop, ns("shop"), "compose.yaml")
        up(rings, ns("rings"), "compose.yaml", "--profile", "dev", "--profile", "prod")
        wait_until(lambda: all_healthy(root), timeout=240, what="the hand-started stacks")
        yield root
    finally:
        remove_namespaced(containers_under(root))


def all_healthy(root: Path) -> bool:
    ids = containers_under(root)
    states = subprocess.run(
        [
            "docker",
            "inspect",
            "-f",
            "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
            *ids,
        ],
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    return len(ids) == 12 and all(s.strip() in ("running healthy", "running") for s in states if s)


# Where each restored env keeps its data: (project, env, database service, database name,
# bind-mounted folder under the root, named volume).
BLOG_PROD = ("blog", "prod", "db", "wordpress", "blog/prod/wp-content", "blog-prod_media")
RINGS_DEV = ("rings", "dev", "db-dev", "rings", "rings/dev/uploads", "rings_dev_media")


def rows(root: Path, where: tuple[str, ...], statement: str) -> str:
    project, env, service, database = where[:4]
    script = 'MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mariadb -uroot -N -B "$2" -e "$1"'
    run = opskit(
        "exec", project, env, service, "--root", str(root), "--",
        "sh", "-c", script, "sh", statement, database,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return run.stdout


def fingerprints(root: Path, where: tuple[str, ...]) -> dict[str, object]:
    """An env's data: each table's rows hashed, and the files of its bind mount and volume."""
    tables = rows(root, where, "SHOW TABLES").split()
    return {
        "tables": {
            t: hashlib.sha256(
                rows(root, where, f"SELECT * FROM {t} ORDER BY 1").encode()
            ).hexdigest()
            for t in tables
        },
        "files": tree_state(root / where[4]),
        "volume": tree_state(volume_path(ns(where[5]))),
    }


def damage(root: Path, where: tuple[str, ...]) -> None:
    """Change an env's rows, a file of its bind mount and its volume."""
    rows(
        root,
        where,
        "DELETE FROM wp_posts; UPDATE wp_options SET option_value = 'x' WHERE option_name = 'blogname'",
    )
    next(p for p in (root / where[4]).rglob("*") if p.is_file()).write_text("changed\n")
    (volume_path(ns(where[5])) / "added.jpg").write_bytes(b"JFIF")


def container_ids(name: str) -> dict[str, str]:
    """Service -> container ID of the running containers of the compose project *name*."""
    listed = subprocess.run(
        ["docker", "ps", "--filter", f"label=com.docker.compose.project={name}",
         "--format", '{{.Label "com.docker.compose.service"}} {{.ID}}'],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    return dict(zip(listed[::2], listed[1::2], strict=True))


def test_init_write_gives_descriptors_doctor_accepts_and_backups_that_restore(
    stacks: Path, store: str
) -> None:
    try:
        init_back_up_and_restore(stacks, store)
    finally:  # the stacks stay for the other store's run, undescribed again
        for descriptor in stacks.glob("*/project.yaml"):
            descriptor.unlink()


def init_back_up_and_restore(stacks: Path, store: str) -> None:
    root = str(stacks)
    backups = str(stacks.parent / f"backups-{store}")  # each store's run on a root of its own
    where = ("--root", root, "--under", root, "--backup-dir", backups)
    shown = opskit("init", *where)
    assert shown.returncode == 0, shown.stderr
    assert "name: blog" in shown.stdout and "plugin: mdf" in shown.stdout
    assert "password_env: MYSQL_ROOT_PASSWORD" in shown.stdout
    assert "password_env: POSTGRES_PASSWORD" in shown.stdout
    assert PASSWORD not in shown.stdout + shown.stderr
    assert not list(stacks.glob("*/project.yaml"))  # nothing written without --write

    written = opskit("init", *where, "--write")
    assert written.returncode == 0, written.stdout + written.stderr
    assert "problem" not in written.stdout, written.stdout  # doctor: nothing unbacked, no collision
    assert sorted(p.parent.name for p in stacks.glob("*/project.yaml")) == [
        "blog",
        "letters",
        "rings",
        "shop",
    ]
    blog_text = (stacks / "blog" / "project.yaml").read_text()
    assert PASSWORD not in blog_text
    blog, letters, shop, rings = (
        yaml.safe_load((stacks / name / "project.yaml").read_text())
        for name in ("blog", "letters", "shop", "rings")
    )
    assert blog["plugin"] == "mdf" and blog["environments"] == ["dev", "prod"]
    assert blog["compose"]["project_name"] == ns("blog-{env}")
    assert blog["backup"]["volumes"] == [ns("blog-{env}_media")]
    assert letters["environments"] == ["prod"]
    assert letters["compose"]["files"] == ["docker-compose.{env}.yml"]
    assert shop["backup"]["volumes"] == [ns("shop_cache_data")]
    # the profile layout: one descriptor, an env per profile, the services templated
    assert rings["environments"] == ["dev", "prod"]
    assert rings["compose"] == {
        "files": ["compose.yaml"],
        "profile": "{env}",
        "project_name": ns("rings"),
    }
    assert rings["services"] == {
        "db-dev": {"environments": ["dev"]},
        "db-prod": {"environments": ["prod"]},
        "web-dev": {"environments": ["dev"]},
        "web-prod": {"environments": ["prod"]},
    }
    assert [d["service"] for d in rings["backup"]["databases"]] == ["db-{env}"]
    assert rings["backup"]["volumes"] == [ns("rings_{env}_media")]
    assert rings["backup"]["paths"] == ["{env}/uploads"]
    doctor = opskit("doctor", "--root", root, "--json")
    problems = [f for f in doctor.json()["findings"] if f["severity"] == "problem"]  # type: ignore[index]
    assert doctor.returncode == 0 and not problems, problems
    again = opskit("init", *where, "--write")  # every stack is described now
    assert again.returncode == 0 and not again.stdout.strip(), again.stdout + again.stderr

    use_store(stacks, store)
    backed = opskit("backup", "--all", "--root", root, timeout=600)
    assert backed.returncode == 0, backed.stderr
    every = (("blog", "dev"), ("blog", "prod"), ("letters", "prod"), ("shop", "prod"))
    for project, env in (*every, ("rings", "dev"), ("rings", "prod")):
        assert len(archives_of(root, project, env)) == 1, (project, env)

    for where in (BLOG_PROD, RINGS_DEV):
        before = fingerprints(stacks, where)
        damage(stacks, where)
        assert fingerprints(stacks, where) != before
        prod = container_ids(ns("rings"))
        restored = opskit("restore", *where[:2], "--latest", "--yes", "--root", root, timeout=600)
        assert restored.returncode == 0, restored.stderr
        assert fingerprints(stacks, where) == before, where
        after = container_ids(ns("rings"))
        for service in ("web-prod", "db-prod"):  # restoring rings dev left prod running
            assert after[service] == prod[service], service
