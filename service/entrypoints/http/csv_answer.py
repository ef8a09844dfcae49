"""The CSV answer of a report (README, "Query options"): RFC 4180, CRLF line ends, a header
row, one row per bucket with usage (per group and bucket when grouped), in the order of the
JSON answer. A text cell a spreadsheet would run as a formula is written with a leading '."""

from __future__ import annotations

import csv
import io

from flask import Response

from service.domain.reports import Group, Report

FORMULA_STARTS = ("=", "+", "-", "@")
CSV_CONTENT_TYPE = "text/csv; charset=utf-8"


def inert(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_body(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    group_by = report.query.group_by
    owner_columns = {
        "api_key": ["api_key_id", "api_key_name"],
        "clinic": ["clinic_id", "clinic_name"],
    }
    writer.writerow(
        ["bucket", *owner_columns.get(group_by or "", []), "tokens", "usage", "stt_duration"]
    )
    keys = report.plan.keys
    if group_by is None:
        for key, found in zip(keys, report.figures, strict=True):
            if any(found):
                writer.writerow([inert(key), *found])
        return out.getvalue()
    for group in report.groups or []:
        owner = [inert(text) for text in _owner(group)]
        for key, found in zip(keys, group.figures, strict=True):
            if any(found):
                writer.writerow([inert(key), *owner, *found])
    return out.getvalue()


def _owner(group: Group) -> tuple[str, str]:
    if group.api_key is not None:
        return str(group.api_key.id), group.api_key.name
    if group.clinic is not None:
        return group.clinic.id, group.clinic.name
    return "", ""


def csv_response(report: Report) -> Response:
    response = Response(csv_body(report), content_type=CSV_CONTENT_TYPE)
    name = f"usage-{report.query.start.isoformat()}-{report.query.end.isoformat()}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
