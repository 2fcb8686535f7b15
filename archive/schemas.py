"""What the archive API accepts and returns."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from archive.statuses import STATUS_LABELS
from socle.schemas import ReadModel


class TransferIn(BaseModel):
    """A transfer asks for exactly one selection: documents by id, a folder of the plan, or the DUA's end."""

    document_ids: list[str] | None = Field(
        None, min_length=1, max_length=1000, description="Documents de la GED à verser"
    )
    folder_id: str | None = Field(
        None, min_length=1, max_length=36, description="Dossier du plan de classement à verser, sous-dossiers compris"
    )
    dua_reached: bool = Field(
        False, description="Verser les documents dont la DUA est échue, sort final « conserver » ou « trier »"
    )
    archival_agency: str = Field(
        min_length=1, max_length=100, description="Identifiant du service d'archives destinataire"
    )
    comment: str | None = Field(None, max_length=2000, description="Intitulé du versement")
    profile: str | None = Field(
        None, min_length=1, max_length=100, description="Profil d'archivage (RelaxNG) de la collectivité à respecter"
    )
    seda_version: Literal["2.1", "2.2", "2.3"] = Field("2.2", description="Version du SEDA du bordereau")

    @model_validator(mode="after")
    def _one_selection(self) -> TransferIn:
        chosen = [self.document_ids is not None, self.folder_id is not None, self.dua_reached]
        if sum(chosen) != 1:
            raise ValueError("indiquez exactement une sélection : document_ids, folder_id ou dua_reached (vrai)")
        return self


RuleCategory = Literal[
    "AppraisalRule", "AccessRule", "StorageRule", "DisseminationRule", "ReuseRule", "ClassificationRule"
]
DigestAlgorithm = Literal["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"]

# Where a mapped value comes from in the GED's export: the document's own metadata, or one of its type's
# typed fields (« field:<name> »). Checked against the document at build time: the archive does not know types.
SOURCES = ("title", "document_type", "type_name", "author", "document_date", "created_at", "modified_at", "dua_start")
SOURCE_PATTERN = rf"^({'|'.join(SOURCES)}|field:[A-Za-z0-9_.-]{{1,100}})$"
AGENCY_PATTERN = r"^(tenant|field:[A-Za-z0-9_.-]{1,100})$"
DescriptionLevel = Literal[
    "Fonds", "Subfonds", "Class", "Collection", "Series", "Subseries", "RecordGrp", "SubGrp", "File", "Item"
]


