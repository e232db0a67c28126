"""What an alert says and where dead-man pings go (#18), read as if woken at 3 a.m.

The runtime's own Notifier gets the events of real jobs (:func:`opskit.jobs.run`); a local
HTTP server on 127.0.0.1 stands in for ntfy and healthchecks.io.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sink import Sink

COMPOSE_NOISE = "Stopping prod-mdf-mail ... \r\x1b[1A\x1b[2KStopping prod-mdf-mail ... done\r"


def runtime_for(root: Path, sink: Sink, ping: str, successes: bool = False):  # type: ignore[no-untyped-def]
    from opskit import Ops

    (root / "mdf").mkdir(parents=True, exist_ok=True)
    (root / "mdf" / "project.yaml").write_text(
        "name: mdf\nenvironments: [dev, int, prod]\nbackup: {dir: /srv/b, schedule: daily}\n"
    )
    (root / "opskit.yaml").write_text(
        "notify:\n"
        f'  urls: ["ntfy://127.0.0.1:{sink.port}/opskit"]\n'
        f"  successes: {'true' if successes else 'false'}\n"
        f'  pings: {{backup: "http://127.0.0.1:{sink.port}/ping/{ping}"}}\n'
    )
    runtime = Ops(root=str(root)).runtime
    runtime.scheduled = True
    return runtime


def run_job(runtime, env: str, error: str | None = None, **details: object) -> None:  # type: ignore[no-untyped-def]
    from opskit import jobs
    from opskit.errors import OpskitError

    try:
        with jobs.run(runtime.events, "backup", "mdf", [env], scheduled=True) as job:
            job.log(COMPOSE_NOISE, "compose")
            job.details.update(details)
            if error is not None:
                raise OpskitError(error)
    except OpskitError:
        pass


def test_a_failure_alert_names_the_job_and_the_error_on_one_line(
    tmp_path: Path, sink: Sink
) -> None:
    runtime = runtime_for(tmp_path, sink, "{project}-{env}")
    error = (
        "docker-compose --project-name mdf-prod stop failed with exit 1:\r\nno such service: mail\r"
    )
    run_job(runtime, "prod", error)
    (message,) = sink.messages()
    assert message["title"] == "opskit: backup of mdf prod failed"
    lines = str(message["message"]).splitlines()
    assert lines == [
        "job: backup (scheduled)",
        "project: mdf",
        "env: prod",
        "result: failed",
        "archive: none",
        lines[5],  # the duration of a job that took no time
        f"host: {socket.gethostname()}",
        "error: docker-compose --project-name mdf-prod stop failed with exit 1: no such "
        "service: mail",
    ]
    assert lines[5].startswith("duration: ") and lines[5].endswith(" s")
    assert "\r" not in str(message["message"]) and "Stopping" not in str(message["message"])
    # The job's log goes with the dead-man ping, where it helps: not into the alert.
    fail = [body for path, body in sink.pings() if path == "/ping/mdf-prod/fail"]
    assert len(fail) == 1 and b"Stopping prod-mdf-mail" in fail[0]


def test_a_success_alert_names_archive_size_and_duration(tmp_path: Path, sink: Sink) -> None:
    from opskit.notify import duration

    runtime = runtime_for(tmp_path, sink, "{project}-{env}", successes=True)
    path = "/srv/b/mdf/dev/mdf-dev-20261130T030000Z"
    run_job(runtime, "dev", archive=path, size=3 * 1024**3 // 2)
    (message,) = sink.messages()
    assert message["title"] == "opskit: backup of mdf dev ok"
    text = str(message["message"])
    assert f"archive: {path}\nsize: 1.5 GiB\nduration: " in text
    assert "result: ok" in text and "error:" not in text and text != "ok"
    assert [duration(s) for s in (4.25, 42, 192, 7500)] == ["4.2 s", "42 s", "3 min 12 s",
                                                            "2 h 5 min"]  # fmt: skip


@pytest.mark.parametrize(
    ("ping", "expected"),
    [
        (
            "{project}-{env}",  # one check per env: dev's failure stays dev's
            ["/ping/mdf-dev/start", "/ping/mdf-dev/fail", "/ping/mdf-int/start", "/ping/mdf-int"],
        ),
        (
            "{project}",  # one check for all envs: a good int must not turn it green
            ["/ping/mdf/start", "/ping/mdf/fail"],
        ),
    ],
)
def test_a_failed_dev_then_a_good_int_leaves_the_check_failed(
    tmp_path: Path, sink: Sink, ping: str, expected: list[str]
) -> None:
    runtime = runtime_for(tmp_path, sink, ping)
    run_job(runtime, "dev", "dev's database dump failed")
    run_job(runtime, "int", archive="/srv/b/mdf/int/mdf-int-20261130T030100Z", size=10)
    assert [path for path, _body in sink.pings()] == expected


def test_watch_alert_lines_carry_no_carriage_returns() -> None:
    from opskit.notify import one_line

    assert one_line("unhealthy:\r\n  curl: (7) refused\r") == "unhealthy: curl: (7) refused"
    assert len(one_line("x" * 1000)) == 300


def test_the_title_of_a_job_of_the_whole_root_names_no_project() -> None:
    from opskit import events
    from opskit.notify import title

    def finished(kind: str, project: str, envs: tuple[str, ...]) -> events.JobFinished:
        return events.JobFinished(
            job="j", seq=1, time="t", kind=kind, project=project, envs=envs,
            result="failed", error="boom", seconds=1.0,
        )  # fmt: skip

    assert title(finished("backup", "mdf", ("prod",))) == "opskit: backup of mdf prod failed"
    assert title(finished("offsite config", "", ())) == "opskit: offsite config failed"
