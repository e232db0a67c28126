"""What happens while an operation runs, as typed events.

The job runner (:mod:`opskit.jobs`) and the engines emit them; reporters consume them:
the CLI's progress on stderr, ``--events`` (one JSON object per line on stdout), the
audit log, and every plugin that implements ``opskit_event``. The host never knows
who listens.

Each event carries the id of its job and a sequence number that grows by one within the
job, so a consumer can tell when it missed one.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import attrs


@attrs.frozen(kw_only=True)
class Event:
    """Common to every event: the job, its sequence number, the time (UTC, ISO 8601)."""

    name: ClassVar[str] = "event"
    job: str
    seq: int
    time: str

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.name, **attrs.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, default=str)


@attrs.frozen(kw_only=True)
class JobStarted(Event):
    name: ClassVar[str] = "job.started"
    kind: str  # backup, restore, verify, prune, sync, promote, rebuild, drill, watch
    project: str
    envs: tuple[str, ...]
    scheduled: bool = False  # a timer started it (--scheduled)


@attrs.frozen(kw_only=True)
class JobChanging(Event):
    """The job is about to make its first change (checks passed, confirmation given):
    from here on its outcome is recorded in the audit log."""

    name: ClassVar[str] = "job.changing"


@attrs.frozen(kw_only=True)
class PhaseStarted(Event):
    name: ClassVar[str] = "phase.started"
    phase: str


@attrs.frozen(kw_only=True)
class PhaseFinished(Event):
    name: ClassVar[str] = "phase.finished"
    phase: str
    ok: bool
    seconds: float


@attrs.frozen(kw_only=True)
class Progress(Event):
    """Bytes done in a phase so far, of *total* where it is known."""

    name: ClassVar[str] = "progress"
    phase: str
    done: int
    total: int | None = None


@attrs.frozen(kw_only=True)
class LogLine(Event):
    """A line of the job's own narration or of a program it runs (*source*)."""

    name: ClassVar[str] = "log"
    line: str
    source: str = "opskit"


@attrs.frozen(kw_only=True)
class Warning(Event):  # the event's name in the stream
    name: ClassVar[str] = "warning"
    message: str


@attrs.frozen(kw_only=True)
class JobFinished(Event):
    """The end of a job: *result* is ``ok``, ``failed``, ``rolled back`` or ``cancelled``;
    *details* hold what the job produced (an archive's path, commits, counts)."""

    name: ClassVar[str] = "job.finished"
    kind: str
    project: str
    envs: tuple[str, ...]
    result: str
    error: str | None
    seconds: float
    details: dict[str, Any] = attrs.field(factory=dict)
    scheduled: bool = False
