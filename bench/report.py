"""The benchmark's chart: throughput per query kind (the I/O floor's beside the service's
where it was measured) and latency under load."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.profiles import is_wait
from bench.wrk import ROUNDS


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


def _figure(value) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


README = Path(__file__).resolve().parents[1] / "README.md"
PAGE = README.with_name("docs") / "performance.md"


def readme_section(results: dict) -> str:
    """The README's "Performance" section: the targets of the last run, the rest on
    docs/performance.md."""
    out = [
        "## Performance",
        "",
        f"Every figure is a ratio taken in one `make bench` run ({results['generated_at'][:10]},"
        " standard dataset of 5,000,000 events; warm queries against the **I/O floor**, a bare"
        " WSGI function doing the same query's I/O under the same gunicorn config). Throughput"
        " and p99 per query, storage per event and per rollup row, and where the time goes for"
        " each unmet target: [docs/performance.md](docs/performance.md).",
        "",
        *_targets(results),
        "",
        _storage(results),
    ]
    return "\n".join(map(_wrapped, out)) + "\n"


def _targets(results: dict) -> list[str]:
    out = ["| target | goal | measured | |", "| --- | --- | --- | --- |"]
    for t in results["targets"]:
        goal = t["target"].replace(">=", "≥").replace("<=", "≤")
        measured = f"{_figure(t['measured'])} ({t['detail']})".replace("|", "\\|")
        out.append(
            f"| {t['what']} | {goal} | {measured} | {'met' if t['met'] else '**not met**'} |"
        )
    return out


def markdown(results: dict) -> str:
    """docs/performance.md for a run: every target with its measurement, throughput and p99
    per query, storage, and where the time goes for unmet targets."""
    shape, machine = results["dataset"], results["machine"]
    sized = " and ".join(f"{n:,}" for n in shape["sized_organisations"])
    out = [
        "# Performance",
        "",
        f"`make bench` ({results['run_seconds'] / 60:.0f} minutes for the last run here;"
        " `make bench-small` in about three) loads the standard dataset through `usage import`:"
        f" {shape['organisations']} organisations of {shape['keys_per_organisation']} keys and"
        f" two of {sized} keys, {shape['days']} days, {shape['events']:,} events. Every figure"
        " is a ratio taken in one run, on"
        f" {machine['cores']} cores shared by wrk ({results['wrk']['connections']} connections),"
        " gunicorn (shipped config,"
        f" {results['gunicorn']['workers']} workers x {results['gunicorn']['threads']} threads),"
        " Postgres and Redis, and with other people's work on the same machine: ratios move"
        " between runs. Warm queries are measured against the **I/O floor**"
        " (`bench/floor.py`): the same gunicorn config serving a bare WSGI function that runs"
        " the service's auth statement on the service's pool, the organisation's keys"
        " statement where a report by key reads them, and the HMGETs of the range packed as"
        " the cache packs them (quarter-hour points included for a zone), then writes the"
        " service's own answer, prebuilt. Service and floor run in turn, in legs of half"
        f" the run's {results['wrk']['duration_s']} s ({ROUNDS} rounds of service, floor,"
        " floor, service). Figures of the last run"
        f" ({results['generated_at'][:10]}, `bench/results/latest.json`):",
        "",
        "![throughput and latency per query kind](../bench/results/latest.png)",
        "",
        *_targets(results),
    ]
    runs, floor = results["throughput"], results["floor_throughput"]
    out += [
        "",
        "Throughput and latency under load (wrk); the I/O floor's beside the service's, and"
        " the CPU a request cost the web workers (gunicorn's processes, both servers' idle"
        " ones included) while each ran:",
        "",
        "| query | requests/s | p50 ms | p99 ms | worker CPU ms | floor requests/s"
        " | floor p99 ms | floor worker CPU ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, run in runs.items():
        beside = floor.get(name)
        out.append(
            f"| {name} | {run['requests_per_second']:,.0f} | {run['p50_ms']:.1f}"
            f" | {run['p99_ms']:.1f} | {_worker_cpu(run)} | "
            + (
                f"{beside['requests_per_second']:,.0f} | {beside['p99_ms']:.1f}"
                f" | {_worker_cpu(beside)} |"
                if beside
                else "- | - | - |"
            )
        )
    info = "; ".join(f"{i['what']} {i['measured']}" for i in results["information"])
    out += ["", f"For information: {info}.", ""]
    out.append(_storage(results))
    profiles = results.get("profiles", {})
    if profiles:
        out += [
            "",
            "**Where the time goes** for the unmet targets (cProfile; requests answered in"
            " process by a fresh app, commands in their own process with their threads' times"
            " added; of the top 15 functions by own time, the waits summed and the rest named,"
            " in ms a request or a command; `latest.json` has the top 15 by own and by"
            " cumulative time):",
            "",
        ]
        for name, profile in profiles.items():
            if "error" in profile:
                out.append(f"- {name}: not profiled ({profile['error']})")
                continue
            rows = profile["by_own_time"]
            waits = sum(row["own_ms"] for row in rows if is_wait(row["function"]))
            top = ", ".join(
                f"`{row['function']}` {row['own_ms']:.2f}"
                for row in [row for row in rows if not is_wait(row["function"])][:6]
            )
            if "events" in profile:
                name += f" of {profile['events']:,} new events"
            out.append(
                f"- {name} ({profile['ms_per_unit_profiled']} ms profiled; waiting on Postgres,"
                f" Redis or other threads among the top 15: {waits:.2f}): {top}"
            )
    return "\n".join(map(_wrapped, out)) + "\n"


def _worker_cpu(run: dict) -> str:
    cpu = run.get("cpu_ms_per_request")
    return f"{cpu['gunicorn']:.2f}" if cpu else "-"


def _storage(results: dict) -> str:
    """Bytes per event and per rollup row, HOT updates, sizes against compacted copies, the
    plan of the org-wide read and the dropped month, as one paragraph."""
    storage = results["storage"]
    sizes, hot, compaction = storage["sizes"], storage["hot_updates"], storage["compaction"]
    tables = sizes["tables"]
    partitions = tables["usage_events"]["partitions"]
    dropped = results["partition_drop"]
    return (
        "**Storage** after the import: an event costs"
        f" {sizes['bytes_per_event']:.0f} bytes of raw storage"
        f" ({sizes['bytes_per_event_detail']['usage_events']:.0f} in its monthly partition of"
        f" `usage_events`, {sizes['bytes_per_event_detail']['usage_event_ids']:.0f} in"
        f" `usage_event_ids`; {len(partitions)} partitions,"
        f" {_mb(tables['usage_events']['bytes'])} in all) and"
        f" {sizes['rollup_bytes_per_event']:.0f} bytes of rollups, which stay when"
        " `EVENT_RETENTION_DAYS` drops old months. A rollup row costs "
        + ", ".join(
            f"{tables[t]['bytes_per_row']:.0f} bytes in `{t}` ({tables[t]['rows']:,} rows,"
            f" {_mb(tables[t]['bytes'])})"
            for t in compaction
        )
        + ". HOT updates: "
        + ", ".join(
            f"`{t}` {h['hot_share'] * 100:.0f}% of {h['updates']:,}"
            for t, h in hot.items()
            if h["updates"]
        )
        + ". Against a compacted copy (same fillfactor and indexes): "
        + ", ".join(f"`{t}` {c['vs_compacted']}x" for t, c in compaction.items())
        + ". The 366-day organisation-wide SQL read: "
        + "; ".join(
            line.strip().split("  (")[0].removeprefix("->  ")
            for line in storage["explain_366d_org"]["plan"]
            if "Scan" in line
        )
        + f". Dropping the oldest month ({', '.join(dropped['dropped'])}, through"
        f" `EVENT_RETENTION_DAYS={dropped['event_retention_days']}`) changed"
        f" {len(dropped['changed'])} of {dropped['compared']} answers (org-wide and per key,"
        " from the cached and the cache-less server)."
    )


def _wrapped(block: str) -> str:
    """Prose at the README's width; tables, headings and images as they are."""
    if not block or block.startswith(("|", "#", "!")):
        return block
    indent = "  " if block.startswith("- ") else ""
    return textwrap.fill(
        block, width=92, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )


def write_docs(results: dict) -> None:
    """docs/performance.md whole, and the README's section from its heading to the next."""
    PAGE.write_text(markdown(results))
    text = README.read_text()
    start = text.index("## Performance")
    end = text.find("\n## ", start + 1)
    rest = "" if end == -1 else text[end:]
    README.write_text(text[:start] + readme_section(results) + rest)


if __name__ == "__main__":
    import json
    import sys

    write_docs(json.loads(Path(sys.argv[1]).read_text()))
