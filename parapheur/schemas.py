"""What the parapheur API accepts and returns."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, computed_field

from parapheur import circuits
from parapheur.pades import SignatureReport
from socle.dates import french_today
from socle.db import utcnow
from socle.schemas import ReadModel
from socle.text import Line, Note

Format = Literal["pades", "cades", "xades"]
Level = Literal["B-B", "B-T", "B-LT", "B-LTA"]


# ---------------------------------------------------------------------------------------------------------
# Desks and delegations


class DeskIn(BaseModel):
    name: Line = Field(min_length=1, max_length=200)
    description: Note | None = Field(None, max_length=2000)
    stamp_role: Line | None = Field(None, max_length=200, description="Qualité imprimée dans le cachet : « Maire »")
    members: list[Line] = Field(default_factory=list, max_length=500, description="Identifiants des membres")


class DeskPatch(BaseModel):
    name: Line | None = Field(None, min_length=1, max_length=200)
    description: Note | None = Field(None, max_length=2000)
    stamp_role: Line | None = Field(None, max_length=200)
    members: list[Line] | None = Field(None, max_length=500, description="Remplace la liste des membres")


class MemberIn(BaseModel):
    username: Line = Field(min_length=1, max_length=100)


class DeskOut(BaseModel):
    id: str
    name: str
    description: str | None
    stamp_role: str | None
    members: list[str]
    created_at: datetime

    @classmethod
    def of(cls, desk: Any) -> DeskOut:
        return cls(
            id=desk.id,
            name=desk.name,
            description=desk.description,
            stamp_role=desk.stamp_role,
            members=sorted(member.username for member in desk.members),
            created_at=desk.created_at,
        )


class DelegationIn(BaseModel):
    from_desk_id: Line = Field(max_length=36, description="Bureau absent")
    to_desk_id: Line = Field(max_length=36, description="Bureau qui agit en son absence")
    starts_at: datetime = Field(description="Début (ISO 8601 ; sans fuseau : UTC)")
    ends_at: datetime = Field(description="Fin, exclue")
    subtype_ids: list[Line] | None = Field(None, max_length=200, description="Limitée à ces sous-types ; null : tous")


class DelegationOut(ReadModel):
    id: str
    from_desk_id: str
    to_desk_id: str
    starts_at: datetime
    ends_at: datetime
    subtype_ids: list[str] | None
    created_by: str
    created_at: datetime
    active: bool = Field(False, description="En cours à cet instant")
    overlaps: list[str] = Field(default_factory=list, description="Délégations du même bureau aux dates communes")


# ---------------------------------------------------------------------------------------------------------
# Typologies


class TypeIn(BaseModel):
    name: Line = Field(min_length=1, max_length=200)
    signature_format: Format = "pades"
    level: Level = "B-B"
    stamp_page: int = Field(-1, description="Page du cachet, à partir de 1 ; -1 : la dernière")
    stamp_x: float | None = Field(None, description="Points depuis le bord gauche ; null : placement automatique")
    stamp_y: float | None = Field(None, description="Points depuis le bas de la page")
    stamp_width: float = 200
    stamp_height: float = 60


class TypePatch(BaseModel):
    name: Line | None = Field(None, min_length=1, max_length=200)
    signature_format: Format | None = None
    level: Level | None = None
    stamp_page: int | None = None
    stamp_x: float | None = None
    stamp_y: float | None = None
    stamp_width: float | None = None
    stamp_height: float | None = None


class TypeOut(ReadModel):
    id: str
    name: str
    signature_format: str
    level: str
    stamp_page: int
    stamp_x: float | None
    stamp_y: float | None
    stamp_width: float
    stamp_height: float
    created_at: datetime


class SubtypeIn(BaseModel):
    name: Line = Field(min_length=1, max_length=200)
    circuit: list[dict[str, Any]] = Field(
        max_length=50,
        description='Étapes : [{"kind": "visa", "desk_ids": [...], "mode": "all|any|quorum", "quorum": 2, '
        '"mandatory_metadata": [...]}, …]',
    )
    seal_identity_id: Line | None = Field(None, max_length=36)
    mandatory_metadata: list[Line] = Field(default_factory=list, max_length=100)
    creator_desk_ids: list[Line] = Field(default_factory=list, max_length=200)
    reading_required: bool = False
    due_days: int | None = Field(None, description="Délai de traitement en jours")
    ged_folder: Line | None = Field(
        None,
        max_length=1000,
        description="Dossier du plan de classement de la GED (chemin « A/B » ou identifiant) où classer les "
        "documents signés ; sans lui, pas de classement",
    )
    paper_allowed: bool = Field(
        False,
        description="Les étapes de signature acceptent aussi une signature papier (scan du document signé à la "
        "main), à la place de la signature électronique ; jamais pour un flux PES (XAdES)",
    )


class SubtypePatch(BaseModel):
    name: Line | None = Field(None, min_length=1, max_length=200)
    circuit: list[dict[str, Any]] | None = Field(None, max_length=50)
    seal_identity_id: Line | None = Field(None, max_length=36)
    mandatory_metadata: list[Line] | None = Field(None, max_length=100)
    creator_desk_ids: list[Line] | None = Field(None, max_length=200)
    reading_required: bool | None = None
    due_days: int | None = None
    ged_folder: Line | None = Field(None, max_length=1000)
    paper_allowed: bool | None = None


class SubtypeOut(ReadModel):
    id: str
    type_id: str
    name: str
    circuit: list[dict[str, Any]]
    seal_identity_id: str | None
    mandatory_metadata: list[str]
    creator_desk_ids: list[str]
    reading_required: bool
    due_days: int | None
    ged_folder: str | None
    paper_allowed: bool = Field(description="Signature papier acceptée aux étapes de signature")
    created_at: datetime


# ---------------------------------------------------------------------------------------------------------
# Folders


class ExternalSignerIn(BaseModel):
    name: Line = Field(min_length=1, max_length=200)
    email: Line = Field(min_length=3, max_length=254)


class FolderIn(BaseModel):
    subtype_id: Line = Field(max_length=36)
    title: Line = Field(min_length=1, max_length=500)
    ged_document_id: Line = Field(max_length=36, description="Document de la GED à faire viser et signer")
    metadata: dict[str, Any] = Field(default_factory=dict)
    due_date: date | None = Field(None, description="Date limite ; par défaut aujourd'hui + délai du sous-type")
    external_signers: list[ExternalSignerIn] = Field(default_factory=list, max_length=50)
    send: bool = Field(False, description="Envoyer le dossier dans son circuit dès la création")


class ActionIn(BaseModel):
    comment: Note | None = Field(None, max_length=2000)
    desk_id: Line | None = Field(None, max_length=36, description="Bureau pour lequel agir, si vous en avez plusieurs")


class RejectIn(BaseModel):
    reason: Note = Field(min_length=1, max_length=2000, description="Motif du rejet (obligatoire)")
    desk_id: Line | None = Field(None, max_length=36)


class TransferIn(BaseModel):
    desk_id: Line = Field(max_length=36, description="Bureau qui reprend l'étape pour ce dossier")
    comment: Note | None = Field(None, max_length=2000)
    from_desk_id: Line | None = Field(None, max_length=36, description="Bureau de l'étape remplacé, si plusieurs")


class MetadataIn(BaseModel):
    metadata: dict[str, Any] = Field(description="Valeurs à ajouter ou remplacer ; null retire une valeur")


class AnnotationIn(BaseModel):
    text: Note = Field(min_length=1, max_length=5000)
    public: bool = Field(True, description="Privée : visible de son seul auteur")


class OpinionIn(BaseModel):
    desk_id: Line = Field(max_length=36)
    question: Note = Field(min_length=1, max_length=5000)


class OpinionAnswerIn(BaseModel):
    answer: Note = Field(min_length=1, max_length=5000)


class DeskRef(BaseModel):
    id: str
    name: str


class ActOut(ReadModel):
    id: str
    desk_id: str | None
    on_behalf_of_desk_id: str | None = Field(description="Bureau remplacé (« en l'absence de »)")
    username: str
    display_name: str
    action: str
    comment: str | None
    at: datetime
    undone_at: datetime | None = Field(description="Repris par droit de remords")
    signatory_name: str | None = Field(
        None,
        description="Signature papier enregistrée pour une autre personne : qui a signé à la main (username : qui "
        "l'a enregistrée) ; null quand la personne qui l'a enregistrée l'a signée elle-même",
    )
    signatory_username: str | None = Field(None, description="Identifiant de ce signataire, s'il a un compte")
    signed_on: date | None = Field(None, description="Signature papier : jour de la signature à la main")


class StepOut(ReadModel):
    id: str
    position: int
    kind: str
    desk_ids: list[str]
    desks: list[DeskRef] = Field(default_factory=list)
    mode: str
    quorum: int | None
    mandatory_metadata: list[str]
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    external_name: str | None
    external_email: str | None
    paper_allowed: bool = Field(False, description="Étape de signature qui accepte aussi une signature papier")
    acts: list[ActOut]


class DocumentOut(ReadModel):
    id: str
    role: str
    position: int
    filename: str
    media_type: str
    size: int
    sha256: str = Field(validation_alias="key", description="Empreinte du fichier reçu")
    current_sha256: str = Field(validation_alias="current_key", description="Empreinte dans son état actuel")
    signature_sha256: str | None = Field(validation_alias="signature_key", description="Signature détachée")
    signed_on_paper: bool = Field(
        False,
        description="Sa version signée est le scan d'une signature à la main (paper_scan_id : ce scan), pas une "
        "signature électronique ; le fichier reçu, non signé, reste à GET …/documents/{document}/original",
    )
    paper_scan_id: str | None = Field(None, description="Le scan de la signature papier, tel que déposé")


class FolderOut(ReadModel):
    id: str
    title: str
    status: str
    source: str
    subtype_id: str | None
    signature_format: str
    signature_level: str
    pending_level: str | None
    ged_document_id: str | None
    ged_version: int | None
    ged_filing: bool = Field(description="Dossier déposé : document signé à classer dans la GED, circuit terminé")
    ged_filing_error: str | None = Field(
        description="Pourquoi la GED n'a pas pu classer le document signé (null : aucun échec) ; "
        "à relancer par POST /folders/{id}/ged-filing/retry, une fois le plan ou le sous-type corrigé"
    )
    metadata: dict[str, Any] = Field(validation_alias="field_values")
    due_date: date | None
    documents: list[DocumentOut]
    document_sha256: str | None = Field(
        validation_alias="current_sha256", description="Empreinte du premier document principal, état actuel"
    )
    current_step: int | None = Field(validation_alias="active_step", description="Étape attendue, s'il y en a une")
    rejection_reason: str | None
    error: str | None
    created_by: str
    created_at: datetime
    sent_at: datetime | None
    updated_at: datetime
    steps: list[StepOut]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def late(self) -> bool:
        """En retard : date limite dépassée et dossier non clos."""
        return circuits.is_late(self.due_date, french_today(), self.status)  # the Paris date, as the boxes


class AnnotationOut(ReadModel):
    id: str
    author: str
    author_name: str
    text: str
    public: bool
    step_position: int | None
    at: datetime


class OpinionOut(ReadModel):
    id: str
    desk_id: str
    asked_by: str
    question: str
    asked_at: datetime
    answer: str | None
    answered_by: str | None
    answered_at: datetime | None


class FolderDetailOut(FolderOut):
    annotations: list[AnnotationOut] = Field(default_factory=list, description="Celles que vous pouvez voir")
    opinions: list[OpinionOut] = Field(default_factory=list)


class EventOut(ReadModel):
    at: datetime
    actor: str
    actor_name: str
    desk_id: str | None
    on_behalf_of_desk_id: str | None
    action: str
    comment: str | None
    details: dict[str, Any]


# ---------------------------------------------------------------------------------------------------------
# Validation of signed PDFs


class SignatureReportOut(ReadModel):
    """One signature of a validated file."""

    field_name: str = Field(description="Champ de signature du PDF, bordereau du PES, ou rang de la signature CAdES")
    signer: str = Field(validation_alias="signer_name", description="Nom du signataire (certificat)")
    signing_time: datetime | None = Field(description="Heure de signature déclarée par le signataire")
    intact: bool = Field(description="Le contenu signé n'a pas été modifié")
    chain_trusted: bool = Field(description="Le certificat remonte à une autorité de la liste de confiance")
    revocation: Literal["good", "revoked", "unknown"] = Field(description="Statut de révocation du certificat")
    revocation_date: datetime | None
    timestamp_time: datetime | None = Field(description="Heure de l'horodatage de la signature, s'il y en a un")
    signature_format: Literal["PAdES", "CAdES", "XAdES"] = Field(description="Format de la signature")
    level: Literal["B-B", "B-T", "B-LT", "B-LTA"] | None = Field(description="Niveau (baseline) atteint")
    covers_whole_document: bool = Field(description="Seules des modifications autorisées ont suivi la signature")
    valid: bool
    summary: str = Field(description="Résumé en français")


class ValidationOut(BaseModel):
    """Validation report of a signed file: valid when it has signatures, every one is valid, and nothing that
    should be signed is not (``notes``: an unsigned PES bordereau)."""

    filename: str | None
    valid: bool
    signature_count: int
    signatures: list[SignatureReportOut]
    notes: list[str] = Field(default_factory=list, description="Ce qui manque (bordereau non signé…)")

    @classmethod
    def of(cls, filename: str | None, reports: list[SignatureReport], notes: list[str] | None = None) -> ValidationOut:
        return cls(
            filename=filename,
            valid=bool(reports) and all(report.valid for report in reports) and not notes,
            signature_count=len(reports),
            signatures=[SignatureReportOut.of(report) for report in reports],
            notes=notes or [],
        )


class TrustAnchorOut(ReadModel):
    """A certificate of the collectivité's trust list."""

    id: str
    subject: str
    sha256: str = Field(description="Empreinte SHA-256 du certificat (DER)")
    not_after: datetime = Field(description="Fin de validité")
    added_by: str
    created_at: datetime


