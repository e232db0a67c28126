"""Several envs in one compose project, chosen by profile (#21, the "ringsaday" layout).

One folder, one compose project name, ``compose.profile: "{env}"``: services ``web-dev`` and
``db-dev`` have the profile dev, ``web-prod`` and ``db-prod`` the profile prod. The envs are
one identity with a service set each, no collision; every lifecycle command acts on the
env's own services and never runs ``down``. The unit tests run on a FakeHost; the docker
tests bring the layout up on the real engine.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import (
    assert_one_error_line,
    containers_under,
    docker_ready,
    opskit,
    remove_namespaced,
    wait_healthy,
)
from opskit.api import Ops
from opskit.compose import collisions, identities
from opskit.containers import Container, resolve
from opskit.descriptor import DescriptorSource, parse_descriptor
from opskit.errors import DescriptorError, OpskitError
from opskit.testing import Call, FakeHost, Reply, plugin_manager
from testroot import compose_container, ns

RINGS = """\
name: rings
environments: [dev, prod]
compose: {profile: "{env}"}
"""

# The services of each env's profile, and one of no profile (``proxy``).
PROFILES = {"dev": ["web-dev", "db-dev"], "prod": ["web-prod", "db-prod"]}

# What compose v2's ``--profile X config`` prints, per profile: the profile's services and
# those of no profile; volumes that dev's services alone mount (one in the short syntax),
# one that web-prod mounts too, one of the proxy, one external, and a bind mount.
CONFIG = {
    "dev": """\
name: rings
services:
  web-dev:
    profiles: [dev]
    volumes:
      - {type: volume, source: uploads, target: /u}
      - {type: volume, source: dev-data, target: /d}
      - {type: volume, source: outside, target: /o}
  db-dev:
    profiles: [dev]
    volumes: [{type: bind, source: /srv, target: /s}, "dev-cache:/c:rw"]
  proxy: {volumes: [{type: volume, source: certs, target: /c}]}
volumes:
  uploads: {name: rings_uploads}
  dev-data: {name: rings_dev-data}
  dev-cache: {}
  certs: {name: rings_certs}
  outside: {name: outside, external: true}
""",
    "prod": """\
name: rings
services:
  web-prod: {profiles: [prod], volumes: [{type: volume, source: uploads, target: /u}]}
  db-prod: {profiles: [prod]}
  proxy: {volumes: [{type: volume, source: certs, target: /c}]}
volumes:
  uploads: {name: rings_uploads}
  certs: {name: rings_certs}
""",
}
# Compose v1 prints every service, whatever the profile, each with its ``profiles``.
V1_CONFIG = """\
services:
  web-dev: {profiles: [dev]}
  db-dev: {profiles: [dev]}
  web-prod: {profiles: [prod]}
  db-prod: {profiles: [prod]}
  proxy: {image: proxy}
"""


def profile_config(call: Call) -> Reply | None:
    """compose v2's answer to ``--profile X config``."""
    return Reply(stdout=CONFIG[call.argv[call.argv.index("--profile") + 1]])


def rings_host(tmp_path: Path, descriptor: str = RINGS) -> tuple[FakeHost, str]:
    """The rings project on a fake host, its four containers running (no ``ops.*`` labels:
    compose's labels alone tell the envs apart)."""
    fake = FakeHost(tmp_path)
    root = fake.path("root")
    fake.write(f"{root}/rings/project.yaml", descriptor)
    fake.write(f"{root}/rings/compose.yaml", "services: {}\n")
    fake.on(["docker", "compose", "config"], answer=profile_config)
    for env, services in PROFILES.items():
        for service in services:
            container = fake.container(
                project="rings",
                env=env,
                service=service,
                compose_project="rings",
                labels={
                    "com.docker.compose.project.working_dir": f"{root}/rings",
                    "com.docker.compose.project.config_files": f"{root}/rings/compose.yaml",
                },
            )
            for label in ("ops.project", "ops.environment", "ops.service"):
                del container.labels[label]
    return fake, root


def ops_on(fake: FakeHost, root: str) -> Ops:
    return Ops(root=root, host=fake, plugins=plugin_manager())


def ids(fake: FakeHost) -> dict[str, str]:
    return {c.service: c.id for c in fake.engine.containers_}


