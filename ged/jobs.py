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
    key = f"archive.build:{transfer_id}"
    with transaction() as session:
        try:
            documents = [_export(service.get_document(session, tenant_id, doc_id)) for doc_id in document_ids]
        except NotFound as exc:
            enqueue(
                session,
                messages.ARCHIVE_EXPORT_FAILED,
                key=key,
                tenant_id=tenant_id,
                transfer_id=transfer_id,
                reason=exc.detail,
            )
            return
        enqueue(
            session,
            messages.ARCHIVE_BUILD_PACKAGE,
            key=key,
            tenant_id=tenant_id,
            transfer_id=transfer_id,
            documents=documents,
        )


def _export(document: Any) -> dict[str, Any]:
    version = document.current
    return {
        "document_id": document.id,
        "version": version.number,
        "title": version.title,
        "document_type": version.document_type,
        "date": version.document_date.isoformat() if version.document_date else None,
        "tags": list(version.tags),
        "object_key": version.object_key,
        "size": version.size,
        "filename": version.filename,
        "media_type": version.media_type,
        "created_at": document.created_at.isoformat(),
        "modified_at": version.created_at.isoformat(),
        "author": version.author,
    }