class IdentityOut(BaseModel):
    """A signing identity as an administrator sees it: whose, which certificate, until when. Never a secret."""

    id: str
    purpose: str = Field(description="user (identité d'un agent) ou seal (cachet serveur)")
    username: str | None = Field(description="L'agent, pour une identité d'agent")
    label: str | None = Field(description="Le nom du cachet, pour un cachet")
    kind: str = Field(description="pkcs12 (fichier) ou pkcs11 (jeton matériel)")
    subject: str
    issuer: str
    serial_number: str = Field(description="Numéro de série du certificat, en hexadécimal")
    not_before: datetime = Field(description="Début de validité du certificat")
    not_after: datetime = Field(description="Fin de validité du certificat")
    valid_now: bool = Field(description="Le certificat est dans sa période de validité")
    stamp_image: bool = Field(description="Une image est dessinée dans le tampon de signature")
    created_at: datetime

    @classmethod
    def of(cls, row: Any) -> IdentityOut:
        """From a SigningIdentity row: the certificate's facts are read from its DER, nothing else."""
        from cryptography import x509

        certificate = x509.load_der_x509_certificate(row.certificate_der)
        start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        return cls(
            id=row.id,
            purpose=row.purpose,
            username=row.username,
            label=row.label,
            kind=row.kind,
            subject=row.subject,
            issuer=certificate.issuer.rfc4514_string(),
            serial_number=format(certificate.serial_number, "x"),
            not_before=start,
            not_after=end,
            valid_now=start <= utcnow() <= end,
            stamp_image=row.stamp_image is not None,
            created_at=row.created_at,
        )


