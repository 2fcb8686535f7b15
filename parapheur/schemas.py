"""What the parapheur API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from parapheur.pades import SignatureReport
from socle.schemas import ReadModel


class StepIn(BaseModel):
    kind: Literal["visa", "signature"]
    actor: str = Field(min_length=1, max_length=100, description="Identifiant de l'utilisateur qui agit")


class FolderIn(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    ged_document_id: str = Field(max_length=36, description="Document de la GED à faire viser et signer")
    circuit: list[StepIn] = Field(min_length=1, max_length=50)


class ActionIn(BaseModel):
    comment: str | None = Field(None, max_length=2000)


class RejectIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="Motif du rejet (obligatoire)")


class StepOut(ReadModel):
    position: int
    kind: str
    actor: str
    status: str
    acted_by: str | None
    acted_at: datetime | None
    comment: str | None


class FolderOut(ReadModel):
    id: str
    title: str
    status: str
    source: str
    ged_document_id: str | None
    document_filename: str | None
    document_sha256: str | None = Field(
        validation_alias="current_sha256", description="Empreinte du PDF dans son état actuel (signé ou non)"
    )
    current_step: int | None = Field(validation_alias="active_step", description="Étape attendue, s'il y en a une")
    rejection_reason: str | None
    error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    steps: list[StepOut]


class SignatureReportOut(ReadModel):
    """One signature of a validated PDF."""

    field_name: str = Field(description="Champ de signature du PDF")
    signer: str = Field(validation_alias="signer_name", description="Nom du signataire (certificat)")
    signing_time: datetime | None = Field(description="Heure de signature déclarée par le signataire")
    intact: bool = Field(description="Le contenu signé n'a pas été modifié")
    chain_trusted: bool = Field(description="Le certificat remonte à une autorité de la liste de confiance")
    revocation: Literal["good", "revoked", "unknown"] = Field(description="Statut de révocation du certificat")
    revocation_date: datetime | None
    timestamp_time: datetime | None = Field(description="Heure de l'horodatage de la signature, s'il y en a un")
    level: Literal["B-B", "B-T", "B-LT", "B-LTA"] | None = Field(description="Niveau PAdES atteint")
    covers_whole_document: bool = Field(description="Seules des modifications autorisées ont suivi la signature")
    valid: bool
    summary: str = Field(description="Résumé en français")


class ValidationOut(BaseModel):
    """Validation report of a PDF: valid when it has signatures and every one of them is valid."""

    filename: str | None
    valid: bool
    signature_count: int
    signatures: list[SignatureReportOut]

    @classmethod
    def of(cls, filename: str | None, reports: list[SignatureReport]) -> ValidationOut:
        return cls(
            filename=filename,
            valid=bool(reports) and all(report.valid for report in reports),
            signature_count=len(reports),
            signatures=[SignatureReportOut.of(report) for report in reports],
        )
