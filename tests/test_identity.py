"""Compose project identity and the health gate's judgement: unit tests, no Docker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opskit.compose import collisions, env_commands, identities
from opskit.containers import Container, resolve
from opskit.descriptor import DescriptorSource, parse_descriptor
from opskit.errors import DescriptorError
from opskit.gate import judge, parse_time
from opskit.host import LocalHost


def project(folder: Path, text: str):  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True, exist_ok=True)
    return parse_descriptor(DescriptorSource(str(folder / "project.yaml"), text))


def compose_file(folder: Path, text: str = "services: {web: {image: x}}\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "compose.yaml"
    path.write_text(text)
    return path


def running(name: str, labels: dict[str, str]) -> Container:
    return Container(name, name, "img", "running", "Up", "none", labels)


def compose_labels(project_name: str, folder: Path, service: str = "web") -> dict[str, str]:
    return {
        "com.docker.compose.project": project_name,
        "com.docker.compose.service": service,
        "com.docker.compose.project.working_dir": str(folder),
        "com.docker.compose.project.config_files": "compose.yaml",
    }


def names(found) -> dict[tuple[str, str, int], tuple[str, str]]:  # type: ignore[no-untyped-def]
    return {(s.project, s.env, s.index): (s.name, s.source) for s in found}


def test_the_name_of_a_stack_in_order(tmp_path: Path) -> None:
    pinned = project(
        tmp_path / "pinned", 'name: pinned\ncompose: {dir: "{env}", project_name: "pinned-{env}"}\n'
    )
    adopted = project(tmp_path / "adopted", 'name: adopted\ncompose: {dir: "{env}"}\n')
    by_env_file = project(tmp_path / "byenv", 'name: byenv\ncompose: {dir: "{env}"}\n')
    by_name = project(tmp_path / "byname", 'name: byname\ncompose: {dir: "{env}"}\n')
    folder = project(tmp_path / "folder", 'name: folder\ncompose: {dir: "{env}"}\n')
    for p in ("pinned", "adopted", "byenv", "folder"):
        compose_file(tmp_path / p / "prod")
    compose_file(tmp_path / "byname" / "prod", "name: from-the-file\nservices: {}\n")
    (tmp_path / "byenv" / "prod" / ".env").write_text('export COMPOSE_PROJECT_NAME="from-env"\n')
    # pinned containers run under another name: the descriptor still wins
    others = [
        running("a", compose_labels("custom-name", tmp_path / "adopted" / "prod")),
        running("b", compose_labels("legacy", tmp_path / "pinned" / "prod")),
    ]
    found = identities(LocalHost(), [pinned, adopted, by_env_file, by_name, folder], others)
    prod = {k: v for k, v in names(found).items() if k[1] == "prod"}
    assert prod == {
        ("pinned", "prod", 0): ("pinned-prod", "descriptor"),
        ("adopted", "prod", 0): ("custom-name", "adopted"),
        ("byenv", "prod", 0): ("from-env", "env file"),
        ("byname", "prod", 0): ("from-the-file", "compose file"),
        ("folder", "prod", 0): ("prod", "folder"),
    }


def test_containers_that_disagree_are_not_adopted(tmp_path: Path) -> None:
    p = project(tmp_path / "p", 'name: p\ncompose: {dir: "{env}"}\n')
    compose_file(tmp_path / "p" / "dev")
    found = identities(
        LocalHost(),
        [p],
        [
            running("a", compose_labels("one", tmp_path / "p" / "dev")),
            running("b", compose_labels("two", tmp_path / "p" / "dev")),
        ],
    )
    assert names(found)[("p", "dev", 0)] == ("dev", "folder")


def test_a_stack_of_other_files_in_the_same_folder_is_not_adopted(tmp_path: Path) -> None:
    # seriousletter's layout: both envs in one folder, one compose file each
    p = project(tmp_path / "p", 'name: p\ncompose: {files: ["docker-compose.{env}.yml"]}\n')
    for env in ("dev", "prod"):
        (tmp_path / "p" / f"docker-compose.{env}.yml").write_text("services: {}\n")
    labels = compose_labels("p-prod-by-hand", tmp_path / "p")
    labels["com.docker.compose.project.config_files"] = str(
        tmp_path / "p" / "docker-compose.prod.yml"
    )
    found = names(identities(LocalHost(), [p], [running("a", labels)]))
    assert found[("p", "prod", 0)] == ("p-prod-by-hand", "adopted")
    assert found[("p", "dev", 0)] == ("p", "folder")


def test_collisions_between_stacks_and_with_containers_elsewhere(tmp_path: Path) -> None:
    webstack = project(tmp_path / "webstack", 'name: webstack\ncompose: {dir: "{env}"}\n')
    shop = project(tmp_path / "shop", 'name: shop\ncompose: {dir: "{env}"}\n')
    pinned = project(
        tmp_path / "pinned",
        'name: pinned\nenvironments: [prod]\ncompose: {dir: "{env}", project_name: "pinned"}\n',
    )
    for p in ("webstack", "shop", "pinned"):
        for env in ("dev", "int", "prod"):
            compose_file(tmp_path / p / env)
    foreign = running("x", compose_labels("pinned", tmp_path / "elsewhere"))
    found = identities(LocalHost(), [webstack, shop, pinned], [foreign])
    result = {c.name: c for c in collisions(found, [foreign])}
    assert set(result) == {"dev", "int", "prod", "pinned"}
    assert {(s.project, s.env) for s in result["prod"].stacks} == {
        ("webstack", "prod"),
        ("shop", "prod"),
    }
    assert result["pinned"].elsewhere == (str(tmp_path / "elsewhere"),)
    message = result["prod"].message()
    assert "webstack prod" in message and "shop prod" in message
    assert "compose.project_name" in message and "\n" not in message


def test_every_compose_command_names_the_project(tmp_path: Path) -> None:
    p = project(tmp_path / "p", 'name: p\ncompose: {dir: "{env}", project_name: "p-{env}"}\n')
    compose_file(tmp_path / "p" / "dev")
    host = LocalHost()
    host.cache["compose"] = ["docker-compose"]
    (command,) = env_commands(host, p, "dev", ["up", "-d"])
    assert command.argv[:3] == ("docker-compose", "--project-name", "p-dev")


def test_resolution_by_compose_labels_uses_the_decided_name(tmp_path: Path) -> None:
    # Both envs in one folder: the compose project name says which env a container is.
    p = project(
        tmp_path / "p", 'name: p\ncompose: {files: ["c.{env}.yml"], project_name: "p-{env}"}\n'
    )
    dev = running(
        "a", {**compose_labels("p-dev", tmp_path / "p"), "com.docker.compose.service": "api"}
    )
    prod = running(
        "b", {**compose_labels("p-prod", tmp_path / "p"), "com.docker.compose.service": "api"}
    )
    stranger = running("c", compose_labels("p-prod", tmp_path / "copy" / "p"))
    placed = {
        c.container.name: c.environment for c in resolve([p], [dev, prod, stranger]) if c.container
    }
    assert placed == {"a": "dev", "b": "prod"}


def test_labelled_containers_of_another_deployment_are_not_claimed(tmp_path: Path) -> None:
    p = project(tmp_path / "mdf", 'name: mdf\nenvironments: [prod]\ncompose: {dir: "{env}"}\n')
    ours = running(
        "ours",
        {
            "ops.project": "mdf",
            "ops.environment": "prod",
            **compose_labels("prod", tmp_path / "mdf" / "prod"),
        },
    )
    theirs = running(
        "theirs",
        {
            "ops.project": "mdf",
            "ops.environment": "prod",
            **compose_labels("x", tmp_path / "checkout2" / "mdf" / "prod"),
        },
    )
    by_hand = running("by-hand", {"ops.project": "mdf", "ops.environment": "prod"})
    placed = {c.container.name for c in resolve([p], [ours, theirs, by_hand]) if c.container}
    assert placed == {"ours", "by-hand"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            'compose: {project_name: "Shop-{env}"}',
            "'Shop-dev' (for dev) is not a valid compose project name",
        ),
        ('compose: {project_name: "-{env}"}', "is not a valid compose project name"),
        ('compose: {extra: [{dir: x, project_name: "a b"}]}', "compose.extra[0].project_name"),
        ("health: {timeout: 0}", "health.timeout: must be at least 1"),
        ("health: {probes: [{http: ftp://x}]}", "health.probes[0].http"),
    ],
)
def test_bad_identity_and_gate_settings_name_file_line_and_field(text: str, fragment: str) -> None:
    with pytest.raises(DescriptorError) as caught:
        parse_descriptor(DescriptorSource("/r/p/project.yaml", f"name: p\n{text}\n"))
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("/r/p/project.yaml:")


def test_the_gate_timeout_setting() -> None:
    def read(text: str):  # type: ignore[no-untyped-def]
        return parse_descriptor(DescriptorSource("/r/p/project.yaml", f"name: p\n{text}"))

    plain = read("")
    assert (plain.gate_timeout("restore"), plain.gate_timeout("promote")) == (120, 120)
    both = read(
        "health: {timeout: 300, probes: [{http: 'http://x/'}]}\npromote: {type: rsync, dir: x, health_timeout: 30}\n"
    )
    assert len(both.health) == 1
    assert [both.gate_timeout(c) for c in ("restore", "sync", "rebuild", "promote")] == [
        300,
        300,
        300,
        30,
    ]
    assert both.gate_setting("promote") == "promote.health_timeout"
    # promote's own setting no longer governs restore and sync
    promote_only = read("promote: {type: rsync, dir: x, health_timeout: 30}\n")
    assert promote_only.gate_timeout("sync") == 120


# -- the health gate's judgement ------------------------------------------------------

CHANGE = datetime(2026, 11, 28, 4, 0, 0, tzinfo=UTC)


def stamp(seconds: float) -> str:
    return (CHANGE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def inspected(
    started: float, runs: list[tuple[float, int]], status: str = "healthy", interval: float = 5
) -> dict[str, Any]:
    return {
        "State": {
            "Status": "running",
            "StartedAt": stamp(started),
            "RestartCount": 0,
            "Health": {
                "Status": status,
                "Log": [
                    {"Start": stamp(t), "ExitCode": code, "Output": "boom\n" if code else ""}
                    for t, code in runs
                ],
            },
        },
        "Config": {"Healthcheck": {"Test": ["CMD", "true"], "Interval": int(interval * 1e9)}},
    }


def test_docker_times_with_nanoseconds_and_offsets() -> None:
    assert parse_time("2026-11-28T04:00:01.123456789Z") == CHANGE + timedelta(
        seconds=1, microseconds=123456
    )
    assert parse_time("2026-11-28T05:00:00+01:00") == CHANGE
    assert parse_time("0001-01-01T00:00:00Z").year == 1


def test_a_status_older_than_the_change_is_no_evidence() -> None:
    verdict = judge("web", inspected(-600, [(-10, 0), (-5, 0)]), CHANGE, 100)
    assert not verdict.ok and not verdict.failed
    assert "no healthcheck has run since the change (it runs every 5 s)" in verdict.detail


def test_a_fresh_pass_is_evidence() -> None:
    assert judge("web", inspected(-600, [(-5, 0), (2, 0)]), CHANGE, 0).ok


def test_a_fresh_failure_of_a_container_that_kept_running_fails_at_once() -> None:
    verdict = judge("web", inspected(-600, [(-5, 0), (2, 1)], status="healthy"), CHANGE, 100)
    assert verdict.failed and "healthcheck failed since the change (exit 1: boom)" in verdict.detail


def test_a_restarted_container_may_fail_while_it_starts() -> None:
    starting = judge("db", inspected(1, [(3, 1)], status="starting"), CHANGE, 0)
    assert not starting.ok and not starting.failed
    assert judge("db", inspected(1, [(3, 1), (5, 0)]), CHANGE, 0).ok
    assert judge("db", inspected(1, [(3, 1), (5, 1)], status="unhealthy"), CHANGE, 0).failed


def test_without_a_healthcheck_it_must_stay_up_for_the_settle_window() -> None:
    plain = {
        "State": {"Status": "running", "StartedAt": stamp(-60), "RestartCount": 0},
        "Config": {},
    }
    assert not judge("cache", plain, CHANGE, 1).ok
    assert judge("cache", plain, CHANGE, 3).ok
    exited = {"State": {"Status": "exited", "StartedAt": stamp(-60)}, "Config": {}}
    assert not judge("cache", exited, CHANGE, 10).ok
