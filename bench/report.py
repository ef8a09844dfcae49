"""The benchmark's chart: throughput and latency per query kind."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def write_chart(results: dict, path: Path) -> None:
    runs = results["throughput"]
    names = list(runs)
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    left.barh(names, [runs[n]["requests_per_second"] for n in names], color="#3b6ea5")
    left.set_xlabel(f"requests per second (wrk, {results['wrk']['connections']} connections)")
    left.invert_yaxis()
    for y, name in enumerate(names):
        left.text(
            runs[name]["requests_per_second"],
            y,
            f" {runs[name]['requests_per_second']:.0f}",
            va="center",
        )
    p50 = [runs[n]["p50_ms"] for n in names]
    p99 = [runs[n]["p99_ms"] for n in names]
    ys = range(len(names))
    right.barh([y - 0.2 for y in ys], p50, height=0.4, label="p50", color="#6aa84f")
    right.barh([y + 0.2 for y in ys], p99, height=0.4, label="p99", color="#cc4125")
    right.set_yticks(list(ys), names)
    right.invert_yaxis()
    right.set_xlabel("latency under load, ms")
    right.legend()
    shape = results["dataset"]
    figure.suptitle(
        f"{shape['organisations']} organisations x {shape['keys_per_organisation']} keys, "
        f"{shape['days']} days, {shape['events']:,} events; {results['machine']['cores']} cores"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
