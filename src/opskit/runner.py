"""The process of one dashboard run: ``python -m opskit.runner RUN_ID DB_PATH``.

:func:`opskit.runs.start` records a run in the store and starts this module in a session of
its own. It runs the run's command line through the ordinary CLI with one plugin more, whose
``opskit_event`` stores each job event, and stores the command's own output lines as
``output`` events; at the end ``run.finished`` with the exit code. It sits above the CLI, so
that the run store (:mod:`opskit.runs`) does not import the CLI that uses it.
"""

from __future__ import annotations

import io
import os
import sys
from typing import Any

from opskit.cli import run as run_cli
from opskit.plugins import create_plugins, hookimpl
from opskit.runs import RunStore


class Recorder:
    """The plugin the run's process adds: every job event into the store."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    @hookimpl
    def opskit_event(self, event: Any) -> None:
        self.store.append(self.run_id, event.as_dict())


class _Lines(io.TextIOBase):
    """A text stream that stores each complete line as an ``output`` event."""

    def __init__(self, store: RunStore, run_id: str, stream: str) -> None:
        self.store, self.run_id, self.stream = store, run_id, stream
        self.pending = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self.pending += text.replace("\r", "\n")
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if line:
                self.store.append(
                    self.run_id, {"event": "output", "stream": self.stream, "line": line}
                )
        return len(text)

    def flush(self) -> None:
        if self.pending:
            self.write("\n")


def main(run_id: str, path: str) -> int:
    """The run's process: the command line, with its events and output in the store."""
    store = RunStore(path)
    run = store.get(run_id)
    os.environ["OPSKIT_ROOT"] = run.root
    out, err = _Lines(store, run_id, "stdout"), _Lines(store, run_id, "stderr")
    sys.stdout, sys.stderr = out, err
    code = 1
    try:
        plugins = create_plugins(
            os.environ, extra=[("opskit-run-recorder", Recorder(store, run_id))]
        )
        code = run_cli(list(run.argv), plugins=plugins)
    except BaseException as exc:  # recorded, never lost: the run must end with a result
        err.write(f"[error] {exc!r}\n")
    finally:
        out.flush()
        err.flush()
        store.append(run_id, {"event": "run.finished", "exit_code": code})
        store.finish(run_id, code)
        store.close()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
