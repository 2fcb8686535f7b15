"""What the archive API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from socle.schemas import ReadModel


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


class TransferOut(ReadModel):
    id: str
    status: str
    seda_version: str
    message_identifier: str
    document_ids: list[str]
    comment: str | None
    archival_agency: str
    transferring_agency: str
    sip_sha256: str | None = Field(validation_alias="sip_key")
    sip_size: int | None
    validation: dict[str, Any] | None
    connector: str | None
    receipt: dict[str, Any] | None
    error: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class InspectedUnitOut(ReadModel):
    unit_id: str
    title: str | None
    level: str | None
    object_ids: list[str]
    children: list[InspectedUnitOut]


class InspectedObjectOut(ReadModel):
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


class InspectionOut(ReadModel):
    filename: str
    version: str | None = Field(description="Version SEDA lue dans l'espace de noms du manifeste")
    message_identifier: str | None
    ok: bool = Field(description="Vrai quand aucun écart n'a été trouvé")
    problems: list[str] = Field(
        validation_alias="all_problems", description="Tous les écarts, paquet et objets confondus"
    )
    units: list[InspectedUnitOut]
    objects: list[InspectedObjectOut]
