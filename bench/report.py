"""The benchmark's chart: throughput per query kind (the I/O floor's beside the service's
where it was measured) and latency under load."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def write_chart(results: dict, path: Path) -> None:
    runs = results["throughput"]
    floor = results.get("floor_throughput", {})
    names = list(runs)
    ys = range(len(names))
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 6))
    service = [runs[n]["requests_per_second"] for n in names]
    left.barh([y - 0.2 for y in ys], service, height=0.4, color="#3b6ea5", label="service")
    floored = [(y, floor[n]["requests_per_second"]) for y, n in enumerate(names) if n in floor]
    left.barh(
        [y + 0.2 for y, _ in floored],
        [rate for _, rate in floored],
        height=0.4,
        color="#a5b8d1",
        label="I/O floor",
    )
    for y, name in enumerate(names):
        text = f" {service[y]:.0f}"
        if name in floor:
            text += f" ({service[y] / floor[name]['requests_per_second']:.2f} of floor)"
        left.text(service[y], y - 0.2, text, va="center", fontsize=8)
    left.set_yticks(list(ys), names)
    left.invert_yaxis()
    left.set_xlabel(f"requests per second (wrk, {results['wrk']['connections']} connections)")
    left.legend(loc="lower right")
    p50 = [runs[n]["p50_ms"] for n in names]
    p99 = [runs[n]["p99_ms"] for n in names]
    right.barh([y - 0.2 for y in ys], p50, height=0.4, label="p50", color="#6aa84f")
    right.barh([y + 0.2 for y in ys], p99, height=0.4, label="p99", color="#cc4125")
    right.set_yticks(list(ys), names)
    right.invert_yaxis()
    right.set_xlabel("latency under load, ms")
    right.legend()
    shape = results["dataset"]
    figure.suptitle(
        f"{shape['organisations']} organisations x {shape['keys_per_organisation']} keys "
        f"(+ {' and '.join(map(str, shape.get('sized_organisations', [])))} keys), "
        f"{shape['days']} days, {shape['events']:,} events; {results['machine']['cores']} cores"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
