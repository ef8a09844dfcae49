"""Figures asked with query options (README, "The API"; docs/design.md, "Time zones, from
quarter-hour rollups"), against sums worked out here from the imported events with zoneinfo
(tests/support/zones.py): events placed within minutes of bucket edges in zones with whole,
half and three-quarter hour offsets and daylight-saving changes, at every granularity, for
the whole organisation, one key, several keys, and per key or clinic in pages; as JSON and
as CSV."""

from __future__ import annotations

import csv
import io
import json
import random
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest

from service.entrypoints.http.conventions import services_of
from service.usecases import admin
from tests.support.api import api_request, assert_problem
from tests.support.commands import run_command
from tests.support.events import METRICS, Event, make_event, write_jsonl
from tests.support.orgs import Key, create_org
from tests.support.zones import bucket_of, first_instant, local_hour_starts

ZONES = [
    "UTC",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "America/St_Johns",
    "Pacific/Kiritimati",
]
# Around every 2024 change of these zones, a month's end and the year's.
WINDOWS = [
    (date(2023, 12, 30), date(2024, 1, 2)),
    (date(2024, 3, 8), date(2024, 3, 12)),
    (date(2024, 3, 29), date(2024, 4, 2)),
    (date(2024, 4, 5), date(2024, 4, 8)),
    (date(2024, 9, 27), date(2024, 9, 30)),
    (date(2024, 10, 4), date(2024, 10, 7)),
    (date(2024, 11, 1), date(2024, 11, 4)),
]
WHOLE = (date(2023, 12, 1), date(2024, 11, 30))  # 366 days: every window
HOURLY = [  # 31 days at most: the changes' days
    ("America/New_York", date(2024, 3, 9), date(2024, 3, 11)),
    ("America/New_York", date(2024, 11, 2), date(2024, 11, 4)),
    ("Australia/Lord_Howe", date(2024, 4, 6), date(2024, 4, 7)),
    ("Australia/Lord_Howe", date(2024, 10, 5), date(2024, 10, 6)),
    ("Pacific/Chatham", date(2024, 4, 6), date(2024, 4, 7)),
    ("Pacific/Chatham", date(2024, 9, 28), date(2024, 9, 29)),
    ("America/St_Johns", date(2024, 11, 2), date(2024, 11, 3)),
    ("Asia/Kathmandu", date(2024, 3, 30), date(2024, 4, 1)),
    ("Asia/Kolkata", date(2024, 3, 31), date(2024, 4, 1)),
    ("Europe/London", date(2024, 3, 30), date(2024, 3, 31)),
    ("Pacific/Kiritimati", date(2023, 12, 31), date(2024, 1, 1)),
    ("UTC", date(2024, 3, 9), date(2024, 3, 11)),
]


def edge_instants() -> list[datetime]:
    """Every local midnight of every zone in the windows, and every local hour of the days
    with a change: where an event is most easily counted in the wrong bucket."""
    found = set()
    for start, end in WINDOWS:
        day = start
        while day <= end:
            for name in ZONES:
                found.add(first_instant(day, name))
            day += timedelta(days=1)
    for name, start, end in HOURLY:
        day = start
        while day <= end:
            found.update(local_hour_starts(day, name))
            day += timedelta(days=1)
    return sorted(found)


