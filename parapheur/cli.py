"""``socle parapheur …``: operator commands of the parapheur."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from socle.auth import get_tenant
from socle.db import transaction
from socle.errors import InvalidInput

# The signing modules (pyHanko) are imported inside the commands: every `socle …` command loads this
# group, and most of them never sign anything.


@click.group(name="parapheur", help="Parapheur : identités de signature, vérification des signatures.")
def group() -> None:
    pass


@group.command("identity-import", help="Enregistrer l'identité de signature PKCS#12 d'un utilisateur.")
@click.option("--tenant", required=True, help="Identifiant de la collectivité")
@click.option("--user", "username", required=True, help="Identifiant de l'utilisateur")
@click.option("--pkcs12", "pkcs12", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--passphrase-env",
    default="PKCS12_PASSPHRASE",
    show_default=True,
    help="Variable d'environnement de la phrase secrète (jamais en argument : elle resterait dans l'historique)",
)
def identity_import(tenant: str, username: str, pkcs12: Path, passphrase_env: str) -> None:
    from parapheur import service

    passphrase = os.environ.get(passphrase_env)
    if passphrase is None:
        passphrase = click.prompt("Phrase secrète du PKCS#12", hide_input=True)
    with transaction() as session:
        row = service.import_identity(
            session, get_tenant(session, tenant), username, pkcs12.read_bytes(), passphrase.encode()
        )
        click.echo(f"Identité enregistrée pour {username} : {row.subject}")


@group.command("verify", help="Vérifier les signatures d'un PDF (code de sortie 1 si l'une n'est pas valide).")
@click.argument("pdf", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--trust",
    "trust_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Certificat d'autorité de confiance (PEM, éventuellement plusieurs par fichier, ou DER) ; répétable",
)
@click.option(
    "--online/--offline",
    default=False,
    show_default=True,
    help="Interroger les répondeurs OCSP et les listes de révocation (réseau) quand le PDF ne les contient pas",
)
@click.option("--json", "as_json", is_flag=True, help="Rapport en JSON")
def verify(pdf: Path, trust_files: tuple[Path, ...], online: bool, as_json: bool) -> None:
    from parapheur import pades
    from parapheur.schemas import ValidationOut

    # pyHanko logs every failed check with its trace; the report already says what failed, in French.
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    roots = [der for path in trust_files for der in _certificates(path)]
    try:
        reports = pades.validation_report(pdf, roots, allow_fetching=online)
    except pades.PdfError as exc:
        raise InvalidInput(str(exc)) from None
    result = ValidationOut.of(pdf.name, reports)
    if as_json:
        click.echo(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join(report.summary for report in reports) or "Aucune signature dans ce PDF.")
    if not result.valid:
        raise SystemExit(1)


def _certificates(path: Path) -> list[bytes]:
    data = path.read_bytes()
    try:
        if b"-----BEGIN" in data:
            return [cert.public_bytes(Encoding.DER) for cert in x509.load_pem_x509_certificates(data)]
        return [x509.load_der_x509_certificate(data).public_bytes(Encoding.DER)]
    except ValueError:
        raise InvalidInput(f"{path.name} n'est pas un certificat X.509 (PEM ou DER).") from None