def compose_calls(fake: FakeHost, command: str) -> list[list[str]]:
    """The argv of the compose *command* calls, from the command on (options dropped)."""
    found = []
    for call in fake.matching(["docker", "compose", command]):
        argv = list(call.argv)
        found.append(argv[argv.index(command) :])
    return found


# -- identity and collisions -------------------------------------------------


def test_envs_that_share_one_compose_project_by_profile_are_no_collision(tmp_path: Path) -> None:
    fake, root = rings_host(tmp_path)
    ops = ops_on(fake, root)
    state = ops.runtime.stacks.compose_state()
    assert state.collisions == ()
    by_env = {s.env: s for s in state.stacks}
    assert by_env["dev"].name == by_env["prod"].name == "rings"
    assert by_env["dev"].shared_with == ("prod",)
    assert by_env["dev"].services == ("db-dev", "web-dev")  # proxy is no env's alone
    assert by_env["prod"].services == ("db-prod", "web-prod")


def test_compose_v1_lists_every_service_and_the_profiles_key_decides(tmp_path: Path) -> None:
    fake, root = rings_host(tmp_path)
    fake.on(["docker", "compose", "config"], stdout=V1_CONFIG)
    stacks = ops_on(fake, root).runtime.stacks.compose_state().stacks
    assert {s.env: s.services for s in stacks} == {
        "dev": ("db-dev", "web-dev"),
        "prod": ("db-prod", "web-prod"),
    }


def test_status_tells_the_envs_apart_by_the_profiles_services(tmp_path: Path) -> None:
    fake, root = rings_host(tmp_path)
    ops = ops_on(fake, root)
    placed = {(p.environment, p.service) for p in ops.runtime.stacks.status()}
    assert placed == {
        ("dev", "web-dev"),
        ("dev", "db-dev"),
        ("prod", "web-prod"),
        ("prod", "db-prod"),
    }
    project = ops.project("rings")
    assert {c.name for c in ops.runtime.stacks.containers(project, "prod")} == {
        "rings-web-prod-1",
        "rings-db-prod-1",
    }


def test_without_a_profile_of_its_own_each_env_still_collides(tmp_path: Path) -> None:
    for profile in ('"all"', None):
        descriptor = RINGS.replace(
            '{profile: "{env}"}', f"{{profile: {profile}}}" if profile else "{}"
        )
        fake, root = rings_host(tmp_path / str(profile), descriptor)
        state = ops_on(fake, root).runtime.stacks.compose_state()
        assert [c.name for c in state.collisions] == ["rings"], profile
        with pytest.raises(OpskitError, match="'rings' is used by both rings dev"):
            ops_on(fake, root).lifecycle("rings", "dev", "stop", dry_run=True)


def project(folder: Path, text: str):  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compose.yaml").write_text("services: {}\n")
    return parse_descriptor(DescriptorSource(str(folder / "project.yaml"), text))


def test_two_folders_under_one_name_are_still_a_collision(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    fake.on(["docker", "compose", "config"], answer=profile_config)
    rings = project(tmp_path / "rings", RINGS.replace("{profile", "{project_name: rings, profile"))
    other = project(
        tmp_path / "other", "name: other\nenvironments: [dev]\ncompose: {project_name: rings}\n"
    )
    found = identities(fake, [rings, other], [])
    result = collisions(found, [])
    assert [(c.name, {(s.project, s.env) for s in c.stacks}) for c in result] == [
        ("rings", {("rings", "dev"), ("rings", "prod"), ("other", "dev")})
    ]
    # and containers started from another folder under that name
    elsewhere = Container("x", "x", "img", "running", "Up", "none", {
        "com.docker.compose.project": "rings",
        "com.docker.compose.service": "web-dev",
        "com.docker.compose.project.working_dir": str(tmp_path / "copy"),
    })  # fmt: skip
    alone = identities(fake, [rings], [elsewhere])
    assert [c.elsewhere for c in collisions(alone, [elsewhere])] == [(str(tmp_path / "copy"),)]


def test_a_container_of_a_service_of_no_env_alone_is_placed_in_none(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    fake.on(["docker", "compose", "config"], answer=profile_config)
    rings = project(tmp_path / "rings", RINGS)
    found = identities(fake, [rings], [])

    def container(service: str) -> Container:
        labels = {
            "com.docker.compose.project": "rings",
            "com.docker.compose.service": service,
            "com.docker.compose.project.working_dir": str(tmp_path / "rings"),
        }
        return Container(service, service, "img", "running", "Up", "none", labels)

    placed = resolve([rings], [container("proxy"), container("db-prod")], found)
    assert [(p.environment, p.service) for p in placed] == [("prod", "db-prod")]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            'compose: {profile: "{env} x"}',
            "project.yaml:3: compose.profile: 'dev x' (for dev) is not a valid compose profile",
        ),
        ('compose: {profile: "-{env}"}', "compose.profile: '-dev' (for dev)"),
    ],
)
def test_a_bad_profile_names_file_line_and_field(text: str, fragment: str) -> None:
    with pytest.raises(DescriptorError, match=re.escape(fragment)):
        parse_descriptor(
            DescriptorSource(
                "/r/rings/project.yaml", f"name: rings\nenvironments: [dev, prod]\n{text}\n"
            )
        )


