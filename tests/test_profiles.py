"""Several envs in one compose project, chosen by profile (#21, the "ringsaday" layout).

One folder, one compose project name, ``compose.profile: "{env}"``: services ``web-dev`` and
``db-dev`` have the profile dev, ``web-prod`` and ``db-prod`` the profile prod. The envs are
one identity with a service set each, no collision; every lifecycle command acts on the
env's own services and never runs ``down``. The unit tests run on a FakeHost; the docker
tests bring the layout up on the real engine.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import opskit
from opskit.compose import collisions, identities
from opskit.containers import Container, resolve
from opskit.descriptor import DescriptorSource, parse_descriptor
from opskit.errors import DescriptorError, OpskitError
from opskit.testing import Call, FakeHost, Reply, plugin_manager

RINGS = """\
name: rings
environments: [dev, prod]
compose: {profile: "{env}"}
"""

# What compose's ``--profile X config --services`` lists: the profile's services and
# those of no profile (``proxy``).
PROFILES = {"dev": ["web-dev", "db-dev"], "prod": ["web-prod", "db-prod"]}
SHARED = ["proxy"]


def profile_services(call: Call) -> Reply | None:
    """compose's answer to ``--profile X config --services``."""
    argv = list(call.argv)
    if "--services" not in argv:
        return None
    profile = argv[argv.index("--profile") + 1] if "--profile" in argv else None
    return Reply(stdout="".join(f"{s}\n" for s in [*PROFILES.get(profile or "", []), *SHARED]))


def rings_host(tmp_path: Path, descriptor: str = RINGS) -> tuple[FakeHost, str]:
    """The rings project on a fake host, its four containers running (no ``ops.*`` labels:
    compose's labels alone tell the envs apart)."""
    fake = FakeHost(tmp_path)
    root = fake.path("root")
    fake.write(f"{root}/rings/project.yaml", descriptor)
    fake.write(f"{root}/rings/compose.yaml", "services: {}\n")
    fake.on(["docker", "compose", "config", "--services"], answer=profile_services)
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


def ops_on(fake: FakeHost, root: str) -> opskit.Ops:
    return opskit.Ops(root=root, host=fake, plugins=plugin_manager())


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
    fake.on(["docker", "compose", "config", "--services"], answer=profile_services)
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
    fake.on(["docker", "compose", "config", "--services"], answer=profile_services)
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
    fake.on(["docker", "compose", "config", "--services"], returncode=1, stderr="yaml: line 3: bad")
    ops = ops_on(fake, root)
    with pytest.raises(
        OpskitError, match=r"profile 'dev' .* unknown \(compose config failed: yaml: line 3: bad\)"
    ):
        ops.lifecycle("rings", "dev", "stop")
    assert not fake.ran(["docker", "compose", "stop"])
    failed = [c for c in ops.health("rings", "dev").checks if not c.ok]
    assert "profile services" in {c.check for c in failed}


# What compose's ``--profile X config`` prints, per profile: volumes that dev's services
# alone mount (one in the short syntax), one that web-prod mounts too, one of the proxy
# (a service of no profile), one external, and a bind mount.
CONFIG = {
    "dev": """\
name: rings
services:
  web-dev:
    volumes:
      - {type: volume, source: uploads, target: /u}
      - {type: volume, source: dev-data, target: /d}
      - {type: volume, source: outside, target: /o}
  db-dev: {volumes: [{type: bind, source: /srv, target: /s}, "dev-cache:/c:rw"]}
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
  web-prod: {volumes: [{type: volume, source: uploads, target: /u}]}
  proxy: {volumes: [{type: volume, source: certs, target: /c}]}
volumes:
  uploads: {name: rings_uploads}
  certs: {name: rings_certs}
""",
}


def profile_config(call: Call) -> Reply | None:
    if "--services" in call.argv:
        return None
    return Reply(stdout=CONFIG[call.argv[call.argv.index("--profile") + 1]])


def test_destroy_with_volumes_removes_only_the_volumes_no_other_env_mounts(tmp_path: Path) -> None:
    fake, root = rings_host(tmp_path)
    fake.on(["docker", "compose", "config"], answer=profile_config)
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
