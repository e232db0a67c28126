"""A WordPress-like project for the sync, promote and rebuild tests, built in a temporary root.

``wp`` has dev, int and prod. Each env's code is a git working tree (``{env}/code``,
cloned from a bare ``origin.git``, one branch per env) holding the compose file and a
web image built from ``web/``. Data lives outside the tree: a MariaDB database seeded
with the env's site URL (in plain text, PHP-serialized arrays two deep, an object, a
serialized value inside a serialized string and one between vertical tabs, JSON-escaped),
``{env}/uploads`` and the volume ``{NS}-wp-{env}_media``. Docker-global names carry the
checkout's namespace and the ports are free ones (see tests/testroot.py), so the project
runs beside anything.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from testroot import free_ports, ns

REPO = Path(__file__).resolve().parent.parent
STACKS = REPO / "examples" / "root" / "_stacks"
ENVS = ("dev", "int", "prod")
PORTS = dict(zip(ENVS, free_ports(len(ENVS)), strict=True))
URLS = {
    "prod": "https://wp.example.test",
    "int": "https://int.wp.example.test",
    "dev": "https://dev.wp.example.test",
}
BRANCHES = {"dev": "develop", "int": "staging", "prod": "main"}
PASSWORD = "wp-secret-pw"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "opskit test",
    "GIT_AUTHOR_EMAIL": "test@example.test",
    "GIT_COMMITTER_NAME": "opskit test",
    "GIT_COMMITTER_EMAIL": "test@example.test",
}

DESCRIPTOR = """\
name: wp
plugin: mdf
description: WordPress-like test project
environments: [dev, int, prod]
compose: {{dir: "{{env}}/code", files: [docker-compose.yml], env_file: ".env.{{env}}"}}
services: {{web: {{}}, db: {{}}}}
health:
  - {{service: web, http: "http://127.0.0.1:{dev}/health.txt", expect: 200, timeout: 3, environments: [dev]}}
  - {{service: web, http: "http://127.0.0.1:{int}/health.txt", expect: 200, timeout: 3, environments: [int]}}
  - {{service: web, http: "http://127.0.0.1:{prod}/health.txt", expect: 200, timeout: 3, environments: [prod]}}
backup:
  dir: {backups}
  databases:
    - {{service: db, type: mariadb, name: wordpress, user: root, password_env: MYSQL_ROOT_PASSWORD}}
  paths: ["{{env}}/uploads"]
  volumes: ["{name}-{{env}}_media"]
sync:
  pairs: [[prod, dev], [prod, int]]
  replace: {{prod: "{prod_url}", int: "{int_url}", dev: "{dev_url}"}}
promote:
  type: git
  dir: "{{env}}/code"
  branches: {{dev: develop, int: staging, prod: main}}
  health_timeout: 30
"""

COMPOSE = """\
services:
  web:
    init: true
    build: ./web
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    ports: ["127.0.0.1:${{WEB_PORT}}:8080"]
    labels: {{ops.project: wp, ops.environment: "${{OPS_ENV}}", ops.service: web}}
    volumes: ["../uploads:/srv/uploads", "media:/srv/media"]
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/health.txt"]
      interval: 1s
      timeout: 10s  # a real server's checks get seconds under load, not 2 s
      retries: 3
  db:
    init: true
    image: opskit-test/db:1
    command: ["/stacks/mariadb.sh"]
    labels: {{ops.project: wp, ops.environment: "${{OPS_ENV}}", ops.service: db}}
    environment: {{MYSQL_ROOT_PASSWORD: "${{MYSQL_ROOT_PASSWORD}}", MYSQL_DATABASE: wordpress}}
    volumes: ["db_data:/var/lib/mysql", "{stacks}:/stacks:ro", "../seed:/seed:ro"]
    healthcheck:
      test: ["CMD", "mariadb-admin", "ping", "--silent"]
      interval: 1s
      timeout: 10s
      retries: 60
volumes:
  db_data: {{}}
  media: {{}}
"""

DOCKERFILE = """\
FROM opskit-test/web:1
COPY index.html health.txt /srv/
"""


def php_serialize(value: object) -> str:
    """PHP's serialize() for str, int, list, dict and ("object", class, dict)."""
    if isinstance(value, str):
        return f's:{len(value.encode())}:"{value}";'
    if isinstance(value, bool):
        return f"b:{int(value)};"
    if isinstance(value, int):
        return f"i:{value};"
    if isinstance(value, tuple) and value[0] == "object":
        _, cls, fields = value
        body = "".join(php_serialize(k) + php_serialize(v) for k, v in fields.items())
        return f'O:{len(cls)}:"{cls}":{len(fields)}:{{{body}}}'
    items = list(enumerate(value)) if isinstance(value, list) else list(value.items())  # type: ignore[attr-defined]
    body = "".join(php_serialize(k) + php_serialize(v) for k, v in items)
    return f"a:{len(items)}:{{{body}}}"


