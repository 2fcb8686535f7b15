"""Sign-in through OpenID Connect (authorization code flow): Keycloak, ProConnect.

What ProConnect asks of its clients is what every provider gets: ``state`` and ``nonce`` of 43 random
characters, the ID token's signature, issuer, audience, expiry and nonce checked, and — when the provider
signs its userinfo — the userinfo JWT's signature checked too. The pending sign-in (state, nonce, PKCE
verifier, where to return) travels in an encrypted, short-lived cookie: nothing to store server-side.

Signing out of a session opened here also ends the provider's session (OpenID Connect RP-Initiated Logout,
which ProConnect requires): the kit's session is closed first, then the browser goes to the provider's
``end_session_endpoint`` with the session's ID token as hint, and comes back with a ``state`` checked
against another short-lived encrypted cookie.

A provider identity opens an existing account only: first by the bound subject, else by a verified e-mail
in the collectivité (the binding is then kept). Accounts are never created by a sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from socle import audit
from socle import secrets as kit_secrets
from socle.errors import Forbidden, InvalidInput, NotFound, ServiceUnavailable, message
from socle.models import Tenant, User
from socle.settings import OidcProvider, get_settings
from socle.ui import sessions
from socle.ui.web import DbDep, render, safe_next

router = APIRouter(include_in_schema=False)
PENDING_COOKIE = "__Host-socle_oidc"
LOGOUT_COOKIE = "__Host-socle_oidc_sortie"
PENDING_SECONDS = 600
_RESTART = message("connexion expirée ou commencée dans un autre navigateur : recommencez")
_ALGORITHMS = ["RS256", "PS256", "ES256", "RS384", "RS512", "ES384"]  # never "none", never HMAC
_TIMEOUT = 10.0
_LEEWAY = 60  # seconds of clock skew tolerated between the kit and the provider


@dataclass(frozen=True)
class Discovery:
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str | None
    jwks_uri: str
    end_session_endpoint: str | None


def provider(name: str) -> OidcProvider:
    for candidate in get_settings().oidc_providers:
        if candidate.name == name:
            return candidate
    raise NotFound(message("fournisseur d'identité inconnu"))


def login_providers() -> list[dict[str, str]]:
    return [{"title": p.title, "url": f"/connexion/oidc/{p.name}"} for p in get_settings().oidc_providers]


@lru_cache(maxsize=16)
def _discovery(issuer: str) -> Discovery:
    document = _get_json(issuer.rstrip("/") + "/.well-known/openid-configuration")
    if document.get("issuer") != issuer:
        raise ServiceUnavailable(message("le fournisseur d'identité annonce un autre émetteur que celui configuré"))
    return Discovery(
        authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"],
        userinfo_endpoint=document.get("userinfo_endpoint"),
        jwks_uri=document["jwks_uri"],
        end_session_endpoint=document.get("end_session_endpoint"),
    )


@lru_cache(maxsize=16)
def _jwks(jwks_uri: str) -> jwt.PyJWKClient:
    return jwt.PyJWKClient(jwks_uri, cache_keys=True, timeout=int(_TIMEOUT))


def _get_json(url: str) -> dict[str, Any]:
    try:
        answer = httpx.get(url, timeout=_TIMEOUT)
        answer.raise_for_status()
        document: dict[str, Any] = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise ServiceUnavailable(
            message("fournisseur d'identité injoignable (%(cause)s)", cause=type(exc).__name__)
        ) from exc
    return document


# ---------------------------------------------------------------------------------------------------------
# Pending sign-in, in an encrypted cookie


def _seal(data: dict[str, Any]) -> str:
    return kit_secrets.encrypt(json.dumps(data).encode()).decode()


def _unseal(
    value: str | None, unreadable: str = _RESTART, expired: str = message("connexion expirée : recommencez")
) -> dict[str, Any]:
    if not value:
        raise InvalidInput(unreadable)
    try:
        data: dict[str, Any] = json.loads(kit_secrets.decrypt(value.encode()))
    except Exception as exc:
        raise InvalidInput(unreadable) from exc
    if data.get("exp", 0) < time.time():
        raise InvalidInput(expired)
    return data


@router.get("/connexion/oidc/{name}")
def start(request: Request, name: str, suivant: str = "") -> Response:
    chosen = provider(name)
    endpoints = _discovery(chosen.issuer)
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)  # 43 characters each
    pending: dict[str, Any] = {
        "provider": name,
        "state": state,
        "nonce": nonce,
        "next": safe_next(suivant),
        "exp": time.time() + PENDING_SECONDS,
    }
    params = {
        "response_type": "code",
        "client_id": chosen.client_id,
        "redirect_uri": _redirect_uri(request, name),
        "scope": chosen.scopes,
        "state": state,
        "nonce": nonce,
    }
    if chosen.pkce:
        verifier = secrets.token_urlsafe(48)
        pending["verifier"] = verifier
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    response = RedirectResponse(f"{endpoints.authorization_endpoint}?{urlencode(params)}", status_code=303)
    # Lax: the provider sends the browser back with a top-level GET, which must carry this cookie.
    response.set_cookie(
        PENDING_COOKIE, _seal(pending), max_age=PENDING_SECONDS, httponly=True, secure=True, samesite="lax"
    )
    return response


def _same(expected: str, received: str) -> bool:
    # Bytes: compare_digest refuses non-ASCII strings, and a forged answer may well contain some.
    return hmac.compare_digest(expected.encode(), received.encode())


def _base_url(request: Request) -> str:
    return (get_settings().public_url or str(request.base_url)).rstrip("/")


def _redirect_uri(request: Request, name: str) -> str:
    return f"{_base_url(request)}/connexion/oidc/{name}/retour"


@router.get("/connexion/oidc/{name}/retour")
def finish(request: Request, db: DbDep, name: str, code: str = "", state: str = "", error: str = "") -> Response:
    from socle.ui.shell import signed_in_redirect

    pending = _unseal(request.cookies.get(PENDING_COOKIE))
    if pending["provider"] != name or not _same(pending["state"], state):
        raise InvalidInput(message("réponse du fournisseur d'identité inattendue (state) : recommencez la connexion"))
    if error or not code:
        raise Forbidden(message("connexion refusée par le fournisseur d'identité"))
    chosen = provider(name)
    tokens = _exchange(request, chosen, code, pending.get("verifier"))
    claims = _id_token_claims(chosen, tokens["id_token"], pending["nonce"])
    claims |= _userinfo(chosen, tokens["access_token"], claims["sub"])
    user = match_account(db, chosen, claims)
    sessions.close_session(db, request.cookies.get(sessions.COOKIE))  # the browser's previous session ends here
    cookie = sessions.open_session(db, user, method=f"oidc:{name}", id_token=tokens["id_token"])
    response = signed_in_redirect(pending["next"], cookie)
    response.delete_cookie(PENDING_COOKIE, httponly=True, secure=True, samesite="lax")
    return response


def _exchange(request: Request, chosen: OidcProvider, code: str, verifier: str | None) -> dict[str, Any]:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": _redirect_uri(request, chosen.name),
        "client_id": chosen.client_id,
        "client_secret": chosen.client_secret.get_secret_value(),
    }
    if verifier:
        form["code_verifier"] = verifier
    try:
        answer = httpx.post(_discovery(chosen.issuer).token_endpoint, data=form, timeout=_TIMEOUT)
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            message("fournisseur d'identité injoignable (%(cause)s)", cause=type(exc).__name__)
        ) from exc
    if answer.status_code != 200:
        raise Forbidden(message("le fournisseur d'identité a refusé le code de connexion (expiré ou déjà utilisé)"))
    tokens: dict[str, Any] = answer.json()
    if "id_token" not in tokens or "access_token" not in tokens:
        raise Forbidden(message("réponse du fournisseur d'identité incomplète"))
    return tokens


def _decode(chosen: OidcProvider, token: str, **options: Any) -> dict[str, Any]:
    key = _jwks(_discovery(chosen.issuer).jwks_uri).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key=key.key,
        algorithms=_ALGORITHMS,
        audience=chosen.client_id,
        issuer=chosen.issuer,
        leeway=_LEEWAY,
        **options,
    )
    return claims


def _id_token_claims(chosen: OidcProvider, id_token: str, nonce: str) -> dict[str, Any]:
    try:
        claims = _decode(chosen, id_token, options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]})
    except jwt.PyJWTError as exc:
        raise Forbidden(message("jeton d'identité refusé : %(cause)s", cause=str(exc))) from exc
    if not _same(str(claims["nonce"]), nonce):
        raise Forbidden(message("jeton d'identité refusé : nonce inattendu (rejeu ?)"))
    return claims


def _userinfo(chosen: OidcProvider, access_token: str, subject: str) -> dict[str, Any]:
    endpoint = _discovery(chosen.issuer).userinfo_endpoint
    if endpoint is None:
        return {}
    try:
        answer = httpx.get(endpoint, headers={"Authorization": f"Bearer {access_token}"}, timeout=_TIMEOUT)
        answer.raise_for_status()
    except httpx.HTTPError as exc:
        raise ServiceUnavailable(
            message("informations d'utilisateur indisponibles (%(cause)s)", cause=type(exc).__name__)
        ) from exc
    if answer.headers.get("content-type", "").split(";")[0].strip() == "application/jwt":
        try:
            info = _decode(chosen, answer.text)
        except jwt.PyJWTError as exc:
            raise Forbidden(
                message("informations d'utilisateur refusées : signature invalide (%(cause)s)", cause=str(exc))
            ) from exc
    elif chosen.signed_userinfo:
        raise Forbidden(message("informations d'utilisateur refusées : ce fournisseur doit les signer"))
    else:
        info = answer.json()
    if info.get("sub") != subject:
        raise Forbidden(message("informations d'utilisateur refusées : elles concernent une autre personne"))
    return info


def match_account(db: Session, chosen: OidcProvider, claims: dict[str, Any]) -> User:
    tenant_ids = _tenants_of(db, chosen, claims)
    subject = f"{chosen.name}|{claims['sub']}"
    found = _one(db, select(User).where(User.tenant_id.in_(tenant_ids), User.oidc_subject == subject))
    email = str(claims.get("email") or "").strip().lower()
    if found is None and email and claims.get("email_verified", chosen.signed_userinfo) is not False:
        found = _one(
            db,
            select(User).where(
                User.tenant_id.in_(tenant_ids), func.lower(User.email) == email, User.oidc_subject.is_(None)
            ),
        )
        if found is not None:
            found.oidc_subject = subject  # bound at first sign-in; the e-mail is not trusted again afterwards
            audit.record(
                db,
                tenant_id=found.tenant_id,
                actor=f"user:{found.username}",
                action="user.oidc_bound",
                object_type="user",
                object_id=found.id,
                details={"provider": chosen.name},
            )
    if found is None or not found.active:
        raise Forbidden(
            message(
                "aucun compte actif ne correspond à cette identité dans votre collectivité : "
                "demandez à son administrateur de vous en ouvrir un"
            )
        )
    return found


def _one(db: Session, query: Any) -> User | None:
    users = db.execute(query.limit(2)).scalars().all()
    if len(users) > 1:
        # The same identity in two collectivités of one SIREN: opening either would be a guess.
        raise Forbidden(
            message("cette identité correspond à plusieurs comptes : l'administrateur doit lever l'ambiguïté")
        )
    return users[0] if users else None


def _tenants_of(db: Session, chosen: OidcProvider, claims: dict[str, Any]) -> list[str]:
    """The collectivités this identity may belong to (one, except for a SIREN shared by mistake)."""
    if chosen.tenant:
        tenant_ids = list(db.execute(select(Tenant.id).where(Tenant.slug == chosen.tenant)).scalars())
    elif chosen.tenant_from_siret:
        siren = str(claims.get("siret") or "")[:9]
        tenant_ids = list(db.execute(select(Tenant.id).where(Tenant.siren == siren)).scalars()) if siren else []
    else:
        tenant_ids = []
    if not tenant_ids:
        raise Forbidden(message("votre organisation n'utilise pas ce service"))
    return tenant_ids


# ---------------------------------------------------------------------------------------------------------
# Logout at the provider (RP-initiated)


@dataclass(frozen=True)
class ProviderLogout:
    """Where to send the browser to end the provider's session, and the sealed state to check on its return."""

    url: str
    cookie: str


