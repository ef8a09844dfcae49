"""Requests to a running service over loopback HTTP (gunicorn, not the test client)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.support.api import PATH


def http_request(
    base_url: str,
    path: str = PATH,
    body: dict | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, Any]:
    """(status, decoded JSON body or None): POST when there is a body, GET otherwise."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{base_url}{path}",
        data=data,
        headers=headers or {},
        method="POST" if data is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as answer:
        status, raw = answer.code, answer.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, None


def figures_over_http(base_url: str, headers: dict[str, str], body: dict) -> dict:
    """The 200 answer of the API for `body`."""
    status, answer = http_request(base_url, PATH, body, headers, timeout=30)
    assert status == 200, answer
    return answer
