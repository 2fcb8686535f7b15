"""GED HTTP API for renditions: state of a version's renditions, its extracted text, preview, thumbnail and
PDF/A-2b copy. Every route checks the read right on the document (ged.access, through service.read_document)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from ged import renditions, service
from ged.models import Version
from socle.auth import Principal
from socle.errors import NotFound
from socle.web import PrincipalDep, SessionDep, file_responses, object_response

router = APIRouter(prefix="/documents", tags=["rendus"])

VersionQuery = Annotated[int | None, Query(ge=1, le=1_000_000, description="Numéro de version (défaut : courante)")]

_TEXT_MESSAGES = {
    renditions.PENDING: "extraction du texte en cours",
    renditions.DONE: "texte extrait",
    renditions.OCR_UNAVAILABLE: "document sans couche texte : la reconnaissance de caractères (OCRmyPDF) n'est pas "
    "installée sur ce serveur",
    renditions.FAILED: "le texte n'a pas pu être extrait",
    renditions.NONE: "pas d'extraction de texte pour ce type de fichier",
}


class RenditionsOut(BaseModel):
    document_id: str
    version: int
    text_status: str = Field(description="pending, done, ocr_unavailable, failed ou none")
    text_message: str = Field(description="L'état du texte, en clair")
    text_reason: str | None = Field(None, description="Pourquoi l'extraction a échoué")
    text: bool = Field(description="Texte extrait disponible (…/text)")
    preview: bool = Field(description="Aperçu de la première page disponible (…/preview)")
    thumbnail: bool = Field(description="Vignette disponible (…/thumbnail)")
    pdfa: bool = Field(description="Copie PDF/A-2b disponible (…/pdfa)")
    preview_reason: str | None = Field(None, description="Pourquoi l'aperçu n'a pas pu être fait (sinon en cours)")
    pdfa_reason: str | None = Field(None, description="Pourquoi la copie PDF/A n'a pas été faite (sinon en cours)")


def _version(session: Session, principal: Principal, document_id: str, number: int | None) -> Version:
    document = service.read_document(session, principal, document_id)  # only a reader learns it is in the trash
    version = document.current if number is None else service.get_version(document, number)
    return service.readable_content(document, version)  # eliminated: 410, its renditions went with its content


@router.get("/{document_id}/renditions", response_model=RenditionsOut, summary="État des rendus d'une version")
def get_renditions(
    principal: PrincipalDep, session: SessionDep, document_id: str, version: VersionQuery = None
) -> RenditionsOut:
    target = _version(session, principal, document_id, version)
    reasons: dict[str, str] = {}
    if target.text_status == renditions.FAILED or target.preview_key is None or target.pdfa_key is None:
        reasons = renditions.failure_reasons(session, principal.tenant_id, document_id, target.number)
    return RenditionsOut(
        document_id=document_id,
        version=target.number,
        text_status=target.text_status,
        text_message=_TEXT_MESSAGES.get(target.text_status, target.text_status),
        text_reason=reasons.get(renditions.TEXT) if target.text_status == renditions.FAILED else None,
        text=target.text_key is not None,
        preview=target.preview_key is not None,
        thumbnail=target.thumbnail_key is not None,
        pdfa=target.pdfa_key is not None,
        # A reason only while the rendition is missing: one made since (a retried job) is no failure any more.
        preview_reason=reasons.get(renditions.PREVIEW) if target.preview_key is None else None,
        pdfa_reason=reasons.get(renditions.PDFA) if target.pdfa_key is None else None,
    )


def _stem(filename: str) -> str:
    return filename.rsplit(".", 1)[0] if "." in filename else filename


def _missing(what: str, target: Version) -> NotFound:
    kind = renditions.media_kind(target.media_type)
    if kind is None or (kind != "pdf" and what == "la copie PDF/A"):
        return NotFound(f"{what} n'existe pas pour ce type de fichier ({target.media_type})")
    return NotFound(f"{what} de la version {target.number} n'est pas (encore) disponible")


@router.get(
    "/{document_id}/text",
    summary="Texte extrait (UTF-8)",
    response_class=Response,
    responses=file_responses("text/plain; charset=utf-8", description="Le texte extrait de la version, en UTF-8"),
)
def get_text(principal: PrincipalDep, session: SessionDep, document_id: str, version: VersionQuery = None) -> Response:
    target = _version(session, principal, document_id, version)
    if target.text_key is None:
        if target.text_status in (renditions.FAILED, renditions.OCR_UNAVAILABLE, renditions.NONE):
            raise NotFound(f"pas de texte : {_TEXT_MESSAGES[target.text_status]}")
        raise _missing("le texte", target)
    return object_response(target.text_key, f"{_stem(target.filename)}.txt", "text/plain; charset=utf-8")


@router.get(
    "/{document_id}/preview",
    summary="Aperçu de la première page (PNG)",
    response_class=Response,
    responses=file_responses("image/png", description="L'aperçu de la première page, en PNG"),
)
def get_preview(
    principal: PrincipalDep, session: SessionDep, document_id: str, version: VersionQuery = None
) -> Response:
    target = _version(session, principal, document_id, version)
    if target.preview_key is None:
        raise _missing("l'aperçu", target)
    return object_response(target.preview_key, f"{_stem(target.filename)}-apercu.png", "image/png")


@router.get(
    "/{document_id}/thumbnail",
    summary="Vignette de la première page (PNG)",
    response_class=Response,
    responses=file_responses("image/png", description="La vignette de la première page, en PNG"),
)
def get_thumbnail(
    principal: PrincipalDep, session: SessionDep, document_id: str, version: VersionQuery = None
) -> Response:
    target = _version(session, principal, document_id, version)
    if target.thumbnail_key is None:
        raise _missing("la vignette", target)
    return object_response(target.thumbnail_key, f"{_stem(target.filename)}-vignette.png", "image/png")


@router.get(
    "/{document_id}/pdfa",
    summary="Copie PDF/A-2b",
    response_class=Response,
    responses=file_responses("application/pdf", description="La copie PDF/A-2b de la version"),
)
def get_pdfa(principal: PrincipalDep, session: SessionDep, document_id: str, version: VersionQuery = None) -> Response:
    target = _version(session, principal, document_id, version)
    if target.pdfa_key is None:
        raise _missing("la copie PDF/A", target)
    return object_response(target.pdfa_key, f"{_stem(target.filename)}-pdfa.pdf", "application/pdf")
