"""Usage events: import."""

from __future__ import annotations

from typing import BinaryIO

import click

from service.entrypoints.cli.base import Commands, emit, services
from service.usecases import event_files, imports
from service.usecases.imports import ImportFailed

usage_group = Commands("usage", help="Import usage events.")


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

    try:
        report = imports.import_events(
            services(),
            event_files.read_events(file, fmt),
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
