"""The plugin manager: loading plugins and calling hooks.

Callers use :class:`Plugins`, a typed facade; nothing else touches ``pm.hook``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import pluggy

from opskit import hookspecs

if TYPE_CHECKING:
    import click

    from opskit.components import BackupContext, Component
    from opskit.contracts import Candidate, Proposal
    from opskit.descriptor import DescriptorSource, Project
    from opskit.events import Event
    from opskit.health import CheckResult, HealthContext
    from opskit.host import Host
    from opskit.offsite import Repository
    from opskit.promote import Promoter
    from opskit.settings import Settings
    from opskit.sync import SyncContext
    from opskit.transform import Transform

hookimpl = pluggy.HookimplMarker("opskit")

ENTRY_POINT_GROUP = "opskit"

# The core's own behaviour, registered exactly like external plugins.
DEFAULT_PLUGINS = (
    "opskit.defaults.discovery",
    "opskit.defaults.health",
    "opskit.defaults.commands",
    "opskit.defaults.backup",
    "opskit.defaults.sync",
    "opskit.defaults.promote",
    "opskit.defaults.schedule",
    "opskit.defaults.offsite",
    "opskit.defaults.serve",
    "opskit.defaults.backup_schedule",
    "opskit.defaults.init",
)


class PluginInfo(NamedTuple):
    """One registered plugin, as ``opskit plugins`` shows it."""

    name: str
    version: str
    source: str
    hooks: tuple[str, ...]


class EntryPoint(NamedTuple):
    """An ``opskit`` entry point of an installed distribution."""

    name: str
    value: str  # "module" or "module:attribute"
    dist_name: str
    dist_version: str

    def load(self) -> Any:
        module_name, _, attribute = self.value.partition(":")
        target: Any = importlib.import_module(module_name.strip())
        for part in filter(None, attribute.strip().split(".")):
            target = getattr(target, part)
        return target


def entry_points(group: str = ENTRY_POINT_GROUP) -> Iterator[EntryPoint]:
    """The entry points of *group* of the distributions on ``sys.path``.

    This reads ``entry_points.txt`` the way ``importlib.metadata`` does, without importing
    it: on Python 3.11 its import alone (it pulls in the email package) costs about as
    much as the rest of ``opskit --help``. The first distribution of a name on the path wins.
    """
    seen: set[str] = set()
    for directory in sys.path:
        try:
            names = sorted(os.listdir(directory or "."))
        except OSError:
            continue
        for entry in names:
            if not entry.endswith((".dist-info", ".egg-info")):
                continue
            stem = entry.rsplit(".", 1)[0]
            dist_key = stem.split("-", 1)[0].lower().replace("-", "_").replace(".", "_")
            if dist_key in seen:
                continue
            seen.add(dist_key)
            try:
                with open(
                    os.path.join(directory, entry, "entry_points.txt"), encoding="utf-8"
                ) as handle:
                    text = handle.read()
            except (OSError, UnicodeDecodeError):
                continue
            if f"[{group}]" not in text:
                continue
            dist_name, dist_version = _distribution_name(os.path.join(directory, entry), stem)
            for name, value in _ini_section(text, group):
                yield EntryPoint(name, value, dist_name, dist_version)


def _ini_section(text: str, section: str) -> Iterator[tuple[str, str]]:
    """The ``name = value`` lines of one section of an ``entry_points.txt``."""
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            inside = line[1:-1].strip() == section
        elif inside and "=" in line:
            name, _, value = line.partition("=")
            yield name.strip(), value.strip()


def _distribution_name(info_dir: str, stem: str) -> tuple[str, str]:
    """Name and version from METADATA (or PKG-INFO), else from the folder's name."""
    name, _, version = stem.partition("-")
    for filename in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(info_dir, filename), encoding="utf-8") as handle:
                for line in handle:
                    if line.startswith("Name:"):
                        name = line[5:].strip()
                    elif line.startswith("Version:"):
                        version = line[8:].strip()
                    elif not line.strip():
                        break
            break
        except OSError:
            continue
    return name, version


def _warn(message: str) -> None:
    from opskit.output import warning

    warning(message)


