"""Parapheur jobs: the GED's answers about a folder's document (see socle.messages)."""

from __future__ import annotations

from parapheur import service
from socle.db import transaction


def attach_document(
    *,
    tenant_id: str,
    folder_id: str,
    document_id: str,
    version: int,
    object_key: str,
    size: int,
    filename: str,
    media_type: str,
) -> None:
    with transaction() as session:
        service.attach_document(
            session, tenant_id, folder_id, key=object_key, size=size, filename=filename, version=version
        )


def document_unavailable(*, tenant_id: str, folder_id: str, reason: str) -> None:
    with transaction() as session:
        service.mark_unavailable(session, tenant_id, folder_id, reason)
