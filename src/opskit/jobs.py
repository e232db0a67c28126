"""Jobs: every operation that changes something or takes long runs as one.

A job has an id, a kind, a project and its envs, a start and an end, a result
(:class:`Outcome`: ``ok``, ``failed``, ``rolled back``, ``cancelled``) and an error. While it runs it emits the events
of :mod:`opskit.events` through an :class:`EventBus`: the subscribers registered on the bus
(the CLI's reporter, ``--events``, the audit log) and every plugin's ``opskit_event``. A
subscriber that raises is reported as a warning and never breaks the job.

An operation opens the job (:func:`as_job`) once its checks passed; the engine working for
it gets the job at construction or as its ``job`` parameter, and reports through it.
"""

from __future__ import annotations

import contextlib
import enum
import io
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from opskit import events
from opskit.errors import Cancelled, RolledBack

if TYPE_CHECKING:
    from opskit.plugins import Plugins
    from opskit.runtime import Meter, Runtime

Subscriber = Callable[[events.Event], None]
# Progress events of one meter are at most this often (seconds); the last one always goes.
PROGRESS_INTERVAL = 0.25


class Outcome(enum.StrEnum):
    """How a job ended: the ``result`` of its ``job.finished`` event."""

    OK = "ok"
    FAILED = "failed"
    ROLLED_BACK = "rolled back"  # the engine raised :class:`~opskit.errors.RolledBack`
    CANCELLED = "cancelled"


class EventBus:
    """Delivers each event to the subscribers, in the order they subscribed, then to
    every plugin's ``opskit_event``."""

    def __init__(self, plugins: Plugins | None = None) -> None:
        self.plugins = plugins
        self._subscribers: list[Subscriber] = []
        self._lock = threading.RLock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add *subscriber*; returns the function that removes it again."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    @contextlib.contextmanager
    def subscribed(self, subscriber: Subscriber | None) -> Iterator[None]:
        """*subscriber* gets the events emitted while the block runs (None: nobody)."""
        if subscriber is None:
            yield
            return
        remove = self.subscribe(subscriber)
        try:
            yield
        finally:
            remove()

    def emit(self, event: events.Event) -> None:
        from opskit.output import warning

        with self._lock:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(event)
                except Exception as exc:  # a listener never breaks a job
                    warning(f"an event subscriber failed on {event.name}: {exc!r}")
            if self.plugins is not None:
                self.plugins.event(event)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Job:
    """One running operation; engines report through it."""

    def __init__(self, bus: EventBus, kind: str, project: str, envs: Sequence[str]) -> None:
        self.bus = bus
        self.id = secrets.token_hex(6)
        self.kind = kind
        self.project = project
        self.envs = tuple(envs)
        self.started = time.monotonic()
        self.result: Outcome | None = None  # set by a job that decides its own (fail)
        self.error: str | None = None  # why a job that sets its own result failed
        self.details: dict[str, Any] = {}
        self._seq = 0
        self._phase = ""
        self._lock = threading.RLock()  # engines report from pump threads too

    def emit(self, event_type: type[events.Event], **fields: Any) -> None:
        with self._lock:
            self._seq += 1
            self.bus.emit(event_type(job=self.id, seq=self._seq, time=_now(), **fields))

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """A named step of the job, with its start, end and outcome."""
        outer, self._phase = self._phase, name
        started = time.monotonic()
        self.emit(events.PhaseStarted, phase=name)
        ok = False
        try:
            yield
            ok = True
        finally:
            seconds = round(time.monotonic() - started, 3)
            self.emit(events.PhaseFinished, phase=name, ok=ok, seconds=seconds)
            self._phase = outer

    def meter(self, total: int | None = None) -> Callable[[int], None]:
        """A counter of bytes done in the current phase: call it with each chunk's size.
        Progress events go out at most every :data:`PROGRESS_INTERVAL` seconds; call it
        with 0 at the end to send the final count."""
        phase, done, last, sent = self._phase, 0, 0.0, -1

        def advance(count: int) -> None:
            nonlocal done, last, sent
            done += count
            moment = time.monotonic()
            if done != sent and (count == 0 or moment - last >= PROGRESS_INTERVAL):
                last, sent = moment, done
                self.emit(events.Progress, phase=phase, done=done, total=total)

        return advance

    def changing(self) -> None:
        """Say that the first change is about to be made (see :class:`events.JobChanging`)."""
        self.emit(events.JobChanging)

    def log(self, line: str, source: str = "opskit") -> None:
        self.emit(events.LogLine, line=line, source=source)

    def lines(self, source: str) -> IO[str]:
        """A text stream whose lines become log events of *source* (a program's output)."""
        return _LogStream(self, source)

    def warn(self, message: str) -> None:
        self.emit(events.Warning, message=message)

    def fail(self, error: str) -> None:
        """End as failed without raising: for a job whose command reports its faults itself
        (verify, drill, watch, offsite); *error* goes into ``job.finished``."""
        self.result = Outcome.FAILED
        self.error = error


class _LogStream(io.StringIO):
    def __init__(self, job: Job, source: str) -> None:
        super().__init__()
        self.job = job
        self.source = source
        self.pending = ""

    def write(self, text: str) -> int:
        *complete, self.pending = (self.pending + text).split("\n")
        for line in complete:
            self.job.log(line, self.source)
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def run(
    bus: EventBus, kind: str, project: str, envs: Sequence[str], scheduled: bool = False
) -> Iterator[Job]:
    """Run the block as a job: ``job.started`` first, ``job.finished`` last, whatever
    happens in between (an error is re-raised after it was reported). *scheduled*: a
    timer started it."""
    job = Job(bus, kind, project, envs)
    job.emit(events.JobStarted, kind=kind, project=project, envs=job.envs, scheduled=scheduled)
    result, error = Outcome.OK, None
    try:
        yield job
    except (Cancelled, KeyboardInterrupt) as exc:
        result, error = Outcome.CANCELLED, str(exc) or "interrupted"
        raise
    except RolledBack as exc:
        result, error = Outcome.ROLLED_BACK, str(exc)
        raise
    except Exception as exc:
        result, error = Outcome.FAILED, str(exc)
        raise
    finally:
        job.emit(
            events.JobFinished,
            kind=kind,
            project=project,
            envs=job.envs,
            result=str(job.result or result),
            error=job.error if job.error is not None else error,
            seconds=round(time.monotonic() - job.started, 3),
            details=dict(job.details),
            scheduled=scheduled,
        )


@contextlib.contextmanager
def as_job(
    runtime: Runtime,
    kind: str,
    project: str,
    envs: Sequence[str],
    progress: IO[str] | None = None,
    meter: Meter | None = None,
) -> Iterator[Job]:
    """Run the block as a job on *runtime*'s event bus (see :func:`run`); *progress* and
    *meter* get its lines and bytes."""
    from opskit.output import Reporter

    reporter = Reporter(progress, meter) if progress or meter else None
    with (
        runtime.events.subscribed(reporter),
        run(runtime.events, kind, project, envs, scheduled=runtime.scheduled) as job,
    ):
        yield job
