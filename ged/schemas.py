"""What the GED API accepts and returns."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from socle.schemas import ReadModel
from socle.text import BlankableLine, Line, Lines, Note, text_fault


class Metadata(BaseModel):
    """A document's metadata at upload. ``type`` names one of the tenant's document types (its code): its typed
    fields are then checked (``field_values``) and its DUA computed; ``document_type`` is the free label, the
    type's code when left out."""

    title: Line = Field(min_length=1, max_length=500, description="Titre du document")
    document_type: Line | None = Field(
        None, min_length=1, max_length=100, description="Libellé du type (délibération…) ; par défaut le code du type"
    )
    type: Line | None = Field(None, min_length=1, max_length=100, description="Code du type de document")
    date: dt.date | None = Field(None, description="Date du document (AAAA-MM-JJ)")
    tags: list[str] = Field(default_factory=list, max_length=50, description="Mots-clés")
    folder_id: Line | None = Field(None, max_length=36, description="Dossier du plan de classement")
    field_values: dict[str, Any] = Field(
        default_factory=dict, max_length=200, description="Valeurs des champs du type, par nom"
    )

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str]) -> list[str]:
        return _clean_tags(tags)

    @field_validator("field_values")
    @classmethod
    def _no_nul(cls, values: dict[str, Any]) -> dict[str, Any]:
        return _without_nul(values)

    @model_validator(mode="after")
    def _labelled(self) -> Metadata:
        if self.document_type is None:
            if self.type is None:
                raise ValueError("document_type ou type est obligatoire")
            self.document_type = self.type
        return self

    @property
    def label(self) -> str:
        return self.document_type or self.type or ""


def _without_nul(values: dict[str, Any]) -> dict[str, Any]:
    """A NUL in any field's name or value (a reference, a choice…) refused before it reaches a query: PostgreSQL
    refuses it (the text fields check the other controls)."""
    for name, value in values.items():
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            raise ValueError(f"champ {name!r} : caractère de contrôle interdit (U+0000)")
    return values


def _clean_tags(tags: list[str]) -> list[str]:
    cleaned: list[str] = []
    for tag in tags:
        tag = tag.strip()
        if not tag or len(tag) > 100:
            raise ValueError("un mot-clé compte de 1 à 100 caractères")
        fault = text_fault(tag)
        if fault is not None:
            raise ValueError(f"mot-clé : {fault}")
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned


class MetadataPatch(BaseModel):
    """A change of metadata: only the fields given change. ``field_values`` is merged into the current values
    (a null value clears that field); ``type`` null makes the document untyped; ``folder_id`` null unfiles it.
    A change of ``folder_id`` alone files the document without a new version."""

    title: Line | None = Field(None, min_length=1, max_length=500)
    document_type: Line | None = Field(None, min_length=1, max_length=100)
    type: Line | None = Field(None, min_length=1, max_length=100, description="Code du type de document")
    date: dt.date | None = None
    tags: list[str] | None = Field(None, max_length=50)
    folder_id: Line | None = Field(None, max_length=36, description="Dossier du plan de classement")
    field_values: dict[str, Any] | None = Field(None, max_length=200, description="Champs typés à modifier")
    comment: Note | None = Field(None, max_length=2000, description="Motif de la modification")

    # Checked here, like at upload: an explicit null or a bad tag is a 422, not an error inside the use case.
    @field_validator("title", "document_type", "field_values")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("ce champ ne peut pas être effacé")
        return value

    @field_validator("tags")
    @classmethod
    def _clean_tags(cls, tags: list[str] | None) -> list[str]:
        if tags is None:
            raise ValueError("ce champ ne peut pas être effacé (liste vide : [])")
        return _clean_tags(tags)

    @field_validator("field_values")
    @classmethod
    def _no_nul(cls, values: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if values is None else _without_nul(values)


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
    signatories: list[str] | None = Field(
        None, description="Signataires dans le parapheur (identifiants), pour une version signée"
    )
    field_values: dict[str, Any]
    content: Content


class DocumentOut(ReadModel):
    id: str
    current_version: int
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    folder_id: str | None
    type_id: str | None
    deleted_at: dt.datetime | None
    deleted_by: str | None
    dua_ends_on: dt.date | None = Field(description="Fin de la durée d'utilité administrative")
    disposal: str | None = Field(description="Sort final : transferred, archived, eliminated")
    disposal_at: dt.datetime | None
    archive_transfer_id: str | None
    sae_identifier: str | None
    current: VersionOut


class DocumentList(BaseModel):
    items: list[DocumentOut]
    total: int


class DeliveryIn(BaseModel):
    connector: Line = Field(min_length=1, max_length=100, description="Connecteur d'interopérabilité (dépôt…)")


class DeliveryAccepted(BaseModel):
    document_id: str
    version: int
    connector: str
    status: str = Field("accepted", description="Suivi de l'envoi et accusé : /interop/deliveries")


# ---------------------------------------------------------------------------------------------------------
# Document types, classification plan, rights, holds, retention, eliminations (GA)

FieldKind = Literal["text", "integer", "decimal", "date", "boolean", "choice", "reference"]
Right = Literal["read", "write", "delete", "manage"]
FinalAction = Literal["keep", "destroy", "sort"]
_NAME = r"^[a-z][a-z0-9_]{0,62}$"
_CODE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"


class FieldDef(BaseModel):
    name: str = Field(pattern=_NAME, description="Nom technique : minuscules, chiffres et _")
    label: Line = Field(min_length=1, max_length=200, description="Libellé affiché")
    kind: FieldKind = Field(description="text, integer, decimal, date, boolean, choice ou reference")
    required: bool = False
    choices: list[Line] = Field(default_factory=list, max_length=500, description="Valeurs permises (choice)")
    retired: bool = Field(False, description="Champ retiré : ses valeurs restent lisibles, plus saisissables")

    @model_validator(mode="after")
    def _choices(self) -> FieldDef:
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"le champ « {self.name} » de type choice demande une liste de valeurs (choices)")
        if self.kind != "choice" and self.choices:
            raise ValueError(f"le champ « {self.name} » n'est pas une liste de choix : choices est en trop")
        if any(not choice.strip() or len(choice) > 200 for choice in self.choices):
            raise ValueError(f"le champ « {self.name} » a une valeur de choix vide ou trop longue")
        return self


