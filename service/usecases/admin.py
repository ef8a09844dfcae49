"""Administration: organisations, providers, clinics and API keys (README, "Command line")."""

from __future__ import annotations

import secrets
import uuid
from typing import Any
from uuid import UUID

from service.domain.keys import (
    ApiKeyInfo,
    NewApiKey,
    check_provider_id,
    clean_name,
    describe_key,
    display_prefix,
    hash_secret,
    new_secret,
)
from service.domain.moments import rfc3339
from service.usecases.errors import OperationFailed
from service.usecases.ports import Directory


def create_organisation(
    directory: Directory, name: str, organisation_id: UUID | None = None
) -> dict:
    organisation_id = organisation_id or uuid.uuid4()
    name = clean_name(name, "organisation")
    created_at = directory.add_organisation(organisation_id, name)
    return {"id": str(organisation_id), "name": name, "created_at": rfc3339(created_at)}


def create_provider(
    directory: Directory,
    organisation_id: UUID,
    provider_id: str | None = None,
    name: str | None = None,
) -> dict:
    provider_id = check_provider_id(
        provider_id if provider_id is not None else "prv-" + secrets.token_hex(8)
    )
    name = None if name is None else clean_name(name, "provider")
    require_organisation(directory, organisation_id)
    if not directory.add_provider(provider_id, organisation_id, name):
        raise OperationFailed(f"provider id {provider_id!r} is already taken")
    return {"id": provider_id, "organisation_id": str(organisation_id), "name": name}


def create_clinic(
    directory: Directory, organisation_id: UUID, name: str, clinic_id: UUID | None = None
) -> dict:
    clinic_id = clinic_id or uuid.uuid4()
    name = clean_name(name, "clinic")
    require_organisation(directory, organisation_id)
    directory.add_clinic(clinic_id, organisation_id, name)
    return {"id": str(clinic_id), "organisation_id": str(organisation_id), "name": name}


def create_api_key(
    directory: Directory,
    organisation_id: UUID,
    name: str,
    *,
    clinic_id: UUID | None = None,
    is_root: bool = False,
    api_key_id: UUID | None = None,
) -> tuple[ApiKeyInfo, str]:
    """The new key and its secret: the one time the secret exists outside the caller."""
    name = clean_name(name, "key")
    require_organisation(directory, organisation_id)
    if clinic_id is not None and directory.clinic_organisation(clinic_id) != organisation_id:
        raise OperationFailed(
            f"clinic {clinic_id} is not a clinic of organisation {organisation_id}"
        )
    secret = new_secret()
    key = directory.add_api_key(
        NewApiKey(
            id=api_key_id or uuid.uuid4(),
            organisation_id=organisation_id,
            clinic_id=clinic_id,
            name=name,
            prefix=display_prefix(secret),
            secret_hash=hash_secret(secret),
            is_root=is_root,
        )
    )
    return key, secret


def key_with_secret(key: ApiKeyInfo, secret: str) -> dict[str, Any]:
    return {**describe_key(key), "organisation_id": str(key.organisation_id), "secret": secret}


def revoke_api_key(directory: Directory, api_key_id: UUID) -> dict:
    revoked_at = directory.revoke_api_key(api_key_id)
    if revoked_at is None:
        raise OperationFailed(f"no API key has id {api_key_id}")
    return {"id": str(api_key_id), "revoked_at": rfc3339(revoked_at)}


def require_organisation(directory: Directory, organisation_id: UUID) -> None:
    if not directory.organisation_ids(organisation_id):
        raise OperationFailed(f"no organisation has id {organisation_id}")


def list_organisations(directory: Directory) -> list[dict]:
    return [organisation.as_json() for organisation in directory.organisations()]


def list_providers(directory: Directory, organisation_id: UUID | None = None) -> list[dict]:
    if organisation_id is not None:
        require_organisation(directory, organisation_id)
    return [provider.as_json() for provider in directory.providers(organisation_id)]


def list_clinics(directory: Directory, organisation_id: UUID) -> list[dict]:
    require_organisation(directory, organisation_id)
    return [clinic.as_json() for clinic in directory.clinics(organisation_id)]


def list_keys(directory: Directory, organisation_id: UUID) -> list[dict]:
    """Without their secrets (never stored), with revoked_at; oldest first."""
    require_organisation(directory, organisation_id)
    keys = sorted(directory.organisation_keys(organisation_id), key=lambda k: (k.created_at, k.id))
    return [{**describe_key(key), "organisation_id": str(key.organisation_id)} for key in keys]
