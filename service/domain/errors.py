"""What can go wrong with a question about usage, one type per case the API documents
(how each is written on the wire is the HTTP entrypoint's business), and the broken rule
of a value."""

from __future__ import annotations


class RuleBroken(ValueError):
    """A value breaks its documented rule (a name, a provider id); the message says which."""


class QueryRefused(Exception):
    """A question the service will not answer; `code` names the case, `detail` explains it
    in words a client developer can act on."""

    code: str = "internal_error"
    detail: str = "The service could not complete the request. Try again later."

    def __init__(self, detail: str | None = None) -> None:
        self.detail = detail or self.detail
        super().__init__(self.detail)


class AuthenticationFailed(QueryRefused):
    code = "authentication_failed"
    detail = (
        "The X-Scrubs-Clinic-Api-Key or X-Scrubs-Clinic-Provider header is missing, "
        "or the API key is not valid for the provider."
    )


class InvalidProvider(QueryRefused):
    code = "invalid_provider"
    detail = "The X-Scrubs-Clinic-Provider header does not map to a known organisation."


class RootKeyRequired(QueryRefused):
    code = "root_key_required"
    detail = "The API key is valid but does not have root-level permission for this operation."


class InvalidRequest(QueryRefused):
    """`errors`: field -> messages."""

    code = "invalid_request"
    detail = (
        "start_date and end_date are required in YYYY-MM-DD format. "
        "start_date must be before or equal to end_date."
    )

    def __init__(self, errors: dict[str, list[str]], detail: str | None = None) -> None:
        super().__init__(detail)
        self.errors = errors


class NotAcceptable(QueryRefused):
    code = "not_acceptable"
    detail = (
        "The Accept header allows neither application/json nor text/csv, the formats of the answer."
    )


class ApiKeyOutsideOrganisation(QueryRefused):
    code = "api_key_outside_organisation"
    detail = "The requested api_key_id belongs to a different organisation than the root key."


class ApiKeyNotFound(QueryRefused):
    code = "api_key_not_found"
    detail = "The requested api_key_id does not exist, or the key has no linked clinic."
