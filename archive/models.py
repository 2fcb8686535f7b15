"""Archive tables: transfers (versements) from the GED to an archival system."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from socle.db import UTCDateTime, new_id, utcnow


class ArchiveBase(DeclarativeBase):
    pass


class Transfer(ArchiveBase):
    """A versement: requested → built | invalid | unvalidated | error → sending → delivered | delivery_failed,
    then, from the archival system's messages: acknowledged → accepted | rejected. Built, invalid, unvalidated
    or delivery_failed → abandoned, by the archivist (its reason kept in ``error``)."""

    __tablename__ = "archive_transfers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(20), default="requested")
    seda_version: Mapped[str] = mapped_column(String(5), default="2.2")
    message_identifier: Mapped[str] = mapped_column(String(100))
    document_ids: Mapped[list[str]] = mapped_column(JSON)
    # How the documents were chosen: {"kind": "documents" | "folder" | "dua_reached", "folder_id": …}; for a
    # folder or a DUA selection, ``document_ids`` is filled from the GED's answer.
    selection: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Each document's unit in the package (document id → AU id), known once built: folders nest the units.
    document_units: Mapped[dict[str, str] | None] = mapped_column(JSON)
    comment: Mapped[str | None] = mapped_column(Text)
    archival_agency: Mapped[str] = mapped_column(String(100))
    # The SAE's id of the entry contract (contrat d'entrée) written as ArchivalAgreement: Vitam refuses a
    # package without one. None for an SAE that needs none.
    archival_agreement: Mapped[str | None] = mapped_column(String(100))
    transferring_agency: Mapped[str] = mapped_column(String(100))
    sip_key: Mapped[str | None] = mapped_column(String(64))
    sip_size: Mapped[int | None] = mapped_column(BigInteger)
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    connector: Mapped[str | None] = mapped_column(String(100))
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    # The tenant's archival profile (RelaxNG) the manifest must also satisfy, by name.
    profile: Mapped[str | None] = mapped_column(String(100))
    # What the archival system (SAE) answered: its reply's identifier and code, the ids it gave the units.
    sae_message_identifier: Mapped[str | None] = mapped_column(String(200))
    reply_code: Mapped[str | None] = mapped_column(String(50))
    sae_identifiers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reply: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The transfer this one does again (« Refaire ce versement »): that one no longer waits to be corrected.
    redo_of: Mapped[str | None] = mapped_column(ForeignKey("archive_transfers.id"), index=True)

    messages: Mapped[list[SaeMessage]] = relationship(
        lazy="selectin", order_by="SaeMessage.received_at", back_populates="transfer"
    )


class SaeMessage(ArchiveBase):
    """A SEDA message received from the archival system for a transfer, kept even when refused.

    The same stored object (same bytes) of the same kind for the same transfer is recorded once.
    """

    __tablename__ = "archive_sae_messages"
    __table_args__ = (UniqueConstraint("transfer_id", "kind", "object_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    transfer_id: Mapped[str] = mapped_column(ForeignKey("archive_transfers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # acknowledgement | reply
    object_key: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))  # recorded | refused
    message_identifier: Mapped[str | None] = mapped_column(String(200))
    request_identifier: Mapped[str | None] = mapped_column(String(200))
    reply_code: Mapped[str | None] = mapped_column(String(50))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    refusal: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    transfer: Mapped[Transfer] = relationship(back_populates="messages")


class ArchivalProfile(ArchiveBase):
    """An archival profile (RelaxNG, as SHERPA or PASTIS make them) uploaded by a tenant, kept in the store."""

    __tablename__ = "archive_profiles"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The SAE's id of the profile (« PR-000001 »), written as ManagementMetadata/ArchivalProfile; the name by
    # default. The name is the tenant's own: the SAE does not know it.
    identifier: Mapped[str] = mapped_column(String(100))
    object_key: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    uploaded_by: Mapped[str] = mapped_column(String(100))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Referential(ArchiveBase):
    """A tenant's management rules (id, category, duration) and accepted digest algorithms, as its SAE has them."""

    __tablename__ = "archive_referentials"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    digest_algorithms: Mapped[list[str]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TransferMapping(ArchiveBase):
    """How a GED document type's metadata becomes SEDA, per tenant (archive.mapping): edited by archivists."""

    __tablename__ = "archive_mappings"
    __table_args__ = (UniqueConstraint("tenant_id", "type_code"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    type_code: Mapped[str] = mapped_column(String(100))
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SaeConnectorList(ArchiveBase):
    """A tenant's connectors to its archival system, as the interop service last told (one row per tenant).

    Interop sends the whole list at each change of one of them (messages.ARCHIVE_RECORD_SAE_CONNECTORS), with a
    version that grows: only a greater version replaces the row, so an older list arriving late, or the same one
    twice, changes nothing. No row: the list is not known yet (connectors made before the archive kept it).
    """

    __tablename__ = "archive_sae_connectors"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    # [{"name": …, "kind": "vitam" | "asalae" | "depot" | "sftp" | "webdav", "enabled": bool}], by name.
    connectors: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
