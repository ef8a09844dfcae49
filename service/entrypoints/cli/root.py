"""The command groups, gathered under the `scrubs-analytics` group, and registered on the
app by the factory so that `flask --app app …` runs the same commands."""

from __future__ import annotations

from typing import Any

import click

from service.entrypoints.cli.directory_commands import (
    clinic_group,
    key_group,
    org_group,
    provider_group,
)
from service.entrypoints.cli.upkeep_commands import cache_group, db_group, demo_group
from service.entrypoints.cli.usage_commands import usage_group

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

cli = click.Group(
    "scrubs-analytics",
    help="Administration, usage import, reports and cache upkeep for the usage-analytics service.",
    commands=COMMAND_GROUPS,
)


def register_commands(app: Any) -> None:
    for group in COMMAND_GROUPS:
        app.cli.add_command(group)
