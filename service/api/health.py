"""Liveness and readiness for load balancers (CONTRACT §2)."""

from __future__ import annotations

from flask import Blueprint, Response

from service.api.http import json_response, services
from service.health import readiness

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> Response:
    report = readiness(services())
    return json_response(report, 200 if report["status"] != "unavailable" else 503)
