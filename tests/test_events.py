"""Jobs and their events: the runner and the bus (unit), and real jobs against the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import opskit
from opskit import events, jobs
from opskit.errors import Cancelled
from opskit.plugins import hookimpl
from opskit.testing import EventRecorder, plugin_manager


def recorded(*plugins: object) -> tuple[jobs.EventBus, EventRecorder]:
    recorder = EventRecorder()
    return jobs.EventBus(plugin_manager(recorder, *plugins)), recorder


def test_a_job_reports_its_phases_progress_and_result() -> None:
    bus, recorder = recorded()
    with jobs.run(bus, "backup", "shop", ["prod"]) as job:
        with job.phase("db"):
            advance = job.meter(total=300)
            for _ in range(3):
                advance(100)
            advance(0)
        job.log("done with db")
        job.details["archive"] = "/backups/shop/prod/x"
    names = [e.name for e in recorder.events]
    assert names[0] == "job.started" and names[-1] == "job.finished"
    assert names[1] == "phase.started" and "phase.finished" in names
    assert [e.seq for e in recorder.events] == list(range(1, len(names) + 1))
    assert {e.job for e in recorder.events} == {job.id}
    progress = recorder.of(events.Progress)
    assert progress[-1].done == 300 and progress[-1].total == 300
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    (finished,) = recorder.of(events.JobFinished)
    assert (finished.result, finished.error) == ("ok", None)
    assert finished.details == {"archive": "/backups/shop/prod/x"}
    assert json.loads(finished.to_json())["event"] == "job.finished"


@pytest.mark.parametrize(
    ("raised", "result"),
    [(RuntimeError("disk full"), "failed"), (Cancelled("cancelled"), "cancelled")],
)
def test_a_job_that_fails_still_finishes(raised: Exception, result: str) -> None:
    bus, recorder = recorded()
    with pytest.raises(type(raised)):  # noqa: SIM117 - the job must end inside pytest.raises
        with jobs.run(bus, "restore", "shop", ["dev"]) as job, job.phase("restoring db"):
            raise raised
    assert recorder.results() == [result]
    phase_end = recorder.of(events.PhaseFinished)[0]
    assert phase_end.ok is False
    assert recorder.of(events.JobFinished)[0].error == str(raised)


def test_a_rolled_back_job_says_so() -> None:
    bus, recorder = recorded()
    with pytest.raises(RuntimeError), jobs.run(bus, "promote", "shop", ["dev", "int"]) as job:
        job.result = "rolled back"
        raise RuntimeError("not healthy")
    assert recorder.results() == ["rolled back"]


class Broken:
    @hookimpl
    def opskit_event(self, event: events.Event) -> None:
        raise ValueError("listener bug")


def test_a_listener_that_raises_never_breaks_the_job(capsys: pytest.CaptureFixture[str]) -> None:
    bus, recorder = recorded(Broken())
    failing_subscriber_calls = []

    def subscriber(event: events.Event) -> None:
        failing_subscriber_calls.append(event)
        raise OSError("closed pipe")

    bus.subscribe(subscriber)
    with jobs.run(bus, "backup", "shop", ["prod"]) as job:
        job.warn("careful")
    assert recorder.results() == ["ok"]  # the recorder still got everything
    assert len(failing_subscriber_calls) == 3
    warnings = [line for line in capsys.readouterr().err.splitlines() if line]
    assert all(line.startswith("[warning] ") for line in warnings)
    assert any("listener bug" in line for line in warnings)


# -- real jobs ------------------------------------------------------------------------


@pytest.mark.docker
def test_backup_events_as_json_lines(examples_up: Path) -> None:
    run = opskit("backup", "mdf", "prod", "--events", "--root", str(examples_up))
    assert run.returncode == 0, run.stderr
    stream = [json.loads(line) for line in run.stdout.splitlines()]
    assert stream[0]["event"] == "job.started" and stream[0]["envs"] == ["prod"]
    assert stream[-1]["event"] == "job.finished" and stream[-1]["result"] == "ok"
    archive = Path(stream[-1]["details"]["archive"])
    manifest = json.loads((archive / "manifest.json").read_text())
    phases = [e["phase"] for e in stream if e["event"] == "phase.started"]
    assert phases == [c["key"] for c in manifest["components"]]
    for component in manifest["components"]:
        counts = [
            e["done"] for e in stream if e["event"] == "progress" and e["phase"] == component["key"]
        ]
        assert counts == sorted(counts) and counts[-1] == component["raw_bytes"], component["key"]
    assert [e["seq"] for e in stream] == list(range(1, len(stream) + 1))


@pytest.mark.docker
def test_a_plugin_sees_the_jobs_of_the_python_api(examples_up: Path) -> None:
    import opskit as api

    recorder = EventRecorder()
    with api.Ops(root=str(examples_up), plugins=plugin_manager(recorder, installed=True)) as ops:
        (archive,) = ops.backup("seriousletter", "dev")
    assert recorder.jobs() == [("backup", "seriousletter", ("dev",))]
    assert recorder.results() == ["ok"]
    assert recorder.of(events.JobFinished)[0].details["archive"] == archive.path
