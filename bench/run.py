"""`make bench`: load the standard dataset through the product's own import, then measure
every target of DESIGN's "Performance targets" as a ratio to its floor taken in the same
run: the service against the I/O floor (bench/floor.py) under the same gunicorn config,
the import against psql \\copy, and issue 13's storage figures after the import. Targets
left unmet get a profile of where the time goes. Writes bench/results/latest.json and
latest.png.

    python -m bench.run [--small] [--duration 10] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from pathlib import Path

import psycopg
import redis
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench import cpu, dataset, floor_plan, profiles, storage, wrk
from bench.floor import PLAN_VARIABLE
from bench.report import write_chart, write_docs
from bench.servers import (
    BIN,
    FLOOR,
    ROOT,
    answer,
    gunicorn,
    interleaved_latency,
    sequential_latency,
)
from bench.targets import information, print_summary, targets
from config.settings import Settings
from service.adapters.postgres.identity import cache_identity
from service.bootstrap import command_services

RESULTS = ROOT / "bench" / "results"
COMPARED_IMPORT = 1_000_000  # events imported by the product and by psql \copy alike
PROFILED_IMPORT = 100_000  # new events imported under the profiler, when the import is slow
WARM_ROUNDS = 5


def say(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


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
    env.pop("EVENT_RETENTION_DAYS", None)  # every event is kept, but for the drop below
    cli = str(BIN / "scrubs-analytics")
    settings = Settings.from_env(env)
    today = datetime.now(UTC).date()
    first_day = today - timedelta(days=shape.days)  # the events' days end yesterday
    results: dict = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "dataset": asdict(shape) | {"first_day": str(first_day), "last_day": str(today)},
        "wrk": {"duration_s": args.duration, "connections": args.connections, "threads": 2},
        "gunicorn": {"workers": settings.web_concurrency, "threads": settings.web_threads},
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
        checkpoint(args.database_url)  # the bulk import's dirty pages are not the timed one's
        with cpu_seconds() as import_cpu:
            import_seconds = timed([cli, "usage", "import", str(compared_csv)], env)
        copy_seconds = bare_copy(args.database_url, compared_csv, env)
        results["dataset"]["events"] = written

        say("storage: HOT updates, sizes against compacted copies, the 366-day plan")
        hot = storage.hot_updates(args.database_url)
        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        year = [today - timedelta(days=n) for n in range(365, -1, -1)]
        results["storage"] = {
            "hot_updates": hot,
            "compaction": storage.compaction(args.database_url),
            "sizes": storage.table_sizes(args.database_url, written),
            "explain_366d_org": storage.explain_organisation_days(
                args.database_url, organisations[0].id, year
            ),
        }

        say("cache warm of the whole dataset, against the bare SQL of the same rollups")
        results["batch"] = {
            "bulk_import_events": shape.events - compared,
            "bulk_import_seconds": round(bulk_seconds, 3),
            "import_events": compared,
            "import_seconds": round(import_seconds, 3),
            "copy_seconds": round(copy_seconds, 3),
            "import_events_per_second": round(compared / import_seconds),
            "copy_events_per_second": round(compared / copy_seconds),
            "import_cpu_seconds": import_cpu,
            **cache_warm_against_sql(cli, env, args.database_url, first_day, today),
        }
        namespace = cache_identity(services.database)
        measure_service(
            args, env, services, namespace, organisations, shape, today, workdir, results, wrk_path
        )
        results["targets"] = targets(results)
        results["information"] = information(results)
        results["profiles"] = profile_unmet(
            args, env, cli, shape, organisations, today, workdir, results
        )
    finally:
        services.close()
        shutil.rmtree(workdir, ignore_errors=True)

    results["run_seconds"] = round(time.perf_counter() - started, 1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    write_chart(results, args.output.with_suffix(".png"))
    if args.output == RESULTS / "latest.json":  # the figures the README and docs show
        write_docs(results)
    print_summary(results)


@contextmanager
def cpu_seconds() -> Iterator[dict[str, float]]:
    """CPU seconds spent inside the block by the commands it ran (waited for) and by this
    machine's Postgres: its processes' own times, and the postmaster's of the backends
    it has reaped (a command's connections end with it)."""
    spent: dict[str, float] = {}
    commands, postgres = _children_cpu(), cpu.seconds_by_name(("postgres",))
    yield spent
    spent["command"] = round(_children_cpu() - commands, 1)
    spent["postgres"] = round(cpu.spent_since(postgres)["postgres"], 1)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def checkpoint(database_url: str) -> None:
    """Write every dirty page out now: a timed step then pays for its own writes alone, not
    for a checkpoint of the step before it falling due meanwhile."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def bare_copy(database_url: str, csv_file: Path, env: dict) -> float:
    """Seconds of psql \\copy of the file into a bare table: no index, no rollup."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE bare_events (event_id text, api_key_id uuid, occurred_at timestamptz,"
            " tokens bigint, stt_duration bigint, usage integer)"
        )
    copy = f"\\copy bare_events FROM '{csv_file}' CSV HEADER"
    checkpoint(database_url)  # the import's dirty pages are not \copy's to write
    seconds = timed(["psql", "-q", "-X", "-d", database_url, "-c", copy], env)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE bare_events")
    return seconds


