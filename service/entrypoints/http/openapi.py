"""The OpenAPI 3.1 document of the service, built from the marshmallow schemas that
validate requests and describe responses (apispec), with every documented status."""

from __future__ import annotations

from functools import cache
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from schemas.operations import Health, Readiness
from schemas.problem import Problem as ProblemSchema
from schemas.usage_analytics import (
    ISO_DATE,
    CalendarDate,
    UsageAnalyticsRequest,
    UsageAnalyticsResponse,
)
from service.domain import errors
from service.entrypoints.http.problems import (
    INTERNAL_ERROR,
    PROBLEM_CONTENT_TYPE,
    Problem,
    method_not_allowed,
    problem_for,
)
from service.entrypoints.http.usage_endpoint import API_KEY_HEADER, PATH, PROVIDER_HEADER

DESCRIPTION = """\
Usage of an organisation's API keys: billable requests (`usage`), LLM tokens (`tokens`) and
seconds of speech-to-text audio (`stt_duration`), for an inclusive range of days. Needs a
root API key. Figures are exact and include every usage event whose import returned before
the request. Without query options the days are UTC days; `time_zone`, `granularity`,
`api_key_ids` and `group_by` (with `limit` and `cursor` for its pages) ask for local hours,
days, weeks or months, several keys, or figures per key or clinic. `Accept: text/csv`
answers CSV.

Checks run in this order and the first that fails answers, as RFC 9457 problem details:

1. a header missing or blank (401);
2. an unknown provider (400);
3. an unknown, revoked or foreign key (401);
4. not a root key (403);
5. an invalid body (400), then an `Accept` header that allows neither JSON nor CSV (406);
6. a target key of another organisation (403);
7. a target key unknown or without a clinic (404).
"""

CSV_EXAMPLE = (
    "bucket,clinic_id,clinic_name,tokens,usage,stt_duration\r\n"
    "2024-03-09,6f1c0d2e-4b5a-4978-8796-a5b4c3d2e1f0,Northside,1000000,25,70\r\n"
)

RESPONSE_EXAMPLE = {
    "api_key": None,
    "total": {"stt_duration": 55, "tokens": 1800000, "usage": 45},
    "deltas": {
        "2024-01-15": {"tokens": 1000000, "usage": 25, "stt_duration": 30},
        "2024-01-16": {"tokens": 800000, "usage": 20, "stt_duration": 25},
    },
}


def problem_example(problem: Problem) -> dict[str, Any]:
    return {"summary": problem.title, "value": problem.body("3f0c1d2e4b5a69788796a5b4c3d2e1f0")}


def problem_response(description: str, *cases: Problem | errors.QueryRefused) -> dict[str, Any]:
    problems = [case if isinstance(case, Problem) else problem_for(case) for case in cases]
    return {
        "description": description,
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}},
        "content": {
            PROBLEM_CONTENT_TYPE: {
                "schema": "Problem",
                "examples": {problem.code: problem_example(problem) for problem in problems},
            }
        },
    }


def json_response(description: str, schema: str | dict, example: Any = None) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {
        "description": description,
        "headers": {"X-Request-ID": {"$ref": "#/components/headers/RequestId"}},
        "content": {"application/json": content},
    }


def figures_response() -> dict[str, Any]:
    answer = json_response(
        "Figures per bucket with usage, and their total (with group_by, per group too).",
        "UsageAnalyticsResponse",
        RESPONSE_EXAMPLE,
    )
    answer["content"]["text/csv"] = {
        "schema": {"type": "string"},
        "example": CSV_EXAMPLE,
    }
    answer["headers"]["Content-Disposition"] = {
        "description": 'CSV only: attachment; filename="usage-START-END.csv".',
        "schema": {"type": "string"},
    }
    return answer


def _calendar_date(converter: Any, field: Any, **kwargs: Any) -> dict[str, Any]:
    if isinstance(field, CalendarDate):
        return {"type": "string", "format": "date", "pattern": f"^{ISO_DATE.pattern}$"}
    return {}


