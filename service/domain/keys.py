"""Organisations' API keys: who is calling, how secrets are made, hashed and shown, and the
rules for names and provider ids."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from uuid import UUID

from service.domain.errors import RuleBroken
from service.domain.moments import rfc3339

PROVIDER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
SECRET_PREFIX = "scrubs_"
DISPLAY_PREFIX_LENGTH = len(SECRET_PREFIX) + 6
MAX_NAME_LENGTH = 200


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated API key and the organisation it belongs to."""

    organisation_id: UUID
    api_key_id: UUID
    is_root: bool
    cache_pending: bool = False  # cache invalidations not yet delivered for the organisation


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    id: UUID
    organisation_id: UUID
    name: str
    prefix: str
    clinic_id: UUID | None
    clinic_name: str | None
    is_root: bool
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key about to be stored: its secret is already reduced to a hash and a prefix."""

    id: UUID
    organisation_id: UUID
    clinic_id: UUID | None
    name: str
    prefix: str
    secret_hash: bytes
    is_root: bool


def describe_key(key: ApiKeyInfo) -> dict:
    """The key object of the API's answers: never its secret or hash. Shared between the
    answers that describe the same key alike (a report of a hundred keys, asked again and
    again): copy it to change it."""
    return _described(key)


@lru_cache(maxsize=4096)
def _described(key: ApiKeyInfo) -> dict:
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "clinic_id": None if key.clinic_id is None else str(key.clinic_id),
        "clinic_name": key.clinic_name,
        "is_root": key.is_root,
        "created_at": rfc3339(key.created_at),
        "revoked_at": None if key.revoked_at is None else rfc3339(key.revoked_at),
    }


def new_secret() -> str:
    """256 random bits, URL-safe, with a recognisable prefix."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> bytes:
    """SHA-256 of the secret's UTF-8 bytes: what is stored and looked up, never the secret."""
    return hashlib.sha256(secret.encode("utf-8", errors="surrogatepass")).digest()


def display_prefix(secret: str) -> str:
    """Enough of a secret to tell keys apart in a list, far too little to use."""
    return secret[:DISPLAY_PREFIX_LENGTH]


def clean_name(name: str, what: str) -> str:
    """A display name without its outer blanks, 1-200 characters."""
    name = name.strip()
    if not name:
        raise RuleBroken(f"{what} name must not be blank")
    if len(name) > MAX_NAME_LENGTH:
        raise RuleBroken(f"{what} name is {len(name)} characters long; at most {MAX_NAME_LENGTH}")
    return name


def check_provider_id(provider_id: str) -> str:
    if not PROVIDER_ID.fullmatch(provider_id):
        raise RuleBroken("provider id must be 1-64 characters of A-Z a-z 0-9 . _ -")
    return provider_id
