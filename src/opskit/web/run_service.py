"""The runs as the dashboard sees them: started for a user, listed, one with its events,
and every run's events streamed live (one reader of the store for all open streams)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from opskit.errors import NotFoundError
from opskit.runs import RunStore, start
from opskit.web.streams import frame, next_item

POLL_SECONDS = 0.05


class Broadcaster:
    """One reader of new events for every open stream: it polls the store and hands each
    event to the streams' queues."""

    def __init__(self, store: RunStore) -> None:
        self.store = store
        self.last = store.last_id()
        self.queues: set[asyncio.Queue[Any]] = set()
        self.task: asyncio.Task[None] | None = None

    def subscribe(self) -> asyncio.Queue[Any]:
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self.queues.add(queue)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._poll())
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Any]) -> None:
        self.queues.discard(queue)

    async def _poll(self) -> None:
        while self.queues:
            found = self.store.events(self.last)
            for event in found:
                self.last = event.id
                for queue in self.queues:
                    queue.put_nowait(event)
            if len(found) < 1000:
                await asyncio.sleep(POLL_SECONDS)


class RunService:
    """Runs of one root (and ``--host``), kept for *keep_days* once finished."""

    def __init__(self, store: RunStore, root: str, host: str | None, keep_days: float) -> None:
        self.store = store
        self.root = root
        self.host = host
        self.keep_days = keep_days
        store.reap()
        store.prune(keep_days)
        self.broadcaster = Broadcaster(store)

    def start(self, argv: Sequence[str], user: str) -> dict[str, Any]:
        """Start ``opskit ARGV`` as a run of *user*'s, in a process of its own."""
        self.store.prune(self.keep_days)  # a server that runs for months stays small
        return start(self.store, argv, self.root, user, self.host).as_dict()

    def recent(self, limit: int) -> dict[str, Any]:
        """The newest *limit* runs (those whose process died marked so), and the id of the
        newest event: a stream opened after it misses nothing."""
        self.store.reap()
        return {
            "runs": [r.as_dict() for r in self.store.runs(limit)],
            "last_event": self.store.last_id(),
        }

    def one(self, run_id: str, after: int = 0) -> dict[str, Any]:
        """One run and its stored events after *after*."""
        try:
            found = self.store.get(run_id)
        except KeyError:
            raise NotFoundError(f"no run {run_id}") from None
        events = []
        while batch := self.store.events(after, run_id):
            events += [{"id": e.id, "run": e.run, **e.data} for e in batch]
            after = batch[-1].id
        return {"run": found.as_dict(), "events": events}

    async def stream(self, last: int, stopping: Callable[[], bool]) -> AsyncIterator[str]:
        """Every run's events after id *last*, as server-sent events, until *stopping*."""
        queue = self.broadcaster.subscribe()
        try:
            yield "retry: 1000\n\n"
            # What was stored before the stream opened, then what the broadcaster hands
            # over; the ids say which ones this stream has already delivered.
            while batch := self.store.events(last):
                for event in batch:
                    last = event.id
                    yield frame({"run": event.run, **event.data}, event.id)
            while not stopping():
                event = await next_item(queue, stopping)
                if event is None:
                    yield ": keepalive\n\n"
                    continue
                if event.id <= last:
                    continue
                last = event.id
                yield frame({"run": event.run, **event.data}, event.id)
        finally:
            self.broadcaster.unsubscribe(queue)
