"""``opskit rebuild``: disaster recovery of an env whose containers and volumes are gone."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import archive_name, opskit, wait_healthy
from testroot import NS, compose_container, ns, use_store

pytestmark = pytest.mark.docker


def checksum(env: str) -> str:
    done = subprocess.run(
        ["docker", "exec", compose_container(f"wp-{env}", "db"), "mariadb", "--default-character-set=utf8mb4", "--batch", "wordpress", "-e",
         "CHECKSUM TABLE wp_options, wp_posts EXTENDED"],
        capture_output=True, check=True, text=True,
    )  # fmt: skip
    return done.stdout


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_rebuild_after_containers_and_volumes_are_gone(wp_root: Path, store: str) -> None:
    root = str(use_store(wp_root, store))
    wait_healthy(wp_root, "wp", "int")  # the tests before may have left it restarting
    # a row of each store's run: the first run's rebuild brought its own back
    inserted = subprocess.run(
        ["docker", "exec", compose_container("wp-int", "db"), "mariadb", "wordpress", "-e",
         f"INSERT INTO wp_options (option_name, option_value) VALUES ('before_disaster_{store}', 'kept')"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert inserted.returncode == 0, inserted.stderr
    media = Path(f"/var/lib/docker/volumes/{ns('wp-int')}_media/_data/poster.bin")
    media.write_bytes(b"\x00\x01poster" * 5000)
    uploads = wp_root / "wp" / "int" / "uploads"
    expected = (checksum("int"), digest(media), sorted(p.name for p in uploads.rglob("*")))
    run = opskit("--root", root, "backup", "wp", "int")
    assert run.returncode == 0, run.stderr
    archive = archive_name(run.stdout)

    plan = opskit("--root", root, "rebuild", "wp", "int", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert f"restore {archive}" in plan.stdout and " build" in plan.stdout

    run = opskit("--root", root, "destroy", "wp", "int", "--volumes", "--yes")
    assert run.returncode == 0, run.stderr
    shutil.rmtree(uploads)
    assert not media.exists()

    run = opskit("--root", root, "rebuild", "wp", "int", "--yes", timeout=400)
    assert run.returncode == 0, run.stderr
    assert f"rebuilt wp int from {archive}" in run.stdout
    for phase in ("phase 1/4", "phase 2/4", "phase 3/4", "phase 4/4: restoring"):
        assert phase in run.stderr
    assert (checksum("int"), digest(media), sorted(p.name for p in uploads.rglob("*"))) == expected
    assert opskit("--root", root, "health", "wp", "int").returncode == 0
    entry = opskit("--root", root, "history", "wp", "--json").json()[-1]  # type: ignore[index]
    assert entry["command"] == "rebuild" and entry["archive"] == archive
    assert entry["result"] == "ok"


EDGE = """\
name: edge
environments: [dev]
compose: {{dir: "{{env}}", project_name: "{ns}-edge-{{env}}"}}
backup: {{store: {store}, dir: {backups}, paths: ["{{env}}/data"]}}
health: {{timeout: 60}}
"""

# Behind the server's reverse proxy: its network and a volume it shares are made by
# another stack, so the compose file names them external.
EDGE_COMPOSE = """\
services:
  web:
    init: true
    image: opskit-test/web:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    volumes: ["./data:/srv", "shared:/shared"]
    networks: [proxy]
    healthcheck: {{test: ["CMD-SHELL", "test -d /srv"], interval: 30s, timeout: 10s, retries: 3}}
networks:
  proxy: {{external: true, name: {network}}}
volumes:
  shared: {{external: true, name: {volume}}}
"""


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True)


def test_rebuild_creates_the_networks_and_volumes_its_compose_files_name_external(
    tmp_path: Path, store: str
) -> None:
    """On a fresh server the reverse proxy's network is not there yet: ``up`` would fail
    ("declared as external, but could not be found"); rebuild creates it."""
    import json

    network, volume = ns(f"edge-proxy-{store}"), ns(f"edge-shared-{store}")
    for kind, name in (("network", network), ("volume", volume)):
        _docker(kind, "rm", name)
        assert _docker(kind, "create", name).returncode == 0  # made by the proxy's stack
    data = tmp_path / "edge" / "dev" / "data"
    data.mkdir(parents=True)
    (data / "index.html").write_text("the site\n")
    (tmp_path / "edge" / "project.yaml").write_text(
        EDGE.format(ns=NS, store=store, backups=tmp_path / "backups")
    )
    (tmp_path / "edge" / "dev" / "compose.yaml").write_text(
        EDGE_COMPOSE.format(network=network, volume=volume)
    )
    (tmp_path / "opskit.yaml").write_text(f"state_dir: {tmp_path / 'state'}\n")
    root = str(tmp_path)
    try:
        assert opskit("start", "edge", "dev", "--root", root).returncode == 0
        run = opskit("backup", "edge", "dev", "--root", root)
        assert run.returncode == 0, run.stderr
        archive = archive_name(run.stdout)
        run = opskit("destroy", "edge", "dev", "--volumes", "--yes", "--root", root)
        assert run.returncode == 0, run.stderr
        shutil.rmtree(data)
        for kind, name in (("network", network), ("volume", volume)):  # the server is new
            assert _docker(kind, "rm", name).returncode == 0

        plan = opskit("rebuild", "edge", "dev", "--dry-run", "--root", root)
        assert plan.returncode == 0, plan.stderr
        assert f"docker network create {network}" in plan.stdout
        assert f"docker volume create {volume}" in plan.stdout
        assert _docker("network", "inspect", network).returncode == 1  # a dry run creates none

        run = opskit("rebuild", "edge", "dev", "--yes", "--root", root, timeout=300)
        assert run.returncode == 0, run.stderr
        assert f"rebuilt edge dev from {archive}" in run.stdout
        assert f"creating the network {network}" in run.stderr
        made = json.loads(_docker("network", "inspect", network).stdout)[0]
        assert made["Labels"] == {"opskit.created": "external"}
        (attached,) = [c["Name"] for c in made["Containers"].values()]  # compose v1: _web_1
        assert attached.startswith(ns("edge-dev")), attached
        assert json.loads(_docker("volume", "inspect", volume).stdout)[0]["Labels"] == {
            "opskit.created": "external"
        }
        assert (data / "index.html").read_text() == "the site\n"
    finally:
        opskit("destroy", "edge", "dev", "--volumes", "--yes", "--root", root)
        for kind, name in (("network", network), ("volume", volume)):
            _docker(kind, "rm", name)