@pytest.fixture(scope="module")
def world(app, tmp_path_factory):
    """An organisation with two clinics (two keys and one; names a spreadsheet would run as
    formulas), a root key with usage of its own, and events a few minutes either side of
    every edge, imported through `usage import`. Each event comes with its instant."""
    services = services_of(app)
    org = create_org(services.directory, clinic_keys=0, name="Zones Org")
    org_id = uuid.UUID(org.id)
    for clinic_name, key_names in (("Northside", ["north 1", "north 2"]), ("=SUM(A1)", ["-x"])):
        clinic = admin.create_clinic(services.directory, org_id, clinic_name)
        org.clinics[clinic["id"]] = clinic_name
        for name in key_names:
            key, secret = admin.create_api_key(
                services.directory, org_id, name, clinic_id=uuid.UUID(clinic["id"])
            )
            org.clinic_keys.append(Key(str(key.id), secret, clinic["id"], False))
    everyone = [*org.clinic_keys, org.root]
    rng = random.Random(11)
    prefix = uuid.uuid4().hex
    placed: list[tuple[datetime, Event]] = []
    for n, edge in enumerate(edge_instants()):
        for side in (-1, 1):
            moment = edge + side * timedelta(
                minutes=rng.randrange(1, 15), seconds=rng.randrange(60)
            )
            key = rng.choice(everyone).id
            placed.append((moment, make_event(rng, f"{prefix}-{n}-{side}", key, moment)))
    path = write_jsonl(tmp_path_factory.mktemp("zones") / "zones.jsonl", [e for _, e in placed])
    result = run_command(services.settings, "usage", "import", str(path))
    assert result.exit_code == 0, result.output
    return org, placed


def expected(placed, name, granularity, start, end, keys=None) -> dict[str, dict[str, int]]:
    """Per bucket key, the sums of the events of `keys` (all when None) in the range."""
    low, high = first_instant(start, name), first_instant(end + timedelta(days=1), name)
    sums: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(METRICS, 0))
    for moment, event in placed:
        if low <= moment < high and (keys is None or event.api_key_id in keys):
            bucket = sums[bucket_of(moment, name, granularity)]
            for metric, value in event.figures.items():
                bucket[metric] += value
    return {key: found for key, found in sums.items() if any(found.values())}


def instant_of(event: Event) -> datetime:
    """The whole-second UTC instant an event was made at (its text may add a fraction)."""
    text = event.record["occurred_at"].upper().replace(" ", "T")
    return datetime.fromisoformat(text).astimezone(UTC).replace(microsecond=0)


def total(deltas: dict) -> dict[str, int]:
    return {metric: sum(day[metric] for day in deltas.values()) for metric in METRICS}


def in_time_order(keys: list[str]) -> bool:
    moments = [datetime.fromisoformat(key if len(key) > 7 else key + "-01") for key in keys]
    moments = [m if m.tzinfo else m.replace(tzinfo=UTC) for m in moments]
    return moments == sorted(moments)


def ask(client, org, name, granularity, start, end, accept=None, **options):
    body = {
        "start_date": start.isoformat(),
        "end_date": end.isoformat(),
        "time_zone": name,
        "granularity": granularity,
        **options,
    }
    headers = {"Accept": accept} if accept else None
    return api_request(client, org, body, headers=headers)


def cases():
    for name in ZONES:
        for granularity in ("day", "week", "month"):
            yield pytest.param(name, granularity, *WHOLE, id=f"{name}-{granularity}")
    for name, start, end in HOURLY:
        yield pytest.param(name, "hour", start, end, id=f"{name}-hour-{start}")