def cache_warm_against_sql(cli: str, env: dict, database_url: str, first: date, last: date):
    warm_runs = []
    for _ in range(WARM_ROUNDS):  # the median of a few: one run lasts about a second
        timed([cli, "cache", "clear"], env)
        warm = subprocess.run(
            [cli, "cache", "warm", "--start", str(first), "--end", str(last)],
            env=env,
            capture_output=True,
            check=True,
        )
        warm_runs.append(json.loads(warm.stdout)["seconds"])  # the work, not the start-up
    # What warm reads: every organisation's days, from their own rollup.
    bare = (
        "SELECT organisation_id, day, tokens, usage, stt_duration"
        " FROM usage_daily_org WHERE day BETWEEN %s AND %s"
    )
    sql_runs = []
    for _ in range(WARM_ROUNDS):
        with psycopg.connect(database_url) as conn:
            began = time.perf_counter()
            conn.execute(bare, (first, last)).fetchall()
            sql_runs.append(time.perf_counter() - began)
    return {
        "cache_warm_seconds": round(statistics.median(warm_runs), 3),
        "bare_sql_seconds": round(statistics.median(sql_runs), 4),
        "cache_warm_runs": [round(x, 3) for x in warm_runs],
        "bare_sql_runs": [round(x, 4) for x in sql_runs],
    }


