"""GED jobs: the messages other services send to the GED (see socle.messages and docs/jobs.md)."""

from __future__ import annotations

from typing import Any

from ged import service
from socle import messages
from socle.db import transaction
from socle.errors import NotFound
from socle.queue import enqueue


def send_to_parapheur(*, tenant_id: str, document_id: str, folder_id: str) -> None:
    # One reply per folder, whichever it is: the key makes a second run send nothing more.
    key = f"parapheur.attach:{folder_id}"
    with transaction() as session:
        try:
            version = service.get_document(session, tenant_id, document_id).current
        except NotFound as exc:
            enqueue(
                session,
                messages.PARAPHEUR_DOCUMENT_UNAVAILABLE,
                key=key,
                tenant_id=tenant_id,
                folder_id=folder_id,
                reason=exc.detail,
            )
            return
        enqueue(
            session,
            messages.PARAPHEUR_ATTACH_DOCUMENT,
            key=key,
            tenant_id=tenant_id,
            folder_id=folder_id,
            document_id=document_id,
            version=version.number,
            object_key=version.object_key,
            size=version.size,
            filename=version.filename,
            media_type=version.media_type,
        )


def store_signed_version(
    *,
    tenant_id: str,
    document_id: str,
    folder_id: str,
    object_key: str,
    size: int,
    filename: str,
    signatories: list[str],
) -> None:
    with transaction() as session:
        service.record_signed_version(
            session, tenant_id, document_id, folder_id, object_key, size, filename, signatories
        )


def export_for_archive(*, tenant_id: str, transfer_id: str, document_ids: list[str]) -> None:
    """The archive service asks for given documents: answer with their export, or why it cannot be."""
    with transaction() as session:
        try:
            documents = [_export(session, service.get_document(session, tenant_id, doc_id)) for doc_id in document_ids]
        except NotFound as exc:
            _export_failed(session, tenant_id, transfer_id, exc.detail)
            return
        _export_done(session, tenant_id, transfer_id, documents)


def select_for_archive(*, tenant_id: str, transfer_id: str, folder_id: str | None, dua_reached: bool) -> None:
    """The archive service asks for a folder of the plan (with its subtree) or for the documents whose DUA
    ended with final action keep or sort: the GED chooses them (see ``_selectable``) and exports them."""
    with transaction() as session:
        try:
            if folder_id is not None:
                folder = _folder(session, tenant_id, folder_id)
                chosen = _select_folder(session, folder)
                empty = f"le dossier « {folder.name} » ne contient aucun document à verser"
            else:
                chosen = _select_dua_reached(session, tenant_id) if dua_reached else []
                empty = "aucun document n'a atteint la fin de sa DUA avec un sort final « conserver » ou « trier »"
            if not chosen:
                raise NotFound(
                    f"{empty} (ni dans la corbeille, ni gelé, ni déjà versé, archivé ou éliminé) : versement vide"
                )
            documents = [_export(session, document) for document in chosen]
        except NotFound as exc:
            _export_failed(session, tenant_id, transfer_id, exc.detail)
            return
        _export_done(session, tenant_id, transfer_id, documents)


# Selected at most per transfer: the same bound as a transfer by document ids.
MAX_SELECTED = 1000


def _folder(session: Any, tenant_id: str, folder_id: str) -> Any:
    from ged.models import Folder

    folder = session.get(Folder, folder_id)
    if folder is None or folder.tenant_id != tenant_id:  # another tenant's folder is as unknown as a missing one
        raise NotFound(f"dossier du plan de classement {folder_id} introuvable")
    return folder


def _selectable(tenant_id: str) -> Any:
    """Live documents only: not in the trash, not under an active legal hold (frozen for the litigation: its
    documents stay in the GED), and not already transferred, archived or eliminated (``disposal`` set)."""
    from sqlalchemy import exists, select

    from ged.models import Document, HeldDocument, Hold

    held = exists().where(
        HeldDocument.document_id == Document.id, HeldDocument.hold_id == Hold.id, Hold.released_at.is_(None)
    )
    return select(Document).where(
        Document.tenant_id == tenant_id, Document.deleted_at.is_(None), Document.disposal.is_(None), ~held
    )


def _select_folder(session: Any, folder: Any) -> list[Any]:
    from sqlalchemy.orm import selectinload

    from ged.models import Document, Folder

    subtree = _folders(folder.tenant_id).where((Folder.id == folder.id) | Folder.path.startswith(f"{folder.path}/"))
    query = _selectable(folder.tenant_id).where(Document.folder_id.in_(subtree.with_only_columns(Folder.id)))
    query = query.options(selectinload(Document.versions)).order_by(Document.created_at, Document.id)
    return list(session.execute(query.limit(MAX_SELECTED)).scalars())


