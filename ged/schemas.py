"""What the GED API accepts and returns."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field, field_validator

from socle.schemas import ReadModel


class Metadata(BaseModel):
    title: str = Field(min_length=1, max_length=500, description="Titre du document")
    document_type: str = Field(min_length=1, max_length=100, description="Type de document (délibération…)")
    date: dt.date | None = Field(None, description="Date du document (AAAA-MM-JJ)")
    tags: list[str] = Field(default_factory=list, max_length=50, description="Mots-clés")

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        return _clean_tags(tags)


def _clean_tags(tags: list[str]) -> list[str]:
    cleaned: list[str] = []
    for tag in tags:
        tag = tag.strip()
        if not tag or len(tag) > 100:
            raise ValueError("un mot-clé compte de 1 à 100 caractères")
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned


class MetadataPatch(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=500)
    document_type: str | None = Field(None, min_length=1, max_length=100)
    date: dt.date | None = None
    tags: list[str] | None = Field(None, max_length=50)
    comment: str | None = Field(None, max_length=2000, description="Motif de la modification")

    # Checked here, like at upload: an explicit null or a bad tag is a 422, not an error inside the use case.
    @field_validator("title", "document_type")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("ce champ ne peut pas être effacé")
        return value

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str] | None) -> list[str]:
        if tags is None:
            raise ValueError("ce champ ne peut pas être effacé (liste vide : [])")
        return _clean_tags(tags)


class Content(ReadModel):
    object_key: str
    sha256: str
    size: int
    media_type: str
    filename: str


class VersionOut(ReadModel):
    number: int
    title: str
    document_type: str
    date: dt.date | None = Field(validation_alias="document_date")
    tags: list[str]
    author: str
    created_at: dt.datetime
    origin: str | None
    comment: str | None
    content: Content


class DocumentOut(ReadModel):
    id: str
    current_version: int
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    current: VersionOut


class DocumentList(BaseModel):
    items: list[DocumentOut]
    total: int


class DeliveryIn(BaseModel):
    connector: str = Field(min_length=1, max_length=100, description="Connecteur d'interopérabilité (dépôt…)")


class DeliveryAccepted(BaseModel):
    document_id: str
    version: int
    connector: str
    status: str = Field("accepted", description="Suivi de l'envoi et accusé : /interop/deliveries")
