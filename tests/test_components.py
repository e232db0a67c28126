"""The Component contract (#20): a drill and a restore ask the component, never its class.

A plugin's own component, contributed through ``opskit_backup_components`` and written
into a real archive on this machine, is drilled by its own ``drill``; a component without
one is reported as not drilled; the built-in trees are drilled in a scratch folder."""

from __future__ import annotations

import io
import posixpath
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

import attrs
import pytest

from opskit import hookimpl
from opskit.archive import Archive, ComponentRecord, write_component
from opskit.backups import database_services
from opskit.components import (
    BackupContext,
    Component,
    DatabaseDump,
    DrillContext,
    NotDrilled,
    PathTree,
)
from opskit.descriptor import Database, DescriptorSource, Project, parse_descriptor
from opskit.drill import Drilled, drill_components
from opskit.errors import OpskitError
from opskit.host import LocalHost
from opskit.testing import plugin_manager

if TYPE_CHECKING:
    from opskit.host import Process


class LineLedger:
    """Counts the lines of a stream, kept in the manifest as ``lines``."""

    def __init__(self) -> None:
        self.lines = 0

    def feed(self, chunk: bytes) -> bytes:
        self.lines += chunk.count(b"\n")
        return chunk

    def finish(self) -> bytes:
        return b""

    def record(self) -> dict[str, Any]:
        return {"lines": self.lines}


@attrs.frozen
class Notebook(Component):
    """A plugin's own kind of component: a text file, drilled by loading it into a
    scratch copy and counting its lines against the manifest."""

    path: str
    seen: list[tuple[str, str, dict[str, Any]]]  # (call, label, manifest details), for the test
    kind: ClassVar[str] = "notebook"
    extension: ClassVar[str] = "txt"

    @property
    def key(self) -> str:
        return "notebook"

    def describe(self) -> dict[str, Any]:
        return {"path": self.path}

    def ledger(self) -> LineLedger:
        return LineLedger()

    def dump(self, context: BackupContext) -> Process:
        return context.host.popen(["cat", "--", self.path], merge_stderr=False)

    def restore(
        self, context: BackupContext, source: IO[bytes], record: ComponentRecord | None = None
    ) -> None:
        Path(self.path).write_bytes(source.read())
        self.seen.append(("restore", "", dict(record.details) if record else {}))

    def drill(self, context: DrillContext, source: IO[bytes], record: ComponentRecord) -> None:
        copy = posixpath.join(context.scratch, self.key)
        context.live.host.run(["mkdir", "-p", "--", context.scratch])
        Path(copy).write_bytes(source.read())
        lines = Path(copy).read_bytes().count(b"\n")
        self.seen.append(("drill", context.label, dict(record.details)))
        if lines != record.details["lines"]:
            raise OpskitError(
                f"{lines} lines loaded, the backup recorded {record.details['lines']}"
            )


@attrs.frozen
class Opaque(Component):
    """A plugin's component with no drill of its own."""

    kind: ClassVar[str] = "opaque"
    extension: ClassVar[str] = "bin"

    @property
    def key(self) -> str:
        return "opaque"

    def describe(self) -> dict[str, Any]:
        return {}

    def dump(self, context: BackupContext) -> Process:
        return context.host.popen(["printf", "\\001\\002"], merge_stderr=False)

    def restore(
        self, context: BackupContext, source: IO[bytes], record: ComponentRecord | None = None
    ) -> None:
        source.read()


class NotebookPlugin:
    def __init__(self, *components: Component) -> None:
        self.components = list(components)

    @hookimpl
    def opskit_backup_components(
        self, project: Project, env: str, context: BackupContext
    ) -> list[Component] | None:
        return self.components if project.name == "notes" else None


def _project(tmp_path: Path, text: str = "") -> Project:
    path = tmp_path / "root" / "notes" / "project.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = f"name: notes\nenvironments: [prod]\nbackup: {{dir: {tmp_path / 'backups'}}}\n"
    path.write_text(descriptor + text)
    return parse_descriptor(DescriptorSource(str(path), path.read_text()))


def _archive(tmp_path: Path, context: BackupContext, components: list[Component]) -> Archive:
    """A real archive of *components* on this machine (what a backup writes, less the rest)."""
    folder = tmp_path / "backups" / "notes" / "prod" / "notes-prod-20261203T120000Z"
    folder.mkdir(parents=True)
    records = [write_component(context.host, c, context, str(folder)) for c in components]
    manifest = {"project": "notes", "environment": "prod", "components": []}
    manifest["components"] = [r.as_dict() for r in records]
    return Archive(str(folder), manifest)


