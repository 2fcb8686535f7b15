"""What the archive API accepts and returns."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from archive.statuses import STATUS_LABELS
from socle.schemas import ReadModel

MAX_IDENTIFIER_LENGTH = 100
# What XML cannot carry, or an SAE would not match: C0 and C1 controls, DEL, surrogates, U+FFFE/U+FFFF.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def sae_token(value: str) -> str:
    """An identifier given by the SAE (contract, profile) as SEDA's IdentifierType reads it: a token, its spaces
    collapsed and trimmed, so that the SAE finds the same string. Raises ValueError (French) for an empty one,
    one longer than MAX_IDENTIFIER_LENGTH or one with control characters."""
    token = " ".join(value.split())
    if not token or len(token) > MAX_IDENTIFIER_LENGTH or _CONTROL.search(token):
        raise ValueError(
            f"identifiant invalide : de 1 à {MAX_IDENTIFIER_LENGTH} caractères, sans caractère de contrôle"
        )
    return token


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
    archival_agreement: str | None = Field(
        None,
        max_length=MAX_IDENTIFIER_LENGTH,
        description="Identifiant du contrat d'entrée donné par le service d'archives (ArchivalAgreement)",
    )
    comment: str | None = Field(None, max_length=2000, description="Intitulé du versement")
    profile: str | None = Field(
        None, min_length=1, max_length=100, description="Profil d'archivage (RelaxNG) de la collectivité à respecter"
    )
    seda_version: Literal["2.1", "2.2", "2.3"] = Field("2.2", description="Version du SEDA du bordereau")

    @field_validator("archival_agreement")
    @classmethod
    def _agreement(cls, value: str | None) -> str | None:
        return sae_token(value) if value is not None else None

    @model_validator(mode="after")
    def _one_selection(self) -> TransferIn:
        chosen = [self.document_ids is not None, self.folder_id is not None, self.dua_reached]
        if sum(chosen) != 1:
            raise ValueError("indiquez exactement une sélection : document_ids, folder_id ou dua_reached (vrai)")
        return self


def _same_as_transfer(name: str) -> Any:
    """TransferIn's field: the same bounds and description wherever a transfer is asked."""
    return TransferIn.model_fields[name]


class FolderTransferIn(BaseModel):
    """The fields of a transfer of a folder tree sent with the request (POST /archive/transfers/folder): those
    of TransferIn that do not choose GED documents, read from the multipart form's text parts."""

    model_config = ConfigDict(extra="forbid")

    archival_agency: str = _same_as_transfer("archival_agency")
    archival_agreement: str | None = _same_as_transfer("archival_agreement")
    comment: str | None = _same_as_transfer("comment")
    profile: str | None = _same_as_transfer("profile")
    seda_version: Literal["2.1", "2.2", "2.3"] = _same_as_transfer("seda_version")

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, data: Any) -> Any:
        # A form sends its empty fields as "": for an optional field, that is no value.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value != "" or key == "archival_agency"}
        return data

    @field_validator("archival_agreement")
    @classmethod
    def _agreement(cls, value: str | None) -> str | None:
        return sae_token(value) if value is not None else None


RuleCategory = Literal[
    "AppraisalRule", "AccessRule", "StorageRule", "DisseminationRule", "ReuseRule", "ClassificationRule"
]
DigestAlgorithm = Literal["MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512"]

# Where a mapped value comes from in the GED's export: the document's own metadata, or one of its type's
# typed fields (« field:<name> »). Checked against the document at build time: the archive does not know types.
SOURCES = ("title", "document_type", "type_name", "author", "document_date", "created_at", "modified_at", "dua_start")
SOURCE_PATTERN = rf"^({'|'.join(SOURCES)}|field:[A-Za-z0-9_.-]{{1,100}})$"
AGENCY_PATTERN = r"^(tenant|field:[A-Za-z0-9_.-]{1,100})$"
# Where a unit's agents come from: the GED's author, the signatories of a document signed in the parapheur, or a
# typed field whose value (text, or list of texts) names people.
AGENT_SOURCES = ("author", "signatories")
AGENT_SOURCE_PATTERN = rf"^({'|'.join(AGENT_SOURCES)}|field:[A-Za-z0-9_.-]{{1,100}})$"
AgentSource = Annotated[str, Field(pattern=AGENT_SOURCE_PATTERN)]
# The mapping's agent elements → their SEDA role (archive.seda.AGENT_ROLES), in the XSD's order.
AGENT_FIELDS = {
    "authorized_agent": "AuthorizedAgent",
    "writer": "Writer",
    "addressee": "Addressee",
    "recipient": "Recipient",
    "transmitter": "Transmitter",
    "sender": "Sender",
    "signer": "Signer",
}
MAX_AGENT_SOURCES = 10
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
    authorized_agent: list[AgentSource] = Field(
        default_factory=list,
        max_length=MAX_AGENT_SOURCES,
        description="Sources des titulaires des droits (AuthorizedAgent)",
    )
    writer: list[AgentSource] = Field(
        default_factory=lambda: ["author"],
        max_length=MAX_AGENT_SOURCES,
        description="Sources des rédacteurs (Writer) ; par défaut l'auteur du document dans la GED",
    )
    addressee: list[AgentSource] = Field(
        default_factory=list,
        max_length=MAX_AGENT_SOURCES,
        description="Sources des destinataires pour action (Addressee)",
    )
    recipient: list[AgentSource] = Field(
        default_factory=list,
        max_length=MAX_AGENT_SOURCES,
        description="Sources des destinataires pour information (Recipient)",
    )
    transmitter: list[AgentSource] = Field(
        default_factory=list, max_length=MAX_AGENT_SOURCES, description="Sources des émetteurs (Transmitter)"
    )
    sender: list[AgentSource] = Field(
        default_factory=list, max_length=MAX_AGENT_SOURCES, description="Sources des expéditeurs (Sender)"
    )
    signer: list[AgentSource] = Field(
        default_factory=lambda: ["signatories"],
        max_length=MAX_AGENT_SOURCES,
        description="Sources des signataires ; par défaut ceux du parapheur, pour un document qui y a été signé",
    )

    @field_validator("keyword_fields")
    @classmethod
    def _field_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9_.-]{1,100}", name):
                raise ValueError(f"nom de champ invalide : « {name[:100]} »")
        return list(dict.fromkeys(names))

    @field_validator(*AGENT_FIELDS)
    @classmethod
    def _agent_sources(cls, sources: list[str]) -> list[str]:
        return list(dict.fromkeys(sources))


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
    identifier: str = Field(description="Identifiant du profil dans le système d'archivage (ArchivalProfile)")
    sha256: str = Field(validation_alias="object_key")
    size: int
    uploaded_by: str
    uploaded_at: datetime


class SendIn(BaseModel):
    connector: str = Field(
        min_length=1,
        max_length=100,
        description="Connecteur d'interopérabilité à utiliser : quand l'interopérabilité a fait connaître les "
        "connecteurs du système d'archivage de la collectivité, l'un de ceux qui sont actifs (sinon 422)",
    )
    accept_unvalidated: bool = Field(
        False, description="Envoyer un paquet que les schémas absents n'ont pas permis de valider"
    )


class AbandonIn(BaseModel):
    reason: str = Field(
        min_length=1, max_length=2000, description="Pourquoi le versement est abandonné (gardé au journal d'audit)"
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
    archival_agreement: str | None = Field(description="Contrat d'entrée (ArchivalAgreement) écrit dans le bordereau")
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
