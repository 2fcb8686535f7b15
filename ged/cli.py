"""``socle ged …``: the GED's operator commands. Each helper module appends its commands below.

Domain modules are imported inside the commands: every ``socle …`` command loads this group.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click


@click.group(name="ged", help="GED : opérations sur les documents et leur index de recherche.")
def group() -> None:
    pass


# ---------------------------------------------------------------------------------------------------------
# Trash (ged.retention)


@group.command(
    "purge", help="Purger la corbeille : documents au-delà du délai de restauration, sauf gelés ou sous DUA."
)
@click.option("--tenant", "tenant_slug", help="Seulement cette collectivité (identifiant court) ; sinon toutes")
def purge(tenant_slug: str | None) -> None:
    from ged import retention
    from socle.auth import get_tenant
    from socle.db import new_session

    _stop_on_sigterm()
    with new_session() as session:
        tenant_id = get_tenant(session, tenant_slug).id if tenant_slug is not None else None
        session.rollback()
        try:
            report = retention.purge(session, tenant_id, actor="cli:socle-ged-purge")
        except KeyboardInterrupt:
            # Each document goes in its own transaction: the one under way is rolled back, the others are gone
            # for good and written in the journal.
            click.echo(
                "Purge interrompue : les documents déjà purgés le restent (inscrits au journal), le document en "
                "cours est gardé ; relancez « socle ged purge » pour continuer.",
                err=True,
            )
            sys.exit(130)
    for document_id, reason in report.kept.items():
        click.echo(f"gardé {document_id} : {reason}")
    click.echo(
        f"{len(report.purged)} document(s) supprimé(s), {len(report.kept)} gardé(s), "
        f"{len(report.removed_objects)} objet(s) retiré(s) du stockage."
    )


# ---------------------------------------------------------------------------------------------------------
# Search index (ged.indexing)


@group.command("reindex", help="Reconstruire l'index de recherche, par lots ; reprend là où un arrêt l'a laissé.")
@click.option("--tenant", "tenant_slug", help="Seulement cette collectivité (identifiant court)")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000), help="Documents par lot")
@click.option("--restart", is_flag=True, help="Repartir du début même si une reconstruction est inachevée")
def reindex(tenant_slug: str | None, batch_size: int, restart: bool) -> None:
    import signal
    import sys

    from ged.indexing import reindex as run_reindex
    from ged.models import ReindexRun
    from socle.auth import get_tenant
    from socle.db import new_session

    tenant_id = None
    if tenant_slug is not None:
        with new_session() as session:
            tenant_id = get_tenant(session, tenant_slug).id

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM (systemd, docker stop) ends like Ctrl-C: the batch under way is undone

    signal.signal(signal.SIGTERM, stop)

    def report(run: ReindexRun) -> None:
        click.echo(f"{run.done_count} documents indexés", err=True)

    try:
        run = run_reindex(new_session, tenant_id=tenant_id, batch_size=batch_size, restart=restart, progress=report)
    except KeyboardInterrupt:
        click.echo("Interrompu : relancez « socle ged reindex » pour reprendre là où l'index s'est arrêté.", err=True)
        sys.exit(130)
    click.echo(f"Index reconstruit : {run.done_count} documents.")


# ---------------------------------------------------------------------------------------------------------
# Ingestion (ged.ingest): drop folder, bulk import, resumable uploads


def _ingest_metadata(
    session: Any, tenant_id: str, type_code: str, folder_id: str | None, tags: tuple[str, ...]
) -> dict[str, Any]:
    from ged import types

    metadata: dict[str, Any] = {"document_type": type_code, "tags": list(tags)}
    if types.find_by_code(session, tenant_id, type_code) is not None:
        metadata["type"] = type_code
    if folder_id:
        metadata["folder_id"] = folder_id
    return metadata


def _stop_on_sigterm() -> None:
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # systemd or docker stop: end between two files, like Ctrl-C

    signal.signal(signal.SIGTERM, stop)


@group.command("watch", help="Surveiller un dossier de dépôt : chaque fichier complet devient un document.")
@click.option("--tenant", "tenant_slug", required=True, help="Collectivité (identifiant court)")
@click.option("--user", "username", required=True, help="Utilisateur au nom duquel les documents sont déposés")
@click.option("--type", "type_code", default="document", show_default=True, help="Type de document (code) ou libellé")
@click.option("--folder", "folder_id", help="Dossier du plan de classement où classer les documents")
@click.option("--tag", "tags", multiple=True, help="Mot-clé à poser sur chaque document (répétable)")
@click.option("--once", is_flag=True, help="Un seul passage, puis s'arrêter")
@click.option(
    "--interval", default=5.0, show_default=True, type=click.FloatRange(0.1, 3600), help="Secondes entre deux passages"
)
@click.option(
    "--settle",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0, 600),
    help="Secondes sans changement d'un fichier avant son import",
)
@click.argument("directory", metavar="DOSSIER", type=click.Path(file_okay=False, path_type=Path))
def watch(
    tenant_slug: str,
    username: str,
    type_code: str,
    folder_id: str | None,
    tags: tuple[str, ...],
    once: bool,
    interval: float,
    settle: float,
    directory: Path,
) -> None:
    """Each imported file goes to DIRECTORY/traites/, each refused one to DIRECTORY/erreurs/, with a .txt reason."""
    from ged import ingest
    from socle.db import new_session

    def report(result: ingest.DropResult) -> None:
        for name, document_id in result.imported:
            click.echo(f"importé : {name} → document {document_id}")
        for name in result.skipped:
            click.echo(f"déjà importé : {name}")
        for name, reason in result.failed:
            click.echo(f"refusé : {name} : {reason}", err=True)

    _stop_on_sigterm()
    with new_session() as session:
        principal = ingest.principal_for(session, tenant_slug, username)
        metadata = _ingest_metadata(session, principal.tenant_id, type_code, folder_id, tags)
        session.rollback()
        try:
            total = ingest.watch(
                session, principal, directory, metadata, once=once, interval=interval, settle=settle, report=report
            )
        except KeyboardInterrupt:
            click.echo("Surveillance arrêtée.", err=True)
            return
    click.echo(
        f"{len(total.imported)} importé(s), {len(total.skipped)} déjà importé(s), {len(total.failed)} refusé(s)."
    )
    if total.failed:
        sys.exit(1)


_SHOWN_PROBLEMS = 200  # a CSV gone wrong may have a problem on each of its million lines


@group.command("import", help="Importer une arborescence : ses dossiers deviennent ceux du plan de classement.")
@click.option("--tenant", "tenant_slug", required=True, help="Collectivité (identifiant court)")
@click.option("--user", "username", required=True, help="Utilisateur au nom duquel les documents sont déposés")
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Métadonnées : colonnes path, title, type, date, tags et les champs typés",
)
@click.option(
    "--type", "type_code", default="document", show_default=True, help="Type des fichiers sans type dans le CSV"
)
@click.option("--folder", "folder_id", help="Dossier du plan sous lequel importer (sinon à la racine)")
@click.argument("directory", metavar="DOSSIER", type=click.Path(file_okay=False, path_type=Path))
def import_tree(
    tenant_slug: str, username: str, csv_path: Path | None, type_code: str, folder_id: str | None, directory: Path
) -> None:
    """Everything is checked first; a rerun skips the files already imported."""
    from ged import ingest
    from socle.db import new_session

    _stop_on_sigterm()
    with new_session() as session:
        principal = ingest.principal_for(session, tenant_slug, username)
        session.rollback()
        try:
            report = ingest.import_tree(
                session, principal, directory, csv_path, default_type=type_code, parent_folder_id=folder_id
            )
        except ingest.ImportRefused as refused:
            for problem in refused.problems[:_SHOWN_PROBLEMS]:
                click.echo(f"  {problem}", err=True)
            if len(refused.problems) > _SHOWN_PROBLEMS:
                click.echo(f"  … et {len(refused.problems) - _SHOWN_PROBLEMS} autre(s) problème(s)", err=True)
            raise
        except KeyboardInterrupt:
            click.echo("Interrompu : relancez la même commande, les fichiers déjà importés seront sautés.", err=True)
            sys.exit(130)
    for relative, reason in report.failed:
        click.echo(f"refusé : {relative} : {reason}", err=True)
    click.echo(
        f"{len(report.imported)} fichier(s) importé(s), {len(report.skipped)} déjà importé(s), "
        f"{len(report.failed)} refusé(s) ; {report.folders_created} dossier(s) créé(s) (import {report.run_id})."
    )
    if report.failed:
        sys.exit(1)


@group.command("purge-uploads", help="Nettoyer les envois reprenables expirés (fichiers de réception compris).")
def purge_uploads() -> None:
    from ged import ingest
    from socle.db import transaction

    with transaction() as session:
        count = ingest.purge_expired_uploads(session)
    click.echo(f"{count} envoi(s) expiré(s) nettoyé(s).")


# ---------------------------------------------------------------------------------------------------------
# Renditions (ged.renditions)


@group.command(
    "redo-text",
    help="Extraire à nouveau le texte des versions restées sans texte faute d'OCR (après l'installation "
    "d'OCRmyPDF), ou en échec avec --failed.",
)
@click.option("--tenant", "tenant_slug", help="Seulement cette collectivité (identifiant court) ; sinon toutes")
@click.option("--failed", is_flag=True, help="Reprendre aussi les versions dont l'extraction a échoué")
def redo_text(tenant_slug: str | None, failed: bool) -> None:
    from ged import renditions
    from socle.auth import get_tenant
    from socle.db import transaction

    if not renditions.ocr_available():
        click.echo("Attention : OCRmyPDF n'est pas installé ici ; les workers doivent l'avoir.", err=True)
    statuses = (renditions.OCR_UNAVAILABLE, renditions.FAILED) if failed else (renditions.OCR_UNAVAILABLE,)
    with transaction() as session:
        tenant_id = get_tenant(session, tenant_slug).id if tenant_slug is not None else None
        count = renditions.redo_text(session, tenant_id, statuses, actor="cli:socle-ged-redo-text")
    click.echo(f"{count} version(s) remise(s) en extraction de texte.")


@group.command(
    "redo-renditions",
    help="Refaire l'aperçu et la copie PDF/A des versions où ils ont échoué (après la réparation d'un fichier "
    "ou l'installation d'un outil), ou qui n'en ont pas avec --absents.",
)
@click.option("--tenant", "tenant_slug", help="Seulement cette collectivité (identifiant court) ; sinon toutes")
@click.option("--absents", "missing", is_flag=True, help="Reprendre aussi les rendus absents sans travail en cours")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000), help="Versions par lot")
def redo_renditions(tenant_slug: str | None, missing: bool, batch_size: int) -> None:
    from ged import renditions
    from socle.auth import get_tenant
    from socle.db import transaction

    with transaction() as session:
        tenant_id = get_tenant(session, tenant_slug).id if tenant_slug is not None else None
        count = renditions.redo_renditions(
            session, tenant_id, missing=missing, actor="cli:socle-ged-redo-renditions", batch_size=batch_size
        )
    click.echo(f"{count} rendu(s) (aperçu, PDF/A) redemandé(s).")
