"""Settings checked before anything changes (#18): with a broken ``opskit.yaml`` every
command that changes something refuses before its first change, with one ``[error]
file:line: field: …`` line. The unit tier here needs no engine: the refusal comes first;
tests/test_settings_refusals.py shows the data of running envs untouched."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from conftest import assert_one_error_line, opskit

# (opskit.yaml, the start of the one error line after "{root}/opskit.yaml")
TYPO = ("remind_hours: 6\ndisk_max_used_precent: 80\n", ":2: disk_max_used_precent: ")
BROKEN = [
    pytest.param("", ":1: the file is empty", id="empty"),
    pytest.param("# only a comment\n", ":1: the file is empty", id="only a comment"),
    pytest.param(*TYPO, id="typo key"),
    pytest.param(
        "notify:\n  urls: [ntfy://alerts\nremind_hours: 6\n", ":3: invalid YAML", id="bad YAML"
    ),
    pytest.param("timers:\n  unit_dir: relative\n", ":2: timers.unit_dir: ", id="bad value"),
]

# Each command that changes something, as an operator types it.
COMMANDS = [
    pytest.param(["restore", "legacy", "prod", "--latest", "--yes"], id="restore"),
    pytest.param(["sync", "legacy", "--from", "prod", "--to", "dev", "--yes"], id="sync"),
    pytest.param(["sync", "legacy", "--from", "prod", "--to", "dev", "--dry-run"], id="sync-dry"),
    pytest.param(["promote", "legacy", "--from", "dev", "--to", "prod", "--yes"], id="promote"),
    pytest.param(["rebuild", "legacy", "prod", "--yes"], id="rebuild"),
    pytest.param(["backup", "legacy", "prod"], id="backup"),
    pytest.param(["prune", "legacy", "prod"], id="prune"),
    pytest.param(["start", "legacy", "dev"], id="start"),
    pytest.param(["destroy", "legacy", "dev", "--yes"], id="destroy"),
]

LEGACY = """\
name: legacy
environments: [dev, prod]
backup: {{dir: {backups}, paths: ["{{env}}/data"]}}
sync: {{pairs: [[prod, dev]]}}
promote: {{type: rsync, dir: "{{env}}/code"}}
"""


def fingerprint(root: Path) -> dict[str, str]:
    """Every file under *root* (data, code, archives, the audit log) with its sha256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def legacy(tmp_path: Path) -> Path:
    folder = tmp_path / "legacy"
    for env in ("dev", "prod"):
        (folder / env / "data").mkdir(parents=True)
        (folder / env / "data" / "file.txt").write_text(f"{env} data\n")
        (folder / env / "code").mkdir()
        (folder / env / "code" / "app.txt").write_text(f"{env} code\n")
    (folder / "project.yaml").write_text(LEGACY.format(backups=tmp_path / "backups"))
    return tmp_path


def refused(root: Path, command: list[str], settings: str, error: str) -> None:
    (root / "opskit.yaml").write_text(settings)
    before = fingerprint(root)
    run = opskit("--root", str(root), *command)
    assert_one_error_line(run, f"[error] {root}/opskit.yaml{error}")
    assert fingerprint(root) == before
    assert not (root / "backups").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_that_changes_refuses_a_broken_opskit_yaml(
    legacy: Path, command: list[str]
) -> None:
    refused(legacy, command, *TYPO)


@pytest.mark.parametrize(("settings", "error"), BROKEN)
def test_each_fault_of_opskit_yaml_is_one_error_line(
    legacy: Path, settings: str, error: str
) -> None:
    refused(legacy, ["restore", "legacy", "prod", "--latest", "--yes"], settings, error)


def test_a_broken_descriptor_of_another_project_refuses_too(legacy: Path) -> None:
    (legacy / "other").mkdir()
    (legacy / "other" / "project.yaml").write_text("name: other\nenvironments: [dev]\nbackp: {}\n")
    before = fingerprint(legacy)
    run = opskit("--root", str(legacy), "restore", "legacy", "prod", "--latest", "--yes")
    assert_one_error_line(run, f"[error] {legacy}/other/project.yaml:3: backp: ")
    assert fingerprint(legacy) == before
