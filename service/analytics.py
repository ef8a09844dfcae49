"""The use case behind POST /api/v1/usage-analytics: figures per UTC day for a range."""

from __future__ import annotations

from uuid import UUID

from schemas.usage_event import UUID_TEXT
from service import repository
from service.context import Services
from service.domain import ApiKeyInfo, DayUsage, Principal, UsageQuery, UsageSummary
from service.errors import ApiKeyNotFound, ApiKeyOutsideOrganisation


def usage_for_range(services: Services, principal: Principal, query: UsageQuery) -> UsageSummary:
    """CONTRACT §1 checks 6-7, then the figures: org-wide, or one key of the organisation."""
    if query.api_key_id is None:
        days = services.db.read(
            repository.organisation_daily_usage, principal.organisation_id, query.start, query.end
        )
        return UsageSummary(None, _with_usage(days))
    target = target_key(services, principal, query.api_key_id)
    days = services.db.read(repository.key_daily_usage, target.id, query.start, query.end)
    return UsageSummary(target, _with_usage(days))


def target_key(services: Services, principal: Principal, api_key_id: str) -> ApiKeyInfo:
    if not UUID_TEXT.fullmatch(api_key_id):
        raise ApiKeyNotFound()  # key ids are UUIDs: this names no key
    key = services.db.read(repository.api_key_info, UUID(api_key_id))
    if key is None:
        raise ApiKeyNotFound()
    if key.organisation_id != principal.organisation_id:
        raise ApiKeyOutsideOrganisation()
    if key.clinic_id is None:
        raise ApiKeyNotFound("The requested api_key_id has no linked clinic.")
    return key


def _with_usage(days: list[DayUsage]) -> list[DayUsage]:
    return [day for day in days if not day.is_empty]