def test_a_service_template_must_expand_to_a_service_name_in_every_env() -> None:
    text = 'name: rings\nenvironments: [dev, prod]\nbackup:\n  stop: ["web-{env}"]\n  databases:\n'
    good = text + '    - {service: "db-{env}", type: mariadb, name: app}\n'
    parsed = parse_descriptor(DescriptorSource("/r/rings/project.yaml", good))
    assert parsed.backup is not None and parsed.backup.databases[0].service == "db-{env}"
    bad = text + '    - {service: "db {env}", type: mariadb, name: app}\n'
    with pytest.raises(DescriptorError, match=re.escape(
        "project.yaml:6: backup.databases[0].service: 'db dev' (for dev) is not a valid service name"
    )):  # fmt: skip
        parse_descriptor(DescriptorSource("/r/rings/project.yaml", bad))


def test_a_database_of_each_envs_service_keeps_one_key_across_the_envs() -> None:
    from opskit.components import DatabaseDump, descriptor_components

    text = (
        "name: rings\nenvironments: [dev, prod]\nbackup:\n"
        '  databases: [{service: "db-{env}", type: mariadb, name: app}, {service: db, type: mariadb, name: b}]\n'
    )
    parsed = parse_descriptor(DescriptorSource("/r/rings/project.yaml", text))
    found = {
        env: [c for c in descriptor_components(parsed, env) if isinstance(c, DatabaseDump)]
        for env in ("dev", "prod")
    }
    assert [c.database.service for c in found["dev"]] == ["db-dev", "db"]
    assert [c.database.service for c in found["prod"]] == ["db-prod", "db"]
    # restore and sync pair the envs' dumps by key; one without a template keeps its old key
    assert (
        [c.key for c in found["dev"]]
        == [c.key for c in found["prod"]]
        == ["db-db--env-app", "db-db-b"]
    )


# -- lifecycle ---------------------------------------------------------------


def test_each_lifecycle_command_names_the_envs_services_and_never_runs_down(tmp_path: Path) -> None:
    fake, root = rings_host(tmp_path)
    ops = ops_on(fake, root)
    prod = {s: i for s, i in ids(fake).items() if s.endswith("-prod")}
    ops.lifecycle("rings", "dev", "stop")
    ops.lifecycle("rings", "dev", "start")
    ops.lifecycle("rings", "dev", "restart")
    ops.lifecycle("rings", "dev", "restart", "web-dev")
    ops.lifecycle("rings", "dev", "build")
    assert compose_calls(fake, "stop") == [["stop", "db-dev", "web-dev"]]
    assert compose_calls(fake, "up") == [["up", "-d", "db-dev", "web-dev"]]
    assert compose_calls(fake, "restart") == [
        ["restart", "db-dev", "web-dev"],
        ["restart", "web-dev"],
    ]
    assert compose_calls(fake, "build") == [["build", "db-dev", "web-dev"]]
    for call in fake.matching(["docker", "compose", re.compile("^(stop|up|restart|build)$")]):
        assert call.argv[call.argv.index("--profile") + 1] == "dev"
    ops.lifecycle("rings", "dev", "destroy")
    assert compose_calls(fake, "rm") == [["rm", "--stop", "--force", "db-dev", "web-dev"]]
    assert not fake.ran(["docker", "compose", "down"])
    assert ids(fake) == prod  # dev's containers are gone, prod's are the same ones


