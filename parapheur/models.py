"""Parapheur tables: folders (dossiers), their circuit steps, and the users' signing identities."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from socle.db import UTCDateTime, new_id, utcnow


class ParapheurBase(DeclarativeBase):
    pass


class Folder(ParapheurBase):
    """A dossier: one PDF travelling along a circuit of steps. ``signed_key`` is the PDF as signed so far."""

    __tablename__ = "parapheur_folders"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    title: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(30))
    source: Mapped[str] = mapped_column(String(10))  # "ged" or "upload"
    ged_document_id: Mapped[str | None] = mapped_column(String(36))
    ged_version: Mapped[int | None] = mapped_column(Integer)
    document_key: Mapped[str | None] = mapped_column(String(64))
    document_size: Mapped[int | None] = mapped_column(BigInteger)
    document_filename: Mapped[str | None] = mapped_column(String(255))
    signed_key: Mapped[str | None] = mapped_column(String(64))
    current_step: Mapped[int] = mapped_column(Integer, default=0)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    steps: Mapped[list[Step]] = relationship(order_by="Step.position", cascade="all, delete-orphan")

    @property
    def current_sha256(self) -> str | None:
        """Digest of the PDF as it stands: signed so far, or as received."""
        return self.signed_key or self.document_key

    @property
    def active_step(self) -> int | None:
        """The step waiting for an act; none once the circuit is over or before the document arrived."""
        return self.current_step if self.status == "in_progress" else None


class Step(ParapheurBase):
    __tablename__ = "parapheur_steps"
    __table_args__ = (UniqueConstraint("folder_id", "position"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    folder_id: Mapped[str] = mapped_column(ForeignKey("parapheur_folders.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # "visa" or "signature"
    actor: Mapped[str] = mapped_column(String(100))  # username
    status: Mapped[str] = mapped_column(String(20), default="pending")
    acted_by: Mapped[str | None] = mapped_column(String(100))
    acted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    comment: Mapped[str | None] = mapped_column(Text)


class SigningIdentity(ParapheurBase):
    """A user's PKCS#12 identity. The file and its passphrase are kept encrypted (socle.secrets)."""

    __tablename__ = "parapheur_identities"
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36))
    username: Mapped[str] = mapped_column(String(100))
    subject: Mapped[str] = mapped_column(String(500))
    certificate_der: Mapped[bytes] = mapped_column(LargeBinary)
    pkcs12_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    passphrase_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
