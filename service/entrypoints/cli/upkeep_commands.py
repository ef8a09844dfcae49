"""Keeping the service's stores: the database schema, the rollup cache, the demo data."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from uuid import UUID

import click

from service.adapters.postgres.migrate import upgrade_database
from service.entrypoints.cli.base import Commands, emit, services
from service.usecases import cache_upkeep
from service.usecases.demo import seed_demo

db_group = Commands("db", help="Manage the database schema.")


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Create the database if it is missing, then apply pending schema migrations."""
    emit(upgrade_database(services().settings.database_url))


cache_group = Commands("cache", help="Manage the Redis rollup cache.")


@cache_group.command("warm")
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day.")
@click.option("--end", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last day.")
@click.option("--org", "organisation_id", type=click.UUID, help="Only this organisation.")
def cache_warm(start, end, organisation_id) -> None:
    """Fill the cached daily rollups of every organisation (or one) for a range of days,
    so that the first queries are served from the cache."""
    start, end = start.date(), end.date()
    if start > end:
        raise click.BadParameter("--start must be on or before --end", param_hint="--start")
    with _progress_bar(organisation_id) as advance:
        summary = cache_upkeep.warm(services(), start, end, organisation_id, on_progress=advance)
    emit(summary)


@cache_group.command("clear")
@click.option("--org", "organisation_id", type=click.UUID, help="Only this organisation.")
def cache_clear(organisation_id) -> None:
    """Drop cached rollups (of every organisation, or one); they refill on demand."""
    emit(cache_upkeep.clear(services(), organisation_id))


@contextmanager
def _progress_bar(organisation_id: UUID | None) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over organisations on a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    total = len(cache_upkeep.organisations(services(), organisation_id))
    with click.progressbar(length=total, label="Warming", file=sys.stderr) as bar:
        yield bar.update


PROGRAM = "scrubs-analytics"
demo_group = Commands("demo", help="Demo data.")


@demo_group.command("seed")
def demo_seed() -> None:
    """Create (or refresh) the demo organisation and its usage; print a working curl line."""
    result = seed_demo(services())
    emit(result)
    click.echo(demo_summary(result), err=True)


def program() -> str:
    """The command as this one was run (`.venv/bin/scrubs-analytics` under `make run`)."""
    invoked = sys.argv[0]
    return shlex.quote(invoked) if os.path.basename(invoked) == PROGRAM else PROGRAM


def demo_summary(seeded: dict) -> str:
    """The demo's ids and two ways to see its figures, for the person who ran it."""
    start, end = seeded["usage_days"].split("..")
    clinic_keys = "\n".join(f"  clinic key     {key}" for key in seeded["clinic_key_ids"])
    return (
        f"\nDemo organisation {seeded['organisation_id']} (provider {seeded['provider_id']!r}),"
        f" usage on {start}..{end}:\n"
        f"  root key       {seeded['root_key_id']} (its secret is in the curl line below)\n"
        f"{clinic_keys}\n\n"
        f"Once gunicorn is listening, try:\n\n{seeded['curl']}\n\n"
        "or, without the server:\n\n"
        f"{program()} usage report --org {seeded['organisation_id']}"
        f" --start {start} --end {end} --granularity month --format table\n"
    )
