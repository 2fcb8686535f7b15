"""``socle archive …``: the official SEDA schemas, and checking a package."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import click

from archive import packaging, validation, xsd_install
from socle.settings import get_settings


@click.group(name="archive", help="Archives : schémas SEDA, vérification de paquets.")
def group() -> None:
    pass


@group.group(name="schemas", help="Schémas XSD officiels du SEDA.")
def schemas_group() -> None:
    pass


def _default_folder() -> Path:
    settings = get_settings()
    return settings.seda_schemas or settings.data_dir / "seda"


@schemas_group.command("install", help="Télécharger les schémas depuis leur source publique (empreintes vérifiées).")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), help="Dossier (défaut : SOCLE_SEDA_SCHEMAS)")
@click.option("--base-url", default=xsd_install.DEFAULT_BASE_URL, show_default=True, help="Source (miroir)")
def schemas_install(dest: Path | None, base_url: str) -> None:
    folder = dest or _default_folder()
    try:
        written = xsd_install.install_schemas(folder, base_url=base_url)
    except xsd_install.SchemaInstallError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(written)} fichier(s) installé(s) dans {folder} ; définissez SOCLE_SEDA_SCHEMAS={folder}")


@schemas_group.command("check", help="Vérifier qu'un dossier contient les schémas officiels intacts.")
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
def schemas_check(folder: Path | None) -> None:
    problems = xsd_install.check_schemas(folder or _default_folder())
    for problem in problems:
        click.echo(f"- {problem}")
    if problems:
        sys.exit(1)
    click.echo("Schémas complets et intacts.")


@group.command("verify", help="Vérifier un paquet SEDA : empreintes, tailles, et schéma si configuré.")
@click.argument("sip", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", "seda_version", default="2.2", show_default=True)
def verify(sip: Path, seda_version: str) -> None:
    try:
        problems = packaging.verify_sip(sip)
        with zipfile.ZipFile(sip) as archive:
            manifest = archive.read("manifest.xml")
    except (zipfile.BadZipFile, KeyError) as exc:
        raise click.ClickException(f"paquet illisible : {exc}") from None
    folder = get_settings().seda_schemas
    if folder is None:
        click.echo("Validation XSD non faite : SOCLE_SEDA_SCHEMAS n'est pas défini.")
    else:
        try:
            report = validation.validate_manifest(manifest, folder, seda_version)
        except validation.SchemaUnavailable as exc:
            raise click.ClickException(str(exc)) from None
        problems += [f"ligne {issue.line} {issue.path or ''} : {issue.message}" for issue in report.issues]
    for problem in problems:
        click.echo(f"- {problem}")
    if problems:
        sys.exit(1)
    click.echo("Paquet conforme.")
