"""The `scrubs-analytics` command line (CONTRACT §3): the same service functions as the API.

Commands print one JSON object on stdout and talk to humans on stderr. A handled failure is
one line on stderr and exit status 1; bad usage is exit status 2 (click's own).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, BinaryIO

import click
import psycopg
import redis
from flask import current_app
from flask.cli import AppGroup, FlaskGroup

from config.settings import Settings, SettingsError
from service import admin, ingest, warming
from service.admin import AdminError
from service.context import Services
from service.db import upgrade_database
from service.demo import seed_demo
from service.ingest import ImportFailed
from service.rollup_cache import CacheUnavailable

command_log = logging.getLogger("scrubs.command")


class Commands(AppGroup):
    """A group whose commands run in the app context and fail in one line, never a traceback.
    Each command leaves a JSON log line at DEBUG: stderr otherwise carries only the human
    messages the contract promises (one line on a handled failure)."""

    def invoke(self, ctx: click.Context) -> Any:
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = self._invoke(ctx)
            outcome = "ok"
            return result
        except click.exceptions.Exit as leaving:
            outcome = "ok" if leaving.exit_code == 0 else "failed"
            raise
        finally:
            command_log.debug(
                "command",
                extra={
                    "command": f"{ctx.info_name} {ctx.invoked_subcommand or ''}".strip(),
                    "outcome": outcome,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (AdminError, ImportFailed) as failure:
            raise click.ClickException(one_line(failure)) from None
        except psycopg.Error as failure:
            raise click.ClickException(f"Postgres: {one_line(failure)}") from None
        except (redis.RedisError, CacheUnavailable) as failure:
            raise click.ClickException(f"Redis: {one_line(failure)}") from None
        except OSError as failure:
            raise click.ClickException(one_line(failure)) from None


def one_line(failure: BaseException) -> str:
    return " ".join(str(failure).split()) or type(failure).__name__


def services() -> Services:
    """Unpooled handles for this command, built from the app's settings, closed at its end."""
    ctx = click.get_current_context()
    found = ctx.meta.get("scrubs.services")
    if found is None:
        app_services: Services = current_app.extensions["scrubs"]
        found = Services.from_settings(app_services.settings, pooled=False)
        ctx.meta["scrubs.services"] = found
        ctx.call_on_close(found.close)
    return found


def emit(obj: Any) -> None:
    click.echo(json.dumps(obj))


class AdminRule(click.ParamType):
    """A value the admin layer checks (`check(value)` returns it cleaned or raises
    AdminError): one that breaks the rule is bad usage (exit 2), like any value click itself
    refuses."""

    def __init__(self, name: str, check: Callable[[str], str]) -> None:
        self.name = name
        self.check = check

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return self.check(str(value))
        except AdminError as problem:
            self.fail(str(problem), param, ctx)


NAME = AdminRule("name", lambda name: admin.clean_name(name, "the"))
PROVIDER_ID = AdminRule("provider_id", admin.check_provider_id)


# --- db ------------------------------------------------------------------------------

db_group = Commands("db", help="Manage the database schema.")


@db_group.command("upgrade")
def db_upgrade() -> None:
    """Create the database if it is missing, then apply pending schema migrations."""
    emit(upgrade_database(services().settings.database_url))


# --- org, provider, clinic, key ------------------------------------------------------

org_group = Commands("org", help="Manage organisations.")


@org_group.command("create")
@click.option("--name", type=NAME, required=True, help="The organisation's display name.")
def org_create(name: str) -> None:
    """Create an organisation and print its id."""
    emit(admin.create_organisation(services().db, name))


provider_group = Commands(
    "provider", help="Manage provider ids (the X-Scrubs-Clinic-Provider header)."
)


@provider_group.command("create")
@click.option("--org", "organisation_id", type=click.UUID, required=True, help="Organisation id.")
@click.option(
    "--id", "provider_id", type=PROVIDER_ID, help="1-64 of A-Za-z0-9._- (generated when left out)."
)
@click.option("--name", type=NAME, help="A display name.")
def provider_create(organisation_id, provider_id: str | None, name: str | None) -> None:
    """Create a provider id that maps to an organisation."""
    emit(admin.create_provider(services().db, organisation_id, provider_id, name))


clinic_group = Commands("clinic", help="Manage clinics.")


@clinic_group.command("create")
@click.option("--org", "organisation_id", type=click.UUID, required=True, help="Organisation id.")
@click.option("--name", type=NAME, required=True, help="The clinic's display name.")
def clinic_create(organisation_id, name: str) -> None:
    """Create a clinic of an organisation."""
    emit(admin.create_clinic(services().db, organisation_id, name))


