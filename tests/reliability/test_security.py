"""Security checks beside the faults: isolation between organisations (a property test),
no usable timing difference between wrong keys, nothing secret in error bodies."""

from __future__ import annotations

import random
import statistics
import time
import uuid
from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.entrypoints.http.conventions import services_of
from tests.support.commands import run_command
from tests.support.events import expected_deltas, make_events, write_jsonl
from tests.support.orgs import create_org

pytestmark = pytest.mark.reliability

PATH = "/api/v1/usage-analytics"
DAYS = [date(2024, 5, 1) + timedelta(days=n) for n in range(30)]


@pytest.fixture(scope="module")
def two_organisations(app, tmp_path_factory):
    """A and B with usage of their own (B's events carry figures A's never have)."""
    services = services_of(app)
    a, b = (create_org(services.directory, 3, f"Isolation {name}") for name in ("A", "B"))
    workdir = tmp_path_factory.mktemp("isolation")
    events = {}
    for org, seed in ((a, 1), (b, 2)):
        events[org.id] = make_events(
            random.Random(seed), [k.id for k in org.clinic_keys], DAYS, 400
        )
        path = write_jsonl(workdir / f"{seed}.jsonl", events[org.id])
        result = run_command(services.settings, "usage", "import", str(path))
        assert result.exit_code == 0, result.output
    return a, b, events


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    asker=st.sampled_from([0, 1]),
    target=st.sampled_from(["none", "own", "other", "other-root", "random"]),
    start=st.sampled_from(DAYS),
    length=st.integers(0, 60),
    provider_of_other=st.booleans(),
)
def test_no_request_with_one_organisations_credentials_sees_anothers_figures_or_keys(
    client, two_organisations, asker, target, start, length, provider_of_other
):
    orgs = two_organisations[:2]
    events = two_organisations[2]
    me, other = orgs[asker], orgs[1 - asker]
    body = {"start_date": str(start), "end_date": str(start + timedelta(days=length))}
    chosen = {
        "none": None,
        "own": me.clinic_keys[length % 3].id,
        "other": other.clinic_keys[length % 3].id,
        "other-root": other.root.id,
        "random": str(uuid.uuid4()),
    }[target]
    if chosen is not None:
        body["api_key_id"] = chosen
    headers = me.headers()
    if provider_of_other:
        headers["X-Scrubs-Clinic-Provider"] = other.provider_id
    response = client.post(PATH, headers=headers, json=body)
    text = response.get_data(as_text=True)
    for key in [other.root, *other.clinic_keys]:
        assert key.id not in text or (key.id == chosen and response.status_code != 200)
        assert key.secret not in text
    assert other.id not in text
    if provider_of_other:
        assert response.status_code == 401
    elif target in ("other", "other-root"):
        assert response.status_code == 403
    elif target == "random":
        assert response.status_code == 404
    else:
        assert response.status_code == 200
        end = start + timedelta(days=length)
        assert response.get_json()["deltas"] == expected_deltas(events[me.id], start, end, chosen)


def test_a_wrong_key_takes_as_long_whatever_its_length(client, org):
    """The secret is looked up by its hash: how much of it is right cannot show in time."""
    real = org.root.secret
    near_miss = real[:-1] + ("A" if real[-1] != "A" else "B")
    short = "x"
    body = {"start_date": "2024-01-01", "end_date": "2024-01-02"}

    def timed(secret: str) -> float:
        began = time.perf_counter()
        response = client.post(
            PATH, headers=org.headers() | {"X-Scrubs-Clinic-Api-Key": secret}, json=body
        )
        took = time.perf_counter() - began
        assert response.status_code == 401
        return took

    for secret in (short, near_miss):
        timed(secret)
    samples = {short: [], near_miss: []}
    for _ in range(300):
        for secret in (short, near_miss):
            samples[secret].append(timed(secret))
    ratio = statistics.median(samples[near_miss]) / statistics.median(samples[short])
    assert 0.8 < ratio < 1.25, f"median time of a near miss / a short wrong key = {ratio:.3f}"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Scrubs-Clinic-Provider": "no-such-provider"},
        {"X-Scrubs-Clinic-Api-Key": "scrubs_wrong"},
        {},
    ],
)
def test_error_bodies_never_hold_the_secret_sent(client, org, headers):
    sent = org.headers() | headers
    response = client.post(PATH, headers=sent, json={"start_date": sent["X-Scrubs-Clinic-Api-Key"]})
    assert response.status_code >= 400
    assert sent["X-Scrubs-Clinic-Api-Key"] not in response.get_data(as_text=True)
