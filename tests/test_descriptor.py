from __future__ import annotations

from pathlib import Path

import pytest

from opskit.descriptor import DescriptorSource, expand, load_projects, parse_descriptor
from opskit.errors import DescriptorError, NotFoundError

DATA = Path(__file__).parent / "data"


def parse(text: str, path: str = "/srv/data/x/project.yaml"):  # type: ignore[no-untyped-def]
    return parse_descriptor(DescriptorSource(path, text))


def error_of(text: str) -> str:
    with pytest.raises(DescriptorError) as caught:
        parse(text)
    return str(caught.value)


def test_the_reference_descriptor_parses_completely() -> None:
    project = parse((DATA / "spec-project.yaml").read_text(), "/opt/data/mdf/project.yaml")
    assert project.name == "mdf"
    assert project.plugin == "mdf"
    assert project.environments == ("dev", "int", "prod")
    assert project.prefix("dev") == "dev-mdf"
    assert project.compose.extra[0].dir == "{env}/seafile"
    assert [s.name for s in project.services_in("dev")] == ["wordpress", "db"]
    assert [s.name for s in project.services_in("prod")] == ["wordpress", "db", "mail"]
    assert project.health[0].expect == 200
    assert project.backup is not None
    assert project.backup.retention.keep_daily == 7
    assert project.backup.databases[0].password_env == "MYSQL_ROOT_PASSWORD"
    assert project.backup.stop == ("mail",)
    assert project.offsite is not None and project.offsite.keep == 30
    assert project.sync is not None and project.sync.pairs == (("prod", "dev"), ("prod", "int"))
    assert project.sync.replacement("int") == "https://int.mdf-system.ch"
    assert project.promote is not None and dict(project.promote.branches)["prod"] == "main"
    assert project.delegate is not None and project.delegate.commands == (
        "backup",
        "restore",
        "sync",
        "promote",
    )
    assert (
        project.resolve_path("{env}/wp-content/uploads", "prod")
        == "/opt/data/mdf/prod/wp-content/uploads"
    )


def test_minimal_descriptor_gets_defaults() -> None:
    project = parse("name: shop\n")
    assert project.plugin == "generic"
    assert project.environments == ("dev", "int", "prod")
    assert project.prefix("int") == "int-shop"
    assert project.backup is None
    assert project.stacks("dev")[0].dir == "."


def test_wrong_type_names_file_line_and_field() -> None:
    text = "name: mdf\nbackup:\n  retention:\n    keep_daily: seven\n"
    assert (
        error_of(text)
        == "/srv/data/x/project.yaml:4: backup.retention.keep_daily: expected an integer"
    )


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("name: mdf\nbakup: {}\n", 2, "bakup: unknown key"),
        (
            "name: mdf\nbackup:\n  retention: {keep_dayly: 3}\n",
            3,
            "backup.retention.keep_dayly: unknown key",
        ),
        ("name: Bad_Name\n", 1, "name: 'Bad_Name' is not a valid project name"),
        (
            "name: mdf\nenvironments: [dev, prod]\nservices:\n  mail: {environments: [stage]}\n",
            4,
            "unknown environment 'stage'",
        ),
        (
            "name: mdf\nenvironments: [dev, prod]\nsync:\n  pairs: [[prod, int]]\n",
            4,
            "sync.pairs[0]: unknown environment 'int'",
        ),
        (
            "name: mdf\nenvironments: [dev, prod]\nsync:\n  replace: {qa: x}\n",
            4,
            "sync.replace.qa: unknown environment",
        ),
        (
            "name: mdf\nenvironments: [dev, prod]\npromote:\n  type: git\n  dir: code\n  branches: {int: x}\n",
            6,
            "promote.branches.int",
        ),
        (
            "name: mdf\npromote: {type: ftp}\n",
            2,
            "promote.type: 'ftp' is not one of git, rsync, script",
        ),
        (
            "name: mdf\nbackup:\n  databases:\n    - {service: db, type: oracle, name: x}\n",
            4,
            "backup.databases[0].type",
        ),
        (
            "name: mdf\nbackup:\n  databases:\n    - {service: db, type: mariadb}\n",
            4,
            "backup.databases[0].name: required",
        ),
        ("name: mdf\nname: other\n", 2, "name: duplicate key"),
        ("name: mdf\nenvironments: [dev, dev]\n", 2, "duplicate environment"),
        ("name: mdf\nhealth:\n  - {http: 'ftp://x'}\n", 3, "health[0].http"),
        ("name: mdf\nbackup: {schedule: '25:00'}\n", 2, "not a valid time"),
        ("name: mdf\noffsite: {target: 'mnt/copies'}\n", 2, "offsite.target"),
        ("name: mdf\ndelegate: {cli: ./x, commands: [deploy]}\n", 2, "delegate.commands[0]"),
        ("name: mdf\nbackup:\n  retention:\n    keep_daily: true\n", 4, "expected an integer"),
        ("name: mdf\nbackup:\n  retention:\n    keep_daily: -1\n", 4, "must be at least 0"),
        ("name: mdf\ncompose: [a]\n", 2, "compose: expected a mapping"),
        ("name: [mdf]\n", 1, "name: expected a single value"),
    ],
)
def test_errors_name_line_and_field(text: str, line: int, fragment: str) -> None:
    message = error_of(text)
    assert message.startswith(f"/srv/data/x/project.yaml:{line}: "), message
    assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the file is empty"),
        ("name: [unclosed\n", "invalid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("description: no name\n", "name: required"),
        ("name: mdf\n\t bad: tab\n", "invalid YAML"),
    ],
)
def test_malformed_files(text: str, fragment: str) -> None:
    assert fragment in error_of(text)


def test_duplicate_project_names_across_the_root() -> None:
    sources = [
        DescriptorSource("/r/a/project.yaml", "name: shop\n"),
        DescriptorSource("/r/b/project.yaml", "name: shop\n"),
    ]
    with pytest.raises(
        DescriptorError,
        match=r"/r/b/project.yaml: name: project 'shop' is also defined in /r/a/project.yaml",
    ):
        load_projects(sources)


def test_expand_replaces_env_and_project_only() -> None:
    assert expand("{env}-{project}-{other}", "dev", "mdf") == "dev-mdf-{other}"
    assert expand("{env}/x", "prod") == "prod/x"


def test_check_env() -> None:
    project = parse("name: mdf\nenvironments: [dev, prod]\n")
    assert project.check_env("dev") == "dev"
    with pytest.raises(NotFoundError, match="has no environment 'int'"):
        project.check_env("int")


def test_an_unquoted_schedule_time_stays_a_time() -> None:
    project = parse("name: mdf\nbackup:\n  schedule: 03:30\n")
    assert project.backup is not None and project.backup.schedule == "03:30"
    assert "not a valid time" in error_of("name: mdf\nbackup:\n  schedule: 24:30\n")


def test_an_unknown_probe_service_names_the_probe_line() -> None:
    text = "name: mdf\nservices:\n  web: {}\nhealth:\n  - {service: web, http: 'http://x/'}\n  - {service: wbe, http: 'http://x/'}\n"
    assert error_of(text).startswith(
        "/srv/data/x/project.yaml:6: health[1].service: unknown service 'wbe'"
    )
