"""Organisations, providers, clinics and API keys."""

from __future__ import annotations

import click

from service.domain.keys import check_provider_id, clean_name
from service.entrypoints.cli.base import Commands, Rule, emit, services
from service.usecases import admin

NAME = Rule("name", lambda name: clean_name(name, "the"))
PROVIDER_ID = Rule("provider_id", check_provider_id)
ORG = click.option(
    "--org", "organisation_id", type=click.UUID, required=True, help="Organisation id."
)
ANY_ORG = click.option(
    "--org", "organisation_id", type=click.UUID, help="Only this organisation's."
)

org_group = Commands("org", help="Manage organisations.")


@org_group.command("create")
@click.option("--name", type=NAME, required=True, help="The organisation's display name.")
def org_create(name: str) -> None:
    """Create an organisation and print its id."""
    emit(admin.create_organisation(services().directory, name))


@org_group.command("list")
def org_list() -> None:
    """Print every organisation, oldest first."""
    emit(admin.list_organisations(services().directory))


provider_group = Commands(
    "provider", help="Manage provider ids (the X-Scrubs-Clinic-Provider header)."
)


@provider_group.command("create")
@ORG
@click.option(
    "--id", "provider_id", type=PROVIDER_ID, help="1-64 of A-Za-z0-9._- (generated when left out)."
)
@click.option("--name", type=NAME, help="A display name.")
def provider_create(organisation_id, provider_id: str | None, name: str | None) -> None:
    """Create a provider id that maps to an organisation."""
    emit(admin.create_provider(services().directory, organisation_id, provider_id, name))


@provider_group.command("list")
@ANY_ORG
def provider_list(organisation_id) -> None:
    """Print the provider ids (of every organisation, or one), oldest first."""
    emit(admin.list_providers(services().directory, organisation_id))


clinic_group = Commands("clinic", help="Manage clinics.")


@clinic_group.command("create")
@ORG
@click.option("--name", type=NAME, required=True, help="The clinic's display name.")
def clinic_create(organisation_id, name: str) -> None:
    """Create a clinic of an organisation."""
    emit(admin.create_clinic(services().directory, organisation_id, name))


@clinic_group.command("list")
@ORG
def clinic_list(organisation_id) -> None:
    """Print an organisation's clinics, oldest first."""
    emit(admin.list_clinics(services().directory, organisation_id))


key_group = Commands("key", help="Manage API keys.")


@key_group.command("create")
@ORG
@click.option("--name", type=NAME, required=True, help="A display name for the key.")
@click.option("--clinic", "clinic_id", type=click.UUID, help="The clinic the key belongs to.")
@click.option(
    "--root", "is_root", is_flag=True, help="A root key: may read the organisation's usage."
)
def key_create(organisation_id, name: str, clinic_id, is_root: bool) -> None:
    """Create an API key. Its secret is printed this once and stored only as a hash."""
    key, secret = admin.create_api_key(
        services().directory, organisation_id, name, clinic_id=clinic_id, is_root=is_root
    )
    emit(admin.key_with_secret(key, secret))
    click.echo("Keep the secret now: it is shown this once, and only its hash is stored.", err=True)


@key_group.command("list")
@ORG
def key_list(organisation_id) -> None:
    """Print an organisation's API keys (never their secrets), oldest first."""
    emit(admin.list_keys(services().directory, organisation_id))


@key_group.command("revoke")
@click.argument("key_id", type=click.UUID)
def key_revoke(key_id) -> None:
    """Revoke an API key: it stops authenticating at once; its usage stays readable."""
    emit(admin.revoke_api_key(services().directory, key_id))