# ---------------------------------------------------------------------------------------------------------
# Signature, external links, bulk, notifications (A2)


class PrepareIn(BaseModel):
    """Signature par carte, étape 1 : le certificat lu sur la carte et sa chaîne."""

    certificate: str = Field(min_length=1, max_length=20_000, description="Certificat du signataire, DER en base64")
    chain: list[str] = Field(default_factory=list, max_length=10, description="Certificats d'autorité, DER en base64")
    desk_id: Line | None = Field(None, max_length=36, description="Bureau pour lequel agir, s'il y a le choix")


class PreparedOut(BaseModel):
    id: str = Field(description="Identifiant de la signature préparée, à rappeler à l'étape 2")
    data_to_sign: str = Field(description="Ce que la carte doit signer (base64)")
    digest_algorithm: str
    expires_at: datetime


class FinishIn(BaseModel):
    """Signature par carte, étape 2 : la valeur de signature calculée par la carte."""

    id: Line = Field(min_length=1, max_length=36)
    signature: str = Field(min_length=1, max_length=20_000, description="Valeur de signature, base64")


class ExternalDocumentOut(ReadModel):
    id: str
    role: str
    filename: str
    media_type: str
    size: int
    sha256: str = Field(validation_alias="current_key", description="Empreinte dans son état actuel")


