"""The CLI contract without Docker: exit codes, [error] lines, prompts, colour, JSON."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import assert_one_error_line, opskit
from testroot import EXAMPLES

ROOT = str(EXAMPLES)


def test_version() -> None:
    run = opskit("--version")
    assert run.returncode == 0
    assert run.stdout.strip().endswith("0.1.0")


def test_plugins_json_lists_the_three_plugins_with_their_hooks() -> None:
    data = opskit("plugins", "--json").json()
    by_name = {p["name"]: p for p in data}  # type: ignore[union-attr]
    assert {"generic", "mdf", "seriousletter"} <= set(by_name)
    assert by_name["generic"]["hooks"] == ["opskit_project_handler"]
    assert by_name["mdf"]["source"] == "opskit-mdf"
    assert "opskit_health_checks" in by_name["seriousletter"]["hooks"]


def test_projects_of_the_example_root() -> None:
    data = opskit("projects", "--json", "--root", ROOT).json()
    assert [(p["name"], p["handler"], p["environments"]) for p in data] == [  # type: ignore[union-attr]
        ("mdf", "mdf", ["dev", "prod"]),
        ("seriousletter", "seriousletter", ["dev", "prod"]),
        ("shop", "generic", ["dev", "prod"]),
        ("webstack", "generic", ["dev", "prod"]),
    ]


def test_root_from_the_environment_and_global_options_before_the_command() -> None:
    assert len(opskit("projects", "--json", env={"OPSKIT_ROOT": ROOT}).json()) == 4  # type: ignore[arg-type]
    assert len(opskit("--json", "--root", ROOT, "projects").json()) == 4  # type: ignore[arg-type]


def test_plain_text_when_not_a_terminal_has_no_ansi_codes() -> None:
    run = opskit("projects", "--root", ROOT)
    assert run.returncode == 0
    assert "\x1b" not in run.stdout
    assert run.stdout.splitlines()[0].split() == [
        "PROJECT",
        "ENVIRONMENTS",
        "PLUGIN",
        "DESCRIPTION",
    ]


def test_bad_descriptor_is_one_error_line(root_with) -> None:  # type: ignore[no-untyped-def]
    root = root_with({"mdf": "name: mdf\nbackup:\n  retention:\n    keep_daily: seven\n"})
    run = opskit("projects", "--root", str(root))
    assert_one_error_line(
        run, f"{root}/mdf/project.yaml:4: backup.retention.keep_daily: expected an integer"
    )


def test_duplicate_project_names_are_an_error(root_with) -> None:  # type: ignore[no-untyped-def]
    root = root_with({"a": "name: shop\n", "b": "name: shop\n"})
    assert_one_error_line(opskit("projects", "--root", str(root)), "also defined in")


def test_unknown_project_and_environment() -> None:
    assert_one_error_line(
        opskit("status", "nope", "--root", ROOT),
        "unknown project 'nope'",
        "mdf, seriousletter, shop, webstack",
    )
    assert_one_error_line(opskit("start", "mdf", "int", "--root", ROOT), "has no environment 'int'")


def test_missing_root() -> None:
    assert_one_error_line(
        opskit("status", "--root", "/nonexistent/root"),
        "projects root /nonexistent/root does not exist",
    )


def test_stopped_docker_engine() -> None:
    run = opskit("status", "--root", ROOT, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert_one_error_line(run, "cannot reach the Docker engine (local)")


def test_unreachable_ssh_host() -> None:
    run = opskit("status", "--root", ROOT, "--host", "ssh://root@127.0.0.1:1")
    assert_one_error_line(run, "cannot connect to ssh://root@127.0.0.1:1")


def test_bad_host_url() -> None:
    assert_one_error_line(opskit("status", "--host", "ftp://x"), "bad host 'ftp://x'")


def test_usage_errors_exit_1_not_2() -> None:
    assert_one_error_line(opskit("start", "mdf", "--root", ROOT), "Missing argument 'ENV'")
    assert_one_error_line(opskit("frobnicate"), "No such command 'frobnicate'")


# Commands that change containers first ask the engine which compose names are in use
# (collisions), so these run on the tests' own copy of the examples, beside anything.


@pytest.mark.docker
def test_destroy_without_yes_on_a_non_terminal_stdin(example_copy) -> None:  # type: ignore[no-untyped-def]
    run = opskit("destroy", "mdf", "dev", "--root", str(example_copy[0]))
    assert_one_error_line(run, "--yes", "stdin is not a terminal")


@pytest.mark.docker
def test_dry_run_lists_compose_commands_and_runs_nothing(example_copy) -> None:  # type: ignore[no-untyped-def]
    root = str(example_copy[0])
    run = opskit("destroy", "mdf", "prod", "--dry-run", "--json", "--root", root)
    assert run.returncode == 0, run.stderr
    data = run.json()
    assert data["action"] == "destroy" and data["dry_run"] is True  # type: ignore[index]
    commands = data["commands"]  # type: ignore[index]
    assert len(commands) == 2  # the main stack and the mail stack
    assert commands[0][-2:] == ["down", "--remove-orphans"]
    assert f"{root}/mdf/prod/docker-compose.yml" in commands[0]
    assert f"{root}/mdf/prod/.env.prod" in commands[0]
    dev = opskit("start", "mdf", "dev", "--dry-run", "--json", "--root", root).json()
    assert len(dev["commands"]) == 1  # type: ignore[index]  # dev has no mail stack


def test_build_refuses_a_service() -> None:
    assert_one_error_line(
        opskit("build", "mdf", "dev", "web", "--root", ROOT), "unexpected extra argument"
    )


# -- on a terminal -----------------------------------------------------------------


def spawn_on_terminal(
    args: list[str], env: dict[str, str] | None = None, start_new_session: bool = False
) -> tuple[int, subprocess.Popen[bytes]]:
    """Start opskit with stdin, stdout and stderr on a new pseudo-terminal; returns the
    terminal's main side (to read and type) and the process."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "opskit", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        start_new_session=start_new_session,
    )
    os.close(child)
    return main, process