def provider_logout(request: Request, method: str, id_token: str | None) -> ProviderLogout | None:
    """The provider's logout for a session opened by ``method``, or None (password, or no end_session_endpoint)."""
    if not method.startswith("oidc:") or not id_token:
        return None
    name = method.removeprefix("oidc:")
    try:
        endpoint = _discovery(provider(name).issuer).end_session_endpoint
    except (NotFound, ServiceUnavailable):
        return None  # provider removed from the settings or unreachable: the kit's session is closed anyway
    if endpoint is None:
        return None
    state = secrets.token_urlsafe(32)  # 43 characters, as for the sign-in
    params = {"id_token_hint": id_token, "state": state, "post_logout_redirect_uri": _logout_return_uri(request, name)}
    separator = "&" if "?" in endpoint else "?"
    pending = {"provider": name, "state": state, "exp": time.time() + PENDING_SECONDS}
    return ProviderLogout(f"{endpoint}{separator}{urlencode(params)}", _seal(pending))


def _logout_return_uri(request: Request, name: str) -> str:
    return f"{_base_url(request)}/deconnexion/oidc/{name}/retour"


@router.get("/deconnexion/oidc/{name}/retour")
def logged_out(request: Request, name: str, state: str = "") -> Response:
    """The provider sends the browser back here once its own session is ended."""
    pending = _unseal(
        request.cookies.get(LOGOUT_COOKIE),
        unreadable=message(
            "retour de déconnexion inattendu (déconnexion expirée ou commencée ailleurs) : "
            "votre session socle est fermée"
        ),
        expired=message("retour de déconnexion trop tardif : votre session socle est fermée"),
    )
    if pending["provider"] != name or not _same(pending["state"], state):
        raise InvalidInput(
            message(
                "réponse du fournisseur d'identité inattendue (state) : votre session socle est fermée, "
                "mais la fin de la session chez le fournisseur n'est pas confirmée"
            )
        )
    response = render(request, "socle/logged_out.html", {"provider_logout": None})
    response.delete_cookie(LOGOUT_COOKIE, httponly=True, secure=True, samesite="lax")
    return response