key_group = Commands("key", help="Manage API keys.")


@key_group.command("create")
@click.option("--org", "organisation_id", type=click.UUID, required=True, help="Organisation id.")
@click.option("--name", type=NAME, required=True, help="A display name for the key.")
@click.option("--clinic", "clinic_id", type=click.UUID, help="The clinic the key belongs to.")
@click.option(
    "--root", "is_root", is_flag=True, help="A root key: may read the organisation's usage."
)
def key_create(organisation_id, name: str, clinic_id, is_root: bool) -> None:
    """Create an API key. Its secret is printed this once and stored only as a hash."""
    key, secret = admin.create_api_key(
        services().db, organisation_id, name, clinic_id=clinic_id, is_root=is_root
    )
    emit(admin.key_with_secret(key, secret))


@key_group.command("revoke")
@click.argument("key_id", type=click.UUID)
def key_revoke(key_id) -> None:
    """Revoke an API key: it stops authenticating at once; its usage stays readable."""
    emit(admin.revoke_api_key(services().db, key_id))


# --- usage ---------------------------------------------------------------------------

usage_group = Commands("usage", help="Import usage events.")


@usage_group.command("import")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(ingest.FORMATS),
    help="jsonl or csv (default: from the file name; jsonl for stdin).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1_000_000),
    default=ingest.DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Events committed per transaction.",
)
@click.pass_context
def usage_import(ctx: click.Context, file: BinaryIO, fmt: str | None, batch_size: int) -> None:
    """Import usage events from FILE (- for stdin). Events seen before are counted as
    duplicates and change nothing, so re-running an import is always safe."""
    fmt = fmt or ingest.format_for(str(getattr(file, "name", "-")))

    def rejected(line: int, reason: str) -> None:
        click.echo(f"line {line}: {reason}", err=True)

    try:
        report = ingest.import_events(
            services(),
            ingest.read_events(file, fmt),
            on_rejected=rejected,
            batch_size=batch_size,
        )
    except ImportFailed as failure:
        emit(failure.report.as_json())
        raise
    emit(report.as_json())
    if report.rejected:
        click.echo(f"{report.rejected} line(s) rejected; the others were imported.", err=True)
        ctx.exit(1)


# --- cache ---------------------------------------------------------------------------

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
    with _progress_bar(services(), organisation_id) as advance:
        summary = warming.warm(services(), start, end, organisation_id, on_progress=advance)
    emit(summary)


@cache_group.command("clear")
@click.option("--org", "organisation_id", type=click.UUID, help="Only this organisation.")
def cache_clear(organisation_id) -> None:
    """Drop cached rollups (of every organisation, or one); they refill on demand."""
    emit(warming.clear(services(), organisation_id))


@contextmanager
def _progress_bar(services: Services, organisation_id):
    """A progress bar over organisations on a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    total = 1 if organisation_id else warming.organisation_count(services)
    with click.progressbar(length=total, label="Warming", file=sys.stderr) as bar:
        yield bar.update


# --- demo ----------------------------------------------------------------------------

demo_group = Commands("demo", help="Demo data.")


@demo_group.command("seed")
def demo_seed() -> None:
    """Create (or refresh) the demo organisation and its usage; print a working curl line."""
    result = seed_demo(services())
    emit(result)
    click.echo(f"\nOnce gunicorn is listening, try:\n\n{result['curl']}\n", err=True)


COMMAND_GROUPS = (
    cache_group,
    db_group,
    org_group,
    provider_group,
    clinic_group,
    key_group,
    usage_group,
    demo_group,
)


def register_commands(app: Any) -> None:
    for group in COMMAND_GROUPS:
        app.cli.add_command(group)


def _share_metrics_with_the_server(settings: Settings) -> None:
    """When gunicorn serves this database on this host, count this command's imports in its
    metrics: samples go to the directory its workers share (read by GET /metrics)."""
    if os.path.isdir(settings.metrics_directory):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = settings.metrics_directory


def main() -> None:
    """The `scrubs-analytics` console script: a Flask CLI group bound to the app factory."""
    try:
        _share_metrics_with_the_server(Settings.from_env())
        from app import create_app  # the factory lives at the top of the project

        cli = FlaskGroup(
            create_app=create_app,
            add_default_commands=False,
            add_version_option=False,
            load_dotenv=False,
            help="Administration, usage import and cache warming for the usage-analytics service.",
        )
        cli.main(prog_name="scrubs-analytics")
    except SettingsError as problem:
        click.echo(f"Error: {problem}", err=True)
        sys.exit(1)