def measure_service(
    args, env, services, namespace, organisations, shape, today, workdir, results, wrk_path
) -> None:
    standard = organisations[: shape.organisations]
    sized = organisations[shape.organisations :]
    month = (today - timedelta(days=30), today)
    year = (today - timedelta(days=365), today)

    def org_wide(span, orgs=standard, **options):
        return [wrk.analytics(o.provider_id, o.root_secret, *span, **options) for o in orgs]

    def single_key(span):
        return [wrk.analytics(o.provider_id, o.root_secret, *span, o.key_ids[0]) for o in standard]

    kinds = {
        "warm_31d_org": org_wide(month),
        "warm_366d_org": org_wide(year),
        "warm_366d_kolkata": org_wide(year, time_zone="Asia/Kolkata"),
        "warm_31d_groups": org_wide(month, group_by="api_key"),
    }
    runs: dict = {}
    floor_runs: dict = {}
    with (
        gunicorn(env, workdir / "cached.log") as cached,
        gunicorn(env | {"REDIS_URL": ""}, workdir / "uncached.log") as uncached,
    ):
        # A first run meets workers still loading the app: its connections would all stay
        # on the first one up. Each run after it opens its connections afresh.
        wrk.run(wrk_path, cached, [wrk.get("/healthz")], args, seconds=3)
        wrk.run(wrk_path, uncached, [wrk.get("/healthz")], args, seconds=3)
        for name, requests in (*kinds.items(), ("warm_366d_key", single_key(year))):
            say(f"wrk: filling the cache for {name}")
            wrk.run(wrk_path, cached, requests, args, seconds=2)

        say("the I/O floor: the same I/O as each warm query, its answer prebuilt")
        entries = [
            floor_plan.entry(services, namespace, org.id, request, cached, today)
            for requests in kinds.values()
            for org, request in zip(standard, requests, strict=True)
        ]
        client = redis.Redis.from_url(args.redis_url)
        missing = floor_plan.missing_fields(client, entries)
        if missing:
            raise SystemExit(f"the floor would read {missing} fields the cache does not hold")
        results["floor"] = {
            "requests": len(entries),
            "fields_read": {
                kind: next(e["fields"] for e in entries if e["body"] == requests[0].body)
                for kind, requests in kinds.items()
            },
            "answer_bytes": {
                kind: len(answer(cached, requests[0])) for kind, requests in kinds.items()
            },
        }
        plan_file = workdir / "floor-plan.json"
        floor_plan.write(plan_file, entries)
        with gunicorn(env | {PLAN_VARIABLE: str(plan_file)}, workdir / "floor.log", FLOOR) as io:
            wrk.run(wrk_path, io, [wrk.get("/healthz")], args, seconds=3)
            say("wrk: GET /healthz of the service and of the floor")
            runs["healthz"], floor_runs["healthz"] = wrk.alternating(
                wrk_path, cached, io, [wrk.get("/healthz")], args
            )
            for name, requests in kinds.items():
                say(f"wrk: {name}, service and floor in turn")
                runs[name], floor_runs[name] = wrk.alternating(wrk_path, cached, io, requests, args)
        say("wrk: warm_366d_key")
        runs["warm_366d_key"] = wrk.run(wrk_path, cached, single_key(year), args)
        for name, requests in (
            ("nocache_31d_org", org_wide(month)),
            ("nocache_366d_org", org_wide(year)),
            ("nocache_366d_key", single_key(year)),
        ):
            say(f"wrk: {name}")
            runs[name] = wrk.run(wrk_path, uncached, requests, args)

        say("one client, one request at a time: warm, cold and without cache")
        year_request = kinds["warm_366d_org"][0]
        pattern = f"ua1:{namespace}:{{{standard[0].id}}}:*"

        def empty_the_cache(_: int) -> None:
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)

        count = 100 if args.small else 300
        results["latency"] = {
            "warm_31d_org": sequential_latency(cached, kinds["warm_31d_org"][0], count),
            "warm_31d_groups": sequential_latency(cached, kinds["warm_31d_groups"][0], count),
            "warm_366d_kolkata": sequential_latency(cached, kinds["warm_366d_kolkata"][0], count),
            "warm_366d_org": sequential_latency(cached, year_request, count),
            "cold_366d_org": sequential_latency(cached, year_request, count, empty_the_cache),
            "nocache_366d_org": sequential_latency(uncached, year_request, count),
        }
        say("one client: warm 366-day org-wide, organisations of different sizes in turn")
        by_size = {f"{len(org.key_ids)}_keys_366d_org": org_wide(year, [org])[0] for org in sized}
        for request in by_size.values():
            sequential_latency(cached, request, 5)  # fills their caches
        results["sized_latency"] = interleaved_latency(cached, by_size, count)
        client.close()

        say("dropping the oldest month of raw events; the answers before and after")
        results["partition_drop"] = partition_drop(
            env,
            standard[0],
            first_day=today - timedelta(days=shape.days),
            today=today,
            servers={"cached": cached, "uncached": uncached},
        )
    results["throughput"] = runs
    results["floor_throughput"] = floor_runs


