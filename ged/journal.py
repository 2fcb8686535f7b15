"""A document's lines of its tenant's audit log: every module that acts on a document writes them here, and the
document's page reads them back by object (socle.audit.entries_about)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from socle import audit


def record_document(
    session: Session, tenant_id: str, actor: str, action: str, document_id: str, **details: Any
) -> None:
    """Append ``action`` on the document to the log, in the caller's transaction."""
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        object_type="document",
        object_id=document_id,
        details=details,
    )