def run_on_terminal(
    args: list[str],
    answer: bytes | None,
    env: dict[str, str] | None = None,
    timeout: float = 90,  # generous: a loaded CI machine starts Python slowly
    interrupt: bool = False,
    prompt: bytes = b"[y/N]",
) -> tuple[int, str]:
    """Run opskit with stdin, stdout and stderr on a pseudo-terminal; type *answer* at the prompt
    (or, with *interrupt*, press Ctrl-C there: SIGINT, as the terminal would send)."""
    main, process = spawn_on_terminal(args, env={**os.environ, **(env or {})})
    output = b""
    deadline = time.monotonic() + timeout
    answered = answer is None
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if not answered and prompt in output:
            if interrupt:
                time.sleep(0.2)  # let it reach the read of the answer, as a person would
                process.send_signal(signal.SIGINT)
            else:
                os.write(main, answer)  # type: ignore[arg-type]
            answered = True
        if process.poll() is not None and not ready:
            break
    code = process.wait(timeout=10)
    os.close(main)
    return code, output.decode(errors="replace")


def run_on_terminal_script(
    args: list[str], lines: list[bytes], timeout: float = 30
) -> tuple[int, str]:
    """Run opskit on a pseudo-terminal as a session leader (so it owns the terminal) and type *lines*."""
    main, process = spawn_on_terminal(args, start_new_session=True)
    output = b""
    deadline = time.monotonic() + timeout
    pending = list(lines)
    last_write = time.monotonic()
    while time.monotonic() < deadline and process.poll() is None:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                output += os.read(main, 4096)
            except OSError:
                break
        if pending and time.monotonic() - last_write > 1.5:
            os.write(main, pending.pop(0))
            last_write = time.monotonic()
    code = process.wait(timeout=10)
    try:
        while select.select([main], [], [], 0.2)[0]:
            output += os.read(main, 4096)
    except OSError:
        pass
    os.close(main)
    return code, output.decode(errors="replace")


@pytest.mark.docker
def test_declined_confirmation_exits_2(example_copy) -> None:  # type: ignore[no-untyped-def]
    root = str(example_copy[0])
    code, output = run_on_terminal(["destroy", "mdf", "dev", "--root", root], b"n\n")
    assert code == 2, output
    assert "[error] cancelled" in output


@pytest.mark.docker
def test_ctrl_c_at_a_prompt_exits_2(example_copy) -> None:  # type: ignore[no-untyped-def]
    root = str(example_copy[0])
    code, output = run_on_terminal(["destroy", "mdf", "dev", "--root", root], b"", interrupt=True)
    assert code == 2, output
    assert "Traceback" not in output


def test_terminal_output_is_coloured_unless_no_color() -> None:
    code, coloured = run_on_terminal(
        ["projects", "--root", ROOT], None, env={"TERM": "xterm-256color"}
    )
    assert code == 0 and "\x1b[" in coloured
    code, plain = run_on_terminal(
        ["projects", "--root", ROOT], None, env={"NO_COLOR": "1", "TERM": "xterm-256color"}
    )
    assert code == 0 and "\x1b" not in plain
    assert "mdf" in plain


def test_help_imports_no_heavy_modules() -> None:
    code = "import sys; from opskit.cli import run; run(['--help']); print(sorted(m for m in ('docker','fabric','paramiko','rich','yaml') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_python_api_without_docker() -> None:
    import opskit

    with opskit.Ops(root=ROOT) as ops:
        assert [p.name for p in ops.projects()] == ["mdf", "seriousletter", "shop", "webstack"]
        assert [(p.name, e) for p, e in ops.scope("mdf")] == [("mdf", "dev"), ("mdf", "prod")]
        with pytest.raises(opskit.OpskitError, match="unknown project"):
            ops.project("nope")
    assert json.loads(json.dumps(opskit.__all__))
    assert Path(opskit.__file__).name == "__init__.py"


