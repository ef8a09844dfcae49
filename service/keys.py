"""API key material: how secrets are made, hashed and shown, and what a provider id is."""

from __future__ import annotations

import hashlib
import re
import secrets

PROVIDER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
SECRET_PREFIX = "scrubs_"
DISPLAY_PREFIX_LENGTH = len(SECRET_PREFIX) + 6


def new_secret() -> str:
    """256 random bits, URL-safe, with a recognisable prefix."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> bytes:
    """SHA-256 of the secret's UTF-8 bytes: what is stored and looked up, never the secret."""
    return hashlib.sha256(secret.encode("utf-8", errors="surrogatepass")).digest()


def display_prefix(secret: str) -> str:
    """Enough of a secret to tell keys apart in a list, far too little to use."""
    return secret[:DISPLAY_PREFIX_LENGTH]