class ExternalOut(ReadModel):
    """Ce que voit le signataire externe."""

    title: str
    signer_name: str | None
    signer_email: str | None
    expires_at: str | None
    documents: list[ExternalDocumentOut]


class ExternalSignIn(BaseModel):
    consent: bool = Field(description="J'accepte de signer ce dossier")
    name: Line = Field(min_length=1, max_length=200, description="Nom du signataire, tel qu'il apparaîtra")


class ExternalSignedOut(BaseModel):
    title: str
    status: str
    message: str


class BulkIn(BaseModel):
    action: Literal["visa", "sign"]
    folder_ids: list[Line] = Field(min_length=1, max_length=500)
    comment: Note | None = Field(None, max_length=2000)


class BulkItemOut(ReadModel):
    folder_id: str
    position: int
    status: str = Field(description="pending, done ou failed")
    error: str | None = Field(description="Raison de l'échec, en français")
    done_at: datetime | None


class BulkOut(ReadModel):
    id: str
    action: str
    status: str = Field(description="pending, running ou finished")
    comment: str | None
    created_at: datetime
    finished_at: datetime | None
    items: list[BulkItemOut]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total(self) -> int:
        return len(self.items)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def done(self) -> int:
        return sum(1 for item in self.items if item.status == "done")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failed(self) -> int:
        return sum(1 for item in self.items if item.status == "failed")


class PreferenceIn(BaseModel):
    mode: Literal["immediate", "digest", "none"] = Field(
        description="immediate : un courriel par événement ; digest : un récapitulatif ; none : aucun"
    )


class PreferenceOut(BaseModel):
    mode: Literal["immediate", "digest", "none"]
