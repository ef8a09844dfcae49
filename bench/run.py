"""`make bench`: load the standard dataset through the product's own import, then measure
every target of the README's Performance section as a ratio to its floor taken in the same
run, with the absolute numbers beside it. Writes bench/results/latest.json and latest.png.

    python -m bench.run [--small] [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import psycopg
import redis
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench import dataset, wrk
from bench.report import write_chart
from config.settings import Settings
from service.bootstrap import command_services

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"
COMPARED_IMPORT = 1_000_000  # events imported by the product and by psql \copy alike
WARM_ROUNDS = 5
# `usage import` events/s on the standard dataset before quarter-hour rollups (the last
# run that had only daily ones); their cost is measured against it.
IMPORT_RATE_BEFORE_QUARTERS = 61_744


def say(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(args: list[str], env: dict) -> float:
    began = time.perf_counter()
    ran = subprocess.run(args, env=env, capture_output=True)
    took = time.perf_counter() - began
    if ran.returncode != 0:
        raise SystemExit(f"{' '.join(args[:4])} failed:\n{ran.stderr.decode()[-2000:]}")
    return took


def recreate_database(url: str) -> None:
    name = conninfo_to_dict(url)["dbname"]
    with psycopg.connect(make_conninfo(url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextmanager
def gunicorn(env: dict, log: Path) -> Iterator[str]:
    port = free_port()
    run_env = env | {"BIND": f"127.0.0.1:{port}"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "config/gunicorn.conf.py", "app:app"],
            cwd=ROOT,
            env=run_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"gunicorn did not start; see {log}") from None
                    time.sleep(0.1)
            yield base
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def table_sizes(database_url: str, events: int) -> dict:
    """Bytes of each table with its indexes, in all and per million events."""
    tables = ("usage_events", "usage_daily", "usage_quarter", "usage_quarter_org")
    with psycopg.connect(database_url, autocommit=True) as conn:
        sizes = {
            table: conn.execute(
                "SELECT pg_total_relation_size(%s::regclass), (SELECT count(*) FROM " + table + ")",
                (table,),
            ).fetchone()
            for table in tables
        }
    return {
        table: {
            "rows": rows,
            "bytes": size,
            "mb_per_million_events": round(size / 1e6 / (events / 1e6), 1),
        }
        for table, (size, rows) in sizes.items()
    }


def sequential_latency(base: str, request: wrk.Request, count: int, before=None) -> dict:
    """Milliseconds of `count` requests one after another on one connection."""
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(base)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    samples = []
    try:
        for n in range(count):
            if before is not None:
                before(n)
            began = time.perf_counter()
            conn.request("POST", request.path, body=request.body, headers=request.headers)
            response = conn.getresponse()
            response.read()
            samples.append((time.perf_counter() - began) * 1000)
            if response.status != 200:
                raise SystemExit(f"{request.path} answered {response.status}")
    finally:
        conn.close()
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[int(len(samples) * 0.95)], 3),
        "requests": count,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="a quick run on a small dataset")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--database-url", default="postgresql:///scrubs_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    shape = dataset.Shape.small() if args.small else dataset.Shape.standard()
    wrk_path = wrk.find_or_install(say)
    compared = min(COMPARED_IMPORT, shape.events // 5)
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cli = str(BIN / "scrubs-analytics")
    settings = Settings.from_env(env)
    today = datetime.now(UTC).date()
    first_day = today - timedelta(days=shape.days - 1)
    results: dict = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "dataset": asdict(shape) | {"first_day": str(first_day), "last_day": str(today)},
        "wrk": {"duration_s": args.duration, "connections": args.connections, "threads": 2},
    }

    say(f"dataset: {shape}")
    recreate_database(args.database_url)
    timed([cli, "db", "upgrade"], env)
    services = command_services(settings)
    organisations = dataset.create_organisations(services, shape)
    workdir = Path(tempfile.mkdtemp(prefix="scrubs-bench-"))
    try:
        rows = dataset.events(shape, organisations, today)
        bulk = workdir / "events.jsonl"
        compared_csv = workdir / "compared.csv"
        say("writing the events")
        written = dataset.write_jsonl(bulk, islice(rows, shape.events - compared))
        written += dataset.write_csv(compared_csv, rows)
        say(f"importing {shape.events - compared:,} events (JSONL)")
        bulk_seconds = timed([cli, "usage", "import", str(bulk)], env)
        say(f"importing {compared:,} more events (CSV), timed against psql \\copy")
        import_seconds = timed([cli, "usage", "import", str(compared_csv)], env)
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE bare_events (event_id text, api_key_id uuid, occurred_at timestamptz,"
                " tokens bigint, stt_duration bigint, usage integer)"
            )
        copy_seconds = timed(
            [
                "psql",
                "-q",
                "-X",
                "-d",
                args.database_url,
                "-c",
                f"\\copy bare_events FROM '{compared_csv}' CSV HEADER",
            ],
            env,
        )
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute("DROP TABLE bare_events")
            conn.execute("VACUUM ANALYZE")
        results["dataset"]["events"] = written
        results["storage"] = table_sizes(args.database_url, written)

        say("cache warm of the whole dataset, against the bare SQL of the same rollups")
        warm_runs = []
        for _ in range(WARM_ROUNDS):  # the median of a few: one run lasts a tenth of a second
            timed([cli, "cache", "clear"], env)
            warm = subprocess.run(
                [cli, "cache", "warm", "--start", str(first_day), "--end", str(today)],
                env=env,
                capture_output=True,
                check=True,
            )
            warm_runs.append(json.loads(warm.stdout)["seconds"])  # the work, not the start-up
        bare = (
            "SELECT organisation_id, day, sum(tokens), sum(usage), sum(stt_duration)"
            " FROM usage_daily WHERE day BETWEEN %s AND %s GROUP BY organisation_id, day"
        )
        sql_runs = []
        for _ in range(WARM_ROUNDS):
            with psycopg.connect(args.database_url) as conn:
                began = time.perf_counter()
                conn.execute(bare, (first_day, today)).fetchall()
                sql_runs.append(time.perf_counter() - began)
        warm_seconds, sql_seconds = statistics.median(warm_runs), statistics.median(sql_runs)
        results["batch"] = {
            "bulk_import_seconds": round(bulk_seconds, 3),
            "import_events": compared,
            "import_seconds": round(import_seconds, 3),
            "copy_seconds": round(copy_seconds, 3),
            "import_events_per_second": round(compared / import_seconds),
            "copy_events_per_second": round(compared / copy_seconds),
            "cache_warm_seconds": round(warm_seconds, 3),
            "bare_sql_seconds": round(sql_seconds, 3),
            "cache_warm_runs": [round(x, 3) for x in warm_runs],
            "bare_sql_runs": [round(x, 3) for x in sql_runs],
        }
        measure_service(args, env, settings, organisations, today, workdir, results, wrk_path)
    finally:
        services.close()
        shutil.rmtree(workdir, ignore_errors=True)

    results["targets"] = targets(results)
    results["run_seconds"] = round(time.perf_counter() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    write_chart(results, args.output.with_suffix(".png"))
    print_summary(results)


def measure_service(args, env, settings, organisations, today, workdir, results, wrk_path) -> None:
    month = (today - timedelta(days=30), today)
    year = (today - timedelta(days=365), today)

    def org_wide(span, **options):
        return [
            wrk.analytics(o.provider_id, o.root_secret, *span, **options) for o in organisations
        ]

    def single_key(span):
        return [
            wrk.analytics(o.provider_id, o.root_secret, *span, o.key_ids[0]) for o in organisations
        ]

    runs = {}
    with (
        gunicorn(env, workdir / "cached.log") as cached,
        gunicorn(env | {"REDIS_URL": ""}, workdir / "uncached.log") as uncached,
    ):
        say("wrk: GET /healthz, the floor")
        # A first run meets workers still loading the app: its connections would all stay
        # on the first one up. Each run after it opens its connections afresh.
        wrk.run(wrk_path, cached, [wrk.get("/healthz")], args, seconds=3)
        wrk.run(wrk_path, uncached, [wrk.get("/healthz")], args, seconds=3)
        runs["healthz"] = wrk.run(wrk_path, cached, [wrk.get("/healthz")], args)
        for name, requests in (
            ("warm_31d_org", org_wide(month)),
            ("warm_366d_org", org_wide(year)),
            ("warm_366d_key", single_key(year)),
            ("warm_366d_kolkata", org_wide(year, time_zone="Asia/Kolkata")),
            ("warm_31d_groups", org_wide(month, group_by="api_key")),
        ):
            say(f"wrk: {name}")
            wrk.run(wrk_path, cached, requests, args, seconds=2)  # fills what is not warm yet
            runs[name] = wrk.run(wrk_path, cached, requests, args)
        for name, requests in (
            ("nocache_31d_org", org_wide(month)),
            ("nocache_366d_org", org_wide(year)),
            ("nocache_366d_key", single_key(year)),
        ):
            say(f"wrk: {name}")
            runs[name] = wrk.run(wrk_path, uncached, requests, args)

        say("one client, one request at a time: 366-day org-wide warm, cold and without cache")
        year_request = org_wide(year)[0]
        organisation = organisations[0].id
        client = redis.Redis.from_url(args.redis_url)
        lookup = command_services(settings)
        pattern = lookup.cache.layout.pattern(organisation)
        lookup.close()

        def empty_the_cache(_: int) -> None:
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)

        count = 100 if args.small else 300
        kolkata = org_wide(year, time_zone="Asia/Kolkata")[0]
        month_request, groups = org_wide(month)[0], org_wide(month, group_by="api_key")[0]
        latency = {
            "warm_31d_org": sequential_latency(cached, month_request, count),
            "warm_31d_groups": sequential_latency(cached, groups, count),
            "warm_366d_kolkata": sequential_latency(cached, kolkata, count),
            "warm_366d_org": sequential_latency(cached, year_request, count),
            "cold_366d_org": sequential_latency(cached, year_request, count, empty_the_cache),
            "nocache_366d_org": sequential_latency(uncached, year_request, count),
        }
        client.close()
    results["throughput"] = runs
    results["latency"] = latency


def ratio(what: str, target: str, top: float, bottom: float, unit: str) -> dict:
    """One performance target: top / bottom against `target` (">= x" or "<= x")."""
    value = top / bottom
    bound = float(target.split()[1])
    met = value >= bound if target.startswith(">=") else value <= bound
    return {
        "what": what,
        "target": target,
        "measured": round(value, 3),
        "met": met,
        "detail": f"{top:,.3f} vs {bottom:,.3f} {unit}",
    }


def targets(results: dict) -> list[dict]:
    runs, latency, batch = results["throughput"], results["latency"], results["batch"]
    floor = runs["healthz"]["requests_per_second"]
    return [
        ratio(
            "warm 31-day org-wide throughput / healthz",
            ">= 0.6",
            runs["warm_31d_org"]["requests_per_second"],
            floor,
            "req/s",
        ),
        ratio(
            "warm 366-day org-wide throughput / healthz",
            ">= 0.4",
            runs["warm_366d_org"]["requests_per_second"],
            floor,
            "req/s",
        ),
        ratio(
            "366-day org-wide latency, cache disabled / warm",
            ">= 10",
            latency["nocache_366d_org"]["median_ms"],
            latency["warm_366d_org"]["median_ms"],
            "ms",
        ),
        ratio(
            "cold 366-day org-wide latency / cache disabled",
            "<= 3",
            latency["cold_366d_org"]["median_ms"],
            latency["nocache_366d_org"]["median_ms"],
            "ms",
        ),
        ratio(
            "cache warm of the dataset / bare SQL of the same rollups",
            "<= 1.5",
            batch["cache_warm_seconds"],
            batch["bare_sql_seconds"],
            "s",
        ),
        ratio(
            "usage import rate / psql \\copy rate",
            ">= 0.3",
            batch["import_events_per_second"],
            batch["copy_events_per_second"],
            "events/s",
        ),
        ratio(
            "warm 366-day Asia/Kolkata latency / 366-day UTC",
            "<= 2",
            latency["warm_366d_kolkata"]["median_ms"],
            latency["warm_366d_org"]["median_ms"],
            "ms",
        ),
        ratio(
            "warm 31-day group_by api_key (100 keys) latency / org-wide",
            "<= 5",
            latency["warm_31d_groups"]["median_ms"],
            latency["warm_31d_org"]["median_ms"],
            "ms",
        ),
        ratio(
            "usage import rate with quarter-hour rollups / before them (61,744)",
            ">= 0.7",
            batch["import_events_per_second"],
            IMPORT_RATE_BEFORE_QUARTERS,
            "events/s",
        ),
    ]


def print_summary(results: dict) -> None:
    print(f"\nthroughput (wrk, {results['wrk']['connections']} connections):")
    for name, run in results["throughput"].items():
        print(
            f"  {name:<18} {run['requests_per_second']:>9.1f} req/s   p50 {run['p50_ms']:>7.2f} ms"
            f"   p99 {run['p99_ms']:>7.2f} ms   non-2xx {run['non_2xx']}   errors {run['errors']}"
        )
    print("latency (one client):")
    for name, run in results["latency"].items():
        print(f"  {name:<18} median {run['median_ms']:>7.2f} ms   p95 {run['p95_ms']:>7.2f} ms")
    print("storage (tables with their indexes):")
    for table, found in results.get("storage", {}).items():
        print(
            f"  {table:<18} {found['rows']:>10,} rows  {found['bytes'] / 1e6:>8.1f} MB"
            f"  {found['mb_per_million_events']:>6.1f} MB per million events"
        )
    print("targets:")
    for t in results["targets"]:
        mark = "met" if t["met"] else "NOT MET"
        print(f"  {t['what']:<58} {t['measured']:>8} ({t['target']}) {mark:<8} {t['detail']}")
    print(f"run took {results['run_seconds']} s")


if __name__ == "__main__":
    main()
