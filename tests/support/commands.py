"""Commands run in-process, as the console script runs them, on given settings."""

from __future__ import annotations

from click.testing import CliRunner, Result

from config.settings import Settings
from service.entrypoints.cli.root import cli


def run_command(settings: Settings, *args: str, input: str | bytes | None = None) -> Result:
    """The command's Result (stdout, stderr, exit_code); its Services are closed at its end."""
    return CliRunner().invoke(cli, list(args), input=input, obj=settings)
