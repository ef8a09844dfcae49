"""The documented failures of the API, one type each, and how they are written (RFC 9457)."""

from __future__ import annotations

from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ApiError(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Unexpected server failure."
    detail: str = "The service could not complete the request. Try again later."

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail
        self.errors = errors
        self.headers = headers or {}

    def problem(self, request_id: str) -> dict[str, Any]:
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


class AuthenticationFailed(ApiError):
    status = 401
    code = "authentication_failed"
    title = "API key authentication failed."
    detail = (
        "The X-Scrubs-Clinic-Api-Key or X-Scrubs-Clinic-Provider header is missing, "
        "or the API key is not valid for the provider."
    )


class InvalidProvider(ApiError):
    status = 400
    code = "invalid_provider"
    title = "Provider ID is invalid."
    detail = "The X-Scrubs-Clinic-Provider header does not map to a known organisation."


class RootKeyRequired(ApiError):
    status = 403
    code = "root_key_required"
    title = "Root API key is required."
    detail = "The API key is valid but does not have root-level permission for this operation."


class InvalidRequest(ApiError):
    status = 400
    code = "invalid_request"
    title = "Request body is invalid."
    detail = (
        "start_date and end_date are required in YYYY-MM-DD format. "
        "start_date must be before or equal to end_date."
    )

    def __init__(self, errors: dict[str, list[str]], detail: str | None = None) -> None:
        super().__init__(detail, errors=errors)


class ApiKeyOutsideOrganisation(ApiError):
    status = 403
    code = "api_key_outside_organisation"
    title = "Target API key is outside the organisation."
    detail = "The requested api_key_id belongs to a different organisation than the root key."


class ApiKeyNotFound(ApiError):
    status = 404
    code = "api_key_not_found"
    title = "Target API key or clinic was not found."
    detail = "The requested api_key_id does not exist, or the key has no linked clinic."


class InternalError(ApiError):
    pass


class HttpClientError(ApiError):
    """A client error outside the documented cases (say 413 on another route), as a problem."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = "bad_request" if status == 400 else "client_error"
        self.title = title


class RouteNotFound(ApiError):
    status = 404
    code = "not_found"
    title = "Resource not found."
    detail = "No resource lives at this path. The API is POST /api/v1/usage-analytics."


class MethodNotAllowed(ApiError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed."
    detail = "This resource does not accept that method; the Allow header lists those it does."
