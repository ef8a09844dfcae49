"""The targets of DESIGN's "Performance targets" and of issue 13's storage, each a ratio (or
a yes/no) taken in one run, the figures kept for information beside them, and the summary
printed at the end of a run."""

from __future__ import annotations

# Query kinds measured against the I/O floor, with their targets (service / floor).
FLOOR_TARGETS = {
    "warm_31d_org": ("warm 31-day org-wide UTC days, throughput / I/O floor", 0.7),
    "warm_366d_org": ("warm 366-day org-wide UTC days, throughput / I/O floor", 0.6),
    "warm_366d_kolkata": ("warm 366-day org-wide Asia/Kolkata days, throughput / I/O floor", 0.5),
    "warm_31d_groups": ("warm 31-day group_by api_key (100 keys), throughput / I/O floor", 0.35),
}
IMPORT_TARGET = 0.15
HOT_TARGET = 0.9
COMPACTED_TARGET = 1.5
# `usage import` events/s on the standard dataset before quarter-hour rollups (the last
# run that had only daily ones), kept for information.
IMPORT_RATE_BEFORE_QUARTERS = 61_744


def number(value: float) -> str:
    """A figure as a person reads it: whole numbers with their thousands, others to three
    significant digits."""
    if float(value).is_integer() or abs(value) >= 1000:
        return f"{round(value):,}"
    return f"{value:.3g}"


def ratio(
    what: str, target: str, top: float, bottom: float, unit: str, profile: str | None = None
) -> dict:
    """One target: top / bottom against `target` (">= x" or "<= x")."""
    value = top / bottom
    bound = float(target.split()[1])
    met = value >= bound if target.startswith(">=") else value <= bound
    return {
        "what": what,
        "target": target,
        "measured": round(value, 3),
        "met": met,
        "detail": f"{number(top)} vs {number(bottom)} {unit}",
        "profile": profile,
    }


def check(what: str, met: bool, detail: str) -> dict:
    return {
        "what": what,
        "target": "yes",
        "measured": "yes" if met else "no",
        "met": met,
        "detail": detail,
        "profile": None,
    }


