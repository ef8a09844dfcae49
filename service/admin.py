"""Administration: organisations, providers, clinics and API keys (CONTRACT §3)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any
from uuid import UUID

from service import repository
from service.db import Database
from service.domain import ApiKeyInfo, describe_key, rfc3339
from service.keys import PROVIDER_ID, display_prefix, hash_secret, new_secret

MAX_NAME_LENGTH = 200


class AdminError(Exception):
    """The command cannot do what was asked; the message says why, in one line."""


def clean_name(name: str, what: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise AdminError(f"{what} name must be 1-{MAX_NAME_LENGTH} characters")
    return name


def check_provider_id(provider_id: str) -> str:
    if not PROVIDER_ID.fullmatch(provider_id):
        raise AdminError("provider id must be 1-64 characters of A-Z a-z 0-9 . _ -")
    return provider_id


def create_organisation(db: Database, name: str, organisation_id: UUID | None = None) -> dict:
    organisation_id = organisation_id or uuid.uuid4()
    name = clean_name(name, "organisation")
    with db.connection() as conn:
        created_at = repository.insert_organisation(conn, organisation_id, name)
    return {"id": str(organisation_id), "name": name, "created_at": rfc3339(created_at)}


def create_provider(
    db: Database, organisation_id: UUID, provider_id: str | None = None, name: str | None = None
) -> dict:
    provider_id = check_provider_id(
        provider_id if provider_id is not None else "prv-" + secrets.token_hex(8)
    )
    name = None if name is None else clean_name(name, "provider")
    with db.connection() as conn, conn.transaction():
        _require_organisation(conn, organisation_id)
        if not repository.insert_provider(conn, provider_id, organisation_id, name):
            raise AdminError(f"provider id {provider_id!r} is already taken")
    return {"id": provider_id, "organisation_id": str(organisation_id), "name": name}


def create_clinic(
    db: Database, organisation_id: UUID, name: str, clinic_id: UUID | None = None
) -> dict:
    clinic_id = clinic_id or uuid.uuid4()
    name = clean_name(name, "clinic")
    with db.connection() as conn, conn.transaction():
        _require_organisation(conn, organisation_id)
        repository.insert_clinic(conn, clinic_id, organisation_id, name)
    return {"id": str(clinic_id), "organisation_id": str(organisation_id), "name": name}


def create_api_key(
    db: Database,
    organisation_id: UUID,
    name: str,
    *,
    clinic_id: UUID | None = None,
    is_root: bool = False,
    api_key_id: UUID | None = None,
) -> tuple[ApiKeyInfo, str]:
    """The new key and its secret: the one time the secret exists outside the caller."""
    name = clean_name(name, "key")
    secret = new_secret()
    with db.connection() as conn, conn.transaction():
        _require_organisation(conn, organisation_id)
        if (
            clinic_id is not None
            and repository.clinic_organisation(conn, clinic_id) != organisation_id
        ):
            raise AdminError(
                f"clinic {clinic_id} is not a clinic of organisation {organisation_id}"
            )
        key = repository.insert_api_key(
            conn,
            api_key_id=api_key_id or uuid.uuid4(),
            organisation_id=organisation_id,
            clinic_id=clinic_id,
            name=name,
            prefix=display_prefix(secret),
            secret_hash=hash_secret(secret),
            is_root=is_root,
        )
    return key, secret


def key_with_secret(key: ApiKeyInfo, secret: str) -> dict[str, Any]:
    return {**describe_key(key), "organisation_id": str(key.organisation_id), "secret": secret}


def revoke_api_key(db: Database, api_key_id: UUID) -> dict:
    with db.connection() as conn:
        revoked_at = repository.revoke_api_key(conn, api_key_id)
    if revoked_at is None:
        raise AdminError(f"no API key has id {api_key_id}")
    return {"id": str(api_key_id), "revoked_at": rfc3339(revoked_at)}


def _require_organisation(conn: Any, organisation_id: UUID) -> None:
    if not repository.organisation_exists(conn, organisation_id):
        raise AdminError(f"no organisation has id {organisation_id}")
