"""Jobs and their events: the runner and the bus (unit), and real jobs against the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import archive_name, manifest_of, opskit
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


def test_a_restic_backup_s_progress_ends_at_the_bytes_restic_processed() -> None:
    """restic reports its status now and then: a backup that ends before a report counts
    its bytes still advances to its summary's total (as a job's progress must)."""
    import io
    from types import SimpleNamespace

    from opskit.restic import _summaries

    lines = [
        {"message_type": "status", "bytes_done": 0},
        {"message_type": "status", "bytes_done": 10},
        {"message_type": "summary", "total_bytes_processed": 22, "snapshot_id": "ab12"},
    ]
    stdout = io.BytesIO(b"".join(json.dumps(line).encode() + b"\n" for line in lines))
    advanced: list[int] = []
    summary, reader = _summaries(SimpleNamespace(stdout=stdout), advanced.append)  # type: ignore[arg-type]
    reader.join()
    assert advanced == [10, 12] and summary == lines[-1:]


# -- real jobs ------------------------------------------------------------------------


@pytest.mark.docker
def test_backup_events_as_json_lines(examples_up: Path, store: str) -> None:
    from conftest import archives_of
    from testroot import use_store

    root = str(use_store(examples_up, store))
    run = opskit("backup", "mdf", "prod", "--events", "--root", root)
    assert run.returncode == 0, run.stderr
    stream = [json.loads(line) for line in run.stdout.splitlines()]
    assert stream[0]["event"] == "job.started" and stream[0]["envs"] == ["prod"]
    assert stream[-1]["event"] == "job.finished" and stream[-1]["result"] == "ok"
    name = archive_name(stream[-1]["details"]["archive"])
    (archive,) = [a for a in archives_of(root, "mdf", "prod") if a["name"] == name]
    manifest = manifest_of(archive["path"])
    components: list[dict[str, object]] = manifest["components"]  # type: ignore[assignment]
    phases = [e["phase"] for e in stream if e["event"] == "phase.started"]
    assert phases == [c["key"] for c in components]
    for component in components:
        counts = [
            e["done"] for e in stream if e["event"] == "progress" and e["phase"] == component["key"]
        ]
        assert counts == sorted(counts) and counts[-1] == component["raw_bytes"], component["key"]
    assert [e["seq"] for e in stream] == list(range(1, len(stream) + 1))


@pytest.mark.docker
def test_a_plugin_sees_the_jobs_of_the_python_api(examples_up: Path, store: str) -> None:
    import opskit as api
    from testroot import use_store

    root = str(use_store(examples_up, store))
    recorder = EventRecorder()
    with api.Ops(root=root, plugins=plugin_manager(recorder, installed=True)) as ops:
        (archive,) = ops.backup("seriousletter", "dev")
    assert recorder.jobs() == [("backup", "seriousletter", ("dev",))]
    assert recorder.results() == ["ok"]
    assert recorder.of(events.JobFinished)[0].details["archive"] == archive.location


EV = """\
name: ev
environments: [dev, prod]
compose: {{dir: "{{env}}", project_name: "{ns}-ev-{{env}}"}}
backup: {{store: {store}, dir: {backups}, paths: ["{{env}}/data"]}}
sync: {{pairs: [[prod, dev]]}}
health: {{timeout: 30}}
"""

EV_COMPOSE = """\
services:
  web:
    init: true
    image: opskit-test/web:1
    command: ["httpd", "-f", "-p", "8080", "-h", "/srv"]
    volumes: ["./data:/srv"]
    healthcheck: {test: ["CMD", "cat", "/srv/index.html"], interval: 1s, timeout: 10s, retries: 3}
"""


@pytest.mark.docker
def test_a_plugin_sees_every_kind_of_job(tmp_path: Path, store: str) -> None:
    """backup, restore, sync and promote (good, rolled back, refused) through the
    Python API: one job each, in order, with their results, and nothing for a refusal."""
    import opskit as api
    from gatestack import build_gate
    from testroot import NS
    from wpstack import git

    (tmp_path / "ev").mkdir()
    (tmp_path / "ev" / "project.yaml").write_text(
        EV.format(ns=NS, backups=tmp_path / "backups", store=store)
    )
    for env in ("dev", "prod"):
        (tmp_path / "ev" / env / "data").mkdir(parents=True)
        (tmp_path / "ev" / env / "data" / "index.html").write_text(f"{env} page\n")
        (tmp_path / "ev" / env / "compose.yaml").write_text(EV_COMPOSE)
    gate = build_gate(tmp_path)
    recorder = EventRecorder()
    plugins = plugin_manager(recorder, installed=True)
    with api.Ops(root=str(tmp_path), plugins=plugins) as ops:
        try:
            for project, env in (("ev", "dev"), ("ev", "prod"), ("gate", "int")):
                ops.start(project, env)
            for project, env in (("ev", "dev"), ("ev", "prod"), ("gate", "int")):
                wait_healthy(ops, project, env)
            ops.backup("ev", "prod")
            ops.restore("ev", "prod")
            ops.sync("ev", "prod", "dev")
            assert (tmp_path / "ev" / "dev" / "data" / "index.html").read_text() == "prod page\n"

            dev = gate / "dev" / "code"
            (dev / "site" / "index.html").write_text("version 2\n")
            git("commit", "--quiet", "-am", "version 2", cwd=dev)
            git("push", "--quiet", "origin", "develop", cwd=dev)
            ops.promote("gate", "dev", "int")
            git("rm", "--quiet", "site/health.txt", cwd=dev)
            git("commit", "--quiet", "-m", "break it", cwd=dev)
            git("push", "--quiet", "origin", "develop", cwd=dev)
            with pytest.raises(api.OpskitError, match="rolled back"):
                ops.promote("gate", "dev", "int")
            before = len(recorder.events)
            with pytest.raises(api.OpskitError, match="one step up"):
                ops.promote("gate", "int", "dev")
            assert len(recorder.events) == before  # refused: no job started
        finally:
            for project, env in (("ev", "dev"), ("ev", "prod"), ("gate", "int")):
                ops.destroy(project, env)
    kinds = [kind for kind, _, _ in recorder.jobs()]
    assert kinds == [
        "start",
        "start",
        "start",
        "backup",
        "restore",
        "sync",
        "promote",
        "promote",
        "destroy",
        "destroy",
        "destroy",
    ]  # fmt: skip  (start and destroy are jobs too: runs, and in the audit log)
    assert recorder.results() == ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "rolled back",
                                  "ok", "ok", "ok"]  # fmt: skip
    by_job: dict[str, list[events.Event]] = {}
    for event in recorder.events:
        by_job.setdefault(event.job, []).append(event)
    for stream in by_job.values():
        assert stream[0].name == "job.started" and stream[-1].name == "job.finished"
        assert [e.seq for e in stream] == list(range(1, len(stream) + 1))
    history = [(e["command"], e["result"]) for e in ops.history()]
    assert history == [
        ("start", "ok"), ("start", "ok"), ("start", "ok"),
        ("restore", "ok"),
        ("sync", "ok"),
        ("promote", "ok"),
        ("promote", "rolled back"),
        ("destroy", "ok"), ("destroy", "ok"), ("destroy", "ok"),
    ]  # fmt: skip


def wait_healthy(ops, project: str, env: str) -> None:  # type: ignore[no-untyped-def]
    from conftest import wait_until

    wait_until(lambda: ops.health(project, env).ok, timeout=60, what=f"{project} {env} healthy")
