"""``socle parapheur …``: operator commands of the parapheur."""

from __future__ import annotations

import os
from pathlib import Path

import click

from parapheur import service
from socle.auth import get_tenant
from socle.db import transaction


@click.group(name="parapheur", help="Parapheur : identités de signature.")
def group() -> None:
    pass


@group.command("identity-import", help="Enregistrer l'identité de signature PKCS#12 d'un utilisateur.")
@click.option("--tenant", required=True, help="Identifiant de la collectivité")
@click.option("--user", "username", required=True, help="Identifiant de l'utilisateur")
@click.option("--pkcs12", "pkcs12", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--passphrase-env",
    default="SOCLE_PKCS12_PASSPHRASE",
    show_default=True,
    help="Variable d'environnement de la phrase secrète (jamais en argument : elle resterait dans l'historique)",
)
def identity_import(tenant: str, username: str, pkcs12: Path, passphrase_env: str) -> None:
    passphrase = os.environ.get(passphrase_env)
    if passphrase is None:
        passphrase = click.prompt("Phrase secrète du PKCS#12", hide_input=True)
    with transaction() as session:
        row = service.import_identity(
            session, get_tenant(session, tenant), username, pkcs12.read_bytes(), passphrase.encode()
        )
        click.echo(f"Identité enregistrée pour {username} : {row.subject}")
