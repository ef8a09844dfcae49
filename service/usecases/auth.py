"""Who is calling: checks 1-4 of the API (README, "The API"), one lookup per request."""

from __future__ import annotations

from service.domain.errors import AuthenticationFailed, InvalidProvider, RootKeyRequired
from service.domain.keys import PROVIDER_ID, Principal, hash_secret
from service.usecases.ports import Directory

# HTTP's optional whitespace around a field value: space and tab, nothing else (RFC 9110).
OPTIONAL_WHITESPACE = " \t"


def authenticate(directory: Directory, provider_id: str | None, secret: str | None) -> Principal:
    provider_id = (provider_id or "").strip(OPTIONAL_WHITESPACE)
    secret = (secret or "").strip(OPTIONAL_WHITESPACE)
    if not provider_id or not secret:
        raise AuthenticationFailed()
    if not PROVIDER_ID.fullmatch(provider_id):
        raise InvalidProvider()  # no provider can have this id
    found = directory.credentials(provider_id, hash_secret(secret))
    if found is None:
        raise InvalidProvider()
    if (
        found.api_key_id is None
        or found.revoked
        or found.key_organisation_id != found.organisation_id
    ):
        raise AuthenticationFailed()
    return Principal(found.organisation_id, found.api_key_id, found.is_root, found.cache_pending)


def require_root(principal: Principal) -> None:
    if not principal.is_root:
        raise RootKeyRequired()
