"""Instants and days as the service writes and counts them: UTC throughout."""

from __future__ import annotations

from datetime import UTC, date, datetime


def utc_today() -> date:
    return datetime.now(UTC).date()


def rfc3339(moment: datetime) -> str:
    """UTC to the second, with a Z: 2024-01-15T09:30:00Z."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
