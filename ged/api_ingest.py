"""Resumable uploads over HTTP, after the tus 1.0 core protocol.

``POST /ged/uploads`` (JSON: name, size, metadata, optional sha256) opens an upload; ``PATCH`` sends a piece
with ``Upload-Offset`` (``Content-Type: application/offset+octet-stream``); ``HEAD`` (or ``GET``) tells the
offset after an interruption; ``POST …/finish`` makes the document; ``DELETE`` abandons it. A wrong offset
is a 409 that gives the right one; an expired upload a 410.
"""

from __future__ import annotations

import datetime as dt
import re
from email.utils import format_datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, field_validator
from starlette.requests import ClientDisconnect

from ged import ingest
from ged.models import UploadSession
from ged.schemas import DocumentOut, Metadata
from socle.auth import Principal
from socle.db import new_session
from socle.errors import InvalidInput, UnsupportedMediaType
from socle.web import JSON_BODY_LIMIT, PrincipalDep, SessionDep

router = APIRouter(prefix="/uploads", tags=["envois"])
TUS_VERSION = "1.0.0"
PIECE_TYPE = "application/offset+octet-stream"
_TOKEN = r"[A-Za-z0-9!#$&^_.+-]+"
# type/subtype, then parameters (RFC 9110): what every later check and the download's header can read.
_MEDIA_TYPE = re.compile(rf'{_TOKEN}/{_TOKEN}(?: *; *{_TOKEN}=(?:{_TOKEN}|"[^"\x00-\x1f\x7f-\x9f]*"))*')


class UploadIn(BaseModel):
    filename: str = Field(min_length=1, max_length=255, description="Nom du fichier (sans chemin)")
    size: int = Field(ge=0, description="Taille totale annoncée, en octets")
    media_type: str | None = Field(None, max_length=200, description="Type déclaré ; vérifié sur le contenu")
    sha256: str | None = Field(None, description="Empreinte SHA-256 attendue, vérifiée à la fin")
    metadata: dict[str, Any] = Field(description="Métadonnées du document (title, type, folder_id, field_values…)")

    # Checked at opening, as the whole metadata is (ingest.create_upload): never after every byte was sent.
    @field_validator("media_type")
    @classmethod
    def _media_type(cls, value: str | None) -> str | None:
        if value is not None and not _MEDIA_TYPE.fullmatch(value):
            raise ValueError("type de fichier invalide : type/sous-type attendu, ex. application/pdf")
        return value

    @field_validator("metadata")
    @classmethod
    def _known_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(repr(key) for key in set(value) - set(Metadata.model_fields))
        if unknown:
            raise ValueError(f"métadonnée(s) inconnue(s) : {', '.join(unknown)}")
        return value


class UploadOut(BaseModel):
    id: str
    filename: str
    size: int
    offset: int = Field(description="Octets reçus : le prochain morceau commence là")
    status: str = Field(description="open, complete, expired, cancelled")
    expires_at: dt.datetime
    document_id: str | None
    max_piece_size: int = Field(description="Taille maximale d'un morceau (une requête PATCH)")

    @classmethod
    def of(cls, upload: UploadSession) -> UploadOut:
        return cls(
            id=upload.id,
            filename=upload.filename,
            size=upload.size,
            offset=upload.received,
            status=upload.status,
            expires_at=upload.expires_at,
            document_id=upload.document_id,
            max_piece_size=JSON_BODY_LIMIT,
        )


def _headers(upload: UploadSession) -> dict[str, str]:
    expires = upload.expires_at if upload.expires_at.tzinfo else upload.expires_at.replace(tzinfo=dt.UTC)
    return {
        "Tus-Resumable": TUS_VERSION,
        "Upload-Offset": str(upload.received),
        "Upload-Length": str(upload.size),
        "Upload-Expires": format_datetime(expires, usegmt=True),
        "Cache-Control": "no-store",
    }


@router.post("", status_code=201, response_model=UploadOut, summary="Ouvrir un envoi reprenable")
def create_upload(
    principal: PrincipalDep, session: SessionDep, body: UploadIn, request: Request, response: Response
) -> UploadOut:
    upload = ingest.create_upload(
        session,
        principal,
        filename=body.filename,
        size=body.size,
        metadata=body.metadata,
        media_type=body.media_type,
        sha256=body.sha256,
    )
    response.headers.update(_headers(upload))
    # Under the prefixes in front of the GED's routes: /ged (mounted, or `socle serve ged --root-path /ged` behind
    # a proxy), none when `socle serve ged` is reached directly.
    response.headers["Location"] = f"{request.scope.get('root_path', '')}/uploads/{upload.id}"
    return UploadOut.of(upload)


@router.head("/{upload_id}", status_code=200, summary="Position d'un envoi (tus)")
def upload_offset(principal: PrincipalDep, session: SessionDep, upload_id: str) -> Response:
    upload = ingest.get_upload(session, principal, upload_id)
    return Response(status_code=200, headers=_headers(upload))


@router.get("/{upload_id}", response_model=UploadOut, summary="État d'un envoi")
def get_upload(principal: PrincipalDep, session: SessionDep, upload_id: str, response: Response) -> UploadOut:
    upload = ingest.get_upload(session, principal, upload_id)
    response.headers.update(_headers(upload))
    return UploadOut.of(upload)


def _offset(value: str | None) -> int:
    # ASCII digits, 19 at most: isdigit() takes « ² », which int() refuses, as it refuses 4,300 digits (a 500).
    if value is None or not re.fullmatch(r"[0-9]{1,19}", value):
        raise InvalidInput("en-tête Upload-Offset manquant ou invalide (entier positif ou nul attendu)")
    return int(value)


@router.patch("/{upload_id}", status_code=204, summary="Envoyer un morceau à sa position")
async def send_piece(
    request: Request,
    principal: PrincipalDep,
    upload_id: str,
    upload_offset: Annotated[str | None, Header()] = None,
    content_type: Annotated[str | None, Header()] = None,
) -> Response:
    if (content_type or "").split(";", 1)[0].strip().lower() != PIECE_TYPE:
        raise UnsupportedMediaType(f"un morceau s'envoie en {PIECE_TYPE}")
    writer = ingest.PieceWriter(upload_id, _offset(upload_offset))
    await run_in_threadpool(_in_session, writer.begin, principal)
    try:
        async for chunk in request.stream():
            if chunk:
                writer.write(chunk)  # small local write: PayloadTooLarge past the announced size, file cut back
    except ClientDisconnect:
        pass  # tus: keep what arrived, the client asks HEAD for the offset and resumes there
    except BaseException:
        writer.abort()
        raise
    upload = await run_in_threadpool(_in_session, writer.end, principal)
    return Response(status_code=204, headers=_headers(upload))


def _in_session(step: Any, principal: Principal) -> Any:
    session = new_session()
    try:
        return step(session, principal)
    finally:
        session.close()


@router.post(
    "/{upload_id}/finish", status_code=201, response_model=DocumentOut, summary="Terminer l'envoi : créer le document"
)
def finish_upload(principal: PrincipalDep, session: SessionDep, upload_id: str) -> DocumentOut:
    return DocumentOut.of(ingest.finish_upload(session, principal, upload_id))


@router.delete("/{upload_id}", status_code=204, summary="Abandonner un envoi")
def cancel_upload(principal: PrincipalDep, session: SessionDep, upload_id: str) -> Response:
    ingest.cancel_upload(session, principal, upload_id)
    return Response(status_code=204, headers={"Tus-Resumable": TUS_VERSION})
