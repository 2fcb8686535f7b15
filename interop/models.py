"""Interop tables: each tenant's connectors, and every delivery made through them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from socle.db import UTCDateTime, new_id, utcnow


class InteropBase(DeclarativeBase):
    pass


class Connector(InteropBase):
    __tablename__ = "interop_connectors"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(30))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(InteropBase):
    """One object sent through one connector. The idempotency key makes a second send a no-op.

    ``status``: pending → sending (the send may have reached the platform) → done | failed. For an SAE, the
    follow-up of the operation: ``follow_status`` following → done, or error once the retry policy is spent
    (an operator resumes it); the SEDA messages received are kept in the store (``*_key``).
    """

    __tablename__ = "interop_deliveries"
    __table_args__ = (UniqueConstraint("tenant_id", "connector_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    connector_id: Mapped[str] = mapped_column(String(36))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    object_key: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Whom to tell (the reply of INTEROP_DELIVER), kept for the SEDA messages that come later.
    reply: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    follow_status: Mapped[str | None] = mapped_column(String(20), index=True)
    follow_checks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # follow_checks when the current round of the retry policy started (0, or at the last resume).
    follow_round_start: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    follow_state: Mapped[str | None] = mapped_column(Text)
    follow_error: Mapped[str | None] = mapped_column(Text)
    last_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledgement_key: Mapped[str | None] = mapped_column(String(64))
    reply_key: Mapped[str | None] = mapped_column(String(64))
