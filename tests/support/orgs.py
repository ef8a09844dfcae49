"""Organisations to test with: a provider, a root key and clinic keys, with their secrets,
made through the administration use cases as the command line makes them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from service.usecases import admin
from service.usecases.ports import Directory


@dataclass
class Key:
    id: str
    secret: str
    clinic_id: str | None
    is_root: bool


@dataclass
class Org:
    id: str
    provider_id: str
    root: Key
    clinic_keys: list[Key] = field(default_factory=list)
    clinics: dict[str, str] = field(default_factory=dict)  # clinic id -> name

    def headers(self, key: Key | None = None) -> dict[str, str]:
        """The API's headers with this organisation's provider id and a key's secret (the
        root key's unless another is given)."""
        return {
            "X-Scrubs-Clinic-Api-Key": (key or self.root).secret,
            "X-Scrubs-Clinic-Provider": self.provider_id,
            "Content-Type": "application/json",
        }

    @property
    def key_ids(self) -> list[str]:
        return [key.id for key in self.clinic_keys]


def create_org(directory: Directory, clinic_keys: int = 2, name: str = "Test Org") -> Org:
    """A new organisation with a provider, a root key, and `clinic_keys` clinics with a
    key each."""
    organisation = admin.create_organisation(directory, name)
    org_id = uuid.UUID(organisation["id"])
    provider = admin.create_provider(directory, org_id, f"prv-{uuid.uuid4().hex[:10]}")
    root, root_secret = admin.create_api_key(directory, org_id, "root", is_root=True)
    org = Org(
        id=organisation["id"],
        provider_id=provider["id"],
        root=Key(str(root.id), root_secret, None, True),
    )
    for n in range(clinic_keys):
        clinic = admin.create_clinic(directory, org_id, f"Clinic {n}")
        key, secret = admin.create_api_key(
            directory, org_id, f"clinic key {n}", clinic_id=uuid.UUID(clinic["id"])
        )
        org.clinics[clinic["id"]] = clinic["name"]
        org.clinic_keys.append(Key(str(key.id), secret, clinic["id"], False))
    return org