@pytest.mark.parametrize(("name", "granularity", "start", "end"), list(cases()))
def test_organisation_figures_in_every_zone_and_granularity(
    client, world, name, granularity, start, end
):
    org, placed = world
    response = ask(client, org, name, granularity, start, end)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    wanted = expected(placed, name, granularity, start, end)
    assert wanted, "the range holds events"
    assert body["deltas"] == wanted
    assert body["total"] == total(wanted)
    assert in_time_order(list(json.loads(response.get_data())["deltas"]))
    assert body["api_key"] is None
    assert body["query"] == {
        "time_zone": name,
        "granularity": granularity,
        "group_by": None,
        "start": first_instant(start, name).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "end": first_instant(end + timedelta(days=1), name).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    again = ask(client, org, name, granularity, start, end)  # now from the cache
    assert again.get_data() == response.get_data()


SELECTIONS = [
    ("America/New_York", "hour", date(2024, 11, 2), date(2024, 11, 4)),
    ("Asia/Kathmandu", "day", *WHOLE),
    ("Pacific/Chatham", "week", *WHOLE),
    ("Australia/Lord_Howe", "month", *WHOLE),
]


@pytest.mark.parametrize(("name", "granularity", "start", "end"), SELECTIONS)
def test_one_key_and_several_keys(client, world, name, granularity, start, end):
    org, placed = world
    one, _, third = org.clinic_keys
    response = ask(client, org, name, granularity, start, end, api_key_id=one.id)
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["api_key"]["id"] == one.id
    assert body["deltas"] == expected(placed, name, granularity, start, end, {one.id})
    chosen = [third.id, one.id]
    body = ask(client, org, name, granularity, start, end, api_key_ids=chosen).get_json()
    wanted = expected(placed, name, granularity, start, end, set(chosen))
    assert body["api_key"] is None
    assert body["deltas"] == wanted and body["total"] == total(wanted)


def every_page(client, org, name, granularity, start, end, accept=None, **options):
    """The answers of every page, following next_cursor."""
    pages, cursor = [], None
    while True:
        more = {"cursor": cursor} if cursor else {}
        response = ask(client, org, name, granularity, start, end, accept, **options, **more)
        assert response.status_code == 200, response.get_json()
        pages.append(response.get_json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages


@pytest.mark.parametrize(("name", "granularity", "start", "end"), SELECTIONS)
@pytest.mark.parametrize("limit", [1, 2, 1000])
def test_groups_per_key_in_pages_sum_to_the_total(
    client, world, name, granularity, start, end, limit
):
    org, placed = world
    pages = every_page(client, org, name, granularity, start, end, group_by="api_key", limit=limit)
    everyone = [key.id for key in org.clinic_keys] + [org.root.id]
    wanted = expected(placed, name, granularity, start, end)
    groups = [group for page in pages for group in page["groups"]]
    assert all(len(page["groups"]) <= limit for page in pages)
    assert all(page["total"] == total(wanted) and page["deltas"] == wanted for page in pages)
    assert [group["api_key"]["id"] for group in groups] == sorted(
        key for key in everyone if expected(placed, name, granularity, start, end, {key})
    )
    for group in groups:
        key = group["api_key"]["id"]
        assert group["deltas"] == expected(placed, name, granularity, start, end, {key})
        assert group["total"] == total(group["deltas"])
    assert total_of_groups(groups) == total(wanted)
    root = next(group for group in groups if group["api_key"]["id"] == org.root.id)
    assert root["api_key"]["is_root"] is True and root["api_key"]["clinic_id"] is None


def total_of_groups(groups: list[dict]) -> dict[str, int]:
    return {metric: sum(group["total"][metric] for group in groups) for metric in METRICS}


@pytest.mark.parametrize(("name", "granularity", "start", "end"), SELECTIONS)
def test_groups_per_clinic_end_with_the_keys_without_one(
    client, world, name, granularity, start, end
):
    org, placed = world
    pages = every_page(client, org, name, granularity, start, end, group_by="clinic", limit=1)
    assert len(pages) == 3
    groups = [group for page in pages for group in page["groups"]]
    assert [group["clinic"] and group["clinic"]["id"] for group in groups] == [
        *sorted(org.clinics),
        None,
    ]
    for group in groups:
        if group["clinic"] is None:
            keys = {org.root.id}
        else:
            assert group["clinic"]["name"] == org.clinics[group["clinic"]["id"]]
            keys = {k.id for k in org.clinic_keys if k.clinic_id == group["clinic"]["id"]}
        assert group["deltas"] == expected(placed, name, granularity, start, end, keys)
    assert total_of_groups(groups) == pages[0]["total"]
    assert pages[0]["query"]["group_by"] == "clinic"


def rows(response) -> list[list[str]]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    text = response.get_data(as_text=True)
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    return list(csv.reader(io.StringIO(text, newline="")))


def guarded(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@pytest.mark.parametrize(("name", "granularity", "start", "end"), SELECTIONS)
def test_csv_answers_hold_the_same_figures(client, world, name, granularity, start, end):
    org, placed = world
    response = ask(client, org, name, granularity, start, end, accept="text/csv")
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="usage-{start}-{end}.csv"'
    )
    header, *lines = rows(response)
    assert header == ["bucket", "tokens", "usage", "stt_duration"]
    wanted = expected(placed, name, granularity, start, end)
    assert {line[0]: [int(v) for v in line[1:]] for line in lines} == {
        key: [found["tokens"], found["usage"], found["stt_duration"]]
        for key, found in wanted.items()
    }
    assert in_time_order([line[0] for line in lines])

    grouped = ask(
        client, org, name, granularity, start, end, "text/csv;q=0.9, */*;q=0.1", group_by="clinic"
    )
    header, *lines = rows(grouped)
    assert header == ["bucket", "clinic_id", "clinic_name", "tokens", "usage", "stt_duration"]
    as_json = ask(client, org, name, granularity, start, end, group_by="clinic").get_json()
    assert lines == [
        [
            bucket,
            group["clinic"]["id"] if group["clinic"] else "",
            guarded(group["clinic"]["name"]) if group["clinic"] else "",
            *(str(found[m]) for m in ("tokens", "usage", "stt_duration")),
        ]
        for group in as_json["groups"]
        for bucket, found in group["deltas"].items()
    ]
    assert any(line[2] == "'=SUM(A1)" for line in lines), "a formula is written inert"
    by_key = rows(ask(client, org, name, granularity, start, end, "text/csv", group_by="api_key"))
    assert by_key[0][1:3] == ["api_key_id", "api_key_name"]
    assert {line[2] for line in by_key[1:]} <= {"north 1", "north 2", "'-x", "root"}


# --- the rules of the options (check 5), 406, and checks 6-7 for several keys ------------

BASE = {"start_date": "2024-03-01", "end_date": "2024-03-31"}
ONE_KEY = str(uuid.uuid4())


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"time_zone": "Mars/Olympus_Mons"}, "time_zone"),
        ({"time_zone": "IST"}, "time_zone"),
        ({"time_zone": "PST"}, "time_zone"),
        ({"time_zone": "+05:30"}, "time_zone"),
        ({"time_zone": "america/new_york"}, "time_zone"),
        ({"time_zone": ""}, "time_zone"),
        ({"time_zone": "../../etc/passwd"}, "time_zone"),
        ({"time_zone": 5}, "time_zone"),
        ({"time_zone": None}, "time_zone"),
        ({"granularity": "minute"}, "granularity"),
        ({"granularity": "Day"}, "granularity"),
        ({"granularity": "hour", "end_date": "2024-04-01"}, "granularity"),
        ({"group_by": "org"}, "group_by"),
        ({"api_key_id": str(uuid.uuid4()), "api_key_ids": [str(uuid.uuid4())]}, "api_key_ids"),
        ({"api_key_ids": []}, "api_key_ids"),
        ({"api_key_ids": [str(uuid.uuid4()) for _ in range(101)]}, "api_key_ids"),
        ({"api_key_ids": ["same", "same"]}, "api_key_ids"),
        ({"api_key_ids": [ONE_KEY, ONE_KEY.upper()]}, "api_key_ids"),  # one key, twice
        ({"api_key_ids": "one-id"}, "api_key_ids"),
        ({"api_key_ids": [""]}, "api_key_ids"),
        ({"group_by": "api_key", "limit": 0}, "limit"),
        ({"group_by": "api_key", "limit": 1001}, "limit"),
        ({"group_by": "api_key", "limit": "5"}, "limit"),
        ({"group_by": "api_key", "limit": True}, "limit"),
        ({"group_by": "api_key", "limit": 2.0}, "limit"),
        ({"limit": 5}, "limit"),
        ({"cursor": "anything"}, "cursor"),
        ({"group_by": "api_key", "cursor": "made-up"}, "cursor"),
        ({"group_by": "api_key", "cursor": ""}, "cursor"),
        # null is no value of an option's rule (only api_key_id takes null, for "every key")
        ({"group_by": None}, "group_by"),
        ({"api_key_ids": None}, "api_key_ids"),
        ({"group_by": "api_key", "limit": None}, "limit"),
        ({"group_by": "api_key", "cursor": None}, "cursor"),
    ],
)
def test_an_option_out_of_its_rule_is_400_invalid_request(client, org, options, field):
    response = api_request(client, org, BASE | options)
    body = assert_problem(response, "invalid_request")
    assert field in body["errors"], body


