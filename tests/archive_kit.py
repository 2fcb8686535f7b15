"""Archive objects the tests need without building a package first."""

from __future__ import annotations

from archive.models import Transfer
from socle.db import transaction

from conftest import Kit


def sending_transfer(kit: Kit, name: str = "essai") -> str:
    """A transfer waiting for its delivery (the archive service is the one the connector answers to)."""
    with transaction() as session:
        transfer = Transfer(
            tenant_id=kit.tenant_id,
            status="sending",
            message_identifier=f"{kit.slug}-{name}",
            document_ids=[],
            archival_agency="AD037",
            transferring_agency="213700000",
            created_by="archiviste",
        )
        session.add(transfer)
        session.flush()
        return transfer.id
