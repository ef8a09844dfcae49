"""POST /api/v1/usage-analytics: authenticate, read the body, call the use case, write the
answer (JSON, or CSV when the Accept header asks for it)."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache, lru_cache
from types import MappingProxyType

from flask import Blueprint, Request, Response, request
from werkzeug.datastructures import MIMEAccept

from schemas.usage_analytics import OPTIONS, UsageAnalyticsRequest
from service.domain.errors import NotAcceptable
from service.domain.figures import UsageQuery
from service.domain.reports import ReportQuery
from service.entrypoints.http.body import invalid_fields, json_object, load_with, read_body
from service.entrypoints.http.conventions import (
    current_services,
    environ_key,
    note_organisation,
)
from service.entrypoints.http.csv_answer import csv_response
from service.entrypoints.report_formats import json_text, summary_json
from service.usecases import reports
from service.usecases.auth import authenticate, require_root
from service.usecases.figures import usage_for_range

API_KEY_HEADER = "X-Scrubs-Clinic-Api-Key"
PROVIDER_HEADER = "X-Scrubs-Clinic-Provider"
PATH = "/api/v1/usage-analytics"
PROVIDER_ENVIRON, API_KEY_ENVIRON = environ_key(PROVIDER_HEADER), environ_key(API_KEY_HEADER)
ACCEPT_ENVIRON = environ_key("Accept")
JSON, CSV = "application/json", "text/csv"

blueprint = Blueprint("usage_analytics", __name__)


# Bodies up to this size are read once per worker: clients (dashboards) ask the same
# question again and again, and its reading is the same every time.
REMEMBERED_BODY_BYTES = 1024


@cache
def request_schema(max_range_days: int) -> UsageAnalyticsRequest:
    return UsageAnalyticsRequest(max_range_days=max_range_days)


def read_question(payload: bytes, max_range_days: int) -> tuple[Mapping, Mapping]:
    """The body as sent and as loaded by the schema (check 5 of the API), read-only;
    InvalidRequest when it is not a valid question."""
    if len(payload) > REMEMBERED_BODY_BYTES:
        return _read_question(payload, max_range_days)
    return _remembered_question(payload, max_range_days)


def _read_question(payload: bytes, max_range_days: int) -> tuple[Mapping, Mapping]:
    raw = json_object(payload)
    body = load_with(request_schema(max_range_days), raw)
    return MappingProxyType(raw), MappingProxyType(body)


_remembered_question = lru_cache(maxsize=512)(_read_question)


def answer_format(request: Request) -> str | None:
    """JSON or CSV, as the Accept header prefers (q-values honoured, JSON on a tie, `*/*` or
    no header at all); None when it allows neither."""
    accept = request.environ.get(ACCEPT_ENVIRON, "").strip()
    if not accept or accept in ("*/*", JSON):  # what most clients send: no need to parse it
        return JSON
    # A media range's parameters other than q (`charset=utf-8`, `header=present`) do not
    # narrow the choice: both answers are UTF-8, and the CSV has its header row.
    ranges = [(item.split(";", 1)[0].strip(), q) for item, q in request.accept_mimetypes]
    return MIMEAccept(ranges).best_match([JSON, CSV])


@blueprint.post(PATH)
def usage_analytics() -> Response:
    services = current_services()
    environ = request.environ
    principal = authenticate(
        services.directory, environ.get(PROVIDER_ENVIRON), environ.get(API_KEY_ENVIRON)
    )
    note_organisation(principal.organisation_id)
    require_root(principal)
    raw, body = read_question(read_body(request), services.settings.max_range_days)
    wanted = answer_format(request)
    if wanted == JSON and OPTIONS.isdisjoint(raw):  # the seed's question, answered as ever
        query = UsageQuery(body["start_date"], body["end_date"], body["api_key_id"])
        summary = usage_for_range(services, principal, query)
        return Response(summary_json(summary), content_type=JSON)
    paged = [name for name in ("limit", "cursor") if raw.get(name) is not None]
    if wanted == CSV and paged:
        no_pages = ["A CSV answer holds every group: it has no pages."]
        raise invalid_fields(dict.fromkeys(paged, no_pages))
    prepared = reports.prepare(services, ReportQuery.from_body(body), principal.organisation_id)
    if wanted is None:
        raise NotAcceptable()
    result = reports.report(services, principal, prepared, every_group=wanted == CSV)
    if wanted == CSV:
        return csv_response(result)
    return Response(json_text(result), content_type=JSON)
