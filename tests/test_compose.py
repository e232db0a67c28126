"""Compose command lines: v2 or v1, files, env file, profile, extra stacks."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import SSH_KEY, SSH_URL, opskit
from opskit.compose import compose_program, env_commands, externals_of
from opskit.descriptor import DescriptorSource, parse_descriptor
from opskit.errors import HostError, NotFoundError
from opskit.host import LocalHost, SSHHost


def fake_program(folder: Path, name: str, script: str) -> None:
    # A stand-in `docker` that answers `docker compose version` as it is told to.
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize(
    ("programs", "expected"),
    [
        (
            {"docker": '[ "$1" = compose ] && exit 0; exit 1', "docker-compose": "exit 0"},
            ["docker", "compose"],
        ),
        ({"docker": "exit 1", "docker-compose": "exit 0"}, ["docker-compose"]),
    ],
)
def test_compose_v2_is_preferred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, programs: dict[str, str], expected: list[str]
) -> None:
    for name, script in programs.items():
        fake_program(tmp_path, name, script)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert compose_program(LocalHost()) == expected


def test_no_compose_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_program(tmp_path, "docker", "exit 1")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(HostError, match="neither 'docker compose' nor 'docker-compose'"):
        compose_program(LocalHost())


def make_project(tmp_path: Path, descriptor: str, files: list[str]):  # type: ignore[no-untyped-def]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("services: {}\n")
    return parse_descriptor(DescriptorSource(str(tmp_path / "project.yaml"), descriptor))


@pytest.fixture
def v1_host() -> LocalHost:
    host = LocalHost()
    host.cache["compose"] = ["docker-compose"]
    return host


def test_files_env_file_profile_and_extra_stacks(tmp_path: Path, v1_host: LocalHost) -> None:
    project = make_project(
        tmp_path,
        'name: p\nenvironments: [dev, prod]\ncompose:\n  dir: "{env}"\n  files: [base.yml, "over.{env}.yml"]\n'
        '  env_file: ".env.{env}"\n  profile: "{env}"\n  extra:\n    - {dir: "{env}/seafile"}\n',
        ["prod/base.yml", "prod/over.prod.yml", "prod/.env.prod", "prod/seafile/docker-compose.yml", "prod/seafile/.env",
         "dev/base.yml", "dev/over.dev.yml", "dev/.env.dev"],
    )  # fmt: skip
    prod = env_commands(v1_host, project, "prod", ["up", "-d"])
    assert [c.cwd for c in prod] == [f"{tmp_path}/prod", f"{tmp_path}/prod/seafile"]
    assert list(prod[0].argv) == [
        "docker-compose", "--project-name", "prod", "-f", f"{tmp_path}/prod/base.yml", "-f", f"{tmp_path}/prod/over.prod.yml",
        "--env-file", f"{tmp_path}/prod/.env.prod", "--profile", "prod", "up", "-d",
    ]  # fmt: skip
    assert list(prod[1].argv) == [
        "docker-compose", "--project-name", "seafile", "-f", f"{tmp_path}/prod/seafile/docker-compose.yml",
        "--env-file", f"{tmp_path}/prod/seafile/.env", "--profile", "prod", "up", "-d",
    ]  # fmt: skip
    dev = env_commands(v1_host, project, "dev", ["stop"])
    assert len(dev) == 1  # dev has no seafile folder


def test_default_file_and_env_file_detection(tmp_path: Path, v1_host: LocalHost) -> None:
    project = make_project(tmp_path, "name: p\n", ["docker-compose.yml", "compose.yaml", ".env"])
    (command,) = env_commands(v1_host, project, "dev", ["ps"])
    assert list(command.argv) == [
        "docker-compose",
        "--project-name",
        tmp_path.name.lower(),
        "-f",
        f"{tmp_path}/compose.yaml",
        "--env-file",
        f"{tmp_path}/.env",
        "ps",
    ]
    (tmp_path / ".env.dev").write_text("")
    (command,) = env_commands(v1_host, project, "dev", ["ps"])
    assert f"{tmp_path}/.env.dev" in command.argv


def test_missing_files_are_errors(tmp_path: Path, v1_host: LocalHost) -> None:
    empty = make_project(tmp_path, "name: p\n", [])
    with pytest.raises(NotFoundError, match="no compose file in"):
        env_commands(v1_host, empty, "dev", ["ps"])
    named = make_project(
        tmp_path, "name: p\ncompose: {files: [x.yml], env_file: '.env.{env}'}\n", ["x.yml"]
    )
    with pytest.raises(NotFoundError, match=r"env file .*\.env\.dev does not exist"):
        env_commands(v1_host, named, "dev", ["ps"])
    os.remove(tmp_path / "x.yml")
    with pytest.raises(NotFoundError, match=r"compose file .*x\.yml does not exist"):
        env_commands(v1_host, named, "dev", ["ps"])


def test_absolute_compose_files_stay_absolute(tmp_path: Path, v1_host: LocalHost) -> None:
    elsewhere = tmp_path / "shared" / "base.yml"
    project = make_project(tmp_path / "p", f"name: p\ncompose: {{files: ['{elsewhere}']}}\n", [])
    elsewhere.parent.mkdir()
    elsewhere.write_text("services: {}\n")
    (command,) = env_commands(v1_host, project, "dev", ["ps"])
    assert command.argv[:5] == ("docker-compose", "--project-name", "p", "-f", str(elsewhere))


# -- the compose this run uses: the test bed's v2 by default, v1 in the v1 run ----------------

PROGRAMS = {"v2": ["docker", "compose"], "v1": ["docker-compose"]}


def planned_program(root: Path, *host: str) -> list[str]:
    """The compose program in opskit's own plan for a start (a dry run changes nothing)."""
    plan = opskit("start", "mdf", "dev", "--dry-run", "--json", "--root", str(root), *host)
    assert plan.returncode == 0, plan.stderr
    argv = plan.json()["commands"][0]  # type: ignore[index]
    return argv[: argv.index("--project-name")]  # type: ignore[no-any-return]