def targets(results: dict) -> list[dict]:
    runs, latency, batch = results["throughput"], results["latency"], results["batch"]
    floor = results["floor_throughput"]
    found = []
    for kind, (what, bound) in FLOOR_TARGETS.items():
        service = runs[kind]
        detail = ratio(
            what,
            f">= {bound}",
            service["requests_per_second"],
            floor[kind]["requests_per_second"],
            "req/s",
            profile=kind,
        )
        detail["detail"] += (
            f"; p99 {service['p99_ms']:.1f} ms (floor {floor[kind]['p99_ms']:.1f} ms)"
        )
        cpu, floor_cpu = service.get("cpu_ms_per_request"), floor[kind].get("cpu_ms_per_request")
        if cpu and floor_cpu:  # where the difference lies: mostly the web workers' Python
            detail["detail"] += "; CPU a request, ms: " + ", ".join(
                f"{name} {cpu[name]:.3f} vs {floor_cpu[name]:.3f}"
                for name in ("gunicorn", "postgres", "redis-server")
            )
        found.append(detail)
    imported = ratio(
        f"usage import of {batch['import_events']:,} events, rate / psql \\copy rate",
        f">= {IMPORT_TARGET}",
        batch["import_events_per_second"],
        batch["copy_events_per_second"],
        "events/s",
        profile="import",
    )
    cpu = batch.get("import_cpu_seconds")
    if cpu:
        imported["detail"] += (
            f"; CPU in its {batch['import_seconds']:.1f} s: Postgres {cpu['postgres']} s,"
            f" the command {cpu['command']} s"
        )
    found.append(imported)
    sized = results["sized_latency"]
    medians = {name: run["median_ms"] for name, run in sized.items()}
    slow, fast = max(medians, key=medians.get), min(medians, key=medians.get)
    found.append(
        ratio(
            "warm 366-day org-wide latency, organisations of "
            + " and ".join(name.split("_")[0] for name in sized)
            + " keys, slower / faster",
            "<= 1.2",
            medians[slow],
            medians[fast],
            f"ms ({slow} / {fast})",
            profile="sized",
        )
    )
    found += [
        ratio(
            "cold 366-day org-wide latency / cache disabled",
            "<= 3",
            latency["cold_366d_org"]["median_ms"],
            latency["nocache_366d_org"]["median_ms"],
            "ms",
            profile="cold_366d_org",
        ),
        ratio(
            "cache warm of the dataset / bare SQL of the same rollups (usage_daily_org)",
            "<= 1.5",
            batch["cache_warm_seconds"],
            batch["bare_sql_seconds"],
            "s",
            profile="cache_warm",
        ),
        ratio(
            "warm 366-day Asia/Kolkata latency / 366-day UTC",
            "<= 2",
            latency["warm_366d_kolkata"]["median_ms"],
            latency["warm_366d_org"]["median_ms"],
            "ms",
            profile="warm_366d_kolkata",
        ),
    ]
    storage = results.get("storage")
    if storage:
        for table, hot in storage["hot_updates"].items():
            if hot["updates"]:
                found.append(
                    ratio(
                        f"{table}: HOT updates / updates",
                        f">= {HOT_TARGET}",
                        hot["hot_updates"],
                        hot["updates"],
                        "updates",
                    )
                )
        for table, size in storage["compaction"].items():
            found.append(
                ratio(
                    f"{table}: bytes / compacted bytes",
                    f"<= {COMPACTED_TARGET}",
                    size["bytes"],
                    size["compacted_bytes"],
                    "bytes",
                )
            )
        explained = storage["explain_366d_org"]
        scans = [
            line.strip().removeprefix("->").strip().split("  (")[0]
            for line in explained["plan"]
            if "Scan" in line
        ]
        found.append(
            check(
                "366-day org-wide SQL read is an index scan",
                explained["index_scan"],
                "; ".join(scans)[:200],
            )
        )
    dropped = results.get("partition_drop")
    if dropped:
        found.append(
            check(
                "dropping the oldest usage_events partition leaves every answer unchanged",
                dropped["dropped"] and not dropped["changed"],
                f"dropped {', '.join(dropped['dropped']) or 'nothing'}; "
                f"{dropped['compared']} answers compared, {len(dropped['changed'])} changed",
            )
        )
    return found


def information(results: dict) -> list[dict]:
    """Figures without a target of their own, kept to follow them from run to run."""
    runs, latency, batch = results["throughput"], results["latency"], results["batch"]
    healthz = runs["healthz"]["requests_per_second"]
    found = [
        {
            "what": f"{kind} throughput / service /healthz",
            "measured": round(runs[kind]["requests_per_second"] / healthz, 3),
        }
        for kind in ("warm_31d_org", "warm_366d_org", "warm_366d_kolkata", "warm_31d_groups")
    ]
    floor = results["floor_throughput"]
    found += [
        {
            "what": "floor /healthz / service /healthz",
            "measured": round(floor["healthz"]["requests_per_second"] / healthz, 3),
        },
        {
            "what": "floor 31-day / floor /healthz",
            "measured": round(
                floor["warm_31d_org"]["requests_per_second"]
                / floor["healthz"]["requests_per_second"],
                3,
            ),
        },
        {
            "what": "floor 366-day / floor /healthz",
            "measured": round(
                floor["warm_366d_org"]["requests_per_second"]
                / floor["healthz"]["requests_per_second"],
                3,
            ),
        },
        {
            "what": "366-day org-wide latency, cache disabled / warm",
            "measured": round(
                latency["nocache_366d_org"]["median_ms"] / latency["warm_366d_org"]["median_ms"], 3
            ),
        },
        {
            "what": "warm 31-day group_by api_key latency / org-wide",
            "measured": round(
                latency["warm_31d_groups"]["median_ms"] / latency["warm_31d_org"]["median_ms"], 3
            ),
        },
        {
            "what": "usage import rate / before quarter-hour rollups"
            f" ({IMPORT_RATE_BEFORE_QUARTERS:,})",
            "measured": round(batch["import_events_per_second"] / IMPORT_RATE_BEFORE_QUARTERS, 3),
        },
    ]
    return found