class MappingIn(BaseModel):
    """How a GED document type's metadata becomes SEDA: each value names its source (see SOURCE_PATTERN)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field("title", pattern=SOURCE_PATTERN, description="Source du titre (Title)")
    description: str | None = Field(None, pattern=SOURCE_PATTERN, description="Source de la description")
    description_level: DescriptionLevel = Field("Item", description="Niveau de description (DescriptionLevel)")
    start_date: str = Field(
        "document_date", pattern=SOURCE_PATTERN, description="Source de la date de début (StartDate)"
    )
    end_date: str = Field("document_date", pattern=SOURCE_PATTERN, description="Source de la date de fin (EndDate)")
    keywords_from_tags: bool = Field(True, description="Les mots-clés de la GED deviennent des Keyword")
    keyword_fields: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Champs typés dont la valeur devient un Keyword",
    )
    originating_agency: str = Field(
        "tenant",
        pattern=AGENCY_PATTERN,
        description="Service producteur : « tenant » (SIREN de la collectivité) ou « field:<nom> »",
    )
    submission_agency: str = Field(
        "tenant",
        pattern=AGENCY_PATTERN,
        description="Service versant : « tenant » (SIREN de la collectivité) ou « field:<nom> »",
    )
    appraisal_rule: str | None = Field(
        None,
        max_length=100,
        description="Règle de sort final (AppraisalRule) du référentiel ; vide : celle dont la durée est la DUA",
    )
    access_rule: str | None = Field(
        None, max_length=100, description="Règle de communicabilité (AccessRule) du référentiel ; vide : aucune"
    )
    access_start: str = Field(
        "document_date", pattern=SOURCE_PATTERN, description="Source de la date de départ de la communicabilité"
    )

    @field_validator("keyword_fields")
    @classmethod
    def _field_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name):
                raise ValueError(f"nom de champ invalide : « {name[:100]} »")
        return list(dict.fromkeys(names))


class MappingOut(MappingIn):
    type_code: str
    default: bool = Field(description="Vrai tant qu'aucun archiviste n'a enregistré de correspondance pour ce type")
    updated_by: str | None
    updated_at: datetime | None


class RuleIn(BaseModel):
    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Identifiant")
    category: RuleCategory = Field(description="Catégorie SEDA de la règle (AppraisalRule, AccessRule…)")
    duration: str | None = Field(
        None,
        max_length=20,
        pattern=r"^P(\d+Y(\d+M)?(\d+D)?|\d+M(\d+D)?|\d+D)$",
        description="Durée ISO 8601 (P10Y, P6M…) ; vide pour une durée illimitée",
    )
    description: str | None = Field(None, max_length=500, description="Intitulé")


class ReferentialIn(BaseModel):
    rules: list[RuleIn] = Field(max_length=5000, description="Règles de gestion connues du système d'archivage")
    digest_algorithms: list[DigestAlgorithm] = Field(
        default_factory=lambda: list[DigestAlgorithm](["SHA-512"]),
        min_length=1,
        description="Algorithmes d'empreinte acceptés (Vitam : SHA-512)",
    )


class RuleOut(ReadModel):
    id: str
    category: str
    duration: str | None
    description: str | None


class ReferentialOut(ReadModel):
    rules: list[RuleOut]
    digest_algorithms: list[str]
    updated_by: str | None
    updated_at: datetime | None


class ProfileOut(ReadModel):
    name: str
    sha256: str = Field(validation_alias="object_key")
    size: int
    uploaded_by: str
    uploaded_at: datetime


class SendIn(BaseModel):
    connector: str = Field(min_length=1, max_length=100, description="Connecteur d'interopérabilité à utiliser")
    accept_unvalidated: bool = Field(
        False, description="Envoyer un paquet que les schémas absents n'ont pas permis de valider"
    )


class SaeMessageOut(ReadModel):
    kind: str = Field(description="acknowledgement (accusé de réception) ou reply (réponse au transfert)")
    status: str = Field(description="recorded (pris en compte) ou refused (refusé, voir refusal)")
    object_sha256: str = Field(validation_alias="object_key")
    size: int
    message_identifier: str | None
    request_identifier: str | None
    reply_code: str | None
    refusal: str | None
    summary: dict[str, Any] | None
    received_at: datetime


class TransferOut(ReadModel):
    id: str
    status: str
    seda_version: str
    message_identifier: str
    document_ids: list[str]
    selection: dict[str, Any] | None = Field(description="Sélection demandée : documents, dossier (folder_id) ou DUA")
    document_units: dict[str, str] | None = Field(
        description="Unité d'archives de chaque document dans le paquet (identifiant du document → AU…)"
    )
    comment: str | None
    archival_agency: str
    transferring_agency: str
    sip_sha256: str | None = Field(validation_alias="sip_key")
    sip_size: int | None
    validation: dict[str, Any] | None
    connector: str | None
    receipt: dict[str, Any] | None
    error: str | None
    profile: str | None
    sae_message_identifier: str | None = Field(description="Identifiant de la réponse du système d'archivage")
    reply_code: str | None = Field(description="Code de la réponse (OK, WARNING, KO, 000…)")
    sae_identifiers: dict[str, Any] | None = Field(description="Identifiants donnés par le système d'archivage")
    reply: dict[str, Any] | None = Field(description="Résumé de la réponse : verdict, motifs, événements")
    acknowledged_at: datetime | None
    replied_at: datetime | None
    messages: list[SaeMessageOut] = Field(description="Messages reçus du système d'archivage, refusés compris")
    created_by: str
    created_at: datetime
    updated_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status_label(self) -> str:
        """The state in words, for the archivist."""
        return STATUS_LABELS.get(self.status, self.status)


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