def test_a_service_of_another_env_is_refused(tmp_path: Path) -> None:
    fake, root = rings_host(tmp_path)
    ops = ops_on(fake, root)
    with pytest.raises(OpskitError, match="'web-prod' is no service of dev's profile"):
        ops.lifecycle("rings", "dev", "stop", "web-prod")
    with pytest.raises(OpskitError, match="'proxy' is no service of dev's profile"):
        ops.lifecycle("rings", "dev", "stop", "proxy")
    assert not fake.ran(["docker", "compose", "stop"])


def test_when_compose_cannot_list_a_profiles_services_nothing_runs(tmp_path: Path) -> None:
    fake, root = rings_host(tmp_path)
    fake.on(["docker", "compose", "config"], returncode=1, stderr="yaml: line 3: bad")
    ops = ops_on(fake, root)
    with pytest.raises(
        OpskitError, match=r"profile 'dev' .* unknown \(compose config failed: yaml: line 3: bad\)"
    ):
        ops.lifecycle("rings", "dev", "stop")
    assert not fake.ran(["docker", "compose", "stop"])
    failed = [c for c in ops.health("rings", "dev").checks if not c.ok]
    assert "profile services" in {c.check for c in failed}
    problems = [f for f in ops.doctor().findings if f.severity == "problem"]
    assert {(f.kind, f.environment) for f in problems if f.kind == "compose profile"} == {
        ("compose profile", "dev"),
        ("compose profile", "prod"),
    }


def test_destroy_with_volumes_removes_only_the_volumes_no_other_env_mounts(tmp_path: Path) -> None:
    fake, root = rings_host(tmp_path)
    for name in ("rings_uploads", "rings_dev-data", "rings_dev-cache", "rings_certs", "outside"):
        fake.volume(name)
    commands = ops_on(fake, root).lifecycle("rings", "dev", "destroy", volumes=True, dry_run=True)
    assert [
        list(c.argv[c.argv.index("rm") :]) if "compose" in c.argv else list(c.argv)
        for c in commands
    ] == [
        ["rm", "--stop", "--force", "-v", "db-dev", "web-dev"],
        ["docker", "volume", "rm", "rings_dev-cache", "rings_dev-data"],
    ]


# -- the layout on the real engine ----------------------------------------------

DB_COMMAND = (
    "mkdir -p /run/mysqld && chown mysql /run/mysqld && (test -d /var/lib/mysql/mysql || "
    "mariadb-install-db --user=mysql >/dev/null) && exec mariadbd --user=mysql "
    "--bind-address=0.0.0.0"
)
SERVICES = """\
  web-{env}:
    profiles: [{env}]
    init: true
    image: opskit-test/web:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    volumes: ["data-{env}:/srv/data", "./{env}/uploads:/srv/uploads"]
    healthcheck: {{test: ["CMD", "true"], interval: 2s, timeout: 10s, retries: 3}}
  db-{env}:
    profiles: [{env}]
    init: true
    image: opskit-test/db:1
    command: ["sh", "-c", "{db}"]
    volumes: ["db-{env}:/var/lib/mysql"]
    healthcheck: {{test: ["CMD", "mariadb-admin", "ping", "--silent"], interval: 2s, timeout: 10s, retries: 60}}
"""
LAYOUT = "services:\n{dev}{prod}volumes: {{data-dev: {{}}, data-prod: {{}}, db-dev: {{}}, db-prod: {{}}}}\n"
DESCRIPTOR = """\
name: rings
environments: [dev, prod]
compose: {{project_name: "{name}", profile: "{{env}}"}}
health: {{timeout: 120}}
backup:
  dir: {backups}
  databases: [{{service: "db-{{env}}", type: mariadb, name: app}}]
  paths: ["{{env}}/uploads"]
  volumes: ["{name}_data-{{env}}"]
  stop: ["web-{{env}}"]
sync:
  pairs: [[prod, dev]]
"""


