"""What the parapheur API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from parapheur.models import Folder, Step
from parapheur.pades import SignatureReport


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


class StepOut(BaseModel):
    position: int
    kind: str
    actor: str
    status: str
    acted_by: str | None
    acted_at: datetime | None
    comment: str | None

    @classmethod
    def of(cls, step: Step) -> StepOut:
        return cls(
            position=step.position,
            kind=step.kind,
            actor=step.actor,
            status=step.status,
            acted_by=step.acted_by,
            acted_at=step.acted_at,
            comment=step.comment,
        )


class FolderOut(BaseModel):
    id: str
    title: str
    status: str
    source: str
    ged_document_id: str | None
    document_filename: str | None
    document_sha256: str | None = Field(description="Empreinte du PDF dans son état actuel (signé ou non)")
    current_step: int | None
    rejection_reason: str | None
    error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    steps: list[StepOut]

    @classmethod
    def of(cls, folder: Folder) -> FolderOut:
        return cls(
            id=folder.id,
            title=folder.title,
            status=folder.status,
            source=folder.source,
            ged_document_id=folder.ged_document_id,
            document_filename=folder.document_filename,
            document_sha256=folder.signed_key or folder.document_key,
            current_step=folder.current_step if folder.status == "in_progress" else None,
            rejection_reason=folder.rejection_reason,
            error=folder.error,
            created_by=folder.created_by,
            created_at=folder.created_at,
            updated_at=folder.updated_at,
            steps=[StepOut.of(step) for step in folder.steps],
        )


class SignatureReportOut(BaseModel):
    """One signature of a validated PDF."""

    field_name: str = Field(description="Champ de signature du PDF")
    signer: str = Field(description="Nom du signataire (certificat)")
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

    @classmethod
    def of(cls, report: SignatureReport) -> SignatureReportOut:
        return cls(
            field_name=report.field_name,
            signer=report.signer_name,
            signing_time=report.signing_time,
            intact=report.intact,
            chain_trusted=report.chain_trusted,
            revocation=report.revocation,
            revocation_date=report.revocation_date,
            timestamp_time=report.timestamp_time,
            level=report.level,
            covers_whole_document=report.covers_whole_document,
            valid=report.valid,
            summary=report.summary,
        )


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
