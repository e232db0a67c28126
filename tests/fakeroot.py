"""A root of projects on a :class:`opskit.testing.FakeHost`, for the engines' unit tests.

The descriptors look like a real server's: a web app with a MariaDB database, an uploads
folder and a media volume in each env, a worker stopped during backups, compose project
names pinned per env.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import attrs

import opskit
from opskit.archive import parse_stamp, stamp
from opskit.testing import EventRecorder, FakeContainer, FakeHost, plugin_manager

SHOP = """\
name: shop
description: a web shop with a database, uploads and a media volume
environments: [dev, prod]
compose:
  dir: "{{env}}"
  project_name: "shop-{{env}}"
services:
  web: {{}}
  db: {{}}
  worker: {{}}
health:
  timeout: {timeout}
backup:
  dir: {backups}
  store: folder  # the fake host runs no restic
  databases:
    - {{service: db, type: mariadb, name: shop, password_env: MARIADB_ROOT_PASSWORD}}
  paths: ["{{env}}/uploads"]
  volumes: ["shop-{{env}}_media"]
  stop: [worker]
sync:
  pairs: [[prod, dev]]
  replace:
    prod: "https://shop.example.test"
    dev: "https://dev.shop.example.test"
"""

COMPOSE = "services:\n  web: {image: shop}\n  db: {image: mariadb}\n  worker: {image: shop}\n"

# A dump as mariadb-dump writes it: two tables, three rows.
DUMP = b"""-- MariaDB dump 10.19
CREATE TABLE `orders` (`id` int, `total` int);
INSERT INTO `orders` VALUES (1,10),(2,20);
CREATE TABLE `users` (`id` int, `name` varchar(20));
INSERT INTO `users` VALUES (1,'ann');
"""
DUMP_ROWS = {"orders": 2, "users": 1}

# What the load script prints inside the container (opskit.databases.restore_script).
LOADED = b"opskit-load-pid 41\nopskit-load-pid 40\nopskit-load-status 0\n"


def client(container: str | re.Pattern[str] = "shop-prod-db-1") -> dict[str, list]:
    """Patterns of the database client commands run in *container*: the dump, the load
    and the two queries that count rows after a load (opskit.databases)."""
    query = ["docker", "exec", container, "sh", "-c", re.compile("--execute"), "root", "shop"]
    return {
        "dump": ["docker", "exec", container, "sh", "-c", re.compile("mariadb-dump")],
        "load": ["docker", "exec", "-i", container],
        "listing": [*query, re.compile("information_schema")],
        "counting": [*query, re.compile("COUNT")],
    }


DUMPING = client()["dump"]
LOADING = client()["load"]
DRILL_SERVER = re.compile(r"^opskit-drill-")


def compose(*words: str) -> list[str | re.Pattern[str]]:
    """A compose command of shop prod: ``compose("stop", "worker")``."""
    return ["docker", "compose", "--project-name", "shop-prod", *words]


@attrs.define
class World:
    """One root on a fake host: shop's dev and prod, with running containers."""

    fake: FakeHost
    root: str
    backups: str
    recorder: EventRecorder
    containers: dict[str, FakeContainer]

    def ops(self) -> opskit.Ops:
        return opskit.Ops(root=self.root, host=self.fake, plugins=plugin_manager(self.recorder))

    def env_dir(self, env: str = "prod") -> str:
        return f"{self.backups}/shop/{env}"

    def archive_names(self, env: str = "prod") -> list[str]:
        """What the env's backup folder holds, the lock file aside."""
        return [n for n in self.fake.listdir(self.env_dir(env)) if not n.startswith(".lock")]

    def database(
        self,
        rows: dict[str, int] | None = None,
        container: str | re.Pattern[str] = "shop-prod-db-1",
    ) -> None:
        """The database in *container* answers like MariaDB: a dump, a load, and *rows*
        (by default what the dump holds) in its tables after the load."""
        counts = DUMP_ROWS if rows is None else rows
        commands = client(container)
        self.fake.on(commands["dump"], stdout=DUMP)
        self.fake.on(commands["load"], stdout=LOADED)
        self.fake.on(commands["listing"], stdout="".join(f"{t}\n" for t in sorted(counts)))
        counted = "".join(f"{i}\t{n}\n" for i, n in enumerate(counts.values()))
        self.fake.on(commands["counting"], stdout=counted)

    def backdate(self, name: str, hours: int = 1) -> str:
        """Rename an archive to a stamp *hours* older (a backup taken earlier), so that the
        next one needs no wait for a name of its own (names carry the second)."""
        prefix, _, moment = name.rpartition("-")
        older = f"{prefix}-{stamp(parse_stamp(moment) - timedelta(hours=hours))}"
        directory = self.env_dir(name.split("-")[1])
        Path(directory, name).rename(Path(directory, older))
        return older


def make_world(tmp_path: Path, timeout: int = 5) -> World:
    """shop dev and prod on a fake host in *tmp_path*: descriptor, compose files, uploads,
    the media volumes and one running, healthy container per service."""
    fake = FakeHost(tmp_path)
    root = fake.path("root")
    backups = fake.path("backups")
    fake.write(f"{root}/shop/project.yaml", SHOP.format(backups=backups, timeout=timeout))
    containers = {}
    for env in ("dev", "prod"):
        fake.write(f"{root}/shop/{env}/compose.yaml", COMPOSE)
        fake.write(f"{root}/shop/{env}/uploads/logo.png", b"\x89PNG " + env.encode())
        fake.write(f"{fake.volume(f'shop-{env}_media')}/cover.jpg", b"JFIF " + env.encode())
        for service in ("web", "db", "worker"):
            environment = {"MARIADB_ROOT_PASSWORD": "s3cret"} if service == "db" else {}
            container = fake.container(
                project="shop", env=env, service=service, environment=environment
            )
            containers[f"{env}-{service}"] = container
    return World(fake, root, backups, EventRecorder(), containers)