def print_summary(results: dict) -> None:
    floor = results["floor_throughput"]
    print(f"\nthroughput (wrk, {results['wrk']['connections']} connections):")
    for name, run in results["throughput"].items():
        beside = ""
        if name in floor:
            beside = f"   floor {floor[name]['requests_per_second']:>8.1f} req/s"
        print(
            f"  {name:<18} {run['requests_per_second']:>9.1f} req/s   p50 {run['p50_ms']:>7.2f} ms"
            f"   p99 {run['p99_ms']:>7.2f} ms   non-2xx {run['non_2xx']}   errors {run['errors']}"
            + beside
        )
    print("latency (one client):")
    for name, run in {**results["latency"], **results["sized_latency"]}.items():
        print(f"  {name:<18} median {run['median_ms']:>7.2f} ms   p95 {run['p95_ms']:>7.2f} ms")
    storage = results.get("storage")
    if storage:
        sizes = storage["sizes"]
        print("storage (tables with their indexes):")
        for table, found in sizes["tables"].items():
            per_row = found["bytes_per_row"]
            print(
                f"  {table:<18} {found['rows']:>10,} rows  {found['bytes'] / 1e6:>8.1f} MB"
                f"  {per_row if per_row is not None else '-':>8} bytes a row"
            )
        print(
            f"  {sizes['bytes_per_event']} bytes an event (usage_events partitions"
            f" {sizes['bytes_per_event_detail']['usage_events']} + usage_event_ids"
            f" {sizes['bytes_per_event_detail']['usage_event_ids']}); rollups"
            f" {sizes['rollup_bytes_per_event']} bytes an event"
        )
        partitions = sizes["tables"]["usage_events"]["partitions"]
        print(
            f"  usage_events: {len(partitions)} partitions, "
            + ", ".join(
                f"{n.removeprefix('usage_events_')} {b / 1e6:.1f} MB" for n, b in partitions.items()
            )
        )
        for table, hot in storage["hot_updates"].items():
            print(
                f"  {table:<18} {hot['updates']:>10,} updates, {hot['hot_updates']:>10,} HOT"
                f"   {storage['compaction'][table]['vs_compacted']}x its compacted size"
            )
        print("  366-day org-wide SQL read:")
        for line in storage["explain_366d_org"]["plan"]:
            print(f"    {line}")
    print("information:")
    for info in results["information"]:
        print(f"  {info['what']:<64} {info['measured']:>8}")
    print("targets:")
    for t in results["targets"]:
        mark = "met" if t["met"] else "NOT MET"
        print(f"  {t['what']:<72} {t['measured']:>8} ({t['target']}) {mark:<8} {t['detail']}")
    for name, profile in results.get("profiles", {}).items():
        print(f"profile of {name}: {profile.get('ms_per_unit_profiled')} ms a unit profiled")
        if "error" in profile:
            print(f"  could not profile: {profile['error']}")
            continue
        print("  by own time:")
        for row in profile["by_own_time"][:10]:
            print(
                f"    {row['own_ms']:>9.4f} ms own {row['cumulative_ms']:>9.4f} ms cum"
                f"  {row['calls_per_unit']:>8} calls  {row['function']}"
            )
        print("  by cumulative time:")
        for row in profile["by_cumulative_time"][:10]:
            print(
                f"    {row['cumulative_ms']:>9.4f} ms cum {row['own_ms']:>9.4f} ms own"
                f"  {row['calls_per_unit']:>8} calls  {row['function']}"
            )
    print(f"run took {results['run_seconds']} s")