def test_a_bad_item_of_api_key_ids_is_named_by_its_index(client, org):
    response = api_request(client, org, BASE | {"api_key_ids": [str(uuid.uuid4()), 7]})
    body = assert_problem(response, "invalid_request")
    assert body["errors"]["api_key_ids"] == ["item 1: Not a valid string."]
    assert body["detail"] == "api_key_ids: item 1: Not a valid string."


def test_hours_may_span_31_days_and_no_more(client, org):
    thirty_one = BASE | {"granularity": "hour", "time_zone": "Asia/Kolkata"}
    assert api_request(client, org, thirty_one).status_code == 200
    body = assert_problem(
        api_request(client, org, thirty_one | {"end_date": "2024-04-01"}), "invalid_request"
    )
    assert "31" in body["errors"]["granularity"][0]


@pytest.mark.parametrize(
    ("dates", "time_zone", "field", "reason"),
    [
        (("1899-12-31", "1900-01-01"), "Europe/London", "start_date", "1900-01-01 or later"),
        (("9998-12-29", "9998-12-29"), "Europe/London", "end_date", "9998-12-28 or earlier"),
        (("9999-12-31", "9999-12-31"), "Europe/London", "end_date", "9998-12-28 or earlier"),
        (("9999-12-31", "9999-12-31"), "UTC", "end_date", "9999-12-30 or earlier"),
        # -00:44:30 until 1972: no local day of 1971 begins on a UTC quarter-hour
        (("1971-06-01", "1971-06-02"), "Africa/Monrovia", "start_date", "later start_date"),
    ],
)
def test_dates_the_zone_rules_do_not_cover_are_refused_on_the_date_at_fault(
    client, org, dates, time_zone, field, reason
):
    body = {"start_date": dates[0], "end_date": dates[1], "time_zone": time_zone}
    problem = assert_problem(api_request(client, org, body), "invalid_request")
    assert list(problem["errors"]) == [field], problem
    (message,) = problem["errors"][field]
    assert reason in message, message
    assert problem["detail"] == f"{field}: {message}"


