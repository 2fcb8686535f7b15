"""The kernel's own tables: tenants, users, API tokens, the audit log, the job outbox, who holds which
stored object and the periods the built-in schedule has taken."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from socle.db import UTCDateTime, new_id, utcnow


class KernelBase(DeclarativeBase):
    pass


class Tenant(KernelBase):
    """A collectivité. Every object of every service belongs to exactly one tenant."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    siren: Mapped[str | None] = mapped_column(String(9))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(KernelBase):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "username"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    username: Mapped[str] = mapped_column(String(100))
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Local sign-in (scrypt, see socle.ui.passwords); None for accounts that sign in only through OpenID Connect.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    # "<provider>|<sub>" of the OpenID Connect identity bound to this account, if any.
    oidc_subject: Mapped[str | None] = mapped_column(String(300), index=True)
    locale: Mapped[str] = mapped_column(String(8), default="fr", server_default="fr")


class UiSession(KernelBase):
    """A signed-in browser. Only the SHA-256 of the cookie's value is kept, like API tokens."""

    __tablename__ = "ui_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(100), default="password")  # "password" or "oidc:<provider>"
    id_token: Mapped[str | None] = mapped_column(Text)  # kept for the provider's logout (id_token_hint)
    flash: Mapped[list[Any]] = mapped_column(JSON, default=list)  # messages shown once, after a redirect
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LoginAttempt(KernelBase):
    """A failed sign-in, counted per account and per client address to slow down password guessing."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(KernelBase):
    """Only the SHA-256 of a token is kept: a leaked database gives no usable token.

    ``expires_at`` (None: never) and ``scope`` (None: all of the user's rights) narrow a token issued for one
    task, such as signing one folder with a card: the scope lists the only requests it may make, one per
    line, ``METHOD /path`` (see ``auth.authenticate``).
    """

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scope: Mapped[str | None] = mapped_column(Text)


class AuditEntry(KernelBase):
    """Append-only and hash-chained per tenant: entry n carries the hash of entry n-1."""

    __tablename__ = "audit_entries"
    # The index: an object's own history (a document's page) without reading the tenant's whole log.
    __table_args__ = (
        UniqueConstraint("tenant_id", "seq"),
        Index("ix_audit_entries_object", "tenant_id", "object_type", "object_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    object_type: Mapped[str] = mapped_column(String(100))
    object_id: Mapped[str] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(KernelBase):
    """The last sequence number and hash of each tenant's chain: truncating the log is then detectable."""

    __tablename__ = "audit_heads"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class Job(KernelBase):
    """The source of truth for background work; rq only carries the job ids to the workers."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_next", "status", "next_run_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    service: Mapped[str] = mapped_column(String(20))
    function: Mapped[str] = mapped_column(String(200))
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON)
    tenant_id: Mapped[str | None] = mapped_column(String(36), index=True)
    key: Mapped[str | None] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TenantObject(KernelBase):
    """A stored object a tenant holds, and which service holds it for the tenant: its bytes entered the store
    through one of the tenant's rows (a GED version, a parapheur document, an archive package, a flow's file).

    The store is content-addressed and shared by every tenant and service: knowing a key proves nothing. What a
    tenant may hand over by key (an interop flow's documents) is checked here, and the GED deletes no object
    another holder still has (see ``socle.storage.ownership``). ``holder`` is the service's name, or "" for a
    row recorded before holders were (kernel revision 0006) that no service claimed: an unknown holder, which
    keeps the object.
    """

    __tablename__ = "tenant_objects"

    tenant_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    object_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(20), primary_key=True, server_default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ScheduleRun(KernelBase):
    """One period of a built-in periodic task, taken by the scheduler that enqueued its jobs (socle.schedule).

    Its primary key is what makes a task run once per period, whatever the number of workers that schedule it
    at once and their restarts: of several schedulers inserting the same (task, period), one succeeds, the
    others meet the unique key and go on. ``period`` is the due instant in UTC (``2026-12-01T02:00Z``); ``jobs``
    how many jobs were enqueued for it (one per collectivité for a task done collectivité by collectivité), or,
    for a task the scheduler runs itself (the kernel's housekeeping), how many rows it removed.
    """

    __tablename__ = "schedule_runs"

    task: Mapped[str] = mapped_column(String(100), primary_key=True)
    period: Mapped[str] = mapped_column(String(40), primary_key=True)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    jobs: Mapped[int] = mapped_column(Integer, default=0)
