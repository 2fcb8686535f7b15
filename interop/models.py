"""Interop tables: each tenant's connectors, and every delivery made through them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Integer, String, Text, UniqueConstraint
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
    (an operator resumes it); the SEDA messages received are kept in the store (``*_key``: the first of each
    kind; ``sae_messages``: every distinct one, in the order received, a corrected reply included).
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
    # Every distinct SEDA message received (kind, key, MessageIdentifier, size, received_at), each forwarded once.
    sae_messages: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class Flow(InteropBase):
    """A document on its way out (flux): a state machine whose every transition is a job on the interop queue.

    ``state`` is where the document stands in its kind's machine (interop.flows); ``status`` says whether a job
    is on its way (running), the flow waits for a platform or another service (waiting), is done, or stopped in
    error (``error`` kept, an operator resumes it). ``data`` holds what the steps learnt (transaction id, keys of
    the package and of the acknowledgements, GED document id).
    """

    __tablename__ = "interop_flows"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    connector: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), index=True, default="running")
    documents: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    flow_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    # Tries of the current waiting state (a platform that has not answered yet), and where the round started.
    checks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    round_start: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    steps: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FlowEvent(InteropBase):
    """One line of a flow's history: a transition (or a try that changed nothing but is worth seeing)."""

    __tablename__ = "interop_flow_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flow_id: Mapped[str] = mapped_column(String(36), index=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    from_state: Mapped[str | None] = mapped_column(String(40))
    to_state: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class FlowLock(InteropBase):
    """A lock key held while a step runs: what must not run in parallel (one transmission per flow…)."""

    __tablename__ = "interop_flow_locks"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TdtClassification(InteropBase):
    """A tenant's @ctes classification (natures, codes matières) as fetched from its TdT, with its date."""

    __tablename__ = "interop_tdt_classifications"
    __table_args__ = (UniqueConstraint("tenant_id", "connector_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    connector_id: Mapped[str] = mapped_column(String(36))
    classification_date: Mapped[date] = mapped_column(Date)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The TdT's own date of its latest classification, when it says so (newer than ours: ours is stale).
    platform_date: Mapped[date | None] = mapped_column(Date)
    natures: Mapped[dict[str, Any]] = mapped_column(JSON)
    matieres: Mapped[dict[str, Any]] = mapped_column(JSON)
    object_key: Mapped[str] = mapped_column(String(64))


class InteropNotice(InteropBase):
    """A mail sent to one person about a flow or a document of the TdT (interop.notices), once: the row is written
    in the transaction that sends it, so that its job run again finds it and sends nothing."""

    __tablename__ = "interop_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(30))
    recipient: Mapped[str] = mapped_column(String(254))
    flow_id: Mapped[str | None] = mapped_column(String(36))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