def _folders(tenant_id: str) -> Any:
    from sqlalchemy import select

    from ged.models import Folder

    return select(Folder).where(Folder.tenant_id == tenant_id)


def _select_dua_reached(session: Any, tenant_id: str) -> list[Any]:
    from sqlalchemy.orm import selectinload

    from ged.models import Document, DocumentType
    from ged.retention import TRANSFER_ACTIONS
    from socle.db import utcnow

    query = (
        _selectable(tenant_id)
        .join(DocumentType, DocumentType.id == Document.type_id)
        .where(Document.dua_ends_on <= utcnow().date(), DocumentType.final_action.in_(TRANSFER_ACTIONS))
        .options(selectinload(Document.versions))
        .order_by(Document.dua_ends_on, Document.id)
    )
    return list(session.execute(query.limit(MAX_SELECTED)).scalars())


def _export_done(session: Any, tenant_id: str, transfer_id: str, documents: list[dict[str, Any]]) -> None:
    enqueue(
        session,
        messages.ARCHIVE_BUILD_PACKAGE,
        key=f"archive.build:{transfer_id}",
        tenant_id=tenant_id,
        transfer_id=transfer_id,
        documents=documents,
    )


def _export_failed(session: Any, tenant_id: str, transfer_id: str, reason: str) -> None:
    enqueue(
        session,
        messages.ARCHIVE_EXPORT_FAILED,
        key=f"archive.build:{transfer_id}",
        tenant_id=tenant_id,
        transfer_id=transfer_id,
        reason=reason,
    )


def mark_archived(*, tenant_id: str, transfer_id: str, documents: list[dict[str, Any]]) -> None:
    from ged import retention

    with transaction() as session:
        retention.mark_archived(session, tenant_id, transfer_id, documents)


def purge_trash(*, tenant_id: str) -> None:
    from ged import retention

    with transaction() as session:
        retention.purge(session, tenant_id)


def store_flow_document(
    *,
    tenant_id: str,
    flow_id: str,
    name: str,
    object_key: str,
    size: int,
    filename: str,
    media_type: str,
    title: str,
    document_type: str,
) -> None:
    """A document brought back by an interop flow: stored once (found again by its origin), then answered."""
    from ged.schemas import Metadata
    from socle.storage import StoredObject

    origin = f"interop:{flow_id}:{name}"
    with transaction() as session:
        found = _file_once(
            session,
            tenant_id,
            origin,
            ("interop", "Interopérabilité"),
            StoredObject(object_key, size),
            filename,
            media_type,
            Metadata(title=title[:500], document_type=document_type),
            match_title=True,
        )
        enqueue(
            session,
            messages.INTEROP_FLOW_DOCUMENT_STORED,
            key=f"interop.flow-stored:{origin}",
            tenant_id=tenant_id,
            flow_id=flow_id,
            name=name,
            document_id=found,
        )


def file_signed_document(
    *,
    tenant_id: str,
    folder_id: str,
    object_key: str,
    size: int,
    filename: str,
    media_type: str,
    title: str,
    document_type: str,
    signatories: list[str],
) -> None:
    """A signed document of a folder made by upload in the parapheur: filed once as a new document, answered."""
    from ged.schemas import Metadata
    from socle.storage import StoredObject

    with transaction() as session:
        found = _file_once(
            session,
            tenant_id,
            f"parapheur:{folder_id}",
            ("parapheur", "Parapheur"),
            StoredObject(object_key, size),
            filename,
            media_type,
            Metadata(title=title[:500], document_type=document_type[:100] or "Parapheur", tags=["parapheur"]),
            comment=("Signé par " + ", ".join(signatories))[:2000] if signatories else None,
        )
        enqueue(
            session,
            messages.PARAPHEUR_FILED_IN_GED,
            key=f"parapheur.filed:{folder_id}",
            tenant_id=tenant_id,
            folder_id=folder_id,
            document_id=found,
        )


