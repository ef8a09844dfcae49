"""Every failure as the client sees it: RFC 9457 problem details, with the status and the
exact title the API documents for each case."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from service.domain import errors

PROBLEM_CONTENT_TYPE = "application/problem+json"

# Status and title of each documented case (README, "The API").
DOCUMENTED: dict[type[errors.QueryRefused], tuple[int, str]] = {
    errors.AuthenticationFailed: (401, "API key authentication failed."),
    errors.InvalidProvider: (400, "Provider ID is invalid."),
    errors.RootKeyRequired: (403, "Root API key is required."),
    errors.InvalidRequest: (400, "Request body is invalid."),
    errors.NotAcceptable: (406, "Response format is not available."),
    errors.ApiKeyOutsideOrganisation: (403, "Target API key is outside the organisation."),
    errors.ApiKeyNotFound: (404, "Target API key or clinic was not found."),
}


@dataclass(frozen=True)
class Problem:
    status: int
    code: str
    title: str
    detail: str
    errors: dict[str, list[str]] | None = None  # only on invalid_request
    headers: dict[str, str] = field(default_factory=dict)

    def body(self, request_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            "request_id": request_id,
        }
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def problem_for(refusal: errors.QueryRefused) -> Problem:
    status, title = DOCUMENTED[type(refusal)]
    return Problem(status, refusal.code, title, refusal.detail, getattr(refusal, "errors", None))


INTERNAL_ERROR = Problem(
    500,
    "internal_error",
    "Unexpected server failure.",
    "The service could not complete the request. Try again later.",
)
ROUTE_NOT_FOUND = Problem(
    404,
    "not_found",
    "Resource not found.",
    "No resource lives at this path. The API is POST /api/v1/usage-analytics.",
)


def method_not_allowed(allowed: list[str]) -> Problem:
    return Problem(
        405,
        "method_not_allowed",
        "Method not allowed.",
        "This resource does not accept that method; the Allow header lists those it does.",
        headers={"Allow": ", ".join(allowed)} if allowed else {},
    )


def client_error(status: int, title: str, detail: str) -> Problem:
    """A client error outside the documented cases (say 413 on another route)."""
    return Problem(status, "bad_request" if status == 400 else "client_error", title, detail)
