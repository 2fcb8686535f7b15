"""Parapheur HTTP API, agents' signing identities and the tenant's seals (cachets serveur): import a PKCS#12,
list, remove. Administrators only.

The passphrase comes as a form field and goes straight to :mod:`parapheur.identities`, which keeps it
encrypted: it is never in an answer (not even an error's), a log line or an audit entry. The listing shows the
certificate only (subject, issuer, validity), never the file or a secret.
"""

from __future__ import annotations

from typing import Annotated, Literal, Protocol

from fastapi import APIRouter, File, Form, Response, UploadFile
from pydantic import SecretStr
from sqlalchemy.orm import Session

from parapheur import identities
from parapheur.models import SigningIdentity
from parapheur.schemas import IdentityOut
from socle.auth import Principal, Role
from socle.errors import Forbidden, InvalidInput, NotFound
from socle.models import Tenant
from socle.web import PrincipalDep, SessionDep

router = APIRouter(prefix="/identities", tags=["identités de signature"])
_PKCS12_MAX = 1024 * 1024
_IMAGE_MAX = 1024 * 1024

_Pkcs12 = Annotated[UploadFile, File(description="Le fichier PKCS#12 (.p12, .pfx) : certificat et clé privée")]
_Passphrase = Annotated[
    SecretStr, Form(description="Phrase de passe du fichier PKCS#12 ; jamais renvoyée, journalisée ni auditée")
]
_Image = Annotated[UploadFile | None, File(description="Image PNG ou JPEG dessinée dans le tampon (facultative)")]


def _require_admin(principal: Principal) -> None:
    if Role.ADMIN not in principal.roles:
        raise Forbidden("la gestion des identités de signature est réservée aux administrateurs")


def _read(upload: UploadFile, limit: int, what: str) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(f"{what} trop gros ({limit // 1024} Ko au plus)")
    if not data:
        raise InvalidInput(f"{what} vide")
    return data


def _tenant(session: Session, principal: Principal) -> Tenant:
    tenant = session.get(Tenant, principal.tenant_id)
    if tenant is None:
        raise NotFound("collectivité introuvable")
    return tenant


class _Importer(Protocol):
    """:func:`identities.import_identity` or :func:`identities.import_seal_pkcs12`: same arguments, same result."""

    def __call__(
        self,
        session: Session,
        tenant: Tenant,
        name: str,
        pkcs12: bytes,
        passphrase: bytes,
        /,
        *,
        stamp_image: bytes | None = None,
        actor: str = "system",
    ) -> SigningIdentity: ...


def _import_pkcs12(
    principal: Principal,
    session: Session,
    importer: _Importer,
    name: str,
    file: UploadFile,
    passphrase: SecretStr,
    stamp_image: UploadFile | None,
) -> IdentityOut:
    """Read the uploaded PKCS#12 (and stamp image), keep it under ``name`` with ``importer``, commit."""
    _require_admin(principal)
    pkcs12 = _read(file, _PKCS12_MAX, "fichier PKCS#12")
    image = _read(stamp_image, _IMAGE_MAX, "image du tampon") if stamp_image is not None else None
    row = importer(
        session,
        _tenant(session, principal),
        name,
        pkcs12,
        passphrase.get_secret_value().encode(),
        stamp_image=image,
        actor=principal.actor,
    )
    session.commit()
    return IdentityOut.of(row)


@router.get("", response_model=list[IdentityOut], summary="Lister les identités de signature (administrateur)")
def list_identities(
    principal: PrincipalDep, session: SessionDep, purpose: Literal["user", "seal"] | None = None
) -> list[IdentityOut]:
    _require_admin(principal)
    return [IdentityOut.of(row) for row in identities.list_rows(session, principal.tenant_id, purpose)]


@router.post(
    "/users/{username}",
    status_code=201,
    response_model=IdentityOut,
    summary="Importer (ou remplacer) l'identité PKCS#12 d'un agent (administrateur)",
)
def import_user_identity(
    principal: PrincipalDep,
    session: SessionDep,
    username: str,
    file: _Pkcs12,
    passphrase: _Passphrase,
    stamp_image: _Image = None,
) -> IdentityOut:
    return _import_pkcs12(principal, session, identities.import_identity, username, file, passphrase, stamp_image)


@router.delete("/users/{username}", status_code=204, summary="Retirer l'identité d'un agent (administrateur)")
def remove_user_identity(principal: PrincipalDep, session: SessionDep, username: str) -> Response:
    _require_admin(principal)
    identities.remove_user_identity(session, principal.tenant_id, username, actor=principal.actor)
    session.commit()
    return Response(status_code=204)


@router.post(
    "/seals",
    status_code=201,
    response_model=IdentityOut,
    summary="Importer (ou remplacer) un cachet serveur PKCS#12 de la collectivité (administrateur)",
)
def import_seal(
    principal: PrincipalDep,
    session: SessionDep,
    label: Annotated[str, Form(min_length=1, max_length=200, description="Nom du cachet (le même nom le remplace)")],
    file: _Pkcs12,
    passphrase: _Passphrase,
    stamp_image: _Image = None,
) -> IdentityOut:
    return _import_pkcs12(principal, session, identities.import_seal_pkcs12, label, file, passphrase, stamp_image)


@router.delete("/seals/{identity_id}", status_code=204, summary="Retirer un cachet inutilisé (administrateur)")
def remove_seal(principal: PrincipalDep, session: SessionDep, identity_id: str) -> Response:
    _require_admin(principal)
    identities.remove_seal(session, principal.tenant_id, identity_id, actor=principal.actor)
    session.commit()
    return Response(status_code=204)