class DocumentTypeIn(BaseModel):
    code: str = Field(pattern=_CODE, description="Code unique dans la collectivité (deliberation…)")
    name: Line = Field(min_length=1, max_length=200)
    fields: list[FieldDef] = Field(default_factory=list, max_length=100)
    dua_months: int | None = Field(None, ge=0, le=12000, description="Durée d'utilité administrative, en mois")
    dua_event: Line = Field(
        "creation",
        min_length=1,
        max_length=100,
        description="Point de départ : creation, document_date ou un champ date",
    )
    final_action: FinalAction = Field("keep", description="Sort final : keep (conserver), destroy, sort (trier)")


class DocumentTypePatch(BaseModel):
    """A schema change: ``fields`` is the new list; a field left out is retired, never deleted."""

    name: Line | None = Field(None, min_length=1, max_length=200)
    fields: list[FieldDef] | None = Field(None, max_length=100)
    dua_months: int | None = Field(None, ge=0, le=12000)
    dua_event: Line | None = Field(None, min_length=1, max_length=100)
    final_action: FinalAction | None = None


class DocumentTypeOut(ReadModel):
    id: str
    code: str
    name: str
    fields: list[dict[str, Any]]
    schema_version: int
    dua_months: int | None
    dua_event: str
    final_action: str
    created_at: dt.datetime
    updated_at: dt.datetime


class FolderIn(BaseModel):
    name: Line = Field(min_length=1, max_length=200)
    code: Line | None = Field(None, min_length=1, max_length=50, description="Cote du plan de classement")
    parent_id: Line | None = Field(None, max_length=36, description="Dossier parent ; absent : à la racine")


class FolderPatch(BaseModel):
    """Rename (``name``, ``code``) or move (``parent_id``, null: to the root)."""

    name: Line | None = Field(None, min_length=1, max_length=200)
    code: BlankableLine | None = Field(None, max_length=50)
    parent_id: Line | None = Field(None, max_length=36)


class FolderOut(ReadModel):
    id: str
    parent_id: str | None
    name: str
    code: str | None
    path: str
    created_by: str
    created_at: dt.datetime


class FolderContents(BaseModel):
    folder: FolderOut | None
    children: list[FolderOut]
    documents: DocumentList


class FilingIn(BaseModel):
    folder_id: Line | None = Field(max_length=36, description="Dossier ; null : hors du plan de classement")


class GroupIn(BaseModel):
    name: Line = Field(min_length=1, max_length=200)


class MemberIn(BaseModel):
    username: Line = Field(min_length=1, max_length=100)


class GroupOut(BaseModel):
    id: str
    name: str
    members: list[str]


class PermissionIn(BaseModel):
    group_id: Line = Field(max_length=36)
    rights: list[Right] = Field(max_length=4, description="read, write, delete, manage")


class PermissionOut(ReadModel):
    group_id: str
    target_kind: str
    target_id: str
    rights: list[str]


class HoldIn(BaseModel):
    name: Line = Field(min_length=1, max_length=200)
    reason: Lines = Field(min_length=1, max_length=5000)


class HoldReleaseIn(BaseModel):
    reason: Lines = Field(min_length=1, max_length=5000, description="Pourquoi le gel est levé (jugement, accord…)")


class HoldDocumentsIn(BaseModel):
    document_ids: list[Line] = Field(min_length=1, max_length=1000)


class HoldOut(BaseModel):
    id: str
    name: str
    reason: str
    created_by: str
    created_at: dt.datetime
    released_by: str | None
    released_at: dt.datetime | None
    release_reason: str | None
    document_ids: list[str]


class RetentionItem(BaseModel):
    document: DocumentOut
    type_code: str | None
    final_action: str | None
    held_by: list[str] = Field(description="Gels actifs sur le document")


class RetentionList(BaseModel):
    state: str
    items: list[RetentionItem]
    total: int


class EliminationIn(BaseModel):
    document_ids: list[Line] = Field(min_length=1, max_length=1000)
    comment: Note | None = Field(None, max_length=5000)


class DecisionIn(BaseModel):
    comment: Note | None = Field(None, max_length=5000)


class EliminationOut(ReadModel):
    id: str
    status: str
    document_ids: list[str]
    comment: str | None
    proposed_by: str
    proposed_at: dt.datetime
    decided_by: str | None
    decided_at: dt.datetime | None
    done_at: dt.datetime | None


class PurgeOut(BaseModel):
    purged: list[str]
    kept: dict[str, str] = Field(description="Documents gardés dans la corbeille et pourquoi")
