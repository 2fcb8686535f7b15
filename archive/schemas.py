"""What the archive API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from archive.models import Transfer


class TransferIn(BaseModel):
    document_ids: list[str] = Field(min_length=1, max_length=1000, description="Documents de la GED à verser")
    archival_agency: str = Field(
        min_length=1, max_length=100, description="Identifiant du service d'archives destinataire"
    )
    comment: str | None = Field(None, max_length=2000, description="Intitulé du versement")


class SendIn(BaseModel):
    connector: str = Field(min_length=1, max_length=100, description="Connecteur d'interopérabilité à utiliser")
    accept_unvalidated: bool = Field(
        False, description="Envoyer un paquet que les schémas absents n'ont pas permis de valider"
    )


class TransferOut(BaseModel):
    id: str
    status: str
    seda_version: str
    message_identifier: str
    document_ids: list[str]
    comment: str | None
    archival_agency: str
    transferring_agency: str
    sip_sha256: str | None
    sip_size: int | None
    validation: dict[str, Any] | None
    connector: str | None
    receipt: dict[str, Any] | None
    error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, transfer: Transfer) -> TransferOut:
        return cls(
            id=transfer.id,
            status=transfer.status,
            seda_version=transfer.seda_version,
            message_identifier=transfer.message_identifier,
            document_ids=transfer.document_ids,
            comment=transfer.comment,
            archival_agency=transfer.archival_agency,
            transferring_agency=transfer.transferring_agency,
            sip_sha256=transfer.sip_key,
            sip_size=transfer.sip_size,
            validation=transfer.validation,
            connector=transfer.connector,
            receipt=transfer.receipt,
            error=transfer.error,
            created_by=transfer.created_by,
            created_at=transfer.created_at,
            updated_at=transfer.updated_at,
        )
