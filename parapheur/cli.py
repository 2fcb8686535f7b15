"""``socle parapheur …``: operator commands of the parapheur."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import NoReturn

import click

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
@click.option(
    "--stamp-image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Image PNG ou JPEG (signature scannée, logo) dessinée dans le tampon visible",
)
def identity_import(tenant: str, username: str, pkcs12: Path, passphrase_env: str, stamp_image: Path | None) -> None:
    from parapheur import identities

    passphrase = _secret_from_env(passphrase_env, "Phrase secrète du PKCS#12")
    with transaction() as session:
        row = identities.import_identity(
            session,
            get_tenant(session, tenant),
            username,
            pkcs12.read_bytes(),
            passphrase.encode(),
            stamp_image=stamp_image.read_bytes() if stamp_image else None,
        )
        click.echo(f"Identité enregistrée pour {username} : {row.subject}")


@group.command(
    "seal-import",
    help="Enregistrer un cachet serveur de la collectivité : fichier PKCS#12, ou clé sur un jeton PKCS#11 (HSM).",
)
@click.option("--tenant", required=True, help="Identifiant de la collectivité")
@click.option("--label", required=True, help="Nom du cachet (choisi ensuite dans les sous-types)")
@click.option("--pkcs12", "pkcs12", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--passphrase-env", default="PKCS12_PASSPHRASE", show_default=True, help="Variable de la phrase secrète du PKCS#12"
)
@click.option("--pkcs11-module", help="Bibliothèque PKCS#11 du jeton (ex. /usr/lib/softhsm/libsofthsm2.so)")
@click.option("--token-label", help="Nom du jeton PKCS#11")
@click.option("--key-label", help="Nom de la clé sur le jeton (facultatif s'il n'y en a qu'une)")
@click.option("--pin-env", default="SOCLE_SEAL_PIN", show_default=True, help="Variable d'environnement du code PIN")
@click.option("--stamp-image", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Image du tampon")
def seal_import(
    tenant: str,
    label: str,
    pkcs12: Path | None,
    passphrase_env: str,
    pkcs11_module: str | None,
    token_label: str | None,
    key_label: str | None,
    pin_env: str,
    stamp_image: Path | None,
) -> None:
    from parapheur import identities

    if (pkcs12 is None) == (pkcs11_module is None):
        raise InvalidInput("indiquez soit --pkcs12, soit --pkcs11-module avec --token-label")
    image = stamp_image.read_bytes() if stamp_image else None
    with transaction() as session:
        found = get_tenant(session, tenant)
        if pkcs12 is not None:
            passphrase = _secret_from_env(passphrase_env, "Phrase secrète du PKCS#12")
            row = identities.import_seal_pkcs12(
                session, found, label, pkcs12.read_bytes(), passphrase.encode(), stamp_image=image
            )
        else:
            if not token_label:
                raise InvalidInput("--token-label est obligatoire avec --pkcs11-module")
            row = identities.import_seal_pkcs11(
                session,
                found,
                label,
                module_path=str(pkcs11_module),
                token_label=token_label,
                pin=_secret_from_env(pin_env, "Code PIN du jeton"),
                key_label=key_label,
                stamp_image=image,
            )
        click.echo(f"Cachet « {label} » enregistré ({row.kind}) : {row.subject} — identifiant {row.id}")


@group.command("seal-list", help="Lister les cachets serveur de la collectivité (identifiant, nom, certificat).")
@click.option("--tenant", required=True, help="Identifiant de la collectivité")
def seal_list(tenant: str) -> None:
    from parapheur import identities

    with transaction() as session:
        rows = identities.seal_rows(session, get_tenant(session, tenant).id)
        for row in rows:
            click.echo(f"{row.id}  {row.label}  ({row.kind})  {row.subject}")
        if not rows:
            click.echo("Aucun cachet serveur enregistré.")


@group.command("digest", help="Envoyer les avis de retard puis les récapitulatifs de notifications en attente.")
@click.option("--tenant", required=True, help="Identifiant de la collectivité")
def digest(tenant: str) -> None:
    from parapheur import notify

    with transaction() as session:
        tenant_id = get_tenant(session, tenant).id
    late, sent = notify.send_late_and_digests(tenant_id)
    click.echo(f"{late} avis de retard donné(s), {sent} récapitulatif(s) envoyé(s).")


@group.command(
    "late",
    help=(
        "Avertir des dossiers en retard ceux qu'ils attendent (bureaux, ou le créateur quand aucun bureau ne "
        "peut agir) : un avis par jour et par dossier."
    ),
)
@click.option("--tenant", required=True, help="Identifiant de la collectivité")
def late(tenant: str) -> None:
    from parapheur import notify
    from socle.dates import french_today

    with transaction() as session:
        count = notify.notice_late(session, get_tenant(session, tenant).id, french_today())
    click.echo(
        f"{count} avis de retard préparé(s) (immédiats, gardés pour le récapitulatif, ou non envoyés à qui "
        "n'en veut pas)."
    )


def _secret_from_env(variable: str, prompt: str) -> str:
    """A secret from the environment, else typed without echo: never a command-line argument."""
    value = os.environ.get(variable)
    if value is None:
        value = click.prompt(prompt, hide_input=True)
    return value


@group.command(
    "verify",
    help="Vérifier les signatures d'un PDF, d'une signature CAdES détachée (.p7s, avec --data) ou d'un flux PES "
    "signé (XAdES) ; code de sortie 1 si l'une n'est pas valide.",
)
@click.argument("pdf", metavar="FICHIER", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--data",
    "data_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Fichier signé par la signature CAdES détachée FICHIER (par défaut : FICHIER sans l'extension .p7s)",
)
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
    help="Interroger les répondeurs OCSP et les listes de révocation (réseau) quand le fichier ne les contient pas",
)
@click.option("--json", "as_json", is_flag=True, help="Rapport en JSON")
def verify(pdf: Path, data_file: Path | None, trust_files: tuple[Path, ...], online: bool, as_json: bool) -> None:
    from parapheur.schemas import ValidationOut

    # pyHanko logs every failed check with its trace; the report already says what failed, in French.
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    logging.getLogger("pyhanko_certvalidator").setLevel(logging.CRITICAL)
    from parapheur.verification import der, load_certificates, reports_for

    roots = [
        der(certificate) for path in trust_files for certificate in load_certificates(path.read_bytes(), path.name)
    ]
    reports, notes = reports_for(pdf, roots, data_file=data_file or _detached_data(pdf), online=online)
    result = ValidationOut.of(pdf.name, reports, notes)
    if as_json:
        click.echo(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2))
    else:
        click.echo("\n".join([*(report.summary for report in reports), *notes]) or "Aucune signature dans ce fichier.")
    if not result.valid:
        raise SystemExit(1)


def _detached_data(signature: Path) -> Path | None:
    """The file a detached signature ``x.pdf.p7s`` signs, ``x.pdf`` beside it, if that is what it is."""
    from parapheur.verification import signed_file_kind

    if signed_file_kind(signature) != "cades":
        return None
    if signature.suffix.lower() in (".p7s", ".p7m") and signature.with_suffix("").is_file():
        return signature.with_suffix("")
    raise InvalidInput(f"{signature.name} est une signature détachée : indiquez le fichier signé avec --data.")


@group.command(
    "sign-with-card",
    help=(
        "Signer un dossier avec sa carte à puce (PKCS#11) : la clé et le code PIN ne quittent pas ce poste. "
        "Le jeton d'accès est lu dans la variable SOCLE_API_TOKEN (la page du dossier donne la commande complète, "
        "avec un jeton valable 30 minutes pour ce seul dossier)."
    ),
)
@click.option(
    "--api", "api_url", required=True, help="URL de l'API du parapheur, ex. https://socle.exemple.fr/parapheur"
)
@click.option("--folder", "folder_id", required=True, help="Identifiant du dossier à signer")
@click.option(
    "--module",
    "module_path",
    default=None,
    help=(
        "Bibliothèque PKCS#11 de la carte (ou variable SOCLE_CARD_MODULE). Par défaut, celle d'OpenSC, cherchée "
        "dans /usr/lib/<architecture>/, /usr/lib/, /usr/lib64/, /usr/local/lib/ (et leurs sous-dossiers pkcs11/), "
        "sous macOS dans /Library/OpenSC/lib/ et /opt/homebrew/lib/, sous Windows dans C:/Windows/System32/ et "
        "C:/Program Files/OpenSC Project/OpenSC/pkcs11/"
    ),
)
@click.option(
    "--token-label", default=None, help="Nom (libellé) de la carte ; facultatif quand une seule carte est insérée"
)
@click.option("--key-label", default=None, help="Libellé de la clé, si la carte en porte plusieurs")
@click.option(
    "--pin-env",
    default="SOCLE_CARD_PIN",
    show_default=True,
    help="Variable d'environnement du code PIN (demandé s'il n'y est pas ; jamais en argument)",
)
def sign_with_card(
    api_url: str,
    folder_id: str,
    module_path: str | None,
    token_label: str | None,
    key_label: str | None,
    pin_env: str,
) -> None:
    from parapheur.card_client import find_card, sign_folder_with_card
    from socle.errors import SocleError

    api_token = os.environ.get("SOCLE_API_TOKEN")
    if not api_token:
        _fail("Le jeton d'accès à l'API manque : définissez la variable d'environnement SOCLE_API_TOKEN.")
    try:
        # Found before the PIN is asked: no card, no question.
        module_path, token_label = find_card(module_path, token_label)
    except SocleError as exc:
        _fail(exc.detail)
    pin = os.environ.get(pin_env) or click.prompt(f"Code PIN de la carte « {token_label} »", hide_input=True)
    try:
        folder = sign_folder_with_card(api_url, api_token, folder_id, module_path, token_label, pin, key_label)
    except SocleError as exc:
        _fail(exc.detail)
    title = folder.get("title") or folder_id
    click.echo(f"Dossier « {title} » signé avec la carte « {token_label} » (état : {folder.get('status', 'inconnu')}).")


def _fail(message: str) -> NoReturn:
    # A plain message and status 1, also when this group runs outside the `socle` command.
    click.echo(f"Erreur : {message}", err=True)
    raise SystemExit(1)
