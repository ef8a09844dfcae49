"""The CSV answer of POST /api/v1/usage-analytics, for `Accept: text/csv`."""

from __future__ import annotations

from flask import Response

from service.domain.reports import Report
from service.entrypoints.report_formats import csv_body

CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


def csv_response(report: Report) -> Response:
    response = Response(csv_body(report), content_type=CSV_CONTENT_TYPE)
    name = f"usage-{report.query.start.isoformat()}-{report.query.end.isoformat()}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
