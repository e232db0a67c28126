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


def _cli(root: Path, *args: str) -> int:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "opskit", "--root", str(root), *args],
                          capture_output=True, text=True)  # fmt: skip
    return done.returncode


def test_a_command_lines_jobs_are_a_run_of_the_state_folder(tmp_path: Path) -> None:
    """The CLI's and the timers' jobs appear in runs, as the dashboard's do."""
    root, state = tmp_path / "root", tmp_path / "state"
    (root / "p" / "dev").mkdir(parents=True)
    (root / "opskit.yaml").write_text(f"state_dir: {state}\n")
    (root / "p" / "project.yaml").write_text(
        f'name: p\nenvironments: [dev]\nbackup: {{dir: {tmp_path / "backups"}, store: folder, paths: ["dev"]}}\n'
    )
    assert _cli(root, "prune", "p", "dev") == 0  # never backed up: nothing to prune
    assert _cli(root, "status") in (0, 1)  # reads only: no job, no run
    assert _cli(root, "prune", "p", "nosuch") == 1  # refused before any job: no run
    store = RunStore(str(state / "runs.sqlite"))
    (run,) = store.runs(10)
    assert run.argv == ("prune", "p", "dev") and run.root == str(root)  # --root is the root's
    assert (run.state, run.exit_code) == ("finished", 0)
    kinds = [e.data["event"] for e in store.events(0, run.id)]
    assert kinds[0] == "job.started" and "job.finished" in kinds
    assert kinds[-1] == "run.finished"


def test_a_watch_pass_is_a_run_only_when_it_failed(tmp_path: Path) -> None:
    from opskit.events import JobFinished, JobStarted
    from opskit.runs import CommandRun

    started = JobStarted(job="j", seq=0, time="t", kind="watch", project="", envs=())
    ended = JobFinished(job="j", seq=1, time="t", kind="watch", project="", envs=(),
                        result="ok", error=None, seconds=0.1, details={})  # fmt: skip
    path = str(tmp_path / "state" / "runs.sqlite")
    for code in (0, 1):
        recorder = CommandRun(path, ["watch", "--scheduled"], "/r", "root")
        recorder(started)
        recorder(ended)
        recorder.finish(code)
    (run,) = RunStore(path).runs(10)
    assert run.exit_code == 1
