from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
def zurich_is_local(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Zurich")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


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


@settings(max_examples=300, deadline=None)
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
