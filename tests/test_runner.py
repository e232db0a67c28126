"""A dashboard run's process (``python -m opskit.runner``): its output, events and exit code
go into the run store."""

from __future__ import annotations

import time
from pathlib import Path

from opskit.processes import pid_alive
from opskit.runs import RunStore, StoredEvent, start


def finished_run(store: RunStore, argv: list[str], root: Path) -> list[StoredEvent]:
    """The events of a run of *argv*, up to ``run.finished``; fails when its process ended
    without it (or after 60 s)."""
    run = start(store, argv, str(root), "tester")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ended = run.pid is None or not pid_alive(run.pid)
        events = store.events(0, run.id)
        if events and events[-1].data.get("event") == "run.finished":
            return events
        if ended:
            break
        time.sleep(0.05)
    raise AssertionError(f"the run did not finish: {store.events(0, run.id)} {store.get(run.id)}")


def test_a_run_stores_its_output_and_exit_code(tmp_path: Path) -> None:
    store = RunStore(str(tmp_path / "runs.sqlite"))
    events = finished_run(store, ["--version"], tmp_path)
    lines = [e.data for e in events if e.data.get("event") == "output"]
    assert any("0.1.0" in line["line"] for line in lines), lines
    assert events[-1].data == {"event": "run.finished", "exit_code": 0}
    (run,) = store.runs(10)
    assert (run.state, run.exit_code) == ("finished", 0)


def test_a_failing_run_stores_its_error_line_and_exit_1(tmp_path: Path) -> None:
    store = RunStore(str(tmp_path / "runs.sqlite"))
    events = finished_run(store, ["backup", "nosuch", "dev"], tmp_path)
    errors = [e.data["line"] for e in events if e.data.get("stream") == "stderr"]
    assert errors and errors[0].startswith("[error] "), errors
    assert events[-1].data == {"event": "run.finished", "exit_code": 1}


def test_pid_alive_tells_a_running_process_from_an_ended_one() -> None:
    import os
    import subprocess

    assert pid_alive(os.getpid())
    assert pid_alive(1)  # another user's process counts (PermissionError when not root)
    ended = subprocess.Popen(["true"])
    ended.wait()
    assert not pid_alive(ended.pid)
