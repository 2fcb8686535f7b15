"""Parapheur tables: desks and delegations, typologies, folders (dossiers) with their documents and circuit
steps, the acts on those steps, and everything around a folder's life (history, annotations, opinions, bulk
operations, notifications, signing identities).

Vocabulary kept from the users: a *bureau* (desk) is a role that one or more people hold; a circuit's steps
name desks, never people, so that a folder waits for "le bureau du maire" whoever holds it today.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, validates

from socle.db import UTCDateTime, new_id, utcnow

if TYPE_CHECKING:
    from parapheur.circuits import Actor


class ParapheurBase(DeclarativeBase):
    pass


# ---------------------------------------------------------------------------------------------------------
# Desks and delegations


class Desk(ParapheurBase):
    """A bureau: what a circuit step waits for. ``stamp_role`` is the title printed in signature stamps."""

    __tablename__ = "parapheur_desks"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    stamp_role: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[DeskMember]] = relationship(cascade="all, delete-orphan", order_by="DeskMember.username")


class DeskMember(ParapheurBase):
    __tablename__ = "parapheur_desk_members"
    __table_args__ = (UniqueConstraint("desk_id", "username"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    desk_id: Mapped[str] = mapped_column(ForeignKey("parapheur_desks.id"), index=True)
    username: Mapped[str] = mapped_column(String(100), index=True)


class Delegation(ParapheurBase):
    """While it runs, the members of ``to_desk`` may act for ``from_desk`` ("en l'absence de …").

    ``subtype_ids`` limits it to some typologies; None means all of them.
    """

    __tablename__ = "parapheur_delegations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    from_desk_id: Mapped[str] = mapped_column(ForeignKey("parapheur_desks.id"), index=True)
    to_desk_id: Mapped[str] = mapped_column(ForeignKey("parapheur_desks.id"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    subtype_ids: Mapped[list[str] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---------------------------------------------------------------------------------------------------------
# Typologies: a type fixes how to sign, a sous-type what circuit to follow


class SignatureType(ParapheurBase):
    """A type: signature format (pades, cades, xades), PAdES level, and where the stamp goes.

    The stamp box is in PDF points from the page's bottom-left corner; ``stamp_page`` is 1-based, -1 for the
    last page; ``stamp_x``/``stamp_y`` None place it automatically (bottom-right, stacked).
    """

    __tablename__ = "parapheur_types"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(200))
    signature_format: Mapped[str] = mapped_column(String(10), default="pades")
    level: Mapped[str] = mapped_column(String(5), default="B-B")
    stamp_page: Mapped[int] = mapped_column(Integer, default=-1)
    stamp_x: Mapped[float | None] = mapped_column(Float)
    stamp_y: Mapped[float | None] = mapped_column(Float)
    stamp_width: Mapped[float] = mapped_column(Float, default=200)
    stamp_height: Mapped[float] = mapped_column(Float, default=60)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Subtype(ParapheurBase):
    """A sous-type: the circuit, the seal identity, the mandatory metadata, who may create folders.

    ``circuit`` is a list of step templates: ``{"kind", "desk_ids", "mode", "quorum", "mandatory_metadata"}``
    (see parapheur.circuits). ``creator_desk_ids`` empty: any desk member may create folders of this sous-type.
    """

    __tablename__ = "parapheur_subtypes"
    __table_args__ = (UniqueConstraint("type_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    type_id: Mapped[str] = mapped_column(ForeignKey("parapheur_types.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    circuit: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    seal_identity_id: Mapped[str | None] = mapped_column(String(36))
    mandatory_metadata: Mapped[list[str]] = mapped_column(JSON, default=list)
    creator_desk_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    reading_required: Mapped[bool] = mapped_column(Boolean, default=False)
    due_days: Mapped[int | None] = mapped_column(Integer)
    # Where its signed documents are filed in the GED, when a folder's creator asks for it: a folder of the
    # classification plan, by its path (« Ressources humaines/Arrêtés ») or id. The GED's rights on that folder
    # then say who reads them; without it, a document filed nowhere would be open to the whole collectivité.
    ged_folder: Mapped[str | None] = mapped_column(String(1000))
    # Its signature steps may also be signed on paper, as an alternative (never for a PES: XAdES only): the
    # scan of the signed paper then stands for the step's signature (parapheur.signature_acts). Off by default.
    paper_allowed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    type: Mapped[SignatureType] = relationship()


# ---------------------------------------------------------------------------------------------------------
# Folders, their documents and steps


class Folder(ParapheurBase):
    """A dossier: main document(s), annexes and metadata travelling along a circuit of steps.

    Statuses: draft (brouillon) → awaiting_document (the GED is sending it) → in_progress → completed,
    rejected or withdrawn (retiré by its creator); error when its document cannot be used.
    ``signature_format``/``signature_level`` are copied from the type when the folder is created, so that
    editing a typology never changes a folder already on its way. ``pending_level`` is the level still owed
    after a degraded signature (a responder was down), reached later by the upgrade job.
    """

    __tablename__ = "parapheur_folders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    title: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(30))
    source: Mapped[str] = mapped_column(String(10))  # "ged" or "upload"
    subtype_id: Mapped[str | None] = mapped_column(ForeignKey("parapheur_subtypes.id"), index=True)
    signature_format: Mapped[str] = mapped_column(String(10), default="pades")
    signature_level: Mapped[str] = mapped_column(String(5), default="B-B")
    pending_level: Mapped[str | None] = mapped_column(String(5))
    ged_document_id: Mapped[str | None] = mapped_column(String(36))
    ged_version: Mapped[int | None] = mapped_column(Integer)
    # An uploaded folder asked to be filed in the GED once signed (« classer dans la GED »): the GED creates a
    # document from the signed PDF and answers with its id (then kept in ``ged_document_id``).
    ged_filing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Why the GED could not file it (its reason, in French), until filed or asked again (parapheur.filing).
    ged_filing_error: Mapped[str | None] = mapped_column(Text)
    field_values: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    due_date: Mapped[date | None] = mapped_column(Date)
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    steps: Mapped[list[Step]] = relationship(order_by="Step.position", cascade="all, delete-orphan")
    documents: Mapped[list[FolderDocument]] = relationship(
        order_by="FolderDocument.position", cascade="all, delete-orphan"
    )

    @property
    def main_documents(self) -> list[FolderDocument]:
        return [document for document in self.documents if document.role == "main"]

    @property
    def current_sha256(self) -> str | None:
        """Digest of the first main document as it stands: signed so far, or as received."""
        main = self.main_documents
        return main[0].current_key if main else None

    @property
    def active_step(self) -> int | None:
        """The step waiting for an act; none once the circuit is over or before it started."""
        return self.current_step if self.status == "in_progress" else None


class FolderDocument(ParapheurBase):
    """One file of a folder. ``role``: main (to be signed), annex (carried along), scan (a paper signature).

    A paper signature's scan of a PDF main document becomes that document's signed version: ``signed_key`` is the
    scan's (then whatever later steps sign over it) and ``paper_scan_id`` names the scan's own row, kept as
    uploaded; ``key`` stays the unsigned original, still downloadable. None: never signed on paper.

    ``signed_key`` is the main document as signed so far (PAdES, XAdES: the signature is inside), and
    ``signed_size`` its size, kept when the signed copy is stored (service.keep_signed_sizes), so that the folder's
    page does not ask the store; None while unknown (a copy signed before it was kept, or just replaced: a new
    ``signed_key`` forgets the size of the one before). ``signature_key`` is the detached signature (CAdES .p7s)
    of a main document that is not a PDF.
    """

    __tablename__ = "parapheur_documents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    folder_id: Mapped[str] = mapped_column(ForeignKey("parapheur_folders.id"), index=True)
    role: Mapped[str] = mapped_column(String(10))
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    signed_key: Mapped[str | None] = mapped_column(String(64))
    signed_size: Mapped[int | None] = mapped_column(BigInteger)
    signature_key: Mapped[str | None] = mapped_column(String(64))
    paper_scan_id: Mapped[str | None] = mapped_column(String(36))
    added_by: Mapped[str] = mapped_column(String(100))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def current_key(self) -> str:
        return self.signed_key or self.key

    @property
    def signed_on_paper(self) -> bool:
        """Its signed version comes from the scan of a handwritten signature (not an electronic signature)."""
        return self.paper_scan_id is not None

    @validates("signed_key")
    def _another_signed_copy(self, _name: str, key: str | None) -> str | None:
        """Whatever stores a signed copy (a signature, its upgrade, a droit de remords), the size kept is never
        the copy before's."""
        if key != self.signed_key:
            self.signed_size = None
        return key