def partition_drop(env: dict, org, first_day: date, today: date, servers: dict) -> dict:
    """Answers of a few ranges, org-wide and per key, from the cached and the cache-less
    server; the oldest month of raw events dropped as the retention window drops it (an
    import run with EVENT_RETENTION_DAYS); the cache cleared; the same answers again."""
    cli = str(BIN / "scrubs-analytics")
    oldest_month_end = (first_day.replace(day=1) + timedelta(days=32)).replace(day=1)
    old = (first_day, first_day + timedelta(days=30))
    year = (today - timedelta(days=365), today)
    first_year = (first_day, first_day + timedelta(days=365))
    key = org.key_ids[0]
    asked = {
        "org_first_31d": wrk.analytics(org.provider_id, org.root_secret, *old),
        "org_first_366d": wrk.analytics(org.provider_id, org.root_secret, *first_year),
        "org_366d": wrk.analytics(org.provider_id, org.root_secret, *year),
        "org_first_31d_kolkata": wrk.analytics(
            org.provider_id, org.root_secret, *old, time_zone="Asia/Kolkata"
        ),
        "org_first_31d_by_key": wrk.analytics(
            org.provider_id, org.root_secret, *old, group_by="api_key"
        ),
        "key_first_31d": wrk.analytics(org.provider_id, org.root_secret, *old, key),
        "key_first_366d": wrk.analytics(org.provider_id, org.root_secret, *first_year, key),
    }

    def answers() -> dict:
        return {
            f"{server}:{name}": answer(base, request)
            for server, base in servers.items()
            for name, request in asked.items()
        }

    def partitions() -> list[str]:
        with psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            return [
                row[0]
                for row in conn.execute(
                    "SELECT relid::regclass::text FROM pg_partition_tree('usage_events')"
                    " WHERE isleaf ORDER BY 1"
                )
            ]

    before, partitions_before = answers(), partitions()
    empty = Path(tempfile.mkdtemp(prefix="scrubs-bench-drop-")) / "none.jsonl"
    empty.write_bytes(b"")
    retention = (today - oldest_month_end).days
    timed([cli, "usage", "import", str(empty)], env | {"EVENT_RETENTION_DAYS": str(retention)})
    shutil.rmtree(empty.parent, ignore_errors=True)
    timed([cli, "cache", "clear"], env)  # the cached server reads Postgres again
    after, partitions_after = answers(), partitions()
    return {
        "event_retention_days": retention,
        "partitions_before": len(partitions_before),
        "dropped": sorted(set(partitions_before) - set(partitions_after)),
        "compared": len(before),
        "changed": sorted(name for name in before if before[name] != after[name]),
    }


def profile_unmet(args, env, cli, shape, organisations, today, workdir, results) -> dict:
    """Where the time goes for each unmet target that is a matter of time."""
    unmet = [t["profile"] for t in results["targets"] if not t["met"] and t["profile"]]
    found: dict = {}
    if not unmet:
        return found
    standard = organisations[: shape.organisations]
    org = standard[0]
    month = (today - timedelta(days=30), today)
    year = (today - timedelta(days=365), today)
    requests = {
        "warm_31d_org": wrk.analytics(org.provider_id, org.root_secret, *month),
        "warm_366d_org": wrk.analytics(org.provider_id, org.root_secret, *year),
        "warm_366d_kolkata": wrk.analytics(
            org.provider_id, org.root_secret, *year, time_zone="Asia/Kolkata"
        ),
        "warm_31d_groups": wrk.analytics(
            org.provider_id, org.root_secret, *month, group_by="api_key"
        ),
        "cold_366d_org": wrk.analytics(org.provider_id, org.root_secret, *year),
    }
    biggest = max(organisations, key=lambda o: len(o.key_ids))
    requests["sized"] = wrk.analytics(biggest.provider_id, biggest.root_secret, *year)
    count = 100 if args.small else 300
    client = redis.Redis.from_url(args.redis_url)
    services = command_services(Settings.from_env(env))
    pattern = services.cache.layout.pattern(org.id)
    services.close()

    def empty_the_cache(_: int) -> None:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)

    for name in unmet:
        say(f"profile: {name}")
        try:
            if name in requests:
                r = requests[name]
                before = empty_the_cache if name == "cold_366d_org" else None
                found[name] = profiles.requests(
                    env, r.method, r.path, r.headers, r.body, count, before
                )
            elif name == "cache_warm":
                found[name] = profiled_command(
                    [
                        "cache",
                        "warm",
                        "--start",
                        results["dataset"]["first_day"],
                        "--end",
                        str(today),
                    ],
                    env,
                    workdir,
                )
            elif name == "import":  # last: new events (it changes the dataset)
                events = PROFILED_IMPORT // (10 if args.small else 1)
                # Within the window the partition drop applied: an import refuses events
                # from before any window applied before (their ids may be forgotten).
                new = replace(shape, events=events, days=min(shape.days, 60))
                file = workdir / "profiled.csv"
                dataset.write_csv(file, dataset.events(new, organisations, today, id_prefix="p"))
                found[name] = profiled_command(["usage", "import", str(file)], env, workdir)
                found[name]["events"] = events
        except (Exception, SystemExit) as problem:  # a profile is an aid: the run goes on
            found[name] = {"error": str(problem)[:500]}
    client.close()
    return found


def profiled_command(argv: list[str], env: dict, workdir: Path) -> dict:
    output = workdir / "profile.json"
    subprocess.run(
        [sys.executable, "-m", "bench.profiles", "command", str(output), "--", *argv],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return json.loads(output.read_text())


if __name__ == "__main__":
    main()
