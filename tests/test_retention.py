from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clock import local_time_zone
from conftest import examples
from opskit.retention import Decision, decide

ZURICH = ZoneInfo("Europe/Zurich")
NO_RULES: dict[str, Any] = {
    "keep_last": 0,
    "keep_daily": 0,
    "keep_weekly": 0,
    "keep_monthly": 0,
    "tz": UTC,
}


def name(stamp: str) -> str:
    return f"mdf-prod-{stamp}"


def names(stamps: Any) -> tuple[str, ...]:
    return tuple(name(stamp) for stamp in stamps)


def archive(stamp: str) -> tuple[str, datetime]:
    return name(stamp), datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def oldest_first(stamps: tuple[str, ...]) -> list[tuple[str, datetime]]:
    return [archive(stamp) for stamp in reversed(stamps)]


# Tables are written newest first.
AUTUMN = (
    "20261127T220000Z",
    "20261127T150000Z",
    "20261127T033000Z",
    "20261125T033000Z",
    "20261120T120000Z",
    "20261120T033000Z",
    "20261101T033000Z",
    "20261031T033000Z",
    "20260915T033000Z",
    "20260705T033000Z",
    "20260612T033000Z",
)
NEW_YEAR = (
    "20270110T180000Z",  # Sunday, 2027-W01
    "20270104T060000Z",  # Monday, 2027-W01
    "20270102T120000Z",  # Saturday, 2026-W53
    "20261229T120000Z",
    "20261228T000000Z",  # Monday, 2026-W53
    "20261221T120000Z",  # 2026-W52
    "20261214T120000Z",  # 2026-W51
)
MIDNIGHT = ("20261128T060000Z", "20261127T233000Z", "20261127T120000Z")
MONTH_END = ("20261201T120000Z", "20261130T233000Z", "20261130T100000Z")

