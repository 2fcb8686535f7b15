"""What the archive API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from archive.inspection import InspectedObject, InspectedUnit, InspectionReport
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


class InspectedUnitOut(BaseModel):
    unit_id: str
    title: str | None
    level: str | None
    object_ids: list[str]
    children: list[InspectedUnitOut]

    @classmethod
    def of(cls, unit: InspectedUnit) -> InspectedUnitOut:
        return cls(
            unit_id=unit.unit_id,
            title=unit.title,
            level=unit.level,
            object_ids=list(unit.object_ids),
            children=[cls.of(child) for child in unit.children],
        )


class InspectedObjectOut(BaseModel):
    object_id: str
    group_id: str | None
    usage: str | None
    uri: str | None
    entry: str | None
    filename: str | None
    algorithm: str | None
    declared_digest: str | None
    computed_digest: str | None
    declared_size: int | None
    computed_size: int | None
    ok: bool
    problems: list[str]

    @classmethod
    def of(cls, obj: InspectedObject) -> InspectedObjectOut:
        return cls(**{**obj.__dict__, "problems": list(obj.problems)}, ok=obj.ok)


class InspectionOut(BaseModel):
    filename: str
    version: str | None = Field(description="Version SEDA lue dans l'espace de noms du manifeste")
    message_identifier: str | None
    ok: bool = Field(description="Vrai quand aucun écart n'a été trouvé")
    problems: list[str] = Field(description="Tous les écarts, paquet et objets confondus")
    units: list[InspectedUnitOut]
    objects: list[InspectedObjectOut]

    @classmethod
    def of(cls, report: InspectionReport) -> InspectionOut:
        return cls(
            filename=report.filename,
            version=report.version,
            message_identifier=report.message_identifier,
            ok=report.ok,
            problems=list(report.all_problems),
            units=[InspectedUnitOut.of(unit) for unit in report.units],
            objects=[InspectedObjectOut.of(obj) for obj in report.objects],
        )
