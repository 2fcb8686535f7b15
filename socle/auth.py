"""Tenants, users, roles and API tokens.

A token belongs to one user of one tenant, so every API call is scoped to that tenant: services filter every
query by ``principal.tenant_id`` and answer 404, not 403, for another tenant's objects (no existence leak).
"""

from __future__ import annotations

import hashlib
import importlib
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from socle import audit
from socle.db import utcnow
from socle.errors import Conflict, Forbidden, InvalidInput, Message, NotFound, Unauthenticated, message
from socle.models import ApiToken, Tenant, User
from socle.text import check_text

TOKEN_PREFIX = "socle_"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


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
            raise Forbidden(_wanted_roles([*roles, Role.ADMIN]))


# The roles in words, for the messages a user reads (the codes are for the API and the command line).
ROLE_NAMES: dict[Role, Message] = {
    Role.AGENT: message("agent"),
    Role.SECRETARIAT: message("secrétariat"),
    Role.ARCHIVISTE: message("archiviste"),
    Role.ADMIN: message("administrateur"),
}


def _wanted_roles(roles: Sequence[Role]) -> Message:
    """« cette action demande le rôle administrateur », « … l'un des rôles : agent, archiviste ou administrateur »:
    the names stay messages of their own, translated with the sentence."""
    names = [ROLE_NAMES[role] for role in dict.fromkeys(roles)]
    if len(names) == 1:
        return message("cette action demande le rôle %(role)s", role=names[0])
    wanted = message("%(role)s ou %(other)s", role=names[-2], other=names[-1])
    for name in reversed(names[:-2]):
        wanted = message("%(role)s, %(others)s", role=name, others=wanted)
    return message("cette action demande l'un des rôles : %(wanted)s", wanted=wanted)


def hash_token(token: str) -> str:
    # Tokens are 256-bit random values: a plain SHA-256 is enough, no slow password hash needed.
    return hashlib.sha256(token.encode()).hexdigest()


MAX_TENANT_NAME = 200  # Tenant.name's column

# The services that keep a collectivité's SIREN of their own (interop: a TdT connector's « siren », where a commune
# may keep it only), asked by their function's name as the queue's jobs are (the kernel imports no service):
# ``(session, tenant_id, siren)`` → the id of another collectivité whose SIREN it is there, or None.
SIREN_HOLDERS = ("interop.flows.connector_siren_holder",)


def _siren_held_by_service(session: Session, tenant_id: str, siren: str) -> bool:
    for name in SIREN_HOLDERS:
        module, function = name.rsplit(".", 1)
        if getattr(importlib.import_module(module), function)(session, tenant_id, siren) is not None:
            return True
    return False


def _siren_conflict(siren: str) -> Conflict:
    # ProConnect finds the collectivité of an agent by the SIREN of their employer, and a TdT connector files what
    # S²LOW brings back under it: a second collectivité with the same one would receive another's agents at
    # sign-in, or its letters of the prefecture and PES Retour.
    return Conflict(
        message(
            "le SIREN %(siren)s est déjà celui d'une autre collectivité de cette installation : "
            "vérifiez-le, ou demandez à l'exploitant",
            siren=siren,
        )
    )


def create_tenant(session: Session, slug: str, name: str, siren: str | None = None) -> Tenant:
    if not _SLUG.match(slug):
        raise InvalidInput(
            message("identifiant de collectivité invalide : minuscules, chiffres et tirets, 2 à 63 caractères")
        )
    if siren is not None and not re.fullmatch(r"\d{9}", siren):
        raise InvalidInput(message("le SIREN doit compter 9 chiffres"))
    check_text(name, message("nom de la collectivité"))
    if len(name) > MAX_TENANT_NAME:  # the column's length: PostgreSQL would refuse it with its own message
        raise InvalidInput(message("nom de la collectivité : %(max)s caractères au plus", max=MAX_TENANT_NAME))
    if session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none():
        raise Conflict(message("la collectivité « %(slug)s » existe déjà", slug=slug))
    # Another collectivité's own SIREN stays the operator's to give twice (this is the operator's command); one
    # another collectivité's TdT connector names is refused: that connector would take this one's documents.
    if siren is not None and _siren_held_by_service(session, "", siren):
        raise _siren_conflict(siren)
    tenant = Tenant(slug=slug, name=name, siren=siren)
    session.add(tenant)
    session.flush()
    audit.start_chain(session, tenant.id)
    _audit(session, tenant.id, "tenant.created", "tenant", tenant.id, slug=slug, name=name)
    return tenant


def get_tenant(session: Session, slug: str) -> Tenant:
    tenant = session.execute(select(Tenant).where(Tenant.slug == slug)).scalar_one_or_none()
    if tenant is None:
        raise NotFound(message("collectivité « %(slug)s » inconnue", slug=slug))
    return tenant