def _file_once(
    session: Any,
    tenant_id: str,
    origin: str,
    author: tuple[str, str],
    stored: Any,
    filename: str,
    media_type: str,
    metadata: Any,
    *,
    comment: str | None = None,
    match_title: bool = False,
) -> str:
    """Create a document another service sent, once: the version's origin finds it again on a second run.

    ``author`` is the sending service's (username, display name); the document is created in its name.
    """
    from sqlalchemy import select

    from ged.models import Document, Version
    from socle.auth import Principal
    from socle.models import Tenant

    found = session.execute(
        select(Version.document_id).join(Document).where(Document.tenant_id == tenant_id, Version.origin == origin)
    ).scalar_one_or_none()
    if found is not None:
        return str(found)
    # A run killed between the creation and the origin's commit left its version unmarked: adopt it.
    orphans = (
        select(Version)
        .join(Document)
        .where(
            Document.tenant_id == tenant_id,
            Version.object_key == stored.key,
            Version.author == author[0],
            Version.origin.is_(None),
        )
    )
    if match_title:
        orphans = orphans.where(Version.title == metadata.title)
    orphan = session.execute(orphans).scalars().first()
    if orphan is not None:
        orphan.origin = origin
        return str(orphan.document_id)
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"collectivité {tenant_id} introuvable")
    sender = Principal(
        tenant.id, tenant.slug, tenant.name, f"service:{author[0]}", author[0], author[1], frozenset({"admin"})
    )
    document = service.create_document(session, sender, stored, filename, media_type, metadata)
    document.current.origin = origin
    if comment is not None:
        document.current.comment = comment
    return str(document.id)


def _export(session: Any, document: Any) -> dict[str, Any]:
    """What the archive service maps to SEDA: metadata of the current version, its type and DUA, where it is
    filed in the plan (folder names from the root), and the digests of every version."""
    from ged.models import DocumentType

    if document.disposal == "eliminated":
        raise NotFound(f"document {document.id} éliminé : son contenu n'existe plus")
    version = document.current
    document_type = session.get(DocumentType, document.type_id) if document.type_id else None
    return {
        "document_id": document.id,
        "version": version.number,
        "title": version.title,
        "document_type": version.document_type,
        "type": _type_export(document, document_type),
        "field_values": dict(version.field_values or {}),
        "folder": _folder_path(session, document.folder_id),
        "date": version.document_date.isoformat() if version.document_date else None,
        "tags": list(version.tags),
        "object_key": version.object_key,
        "size": version.size,
        "filename": version.filename,
        "media_type": version.media_type,
        "created_at": document.created_at.isoformat(),
        "modified_at": version.created_at.isoformat(),
        "author": version.author,
        "created_by": document.created_by,
        "versions": [
            {"number": v.number, "sha256": v.object_key, "size": v.size, "created_at": v.created_at.isoformat()}
            for v in document.versions
        ],
    }


def _type_export(document: Any, document_type: Any) -> dict[str, Any] | None:
    """The type's code and name, and its DUA: months, starting event and its date, end date, final action."""
    from ged import types

    if document_type is None:
        return None
    # The DUA's own starting date (the type's rule), not the end minus the months: month ends are clamped.
    start = types.dua_start(document, document_type.dua_event) if document_type.dua_months is not None else None
    return {
        "code": document_type.code,
        "name": document_type.name,
        "dua_months": document_type.dua_months,
        "dua_event": document_type.dua_event,
        "dua_start": start.isoformat() if start else None,
        "dua_ends_on": document.dua_ends_on.isoformat() if document.dua_ends_on else None,
        "final_action": document_type.final_action,
    }


def _folder_path(session: Any, folder_id: str | None) -> list[dict[str, Any]]:
    """The folders from the plan's root down to the document's own: id, name and code of each."""
    from ged.models import Folder

    if folder_id is None:
        return []
    folder = session.get(Folder, folder_id)
    if folder is None:
        return []
    ids = folder.path.split("/")
    found = {f.id: f for f in session.execute(_folders(folder.tenant_id).where(Folder.id.in_(ids))).scalars()}
    return [{"id": i, "name": found[i].name, "code": found[i].code} for i in ids if i in found]


# Renditions of a new content version (ged.renditions.schedule enqueues them).


def extract_text(*, tenant_id: str, document_id: str, version: int) -> None:
    from ged import renditions

    renditions.extract_text(tenant_id, document_id, version)


def ocr_text(*, tenant_id: str, document_id: str, version: int) -> None:
    from ged import renditions

    renditions.ocr_text_job(tenant_id, document_id, version)


def make_preview(*, tenant_id: str, document_id: str, version: int) -> None:
    from ged import renditions

    renditions.make_preview(tenant_id, document_id, version)


def make_pdfa(*, tenant_id: str, document_id: str, version: int) -> None:
    from ged import renditions

    renditions.make_pdfa(tenant_id, document_id, version)


def _preload_for_work_horses() -> None:
    # « socle worker » imports this module once, then forks a work horse per job: what is imported here is
    # inherited. The S3 client and the PostgreSQL driver are otherwise imported lazily, by every job again
    # (about 0.5 s of CPU per job, measured by bench/ged_ingest.py).
    import contextlib
    import importlib

    for name in ("ged.renditions", "minio", "psycopg", "pypdfium2", "PIL.PngImagePlugin", "PIL.PpmImagePlugin"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


_preload_for_work_horses()
