"""POST /api/v1/usage-analytics: authenticate, read the body, call the use case, write JSON."""

from __future__ import annotations

from functools import cache

from flask import Blueprint, Response, request

from schemas.analytics import UsageAnalyticsRequest
from service.analytics import usage_for_range
from service.api.body import load_with, read_json_object
from service.api.http import json_response, note_organisation, services
from service.auth import authenticate, require_root
from service.domain import UsageQuery

API_KEY_HEADER = "X-Scrubs-Clinic-Api-Key"
PROVIDER_HEADER = "X-Scrubs-Clinic-Provider"

blueprint = Blueprint("analytics", __name__)


@cache
def request_schema(max_range_days: int) -> UsageAnalyticsRequest:
    return UsageAnalyticsRequest(max_range_days=max_range_days)


@blueprint.post("/api/v1/usage-analytics")
def usage_analytics() -> Response:
    service = services()
    principal = authenticate(
        service.db, request.headers.get(PROVIDER_HEADER), request.headers.get(API_KEY_HEADER)
    )
    note_organisation(principal.organisation_id)
    require_root(principal)
    schema = request_schema(service.settings.max_range_days)
    body = load_with(schema, read_json_object(request))
    query = UsageQuery(body["start_date"], body["end_date"], body["api_key_id"])
    return json_response(usage_for_range(service, principal, query).as_json())