def test_a_cursor_is_good_for_its_own_question_only(client, world):
    org, _ = world
    asked = {
        "start_date": WHOLE[0].isoformat(),
        "end_date": WHOLE[1].isoformat(),
        "group_by": "api_key",
        "limit": 1,
        "time_zone": "Asia/Kolkata",
    }
    cursor = api_request(client, org, asked).get_json()["next_cursor"]
    assert cursor and api_request(client, org, asked | {"cursor": cursor}).status_code == 200
    altered = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    for body in (
        asked | {"cursor": altered},
        asked | {"cursor": cursor, "limit": 2},
        asked | {"cursor": cursor, "time_zone": "Asia/Kathmandu"},
        asked | {"cursor": cursor, "end_date": "2024-11-29"},
        asked | {"cursor": cursor, "group_by": "clinic"},
    ):
        problem = assert_problem(api_request(client, org, body), "invalid_request")
        assert "cursor" in problem["errors"]


def test_a_cursor_is_good_for_the_organisation_that_got_it_only(client, world, make_org):
    org, _ = world
    asked = {
        "start_date": WHOLE[0].isoformat(),
        "end_date": WHOLE[1].isoformat(),
        "group_by": "clinic",
        "limit": 1,
    }
    cursor = api_request(client, org, asked).get_json()["next_cursor"]
    assert cursor and api_request(client, org, asked | {"cursor": cursor}).status_code == 200
    other = make_org()
    problem = assert_problem(
        api_request(client, other, asked | {"cursor": cursor}), "invalid_request"
    )
    assert set(problem["errors"]) == {"cursor"}, problem