@pytest.mark.docker
def test_the_run_uses_the_compose_its_test_bed_chose(example_copy) -> None:  # type: ignore[no-untyped-def]
    """scripts/testbed.sh installs compose v2 as a plugin of its DOCKER_CONFIG and says
    OPSKIT_TEST_COMPOSE=v2; scripts/test.sh's v1 run says v1, with a DOCKER_CONFIG without
    the plugin. A v2 plugin that went missing would otherwise run the suite on v1 unseen."""
    expected = os.environ.get("OPSKIT_TEST_COMPOSE", "v2")
    program = planned_program(example_copy[0])
    assert program == PROGRAMS[expected], (expected, os.environ.get("DOCKER_CONFIG"))
    version = subprocess.run([*program, "version", "--short"], capture_output=True, text=True)
    assert version.stdout.strip().startswith("2." if expected == "v2" else "1."), version


@pytest.mark.docker
@pytest.mark.ssh
def test_the_servers_over_ssh_run_compose_v2(example_copy) -> None:  # type: ignore[no-untyped-def]
    """The test bed's sshd gives its sessions the v2 DOCKER_CONFIG, as a server with the
    compose plugin installed would be, whichever compose the local run uses."""
    program = planned_program(example_copy[0], "--host", SSH_URL)
    assert program == PROGRAMS["v2"]
    with SSHHost(SSH_URL, key_filename=SSH_KEY) as host:
        version = host.run([*program, "version", "--short"]).text.strip()
    assert version.startswith("2."), version


def test_a_failed_compose_command_names_its_project_with_either_program() -> None:
    from opskit.errors import CommandFailed

    for program in (["docker", "compose"], ["docker-compose"]):
        argv = [*program, "--project-name", "mdf-dev", "-f", "compose.yaml", "stop", "db"]
        failed = CommandFailed(argv, 1, "no such service: db\n", "local")
        assert str(failed) == (
            f"{' '.join(program)} --project-name mdf-dev failed with exit 1: no such service: db"
        )


def test_the_external_networks_and_volumes_of_a_compose_config() -> None:
    """As compose v2 writes them (a name beside ``external: true``), as v1 may (the name
    inside ``external``), and one named by its key alone; internal ones are not listed."""
    config = {
        "networks": {
            "proxy": {"external": True, "name": "traefik_proxy"},
            "default": {"name": "shop-prod_default"},
            "legacy": {"external": {"name": "old_proxy"}},
        },
        "volumes": {"shared": {"external": True}, "data": {"name": "shop-prod_data"}},
    }
    assert externals_of(config) == [
        ("network", "old_proxy"),
        ("network", "traefik_proxy"),
        ("volume", "shared"),
    ]
    assert externals_of({"services": {}}) == []