CASES = [
    pytest.param(
        AUTUMN,
        {"keep_last": 2},
        {"20261127T220000Z": ("last 1",), "20261127T150000Z": ("last 2",)},
        AUTUMN[2:],
        id="keep_last",
    ),
    pytest.param(
        AUTUMN,
        {"keep_daily": 3},
        {
            "20261127T220000Z": ("daily 2026-11-27",),
            "20261125T033000Z": ("daily 2026-11-25",),
            "20261120T120000Z": ("daily 2026-11-20",),
        },
        (
            "20261127T150000Z",
            "20261127T033000Z",
            "20261120T033000Z",
            "20261101T033000Z",
            "20261031T033000Z",
            "20260915T033000Z",
            "20260705T033000Z",
            "20260612T033000Z",
        ),
        id="keep_daily newest of day, gaps do not count",
    ),
    pytest.param(
        NEW_YEAR,
        {"keep_weekly": 3},
        {
            "20270110T180000Z": ("weekly 2027-W01",),
            "20270102T120000Z": ("weekly 2026-W53",),
            "20261221T120000Z": ("weekly 2026-W52",),
        },
        ("20270104T060000Z", "20261229T120000Z", "20261228T000000Z", "20261214T120000Z"),
        id="keep_weekly across ISO year boundary",
    ),
    pytest.param(
        AUTUMN,
        {"keep_monthly": 4},
        {
            "20261127T220000Z": ("monthly 2026-11",),
            "20261031T033000Z": ("monthly 2026-10",),
            "20260915T033000Z": ("monthly 2026-09",),
            "20260705T033000Z": ("monthly 2026-07",),
        },
        (
            "20261127T150000Z",
            "20261127T033000Z",
            "20261125T033000Z",
            "20261120T120000Z",
            "20261120T033000Z",
            "20261101T033000Z",
            "20260612T033000Z",
        ),
        id="keep_monthly, months without archives do not count",
    ),
    pytest.param(
        AUTUMN,
        {"keep_last": 2, "keep_daily": 2, "keep_weekly": 2, "keep_monthly": 2},
        {
            "20261127T220000Z": (
                "last 1",
                "daily 2026-11-27",
                "weekly 2026-W48",
                "monthly 2026-11",
            ),
            "20261127T150000Z": ("last 2",),
            "20261125T033000Z": ("daily 2026-11-25",),
            "20261120T120000Z": ("weekly 2026-W47",),
            "20261031T033000Z": ("monthly 2026-10",),
        },
        (
            "20261127T033000Z",
            "20261120T033000Z",
            "20261101T033000Z",
            "20260915T033000Z",
            "20260705T033000Z",
            "20260612T033000Z",
        ),
        id="overlapping rules merge reasons",
    ),
    pytest.param(
        AUTUMN,
        {"keep_last": 1, "keep_daily": 1, "newest_verified": name("20260915T033000Z")},
        {
            "20261127T220000Z": ("last 1", "daily 2026-11-27"),
            "20260915T033000Z": ("newest verified",),
        },
        AUTUMN[1:8] + AUTUMN[9:],
        id="newest_verified older than the rules keep",
    ),
    pytest.param(
        AUTUMN,
        {"keep_daily": 2, "newest_verified": name("20261125T033000Z")},
        {
            "20261127T220000Z": ("daily 2026-11-27",),
            "20261125T033000Z": ("daily 2026-11-25", "newest verified"),
        },
        AUTUMN[1:3] + AUTUMN[4:],
        id="newest_verified also kept by a rule",
    ),
    pytest.param(
        AUTUMN,
        {},
        {"20261127T220000Z": ("newest",)},
        AUTUMN[1:],
        id="all zeros keep the newest",
    ),
    pytest.param(
        AUTUMN,
        {"newest_verified": name("20261120T033000Z")},
        {"20261120T033000Z": ("newest verified",)},
        AUTUMN[:5] + AUTUMN[6:],
        id="all zeros with newest_verified keep only it",
    ),
    pytest.param(
        MIDNIGHT,
        {"keep_daily": 2},
        {
            "20261128T060000Z": ("daily 2026-11-28",),
            "20261127T233000Z": ("daily 2026-11-27",),
        },
        ("20261127T120000Z",),
        id="days in UTC",
    ),
    pytest.param(
        MIDNIGHT,
        {"keep_daily": 2, "tz": ZURICH},
        {
            "20261128T060000Z": ("daily 2026-11-28",),
            "20261127T120000Z": ("daily 2026-11-27",),
        },
        ("20261127T233000Z",),
        id="days in Europe/Zurich: 23:30 UTC is the next day",
    ),
    pytest.param(
        MONTH_END,
        {"keep_monthly": 2},
        {
            "20261201T120000Z": ("monthly 2026-12",),
            "20261130T233000Z": ("monthly 2026-11",),
        },
        ("20261130T100000Z",),
        id="months in UTC",
    ),
    pytest.param(
        MONTH_END,
        {"keep_monthly": 2, "tz": ZURICH},
        {
            "20261201T120000Z": ("monthly 2026-12",),
            "20261130T100000Z": ("monthly 2026-11",),
        },
        ("20261130T233000Z",),
        id="months in Europe/Zurich: 23:30 UTC on the 30th is December",
    ),
]


@pytest.mark.parametrize(("table", "options", "kept", "removed"), CASES)
def test_decide(
    table: tuple[str, ...],
    options: dict[str, Any],
    kept: dict[str, tuple[str, ...]],
    removed: tuple[str, ...],
) -> None:
    decision = decide(oldest_first(table), **{**NO_RULES, **options})
    assert decision.keep == names(kept)
    assert decision.remove == names(removed)
    assert decision.reasons == {name(stamp): why for stamp, why in kept.items()}


def test_ties_are_ordered_by_name_descending() -> None:
    moment = datetime(2026, 11, 27, 3, 30, tzinfo=UTC)
    archives = [("mdf-dev-x", moment), ("mdf-prod-x", moment), ("mdf-int-x", moment)]
    decision = decide(archives, **{**NO_RULES, "keep_last": 1})
    assert decision.keep == ("mdf-prod-x",)
    assert decision.remove == ("mdf-int-x", "mdf-dev-x")


def test_empty_input_gives_empty_decision() -> None:
    assert decide([], **{**NO_RULES, "keep_last": 3}) == Decision((), (), {})


