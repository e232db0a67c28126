"""Settings checked before anything changes (#18): with a broken ``opskit.yaml`` every
command that changes something refuses before its first change, with one ``[error]
file:line: field: …`` line. The first tests need no engine (the refusal comes first); those marked ``docker`` show
the data of running envs untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import assert_one_error_line, opskit
from test_backup import database_state, tree_state, volume_path
from testroot import BACKUPS, ns

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
    pytest.param(["backups", "migrate", "legacy", "prod"], id="backups-migrate"),
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


def fingerprint(root: Path) -> dict[str, tuple[str, int]]:
    """Every file and folder under *root* (data, code, archives, the audit log)."""
    return tree_state(root)


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


# -- with running envs: the data stays as it was ------------------------------------------


def mdf_state(root: Path) -> object:
    """The fingerprint of mdf dev: every table's rows hashed, the uploads, the media volume,
    the archives, and when each container started."""
    from test_drill import started_at

    return (
        database_state(str(root), "mdf"),
        tree_state(root / "mdf" / "dev" / "wp-content"),
        tree_state(volume_path(ns("mdf-dev_media"))),
        tree_state(BACKUPS / "mdf"),
        started_at(str(root), "mdf", "dev"),
    )


def history(root: str) -> object:
    return opskit("history", "mdf", "--json", "--root", root).json()


@pytest.mark.docker
def test_restore_sync_and_rebuild_refuse_before_touching_the_data(examples_up: Path) -> None:
    root = str(examples_up)
    assert opskit("backup", "mdf", "dev", "--root", root, timeout=300).returncode == 0
    before = (mdf_state(examples_up), history(root))
    settings = examples_up / "opskit.yaml"
    original = settings.read_text()  # the copy's own (its shared offsite target) comes back
    commands = [
        ["restore", "mdf", "dev", "--latest", "--yes"],
        ["sync", "mdf", "--from", "prod", "--to", "dev", "--yes"],
        ["rebuild", "mdf", "dev", "--yes"],
    ]
    try:
        for text, error in (BROKEN[0].values, TYPO, BROKEN[3].values):
            settings.write_text(str(text))
            for command in commands:
                run = opskit("--root", root, *command, timeout=300)
                assert_one_error_line(run, f"[error] {settings}{error}")
    finally:
        settings.write_text(original)
    assert (mdf_state(examples_up), history(root)) == before  # and nothing in the audit log


@pytest.mark.docker
def test_promote_refuses_before_moving_the_code(tmp_path: Path) -> None:
    from gatestack import build_gate
    from wpstack import git

    project = build_gate(tmp_path)
    root = str(tmp_path)
    dev_tree, int_tree = project / "dev" / "code", project / "int" / "code"
    (dev_tree / "site" / "index.html").write_text("version 2\n")
    git("commit", "--quiet", "-am", "version 2", cwd=dev_tree)
    git("push", "--quiet", "origin", "develop", cwd=dev_tree)
    before = (git("rev-parse", "HEAD", cwd=int_tree), tree_state(int_tree))
    settings = tmp_path / "opskit.yaml"
    try:
        for text, error in (BROKEN[0].values, TYPO, BROKEN[3].values):
            settings.write_text(str(text))
            run = opskit("promote", "gate", "--from", "dev", "--to", "int", "--yes", "--root", root)
            assert_one_error_line(run, f"[error] {settings}{error}")
            assert (git("rev-parse", "HEAD", cwd=int_tree), tree_state(int_tree)) == before
    finally:
        settings.unlink(missing_ok=True)
        opskit("destroy", "gate", "int", "--yes", "--root", root)
