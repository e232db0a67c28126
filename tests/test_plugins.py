from __future__ import annotations

import inspect
import sys
import textwrap
from pathlib import Path

import pytest

from opskit import hookimpl, hookspecs
from opskit.descriptor import DescriptorSource, parse_descriptor
from opskit.plugins import create_plugins

EXTERNAL = {"generic", "mdf", "seriousletter"}


def names(plugins) -> set[str]:  # type: ignore[no-untyped-def]
    return {info.name for info in plugins.describe()}


def test_installed_plugins_and_builtins_load() -> None:
    plugins = create_plugins({})
    assert names(plugins) >= EXTERNAL
    hooks = {info.name: info.hooks for info in plugins.describe()}
    assert hooks["generic"] == ("opskit_project_handler",)
    # what the descriptor names is the core's own work
    assert "opskit_backup_components" in hooks["opskit.defaults.backup"]
    assert "opskit_health_checks" in hooks["mdf"]
    assert hooks["opskit.defaults.commands"] == ("opskit_register_commands",)


def test_opskit_plugins_chooses_external_plugins() -> None:
    assert names(create_plugins({"OPSKIT_PLUGINS": ""})) & EXTERNAL == set()
    assert names(create_plugins({"OPSKIT_PLUGINS": "mdf"})) & EXTERNAL == {"mdf"}
    # the built-in plugins always load
    assert "opskit.defaults.discovery" in names(create_plugins({"OPSKIT_PLUGINS": ""}))


def test_handler_is_the_named_plugin_and_generic_answers_last() -> None:
    plugins = create_plugins({})
    mdf = parse_descriptor(DescriptorSource("/r/mdf/project.yaml", "name: mdf\nplugin: mdf\n"))
    other = parse_descriptor(
        DescriptorSource("/r/x/project.yaml", "name: x\nplugin: unknown-plugin\n")
    )
    assert plugins.project_handler(mdf) == "mdf"
    assert plugins.project_handler(other) == "generic"


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Install a real distribution (dist-info + module) on sys.path for one test."""

    def install(name: str, module_source: str) -> None:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(module_source))
        info = tmp_path / f"{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[opskit]\n{name} = {name}\n")

    monkeypatch.syspath_prepend(str(tmp_path))
    yield install
    for name in [m for m in sys.modules if m.startswith("thirdparty_")]:
        del sys.modules[name]


def test_a_plugin_that_fails_to_import_is_reported_and_skipped(fake_distribution, capsys) -> None:  # type: ignore[no-untyped-def]
    fake_distribution("thirdparty_broken", "raise RuntimeError('boom')\n")
    plugins = create_plugins({})
    assert "thirdparty_broken" not in names(plugins)
    assert names(plugins) >= EXTERNAL
    err = capsys.readouterr().err
    assert "[warning] plugin 'thirdparty_broken' failed to load" in err and "boom" in err


def test_a_plugin_with_a_misspelled_hook_is_skipped_loudly(fake_distribution, capsys) -> None:  # type: ignore[no-untyped-def]
    fake_distribution(
        "thirdparty_typo",
        """
        from opskit import hookimpl

        @hookimpl
        def opskit_helth_checks(context):
            return []
        """,
    )
    plugins = create_plugins({})
    assert "thirdparty_typo" not in names(plugins)
    assert "unknown hook opskit_helth_checks" in capsys.readouterr().err


def test_a_plugin_asking_for_an_unknown_argument_is_skipped_whole(
    fake_distribution, capsys
) -> None:  # type: ignore[no-untyped-def]
    fake_distribution(
        "thirdparty_badargs",
        """
        from opskit import hookimpl

        @hookimpl
        def opskit_project_handler(project):
            return "badargs"

        @hookimpl
        def opskit_health_checks(context, colour):
            return []
        """,
    )
    plugins = create_plugins({})
    assert "thirdparty_badargs" not in names(plugins)
    assert "[warning] plugin 'thirdparty_badargs' skipped" in capsys.readouterr().err
    project = parse_descriptor(DescriptorSource("/r/x/project.yaml", "name: x\n"))
    assert plugins.project_handler(project) == "generic"


def test_a_third_party_plugin_adds_a_command_and_health_checks(fake_distribution) -> None:  # type: ignore[no-untyped-def]
    fake_distribution(
        "thirdparty_hello",
        """
        import click
        from opskit import hookimpl

        @hookimpl
        def opskit_register_commands(cli):
            @cli.command()
            def hello():
                click.echo("hello from a plugin")
        """,
    )
    from click.testing import CliRunner

    from opskit.cli import create_cli

    plugins = create_plugins({})
    result = CliRunner().invoke(create_cli(plugins), ["hello"])
    assert result.output == "hello from a plugin\n"


def test_extra_plugins_take_part_in_hooks() -> None:
    class Claim:
        @hookimpl
        def opskit_project_handler(self, project):  # type: ignore[no-untyped-def]
            return "claimer" if project.name == "mdf" else None

    plugins = create_plugins({}, extra=[("claimer", Claim())])
    mdf = parse_descriptor(DescriptorSource("/r/mdf/project.yaml", "name: mdf\n"))
    assert plugins.project_handler(mdf) == "claimer"


def test_every_hook_is_named_typed_and_documented() -> None:
    specs = [(name, fn) for name, fn in vars(hookspecs).items() if name.startswith("opskit_")]
    assert len(specs) >= 4
    for name, function in specs:
        doc = inspect.getdoc(function) or ""
        assert "Called" in doc, f"{name}: say who calls it"
        assert ":return:" in doc or name == "opskit_register_commands", (
            f"{name}: say what to return"
        )
        signature = inspect.signature(function)
        assert signature.return_annotation is not inspect.Signature.empty, name
        assert all(
            p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()
        ), name


def test_every_hook_is_documented_in_the_plugin_guide() -> None:
    guide = (Path(__file__).parent.parent / "docs" / "plugins.md").read_text()
    for name in (n for n in vars(hookspecs) if n.startswith("opskit_")):
        assert f"## {name}" in guide, name


def test_trace_prints_hook_calls(capsys) -> None:  # type: ignore[no-untyped-def]
    plugins = create_plugins({"OPSKIT_TRACE": "1", "OPSKIT_PLUGINS": ""})
    mdf = parse_descriptor(DescriptorSource("/r/mdf/project.yaml", "name: mdf\n"))
    plugins.project_handler(mdf)
    assert "[trace]" in capsys.readouterr().err
