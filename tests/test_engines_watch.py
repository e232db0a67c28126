"""The watch's decisions on a fake host, pass after pass: which checks fail, which alerts
go out (to a local ntfy stand-in, through apprise), and that a check it cannot compute is
a failing one, alerted, never a missing one (the shop in fakeroot)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest

import opskit
from fakeroot import World, make_world
from opskit.errors import OpskitError
from opskit.plugins import hookimpl
from opskit.testing import plugin_manager
from opskit.watch import WatchReport
from sink import Sink

NOW = datetime(2026, 12, 3, 14, 0, tzinfo=UTC)
SCHEDULE = '  schedule: "*-*-* 02:00:00"\n'


def watched(tmp_path, sink: Sink, schedule: bool = False) -> World:
    """shop with its alerts going to *sink*; with *schedule*, nightly backups whose
    freshness the watch checks."""
    world = make_world(tmp_path)
    fake = world.fake
    fake.write(
        f"{world.root}/opskit.yaml",
        f"state_dir: {fake.path('state')}\n"
        f'notify:\n  urls: ["ntfy://127.0.0.1:{sink.port}/opskit"]\n',
    )
    if schedule:
        path = f"{world.root}/shop/project.yaml"
        descriptor = fake.read(path).decode()
        fake.write(path, descriptor.replace("  stop: [worker]\n", "  stop: [worker]\n" + SCHEDULE))
    return world


def alerts(sink: Sink) -> list[tuple[str, str]]:
    """(title, message) of each alert sent, in order."""
    return [(str(m.get("title")), str(m.get("message"))) for m in sink.messages()]


def failing(report: WatchReport) -> list[str]:
    return [check.key for check in report.checks if not check.ok]


def test_a_check_failing_alerts_once_and_its_recovery_alerts_once(tmp_path, sink):
    world = watched(tmp_path, sink)
    web = world.containers["prod-web"]
    web.health, web.health_output = "unhealthy", "curl: (22) The requested URL returned 502"
    with world.ops() as ops:
        first = ops.watch(NOW)
        again = ops.watch(NOW + timedelta(minutes=5))
        web.health, web.health_output = "healthy", ""
        recovered = ops.watch(NOW + timedelta(minutes=10))
        quiet = ops.watch(NOW + timedelta(minutes=15))
    assert failing(first) == failing(again) == ["shop prod container web"]
    assert failing(recovered) == failing(quiet) == []
    assert [state for r in (first, again, recovered, quiet) for state, _t in r.sent] == [
        "failed",
        "recovered",
    ]
    [(failed_title, failed_body), (recovered_title, recovered_body)] = alerts(sink)
    assert failed_title.startswith("opskit: 1 check failing on ")
    assert failed_body.startswith("shop prod container web: shop-prod-web-1: running, unhealthy")
    assert recovered_title.startswith("opskit: 1 check recovered on ")
    assert recovered_body.startswith("shop prod container web: shop-prod-web-1: running, healthy")
    assert world.recorder.results() == ["failed", "failed", "ok", "ok"]


def test_a_check_that_stays_failing_is_reminded_of_after_remind_hours_only(tmp_path, sink):
    world = watched(tmp_path, sink)
    world.containers["dev-db"].state = "exited"
    with world.ops() as ops:
        sent = [
            ops.watch(NOW + timedelta(hours=hours)).sent
            for hours in (0, 1, 5.9, 6, 7, 12)  # remind_hours: 6 by default
        ]
    assert [[state for state, _t in s] for s in sent] == [
        ["failed"], [], [], ["reminder"], [], ["reminder"],
    ]  # fmt: skip
    reminder_title, reminder_body = alerts(sink)[1]
    assert reminder_title.startswith("opskit: 1 check still failing on ")
    assert "shop dev container db: " in reminder_body
    assert "(failing since 2026-12-03T14:00)" in reminder_body


def test_a_freshness_that_cannot_be_computed_is_a_failing_check_and_alerts(tmp_path, sink):
    world = watched(tmp_path, sink, schedule=True)
    world.fake.on(["systemd-analyze"], returncode=127, stderr="sh: systemd-analyze: not found\n")
    with world.ops() as ops:
        report = ops.watch(NOW)
    assert failing(report) == ["shop dev backup freshness", "shop prod backup freshness"]
    [check] = [c for c in report.checks if c.key == "shop prod backup freshness"]
    assert check.detail == (
        "cannot tell when shop prod's backup was due: sh: systemd-analyze: not found"
    )
    # Asked once a pass for the schedule both envs share, not once per env.
    assert len(world.fake.matching(["systemd-analyze"])) == 1
    [(title, body)] = alerts(sink)
    assert title.startswith("opskit: 2 checks failing on ")
    assert "shop prod backup freshness: cannot tell when" in body
    assert world.recorder.results() == ["failed"]


def test_a_schedule_that_never_elapses_twice_is_a_failing_check(tmp_path, sink):
    world = watched(tmp_path, sink, schedule=True)
    # systemd-analyze that answers, but with no elapse at all (a calendar in the past).
    with world.ops() as ops:
        report = ops.watch(NOW)
    [check] = [c for c in report.checks if c.key == "shop prod backup freshness"]
    assert not check.ok
    assert "did not elapse twice in the 800 days before" in check.detail
    assert [state for state, _t in report.sent] == ["failed"]


def test_a_watch_that_cannot_keep_its_states_fails_before_taking_any_check(tmp_path, sink):
    world = watched(tmp_path, sink)
    world.fake.write(world.fake.path("state"), "a file where the state folder should be\n")
    world.containers["prod-web"].health = "unhealthy"
    with world.ops() as ops, pytest.raises(OpskitError) as raised:
        ops.watch(NOW)
    assert str(raised.value).startswith(
        f"the watch cannot keep its states in {world.fake.path('state')}/watch.sqlite (state_dir of "
    )
    assert world.fake.calls == []  # no check taken: none could be remembered
    assert alerts(sink) == []
    assert world.recorder.results() == ["failed"]


def test_an_unreachable_engine_alerts_once_keeps_the_other_states_and_recovers_once(tmp_path, sink):
    world = watched(tmp_path, sink)
    world.containers["prod-web"].health = "unhealthy"
    with world.ops() as ops:
        assert "shop prod container web" in "\n".join(failing(ops.watch(NOW)))
    sent = len(alerts(sink))
    world.fake.docker_error = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock"
    for later in (1, 2):  # two passes while the engine is down: one alert
        with world.ops() as ops:
            report = ops.watch(NOW + timedelta(minutes=5 * later))
        assert not report.ok
        assert all(
            c.name == "docker engine"
            for c in report.checks
            if not c.ok and "freshness" not in c.name
        )
    [(title, body)] = alerts(sink)[sent:]
    assert "failing" in title
    assert "docker engine: health not taken: cannot reach the Docker engine" in body
    assert "Cannot connect to the Docker daemon" in body
    world.fake.docker_error = None
    with world.ops() as ops:
        ops.watch(NOW + timedelta(minutes=15))
    # The engine recovered; the web container, still unhealthy, was remembered: no new alert.
    [(title, body)] = alerts(sink)[sent + 1 :]
    assert "recovered" in title and "docker engine" in body
    assert "container web" not in body


class BrokenCheck:
    """A project plugin whose health check cannot read what it needs."""

    @hookimpl
    def opskit_health_checks(self, context):
        raise OpskitError("shop: cannot read wp-config.php: Permission denied")


def test_a_plugin_check_that_raises_is_a_failing_check_and_the_others_are_still_taken(
    tmp_path, sink
):
    world = watched(tmp_path, sink)
    world.containers["prod-web"].health = "unhealthy"
    plugins = plugin_manager(world.recorder, BrokenCheck())
    with (
        opskit.Ops(root=world.root, host=world.fake, plugins=plugins) as ops,
        contextlib.suppress(OpskitError),
    ):
        ops.watch(NOW)
    bodies = "\n".join(body for _t, body in alerts(sink))
    assert "cannot read wp-config.php" in bodies
    assert "shop prod container web" in bodies
