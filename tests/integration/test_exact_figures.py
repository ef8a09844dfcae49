"""Exact figures (CONTRACT §1 "Success"), compared with sums computed here from the
generated events: the UTC day of each event is chosen first, then written in another
offset, often within minutes of midnight."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from service import admin
from tests.support import METRICS, Event, deltas, expected_deltas, query

DAYS = [date(2024, 2, 20) + timedelta(days=n) for n in range(20)]  # across 29 February
START, END = DAYS[0], DAYS[-1]
OFFSETS = [
    timedelta(0),
    timedelta(hours=14),
    timedelta(hours=-12),
    timedelta(hours=5, minutes=30),
    timedelta(hours=-3, minutes=-30),
    timedelta(hours=9, minutes=45),
]


def written(instant: datetime, offset: timedelta, rng: random.Random) -> str:
    """`instant` in `offset`, in one of the spellings RFC 3339 allows."""
    local = instant.replace(tzinfo=None) + offset
    text = local.strftime("%Y-%m-%d") + rng.choice("Tt ") + local.strftime("%H:%M:%S")
    digits = rng.choice([0, 1, 3, 6, 9])
    if digits:
        fraction = f"{local.microsecond:06d}000"[:digits]
        text += "." + fraction
    if offset == timedelta(0) and rng.random() < 0.5:
        return text + rng.choice("Zz")
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    zone = f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return text + ("-00:00" if zone == "+00:00" and rng.random() < 0.3 else zone)


def near_midnight_events(rng: random.Random, key_ids: list[str], count: int) -> list[Event]:
    events = []
    for n in range(count):
        day = rng.choice(DAYS)
        if rng.random() < 0.6:  # within ten minutes either side of UTC midnight
            second = rng.choice([rng.randrange(600), 86_400 - 1 - rng.randrange(600)])
        else:
            second = rng.randrange(86_400)
        instant = datetime.combine(day, time(), UTC) + timedelta(
            seconds=second, microseconds=rng.randrange(1_000_000)
        )
        record = {
            "event_id": f"fig-{uuid.uuid4().hex[:8]}-{n}",
            "api_key_id": rng.choice(key_ids),
            "occurred_at": written(instant, rng.choice(OFFSETS), rng),
            "tokens": rng.randrange(0, 200_000),
            "stt_duration": rng.randrange(0, 5_000),
        }
        if rng.random() < 0.8:
            record["usage"] = rng.randrange(0, 5)
        events.append(Event(day, record))
    return events


def expected_with_default_usage(events: list[Event], *args) -> dict:
    normalised = [Event(e.day, {"usage": 1} | e.record) for e in events]
    return expected_deltas(normalised, *args)


def load(cli, tmp_path: Path, events: list[Event], fmt: str = "jsonl") -> None:
    path = tmp_path / f"{uuid.uuid4().hex}.{fmt}"
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(e.record) + "\n" for e in events))
    else:
        header = ["event_id", "api_key_id", "occurred_at", "tokens", "stt_duration", "usage"]
        rows = [",".join(str(e.record.get(h, "")) for h in header) for e in events]
        path.write_text("\n".join([",".join(header), *rows]) + "\n")
    result = cli("usage", "import", str(path))
    assert result.exit_code == 0, result.output


@pytest.fixture()
def loaded(org, cli, tmp_path):
    """An organisation with 1,200 events on its clinic keys and root key, half JSONL, half CSV."""
    rng = random.Random(20240229)
    keys = [k.id for k in org.clinic_keys] + [org.root.id]
    events = near_midnight_events(rng, keys, 1200)
    load(cli, tmp_path, events[:600], "jsonl")
    load(cli, tmp_path, events[600:], "csv")
    return org, events


def test_org_wide_figures_equal_the_independent_sums(client, loaded):
    org, events = loaded
    response = query(client, org, START, END)
    body = response.get_json()
    expected = expected_with_default_usage(events, START, END)
    assert body["deltas"] == expected
    assert list(body["deltas"]) == sorted(body["deltas"])
    assert body["api_key"] is None
    assert body["total"] == {m: sum(d[m] for d in expected.values()) for m in METRICS}
    for figures in [body["total"], *body["deltas"].values()]:
        assert all(type(v) is int for v in figures.values())


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (DAYS[3], DAYS[9]),
        (DAYS[9], DAYS[9]),
        (DAYS[0] - timedelta(days=30), DAYS[2]),
        (DAYS[-2], DAYS[-1] + timedelta(days=40)),
    ],
    ids=["middle", "one-day", "starts-before", "ends-after"],
)
def test_a_range_counts_its_end_days_inclusively(client, loaded, start, end):
    org, events = loaded
    assert deltas(client, org, start, end) == expected_with_default_usage(events, start, end)


def test_per_key_figures_cover_that_key_alone_and_describe_it(client, loaded):
    org, events = loaded
    key = org.clinic_keys[1]
    body = query(client, org, START, END, key.id).get_json()
    assert body["deltas"] == expected_with_default_usage(events, START, END, key.id)
    described = body["api_key"]
    assert described == {
        "id": key.id,
        "name": "clinic key 1",
        "prefix": described["prefix"],
        "clinic_id": key.clinic_id,
        "clinic_name": org.clinics[key.clinic_id],
        "is_root": False,
        "created_at": described["created_at"],
        "revoked_at": None,
    }
    assert (
        key.secret.startswith(described["prefix"])
        and len(described["prefix"]) < len(key.secret) // 2
    )
    created = datetime.fromisoformat(described["created_at"].replace("Z", "+00:00"))
    assert described["created_at"].endswith("Z") and abs(datetime.now(UTC) - created) < timedelta(
        hours=1
    )


def test_revoked_keys_keep_their_figures(client, loaded, services):
    org, events = loaded
    key = org.clinic_keys[0]
    admin.revoke_api_key(services.db, uuid.UUID(key.id))
    body = query(client, org, START, END, key.id).get_json()
    assert body["api_key"]["revoked_at"].endswith("Z")
    assert body["deltas"] == expected_with_default_usage(events, START, END, key.id)
    assert deltas(client, org, START, END) == expected_with_default_usage(events, START, END)


def test_a_future_range_has_zeros(client, loaded):
    org, _ = loaded
    body = query(client, org, date(2099, 1, 1), date(2099, 12, 31)).get_json()
    assert body == {
        "api_key": None,
        "total": {"stt_duration": 0, "tokens": 0, "usage": 0},
        "deltas": {},
    }


def test_the_longest_range_allowed(client, loaded, settings):
    org, events = loaded
    start = END - timedelta(days=settings.max_range_days - 1)
    assert deltas(client, org, start, END) == expected_with_default_usage(events, start, END)


def test_days_whose_metrics_are_all_zero_are_left_out(client, org, cli, tmp_path):
    key = org.clinic_keys[0].id
    zero = {"api_key_id": key, "tokens": 0, "stt_duration": 0, "usage": 0}
    events = [
        Event(
            DAYS[1], zero | {"event_id": uuid.uuid4().hex, "occurred_at": "2024-02-21T10:00:00Z"}
        ),
        Event(
            DAYS[2],
            zero
            | {"event_id": uuid.uuid4().hex, "occurred_at": "2024-02-22T10:00:00Z", "tokens": 1},
        ),
    ]
    load(cli, tmp_path, events)
    assert deltas(client, org, START, END) == {
        "2024-02-22": {"tokens": 1, "usage": 0, "stt_duration": 0}
    }


def test_big_numbers_sum_exactly(client, org, cli, tmp_path):
    key = org.clinic_keys[0].id
    big = 2**53 - 1
    events = [
        Event(
            DAYS[0],
            {
                "event_id": uuid.uuid4().hex,
                "api_key_id": key,
                "occurred_at": "2024-02-20T01:00:00Z",
                "tokens": big,
                "stt_duration": big,
                "usage": 2**31 - 1,
            },
        )
        for _ in range(5)
    ]
    load(cli, tmp_path, events)
    body = query(client, org, START, END).get_json()
    assert body["deltas"] == {
        "2024-02-20": {"tokens": 5 * big, "usage": 5 * (2**31 - 1), "stt_duration": 5 * big}
    }
    assert (
        body["total"]["tokens"] == 45035996273704955
    )  # 5 * (2**53 - 1), beyond a double's exact range


def test_organisations_see_only_their_own_figures_both_ways(client, make_org, cli, tmp_path):
    a, b = make_org(), make_org()
    rng = random.Random(99)
    events_a = near_midnight_events(rng, [k.id for k in a.clinic_keys], 200)
    events_b = near_midnight_events(rng, [k.id for k in b.clinic_keys], 200)
    load(cli, tmp_path, events_a + events_b)
    assert deltas(client, a, START, END) == expected_with_default_usage(events_a, START, END)
    assert deltas(client, b, START, END) == expected_with_default_usage(events_b, START, END)
    for asker, other in ((a, b), (b, a)):
        response = query(client, asker, START, END, other.clinic_keys[0].id)
        assert response.status_code == 403
        assert response.get_json()["code"] == "api_key_outside_organisation"
        assert other.clinic_keys[0].id not in response.get_data(as_text=True)


def test_an_import_that_returned_shows_in_the_next_answer(client, loaded, cli, tmp_path):
    org, events = loaded
    assert deltas(client, org, START, END) == expected_with_default_usage(events, START, END)
    late = near_midnight_events(random.Random(7), [org.clinic_keys[0].id], 25)
    load(cli, tmp_path, late)
    assert deltas(client, org, START, END) == expected_with_default_usage(events + late, START, END)
