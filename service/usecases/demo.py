"""`demo seed`: an organisation to try the API with, the same on every run.

Everything has a fixed id, so a second run adds nothing; usage goes through the import
path, so its event ids make a re-run a no-op too. A secret is only ever stored hashed, so
each run makes a root key of its own and prints its secret: the curl lines printed by
earlier runs keep working.
"""

from __future__ import annotations

import dataclasses
import random
import shlex
import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from service.domain.usage_events import UsageEvent
from service.usecases.admin import create_api_key, create_clinic, create_organisation
from service.usecases.errors import OperationFailed
from service.usecases.imports import ImportReport, import_events
from service.usecases.ports import Services

NAMESPACE = uuid.UUID("6f1c3a52-5b8e-4d0a-9c36-0e7f2d9b4a11")
PROVIDER_ID = "demo-provider"
CLINICS = ("Northside Family Practice", "Riverside Pediatrics", "Harbour Orthopaedics")
DAYS_OF_USAGE = 120
CURL_RANGE_DAYS = 30


def demo_id(name: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, name)


def seed_demo(services: Services, today: date | None = None) -> dict[str, Any]:
    today = today or datetime.now(UTC).date()
    directory = services.directory
    organisation_id = demo_id("organisation")
    create_organisation(directory, "Demo Health Network", organisation_id)
    directory.add_provider(PROVIDER_ID, organisation_id, "Demo EHR")
    if directory.provider_organisation(PROVIDER_ID) != organisation_id:
        raise OperationFailed(f"provider id {PROVIDER_ID!r} belongs to another organisation")
    clinic_keys = []
    for name in CLINICS:
        clinic_id = demo_id(f"clinic:{name}")
        create_clinic(directory, organisation_id, name, clinic_id)
        clinic_keys.append(_ensure_key(services, organisation_id, f"{name} key", clinic_id))
    # A root key of this run's own: a secret is stored only as a hash, so the ones printed
    # by earlier runs cannot be printed again, and they keep working.
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    root, secret = create_api_key(
        directory, organisation_id, f"Demo root key ({made})", is_root=True
    )
    root_key_id = root.id
    report = _import_demo_usage(services, clinic_keys, today)
    return {
        "organisation_id": str(organisation_id),
        "provider_id": PROVIDER_ID,
        "root_key_id": str(root_key_id),
        "root_key_secret": secret,
        "clinic_key_ids": [str(key) for key in clinic_keys],
        "usage_days": f"{today - timedelta(days=DAYS_OF_USAGE - 1)}..{today}",
        "events": report.as_json(),
        "curl": curl_line(services.settings.base_url, secret, today),
    }


def curl_line(base_url: str, secret: str, today: date) -> str:
    start = today - timedelta(days=CURL_RANGE_DAYS - 1)
    body = f'{{"start_date": "{start}", "end_date": "{today}"}}'
    return " ".join(
        [
            "curl -sS -X POST",
            shlex.quote(f"{base_url}/api/v1/usage-analytics"),
            "-H",
            shlex.quote(f"X-Scrubs-Clinic-Api-Key: {secret}"),
            "-H",
            shlex.quote(f"X-Scrubs-Clinic-Provider: {PROVIDER_ID}"),
            "-H 'Content-Type: application/json'",
            "-d",
            shlex.quote(body),
        ]
    )


def _ensure_key(
    services: Services,
    organisation_id: uuid.UUID,
    name: str,
    clinic_id: uuid.UUID | None,
    *,
    is_root: bool = False,
) -> uuid.UUID:
    key_id = demo_id(f"key:{name}")
    if services.directory.api_key(key_id) is None:
        create_api_key(
            services.directory,
            organisation_id,
            name,
            clinic_id=clinic_id,
            is_root=is_root,
            api_key_id=key_id,
        )
    return key_id


def _import_demo_usage(services: Services, keys: list[uuid.UUID], today: date) -> ImportReport:
    now = datetime.now(UTC)

    def events():
        number = 0
        for key_number, key in enumerate(keys):
            for offset in range(DAYS_OF_USAGE):
                day = today - timedelta(days=offset)
                rng = random.Random(f"{key}:{day}")
                busy = 3 if day.weekday() < 5 else 1
                for n in range(rng.randint(2, 8) * busy + key_number):
                    number += 1
                    moment = datetime.combine(day, time(), UTC) + timedelta(
                        seconds=rng.randrange(86_400)
                    )
                    moment = min(moment, now)  # an event has happened by the time it is imported
                    yield (
                        number,
                        UsageEvent(
                            event_id=f"demo-{key}-{day}-{n}",
                            api_key_id=str(key),
                            occurred_at=moment,
                            tokens=rng.randrange(500, 12_000),
                            stt_duration=rng.randrange(30, 900),
                            usage=1,
                        ),
                    )

    def no_rejections(line: int, reason: str) -> None:
        raise OperationFailed(f"demo event {line} was rejected: {reason}")

    # Months of usage whatever EVENT_RETENTION_DAYS says: the rollups keep them, and the raw
    # events past the window go at the next import, as anyone's would.
    settings = dataclasses.replace(services.settings, event_retention_days=None)
    return import_events(
        dataclasses.replace(services, settings=settings), events(), on_rejected=no_rejections
    )
