"""The hosts one dashboard serves (#25): its own root, and each server of the ``hosts:``
inventory of its ``opskit.yaml``. Every route that reads or acts on an env takes the
request's ``?host=NAME`` here (:meth:`Hosts.get`; none: the dashboard's own root).

A host of the inventory gets its :class:`HostView` on first use, kept until the server
stops: its :class:`~opskit.Ops` over one SSH connection (reused by every request; opened
again when it broke), its ``docker events`` and its overview feed. Runs on it are the
``opskit`` command line with its ``--host URL --root ROOT`` (:attr:`HostView.argv`)."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import attrs

from opskit.errors import NotFoundError

if TYPE_CHECKING:
    from opskit.api import Ops
    from opskit.runs import RunStore
    from opskit.settings import FleetHost, Settings
    from opskit.web.changes import EngineEvents
    from opskit.web.overview import OverviewFeed
    from opskit.web.run_service import Broadcaster

LOCAL = "local"


@attrs.define
class HostView:
    """One host as the dashboard works with it."""

    name: str
    ops: Ops
    engine_events: EngineEvents
    overview: OverviewFeed
    argv: tuple[str, ...] = ()  # a run's options before its command (none: the own root)

    def command(self, argv: Sequence[str]) -> list[str]:
        """The ``opskit`` command line that runs *argv* on this host."""
        return [*self.argv, *argv]


def host_view(
    name: str,
    ops: Ops,
    store: RunStore | None,
    broadcaster: Broadcaster,
    argv: tuple[str, ...] = (),
) -> HostView:
    """A host's view: its ``docker events`` and overview feed over *ops*' connection."""
    from opskit.web.changes import EngineEvents
    from opskit.web.overview import OverviewFeed

    events = EngineEvents(ops.host)
    feed = OverviewFeed(ops.root, ops.host, ops.plugins, store, events, broadcaster)
    return HostView(name, ops, events, feed, argv)


class Hosts:
    """The dashboard's hosts by name, its own first, then the inventory's in its order
    (the entry that is the dashboard's own root is the own host, under its name)."""

    def __init__(
        self, own: Ops, settings: Settings, store: RunStore, broadcaster: Broadcaster
    ) -> None:
        self.settings, self.broadcaster = settings, broadcaster
        url = own.host.name  # local, or the --host URL
        entries = list(settings.inventory.hosts)
        mine = next((h for h in entries if _is(h, url, own.root)), None)
        names = {h.name for h in entries}
        own_name = mine.name if mine else LOCAL if LOCAL not in names else socket.gethostname()
        self.entries = {h.name: h for h in entries if h is not mine}
        self.own = host_view(own_name, own, store, broadcaster)
        self.views: dict[str, HostView] = {own_name: self.own}
        self.lock = threading.Lock()
        if any(h.url.startswith("ssh://") for h in self.entries.values()):
            # imported here, in the server's main thread: imported first in a request's
            # thread, each SSH connection's set-up stalled for minutes (import locks)
            import fabric  # noqa: F401

    @property
    def names(self) -> list[str]:
        return [self.own.name, *self.entries]

    def get(self, name: str | None) -> HostView:
        """The host *name* (None: the own root); :class:`NotFoundError` for a name that is
        not in the inventory."""
        if name is None or name == self.own.name:
            return self.own
        entry = self.entries.get(name)
        if entry is None:
            raise NotFoundError(f"no host {name!r} (hosts: {', '.join(self.names)})")
        with self.lock:
            if name not in self.views:
                self.views[name] = self._open(entry)
            return self.views[name]

    def _open(self, entry: FleetHost) -> HostView:
        from opskit.api import DEFAULT_ROOT, Ops
        from opskit.host import open_host

        # does not connect yet: a host that does not answer is said by the request that
        # needs it, within the inventory's timeout
        host = open_host(entry.url, timeout=self.settings.inventory.timeout)
        ops = Ops(root=entry.root or DEFAULT_ROOT, host=host, plugins=self.own.ops.plugins)
        # the scheduled runs of a server are in its own store, not in this dashboard's
        return host_view(
            entry.name, ops, None, self.broadcaster, ("--host", entry.url, "--root", ops.root)
        )

    def name_of(self, argv: Sequence[str]) -> str:
        """The host a run's command line runs on (see :meth:`HostView.command`)."""
        if len(argv) >= 4 and argv[0] == "--host" and argv[2] == "--root":
            for view in list(self.views.values()):
                if view.argv == tuple(argv[:4]):
                    return view.name
            for entry in self.entries.values():
                if entry.url == argv[1] and _same_root(entry.root, argv[3]):
                    return entry.name
            return str(argv[1])
        return self.own.name

    def close(self) -> None:
        """Close every connection but the own one's (the app's)."""
        with self.lock:
            views = [v for v in self.views.values() if v is not self.own]
        for view in views:
            with contextlib.suppress(Exception):
                view.ops.close()


def _is(entry: FleetHost, url: str, root: str) -> bool:
    return entry.url == url and _same_root(entry.root, root)


def _same_root(configured: str | None, root: str) -> bool:
    from opskit.api import DEFAULT_ROOT

    return os.path.abspath(configured or DEFAULT_ROOT) == os.path.abspath(root)
