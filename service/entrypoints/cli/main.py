"""The `scrubs-analytics` console script.

prometheus_client picks where metrics go when it is first imported, so this module
imports nothing that imports it before the metrics directory is settled: a command run on
the host that serves the same database adds its counts (imports, invalidations) to the
server's `/metrics`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from config.settings import Settings, SettingsError
from service.observability import metrics_directories
from service.observability.logs import configure_logging


def share_metrics_with_the_server(settings: Settings) -> None:
    """When gunicorn serves this database on this host, count this command's work in its
    metrics: samples go to the directory its workers share (read by GET /metrics)."""
    found = metrics_directories.live_instance_directory(
        Path(settings.metrics_base_directory), settings.database_name
    )
    if found is not None:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(found)


def main() -> None:
    try:
        settings = Settings.from_env()
    except SettingsError as problem:
        click.echo(f"Error: {problem}", err=True)
        sys.exit(1)
    configure_logging(settings.log_level)
    share_metrics_with_the_server(settings)
    from service.entrypoints.cli.root import cli

    cli.main(prog_name="scrubs-analytics", obj=settings)