def _drill_context(tmp_path: Path, live: BackupContext, warnings: list[str]) -> DrillContext:
    scratch = str(tmp_path / "backups" / "notes" / "prod" / ".opskit-drill-test")
    return DrillContext(live, scratch, "opskit.drill=test", "opskit-drill-test", warnings.append)


def _components(plugin: NotebookPlugin, live: BackupContext) -> list[Component]:
    return plugin_manager(plugin).backup_components(live)


def test_a_plugins_own_component_is_drilled_by_its_drill(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("one\ntwo\nthree\n")
    seen: list[tuple[str, str, dict[str, Any]]] = []
    plugin = NotebookPlugin(Notebook(str(notes), seen))
    live = BackupContext(LocalHost(), _project(tmp_path), "prod", ())
    archive = _archive(tmp_path, live, _components(plugin, live))
    notes.write_text("changed since the backup\n")  # a drill reads the archive, not the env

    warnings: list[str] = []
    context = _drill_context(tmp_path, live, warnings)
    drilled = drill_components(archive, _components(plugin, live), context, None)

    assert drilled == Drilled(checked=["notebook"])
    # the manifest entry, the ledger's count included
    assert seen == [("drill", "opskit.drill=test", {"path": str(notes), "lines": 3})]
    assert (Path(context.scratch) / "notebook").read_text() == "one\ntwo\nthree\n"
    assert notes.read_text() == "changed since the backup\n"  # the live data untouched
    assert warnings == []


def test_a_fault_found_by_a_plugins_drill_names_the_component(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("one\ntwo\n")
    plugin = NotebookPlugin(Notebook(str(notes), []))
    live = BackupContext(LocalHost(), _project(tmp_path), "prod", ())
    archive = _archive(tmp_path, live, _components(plugin, live))
    (record,) = archive.manifest["components"]
    record["details"]["lines"] = 5  # what the drill checks against

    drilled = drill_components(
        archive, _components(plugin, live), _drill_context(tmp_path, live, []), None
    )

    assert drilled == Drilled(faults=["notebook: 2 lines loaded, the backup recorded 5"])


def test_a_component_without_a_drill_is_reported_not_drilled(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("one\n")
    plugin = NotebookPlugin(Notebook(str(notes), []), Opaque())
    live = BackupContext(LocalHost(), _project(tmp_path), "prod", ())
    archive = _archive(tmp_path, live, _components(plugin, live))
    warnings: list[str] = []

    drilled = drill_components(
        archive, _components(plugin, live), _drill_context(tmp_path, live, warnings), None
    )

    assert drilled == Drilled(checked=["notebook"], not_drilled=["opaque"])
    assert warnings == ["opaque: a opaque is verified, not drilled"]
    with pytest.raises(NotDrilled):
        Opaque().drill(_drill_context(tmp_path, live, []), io.BytesIO(), archive.components[1])


def test_a_component_the_env_no_longer_has_is_a_fault_as_a_restore_refuses_it(
    tmp_path: Path,
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("one\n")
    live = BackupContext(LocalHost(), _project(tmp_path), "prod", ())
    archive = _archive(tmp_path, live, [Notebook(str(notes), []), Opaque()])

    drilled = drill_components(
        archive, [Notebook(str(notes), [])], _drill_context(tmp_path, live, []), None
    )

    assert drilled.checked == ["notebook"]
    assert drilled.faults == [
        "opaque: the env has no such component any more, so a restore would refuse this archive"
    ]


def test_a_path_is_drilled_in_the_scratch_folder_and_counted(tmp_path: Path) -> None:
    uploads = tmp_path / "root" / "notes" / "uploads"
    (uploads / "2026").mkdir(parents=True)
    (uploads / "2026" / "a.jpg").write_bytes(b"x" * 1000)
    (uploads / "b.txt").write_bytes(b"hello")
    live = BackupContext(LocalHost(), _project(tmp_path), "prod", ())
    tree = PathTree(str(uploads), "uploads", "uploads")
    archive = _archive(tmp_path, live, [tree])
    assert archive.components[0].details == {"path": str(uploads), "files": 2, "bytes": 1005}
    (uploads / "b.txt").unlink()  # the live env changes; the archive does not

    context = _drill_context(tmp_path, live, [])
    assert drill_components(archive, [tree], context, None) == Drilled(checked=[tree.key])
    extracted = Path(context.scratch) / tree.key / "uploads"
    assert (extracted / "b.txt").read_bytes() == b"hello"

    archive.manifest["components"][0]["details"]["files"] = 3
    assert drill_components(archive, [tree], context, None).faults == [
        f"{tree.key}: extracted 2 files of 1005 bytes, the backup recorded 3 files of 1005 bytes"
    ]


def test_a_restore_keeps_running_the_services_its_components_restore_through() -> None:
    db = DatabaseDump(Database(service="db", type="mariadb", name="wp"))
    assert db.restores_through == "db"
    assert database_services([db, Opaque(), PathTree("/srv/x", "x")]) == {"db"}


NOTES_COMPOSE = """\
services:
  app:
    init: true
    image: opskit-test/web:1
    command: ["sleep", "3600"]
"""


@pytest.mark.docker
def test_the_drill_and_restore_of_a_plugins_component_through_ops(tmp_path: Path) -> None:
    """Through the public API: the backup writes the plugin's component, the drill calls
    its drill (its result recorded in the archive), a restore gives it its manifest entry."""
    import json

    from click.testing import CliRunner

    import opskit
    from opskit.cli import create_cli
    from testroot import NS

    notes = tmp_path / "notes.txt"
    notes.write_text("one\ntwo\n")
    seen: list[tuple[str, str, dict[str, Any]]] = []
    project = _project(tmp_path, f'compose: {{project_name: "{NS}-notes-{{env}}"}}\n')
    Path(project.folder, "compose.yaml").write_text(NOTES_COMPOSE)
    plugins = plugin_manager(NotebookPlugin(Notebook(str(notes), seen), Opaque()))
    with opskit.Ops(root=str(tmp_path / "root"), host="local", plugins=plugins) as ops:
        ops.start("notes", "prod")  # a restore stops the env and starts it again
        try:
            (archive,) = ops.backup("notes", "prod")
            result = ops.drill("notes", "prod")
            assert (result.ok, result.checked, result.not_drilled) == (
                True, ("notebook",), ("opaque",),
            )  # fmt: skip
            assert [(how, details["lines"]) for how, _, details in seen] == [("drill", 2)]
            seen.clear()
            recorded = json.loads(Path(archive.path, "drill.json").read_text())
            assert recorded["checked"] == ["notebook"] and recorded["not_drilled"] == ["opaque"]
            told = CliRunner().invoke(
                create_cli(plugins), ["drill", "notes", "prod", "--root", str(tmp_path / "root")]
            )
            assert told.exit_code == 0, told.output
            assert f"{archive.name}: drilled ok (notebook checked; opaque not drilled, " in (
                told.stdout
            )
            assert "[warning] opaque: a opaque is verified, not drilled" in told.stderr
            notes.write_text("gone\n")
            ops.restore("notes", "prod", archive.name, safety=False)
            assert notes.read_text() == "one\ntwo\n"
            assert seen[-1] == ("restore", "", archive.components[0].details)
        finally:
            ops.destroy("notes", "prod")


def test_an_extraction_interrupted_after_its_input_leaves_no_tar_running(tmp_path: Path) -> None:
    """Ctrl-C once tar had its whole input: tar must be gone before putting back reuses
    the staging folder (it went on extracting the interrupted archive into it)."""
    import subprocess
    import tarfile

    from opskit.components import swap_in

    (tmp_path / "src" / "data").mkdir(parents=True)
    (tmp_path / "src" / "data" / "a.txt").write_text("a\n")
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w") as tar:
        tar.add(tmp_path / "src" / "data", arcname="data")
    started: list[subprocess.Popen[bytes]] = []

    class Interrupting(LocalHost):
        def popen(self, argv: Any, **options: Any) -> Any:
            process = super().popen(argv, **options)
            if argv[0] == "tar":
                started.append(process.process)
                process.stdout = _Interrupted()
            return process

    class _Interrupted(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise KeyboardInterrupt

    (tmp_path / "live").mkdir()
    with pytest.raises(KeyboardInterrupt):
        swap_in(Interrupting(), io.BytesIO(packed.getvalue()), str(tmp_path / "live" / "data"), "x")
    assert started and started[0].poll() is not None, "tar was left running"
