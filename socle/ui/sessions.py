"""Browser sessions of the web interface: opened at sign-in, checked on every page, closed at sign-out.

The cookie holds a random value; the database keeps only its SHA-256 (like API tokens), the user, the
tenant and the session's CSRF token. A session ends after an idle period or an absolute lifetime.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from socle import audit
from socle import secrets as kit_secrets
from socle.auth import Principal, hash_token
from socle.db import utcnow
from socle.models import LoginAttempt, Tenant, UiSession, User

COOKIE = "__Host-socle_session"
IDLE = timedelta(hours=2)
LIFETIME = timedelta(hours=12)
_TOUCH_EVERY = timedelta(minutes=1)  # last_seen is written at most once a minute, not on every page

# Sign-in throttling: failures counted over a window, per account and per client address.
ATTEMPT_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_ACCOUNT = 5
MAX_FAILURES_PER_ADDRESS = 20
# A browser where an account signed in before is exempt from that address's limit (not the account's).
DEVICE_COOKIE = "__Host-socle_appareil"
DEVICE_LIFETIME = timedelta(days=180)
_DEVICE_ACCOUNTS = 10  # accounts remembered per browser (a shared desk at the town hall)


@dataclass(frozen=True)
class SignedIn:
    """The signed-in user of a request, with what the pages need besides the principal."""

    principal: Principal
    session_id: str
    csrf_token: str
    locale: str


def open_session(
    db: Session, user: User, *, method: str = "password", id_token: str | None = None, client: str = ""
) -> str:
    """Record a new session for ``user`` and return the cookie value (shown once, never stored)."""
    value = secrets.token_urlsafe(32)
    now = utcnow()
    db.add(
        UiSession(
            token_hash=hash_token(value),
            tenant_id=user.tenant_id,
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            method=method,
            id_token=id_token,
            created_at=now,
            last_seen_at=now,
            expires_at=now + LIFETIME,
        )
    )
    audit.record(
        db,
        tenant_id=user.tenant_id,
        actor=f"user:{user.username}",
        action="session.opened",
        object_type="user",
        object_id=user.id,
        details={"method": method, "client": client},
    )
    return value


def read_session(db: Session, value: str | None) -> SignedIn | None:
    """The session behind a cookie value, or None if it is unknown, expired, or its user was disabled."""
    if not value:
        return None
    row = db.execute(
        select(UiSession, User, Tenant)
        .join(User, User.id == UiSession.user_id)
        .join(Tenant, Tenant.id == UiSession.tenant_id)
        .where(UiSession.token_hash == hash_token(value))
    ).one_or_none()
    if row is None:
        return None
    ui_session, user, tenant = row
    now = utcnow()
    if not user.active or now >= ui_session.expires_at or now - ui_session.last_seen_at > IDLE:
        db.delete(ui_session)
        return None
    if now - ui_session.last_seen_at > _TOUCH_EVERY:
        ui_session.last_seen_at = now
    principal = Principal(
        tenant_id=tenant.id,
        tenant_slug=tenant.slug,
        tenant_name=tenant.name,
        user_id=user.id,
        username=user.username,
        display_name=user.display_name,
        roles=frozenset(user.roles),
    )
    return SignedIn(principal, ui_session.id, ui_session.csrf_token, user.locale or "fr")


def close_session(db: Session, value: str | None) -> UiSession | None:
    """End the session behind a cookie value; return it (for the provider's logout) or None."""
    if not value:
        return None
    ui_session = db.execute(select(UiSession).where(UiSession.token_hash == hash_token(value))).scalar_one_or_none()
    if ui_session is None:
        return None
    user = db.get(User, ui_session.user_id)
    audit.record(
        db,
        tenant_id=ui_session.tenant_id,
        actor=f"user:{user.username if user else '?'}",
        action="session.closed",
        object_type="user",
        object_id=ui_session.user_id,
        details={"method": ui_session.method},
    )
    db.delete(ui_session)
    return ui_session


def close_user_sessions(db: Session, user_id: str) -> None:
    """Sign a user out everywhere (account disabled, password changed)."""
    db.execute(delete(UiSession).where(UiSession.user_id == user_id))


def push_flash(db: Session, session_id: str, message: str, kind: str = "success") -> None:
    """Keep a message to show on the next page (after a POST-redirect-GET)."""
    ui_session = db.get(UiSession, session_id)
    if ui_session is not None:
        ui_session.flash = [*ui_session.flash, {"kind": kind, "message": message}]


def pop_flash(db: Session, session_id: str) -> list[dict[str, Any]]:
    ui_session = db.get(UiSession, session_id)
    if ui_session is None or not ui_session.flash:
        return []
    messages = list(ui_session.flash)
    ui_session.flash = []
    return messages


# ---------------------------------------------------------------------------------------------------------
# Throttling


@dataclass(frozen=True)
class Attempt:
    """A sign-in attempt, recorded as a failure until its password proves right (:func:`start_attempt`)."""

    wait: int  # minutes to wait before another try; 0 when this one may check its password
    ids: tuple[int, ...]  # its rows in login_attempts


def start_attempt(db: Session, account_key: str, address_key: str, *, known_device: bool = False) -> Attempt:
    """Count a sign-in attempt against the limits of its account and address, before its password is checked.

    The attempt is written and committed first, as a failure, then counted with those before it: of guesses
    sent at the same time, each sees those committed before it, so no more than the limit reach the password
    check (counted first and written after, a burst of guesses all saw the count of before the burst). A refused
    attempt is taken back at once, as it checked nothing; a right password takes it back (:func:`succeeded`).

    ``known_device``: the browser proved (:func:`limit_key`) that this account signed in from it before.
    Many agents share one address (the town hall's NAT): a guesser among them must not lock them all out.
    """
    now = utcnow()
    db.execute(delete(LoginAttempt).where(LoginAttempt.at < now - ATTEMPT_WINDOW))
    rows = [LoginAttempt(key=account_key, at=now), LoginAttempt(key=address_key, at=now)]
    db.add_all(rows)
    db.flush()
    attempt = Attempt(0, tuple(row.id for row in rows))
    db.commit()
    since = now - ATTEMPT_WINDOW
    waits = []
    limits = [(account_key, MAX_FAILURES_PER_ACCOUNT)]
    if not known_device:
        limits.append((address_key, MAX_FAILURES_PER_ADDRESS))
    for key, limit in limits:
        count, oldest = db.execute(
            select(func.count(), func.min(LoginAttempt.at)).where(LoginAttempt.key == key, LoginAttempt.at >= since)
        ).one()
        if count > limit and oldest is not None:  # this attempt is counted: the limit's tries are before it
            remaining = oldest.replace(tzinfo=since.tzinfo) + ATTEMPT_WINDOW - utcnow()
            waits.append(max(1, int(remaining.total_seconds() // 60) + 1))
    if waits:
        _take_back(db, attempt)
        db.commit()
        return Attempt(max(waits), ())
    return attempt


def succeeded(db: Session, attempt: Attempt, account_key: str) -> None:
    """The password was right: the attempt is no failure, and the account's earlier failures are forgotten."""
    _take_back(db, attempt)
    db.execute(delete(LoginAttempt).where(LoginAttempt.key == account_key))


def _take_back(db: Session, attempt: Attempt) -> None:
    if attempt.ids:
        db.execute(delete(LoginAttempt).where(LoginAttempt.id.in_(attempt.ids)))


def _device(value: str | None) -> tuple[str, list[str]]:
    """The browser's id and the accounts that signed in from it, from its sealed cookie (none if not valid)."""
    if not value:
        return "", []
    try:
        data = json.loads(kit_secrets.decrypt(value.encode()))
    except Exception:  # forged, from another kit, or sealed with an old key: simply unknown
        return "", []
    if not isinstance(data, dict) or data.get("exp", 0) < time.time():
        return "", []
    return str(data.get("id", "")), [str(account) for account in data.get("accounts", [])]


def limit_key(value: str | None, account_key: str) -> str:
    """What an account's failures count against. From a browser where it signed in before, that browser's own
    count for it: someone guessing elsewhere cannot lock the owner out of their usual browser, and the browser
    itself stays limited (its cookie, stolen, gives 5 tries like any other)."""
    device_id, accounts = _device(value)
    return f"{account_key}#device:{device_id}" if device_id and account_key in accounts else account_key


def remember_device(value: str | None, account_key: str) -> str:
    """The device cookie after ``account_key`` signed in: encrypted, so it names no account in clear."""
    device_id, known = _device(value)
    accounts = [account for account in known if account != account_key]
    accounts = [*accounts, account_key][-_DEVICE_ACCOUNTS:]
    sealed = {
        "id": device_id or secrets.token_urlsafe(16),
        "accounts": accounts,
        "exp": time.time() + DEVICE_LIFETIME.total_seconds(),
    }
    return kit_secrets.encrypt(json.dumps(sealed).encode()).decode()