@pytest.mark.parametrize(
    ("archives", "options", "message"),
    [
        pytest.param(
            [archive("20261127T033000Z"), archive("20261126T033000Z"), archive("20261127T033000Z")],
            {},
            "duplicate archive names: mdf-prod-20261127T033000Z",
            id="duplicate names",
        ),
        pytest.param(
            [(name("20261127T033000Z"), datetime(2026, 11, 27, 3, 30))],
            {},
            "has no timezone",
            id="naive timestamp",
        ),
        pytest.param(
            [archive("20261127T033000Z")],
            {"keep_weekly": -1},
            "keep_weekly must be 0 or more",
            id="negative count",
        ),
        pytest.param(
            [archive("20261127T033000Z")],
            {"newest_verified": "mdf-prod-gone"},
            "mdf-prod-gone is not among the archives",
            id="unknown newest_verified",
        ),
    ],
)
def test_invalid_input_raises(
    archives: list[tuple[str, datetime]], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        decide(archives, **{**NO_RULES, **options})


@pytest.fixture
def zurich_is_local() -> Iterator[None]:
    with local_time_zone("Europe/Zurich"):
        yield


@pytest.mark.usefixtures("zurich_is_local")
def test_default_timezone_is_local() -> None:
    options = {**NO_RULES, "keep_daily": 2}
    del options["tz"]
    assert decide(oldest_first(MIDNIGHT), **options) == decide(
        oldest_first(MIDNIGHT), **options, tz=ZURICH
    )


TIMEZONES = [UTC, ZURICH, ZoneInfo("America/Santiago"), ZoneInfo("Asia/Kolkata")]
timestamps = st.datetimes(
    min_value=datetime(2026, 10, 1),
    max_value=datetime(2027, 3, 31),
    timezones=st.just(UTC),
)


@st.composite
def archive_sets(draw: st.DrawFn) -> list[tuple[str, datetime]]:
    """Archives with unique names; timestamps may repeat."""
    moments = draw(st.lists(timestamps, max_size=40))
    return [(f"mdf-prod-{moment:%Y%m%dT%H%M%SZ}-{i}", moment) for i, moment in enumerate(moments)]


def reasons_starting(decision: Decision, prefix: str) -> int:
    return sum(why.startswith(prefix) for whys in decision.reasons.values() for why in whys)


@settings(max_examples=examples(300), deadline=None)
@given(
    data=st.data(),
    archives=archive_sets(),
    counts=st.tuples(*[st.integers(0, 6)] * 4),
    tz=st.sampled_from(TIMEZONES),
)
def test_properties(
    data: st.DataObject,
    archives: list[tuple[str, datetime]],
    counts: tuple[int, int, int, int],
    tz: Any,
) -> None:
    all_names = [n for n, _ in archives]
    verified = data.draw(st.none() | st.sampled_from(all_names)) if archives else None
    keep_last, keep_daily, keep_weekly, keep_monthly = counts
    decision = decide(
        archives,
        keep_last=keep_last,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
        newest_verified=verified,
        tz=tz,
    )

    assert sorted(decision.keep + decision.remove) == sorted(all_names)
    assert set(decision.keep).isdisjoint(decision.remove)
    newest_first = [n for n, _ in sorted(archives, key=lambda a: (a[1], a[0]), reverse=True)]
    assert list(decision.keep) == [n for n in newest_first if n in decision.keep]
    assert list(decision.remove) == [n for n in newest_first if n in decision.remove]
    assert set(decision.reasons) == set(decision.keep)
    assert all(decision.reasons.values())
    assert set(decision.remove_reasons) == set(decision.remove)
    assert all(decision.remove_reasons.values())

    if archives:
        assert decision.keep
        only_verified_kept = not any(counts) and verified is not None
        if not only_verified_kept:
            assert newest_first[0] in decision.keep
    if verified is not None:
        assert "newest verified" in decision.reasons[verified]

    local = [moment.astimezone(tz) for _, moment in archives]
    assert reasons_starting(decision, "last ") == min(keep_last, len(archives))
    assert reasons_starting(decision, "daily ") == min(keep_daily, len({t.date() for t in local}))
    weeks = {t.isocalendar()[:2] for t in local}
    assert reasons_starting(decision, "weekly ") == min(keep_weekly, len(weeks))
    months = {(t.year, t.month) for t in local}
    assert reasons_starting(decision, "monthly ") == min(keep_monthly, len(months))

    reordered = decide(
        list(reversed(archives)),
        keep_last=keep_last,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
        newest_verified=verified,
        tz=tz,
    )
    assert reordered == decision


def test_removed_archives_say_why() -> None:
    decision = decide(
        oldest_first(AUTUMN), **{**NO_RULES, "keep_last": 1, "keep_daily": 2, "keep_monthly": 2}
    )
    assert decision.remove_reasons[name("20261127T150000Z")] == (
        "beyond keep_last 1",
        "not the newest of 2026-11-27",
        "not the newest of 2026-11",
    )
    assert decision.remove_reasons[name("20261120T120000Z")] == (
        "beyond keep_last 1",
        "beyond keep_daily 2",
        "not the newest of 2026-11",
    )
    assert decision.remove_reasons[name("20260915T033000Z")] == (
        "beyond keep_last 1",
        "beyond keep_daily 2",
        "beyond keep_monthly 2",
    )
    assert set(decision.remove_reasons) == set(decision.remove)
    zeros = decide(oldest_first(AUTUMN), **NO_RULES)
    assert zeros.remove_reasons[name(AUTUMN[1])] == ("every keep_* count is 0",)


def test_the_newest_drilled_archive_and_undo_points_are_kept() -> None:
    sync = "undo point of sync 2026-11-20 13:05"
    decision = decide(
        oldest_first(AUTUMN),
        **{**NO_RULES, "keep_last": 1},
        newest_drilled=name("20260705T033000Z"),
        undo_points={name("20261120T120000Z"): [sync], name("20261101T033000Z"): ["a", "b"]},
    )
    assert decision.keep == names(
        ("20261127T220000Z", "20261120T120000Z", "20261101T033000Z", "20260705T033000Z")
    )
    assert decision.reasons[name("20260705T033000Z")] == ("newest drilled",)
    assert decision.reasons[name("20261120T120000Z")] == (sync,)
    assert decision.reasons[name("20261101T033000Z")] == ("a", "b")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"newest_drilled": "mdf-prod-gone"}, "newest drilled archive mdf-prod-gone is not"),
        ({"undo_points": {"mdf-prod-gone": ["x"]}}, "undo point archive mdf-prod-gone is not"),
    ],
)
def test_unknown_protected_archives_raise(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decide([archive("20261127T033000Z")], **NO_RULES, **options)


# -- the engine's prune: undo points from the audit log, drills, a fake clock ----------

PROJECT = """\
name: site
environments: [dev, prod]
backup:
  dir: {backups}
  retention: {{keep_last: 1, keep_daily: 1, keep_weekly: 0, keep_monthly: 0{undo}}}
  paths: [data]
"""
TODAY = datetime(2026, 12, 3, 8, 35, tzinfo=UTC)


def site_archives(root: Path, env: str, days: range) -> dict[int, str]:
    """One archive of *env* at 03:30 UTC on each of *days* before TODAY: day -> name."""
    made = {}
    for day in days:
        moment = (TODAY - timedelta(days=day)).replace(hour=3, minute=30, second=0)
        folder = root / "backups" / "site" / env / f"site-{env}-{moment:%Y%m%dT%H%M%SZ}"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(
            json.dumps({"project": "site", "environment": env, "components": []})
        )
        made[day] = folder.name
    return made


def audit(root: Path, *entries: dict[str, Any], damaged: str = "") -> None:
    lines = [json.dumps({"user": "tester", "project": "site", **e}) for e in entries]
    (root / "backups" / "opskit-audit.log").write_text("\n".join(lines) + "\n" + damaged)


def at(day: int, hour: int = 8) -> str:
    return (TODAY - timedelta(days=day)).replace(hour=hour, minute=0).isoformat()


def site_prune(root: Path, env: str, moment: datetime) -> Decision:
    import opskit

    with opskit.Ops(root=str(root), environ={"OPSKIT_PLUGINS": ""}) as ops:
        found = ops.project("site")
        return ops.backup_engine().prune(found, env, dry_run=True, moment=moment)


def site_root(tmp_path: Path, undo: str = "") -> Path:
    (tmp_path / "site" / "data").mkdir(parents=True)
    descriptor = PROJECT.format(backups=tmp_path / "backups", undo=undo)
    (tmp_path / "site" / "project.yaml").write_text(descriptor)
    return tmp_path


@pytest.fixture
def utc_is_local() -> Iterator[None]:
    with local_time_zone("UTC"):
        yield


@pytest.mark.usefixtures("utc_is_local")
def test_undo_points_are_kept_for_keep_undo_days_then_pruned(tmp_path: Path) -> None:
    root = site_root(tmp_path)
    dev = site_archives(root, "dev", range(0, 12))
    prod = site_archives(root, "prod", range(0, 3))
    restore, sync, old_sync = at(2), at(6, hour=23), at(9)
    audit(
        root,
        {"time": old_sync, "command": "sync", "envs": ["prod", "dev"],
         "archive": str(root / "backups" / "site" / "dev" / dev[9]), "result": "ok"},
        {"time": sync, "command": "sync", "envs": ["prod", "dev"], "safety_backup": dev[6],
         "archive": str(root / "backups" / "site" / "dev" / dev[6]), "result": "ok"},
        {"time": restore, "command": "restore", "envs": ["dev"], "archive": dev[4],
         "safety_backup": dev[2], "result": "failed"},
        {"time": at(1), "command": "restore", "envs": ["prod"], "safety_backup": prod[1]},
        {"time": at(1), "command": "promote", "envs": ["dev", "int"], "from_code": "a"},
    )  # fmt: skip
    drilled = root / "backups" / "site" / "dev"
    (drilled / dev[8] / "drill.json").write_text('{"ok": true}')
    (drilled / dev[3] / "drill.json").write_text('{"ok": false}')

    decision = site_prune(root, "dev", TODAY)
    assert decision.reasons == {
        dev[0]: ("last 1", "daily 2026-12-03"),
        dev[2]: ("undo point of restore 2026-12-01 08:00",),
        dev[6]: ("undo point of sync 2026-11-27 23:00",),  # named twice by one entry
        dev[8]: ("newest drilled",),
    }
    # the sync of 9 days ago is older than keep_undo_days (7): its backup goes
    assert dev[9] in decision.remove
    assert decision.remove_reasons[dev[9]] == ("beyond keep_last 1", "beyond keep_daily 1")
    assert prod[1] not in decision.keep  # another env's undo point

    # the same log three days earlier: the old sync is still within 7 days
    earlier = site_prune(root, "dev", TODAY - timedelta(days=3))
    assert earlier.reasons[dev[9]] == ("undo point of sync 2026-11-24 08:00",)
    # and three weeks later nothing is an undo point any more
    later = site_prune(root, "dev", TODAY + timedelta(days=21))
    assert set(later.keep) == {dev[0], dev[8]}

    assert site_prune(root, "prod", TODAY).reasons[prod[1]] == (
        "undo point of restore 2026-12-02 08:00",
    )


def test_keep_undo_days_zero_protects_nothing_and_a_damaged_line_protects(
    tmp_path: Path,
) -> None:
    root = site_root(tmp_path, undo=", keep_undo_days: 0")
    dev = site_archives(root, "dev", range(0, 4))
    audit(root, {"time": at(1), "command": "restore", "envs": ["dev"], "safety_backup": dev[1]})
    assert site_prune(root, "dev", TODAY).keep == (dev[0],)

    root = site_root(tmp_path / "two")
    dev = site_archives(root, "dev", range(0, 4))
    cut_short = (
        '{"time": "' + at(3) + '", "command": "restore", "envs": ["dev"], "safety_backup": "'
    )
    audit(root, damaged=cut_short + dev[2])
    assert site_prune(root, "dev", TODAY).reasons[dev[2]] == (
        "named in a damaged line of the audit log",
    )


# -- against real containers: several days of an env's life, then a scheduled backup ------

SMALL = "retention: {keep_last: 1, keep_daily: 2, keep_weekly: 0, keep_monthly: 0}"


@pytest.fixture
def mdf_small_retention(examples_up: Path, tmp_path: Path) -> Iterator[Path]:
    """The example copy with mdf keeping little (keep_last 1, keep_daily 2) and its archives
    in a backup folder of the test's own (no archives, no store, no audit log yet: the
    example copy's folder and the restic store in it stay as they are); put back
    afterwards."""
    from testroot import BACKUPS, put_back_descriptors

    descriptor = examples_up / "mdf" / "project.yaml"
    original = descriptor.read_text()
    assert "retention: {keep_daily: 7, keep_weekly: 4, keep_monthly: 6}" in original
    assert f"dir: {BACKUPS}\n" in original
    descriptor.write_text(
        original.replace(
            "retention: {keep_daily: 7, keep_weekly: 4, keep_monthly: 6}", SMALL
        ).replace(f"dir: {BACKUPS}\n", f"dir: {tmp_path / 'backups'}\n")
    )
    try:
        yield examples_up
    finally:
        put_back_descriptors()  # use_store's, whichever fixture ends first
        descriptor.write_text(original)


@pytest.mark.docker
def test_a_scheduled_backup_keeps_the_undo_points_and_the_drilled_archive(
    mdf_small_retention: Path, store: str
) -> None:
    import shutil

    from conftest import archive_name, opskit
    from testroot import use_store

    root = str(mdf_small_retention)

    def run(*args: str) -> str:
        done = opskit("--root", root, *args, timeout=600)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    def day(name: str) -> str:
        stamp = datetime.strptime(name[-16:], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return stamp.astimezone().date().isoformat()

    # Earlier days: the first backup, as the nightly run made it 9, 8, 3 and 2 days ago:
    # folder archives copied under those names; for the restic store, migrated into it.
    use_store(mdf_small_retention, "folder")
    first = Path(run("backup", "mdf", "dev").strip())
    earlier = {}
    for days in (9, 8, 3, 2):
        moment = datetime.now(UTC).replace(hour=3, minute=30, second=0) - timedelta(days=days)
        earlier[days] = f"mdf-dev-{moment:%Y%m%dT%H%M%SZ}"
        shutil.copytree(first, first.parent / earlier[days])
    use_store(mdf_small_retention, store)
    if store == "restic":
        run("backups", "migrate", "mdf", "dev")
        assert not first.exists()
        assert {a["name"] for a in listed_dev(root)} == {first.name, *earlier.values()}
    # Today: a drill that passes, another backup, a sync from prod, then a restore.
    assert "drilled ok" in run("drill", "mdf", "dev", "--name", first.name)
    plain = archive_name(run("backup", "mdf", "dev"))
    before_sync = archive_name(json.loads(run("sync", "mdf", "--from", "prod", "--to", "dev",
                                              "--yes", "--json"))["backup"])  # fmt: skip
    restored = json.loads(run("restore", "mdf", "dev", "--name", plain, "--yes", "--json"))
    safety = restored["safety_backup"]["name"]
    history = json.loads(run("history", "mdf", "--json"))
    times = {e["command"]: datetime.fromisoformat(e["time"]) for e in history[-2:]}
    local = {k: v.astimezone().strftime("%Y-%m-%d %H:%M") for k, v in times.items()}

    dry = json.loads(run("prune", "mdf", "dev", "--dry-run", "--json"))["envs"][0]
    assert dry["reasons"][before_sync] == [f"undo point of sync {local['sync']}"]
    assert dry["reasons"][safety][-1] == f"undo point of restore {local['restore']}"
    assert dry["reasons"][first.name] == [
        "newest verified",
        "newest drilled",
    ]  # the drill verified it
    assert dry["reasons"][earlier[2]] == [f"daily {day(earlier[2])}"]
    assert dry["remove_reasons"][plain] == ["beyond keep_last 1", f"not the newest of {day(plain)}"]
    for days in (9, 8, 3):
        assert dry["remove_reasons"][earlier[days]] == ["beyond keep_last 1", "beyond keep_daily 2"]
    text = run("prune", "mdf", "dev", "--dry-run")
    assert f"undo point of sync {local['sync']}" in text and "would remove" in text
    assert len(listed_dev(root)) == 8  # the dry run removed nothing

    # The nightly run: back up, verify, prune.
    newest = archive_name(run("backup", "mdf", "dev", "--scheduled"))
    kept = {a["name"]: a for a in listed_dev(root)}
    assert set(kept) == {newest, safety, before_sync, first.name, earlier[2]}
    assert kept[first.name]["drilled"] == "ok"  # backups still shows the drill
    assert kept[newest]["verified"] == "ok"
    (row,) = [line for line in run("backups", "mdf", "dev").splitlines() if first.name in line]
    assert " ok" in row  # its only "ok": verified and offsite say never


def listed_dev(root: str) -> list[dict[str, Any]]:
    from conftest import opskit

    return opskit("backups", "mdf", "dev", "--json", "--root", root).json()["archives"]  # type: ignore[index,no-any-return]
