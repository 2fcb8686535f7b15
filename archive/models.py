"""Archive tables: transfers (versements) from the GED to an archival system."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from socle.db import UTCDateTime, new_id, utcnow


class ArchiveBase(DeclarativeBase):
    pass


class Transfer(ArchiveBase):
    """A versement: requested → built | invalid | unvalidated | error → sending → delivered | delivery_failed."""

    __tablename__ = "archive_transfers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(20), default="requested")
    seda_version: Mapped[str] = mapped_column(String(5), default="2.2")
    message_identifier: Mapped[str] = mapped_column(String(100))
    document_ids: Mapped[list[str]] = mapped_column(JSON)
    comment: Mapped[str | None] = mapped_column(Text)
    archival_agency: Mapped[str] = mapped_column(String(100))
    transferring_agency: Mapped[str] = mapped_column(String(100))
    sip_key: Mapped[str | None] = mapped_column(String(64))
    sip_size: Mapped[int | None] = mapped_column(BigInteger)
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    connector: Mapped[str | None] = mapped_column(String(100))
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
