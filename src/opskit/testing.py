"""Helpers for the tests of opskit plugins (and of opskit itself).

::

    from opskit.testing import EventRecorder, plugin_manager

    def test_my_plugin_sees_backups(tmp_path):
        recorder = EventRecorder()
        plugins = plugin_manager(my_plugin, recorder)
        with opskit.Ops(root=str(tmp_path), plugins=plugins) as ops:
            ops.backup("shop", "prod")
        assert recorder.results() == ["ok"]

Each call makes a fresh plugin manager, so tests never share plugin state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opskit.events import Event, JobFinished, JobStarted
from opskit.plugins import Plugins, create_plugins, hookimpl

__all__ = ["EventRecorder", "plugin_manager", "register"]


def plugin_manager(
    *plugins: object, installed: bool = False, environ: Mapping[str, str] | None = None
) -> Plugins:
    """A fresh plugin manager: the core's own plugins, *plugins* (modules, classes or
    instances implementing ``opskit_…`` hooks), and with *installed* the plugins installed
    through the ``opskit`` entry points (``OPSKIT_PLUGINS`` in *environ* chooses)."""
    manager = create_plugins(environ or {}, entry_points=installed)
    for plugin in plugins:
        register(manager, plugin)
    return manager


def register(manager: Plugins, plugin: object, name: str | None = None) -> None:
    """Register one inline plugin; raise when pluggy or opskit rejects its hooks."""
    name = name or getattr(plugin, "__name__", None) or f"{type(plugin).__name__}-{id(plugin)}"
    if not manager.register(plugin, name=name, source="test"):
        raise ValueError(f"plugin {name!r} was rejected (see the warning above)")


class EventRecorder:
    """A plugin that keeps every event it is given, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    @hookimpl
    def opskit_event(self, event: Event) -> None:
        self.events.append(event)

    def of(self, event_type: type[Event]) -> list[Any]:
        """The events of one type (e.g. ``recorder.of(JobFinished)``)."""
        return [event for event in self.events if isinstance(event, event_type)]

    def jobs(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """``(kind, project, envs)`` of each job started."""
        return [(e.kind, e.project, e.envs) for e in self.of(JobStarted)]

    def results(self) -> list[str]:
        """The result of each job that finished, in order."""
        return [event.result for event in self.of(JobFinished)]

    def clear(self) -> None:
        self.events.clear()