def _selected_plugins(env: Mapping[str, str]) -> set[str] | None:
    """Which external plugins ``OPSKIT_PLUGINS`` allows; None means all."""
    value = env.get("OPSKIT_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


class Plugins:
    """A typed facade over the pluggy plugin manager."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self._sources: dict[str, tuple[str, str]] = {}

    # -- loading ----------------------------------------------------------

    def register(
        self, plugin: object, name: str, source: str = "builtin", version: str = ""
    ) -> bool:
        """Register one plugin; a plugin with unknown or malformed hooks is skipped."""
        try:
            self.pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self.pm.has_plugin(name) and self.pm.get_plugin(name) is plugin:
                self.pm.unregister(name=name)  # pluggy may have registered part of it
            _warn(f"plugin {name!r} skipped: {exc}")
            return False
        unknown = [
            caller.name for caller in self.pm.get_hookcallers(plugin) or [] if caller.spec is None
        ]
        if unknown:
            self.pm.unregister(plugin)
            _warn(f"plugin {name!r} skipped: unknown hook {', '.join(sorted(unknown))}")
            return False
        self._sources[name] = (source, version)
        return True

    def load_defaults(self) -> None:
        from opskit import __version__

        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            self.register(module, name=module_name, source="builtin", version=__version__)

    def load_entry_points(self, env: Mapping[str, str]) -> None:
        """Load the ``opskit`` entry points one by one; a broken one is reported and skipped."""
        selected = _selected_plugins(env)
        for entry_point in entry_points():
            if selected is not None and entry_point.name not in selected:
                continue
            if self.pm.has_plugin(entry_point.name):
                continue
            try:
                plugin = entry_point.load()
            except Exception as exc:  # any import-time failure of third-party code
                _warn(f"plugin {entry_point.name!r} failed to load and is skipped: {exc!r}")
                continue
            self.register(
                plugin,
                name=entry_point.name,
                source=entry_point.dist_name,
                version=entry_point.dist_version,
            )

    # -- introspection ----------------------------------------------------

    def describe(self) -> list[PluginInfo]:
        """Every registered plugin with the hooks it implements."""
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            source, version = self._sources.get(name, ("builtin", ""))
            infos.append(PluginInfo(name=name, version=version, source=source, hooks=tuple(hooks)))
        return infos

    # -- hook calls -------------------------------------------------------

    def discover_projects(self, root: str, host: Host) -> list[DescriptorSource]:
        results = self.pm.hook.opskit_discover_projects(root=root, host=host)
        return [source for result in results if result for source in result]

    def discover(self, candidate: Candidate) -> Proposal | None:
        result: Proposal | None = self.pm.hook.opskit_discover(candidate=candidate)
        return result

    def project_handler(self, project: Project) -> str | None:
        result: str | None = self.pm.hook.opskit_project_handler(project=project)
        return result

    def health_checks(self, context: HealthContext) -> list[CheckResult]:
        """Every plugin's checks. A plugin whose checks raise gives one failing check per
        env naming it: the other plugins' checks are still taken (the watch alerts on it)."""
        from opskit.contracts import CheckResult

        found: list[CheckResult] = []
        # pluggy calls the newest registration first; keep that order
        for impl in reversed(self.pm.hook.opskit_health_checks.get_hookimpls()):
            function: Any = impl.function  # pluggy types a hook's result as object
            try:
                result: list[CheckResult] | None = function(
                    *({"context": context}[a] for a in impl.argnames)
                )
            except Exception as exc:  # any fault of a plugin is a failing check
                found += [
                    CheckResult(
                        context.project.name,
                        env,
                        f"checks of plugin {impl.plugin_name}",
                        False,
                        f"could not be taken: {exc}",
                    )
                    for env in context.environments
                ]
                continue
            found += result or []
        return found

    def backup_components(self, context: BackupContext) -> list[Component]:
        results = self.pm.hook.opskit_backup_components(
            project=context.project, env=context.env, context=context
        )
        unique: dict[str, Component] = {}
        for component in (c for result in reversed(results) if result for c in result):
            unique.setdefault(component.key, component)
        return list(unique.values())

    def register_commands(self, cli: click.Group) -> None:
        self.pm.hook.opskit_register_commands(cli=cli)

    def sync_transform(self, context: SyncContext, component: Component) -> Transform | None:
        result: Transform | None = self.pm.hook.opskit_sync_transform(
            context=context, component=component
        )
        return result

    def promoter(self, project: Project) -> Promoter | None:
        result: Promoter | None = self.pm.hook.opskit_promoter(project=project)
        return result

    def offsite_target(self, target: str, settings: Settings) -> Repository | None:
        result: Repository | None = self.pm.hook.opskit_offsite_target(
            target=target, settings=settings
        )
        return result

    def event(self, event: Event) -> None:
        """Give *event* to every ``opskit_event``, one by one: one that raises is
        reported and the others still get it."""
        for implementation in reversed(self.pm.hook.opskit_event.get_hookimpls()):
            try:
                implementation.function(event=event)
            except Exception as exc:  # a listener never breaks a job
                _warn(f"plugin {implementation.plugin_name!r} failed on {event.name}: {exc!r}")


def create_plugins(
    env: Mapping[str, str] | None = None,
    *,
    entry_points: bool = True,
    extra: list[tuple[str, Any]] | None = None,
) -> Plugins:
    """A fresh plugin manager with the built-in plugins, the entry points and *extra*.

    :param env: the environment to read ``OPSKIT_PLUGINS`` and ``OPSKIT_TRACE`` from.
    :param entry_points: load installed plugins from the ``opskit`` entry-point group.
    :param extra: further ``(name, plugin)`` pairs, e.g. from tests.
    """
    env = os.environ if env is None else env
    pm = pluggy.PluginManager("opskit")
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm)
    if env.get("OPSKIT_TRACE"):
        from opskit.output import trace

        pm.trace.root.setwriter(trace)
        pm.enable_tracing()
    if entry_points:
        plugins.load_entry_points(env)
    for name, plugin in extra or []:
        plugins.register(plugin, name=name, source="extra")
    plugins.load_defaults()
    pm.check_pending()
    return plugins