def docker_json(*args: str) -> object:
    return json.loads(
        subprocess.run(["docker", *args], check=True, capture_output=True, text=True).stdout
    )


@pytest.fixture(scope="module")
def rings_root(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The rings project on the real engine, dev and prod running and healthy."""

    if not docker_ready():
        pytest.fail("no Docker engine: run scripts/testbed.sh (or deselect with -m 'not docker')")
    root = tmp_path_factory.mktemp("rings-root")
    folder = root / "rings"
    for env in ("dev", "prod"):
        (folder / env / "uploads").mkdir(parents=True)
        (folder / env / "uploads" / "logo.txt").write_text(f"{env} logo\n")
    services = {env: SERVICES.format(env=env, db=DB_COMMAND) for env in ("dev", "prod")}
    (folder / "compose.yaml").write_text(LAYOUT.format(**services))
    name = ns("rings")
    (folder / "project.yaml").write_text(
        DESCRIPTOR.format(name=name, backups=tmp_path_factory.mktemp("rings-backups"))
    )
    for env in ("dev", "prod"):  # one after the other: both would create the shared network
        run = opskit("--root", str(root), "start", "rings", env)
        assert run.returncode == 0, run.stderr
    wait_healthy(root, "rings", what="healthy rings")
    for env in ("dev", "prod"):
        create_database(env)
    yield root
    remove_namespaced(containers_under(root))


def envs_containers(
    root: Path, *, each: bool = False
) -> dict[str, dict[str, tuple[str, str, str]]]:
    """Per env, what opskit status shows: service -> (container id, state, started at).
    One ``status rings`` for both envs (each row names its env), or with *each* one
    ``status rings ENV`` per env; one ``docker inspect`` for every container."""

    asked = [["rings", env] for env in ("dev", "prod")] if each else [["rings"]]
    rows = [
        row
        for scope in asked
        for row in opskit("--root", str(root), "status", *scope, "--json").json()["containers"]  # type: ignore[index]
    ]
    ids = [row["id"] for row in rows if row["id"]]
    inspected = docker_json("inspect", *ids) if ids else []
    started = {c["Id"]: c["State"]["StartedAt"] for c in inspected}  # type: ignore[index, union-attr]
    found: dict[str, dict[str, tuple[str, str, str]]] = {"dev": {}, "prod": {}}
    for row in rows:
        since = next(
            (at for full, at in started.items() if row["id"] and full.startswith(row["id"])), ""
        )
        found[row["environment"]][row["service"]] = (row["id"], row["state"], since)
    return found


def in_web(root: Path, env: str, script: str) -> str:
    import subprocess

    done = subprocess.run(
        ["docker", "exec", compose_container("rings", f"web-{env}"), "sh", "-c", script],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def create_database(env: str) -> None:
    sql(env, f"CREATE DATABASE app; CREATE TABLE app.pages (id INT PRIMARY KEY, body TEXT); "
             f"INSERT INTO app.pages VALUES (1, '{env} v1')")  # fmt: skip


def sql(env: str, statement: str) -> str:
    """Run *statement* in the env's MariaDB (as root, over its socket); its output."""
    done = subprocess.run(
        ["docker", "exec", compose_container("rings", f"db-{env}"), "mariadb", "-N", "-B", "-e", statement],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.docker
def test_start_stop_restart_destroy_of_dev_leave_prod_alone(rings_root: Path) -> None:

    root = str(rings_root)
    before = envs_containers(rings_root, each=True)
    assert set(before["dev"]) == {"web-dev", "db-dev"}  # status tells the envs apart
    assert envs_containers(rings_root) == before  # as one status of the project does
    assert set(before["prod"]) == {"web-prod", "db-prod"}
    assert all(state == "running" for _, state, _ in before["prod"].values())
    prod = before["prod"]
    doctor = opskit("--root", root, "doctor", "--json").json()
    problems = [f["message"] for f in doctor["findings"] if f["severity"] == "problem"]  # type: ignore[index]
    assert problems == []  # no collision, every volume and database covered

    run = opskit("--root", root, "stop", "rings", "dev")
    assert run.returncode == 0, run.stderr
    after = envs_containers(rings_root)
    assert {s: state for s, (_, state, _) in after["dev"].items()} == {
        "web-dev": "exited",
        "db-dev": "exited",
    }
    assert after["prod"] == prod

    for command in (
        ["start", "rings", "dev"],
        ["restart", "rings", "dev"],
        ["restart", "rings", "dev", "web-dev"],
    ):
        run = opskit("--root", root, *command)
        assert run.returncode == 0, (command, run.stderr)
        assert envs_containers(rings_root)["prod"] == prod, command
    wait_healthy(rings_root, "rings", "dev")

    run = opskit("--root", root, "destroy", "rings", "dev", "--volumes", "--yes", "--json")
    assert run.returncode == 0, run.stderr
    assert "down" not in run.stdout
    after = envs_containers(rings_root)
    assert {s: state for s, (_, state, _) in after["dev"].items()} == {}
    assert after["prod"] == prod
    volumes = subprocess.run(
        ["docker", "volume", "ls", "-q", "--filter", f"name=^{ns('rings')}_"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert sorted(volumes) == [ns("rings") + "_data-prod", ns("rings") + "_db-prod"]
    # prod's network and health are untouched; dev comes back
    run = opskit("--root", root, "health", "rings", "prod")
    assert run.returncode == 0, run.stdout
    run = opskit("--root", root, "start", "rings", "dev")
    assert run.returncode == 0, run.stderr
    wait_healthy(rings_root, "rings", "dev")
    assert envs_containers(rings_root)["prod"] == prod
    create_database("dev")  # its volume went with destroy --volumes


@pytest.mark.docker
def test_backup_restore_and_sync_between_the_envs(rings_root: Path) -> None:

    root = str(rings_root)
    in_web(rings_root, "dev", "echo dev v1 > /srv/data/page.txt")
    in_web(rings_root, "prod", "echo prod v1 > /srv/data/page.txt")
    prod = envs_containers(rings_root)["prod"]

    run = opskit("--root", root, "backup", "rings", "dev")
    assert run.returncode == 0, run.stderr
    in_web(rings_root, "dev", "echo dev v2 > /srv/data/page.txt")
    sql("dev", "UPDATE app.pages SET body = 'dev v2'")
    (rings_root / "rings" / "dev" / "uploads" / "logo.txt").write_text("broken\n")

    run = opskit("--root", root, "restore", "rings", "dev", "--latest", "--yes", timeout=300)
    assert run.returncode == 0, run.stderr
    assert in_web(rings_root, "dev", "cat /srv/data/page.txt") == "dev v1\n"
    assert sql("dev", "SELECT body FROM app.pages") == "dev v1\n"
    assert (rings_root / "rings" / "dev" / "uploads" / "logo.txt").read_text() == "dev logo\n"
    assert envs_containers(rings_root)["prod"] == prod  # the restore stopped dev's services only

    run = opskit(
        "--root", root, "sync", "rings", "--from", "prod", "--to", "dev", "--yes", timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert in_web(rings_root, "dev", "cat /srv/data/page.txt") == "prod v1\n"
    assert sql("dev", "SELECT body FROM app.pages") == "prod v1\n"
    assert (rings_root / "rings" / "dev" / "uploads" / "logo.txt").read_text() == "prod logo\n"
    assert in_web(rings_root, "prod", "cat /srv/data/page.txt") == "prod v1\n"
    assert envs_containers(rings_root)["prod"] == prod


@pytest.mark.docker
def test_a_second_folder_under_the_shared_name_is_still_refused(rings_root: Path) -> None:

    other = rings_root / "other"
    other.mkdir()
    (other / "compose.yaml").write_text("services: {web: {image: opskit-test/web:1}}\n")
    (other / "project.yaml").write_text(
        f'name: other\nenvironments: [dev]\ncompose: {{project_name: "{ns("rings")}"}}\n'
    )
    try:
        prod = envs_containers(rings_root)["prod"]
        run = opskit("--root", str(rings_root), "stop", "rings", "prod")
        assert_one_error_line(
            run, f"compose project name '{ns('rings')}' is used by both", "other dev"
        )
        assert envs_containers(rings_root)["prod"] == prod
    finally:
        (other / "project.yaml").unlink()