@cache
def openapi_document(max_range_days: int = 366) -> dict[str, Any]:
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title="Scrubs usage analytics",
        version="1.0.0",
        openapi_version="3.1.0",
        plugins=[plugin],
        info={"description": DESCRIPTION},
        servers=[{"url": "/"}],
    )
    plugin.converter.add_attribute_function(_calendar_date)
    spec.components.security_scheme(
        "ApiKey",
        {
            "type": "apiKey",
            "in": "header",
            "name": API_KEY_HEADER,
            "description": "The key's secret.",
        },
    )
    spec.components.security_scheme(
        "Provider",
        {
            "type": "apiKey",
            "in": "header",
            "name": PROVIDER_HEADER,
            "description": "The provider id of your EHR application; it names your organisation.",
        },
    )
    spec.components.header(
        "RequestId",
        {
            "description": "The client's X-Request-ID (1-128 printable characters), or a new id.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
        },
    )
    spec.components.schema("UsageAnalyticsRequest", schema=UsageAnalyticsRequest)
    spec.components.schema("UsageAnalyticsResponse", schema=UsageAnalyticsResponse)
    spec.components.schema("Problem", schema=ProblemSchema)
    spec.components.schema("Health", schema=Health)
    spec.components.schema("Readiness", schema=Readiness)

    invalid_body = errors.InvalidRequest({"start_date": ["Not a valid date: use YYYY-MM-DD."]})
    spec.path(
        path=PATH,
        operations={
            "post": {
                "operationId": "usageAnalytics",
                "summary": "Usage of the organisation's API keys per day, or per local bucket",
                "description": (
                    f"The range is inclusive and spans at most {max_range_days} days. "
                    "Without `api_key_id` the figures cover every key of the organisation, "
                    "revoked ones included; with it, that key alone, which `api_key` describes."
                ),
                "security": [{"ApiKey": [], "Provider": []}],
                "parameters": [
                    {
                        "in": "header",
                        "name": "X-Request-ID",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": (
                            "Echoed back when it is 1-128 printable ASCII characters; "
                            "otherwise the response carries a new one."
                        ),
                    },
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": "UsageAnalyticsRequest",
                            "example": {"start_date": "2024-01-01", "end_date": "2024-01-31"},
                        }
                    },
                },
                "responses": {
                    "200": figures_response(),
                    "400": problem_response(
                        "The provider id maps to no organisation, or the body is invalid.",
                        errors.InvalidProvider(),
                        invalid_body,
                    ),
                    "401": problem_response(
                        "A header is missing, or the key is unknown, revoked or of another "
                        "organisation.",
                        errors.AuthenticationFailed(),
                    ),
                    "403": problem_response(
                        "The key is not a root key, or api_key_id is a key of another "
                        "organisation.",
                        errors.RootKeyRequired(),
                        errors.ApiKeyOutsideOrganisation(),
                    ),
                    "404": problem_response(
                        "api_key_id names no key, or a key with no clinic.",
                        errors.ApiKeyNotFound(),
                    ),
                    "405": problem_response(
                        "Only POST is allowed here.", method_not_allowed(["POST"])
                    ),
                    "406": problem_response(
                        "The Accept header allows neither application/json nor text/csv.",
                        errors.NotAcceptable(),
                    ),
                    "500": problem_response("An unexpected failure.", INTERNAL_ERROR),
                },
            }
        },
    )
    spec.path(
        path="/healthz",
        operations={
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process serves (touches no dependency)",
                "responses": {"200": json_response("Alive.", "Health", {"status": "ok"})},
            }
        },
    )
    spec.path(
        path="/readyz",
        operations={
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: Postgres answers (Redis missing only degrades)",
                "responses": {
                    "200": json_response("Ready: `ok`, or `degraded` without Redis.", "Readiness"),
                    "503": json_response("Postgres does not answer.", "Readiness"),
                },
            }
        },
    )
    spec.path(
        path="/metrics",
        operations={
            "get": {
                "operationId": "metrics",
                "summary": "Prometheus metrics of every worker",
                "responses": {
                    "200": {
                        "description": "Prometheus text format.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    )
    spec.path(
        path="/openapi.json",
        operations={
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    )
    spec.path(
        path="/docs",
        operations={
            "get": {
                "operationId": "docs",
                "summary": "This document as a page for people (Swagger UI)",
                "responses": {
                    "200": {
                        "description": "An HTML page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    )
    return spec.to_dict()
