"""The operations behind :class:`opskit.Ops`, one module per command.

Each module has ``run(ctx, request) -> report``: *ctx* (:class:`Context`) carries the
runtime and opens the operation's jobs (:func:`opskit.jobs.as_job`) once its checks have
passed; *request* (the module's ``Request``) is what the caller asked for. A project that
hands the command to its own CLI (``delegate:``) runs it instead of opskit's own work
(:mod:`opskit.operations.delegate`).

The facade only resolves names and calls these; the CLI and Python callers get the same
behaviour, delegation and events included.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import IO, TYPE_CHECKING

import attrs

from opskit.jobs import as_job

if TYPE_CHECKING:
    from opskit.backups import Engine
    from opskit.jobs import Job
    from opskit.runtime import Meter, Runtime

__all__ = ["Context", "as_job", "engine"]


@attrs.frozen
class Context:
    """What an operation runs with: the runtime, and where its jobs' lines (*progress*)
    and bytes (*meter*) go."""

    runtime: Runtime
    progress: IO[str] | None = None
    meter: Meter | None = None

    def job(self, kind: str, project: str, envs: Sequence[str]) -> AbstractContextManager[Job]:
        """Run a block as a job of *kind*, reported to *progress* and *meter*."""
        return as_job(self.runtime, kind, project, envs, self.progress, self.meter)

    def quiet(self) -> Context:
        """This context without progress and meter (a job whose lines nobody shows)."""
        return Context(self.runtime)


def engine(ctx: Context, job: Job | None = None) -> Engine:
    """The backup engine of *ctx*'s runtime, working for *job* (None: outside any job)."""
    from opskit.backups import Engine

    return Engine(ctx.runtime, job=job)
