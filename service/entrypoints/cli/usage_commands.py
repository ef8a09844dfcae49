"""Usage events: import."""

from __future__ import annotations

import gc
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import click
from marshmallow import ValidationError

from schemas.usage_analytics import GROUP_BY, UsageAnalyticsRequest
from service.domain.errors import QueryRefused
from service.domain.figures import UsageQuery
from service.domain.reports import ReportQuery
from service.domain.time_buckets import GRANULARITIES
from service.entrypoints.cli.base import Commands, emit, one_line, services
from service.entrypoints.report_formats import csv_body, json_text, summary_json, table_text
from service.usecases import event_files, imports, reports
from service.usecases.figures import usage_for_range

IMPORT_GC_THRESHOLD = 50_000  # allocations between collections of the youngest objects
IMPORT_SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the GIL when others want it


@contextmanager
def _tuned_for_import() -> Iterator[None]:
    """The interpreter set for an import's threads while it runs, as it was after."""
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    # A batch's lines live until its commit: at the default threshold (700) the collector
    # scans them again and again, a quarter of the import's own CPU on 1M events.
    gc.set_threshold(IMPORT_GC_THRESHOLD)
    # The threads committing batches wait on Postgres and then need the GIL a moment, while
    # the thread reading the next batch holds it: let them have it back within 0.5 ms.
    sys.setswitchinterval(IMPORT_SWITCH_INTERVAL)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)


usage_group = Commands("usage", help="Import usage events, and report the figures.")


@usage_group.command("import")
@click.argument("file", type=click.File("rb"))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(event_files.FORMATS),
    help="jsonl or csv (default: from the file name; jsonl for stdin).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1_000_000),
    default=imports.DEFAULT_BATCH_SIZE,
    show_default=True,
    help="Events committed per transaction.",
)
@click.pass_context
def usage_import(ctx: click.Context, file: BinaryIO, fmt: str | None, batch_size: int) -> None:
    """Import usage events from FILE (- for stdin). Events seen before are counted as
    duplicates and change nothing, so re-running an import is always safe."""
    fmt = fmt or event_files.format_for(str(getattr(file, "name", "-")))

    def rejected(line: int, reason: str) -> None:
        click.echo(f"line {line}: {reason}", err=True)

    report, services_here = imports.ImportReport(), services()
    try:
        with _tuned_for_import():
            imports.import_events(
                services_here,
                event_files.read_events(file, fmt),
                on_rejected=rejected,
                batch_size=batch_size,
                report=report,
            )
    finally:  # whatever stopped it, too: what was committed, then why it stopped
        emit(report.as_json())
    if report.pending_invalidations:
        click.echo(
            "The cache has not been told of these events yet (REDIS_URL is empty here, Redis "
            "did not answer, or no server reads it): servers answer the days they touch from "
            "Postgres, exactly, until a server or the next import tells the cache.",
            err=True,
        )
    if report.rejected:
        if report.inserted + report.duplicates == 0:
            outcome = "no line was imported"
        else:
            outcome = f"{report.inserted} imported, {report.duplicates} seen before"
        click.echo(f"{report.rejected} line(s) rejected; {outcome}.", err=True)
        ctx.exit(1)


@usage_group.command("report")
@click.option("--org", "organisation_id", type=click.UUID, required=True, help="Organisation id.")
@click.option("--start", required=True, help="First day, YYYY-MM-DD (in --time-zone).")
@click.option("--end", required=True, help="Last day, YYYY-MM-DD (included).")
@click.option("--key", "api_key_id", help="Only this key of the organisation.")
@click.option("--time-zone", help="An IANA time zone, such as America/New_York (default UTC).")
@click.option("--granularity", type=click.Choice(GRANULARITIES), help="Buckets (default day).")
@click.option("--group-by", type=click.Choice(GROUP_BY), help="Figures per key or per clinic.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv", "table"]),
    default="json",
    show_default=True,
    help="The API's JSON answer, its CSV, or a table for a terminal.",
)
def usage_report(
    organisation_id,
    start: str,
    end: str,
    api_key_id: str | None,
    time_zone: str | None,
    granularity: str | None,
    group_by: str | None,
    fmt: str,
) -> None:
    """Print the figures the API would answer for an organisation, under the same rules and
    limits (every group, no pages)."""
    options = {"time_zone": time_zone, "granularity": granularity, "group_by": group_by}
    given = {name: value for name, value in options.items() if value is not None}
    body = {"start_date": start, "end_date": end, "api_key_id": api_key_id, **given}
    settings = services().settings
    try:
        loaded = UsageAnalyticsRequest(max_range_days=settings.max_range_days).load(body)
    except ValidationError as error:
        problem = _first_problem(error.normalized_messages())
        raise click.UsageError(_in_option_words(one_line(problem))) from None
    try:
        principal = reports.principal_of(services(), organisation_id)
        if fmt == "json" and not given:
            query = UsageQuery(loaded["start_date"], loaded["end_date"], api_key_id)
            click.echo(summary_json(usage_for_range(services(), principal, query)))
            return
        prepared = reports.prepare(services(), ReportQuery.from_body(loaded))
        result = reports.report(services(), principal, prepared, every_group=True)
    except QueryRefused as refused:
        detail = _in_option_words(one_line(refused.detail))
        if refused.code == "invalid_request":  # the API's 400: the options break a rule
            raise click.UsageError(detail) from None
        raise click.ClickException(detail) from None
    if fmt == "json":  # the API's bytes
        click.echo(json_text(result))
    elif fmt == "csv":
        click.echo(csv_body(result), nl=False)
    else:
        click.echo(table_text(result), nl=False)


_OPTION_NAMES = {
    "start_date": "--start",
    "end_date": "--end",
    "api_key_id": "--key",
    "time_zone": "--time-zone",
    "granularity": "--granularity",
    "group_by": "--group-by",
}


# A field of the API named in a message, not already an option's name.
_API_FIELD = re.compile(rf"(?<![-\w])({'|'.join(_OPTION_NAMES)})\b")


def _first_problem(messages: dict) -> str:
    field, found = next(iter(messages.items()))
    text = found[0] if isinstance(found, list) else str(found)
    return f"{field}: {text}"


def _in_option_words(message: str) -> str:
    """The API's rules speak of its fields; the command's messages name its options."""
    return _API_FIELD.sub(lambda found: _OPTION_NAMES[found[1]], message)