def sql_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def options(url: str) -> list[tuple[str, str]]:
    """wp_options rows holding *url* in every form a WordPress database has it."""
    widget = [
        {"title": f"Visit {url}", "links": [f"{url}/a", {"deep": f"{url}/b?x=1"}]},
        {"title": "no link here", "count": 3},
    ]
    inner = php_serialize({"url": f"{url}/inner"})
    escaped = url.replace("/", "\\/")
    return [
        ("siteurl", url),
        ("home", url),
        ("blogname", "Grüße aus WordPress"),
        ("widget_text", php_serialize(widget)),
        ("theme_mods", php_serialize(("object", "stdClass", {"logo": f"{url}/logo.png", "n": 1}))),
        ("nested_serialized", php_serialize({"payload": inner, "note": "Grüße"})),
        ("json_config", f'{{"home":"{escaped}","api":"{escaped}\\/wp-json\\/"}}'),
        ("quotes", f'it\'s "{url}"\nnew line\ttab \\ backslash'),
        # PHP's trim() strips a vertical tab, so WordPress still reads this as serialized
        ("vertical_tab", "\x0b" + php_serialize({"url": f"{url}/vt"}) + "\x0b"),
    ]


def seed_sql(env: str) -> str:
    url = URLS[env]
    rows = ",\n".join(
        f"({sql_literal(name)}, {sql_literal(value)})" for name, value in options(url)
    )
    posts = ",\n".join(
        "({}, {}, {})".format(
            sql_literal(f"Post {i}"),
            sql_literal(f'<a href="{url}/p{i}">read</a> at {url}'),
            sql_literal(f"{url}/?p={i}"),
        )
        for i in range(1, 6)
    )
    return (
        "SET NAMES utf8mb4;\n"
        "CREATE TABLE wp_options (option_id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, "
        "option_name VARCHAR(191) NOT NULL UNIQUE, option_value LONGTEXT NOT NULL, "
        "autoload VARCHAR(20) NOT NULL DEFAULT 'yes') DEFAULT CHARSET=utf8mb4;\n"
        "CREATE TABLE wp_posts (ID BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, "
        "post_title TEXT NOT NULL, post_content LONGTEXT NOT NULL, "
        "guid VARCHAR(255) NOT NULL DEFAULT '') DEFAULT CHARSET=utf8mb4;\n"
        f"INSERT INTO wp_options (option_name, option_value) VALUES\n{rows};\n"
        f"INSERT INTO wp_posts (post_title, post_content, guid) VALUES\n{posts};\n"
    )


def git(*args: str, cwd: Path) -> str:
    import os

    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def build(
    root: Path,
    *,
    ports: dict[str, int] | None = None,
    name: str = ns("wp"),
    name_in_env_file: bool = True,
) -> Path:
    """Write the project under *root*; return the project folder.

    *ports* default to :data:`PORTS`; each env runs as the compose project
    ``{name}-{env}``, named in its env file, or without *name_in_env_file* not named
    anywhere, as on a server where the stacks were started by hand."""
    ports = ports or PORTS
    project = root / "wp"
    (project / "backups").mkdir(parents=True)
    (project / "project.yaml").write_text(
        DESCRIPTOR.format(
            backups=project / "backups",
            **ports,
            name=name,
            prod_url=URLS["prod"],
            int_url=URLS["int"],
            dev_url=URLS["dev"],
        )
    )
    origin = project / "origin.git"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(origin), cwd=project)
    seedtree = project / "seedtree"
    git("clone", "--quiet", str(origin), str(seedtree), cwd=project)
    (seedtree / "web").mkdir()
    (seedtree / "docker-compose.yml").write_text(COMPOSE.format(stacks=STACKS))
    (seedtree / "web" / "Dockerfile").write_text(DOCKERFILE)
    (seedtree / "web" / "index.html").write_text("<h1>version 1</h1>\n")
    (seedtree / "web" / "health.txt").write_text("ok\n")
    (seedtree / ".gitignore").write_text(".env.*\n")
    git("add", "-A", cwd=seedtree)
    git("commit", "--quiet", "-m", "first version", cwd=seedtree)
    for branch in BRANCHES.values():
        git("push", "--quiet", "origin", f"HEAD:refs/heads/{branch}", cwd=seedtree)
    subprocess.run(["rm", "-rf", str(seedtree)], check=True)
    for env in ENVS:
        code = project / env / "code"
        git("clone", "--quiet", "--branch", BRANCHES[env], str(origin), str(code), cwd=project)
        # compose's own name, from the env file: the folders are all called "code"
        named = f"COMPOSE_PROJECT_NAME={name}-{env}\n" if name_in_env_file else ""
        (code / f".env.{env}").write_text(
            f"{named}OPS_ENV={env}\nWEB_PORT={ports[env]}\nMYSQL_ROOT_PASSWORD={PASSWORD}\n"
        )
        (project / env / "seed").mkdir()
        (project / env / "seed" / "wordpress.sql").write_text(seed_sql(env))
        uploads = project / env / "uploads" / "2026"
        uploads.mkdir(parents=True)
        (uploads / f"{env}-photo.jpg").write_bytes(env.encode() * 1000)
        (uploads / "shared.txt").write_text(f"uploaded in {env}\n")
    return project