def create_user(
    session: Session,
    tenant: Tenant,
    username: str,
    display_name: str,
    roles: list[str],
    email: str | None = None,
    *,
    actor: str = "system",
) -> User:
    if not _USERNAME.match(username):
        raise InvalidInput(
            message("identifiant invalide : lettres, chiffres, « . », « _ », « - » ou « @ », 100 caractères au plus")
        )
    _check_profile(display_name, email, roles)
    exists = session.execute(
        select(User).where(User.tenant_id == tenant.id, User.username == username)
    ).scalar_one_or_none()
    if exists:
        raise Conflict(message("l'utilisateur « %(username)s » existe déjà", username=username))
    user = User(tenant_id=tenant.id, username=username, display_name=display_name, roles=roles, email=email)
    session.add(user)
    session.flush()
    _audit(session, tenant.id, "user.created", "user", user.id, actor=actor, username=username, roles=roles)
    return user


def _check_profile(display_name: str, email: str | None, roles: list[str]) -> None:
    if not display_name.strip() or len(display_name) > 200:
        raise InvalidInput(message("le nom affiché est obligatoire (200 caractères au plus)"))
    if email is not None and (len(email) > 254 or not _EMAIL.match(email)):
        raise InvalidInput(message("adresse de courriel invalide : « %(email)s »", email=email[:254]))
    unknown = sorted(set(roles) - {role.value for role in Role})
    if unknown:
        raise InvalidInput(message("rôle(s) inconnu(s) : %(unknown)s", unknown=", ".join(unknown)))


def get_user_by_id(session: Session, tenant_id: str, user_id: str) -> User:
    """The tenant's user; raises NotFound for an unknown id or another tenant's."""
    user = session.execute(select(User).where(User.tenant_id == tenant_id, User.id == user_id)).scalar_one_or_none()
    if user is None:
        raise NotFound(message("utilisateur introuvable"))
    return user


def update_user(
    session: Session, user: User, *, display_name: str, email: str | None, roles: list[str], actor: str
) -> None:
    """Change a user's name, e-mail and roles. Raises InvalidInput, or Conflict when the collectivité would be
    left without an active administrator."""
    _check_profile(display_name, email, roles)
    if Role.ADMIN.value not in roles:
        _keep_an_admin(session, user)
    changed = sorted(
        name
        for name, value in (("display_name", display_name), ("email", email), ("roles", sorted(roles)))
        if value != (sorted(user.roles) if name == "roles" else getattr(user, name))
    )
    user.display_name, user.email, user.roles = display_name, email, list(roles)
    _audit(session, user.tenant_id, "user.updated", "user", user.id, actor=actor, changed=changed, roles=roles)


def set_active(session: Session, user: User, active: bool, *, actor: str) -> None:
    """Enable or disable an account. A disabled user's web sessions are closed and their API tokens stop
    working (``authenticate`` refuses them). Raises Conflict for the last active administrator."""
    from socle.ui.sessions import close_user_sessions

    if user.active == active:
        return
    if not active:
        _keep_an_admin(session, user)
        close_user_sessions(session, user.id)
    user.active = active
    _audit(session, user.tenant_id, "user.enabled" if active else "user.disabled", "user", user.id, actor=actor)


def _keep_an_admin(session: Session, user: User) -> None:
    """Refuse to take away the collectivité's last active administrator (nobody could repair it but an operator)."""
    if not user.active or Role.ADMIN.value not in user.roles:
        return
    others = session.execute(
        select(User.roles).where(User.tenant_id == user.tenant_id, User.id != user.id, User.active)
    ).scalars()
    if not any(Role.ADMIN.value in roles for roles in others):
        raise Conflict(message("la collectivité doit garder au moins un administrateur actif"))


def update_tenant(session: Session, tenant: Tenant, *, name: str, siren: str | None, actor: str) -> None:
    """Change the collectivité's name and SIREN (its identifier, used at sign-in and in storage, stays)."""
    if not name.strip() or len(name) > 200:
        raise InvalidInput(message("le nom de la collectivité est obligatoire (200 caractères au plus)"))
    if siren is not None and not re.fullmatch(r"\d{9}", siren):
        raise InvalidInput(message("le SIREN doit compter 9 chiffres"))
    if siren is not None and siren != tenant.siren and _siren_taken(session, tenant, siren):
        raise _siren_conflict(siren)  # only the operator gives a SIREN twice (CLI)
    changed = sorted(key for key, value in (("name", name), ("siren", siren)) if getattr(tenant, key) != value)
    tenant.name, tenant.siren = name, siren
    _audit(session, tenant.id, "tenant.updated", "tenant", tenant.id, actor=actor, changed=changed)


def _siren_taken(session: Session, tenant: Tenant, siren: str) -> bool:
    found = session.execute(select(Tenant.id).where(Tenant.siren == siren, Tenant.id != tenant.id).limit(1)).first()
    return found is not None or _siren_held_by_service(session, tenant.id, siren)


