"""Who holds keys: organisations, their providers (the id clients send) and clinics."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple
from uuid import UUID

from service.domain.moments import rfc3339


class Organisation(NamedTuple):
    id: UUID
    name: str
    created_at: datetime

    def as_json(self) -> dict:
        return {"id": str(self.id), "name": self.name, "created_at": rfc3339(self.created_at)}


class Provider(NamedTuple):
    id: str
    organisation_id: UUID
    name: str | None
    created_at: datetime

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "organisation_id": str(self.organisation_id),
            "name": self.name,
            "created_at": rfc3339(self.created_at),
        }


class Clinic(NamedTuple):
    id: UUID
    organisation_id: UUID
    name: str
    created_at: datetime

    def as_json(self) -> dict:
        return {
            "id": str(self.id),
            "organisation_id": str(self.organisation_id),
            "name": self.name,
            "created_at": rfc3339(self.created_at),
        }
