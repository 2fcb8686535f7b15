"""GED tables: documents and their versions. Content lives in the object store, referenced by digest."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from socle.db import UTCDateTime, new_id, utcnow


class GedBase(DeclarativeBase):
    pass


class Document(GedBase):
    __tablename__ = "ged_documents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    versions: Mapped[list[Version]] = relationship(
        back_populates="document", order_by="Version.number", cascade="all, delete-orphan"
    )

    @property
    def current(self) -> Version:
        return next(version for version in self.versions if version.number == self.current_version)


class Version(GedBase):
    """A version is immutable: every change (content or metadata) adds one, earlier ones stay readable."""

    __tablename__ = "ged_versions"
    __table_args__ = (UniqueConstraint("document_id", "number"), UniqueConstraint("document_id", "origin"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(ForeignKey("ged_documents.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    object_key: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500))
    document_type: Mapped[str] = mapped_column(String(100))
    document_date: Mapped[date | None] = mapped_column(Date)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Where the version comes from when a job made it (e.g. "parapheur:<folder id>"): makes the job idempotent.
    origin: Mapped[str | None] = mapped_column(String(100))
    comment: Mapped[str | None] = mapped_column(Text)

    document: Mapped[Document] = relationship(back_populates="versions")

    @property
    def sha256(self) -> str:
        return self.object_key  # content-addressed: the key is the digest

    @property
    def content(self) -> Version:
        """The stored bytes' description (key, digest, size, type, name), which the API groups apart."""
        return self
