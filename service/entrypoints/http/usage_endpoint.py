"""POST /api/v1/usage-analytics: authenticate, read the body, call the use case, write JSON."""

from __future__ import annotations

from functools import cache

from flask import Blueprint, Response, request

from schemas.usage_analytics import UsageAnalyticsRequest
from service.domain.figures import UsageQuery
from service.entrypoints.http.body import load_with, read_json_object
from service.entrypoints.http.conventions import current_services, json_response, note_organisation
from service.usecases.auth import authenticate, require_root
from service.usecases.figures import usage_for_range

API_KEY_HEADER = "X-Scrubs-Clinic-Api-Key"
PROVIDER_HEADER = "X-Scrubs-Clinic-Provider"
PATH = "/api/v1/usage-analytics"

blueprint = Blueprint("usage_analytics", __name__)


@cache
def request_schema(max_range_days: int) -> UsageAnalyticsRequest:
    return UsageAnalyticsRequest(max_range_days=max_range_days)


@blueprint.post(PATH)
def usage_analytics() -> Response:
    services = current_services()
    principal = authenticate(
        services.directory,
        request.headers.get(PROVIDER_HEADER),
        request.headers.get(API_KEY_HEADER),
    )
    note_organisation(principal.organisation_id)
    require_root(principal)
    schema = request_schema(services.settings.max_range_days)
    body = load_with(schema, read_json_object(request))
    query = UsageQuery(body["start_date"], body["end_date"], body["api_key_id"])
    return json_response(usage_for_range(services, principal, query).as_json())
