"""Reading the live service's /metrics."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def samples(base_url: str, name: str) -> list[tuple[dict, float]]:
    with urllib.request.urlopen(f"{base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def requests_answered(base_url: str, **labels: str) -> float:
    """scrubs_http_requests_total summed over the samples matching `labels`; a status label
    may be a class such as "5xx"."""

    def matches(found: dict, name: str, wanted: str) -> bool:
        if wanted.endswith("xx"):
            return found.get(name, "").startswith(wanted[0])
        return found.get(name) == wanted

    return sum(
        value
        for found, value in samples(base_url, "scrubs_http_requests_total")
        if all(matches(found, name, wanted) for name, wanted in labels.items())
    )
