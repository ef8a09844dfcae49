"""GET /openapi.json: a valid OpenAPI 3.1 document, generated from the same schemas that
validate requests, naming every documented status of the API."""

from __future__ import annotations

from openapi_spec_validator import validate

from schemas.usage_analytics import UsageAnalyticsRequest

PATH = "/api/v1/usage-analytics"


def document(client) -> dict:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return response.get_json()


def test_the_document_is_valid_openapi_3_1(client):
    spec = document(client)
    assert spec["openapi"] == "3.1.0"
    validate(spec)


def test_every_documented_status_and_problem_code_is_named(client):
    operation = document(client)["paths"][PATH]["post"]
    responses = operation["responses"]
    assert {"200", "400", "401", "403", "404", "500"} <= set(responses)
    codes = {
        example["value"]["code"]
        for status, response in responses.items()
        if status != "200"
        for example in response["content"]["application/problem+json"]["examples"].values()
    }
    assert {
        "authentication_failed",
        "invalid_provider",
        "root_key_required",
        "invalid_request",
        "api_key_outside_organisation",
        "api_key_not_found",
        "internal_error",
    } <= codes
    for status, response in responses.items():
        if status != "200":
            for example in response["content"]["application/problem+json"]["examples"].values():
                assert str(example["value"]["status"]) == status


def test_both_headers_are_required_credentials(client):
    spec = document(client)
    schemes = spec["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values()} == {
        "X-Scrubs-Clinic-Api-Key",
        "X-Scrubs-Clinic-Provider",
    }
    assert all(s["in"] == "header" for s in schemes.values())
    assert spec["paths"][PATH]["post"]["security"] == [{"ApiKey": [], "Provider": []}]


def test_the_request_body_is_the_validating_schema(client):
    spec = document(client)
    body = spec["components"]["schemas"]["UsageAnalyticsRequest"]
    assert set(body["properties"]) == set(UsageAnalyticsRequest().fields)
    assert sorted(body["required"]) == ["end_date", "start_date"]
    assert body["additionalProperties"] is False
    assert body["properties"]["start_date"]["pattern"] == "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
    assert body["properties"]["api_key_id"]["maxLength"] == 128
    assert "null" in body["properties"]["api_key_id"]["type"]


def test_the_operational_routes_are_documented(client):
    paths = document(client)["paths"]
    assert {"/healthz", "/readyz", "/metrics", "/openapi.json"} <= set(paths)
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}