def test_a_delegated_backup_runs_the_projects_own_cli(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "legacy"
    (folder / "dev" / "data").mkdir(parents=True)
    (folder / "dev" / "data" / "file.txt").write_text("legacy data\n")
    cli = folder / "cli.sh"
    shutil.copy(Path(__file__).parent.parent / "docs" / "examples" / "delegate-cli.sh", cli)
    cli.chmod(0o755)
    (folder / "project.yaml").write_text(
        "name: legacy\nenvironments: [dev, int, prod]\ndelegate: {cli: ./cli.sh, commands: [backup, restore]}\n"
    )
    run = opskit("backup", "legacy", "dev", "--root", str(tmp_path))
    assert run.returncode == 0, run.stderr
    (path,) = run.stdout.splitlines()
    assert Path(path).is_absolute() and Path(path).is_file()
    assert str(tmp_path) in path  # the delegate saw OPSKIT_ROOT
    # the contract holds through the delegate: no prompt without a terminal
    refused = opskit("restore", "legacy", "dev", "--root", str(tmp_path))
    assert refused.returncode == 1 and "[error]" in refused.stderr


def test_the_python_api_runs_a_delegate_as_the_cli_does(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import shutil

    import opskit
    from opskit.errors import DelegateFailed

    folder = tmp_path / "legacy"
    for env in ("dev", "prod"):
        (folder / env / "data").mkdir(parents=True)
        (folder / env / "data" / "file.txt").write_text(f"{env} data\n")
    cli = folder / "cli.sh"
    shutil.copy(Path(__file__).parent.parent / "docs" / "examples" / "delegate-cli.sh", cli)
    cli.chmod(0o755)
    (folder / "project.yaml").write_text(
        "name: legacy\nenvironments: [dev, int, prod]\n"
        "delegate: {cli: ./cli.sh, commands: [backup, sync]}\n"
    )
    with opskit.Ops(root=str(tmp_path), host="local") as ops:
        assert ops.backup("legacy", "dev") == []  # the delegate's archives are its own
        (path,) = capfd.readouterr().out.splitlines()
        assert Path(path).is_file() and path.startswith(
            str(tmp_path / "backups" / "legacy" / "dev")
        )
        report = ops.sync("legacy", "prod", "dev")
        assert report.delegated and not report.dry_run
        assert "sync legacy from prod to dev: done" in capfd.readouterr().out
        with pytest.raises(DelegateFailed) as failed:
            ops.sync("legacy", "dev", "prod")  # a direction the delegate refuses
        assert failed.value.exit_code == 1
        assert "not allowed" in capfd.readouterr().err


SIGNALLED = """\
import os, signal, sys, time
from opskit import hookimpl
from opskit.cli import run
from opskit.testing import plugin_manager

class Slow:
    @hookimpl
    def opskit_register_commands(self, cli):
        @cli.command("slow")
        def slow():
            os.kill(os.getpid(), getattr(signal, sys.argv[1]))
            time.sleep(10)

sys.exit(run(["slow"], plugins=plugin_manager(Slow())))
"""


@pytest.mark.parametrize(
    ("name", "message"),
    [("SIGTERM", "[error] terminated (SIGTERM)"), ("SIGINT", "[error] interrupted")],
)
def test_an_interrupted_command_is_one_error_line_and_exit_2(name: str, message: str) -> None:
    """Not click's "Aborted!"/"cancelled" after an empty line."""
    done = subprocess.run(
        [sys.executable, "-c", SIGNALLED, name], capture_output=True, text=True, timeout=30
    )
    assert (done.returncode, done.stderr) == (2, message + "\n")


def test_every_command_is_a_row_of_the_contracts_command_list_and_every_row_a_command() -> None:
    """docs/cli-contract.md section 2 lists each built-in command (a group's subcommands in
    its row), and no command that is not there."""
    import re

    import click

    from opskit.cli import create_cli
    from opskit.plugins import create_plugins

    cli = create_cli(create_plugins({"OPSKIT_PLUGINS": ""}))
    text = (Path(__file__).parent.parent / "docs" / "cli-contract.md").read_text()
    table = text.split("## 2. Commands")[1].split("\n\n")[1]
    rows = {}
    for line in table.splitlines()[2:]:
        first, rest = line.split("|")[1], "|".join(line.split("|")[2:])
        for name in re.findall(r"`([a-z-]+(?: [a-z-]+)?)`", first):
            rows[name] = rest  # "group sub" when a subcommand has a row of its own
    assert sorted(n for n in rows if " " not in n) == sorted(cli.commands)
    for group, _, sub in (n.partition(" ") for n in rows if " " in n):
        assert sub in getattr(cli.commands[group], "commands", {}), (group, sub)
    for name, command in cli.commands.items():
        if isinstance(command, click.Group):
            for sub, subcommand in command.commands.items():
                if subcommand.hidden or f"{name} {sub}" in rows:
                    continue
                assert f"`{sub}" in rows[name] or f", `{sub}`" in rows[name], (name, sub)