def display_names(session: Session, tenant_id: str, usernames: Iterable[str]) -> dict[str, str]:
    """The display name of each of these users of the tenant who has one (a former user is absent: the caller
    shows their username), in one query; what every page naming people by their logins asks."""
    wanted = set(usernames)
    if not wanted:
        return {}
    query = select(User.username, User.display_name).where(User.tenant_id == tenant_id, User.username.in_(wanted))
    return {username: name for username, name in session.execute(query) if name}


def get_user(session: Session, tenant: Tenant, username: str) -> User:
    user = session.execute(
        select(User).where(User.tenant_id == tenant.id, User.username == username)
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(
            message(
                "utilisateur « %(username)s » inconnu dans « %(tenant_slug)s »",
                username=username,
                tenant_slug=tenant.slug,
            )
        )
    return user


def set_password(session: Session, user: User, password: str | None, *, actor: str = "system") -> None:
    """Set a local account's sign-in password, or remove it (None: OpenID Connect only); the user's open web
    sessions are closed."""
    from socle.ui.passwords import hash_password
    from socle.ui.sessions import close_user_sessions

    user.password_hash = hash_password(password) if password is not None else None
    close_user_sessions(session, user.id)
    action = "user.password_set" if password is not None else "user.password_removed"
    _audit(session, user.tenant_id, action, "user", user.id, actor=actor)


def issue_token(
    session: Session,
    user: User,
    label: str = "",
    *,
    expires_at: datetime | None = None,
    scope: Sequence[str] = (),
    actor: str = "system",
) -> str:
    """Return a new token; it is shown once and only its hash is kept.

    :param expires_at: after this instant ``authenticate`` refuses it (None: no expiry).
    :param scope: the only requests the token may make, each ``"METHOD /path"`` (empty: every right of the user).
    :param actor: who is recorded in the audit log as having issued it.
    """
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    lines = [_scope_line(entry) for entry in scope]
    # Short-lived tokens are issued often (one per card signature): the user's expired ones go as a new one
    # comes, so they do not pile up. Their issue stays in the audit log.
    session.execute(delete(ApiToken).where(ApiToken.user_id == user.id, ApiToken.expires_at < utcnow()))
    session.add(
        ApiToken(
            tenant_id=user.tenant_id,
            user_id=user.id,
            token_hash=hash_token(token),
            label=label,
            expires_at=expires_at,
            scope="\n".join(lines) if lines else None,
        )
    )
    details: dict[str, object] = {"label": label}
    if expires_at is not None:
        details["expires_at"] = expires_at.isoformat()
    if lines:
        details["scope"] = lines
    _audit(session, user.tenant_id, "token.issued", "user", user.id, actor=actor, **details)
    return token


def _scope_line(entry: str) -> str:
    method, _, path = entry.strip().partition(" ")
    if not method.isalpha() or not path.startswith("/") or " " in path:
        raise InvalidInput(
            message("portée de jeton invalide : « %(entry)s » (attendu : « MÉTHODE /chemin »)", entry=entry)
        )
    return f"{method.upper()} {path}"


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


def authenticate(session: Session, token: str | None, request: tuple[str, str] | None = None) -> Principal:
    """The principal of an API token.

    :param request: the call's ``(method, path)``; a scoped token is only accepted for a request of its scope,
        so a caller that gives none (CMIS, for instance) refuses every scoped token.
    :raises Unauthenticated: no token, unknown, revoked, expired, or its user disabled.
    :raises Forbidden: a scoped token used for a request outside its scope.
    """
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
    expires_at = row.ApiToken.expires_at
    if expires_at is not None and expires_at <= utcnow():
        raise Unauthenticated(
            message(
                "jeton d'accès expiré depuis le %(at)s (UTC) : demandez-en un nouveau",
                at=f"{expires_at:%d/%m/%Y à %H:%M}",
            )
        )
    if row.ApiToken.scope is not None and not _in_scope(row.ApiToken.scope, request):
        raise Forbidden(
            message(
                "ce jeton d'accès ne sert qu'à « %(task)s » : il ne permet pas cette requête",
                task=row.ApiToken.label or "une tâche précise",
            )
        )
    return Principal(
        tenant_id=row.Tenant.id,
        tenant_slug=row.Tenant.slug,
        tenant_name=row.Tenant.name,
        user_id=row.User.id,
        username=row.User.username,
        display_name=row.User.display_name,
        roles=frozenset(row.User.roles),
    )


def _in_scope(scope: str, request: tuple[str, str] | None) -> bool:
    if request is None:
        return False
    # Paths within the service (socle.web.service_path): the exact call, nothing under or around it.
    return f"{request[0].upper()} {request[1]}" in scope.splitlines()


def _audit(
    session: Session,
    tenant_id: str,
    action: str,
    object_type: str,
    object_id: str,
    *,
    actor: str = "system",
    **details: object,
) -> None:
    # Through the CLI the kit itself is the recorded actor; through the administration pages, the administrator.
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details,
    )
