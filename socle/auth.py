"""Tenants, users, roles and API tokens.

A token belongs to one user of one tenant, so every API call is scoped to that tenant: services filter every
query by ``principal.tenant_id`` and answer 404, not 403, for another tenant's objects (no existence leak).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from socle import audit
from socle.db import utcnow
from socle.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from socle.models import ApiToken, Tenant, User

TOKEN_PREFIX = "socle_"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


class Role(StrEnum):
    AGENT = "agent"
    SECRETARIAT = "secretariat"
    ARCHIVISTE = "archiviste"
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the user and the one tenant every action is confined to."""

    tenant_id: str
    tenant_slug: str
    tenant_name: str
    user_id: str
    username: str
    display_name: str
    roles: frozenset[str]

    @property
    def actor(self) -> str:
        return f"user:{self.username}"

    def require(self, *roles: Role) -> None:
        if not self.roles.intersection(roles) and Role.ADMIN not in self.roles:
            wanted = ", ".join(role.value for role in roles)
            raise Forbidden(f"cette action demande l'un des rôles : {wanted}")


def hash_token(token: str) -> str:
    # Tokens are 256-bit random values: a plain SHA-256 is enough, no slow password hash needed.
    return hashlib.sha256(token.encode()).hexdigest()


def create_tenant(session: Session, slug: str, name: str, siren: str | None = None) -> Tenant:
    if not _SLUG.match(slug):
        raise InvalidInput("identifiant de collectivité invalide : minuscules, chiffres et tirets, 2 à 63 caractères")
    if siren is not None and not re.fullmatch(r"\d{9}", siren):
        raise InvalidInput("le SIREN doit compter 9 chiffres")
    if session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none():
        raise Conflict(f"la collectivité « {slug} » existe déjà")
    tenant = Tenant(slug=slug, name=name, siren=siren)
    session.add(tenant)
    session.flush()
    audit.start_chain(session, tenant.id)
    _audit(session, tenant.id, "tenant.created", "tenant", tenant.id, slug=slug, name=name)
    return tenant


def get_tenant(session: Session, slug: str) -> Tenant:
    tenant = session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    if tenant is None:
        raise NotFound(f"collectivité « {slug} » inconnue")
    return tenant


def create_user(
    session: Session, tenant: Tenant, username: str, display_name: str, roles: list[str], email: str | None = None
) -> User:
    unknown = sorted(set(roles) - {role.value for role in Role})
    if unknown:
        raise InvalidInput(f"rôle(s) inconnu(s) : {', '.join(unknown)}")
    exists = session.execute(
        select(User).where(User.tenant_id == tenant.id, User.username == username)
    ).scalar_one_or_none()
    if exists:
        raise Conflict(f"l'utilisateur « {username} » existe déjà")
    user = User(tenant_id=tenant.id, username=username, display_name=display_name, roles=roles, email=email)
    session.add(user)
    session.flush()
    _audit(session, tenant.id, "user.created", "user", user.id, username=username, roles=roles)
    return user


def get_user(session: Session, tenant: Tenant, username: str) -> User:
    user = session.execute(
        select(User).where(User.tenant_id == tenant.id, User.username == username)
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(f"utilisateur « {username} » inconnu dans « {tenant.slug} »")
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """Set a local account's sign-in password; the user's open web sessions are closed."""
    from socle.ui.passwords import hash_password
    from socle.ui.sessions import close_user_sessions

    user.password_hash = hash_password(password)
    close_user_sessions(session, user.id)
    _audit(session, user.tenant_id, "user.password_set", "user", user.id)


def issue_token(session: Session, user: User, label: str = "") -> str:
    """Return a new token; it is shown once and only its hash is kept."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(tenant_id=user.tenant_id, user_id=user.id, token_hash=hash_token(token), label=label))
    _audit(session, user.tenant_id, "token.issued", "user", user.id, label=label)
    return token


def revoke_tokens(session: Session, user: User) -> int:
    tokens = (
        session.execute(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)))
        .scalars()
        .all()
    )
    for token in tokens:
        token.revoked_at = utcnow()
    _audit(session, user.tenant_id, "token.revoked", "user", user.id, count=len(tokens))
    return len(tokens)


def authenticate(session: Session, token: str | None) -> Principal:
    if not token:
        raise Unauthenticated("jeton d'accès manquant (en-tête Authorization: Bearer …)")
    row = session.execute(
        select(ApiToken, User, Tenant)
        .join(User, User.id == ApiToken.user_id)
        .join(Tenant, Tenant.id == ApiToken.tenant_id)
        .where(ApiToken.token_hash == hash_token(token))
    ).one_or_none()
    if row is None or row.ApiToken.revoked_at is not None or not row.User.active:
        raise Unauthenticated("jeton d'accès invalide ou révoqué")
    return Principal(
        tenant_id=row.Tenant.id,
        tenant_slug=row.Tenant.slug,
        tenant_name=row.Tenant.name,
        user_id=row.User.id,
        username=row.User.username,
        display_name=row.User.display_name,
        roles=frozenset(row.User.roles),
    )


def _audit(session: Session, tenant_id: str, action: str, object_type: str, object_id: str, **details: object) -> None:
    # Accounts and tokens are managed by operators through the CLI: the kit itself is the recorded actor.
    audit.record(
        session,
        tenant_id=tenant_id,
        actor="system",
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details,
    )
