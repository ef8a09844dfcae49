"""The buckets `time_buckets.plan` draws in a time zone, and the zones `time_zones` accepts and
loads, checked against expectations made without them: literal instants for named zones and
dates, arithmetic for zones of one offset, and brute force over the UTC timeline with zones
loaded here from the tzdata package (a minute-by-minute sweep for the buckets, a look-back in
local time for the bucket of each event). The offset changes that pick the dates to try come
from an independent TZif reader (tests/support/tzif_reference.py).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from importlib import resources
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.domain import time_zones
from service.domain.time_buckets import (
    FIRST_ZONED_DATE,
    GRANULARITIES,
    LAST_ZONED_DATE,
    BucketPlan,
    OutsideZoneRules,
    plan,
)
from tests.support import tzif_reference

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400
EPOCH = date(1970, 1, 1).toordinal()
ONE_DAY = timedelta(days=1)
# The largest backward offset change since 1980 is 7 h (Antarctica/Vostok, 1994): the latest
# local date an instant comes after is found within this look-back.
LOOKBACK = 8 * 3600
ALL_ZONES = sorted(time_zones.ZONE_NAMES)


@cache
def oracle_zone(name: str) -> ZoneInfo:
    *package, leaf = name.split("/")
    with resources.files(".".join(["tzdata.zoneinfo", *package])).joinpath(leaf).open("rb") as f:
        return ZoneInfo.from_file(f, key=name)


@lru_cache(maxsize=200_000)
def local(zone: str, second: int) -> datetime:
    return datetime.fromtimestamp(second, oracle_zone(zone))


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())


def midnight(day: date | int) -> int:
    return ((day if isinstance(day, int) else day.toordinal()) - EPOCH) * DAY


def plan_of(first: str, last: str, zone: str, granularity: str = "day") -> BucketPlan:
    return plan(date.fromisoformat(first), date.fromisoformat(last), zone, granularity)


def buckets(p: BucketPlan) -> list[tuple[str, int, int]]:
    return list(zip(p.keys, p.edges[:-1], p.edges[1:], strict=True))


def hours(p: BucketPlan) -> list[float]:
    return [(b - a) / 3600 for a, b in pairwise(p.edges)]


@lru_cache(maxsize=64)
def sweep(zone: str, first: date, last: date) -> tuple[dict[int, int], list[tuple[int, str]]]:
    """Minute by minute over the UTC timeline (to the second where the local date moves on),
    from two days before `first` to two days after `last`: the first instant of every local
    date, and every instant where the clock reads HH:00:00, the offset changes or a local
    date begins, with its local RFC 3339 reading."""
    begin, end = midnight(first) - 2 * DAY, midnight(last) + 3 * DAY
    latest = local(zone, begin).date()
    offset = local(zone, begin).utcoffset()
    first_instants: dict[int, int] = {}  # by date ordinal
    edges: list[tuple[int, str]] = []
    for second in range(begin + 60, end, 60):
        reading = datetime.fromtimestamp(second, oracle_zone(zone))
        changed = reading.utcoffset() != offset and second % 900 == 0  # else not split
        offset = reading.utcoffset()
        on_the_hour = (reading.minute == 0 and reading.second == 0) or changed
        if reading.date() > latest:
            moved = second - 59
            while local(zone, moved).date() <= latest:
                moved += 1
            while latest < reading.date():
                latest += ONE_DAY
                first_instants[latest.toordinal()] = moved
            edges.append((moved, local(zone, moved).isoformat()))
            if moved != second and on_the_hour:
                edges.append((second, reading.isoformat()))
        elif on_the_hour:
            edges.append((second, reading.isoformat()))
    return first_instants, edges


def cuts(first: date, last: date, granularity: str) -> list[tuple[int, str]]:
    """(ordinal of its first local date, key) of each day, week or month bucket of the range."""
    found = []
    for ordinal in range(first.toordinal(), last.toordinal() + 1):
        day = date.fromordinal(ordinal)
        if granularity == "day":
            found.append((ordinal, day.isoformat()))
        elif granularity == "week" and (day == first or day.weekday() == 0):
            found.append((ordinal, (day - timedelta(days=day.weekday())).isoformat()))
        elif granularity == "month" and (day == first or day.day == 1):
            found.append((ordinal, f"{day.year:04d}-{day.month:02d}"))
    return found


def fixed_offset_plan(first: date, last: date, granularity: str, east: int = 0) -> BucketPlan:
    """The plan of a zone that has only ever been `east` hours ahead of UTC, by arithmetic."""
    shift = -east * 3600
    if granularity == "hour":
        days = cuts(first, last, "day")
        starts = [(midnight(o) + shift + h * 3600, f"{key}T{h:02d}:00:00{east:+03d}:00")
                  for o, key in days for h in range(24)]  # fmt: skip
    else:
        starts = [(midnight(o) + shift, key) for o, key in cuts(first, last, granularity)]
    edges = [second for second, _ in starts] + [midnight(last.toordinal() + 1) + shift]
    return BucketPlan([key for _, key in starts], edges)


def expected_buckets(zone: str, first: date, last: date, granularity: str):
    """(buckets as (key, start, end), (start, end) of the whole range), by brute force."""
    instant, edges = sweep(zone, first, last)
    begin, end = instant[first.toordinal()], instant[last.toordinal() + 1]
    if granularity == "hour":
        kept = [(second, key) for second, key in edges if begin <= second < end]
        stops = [second for second, _ in kept[1:]] + [end]
        return [(key, s, e) for (s, key), e in zip(kept, stops, strict=True)], (begin, end)
    starts = cuts(first, last, granularity)
    stops = [ordinal for ordinal, _ in starts[1:]] + [last.toordinal() + 1]
    found = [(key, instant[s], instant[e]) for (s, key), e in zip(starts, stops, strict=True)]
    return [bucket for bucket in found if bucket[1] != bucket[2]], (begin, end)


def first_instant(zone: str, day: date) -> int:
    """Brute force: the earliest UTC second whose local date is `day` or later."""
    m = midnight(day)
    # Offsets hold for far longer than an hour, so hourly samples find the largest one that
    # could put an earlier instant on `day`.
    largest = max(local(zone, m + h * 3600).utcoffset() for h in range(-36, 25))
    second = m - int(largest.total_seconds()) - 60
    assert local(zone, second).date() < day
    while local(zone, second).date() < day:
        second += 60
    second -= 59
    while local(zone, second).date() < day:
        second += 1
    return second


def bucket_date(zone: str, second: int) -> date:
    """The latest local date reached at or before the instant."""
    minute = second - second % 60
    looked_back = (local(zone, s).date() for s in range(minute - LOOKBACK, minute + 1, 60))
    return max(local(zone, second).date(), *looked_back)


def bucket_key(zone: str, granularity: str, second: int, day: date) -> str:
    """The key of the bucket of an event at `second` (whose bucket date is `day`), read from
    the local clock alone: for hours, the reading at the latest HH:00:00, change of offset
    or day start."""
    if granularity == "day":
        return day.isoformat()
    if granularity == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if granularity == "month":
        return f"{day.year:04d}-{day.month:02d}"
    back = second - second % 60
    for _ in range(4 * 60):
        reading = local(zone, back)
        if (reading.minute, reading.second) == (0, 0):
            return reading.isoformat()
        if reading.utcoffset() != local(zone, back - 60).utcoffset() and back % 900 == 0:
            return reading.isoformat()
        if reading.date() > local(zone, back - 60).date() and all(
            local(zone, s).date() < reading.date() for s in range(back - LOOKBACK, back, 60)
        ):
            return reading.isoformat()
        back -= 60
    raise AssertionError("no hour edge within 4 hours")


def sums_by_edges(p: BucketPlan, events: list[tuple[int, int]]) -> Counter:
    sums: Counter = Counter()
    for second, value in events:
        sums[next((key for key, s, e in buckets(p) if s <= second < e), None)] += value
    return sums


def sums_by_local_time(zone, first, last, granularity, events) -> Counter:
    sums: Counter = Counter()
    for second, value in events:
        day = bucket_date(zone, second)
        inside = first <= day <= last
        sums[bucket_key(zone, granularity, second, day) if inside else None] += value
    return sums


def assert_brute_force_agrees(zone: str, first, last, granularity: str) -> None:
    """`first` and `last` are dates or their ISO spellings."""
    first, last = (d if isinstance(d, date) else date.fromisoformat(d) for d in (first, last))
    p = plan(first, last, zone, granularity)
    want, (begin, end) = expected_buckets(zone, first, last, granularity)
    assert buckets(p) == want
    assert (p.edges[0], p.edges[-1]) == (begin, end)
    assert all(edge % 900 == 0 for edge in p.edges)


# Zone names


def test_the_accepted_names_are_the_tzdata_zones_list_without_factory():
    listed = set(resources.files("tzdata").joinpath("zones").read_text().split())
    assert "Factory" in listed
    assert listed - {"Factory"} == set(time_zones.ZONE_NAMES)
    assert {"localtime", "posixrules"}.isdisjoint(time_zones.ZONE_NAMES)
    assert len(time_zones.ZONE_NAMES) == 597


@pytest.mark.parametrize(
    "name",
    [
        "UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe",
        "US/Eastern", "EST", "MST", "HST", "CET", "EET", "WET", "MET", "EST5EDT", "GMT",
        "Etc/GMT+5", "Etc/GMT-14", "Etc/UTC", "Zulu", "America/Argentina/ComodRivadavia",
        "America/Indiana/Knox", "Europe/Kyiv", "Europe/Kiev", "Asia/Calcutta",
    ],
)  # fmt: skip
def test_zones_and_links_of_the_database_are_zone_names(name):
    assert time_zones.is_zone(name)
    assert time_zones.zone(name).key == name


@pytest.mark.parametrize(
    "name",
    [
        "", " ", "america/new_york", "AMERICA/NEW_YORK", "utc", "IST", "PST", "PDT", "BST",
        "AEST", "+05:30", "-08:00", "UTC+5", "GMT+5", "Z", "Factory", "localtime", "posixrules",
        "../UTC", "America/../UTC", "/UTC", "./UTC", "UTC/", "America//New_York", "../etc/passwd",
        "/etc/passwd", " UTC", "UTC ", "UTC\x00", "UTC\n", "America\\New_York",
        "tzdata/zoneinfo/UTC", "zone.tab", "tzdata.zi", "leapseconds", "__init__.py", "America",
        "A" * 65, "America/" + "x" * 10_000, "Americ\u0430/New_York", None, 0, b"UTC",
    ],
)  # fmt: skip
def test_abbreviations_offsets_paths_and_other_spellings_are_not_zone_names(name):
    assert time_zones.is_zone(name) is False
    with pytest.raises(ValueError):
        time_zones.zone(name)


# Zone data from the tzdata package alone

PRIMED_WITH_A_FAKE = """
import zoneinfo
from datetime import date, datetime
fake = zoneinfo.ZoneInfo("America/New_York")
assert fake.utcoffset(datetime(2024, 1, 15)).total_seconds() == 0
path = zoneinfo.TZPATH
from service.domain import time_zones
from service.domain.time_buckets import plan
assert zoneinfo.TZPATH == path and zoneinfo.ZoneInfo("America/New_York") is fake
print(plan(date(2024, 1, 15), date(2024, 1, 15), "America/New_York", "day").start.isoformat())
print(time_zones.zone("America/New_York").utcoffset(datetime(2024, 7, 1)).total_seconds())
"""


def test_zones_come_from_the_package_even_when_zoneinfo_is_primed_with_a_fake(tmp_path):
    (tmp_path / "America").mkdir()
    (tmp_path / "America" / "New_York").write_bytes(tzif_reference.read_tzif_bytes("UTC"))
    command = [sys.executable, "-c", PRIMED_WITH_A_FAKE]
    env = {**os.environ, "PYTHONTZPATH": str(tmp_path)}
    run = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["2024-01-15T05:00:00+00:00", "-14400.0"]


def test_the_pinned_tzdata_is_2026f_where_british_columbia_stays_on_utc_minus_7():
    assert (time_zones.TZDATA_VERSION, time_zones.IANA_VERSION) == ("2026.6", "2026f")
    vancouver = time_zones.zone("America/Vancouver")
    assert vancouver.utcoffset(datetime(2026, 12, 15, 12)) == timedelta(hours=-7)
    assert hours(plan_of("2026-11-01", "2026-11-01", "America/Vancouver")) == [24]


def test_offset_changes_match_an_independent_tzif_reader_in_every_zone():
    low, high = utc("2025-01-01T00:00"), utc("2026-12-31T00:00")
    for name in ALL_ZONES:
        at_low, changes = tzif_reference.transitions(name, low, high + 1)
        want = ([low] + [t for t, _, _ in changes], [at_low] + [a for _, _, a in changes])
        assert time_zones.offset_segments(name, low, high) == want, name


# UTC, and the dates a plan takes


def test_an_hour_key_at_a_zero_offset_ends_in_plus_zero_never_z():
    utc_hours = plan_of("2024-06-01", "2024-06-01", "UTC", "hour").keys
    assert utc_hours == [f"2024-06-01T{h:02d}:00:00+00:00" for h in range(24)]
    london = plan_of("2024-01-01", "2024-01-01", "Europe/London", "hour")
    assert london.keys[0] == "2024-01-01T00:00:00+00:00"


@pytest.mark.parametrize("granularity", GRANULARITIES)
@pytest.mark.parametrize(
    ("first", "last"),
    [(date(1, 1, 1), date(1, 1, 9)), (date(2024, 1, 1), date(2024, 12, 31)),
     (date(9999, 12, 22), date(9999, 12, 30))],
)  # fmt: skip
def test_utc_is_arithmetic_for_any_date_whose_next_day_python_knows(first, last, granularity):
    assert plan(first, last, "UTC", granularity) == fixed_offset_plan(first, last, granularity)


@pytest.mark.parametrize(
    ("zone", "first", "last", "field", "bound"),
    [
        ("UTC", date(9999, 12, 31), date(9999, 12, 31), "end_date", "9999-12-30"),
        ("Europe/London", FIRST_ZONED_DATE - ONE_DAY, FIRST_ZONED_DATE, "start_date", "1900-01-01"),
        ("Europe/London", LAST_ZONED_DATE + ONE_DAY, LAST_ZONED_DATE + ONE_DAY, "end_date",
         "9998-12-28"),
        # past Python's dates too: the zone's own bound is the reason a client can act on
        ("Europe/London", date(9999, 12, 31), date(9999, 12, 31), "end_date", "9998-12-28"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_dates_beyond_those_computed_are_refused_on_the_date_at_fault(
    zone, first, last, field, bound, granularity
):
    with pytest.raises(OutsideZoneRules) as refused:
        plan(first, last, zone, granularity)
    assert refused.value.field == field
    assert bound in str(refused.value)


def test_zoned_dates_are_planned_from_the_first_zoned_date():
    second_day = FIRST_ZONED_DATE + ONE_DAY
    for granularity in GRANULARITIES:
        assert_brute_force_agrees("Europe/London", FIRST_ZONED_DATE, second_day, granularity)


def test_zoned_dates_in_the_year_of_the_last_zoned_date_are_planned():
    june = LAST_ZONED_DATE.replace(month=6, day=1)
    for granularity in GRANULARITIES:
        assert_brute_force_agrees("Europe/London", june, june + ONE_DAY, granularity)


def test_the_last_zoned_date_itself_is_planned():
    first = LAST_ZONED_DATE - ONE_DAY
    for granularity in GRANULARITIES:
        for east in (14, -12):
            got = plan(first, LAST_ZONED_DATE, f"Etc/GMT{-east:+d}", granularity)
            assert got == fixed_offset_plan(first, LAST_ZONED_DATE, granularity, east)


# Named zones and dates


def test_new_york_2024_days_last_23_and_25_hours_at_its_changes():
    p = plan_of("2024-03-09", "2024-11-04", "America/New_York")
    spans = {key: (s, e) for key, s, e in buckets(p)}
    assert spans["2024-03-10"] == (utc("2024-03-10T05:00"), utc("2024-03-11T04:00"))
    assert spans["2024-11-03"] == (utc("2024-11-03T04:00"), utc("2024-11-04T05:00"))
    assert Counter(hours(p)) == {24: len(p.keys) - 2, 23: 1, 25: 1}


def test_the_skipped_2_oclock_hour_of_a_spring_forward_is_no_bucket():
    p = plan_of("2024-03-10", "2024-03-10", "America/New_York", "hour")
    assert len(p.keys) == 23 and set(hours(p)) == {1}
    assert p.keys[1:3] == ["2024-03-10T01:00:00-05:00", "2024-03-10T03:00:00-04:00"]
    assert not any("T02:" in key for key in p.keys)


def test_the_repeated_1_oclock_hour_of_a_fall_back_is_two_buckets():
    p = plan_of("2024-11-03", "2024-11-03", "America/New_York", "hour")
    assert len(p.keys) == 25 and set(hours(p)) == {1}
    assert buckets(p)[1:4] == [
        ("2024-11-03T01:00:00-04:00", utc("2024-11-03T05:00"), utc("2024-11-03T06:00")),
        ("2024-11-03T01:00:00-05:00", utc("2024-11-03T06:00"), utc("2024-11-03T07:00")),
        ("2024-11-03T02:00:00-05:00", utc("2024-11-03T07:00"), utc("2024-11-03T08:00")),
    ]
    assert_brute_force_agrees("America/New_York", date(2024, 11, 2), date(2024, 11, 4), "hour")
    assert plan_of("2024-11-03", "2024-11-03", "US/Eastern", "hour") == p


def test_london_repeats_1_oclock_in_october_and_skips_it_in_march():
    p = plan_of("2024-03-30", "2024-10-28", "Europe/London")
    days = dict(zip(p.keys, hours(p), strict=True))
    assert (days["2024-03-31"], days["2024-10-27"]) == (23, 25)
    october = plan_of("2024-10-27", "2024-10-27", "Europe/London", "hour").keys[:4]
    assert october == ["2024-10-27T00:00:00+01:00", "2024-10-27T01:00:00+01:00",
                       "2024-10-27T01:00:00+00:00", "2024-10-27T02:00:00+00:00"]  # fmt: skip
    march = plan_of("2024-03-31", "2024-03-31", "Europe/London", "hour").keys[:3]
    assert march == ["2024-03-31T00:00:00+00:00", "2024-03-31T02:00:00+01:00",
                     "2024-03-31T03:00:00+01:00"]  # fmt: skip


@pytest.mark.parametrize(
    ("zone", "day_start", "offset", "ten_oclock"),
    [
        ("Asia/Kolkata", "2025-01-09T18:30", "+05:30", "2025-01-10T04:30"),
        ("Asia/Kathmandu", "2025-01-09T18:15", "+05:45", "2025-01-10T04:15"),
        ("America/St_Johns", "2025-01-10T03:30", "-03:30", "2025-01-10T13:30"),
    ],
)
def test_hours_begin_on_the_local_hour_in_zones_off_whole_hours(
    zone, day_start, offset, ten_oclock
):
    p = plan_of("2025-01-10", "2025-01-10", zone, "hour")
    assert p.edges[0] == utc(day_start) and len(p.keys) == 24
    ten = utc(ten_oclock)
    assert buckets(p)[10] == (f"2025-01-10T10:00:00{offset}", ten, ten + 3600)
    assert_brute_force_agrees(zone, date(2025, 1, 9), date(2025, 1, 11), "hour")


@pytest.mark.parametrize(
    ("day", "length", "around_the_change"),
    [  # 02:00 at +11:00 became 01:30 at +10:30; 02:00 at +10:30 became 02:30 at +11:00
        ("2024-04-07", 24.5, [("2024-04-07T01:00:00+11:00", 1), ("2024-04-07T01:30:00+10:30", 0.5),
                              ("2024-04-07T02:00:00+10:30", 1)]),
        ("2024-10-06", 23.5, [("2024-10-06T01:00:00+10:30", 1), ("2024-10-06T02:30:00+11:00", 0.5),
                              ("2024-10-06T03:00:00+11:00", 1)]),
    ],
)  # fmt: skip
def test_lord_howes_half_hour_changes_make_a_half_hour_of_their_own(day, length, around_the_change):
    assert hours(plan_of(day, day, "Australia/Lord_Howe")) == [length]
    p = plan_of(day, day, "Australia/Lord_Howe", "hour")
    assert list(zip(p.keys, hours(p), strict=True))[1:4] == around_the_change
    assert [h for h in hours(p) if h != 1] == [0.5]
    assert_brute_force_agrees("Australia/Lord_Howe", day, day, "hour")


def test_chathams_changes_at_3_45_split_the_hours_they_fall_in():
    # 03:45 at +13:45 became 02:45 at +12:45: hour 3 (45 minutes), the last quarter of hour 2
    # again, then hour 3 again.
    autumn = plan_of("2024-04-07", "2024-04-07", "Pacific/Chatham", "hour")
    assert autumn.edges[0] == utc("2024-04-06T10:15")
    assert list(zip(autumn.keys, hours(autumn), strict=True))[3:6] == [
        ("2024-04-07T03:00:00+13:45", 0.75),
        ("2024-04-07T02:45:00+12:45", 0.25),
        ("2024-04-07T03:00:00+12:45", 1),
    ]
    assert (len(autumn.keys), sum(hours(autumn))) == (26, 25)
    # 02:45 at +12:45 became 03:45 at +13:45: hour 2 (45 minutes), the last quarter of hour 3.
    spring = plan_of("2024-09-29", "2024-09-29", "Pacific/Chatham", "hour")
    assert list(zip(spring.keys, hours(spring), strict=True))[2:5] == [
        ("2024-09-29T02:00:00+12:45", 0.75),
        ("2024-09-29T03:45:00+13:45", 0.25),
        ("2024-09-29T04:00:00+13:45", 1),
    ]
    assert (len(spring.keys), sum(hours(spring))) == (24, 23)
    assert_brute_force_agrees("Pacific/Chatham", date(2024, 4, 6), date(2024, 4, 8), "hour")
    assert_brute_force_agrees("Pacific/Chatham", date(2024, 9, 28), date(2024, 9, 30), "hour")


def test_a_day_starting_at_half_past_midnight_opens_with_a_30_minute_hour():
    # Pitcairn 1998-04-27: 00:00 at -08:30 became 00:30 at -08:00
    p = plan_of("1998-04-27", "1998-04-27", "Pacific/Pitcairn", "hour")
    assert (p.keys[0], hours(p)[0]) == ("1998-04-27T00:30:00-08:00", 0.5)
    assert p.keys[1] == "1998-04-27T01:00:00-08:00"
    assert_brute_force_agrees("Pacific/Pitcairn", date(1998, 4, 26), date(1998, 4, 28), "hour")


@pytest.mark.parametrize(
    ("zone", "day", "first_utc"),
    [
        ("America/Sao_Paulo", "2018-11-04", "2018-11-04T03:00"),
        ("America/Havana", "2024-03-10", "2024-03-10T05:00"),
        ("Asia/Beirut", "2024-03-31", "2024-03-30T22:00"),
        ("America/Santiago", "2024-09-08", "2024-09-08T04:00"),
    ],
)
def test_a_day_whose_midnight_is_skipped_starts_at_1_oclock(zone, day, first_utc):
    assert local(zone, utc(first_utc)).time() == time(1)  # the clock jumped there from 00:00
    p = plan_of(day, day, zone)
    assert (p.edges[0], hours(p)) == (utc(first_utc), [23])
    h = plan_of(day, day, zone, "hour")
    assert h.keys[0].startswith(f"{day}T01:00:00") and len(h.keys) == 23
    assert_brute_force_agrees(zone, day, day, "hour")


def test_a_fall_back_at_midnight_repeats_the_hour_of_the_day_before():
    # Beirut 2024-10-27: 00:00 at +03 became 23:00 of the 26th at +02
    assert hours(plan_of("2024-10-26", "2024-10-27", "Asia/Beirut")) == [25, 24]


def test_a_fall_back_just_after_midnight_puts_the_repeated_minutes_in_the_new_day():
    # St John's 2010-11-07: 00:01 at -02:30 became 23:01 of the 6th at -03:30; the 7th had
    # begun at its first midnight, so the repeated hour belongs to it.
    zone = "America/St_Johns"
    p = plan_of("2010-11-06", "2010-11-07", zone)
    assert buckets(p)[1] == ("2010-11-07", utc("2010-11-07T02:30"), utc("2010-11-08T03:30"))
    assert local(zone, utc("2010-11-07T03:00")).date() == date(2010, 11, 6)
    h = plan_of("2010-11-07", "2010-11-07", zone, "hour")
    assert (h.keys[0], hours(h)[0]) == ("2010-11-07T00:00:00-02:30", 1)
    assert h.keys[1] == "2010-11-07T00:00:00-03:30"
    assert_brute_force_agrees(zone, date(2010, 11, 5), date(2010, 11, 8), "hour")


@pytest.mark.parametrize(
    ("zone", "day"),
    [("Pacific/Apia", "2011-12-30"), ("Pacific/Kiritimati", "1994-12-31"),
     ("Pacific/Kwajalein", "1993-08-21")],
)  # fmt: skip
@pytest.mark.parametrize("granularity", GRANULARITIES)
def test_a_date_that_never_existed_has_no_bucket(zone, day, granularity):
    never = date.fromisoformat(day)
    assert first_instant(zone, never) == first_instant(zone, never + ONE_DAY)
    assert plan(never, never, zone, granularity) == BucketPlan([], [first_instant(zone, never)])


def test_apias_missing_friday_is_left_out_of_days_and_weeks():
    assert plan_of("2011-12-29", "2011-12-31", "Pacific/Apia").keys == ["2011-12-29", "2011-12-31"]
    assert_brute_force_agrees("Pacific/Apia", date(2011, 12, 29), date(2011, 12, 31), "day")
    weeks = plan_of("2011-12-26", "2012-01-03", "Pacific/Apia", "week")
    assert weeks.keys == ["2011-12-26", "2012-01-02"] and hours(weeks)[0] == 6 * 24


# Weeks and months


def test_weeks_are_cut_to_the_range_at_both_ends():
    p = plan_of("2024-12-25", "2025-01-20", "Europe/London", "week")
    assert p.keys == ["2024-12-23", "2024-12-30", "2025-01-06", "2025-01-13", "2025-01-20"]
    assert p.start == datetime(2024, 12, 25, tzinfo=UTC)
    assert p.end == datetime(2025, 1, 21, tzinfo=UTC)
    assert hours(p) == [5 * 24, 7 * 24, 7 * 24, 7 * 24, 24]
    across_a_change = plan_of("2024-03-06", "2024-03-12", "America/New_York", "week")
    assert across_a_change.keys == ["2024-03-04", "2024-03-11"]
    assert hours(across_a_change) == [5 * 24 - 1, 48]


def test_a_week_key_is_its_monday_even_in_the_previous_year():
    assert plan_of("2027-01-01", "2027-01-03", "UTC", "week").keys == ["2026-12-28"]
    assert buckets(plan_of("2026-12-31", "2027-01-05", "Asia/Tokyo", "week")) == [
        ("2026-12-28", utc("2026-12-30T15:00"), utc("2027-01-03T15:00")),
        ("2027-01-04", utc("2027-01-03T15:00"), utc("2027-01-05T15:00")),
    ]
    assert plan_of("2024-12-30", "2025-01-02", "UTC", "week").keys == ["2024-12-30"]


def test_months_are_cut_to_the_range_at_both_ends():
    assert buckets(plan_of("2024-01-15", "2024-03-10", "America/Sao_Paulo", "month")) == [
        ("2024-01", utc("2024-01-15T03:00"), utc("2024-02-01T03:00")),
        ("2024-02", utc("2024-02-01T03:00"), utc("2024-03-01T03:00")),
        ("2024-03", utc("2024-03-01T03:00"), utc("2024-03-11T03:00")),
    ]
    new_york = plan_of("2024-02-20", "2024-04-05", "America/New_York", "month")
    assert buckets(new_york)[1] == ("2024-03", utc("2024-03-01T05:00"), utc("2024-04-01T04:00"))
    kiritimati = plan_of("2023-12-31", "2024-01-01", "Pacific/Kiritimati", "month")
    assert kiritimati.keys == ["2023-12", "2024-01"]
    assert kiritimati.edges[0] == utc("2023-12-30T10:00")


# UTC quarter-hours


@pytest.mark.parametrize(
    ("zone", "refused", "planned"),
    [
        # Madras time, +05:21:10, then +05:30 from 1906
        ("Asia/Kolkata", "1900-01-01 1900-01-02 day", "1930-01-01 1930-03-31 month"),
        # -00:44:30 until 1972-01-07T00:44:30Z
        ("Africa/Monrovia", "1971-06-01 1971-06-01 hour", "1972-01-08 1972-02-07 hour"),
        ("Africa/Monrovia", "1972-01-06 1972-01-08 day", "1990-01-01 1990-01-31 week"),
        # -10:40 until 1979-10-01
        ("Pacific/Kiritimati", "1979-09-30 1979-09-30 month", "1979-10-02 1979-10-31 hour"),
    ],
)  # fmt: skip
def test_edges_off_utc_quarter_hours_are_refused_and_later_dates_planned(zone, refused, planned):
    first, last, granularity = refused.split()
    days = range(date.fromisoformat(first).toordinal(), date.fromisoformat(last).toordinal() + 2)
    assert any(first_instant(zone, date.fromordinal(o)) % 900 for o in days)
    with pytest.raises(OutsideZoneRules) as refused:
        plan_of(first, last, zone, granularity)
    assert refused.value.field == "start_date"
    first, last, granularity = planned.split()
    assert_brute_force_agrees(zone, first, last, granularity)


# Brute force over random and known hard requests

TRICKY = [
    "UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Asia/Kathmandu",
    "Australia/Lord_Howe", "America/Sao_Paulo", "America/Santiago", "America/Havana",
    "Asia/Beirut", "Africa/Cairo", "America/St_Johns", "America/Goose_Bay", "Antarctica/Casey",
    "Antarctica/Troll", "Antarctica/Vostok", "Pacific/Apia", "Pacific/Kwajalein",
    "Pacific/Kiritimati", "Pacific/Pitcairn", "Pacific/Rarotonga", "Pacific/Chatham",
    "America/Vancouver", "Asia/Tehran", "Europe/Moscow", "Asia/Gaza", "Europe/Dublin",
    "Africa/Casablanca", "America/Asuncion", "Pacific/Norfolk",
]  # fmt: skip
REQUEST_DAYS = {"hour": 31, "day": 40, "week": 60, "month": 95}
NEAR_AN_EDGE = (0, -1, 1, -59, 59, -60, 60, -899, 899, -900, 900)
EVENT = st.tuples(
    st.integers(0, 10**6),
    st.one_of(st.sampled_from(NEAR_AN_EDGE), st.integers(-1800, 1800)),
    st.integers(1, 1000),
)
PROPERTY = settings(
    max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@cache
def changes_since_1990(zone: str) -> tuple[int, ...]:
    low, high = utc("1990-01-03T00:00"), utc("2040-12-01T00:00")
    return tuple(t for t, _, _ in tzif_reference.transitions(zone, low, high)[1])


@st.composite
def requests(draw, granularity: str) -> tuple[str, date, date]:
    zone = draw(st.one_of(st.sampled_from(TRICKY), st.sampled_from(ALL_ZONES)))
    days = draw(st.integers(1, REQUEST_DAYS[granularity]))
    changes = changes_since_1990(zone)
    if changes and draw(st.booleans()):
        change = datetime.fromtimestamp(draw(st.sampled_from(changes)), UTC).date()
        first = change - timedelta(days=draw(st.integers(-1, days)))
    else:
        first = draw(st.dates(date(1990, 1, 3), date(2040, 11, 1)))
    return zone, first, first + timedelta(days=days - 1)


def events_near(edges: list[int], picks) -> list[tuple[int, int]]:
    return [(edges[i % len(edges)] + delta, value) for i, delta, value in picks]


@pytest.mark.parametrize("granularity", GRANULARITIES)
@PROPERTY
@given(data=st.data())
def test_plans_match_the_minute_by_minute_sweep(granularity, data):
    assert_brute_force_agrees(*data.draw(requests(granularity)), granularity)


@pytest.mark.parametrize("granularity", GRANULARITIES)
@PROPERTY
@given(data=st.data())
def test_events_summed_between_edges_match_the_buckets_of_their_local_time(granularity, data):
    zone, first, last = data.draw(requests(granularity))
    p = plan(first, last, zone, granularity)
    events = events_near(p.edges, data.draw(st.lists(EVENT, min_size=1, max_size=40)))
    assert sums_by_edges(p, events) == sums_by_local_time(zone, first, last, granularity, events)


@pytest.mark.parametrize(
    ("zone", "first", "last", "granularity"),
    [
        ("America/New_York", "2024-03-09", "2024-03-11", "hour"),
        ("America/New_York", "2024-11-01", "2024-11-30", "hour"),
        ("Australia/Lord_Howe", "2024-04-01", "2024-04-30", "hour"),
        ("Australia/Lord_Howe", "2024-09-20", "2024-10-20", "day"),
        ("America/St_Johns", "2010-10-20", "2010-11-19", "hour"),
        ("Antarctica/Casey", "2020-09-20", "2020-10-20", "hour"),
        ("Pacific/Kwajalein", "1993-08-01", "1993-09-30", "week"),
        ("Pacific/Apia", "2011-12-01", "2012-01-31", "month"),
        ("Africa/Casablanca", "2026-01-15", "2026-04-15", "day"),
        ("Antarctica/Troll", "2025-03-01", "2025-03-31", "hour"),
        ("Antarctica/Vostok", "1994-11-03", "1994-11-05", "day"),  # a change at the range start
        ("Antarctica/Vostok", "1994-01-30", "1994-02-02", "hour"),  # 7 h back
    ],
)
def test_known_hard_requests_match_brute_force(zone, first, last, granularity):
    first, last = date.fromisoformat(first), date.fromisoformat(last)
    assert_brute_force_agrees(zone, first, last, granularity)
    p = plan(first, last, zone, granularity)
    rnd = random.Random(1)
    picks = [(rnd.randrange(10**6), rnd.choice(NEAR_AN_EDGE), rnd.randrange(1, 1000))
             for _ in range(60)]  # fmt: skip
    events = events_near(p.edges, picks)
    assert sums_by_edges(p, events) == sums_by_local_time(zone, first, last, granularity, events)


def test_day_starts_near_offset_changes_match_brute_force_in_every_zone():
    rnd = random.Random(2026)
    for zone in ALL_ZONES:
        changes = changes_since_1990(zone)
        for change in rnd.sample(changes, min(2, len(changes))) or [utc("2024-06-15T00:00")]:
            first = datetime.fromtimestamp(change, UTC).date() - ONE_DAY
            days = [first + n * ONE_DAY for n in range(4)]
            starts = [first_instant(zone, day) for day in days]
            spans = zip(days, starts, starts[1:], strict=False)
            want = [(day.isoformat(), s, e) for day, s, e in spans if s != e]
            assert buckets(plan(first, days[2], zone, "day")) == want, zone
