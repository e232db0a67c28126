"""The watch's decisions on a fake host, pass after pass: which checks fail, which alerts
go out (to a local ntfy stand-in, through apprise), and that a check it cannot compute is
a failing one, alerted, never a missing one (the shop in fakeroot)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest

import opskit
from fakeroot import COMPOSE, World, make_world
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


# -- backup coverage: doctor's checks, once a day -------------------------------------------

CACHE = {"Type": "volume", "Name": "shop-prod_cache", "Destination": "/srv/cache", "RW": True}


def coverage_failing(report: WatchReport) -> list[str]:
    return [key for key in failing(report) if "backup coverage" in key or "not backed up" in key]


def test_a_volume_added_to_a_running_stack_alerts_once_and_recovers_when_backed_up(tmp_path, sink):
    world = watched(tmp_path, sink)
    web = world.containers["prod-web"]
    with world.ops() as ops:
        assert ops.watch(NOW).ok  # coverage computed: everything is backed up
        web.mounts.append(CACHE)  # compose up -d with a new volume
        for hours in (24, 24.1, 48):  # the next coverage pass, then a pass and one a day later
            ops.watch(NOW + timedelta(hours=hours))
    key = "shop prod not backed up: volume shop-prod_cache"
    [(title, body)] = alerts(sink)
    assert title.startswith("opskit: 1 check failing on ")
    descriptor = f"{world.root}/shop/project.yaml"
    assert body == (
        f"{key}: volume shop-prod_cache (web:/srv/cache) is in no backup component: add it to "
        f"backup.volumes in {descriptor}, or to backup.expendable if it holds nothing to keep"
    )
    # Covered: the descriptor names it (as shop-{env}_cache); the next coverage pass recovers.
    descriptor_text = world.fake.read(descriptor).decode()
    world.fake.write(
        descriptor,
        descriptor_text.replace(
            'volumes: ["shop-{env}_media"]', 'volumes: ["shop-{env}_media", "shop-{env}_cache"]'
        ),
    )
    with world.ops() as ops:
        still = ops.watch(NOW + timedelta(hours=49))  # not a coverage pass: still failing
        covered = ops.watch(NOW + timedelta(hours=72))
        quiet = ops.watch(NOW + timedelta(hours=96))
    assert coverage_failing(still) == [key] and covered.ok and quiet.ok
    [(title, body)] = alerts(sink)[1:]
    assert title.startswith("opskit: 1 check recovered on ")
    assert body == f"{key}: covered now, or no longer there"


def test_a_volume_that_goes_away_recovers_and_one_added_again_alerts_again(tmp_path, sink):
    world = watched(tmp_path, sink)
    web = world.containers["prod-web"]
    web.mounts.append(CACHE)
    with world.ops() as ops:
        first = ops.watch(NOW, coverage=True)
        web.mounts.clear()  # the volume removed from the compose file
        gone = ops.watch(NOW + timedelta(minutes=5), coverage=True)
        web.mounts.append(CACHE)
        again = ops.watch(NOW + timedelta(minutes=10), coverage=True)
    assert coverage_failing(first) == ["shop prod not backed up: volume shop-prod_cache"]
    assert gone.ok and not again.ok
    assert [state for r in (first, gone, again) for state, _t in r.sent] == [
        "failed", "recovered", "failed",
    ]  # fmt: skip


def test_a_volume_declared_expendable_recovers_and_doctor_notes_it(tmp_path, sink):
    world = watched(tmp_path, sink)
    world.containers["prod-web"].mounts.append(CACHE)
    with world.ops() as ops:
        assert not ops.watch(NOW).ok
    descriptor = f"{world.root}/shop/project.yaml"
    text = world.fake.read(descriptor).decode()
    world.fake.write(
        descriptor,
        text.replace(
            "  stop: [worker]\n", '  stop: [worker]\n  expendable: ["shop-{env}_cache"]\n'
        ),
    )
    with world.ops() as ops:
        assert ops.watch(NOW + timedelta(hours=24)).ok
        notes = [f.message for f in ops.doctor().findings if f.severity == "note"]
        assert ops.watch(NOW + timedelta(hours=48)).sent == ()
    [(_title, body)] = alerts(sink)[1:]
    assert (
        body == "shop prod not backed up: volume shop-prod_cache: covered now, or no longer there"
    )
    assert "volume shop-prod_cache (web:/srv/cache) is expendable: not backed up" in notes


def test_every_kind_of_uncovered_data_is_a_check_of_its_own_naming_what_to_do(tmp_path, sink):
    world = watched(tmp_path, sink)
    scratch = f"{world.root}/shop/prod/scratch"
    world.containers["prod-worker"].mounts += [
        {"Type": "bind", "Source": scratch, "Destination": "/tmp/s", "RW": True},
        {
            "Type": "bind",
            "Source": f"{world.root}/shop/prod/conf",
            "Destination": "/c",
            "RW": False,
        },
        {"Type": "volume", "Name": "shop-prod_media", "Destination": "/media", "RW": True},
    ]
    # The cache volume mounted by two services is one check.
    world.containers["prod-web"].mounts.append(CACHE)
    world.containers["prod-worker"].mounts.append({**CACHE, "Destination": "/cache"})
    # A PostgreSQL server added beside the shop's MariaDB, its database in no backup.
    analytics = world.fake.container(project="shop", env="prod", service="analytics")
    engine = world.fake.engine
    top = engine.top

    def processes(ref: str, ps_args: str | None = None) -> dict:
        listed = top(ref, ps_args)
        if engine.find(ref) is analytics:
            listed["Processes"] = [["1", "postgres"], ["7", "postgres"]]
        return listed

    engine.top = processes  # type: ignore[method-assign]
    with world.ops() as ops:
        report = ops.watch(NOW)
    assert sorted(coverage_failing(report)) == [
        "shop prod not backed up: bind mount " + scratch,
        "shop prod not backed up: postgres database of analytics",
        "shop prod not backed up: volume shop-prod_cache",
    ]
    [(_title, body)] = alerts(sink)
    descriptor = f"{world.root}/shop/project.yaml"
    assert (
        f"not backed up: bind mount {scratch}: bind mount {scratch} (worker:/tmp/s) is in no "
        f"backup component: add it to backup.paths in {descriptor}"
    ) in body
    assert (
        "(web:/srv/cache) is in no backup component; volume shop-prod_cache (worker:/cache)" in body
    )


def test_coverage_is_computed_once_a_day_unless_coverage_hours_or_coverage_say_otherwise(
    tmp_path, sink
):
    world = watched(tmp_path, sink)
    web = world.containers["prod-web"]
    with world.ops() as ops:
        ops.watch(NOW)
        web.mounts.append(CACHE)
        unseen = [ops.watch(NOW + timedelta(hours=h)) for h in (1, 12, 23.9)]
        seen = ops.watch(NOW + timedelta(hours=24))
    assert [r.ok for r in unseen] == [True, True, True] and not seen.ok
    [check] = [c for c in unseen[0].checks if c.key == "shop prod backup coverage"]
    assert check.ok and check.detail == "computed at 2026-12-03 14:00 UTC"

    # coverage_hours in opskit.yaml; watch --coverage computes it now.
    settings = world.fake.read(f"{world.root}/opskit.yaml").decode()
    world.fake.write(f"{world.root}/opskit.yaml", settings + "coverage_hours: 1\n")
    web.mounts.clear()
    with world.ops() as ops:
        assert not ops.watch(NOW + timedelta(hours=24.5)).ok
        assert ops.watch(NOW + timedelta(hours=25)).ok
        web.mounts.append(CACHE)
        assert ops.watch(NOW + timedelta(hours=25.1)).ok
        assert not ops.watch(NOW + timedelta(hours=25.2), coverage=True).ok


def test_a_coverage_that_cannot_be_computed_is_a_failing_check_and_kept_until_it_can(
    tmp_path, sink
):
    world = watched(tmp_path, sink)
    world.containers["prod-web"].mounts.append(CACHE)
    with world.ops() as ops:
        ops.watch(NOW)  # the cache volume is not backed up: one alert
    plugins = plugin_manager(world.recorder, BrokenComponents())
    with opskit.Ops(root=world.root, host=world.fake, plugins=plugins) as ops:
        broken = ops.watch(NOW + timedelta(hours=24))
        again = ops.watch(NOW + timedelta(hours=24, minutes=5))  # tried again: not recorded
        doctor = [f.message for f in ops.doctor().findings if f.severity == "problem"]
    # doctor says so too, instead of listing every mount as uncovered
    assert doctor == [
        "cannot tell what the backup of shop dev covers: shop: cannot read wp-config.php: "
        "Permission denied",
        "cannot tell what the backup of shop prod covers: shop: cannot read wp-config.php: "
        "Permission denied",
    ]
    assert (
        coverage_failing(broken)
        == coverage_failing(again)
        == [
            "shop dev backup coverage",
            "shop prod backup coverage",
            "shop prod not backed up: volume shop-prod_cache",  # kept as last computed
        ]
    )
    [check] = [c for c in broken.checks if c.key == "shop prod backup coverage"]
    assert check.detail == (
        "not computed (doctor cannot run): shop: cannot read wp-config.php: Permission denied"
    )
    [_first, (title, body)] = alerts(sink)  # one alert for both envs; none for the volume
    assert title.startswith("opskit: 2 checks failing on ")
    assert "shop prod backup coverage: not computed (doctor cannot run)" in body
    assert "shop-prod_cache" not in body
    with world.ops() as ops:
        ops.watch(NOW + timedelta(hours=24, minutes=10))  # computable again
    [(title, body)] = alerts(sink)[2:]
    assert title.startswith("opskit: 2 checks recovered on ")
    assert "shop prod backup coverage: computed" in body


def test_an_engine_that_cannot_be_asked_on_a_coverage_pass_fails_its_coverage(tmp_path, sink):
    world = watched(tmp_path, sink)
    world.fake.docker_error = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock"
    with world.ops() as ops:
        report = ops.watch(NOW)
    [check] = [c for c in report.checks if c.key == "shop prod backup coverage"]
    assert not check.ok
    assert check.detail.startswith("not computed (doctor cannot run): cannot reach the Docker")


def test_a_compose_name_collision_alerts_on_every_pass_and_recovers_when_pinned_apart(
    tmp_path, sink
):
    """A collision is a health check of every pass, not only of the daily coverage pass;
    it recovers (it used to vanish without a word) once the names are apart."""
    world = watched(tmp_path, sink)
    blog = f"{world.root}/blog/project.yaml"
    described = (
        'name: blog\nenvironments: [prod]\ncompose: {{dir: "{{env}}", project_name: {name}}}\n'
    )
    world.fake.write(f"{world.root}/blog/prod/compose.yaml", COMPOSE)
    world.fake.write(blog, described.format(name="shop-prod"))  # a copy, not changed
    world.fake.container(project="blog", env="prod", service="web", compose_project="blog-prod")
    with world.ops() as ops:
        ops.watch(NOW)
    world.fake.write(blog, described.format(name="blog-prod"))
    with world.ops() as ops:
        assert ops.watch(NOW + timedelta(minutes=5)).ok
    [(title, failed), (_t, recovered)] = alerts(sink)
    assert title.startswith("opskit: 2 checks failing on ")
    assert "blog prod compose project name: compose project name 'shop-prod' is used by" in failed
    assert recovered.splitlines() == [
        "blog prod compose project name: used once now",
        "shop prod compose project name: used once now",
    ]


def test_a_broken_descriptor_is_a_failing_check_that_alerts_and_keeps_the_other_states(
    tmp_path, sink
):
    world = watched(tmp_path, sink)
    world.containers["prod-web"].health = "unhealthy"
    with world.ops() as ops:
        ops.watch(NOW)  # web's alert
    descriptor = f"{world.root}/shop/project.yaml"
    good = world.fake.read(descriptor).decode()
    world.fake.write(
        descriptor, good.replace("  stop: [worker]\n", "  stop: [worker]\n  nope: 1\n")
    )
    with world.ops() as ops:
        broken = ops.watch(NOW + timedelta(minutes=5))
        ops.watch(NOW + timedelta(minutes=10))
    assert failing(broken) == ["descriptors"]
    world.fake.write(descriptor, good)
    with world.ops() as ops:
        assert failing(ops.watch(NOW + timedelta(minutes=15))) == ["shop prod container web"]
    [_web, (title, body), (recovered, again)] = alerts(sink)  # web's state was kept
    assert title.startswith("opskit: 1 check failing on ")
    assert body == (
        f"descriptors: no check taken: {descriptor}:21: backup.nope: unknown key (expected one "
        "of databases, dir, expendable, paths, retention, schedule, stop, store, volumes)"
    )
    assert (
        recovered.startswith("opskit: 1 check recovered on ") and again == "descriptors: read again"
    )
    assert world.recorder.results() == ["failed"] * 4


class BrokenComponents:
    """A project plugin whose backup components cannot be listed."""

    @hookimpl
    def opskit_backup_components(self, project, env, context):
        raise OpskitError("shop: cannot read wp-config.php: Permission denied")


# -- doctor --root-only ---------------------------------------------------------------------


def test_doctor_root_only_leaves_out_containers_no_project_of_the_root_claims(tmp_path):
    world = make_world(tmp_path)
    world.fake.container(project="blog", env="prod", service="web")  # another root's stack
    with world.ops() as ops:
        everything = ops.doctor()
        mine = ops.doctor(root_only=True)
    unclaimed = [f for f in everything.findings if f.kind == "unclaimed"]
    assert [f.message for f in unclaimed] == [
        "container blog-prod-web-1 is labelled for project 'blog', which no descriptor under "
        "the root names"
    ]
    assert mine.findings == tuple(f for f in everything.findings if f.kind != "unclaimed")
