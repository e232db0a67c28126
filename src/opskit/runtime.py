"""The runtime the engines work on: one root on one host, with its plugins, its projects
and settings, its event bus, and its stacks.

The concerns live apart: the project registry here, what runs and its lifecycle in
:mod:`opskit.stacks`, the health gate in :mod:`opskit.gate`. :class:`opskit.Ops` is the
composition root: it builds the runtime, subscribes the audit log and the notifier to its
events, and hands the runtime to the operations; engines never reach back into the facade.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import attrs

from opskit.contracts import Meter as Meter  # re-exported
from opskit.descriptor import Project, load_projects
from opskit.errors import DescriptorError, NotFoundError
from opskit.jobs import EventBus
from opskit.output import warning
from opskit.stacks import LIFECYCLE, SHELL, ComposeState, Stacks, check_service

if TYPE_CHECKING:
    from opskit.host import Host
    from opskit.plugins import Plugins
    from opskit.settings import Settings

T = TypeVar("T")

__all__ = [
    "LIFECYCLE",
    "SHELL",
    "ComposeState",
    "Meter",
    "Runtime",
    "check_service",
]


class Runtime:
    """One root on one host, with its plugins: the projects and settings under the root,
    the event bus its jobs report to, and its :class:`~opskit.stacks.Stacks`."""

    def __init__(self, root: str, host: Host, plugins: Plugins) -> None:
        self.root = root
        self.host = host
        self.plugins = plugins
        self.events = EventBus(plugins)
        self.stacks = Stacks(host, plugins, self)
        self._projects: list[Project] | None = None
        self._settings: Settings | None = None
        self._memo: dict[tuple[str, ...], object] = {}
        self.scheduled = False  # the jobs run from a timer (see opskit.notify)
        # One host of a fleet (opskit.fleet): its inventory name in the watch's alerts, and
        # where on this machine the watch keeps that host's states (one folder per host)
        self.label: str | None = None
        self.watch_state_dir: str | None = None

    def settings(self) -> Settings:
        """The root's server-wide settings (``opskit.yaml``; the defaults without one)."""
        if self._settings is None:
            from opskit.settings import load_settings

            self._settings = load_settings(self.host, self.root)
        return self._settings

    def check_settings(self) -> None:
        """Load and validate what a change depends on, ``opskit.yaml`` and every
        descriptor, before the change begins: a fault refuses the command with nothing
        changed (one ``[error] file:line: field: …`` line), instead of failing halfway, at
        the health gate or in the rollback. Every command that changes something calls it
        first."""
        self.projects()
        self.settings()

    def projects(self) -> list[Project]:
        """Every project under the root, validated, each with its handler set."""
        if self._projects is None:
            loaded = load_projects(self.plugins.discover_projects(self.root, self.host))
            if not loaded and not self.host.exists(self.root):
                where = "" if self.host.name == "local" else f" on {self.host.name}"
                raise NotFoundError(
                    f"projects root {self.root} does not exist{where} (use --root or OPSKIT_ROOT)"
                )
            self._projects = [self._handled(project) for project in loaded]
        return self._projects

    def _handled(self, project: Project) -> Project:
        handler = self.plugins.project_handler(project) or "generic"
        if handler != project.plugin:
            warning(
                f"project {project.name}: plugin {project.plugin!r} is not installed; "
                f"handled by {handler!r}"
            )
        return attrs.evolve(project, handler=handler)

    def readable_projects(self) -> tuple[list[Project], list[DescriptorError]]:
        """The projects whose descriptors read, and the error of each one that does not
        (a second descriptor of a project's name among them), for a page that shows both;
        commands refuse the root with its first error instead (:meth:`projects`). This
        runtime keeps the readable ones as its projects."""
        readable: dict[str, Project] = {}
        errors = []
        for source in self.plugins.discover_projects(self.root, self.host):
            try:
                (project,) = load_projects([source])
            except DescriptorError as exc:
                errors.append(exc)
                continue
            if project.name in readable:
                other = readable[project.name].path
                problem = f"project {project.name!r} is also defined in {other}"
                errors.append(DescriptorError(source.path, None, "name", problem))
                continue
            readable[project.name] = project
        self._projects = [self._handled(readable[name]) for name in sorted(readable)]
        return self._projects, errors

    def memo(self, key: tuple[str, ...], compute: Callable[[], T]) -> T:
        """*compute*'s value, computed once per *key* in this runtime (until
        :meth:`reload`): what a command asks of the host again and again."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]  # type: ignore[return-value]

    def reload(self) -> None:
        """Read the descriptors and ``opskit.yaml`` again on next use (a long-running
        server, after an edit)."""
        self._projects = None
        self._settings = None
        self._memo = {}

    def project(self, name: str) -> Project:
        for project in self.projects():
            if project.name == name:
                return project
        known = ", ".join(p.name for p in self.projects()) or f"none under {self.root}"
        raise NotFoundError(f"unknown project {name!r} (projects: {known})")

    def scope(
        self, project: Project | str | None = None, env: str | None = None
    ) -> list[tuple[Project, str]]:
        """The (project, env) pairs a command acts on: one env, a project's envs, or all.
        *project* is a name to resolve, or a project already resolved."""
        if project is None:
            return [(p, e) for p in self.projects() for e in p.environments]
        found = self.project(project) if isinstance(project, str) else project
        if env is not None:
            return [(found, found.check_env(env))]
        return [(found, e) for e in found.environments]

    def delegates(self, project: Project, command: str) -> bool:
        """Whether the project hands *command* to its own CLI (``delegate:``)."""
        return project.delegate is not None and command in project.delegate.commands
