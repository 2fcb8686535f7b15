"""GED use cases. Each takes a session and commits once; the API and the jobs only translate around them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from ged.models import Document, Version
from ged.schemas import Metadata, MetadataPatch
from socle import audit, messages
from socle.auth import Principal
from socle.db import utcnow
from socle.errors import InvalidInput, NotFound
from socle.files import display_name
from socle.queue import enqueue
from socle.settings import get_settings
from socle.storage import StoredObject, get_store

PDF = "application/pdf"


_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$")
OCTET_STREAM = "application/octet-stream"


def sniff_media_type(head: bytes, declared: str | None) -> str:
    """Trust the bytes over the client's label for the types the kit acts on; keep other labels if sane."""
    if head.startswith(b"%PDF-"):
        return PDF
    label = (declared or "").split(";", 1)[0].strip().lower()
    if label == PDF or not _MEDIA_TYPE.match(label):
        return OCTET_STREAM  # claims to be a PDF but is not, or is no media type at all
    return label


def store_upload(stream: BinaryIO) -> StoredObject:
    return get_store().put(stream, max_size=get_settings().max_upload_bytes, check=_refuse_empty)


def _refuse_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise InvalidInput("le fichier est vide")


def create_document(
    session: Session, principal: Principal, stored: StoredObject, filename: str, media_type: str, metadata: Metadata
) -> Document:
    document = Document(tenant_id=principal.tenant_id, created_by=principal.username, current_version=1)
    document.versions.append(
        Version(
            number=1,
            object_key=stored.key,
            size=stored.size,
            media_type=media_type,
            filename=display_name(filename),
            title=metadata.title,
            document_type=metadata.document_type,
            document_date=metadata.date,
            tags=metadata.tags,
            author=principal.username,
        )
    )
    session.add(document)
    session.flush()
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="ged.document.created",
        object_type="document",
        object_id=document.id,
        details={"title": metadata.title, "sha256": stored.key, "size": stored.size},
    )
    session.commit()
    return document


def update_metadata(session: Session, principal: Principal, document_id: str, patch: MetadataPatch) -> Document:
    document = get_document(session, principal.tenant_id, document_id, for_update=True)
    changes = patch.model_dump(exclude_unset=True, exclude={"comment"})
    if not changes:
        raise InvalidInput("aucune modification demandée")
    current = document.current
    _add_version(
        session,
        document,
        principal.tenant_id,
        principal.actor,
        principal.username,
        object_key=current.object_key,
        size=current.size,
        media_type=current.media_type,
        filename=current.filename,
        title=changes.get("title", current.title),
        document_type=changes.get("document_type", current.document_type),
        document_date=changes.get("date", current.document_date),
        tags=changes.get("tags", current.tags),
        comment=patch.comment,
    )
    session.commit()
    return document


def add_content_version(
    session: Session, principal: Principal, document_id: str, stored: StoredObject, filename: str, media_type: str
) -> Document:
    document = get_document(session, principal.tenant_id, document_id, for_update=True)
    current = document.current
    _add_version(
        session,
        document,
        principal.tenant_id,
        principal.actor,
        principal.username,
        object_key=stored.key,
        size=stored.size,
        media_type=media_type,
        filename=display_name(filename),
        title=current.title,
        document_type=current.document_type,
        document_date=current.document_date,
        tags=current.tags,
    )
    session.commit()
    return document


def record_signed_version(
    session: Session,
    tenant_id: str,
    document_id: str,
    folder_id: str,
    object_key: str,
    size: int,
    filename: str,
    signatories: list[str],
) -> Version:
    """Store a signed PDF from the parapheur as a new version, once, however often the job runs."""
    origin = f"parapheur:{folder_id}"
    document = get_document(session, tenant_id, document_id, for_update=True)
    done = next((version for version in document.versions if version.origin == origin), None)
    if done is not None:
        return done
    if not get_store().exists(object_key):
        raise NotFound(f"PDF signé {object_key} introuvable dans le stockage")
    current = document.current
    version = _add_version(
        session,
        document,
        tenant_id,
        "service:parapheur",
        "parapheur",
        object_key=object_key,
        size=size,
        media_type=PDF,
        filename=display_name(filename),
        title=current.title,
        document_type=current.document_type,
        document_date=current.document_date,
        tags=current.tags,
        origin=origin,
        comment="Signé par " + ", ".join(signatories),
    )
    session.commit()
    return version


def _add_version(
    session: Session,
    document: Document,
    tenant_id: str,
    actor: str,
    author: str,
    *,
    object_key: str,
    size: int,
    media_type: str,
    filename: str,
    title: str,
    document_type: str,
    document_date: object,
    tags: list[str],
    origin: str | None = None,
    comment: str | None = None,
) -> Version:
    version = Version(
        number=document.current_version + 1,
        object_key=object_key,
        size=size,
        media_type=media_type,
        filename=filename,
        title=title,
        document_type=document_type,
        document_date=document_date,
        tags=tags,
        author=author,
        origin=origin,
        comment=comment,
    )
    document.versions.append(version)
    document.current_version = version.number
    document.updated_at = utcnow()
    session.flush()
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="ged.version.created",
        object_type="document",
        object_id=document.id,
        details={"version": version.number, "sha256": object_key, "origin": origin},
    )
    return version


def get_document(session: Session, tenant_id: str, document_id: str, *, for_update: bool = False) -> Document:
    query = (
        select(Document)
        .where(Document.id == document_id, Document.tenant_id == tenant_id)
        .options(selectinload(Document.versions))
    )
    if for_update:
        query = query.with_for_update(of=Document)
    document = session.execute(query).scalar_one_or_none()
    if document is None:
        raise NotFound(f"document {document_id} introuvable")
    return document


def get_version(document: Document, number: int) -> Version:
    version = next((version for version in document.versions if version.number == number), None)
    if version is None:
        raise NotFound(f"version {number} du document {document.id} introuvable")
    return version


def list_documents(
    session: Session, tenant_id: str, *, document_type: str | None, limit: int, offset: int
) -> tuple[list[Document], int]:
    current = (Version.document_id == Document.id) & (Version.number == Document.current_version)
    query = select(Document).join(Version, current).where(Document.tenant_id == tenant_id)
    if document_type:
        query = query.where(Version.document_type == document_type)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    documents = session.execute(
        query.options(selectinload(Document.versions))
        .order_by(Document.updated_at.desc(), Document.id)
        .limit(limit)
        .offset(offset)
    ).scalars()
    return list(documents), total


def request_delivery(session: Session, principal: Principal, document_id: str, connector: str) -> Version:
    """Send the current version through one of the tenant's interop connectors (dépôt…); at most once."""
    version = get_document(session, principal.tenant_id, document_id).current
    enqueue(
        session,
        messages.INTEROP_DELIVER,
        key=f"interop.deliver:ged:{document_id}:{version.number}:{connector}",
        tenant_id=principal.tenant_id,
        connector=connector,
        object_key=version.object_key,
        size=version.size,
        filename=version.filename,
        idempotency_key=f"ged:{document_id}:{version.number}",
        reply=None,  # the delivery and its receipt are followed in the interop service (/interop/deliveries)
    )
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="ged.document.delivery_requested",
        object_type="document",
        object_id=document_id,
        details={"connector": connector, "version": version.number},
    )
    session.commit()
    return version
