"""Every hook, implemented by an inline plugin (opskit.testing) and seen to be used by the
core; and the meta-test that no hook is left without such a test."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs

import opskit
from opskit import hookimpl, hookspecs
from opskit.components import BackupContext, Component, DatabaseDump
from opskit.contracts import Candidate, Proposal, SeenContainer, SeenStack
from opskit.descriptor import Database, DescriptorSource, Project, parse_descriptor
from opskit.host import LocalHost
from opskit.promote import GitPromoter, Preview, PromoteContext, Promoter
from opskit.sync import SyncContext
from opskit.testing import plugin_manager
from opskit.transform import Replacer

TESTS = Path(__file__).parent


def test_every_hook_has_a_test_that_implements_it() -> None:
    implemented = set()
    for path in TESTS.glob("test_*.py"):
        implemented |= set(re.findall(r"def (opskit_\w+)\(", path.read_text()))
    hooks = {name for name in vars(hookspecs) if name.startswith("opskit_")}
    assert hooks <= implemented, sorted(hooks - implemented)


class ElsewhereDiscovery:
    """Descriptors kept outside the root, as some servers keep them in /etc."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def opskit_discover_projects(self, root: str, host: Any) -> list[DescriptorSource]:
        path = self.folder / "extra" / "project.yaml"
        return [DescriptorSource(str(path), path.read_text())]


def test_a_discovery_plugin_adds_projects(tmp_path: Path) -> None:
    (tmp_path / "root" / "shop").mkdir(parents=True)
    (tmp_path / "root" / "shop" / "project.yaml").write_text("name: shop\n")
    (tmp_path / "etc" / "extra").mkdir(parents=True)
    (tmp_path / "etc" / "extra" / "project.yaml").write_text("name: extra\n")
    plugins = plugin_manager(ElsewhereDiscovery(tmp_path / "etc"))
    with opskit.Ops(root=str(tmp_path / "root"), host="local", plugins=plugins) as ops:
        assert [p.name for p in ops.projects()] == ["extra", "shop"]


class Loud:
    name = "loud"

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def feed(self, data: bytes) -> bytes:
        return data.upper()

    def finish(self) -> bytes:
        return b""


class LoudSync:
    @hookimpl
    def opskit_sync_transform(self, context: SyncContext, component: Component) -> Loud | None:
        return Loud() if context.project.name == "shop" else None


def project(text: str) -> Project:
    return parse_descriptor(DescriptorSource("/r/shop/project.yaml", text))


def test_a_plugin_chooses_the_sync_transform_and_the_core_answers_last() -> None:
    shop = project("name: shop\nenvironments: [dev, prod]\n")
    other = attrs.evolve(shop, name="other")
    component = DatabaseDump(Database(service="db", type="mariadb", name="wp"))
    plugins = plugin_manager(LoudSync())
    context = SyncContext(LocalHost(), shop, "prod", "dev", (("https://a", "https://b"),))
    transform = plugins.sync_transform(context, component)
    assert isinstance(transform, Loud) and transform.feed(b"x") == b"X"
    fallback = plugins.sync_transform(
        SyncContext(LocalHost(), other, "prod", "dev", (("https://a", "https://b"),)), component
    )
    assert isinstance(fallback, Replacer)


class Frozen(Promoter):
    """A promoter that refuses everything: the release manager's freeze."""

    name = "frozen"

    def preview(self, context: PromoteContext) -> Preview:
        return Preview("a", "b", (), ("x",), "")

    def check(self, context: PromoteContext, preview: Preview) -> None:
        raise opskit.OpskitError("code freeze until Monday")

    def apply(self, context: PromoteContext, preview: Preview) -> None:
        raise AssertionError("never reached")

    def rollback(self, context: PromoteContext, preview: Preview) -> None:
        raise AssertionError("never reached")


class Freeze:
    @hookimpl
    def opskit_promoter(self, project: Project) -> Promoter | None:
        return Frozen() if project.name == "shop" else None


def test_a_plugin_provides_the_promoter_and_the_core_answers_last() -> None:
    text = "environments: [dev, int]\npromote: {type: git, dir: '{env}/code'}\n"
    plugins = plugin_manager(Freeze())
    assert isinstance(plugins.promoter(project(f"name: shop\n{text}")), Frozen)
    assert isinstance(plugins.promoter(project(f"name: blog\n{text}")), GitPromoter)


class Notes:
    """Adds one component of its own to every backup of projects named shop."""

    @hookimpl
    def opskit_backup_components(
        self, project: Project, env: str, context: BackupContext
    ) -> list[Component] | None:
        if project.name != "shop":
            return None
        return [DatabaseDump(Database(service="notes", type="postgres", name="notes"))]


def test_backup_components_of_the_descriptor_come_first_then_plugins() -> None:
    shop = project(
        "name: shop\nbackup: {dir: /b, databases: [{service: db, type: mariadb, name: wp}], "
        "paths: [uploads]}\n"
    )
    plugins = plugin_manager(Notes())
    context = BackupContext(LocalHost(), shop, "dev", ())
    keys = [c.key for c in plugins.backup_components(context)]
    assert keys == ["db-db-wp", "path-uploads", "db-notes-notes"]


class Acme:
    """Recognises its own stack (an acme image) and amends the core's proposal."""

    @hookimpl
    def opskit_discover(self, candidate: Candidate) -> Proposal | None:
        from opskit.discover import propose

        running = [c for stack in candidate.envs.values() for c in stack.containers]
        if not any(c.image.startswith("acme/") for c in running):
            return None
        proposal = propose(candidate)
        proposal.data = {"name": proposal.data.pop("name"), "plugin": "acme", **proposal.data}
        return proposal


def test_a_plugin_recognises_its_stack_and_the_core_proposes_the_others() -> None:
    def candidate(image: str) -> Candidate:
        web = SeenContainer(name="x-web-1", service="web", image=image)
        stack = SeenStack("x", "/r/x", ("/r/x/compose.yaml",), containers=(web,))
        return Candidate(name="x", folder="/r/x", envs={"prod": stack})

    plugins = plugin_manager(Acme())
    mine = plugins.discover(candidate("acme/shop:2"))
    other = plugins.discover(candidate("nginx:1"))
    assert mine is not None and mine.data["plugin"] == "acme"
    assert other is not None and "plugin" not in other.data
    assert other.data["compose"] == {"files": ["compose.yaml"], "project_name": "x"}