class Step(ParapheurBase):
    """One step of a folder's circuit, copied from the sous-type's template when the folder starts.

    ``kind``: visa, signature, seal (cachet serveur, automatic), reading (lecture, information only),
    external_signature (an outside signer through a one-time link), paper_signature (printed, signed by hand,
    scan uploaded). ``mode``: all (every desk acts), any (one is enough), quorum (``quorum`` desks of them).
    For an external step, ``external_name``/``external_email`` say who signs and ``token_hash`` is the
    SHA-256 of the one-time link's secret. ``paper_allowed``: a signature step that may also be signed on paper
    (copied from the sous-type's ``paper_allowed`` when the folder is sent).
    """

    __tablename__ = "parapheur_steps"
    __table_args__ = (UniqueConstraint("folder_id", "position"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    folder_id: Mapped[str] = mapped_column(ForeignKey("parapheur_folders.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))
    desk_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    mode: Mapped[str] = mapped_column(String(10), default="all")
    quorum: Mapped[int | None] = mapped_column(Integer)
    mandatory_metadata: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending, current, done, rejected
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    external_name: Mapped[str | None] = mapped_column(String(200))
    external_email: Mapped[str | None] = mapped_column(String(254))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paper_allowed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    acts: Mapped[list[StepAct]] = relationship(order_by="StepAct.at", cascade="all, delete-orphan")


class StepAct(ParapheurBase):
    """One person's act on a step, for one of its desks (possibly under delegation: ``on_behalf_of_desk_id``).

    Undone acts (droit de remords) keep their row with ``undone_at`` set; ``previous_keys`` maps document ids
    to the key they had before a signature, so that undoing it restores them.

    A paper signature recorded by someone else than its signatory (« signature papier de … »: the secrétariat
    for the mayor) names who signed by hand: ``signatory_name``, ``signatory_username`` when that person has an
    account here, and ``signed_on``, the day of the handwritten signature; ``username`` is who recorded it. All
    None when the person who recorded it signed it themselves (``signed_on`` may still say the day).
    """

    __tablename__ = "parapheur_step_acts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    step_id: Mapped[str] = mapped_column(ForeignKey("parapheur_steps.id"), index=True)
    folder_id: Mapped[str] = mapped_column(String(36), index=True)
    desk_id: Mapped[str | None] = mapped_column(String(36))
    on_behalf_of_desk_id: Mapped[str | None] = mapped_column(String(36))
    username: Mapped[str] = mapped_column(String(100))
    display_name: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(30))
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    previous_keys: Mapped[dict[str, str | None] | None] = mapped_column(JSON)
    signatory_name: Mapped[str | None] = mapped_column(String(200))
    signatory_username: Mapped[str | None] = mapped_column(String(100))
    signed_on: Mapped[date | None] = mapped_column(Date)


class FolderEvent(ParapheurBase):
    """The folder's history, in order: what the bordereau prints. The tenant's audit log has the same acts."""

    __tablename__ = "parapheur_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    folder_id: Mapped[str] = mapped_column(ForeignKey("parapheur_folders.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))  # username, or "service:…" / "externe:<email>"
    actor_name: Mapped[str] = mapped_column(String(200))
    desk_id: Mapped[str | None] = mapped_column(String(36))
    on_behalf_of_desk_id: Mapped[str | None] = mapped_column(String(36))
    action: Mapped[str] = mapped_column(String(50))
    comment: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    @classmethod
    def of_act(
        cls,
        folder: Folder,
        actor: Actor,
        action: str,
        comment: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> FolderEvent:
        """A history line of ``folder``, now, by ``actor`` (both desks kept when acting under a delegation)."""
        return cls(
            tenant_id=folder.tenant_id,
            folder_id=folder.id,
            at=utcnow(),
            actor=actor.username,
            actor_name=actor.display_name,
            desk_id=actor.desk_id,
            on_behalf_of_desk_id=actor.on_behalf_of_desk_id,
            action=action,
            comment=comment,
            details=json.loads(json.dumps(details or {}, default=str)),  # dates and the like as JSON text
        )


class Annotation(ParapheurBase):
    """A note on a folder: public (everyone on the circuit sees it) or private (its author only)."""

    __tablename__ = "parapheur_annotations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    folder_id: Mapped[str] = mapped_column(ForeignKey("parapheur_folders.id"), index=True)
    author: Mapped[str] = mapped_column(String(100))
    author_name: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    public: Mapped[bool] = mapped_column(Boolean, default=True)
    step_position: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OpinionRequest(ParapheurBase):
    """Demande d'avis: a desk outside the circuit is asked for its opinion; the folder does not move."""

    __tablename__ = "parapheur_opinions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    folder_id: Mapped[str] = mapped_column(ForeignKey("parapheur_folders.id"), index=True)
    desk_id: Mapped[str] = mapped_column(String(36))
    asked_by: Mapped[str] = mapped_column(String(100))
    question: Mapped[str] = mapped_column(Text)
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answer: Mapped[str | None] = mapped_column(Text)
    answered_by: Mapped[str | None] = mapped_column(String(100))
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ReadMark(ParapheurBase):
    """Proof that a person opened the document in this state (lecture obligatoire before signing, when required),
    or made this state themselves: the copy their own signature produced (service.record_act)."""

    __tablename__ = "parapheur_reads"
    __table_args__ = (UniqueConstraint("folder_id", "username", "document_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    folder_id: Mapped[str] = mapped_column(ForeignKey("parapheur_folders.id"), index=True)
    username: Mapped[str] = mapped_column(String(100))
    document_key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PreparedSignature(ParapheurBase):
    """Client-side signing between its two calls: the PDF with its placeholder and pyHanko's state."""

    __tablename__ = "parapheur_prepared_signatures"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36))
    folder_id: Mapped[str] = mapped_column(ForeignKey("parapheur_folders.id"), index=True)
    step_id: Mapped[str] = mapped_column(String(36))
    document_id: Mapped[str] = mapped_column(String(36))
    username: Mapped[str] = mapped_column(String(100))
    desk_id: Mapped[str | None] = mapped_column(String(36))
    on_behalf_of_desk_id: Mapped[str | None] = mapped_column(String(36))
    source_key: Mapped[str] = mapped_column(String(64))
    prepared_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# ---------------------------------------------------------------------------------------------------------
# Bulk operations and notifications


class BulkOperation(ParapheurBase):
    """One "viser/signer la sélection" action; its items progress one by one in a job."""

    __tablename__ = "parapheur_bulk_operations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    username: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(10))  # visa or sign
    comment: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending, running, finished
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    items: Mapped[list[BulkItem]] = relationship(order_by="BulkItem.position", cascade="all, delete-orphan")


class BulkItem(ParapheurBase):
    __tablename__ = "parapheur_bulk_items"
    __table_args__ = (UniqueConstraint("operation_id", "folder_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    operation_id: Mapped[str] = mapped_column(ForeignKey("parapheur_bulk_operations.id"), index=True)
    folder_id: Mapped[str] = mapped_column(String(36))
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending, done, failed
    error: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # the same, translatable (Message.record)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class NotificationPreference(ParapheurBase):
    """How a person wants to hear about folders: immediate (one mail per act), digest, or none."""

    __tablename__ = "parapheur_notification_preferences"
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36))
    username: Mapped[str] = mapped_column(String(100))
    mode: Mapped[str] = mapped_column(String(10), default="immediate")


class PendingNotice(ParapheurBase):
    """A notice kept for the next digest mail (``sent_at`` set once it went out)."""

    __tablename__ = "parapheur_pending_notices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    username: Mapped[str] = mapped_column(String(100))
    folder_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(30))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# ---------------------------------------------------------------------------------------------------------
# Signing identities


class SigningIdentity(ParapheurBase):
    """A key to sign with, kept encrypted (socle.secrets): a user's, or the tenant's server seal (cachet).

    ``kind`` pkcs12: the file and its passphrase, encrypted. ``kind`` pkcs11: the module, token and key
    labels, and the PIN, encrypted. ``purpose`` user (``username`` set) or seal (``label`` names it).
    ``stamp_image`` is an optional PNG/JPEG drawn in the visible stamp.
    """

    __tablename__ = "parapheur_identities"
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36))
    purpose: Mapped[str] = mapped_column(String(10), default="user")
    username: Mapped[str | None] = mapped_column(String(100))
    label: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10), default="pkcs12")
    subject: Mapped[str] = mapped_column(String(500))
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    pkcs12_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    passphrase_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    pkcs11_module: Mapped[str | None] = mapped_column(String(500))
    pkcs11_token: Mapped[str | None] = mapped_column(String(200))
    pkcs11_key: Mapped[str | None] = mapped_column(String(200))
    pin_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    stamp_image: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TrustAnchor(ParapheurBase):
    """A certificate of the tenant's trust list: signature chains are validated up to one of these (the
    certification authorities the collectivité accepts, e.g. RGS ones, or its own)."""

    __tablename__ = "parapheur_trust_anchors"
    __table_args__ = (UniqueConstraint("tenant_id", "sha256"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(500))
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    added_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def insert_once(session: Session, model: type[ParapheurBase], values: dict[str, Any], keys: tuple[str, ...]) -> bool:
    """INSERT a row unless one with the same unique ``keys`` exists; whether this call wrote it.

    Two identical requests at once (a double click, a PDF viewer's parallel range requests) both find no row,
    then both insert: on PostgreSQL the second would fail on the unique constraint (a 500). ON CONFLICT DO
    NOTHING makes it wait for the first and write nothing; SQLite serialises transactions, the clause is harmless.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(model).values(**values).on_conflict_do_nothing(index_elements=list(keys))
    # RETURNING, not rowcount: the driver reports -1 for such an INSERT; a skipped row returns nothing.
    return session.execute(statement.returning(model.__table__.c.id)).first() is not None
