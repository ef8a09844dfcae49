"""SQL of the directory: organisations, providers, clinics and API keys, and the one
lookup that authenticates a request."""

from __future__ import annotations

import hashlib
from dataclasses import astuple
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from service.adapters.postgres.identity import cache_identity
from service.adapters.postgres.pool import Database
from service.domain.directory import Clinic, Organisation, Provider
from service.domain.keys import ApiKeyInfo, NewApiKey
from service.usecases.ports import Credentials

CREDENTIALS = """
    SELECT p.organisation_id, k.id, k.organisation_id, coalesce(k.is_root, false),
           k.revoked_at IS NOT NULL,
           EXISTS (SELECT 1 FROM cache_outbox o WHERE o.organisation_id = p.organisation_id)
    FROM providers p
    LEFT JOIN api_keys k ON k.secret_hash = %s
    WHERE p.id = %s
"""

KEY_COLUMNS = """
    k.id, k.organisation_id, k.name, k.prefix, k.clinic_id, c.name,
    k.is_root, k.created_at, k.revoked_at
"""
API_KEY = f"""
    SELECT {KEY_COLUMNS}
    FROM api_keys k LEFT JOIN clinics c ON c.id = k.clinic_id
    WHERE k.id = %s
"""
ORGANISATION_KEYS = f"""
    SELECT {KEY_COLUMNS}
    FROM api_keys k LEFT JOIN clinics c ON c.id = k.clinic_id
    WHERE k.organisation_id = %s
    ORDER BY k.id
"""


def _credentials(
    conn: psycopg.Connection, provider_id: str, secret_hash: bytes
) -> Credentials | None:
    row = conn.execute(CREDENTIALS, (secret_hash, provider_id)).fetchone()
    return None if row is None else Credentials(*row)


def _api_key(conn: psycopg.Connection, api_key_id: UUID) -> ApiKeyInfo | None:
    row = conn.execute(API_KEY, (api_key_id,)).fetchone()
    return None if row is None else ApiKeyInfo(*row)


def _organisation_keys(conn: psycopg.Connection, organisation_id: UUID) -> list[ApiKeyInfo]:
    return [ApiKeyInfo(*row) for row in conn.execute(ORGANISATION_KEYS, (organisation_id,))]


class PostgresDirectory:
    """The Directory port (service/usecases/ports.py). Reads of the request path go through
    `Database.read` (retried once, behind the breaker); writes are single statements."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._secret: bytes | None = None

    def _value(self, statement: str, params: tuple) -> Any:
        """The first column of the first row, or None when there is no row."""
        with self.db.connection() as conn:
            row = conn.execute(statement, params).fetchone()
        return None if row is None else row[0]

    def _changed_one(self, statement: str, params: tuple) -> bool:
        with self.db.connection() as conn:
            return conn.execute(statement, params).rowcount == 1

    def credentials(self, provider_id: str, secret_hash: bytes) -> Credentials | None:
        """None when the provider is unknown; otherwise the key is None when no key has
        that hash."""
        return self.db.read(_credentials, provider_id, secret_hash)

    def api_key(self, api_key_id: UUID) -> ApiKeyInfo | None:
        return self.db.read(_api_key, api_key_id)

    def organisations(self) -> list[Organisation]:
        """Oldest first."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT id, name, created_at FROM organisations ORDER BY created_at, id"
            ).fetchall()
        return [Organisation(*row) for row in rows]

    def providers(self, organisation_id: UUID | None = None) -> list[Provider]:
        """Of one organisation or of all, oldest first."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT id, organisation_id, name, created_at FROM providers"
                " WHERE %(org)s::uuid IS NULL OR organisation_id = %(org)s"
                " ORDER BY created_at, id",
                {"org": organisation_id},
            ).fetchall()
        return [Provider(*row) for row in rows]

    def clinics(self, organisation_id: UUID) -> list[Clinic]:
        """Oldest first."""
        with self.db.connection() as conn:
            rows = conn.execute(
                "SELECT id, organisation_id, name, created_at FROM clinics"
                " WHERE organisation_id = %s ORDER BY created_at, id",
                (organisation_id,),
            ).fetchall()
        return [Clinic(*row) for row in rows]

    def organisation_keys(self, organisation_id: UUID) -> list[ApiKeyInfo]:
        """Every key of the organisation, revoked ones included, ordered by id."""
        return self.db.read(_organisation_keys, organisation_id)

    def service_secret(self) -> bytes:
        """A secret of this database, the same for every process that serves it (signs the
        cursors of pages)."""
        if self._secret is None:
            self._secret = hashlib.sha256(b"scrubs:" + cache_identity(self.db).encode()).digest()
        return self._secret

    def organisation_ids(self, only: UUID | None = None) -> list[UUID]:
        with self.db.connection() as conn:
            if only is not None:
                found = conn.execute("SELECT id FROM organisations WHERE id = %s", (only,))
            else:
                found = conn.execute("SELECT id FROM organisations ORDER BY id")
            return [row[0] for row in found]

    def add_organisation(self, organisation_id: UUID, name: str) -> datetime:
        """Its creation time; an organisation that exists keeps its name and time."""
        return self._value(
            "INSERT INTO organisations (id, name) VALUES (%s, %s)"
            " ON CONFLICT (id) DO UPDATE SET name = organisations.name"
            " RETURNING created_at",
            (organisation_id, name),
        )

    def add_provider(self, provider_id: str, organisation_id: UUID, name: str | None) -> bool:
        """False when the id is taken (by this organisation or another)."""
        return self._changed_one(
            "INSERT INTO providers (id, organisation_id, name) VALUES (%s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            (provider_id, organisation_id, name),
        )

    def provider_organisation(self, provider_id: str) -> UUID | None:
        return self._value("SELECT organisation_id FROM providers WHERE id = %s", (provider_id,))

    def add_clinic(self, clinic_id: UUID, organisation_id: UUID, name: str) -> None:
        self._changed_one(
            "INSERT INTO clinics (id, organisation_id, name) VALUES (%s, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            (clinic_id, organisation_id, name),
        )

    def clinic_organisation(self, clinic_id: UUID) -> UUID | None:
        return self._value("SELECT organisation_id FROM clinics WHERE id = %s", (clinic_id,))

    def add_api_key(self, key: NewApiKey) -> ApiKeyInfo:
        with self.db.connection() as conn:
            conn.execute(
                "INSERT INTO api_keys"
                " (id, organisation_id, clinic_id, name, prefix, secret_hash, is_root)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                astuple(key),
            )
            info = _api_key(conn, key.id)
        assert info is not None
        return info

    def revoke_api_key(self, api_key_id: UUID) -> datetime | None:
        """The key's revocation time (kept from an earlier revoke), or None for an unknown
        key."""
        return self._value(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())"
            " WHERE id = %s RETURNING revoked_at",
            (api_key_id,),
        )
