"""Operational routes: liveness, readiness, metrics, the OpenAPI document."""

from __future__ import annotations

from flask import Blueprint, Response

from service.entrypoints.http.conventions import current_services, json_response
from service.entrypoints.http.openapi import openapi_document
from service.observability import metrics
from service.usecases.readiness import readiness

blueprint = Blueprint("operations", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    report = readiness(current_services())
    return json_response(report, 200 if report["status"] != "unavailable" else 503)


@blueprint.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.exposition(current_services().settings.metrics_dir)
    return Response(body, content_type=content_type)


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return json_response(openapi_document(current_services().settings.max_range_days))