@pytest.mark.parametrize("accept", ["text/csv", "text/*", "*/*;q=0.1, text/csv"])
@pytest.mark.parametrize("paging", [{"limit": 5}, {"cursor": "x"}])
def test_limit_and_cursor_are_invalid_with_csv(client, org, accept, paging):
    body = BASE | {"group_by": "clinic"} | paging
    problem = assert_problem(
        api_request(client, org, body, headers={"Accept": accept}), "invalid_request"
    )
    assert set(problem["errors"]) == set(paging)


@pytest.mark.parametrize("accept", ["image/png", "text/html", "application/json;q=0, text/plain"])
def test_an_accept_header_that_allows_neither_json_nor_csv_is_406(client, org, accept):
    response = api_request(client, org, BASE, headers={"Accept": accept})
    problem = assert_problem(response, "not_acceptable", 406)
    assert problem["title"] == "Response format is not available."


@pytest.mark.parametrize(
    ("accept", "kind"),
    [
        (None, "application/json"),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
        ("text/csv", "text/csv; charset=utf-8"),
        ("application/json;q=0.5, text/csv", "text/csv; charset=utf-8"),
        ("text/csv;q=0.5, application/json", "application/json"),
        ("text/csv; charset=utf-8", "text/csv; charset=utf-8"),
        ("text/csv; header=present", "text/csv; charset=utf-8"),
        ("application/json; charset=utf-8", "application/json"),
        ("text/csv; charset=utf-8; q=0.4, application/json; q=0.5", "application/json"),
        ("text/csv;charset=utf-8, application/json;q=0.5", "text/csv; charset=utf-8"),
        ("image/png, text/*; format=x", "text/csv; charset=utf-8"),
    ],
)
def test_the_accept_header_chooses_json_or_csv(client, org, accept, kind):
    headers = {"Accept": accept} if accept else None
    response = api_request(client, org, BASE, headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == kind


@pytest.mark.parametrize(
    ("name", "day"),
    [("Pacific/Apia", "2011-12-30"), ("Pacific/Fakaofo", "2011-12-30"),
     ("Pacific/Kwajalein", "1993-08-21")],
)  # fmt: skip
@pytest.mark.parametrize("granularity", ["hour", "day", "week", "month"])
@pytest.mark.parametrize("accept", [None, "text/csv"])
def test_a_range_of_a_date_that_never_existed_in_the_zone_has_no_usage(
    client, org, name, day, granularity, accept
):
    never = date.fromisoformat(day)
    for group_by in (None, "api_key"):
        options = {} if group_by is None else {"group_by": group_by}
        response = ask(client, org, name, granularity, never, never, accept, **options)
        assert response.status_code == 200, response.get_data(as_text=True)
        if accept:
            assert response.get_data(as_text=True).splitlines()[1:] == []
            continue
        body = response.get_json()
        assert body["total"] == dict.fromkeys(METRICS, 0) and body["deltas"] == {}
        assert body["query"]["start"] == body["query"]["end"]
        assert body.get("groups", []) == []


def test_check_5_comes_before_406_and_406_before_checks_6_and_7(client, org, make_org):
    png = {"Accept": "image/png"}
    bad = BASE | {"time_zone": "IST"}
    assert_problem(api_request(client, org, bad, headers=png), "invalid_request")
    foreign = make_org().clinic_keys[0].id
    assert_problem(
        api_request(client, org, BASE | {"api_key_ids": [foreign]}, headers=png),
        "not_acceptable",
        406,
    )


@pytest.mark.parametrize(
    ("ids", "code", "item"),
    [
        (["nowhere", "foreign"], "api_key_outside_organisation", 1),
        (["foreign", "nowhere"], "api_key_outside_organisation", 0),
        (["mine", "nowhere", "foreign"], "api_key_outside_organisation", 2),
        (["not-a-uuid", "foreign"], "api_key_outside_organisation", 1),
        (["root", "foreign"], "api_key_outside_organisation", 1),  # root: no clinic, check 7
        (["mine", "foreign", "other foreign"], "api_key_outside_organisation", 1),
        (["mine", "nowhere", "root"], "api_key_not_found", 1),
        (["mine", "root", "nowhere"], "api_key_not_found", 1),
        (["not-a-uuid", "mine"], "api_key_not_found", 0),
    ],
)
def test_check_6_runs_over_every_id_before_check_7_the_first_failing_id_named(
    client, org, make_org, ids, code, item
):
    other = make_org(clinic_keys=2)
    named = {
        "mine": org.clinic_keys[0].id,
        "root": org.root.id,
        "foreign": other.clinic_keys[0].id,
        "other foreign": other.clinic_keys[1].id,
        "nowhere": str(uuid.uuid4()),
        "not-a-uuid": "not-a-uuid",
    }
    response = api_request(client, org, BASE | {"api_key_ids": [named[n] for n in ids]})
    problem = assert_problem(response, code)
    assert problem["detail"].startswith(f"api_key_ids item {item} "), problem["detail"]


def test_any_option_adds_the_query_and_leaves_the_figures_as_they_were(client, world):
    org, _ = world
    plain = {"start_date": "2024-03-01", "end_date": "2024-04-30"}
    before = api_request(client, org, plain).get_json()
    assert "query" not in before
    with_option = api_request(client, org, plain | {"time_zone": "UTC"}).get_json()
    assert with_option.pop("query") == {
        "time_zone": "UTC",
        "granularity": "day",
        "group_by": None,
        "start": "2024-03-01T00:00:00Z",
        "end": "2024-05-01T00:00:00Z",
    }
    assert with_option == before


# --- read-your-writes in a local zone ------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "granularity", "start", "end", "late"),
    [
        ("Asia/Kolkata", "day", date(2024, 6, 1), date(2024, 6, 30), "2024-06-10T19:05:00Z"),
        ("America/New_York", "hour", date(2024, 6, 9), date(2024, 6, 11), "2024-06-10T14:20:00Z"),
        ("Pacific/Chatham", "week", date(2024, 6, 1), date(2024, 6, 30), "2024-06-16T11:40:00Z"),
    ],
)
def test_an_import_shows_in_the_next_answer_in_any_zone(
    client, make_org, cli, tmp_path, name, granularity, start, end, late
):
    org = make_org(clinic_keys=1)
    key = org.clinic_keys[0].id
    first = [
        make_event(random.Random(n), f"ryw-{uuid.uuid4()}", key, moment)
        for n, moment in enumerate(
            datetime(2024, 6, 1, tzinfo=UTC) + timedelta(hours=7 * n, minutes=13) for n in range(80)
        )
    ]
    assert cli("usage", "import", str(write_jsonl(tmp_path / "a.jsonl", first))).exit_code == 0
    body = {"start_date": str(start), "end_date": str(end), "time_zone": name}
    body["granularity"] = granularity
    placed = [
        (datetime.fromisoformat(e.record["occurred_at"].upper().replace(" ", "T")), e)
        for e in first
    ]
    answer = api_request(client, org, body).get_json()
    assert answer["deltas"] == expected(placed, name, granularity, start, end)
    for _ in range(2):  # cached now: read whole, then the same replies again
        assert api_request(client, org, body).get_json() == answer
    moment = datetime.fromisoformat(late)
    extra = make_event(
        random.Random(99),
        f"ryw-late-{uuid.uuid4()}",
        key,
        moment,
        {"tokens": 7, "stt_duration": 1, "usage": 1},
    )
    assert cli("usage", "import", str(write_jsonl(tmp_path / "b.jsonl", [extra]))).exit_code == 0
    placed.append((moment, extra))
    after = api_request(client, org, body).get_json()
    assert after["deltas"] == expected(placed, name, granularity, start, end)
    assert after["total"]["tokens"] == answer["total"]["tokens"] + 7
    assert api_request(client, org, body).get_json() == after  # from the cache filled again
