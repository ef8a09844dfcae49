"""What every command shares: its Services, built once from the settings and closed at its
end; one JSON object on stdout; failures in one line on stderr, never a traceback."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import click

from config.settings import Settings, SettingsError
from service.bootstrap import command_services, storage_failure
from service.domain.errors import RuleBroken
from service.usecases.errors import OperationFailed
from service.usecases.ports import Services

command_log = logging.getLogger("scrubs.command")
SERVICES = "scrubs.services"


class Commands(click.Group):
    """A group whose commands fail in one line (exit status 1), never with a traceback.
    Each command leaves a JSON log line at DEBUG: stderr otherwise carries only the human
    messages the command line promises (one line on a handled failure)."""

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
        except (OperationFailed, RuleBroken, SettingsError, OSError) as failure:
            raise click.ClickException(one_line(failure)) from None
        except Exception as failure:
            described = storage_failure(failure)
            if described is None:
                raise
            raise click.ClickException(described) from None


def one_line(failure: BaseException) -> str:
    return " ".join(str(failure).split()) or type(failure).__name__


def services() -> Services:
    """This command's Services, built on first use from its settings, closed at its end."""
    root = click.get_current_context().find_root()
    found = root.meta.get(SERVICES)
    if found is None:
        found = command_services(settings_of(root))
        root.meta[SERVICES] = found
        root.call_on_close(found.close)
    return found


def settings_of(root: click.Context) -> Settings:
    """The settings the command line was started with (`obj`), those of the app when run as
    `flask --app app …`, else the environment's."""
    if isinstance(root.obj, Settings):
        return root.obj
    if root.obj is None:
        return Settings.from_env()
    # Only under `flask --app app …`: the scrubs-analytics script never loads Flask.
    from flask.cli import ScriptInfo

    from service.entrypoints.http.conventions import services_of

    if isinstance(root.obj, ScriptInfo):
        return services_of(root.obj.load_app()).settings
    return Settings.from_env()


def emit(obj: Any) -> None:
    click.echo(json.dumps(obj))


class Rule(click.ParamType):
    """A value with a rule of the domain (`check(value)` returns it cleaned or raises
    RuleBroken): one that breaks the rule is bad usage (exit 2), like any value click
    itself refuses."""

    def __init__(self, name: str, check: Callable[[str], str]) -> None:
        self.name = name
        self.check = check

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return self.check(str(value))
        except RuleBroken as problem:
            self.fail(str(problem), param, ctx)
