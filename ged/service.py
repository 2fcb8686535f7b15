"""GED use cases. Each takes a session and commits once; the API and the jobs only translate around them.

Every write checks the user's rights (ged.access), refuses a held, eliminated, archived, in-transfer or
checked-out-by-another document, keeps typed metadata valid (ged.types), recomputes the DUA, is audited, and
re-indexes the document (ged.indexing); a new content also schedules its renditions (ged.renditions).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import String, cast, func, select
from sqlalchemy.orm import Session, selectinload

from ged import access, holds, indexing, journal, renditions, types
from ged.models import Document, DocumentType, Version
from ged.schemas import Metadata, MetadataPatch
from socle import messages
from socle.auth import Principal
from socle.db import utcnow
from socle.errors import Conflict, InvalidInput, NotFound, SocleError, message
from socle.files import display_name
from socle.queue import enqueue
from socle.settings import get_settings
from socle.storage import StoredObject, get_store
from socle.storage.ownership import record_held, record_held_unchecked

PDF = "application/pdf"
ELIMINATED, ARCHIVED, TRANSFERRED = "eliminated", "archived", "transferred"

_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$")
OCTET_STREAM = "application/octet-stream"


class Gone(SocleError):
    """The content was eliminated: the document's record stays (tombstone), its bytes do not."""

    status = 410
    title = "Contenu éliminé"
    slug = "gone"


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
        raise InvalidInput(message("le fichier est vide"))


# ---------------------------------------------------------------------------------------------------------
# Checks shared by the writes


def check_can_create(session: Session, principal: Principal, metadata: Metadata) -> DocumentType | None:
    """Check, before any byte is stored, that the user may file such a document there, with these values;
    its type if any.

    :raises NotFound: unknown folder; InvalidInput: unknown type code, a wrong field value (naming the
        field); Forbidden: no right « write ».
    """
    access.require_folder(session, principal, metadata.folder_id, "write")
    document_type = types.by_code(session, principal.tenant_id, metadata.type) if metadata.type else None
    access.require_type(session, principal, document_type.id if document_type else None, "write")
    types.validate_values(session, principal, document_type, metadata.field_values)
    return document_type


def check_writable(
    session: Session, principal: Principal, document: Document, right: str = "write", *, filing: bool = False
) -> None:
    """The user may change this document now: right, not eliminated, not archived nor in a transfer in progress,
    not held, not checked out by another.

    An archived document (accepted by the SAE) is frozen like a held one: its GED copy is the SAE's record, so a
    new version, new metadata or the trash would make it diverge from the archive (its elimination, approved by
    an archivist, stays possible: ged.retention). So is a document in a transfer in progress (« transferred »,
    from the export that built its package until the transfer ends): the SAE would accept a package whose content
    is no longer the GED's current version. It is writable again when the transfer ends without being accepted
    (ged.jobs.transfer_ended), archived (and frozen for good) when accepted. ``filing`` (moving it in the plan,
    the GED's own arrangement and rights, not in the package) is allowed in both cases.

    :raises NotFound, Forbidden: rights; Conflict: eliminated, archived, in a transfer, held (naming the hold) or
        checked out.
    """
    access.require(session, principal, document, right)
    if document.disposal == ELIMINATED:
        raise Conflict(message("document éliminé : il ne peut plus être modifié"))
    if document.disposal in (ARCHIVED, TRANSFERRED) and not filing:
        raise Conflict(archived_detail(document))
    holds.check_not_held(session, document)
    if document.checked_out_by and document.checked_out_by != principal.username:
        raise Conflict(
            message(
                "document extrait (check-out) par %(document_checked_out_by)s : lui seul peut le modifier",
                document_checked_out_by=document.checked_out_by,
            )
        )


def archived_detail(document: Document) -> str:
    """Why an archived document, or one in a transfer in progress, cannot be changed (the 409's detail)."""
    if document.disposal == TRANSFERRED:
        return message(
            "document en cours de versement au système d'archivage (versement %(transfer_id)s) : sa copie dans la GED "
            "est figée jusqu'à la fin du versement, elle ne peut recevoir de version, de métadonnées ni être mise à "
            "la corbeille",
            transfer_id=document.archive_transfer_id or "?",
        )
    if document.sae_identifier:
        return message(
            "document archivé au système d'archivage (%(sae_identifier)s) : sa copie dans la GED est figée, elle ne "
            "peut plus recevoir de version, de métadonnées ni être mise à la corbeille",
            sae_identifier=document.sae_identifier,
        )
    return message(
        "document archivé au système d'archivage : sa copie dans la GED est figée, elle ne peut plus recevoir de "
        "version, de métadonnées ni être mise à la corbeille"
    )


def _after_write(session: Session, document: Document, new_content: Version | None = None) -> None:
    """What every write ends with, before the commit: DUA, search index, renditions of new content."""
    document_type = session.get(DocumentType, document.type_id) if document.type_id else None
    document.dua_ends_on = types.dua_ends_on(document, document_type)
    session.flush()
    indexing.index_document(session, document)
    if new_content is not None:
        renditions.schedule(session, document, new_content)


# ---------------------------------------------------------------------------------------------------------
# Documents and versions


def create_document(
    session: Session, principal: Principal, stored: StoredObject, filename: str, media_type: str, metadata: Metadata
) -> Document:
    """Create a document from stored bytes and its metadata (type, folder, typed fields checked).

    :raises InvalidInput: a field value (naming the field), an unknown type; NotFound: unknown folder;
        Forbidden: no right « write » on the folder or the type.
    """
    document_type = check_can_create(session, principal, metadata)
    values = types.validate_values(session, principal, document_type, metadata.field_values)
    document = Document(
        tenant_id=principal.tenant_id,
        created_by=principal.username,
        current_version=1,
        folder_id=metadata.folder_id,
        type_id=document_type.id if document_type else None,
        created_at=utcnow(),
    )
    version = Version(
        number=1,
        object_key=stored.key,
        size=stored.size,
        media_type=media_type,
        filename=display_name(filename),
        title=metadata.title,
        document_type=metadata.label,
        document_date=metadata.date,
        tags=metadata.tags,
        author=principal.username,
        field_values=values,
    )
    document.versions.append(version)
    session.add(document)
    session.flush()
    record_held(session, principal.tenant_id, stored.key, holder="ged")  # the tenant may hand it to a flow (interop)
    journal.record_document(
        session,
        principal.tenant_id,
        principal.actor,
        "ged.document.created",
        document.id,
        title=metadata.title,
        sha256=stored.key,
        size=stored.size,
        type=metadata.type,
        folder_id=metadata.folder_id,
    )
    _after_write(session, document, version)
    session.commit()
    return document


def update_metadata(session: Session, principal: Principal, document_id: str, patch: MetadataPatch) -> Document:
    """Change metadata: a new version with the same content; a folder change alone files the document.

    :raises InvalidInput: nothing to change, a field value; Conflict: held…; NotFound, Forbidden: rights.
    """
    document = read_document(session, principal, document_id, for_update=True)  # rights before the trash
    changes = patch.model_dump(exclude_unset=True, exclude={"comment"})
    # A folder change alone is a filing, allowed on an archived document as through PUT …/folder.
    check_writable(session, principal, document, filing=set(changes) == {"folder_id"})
    if not changes:
        raise InvalidInput(message("aucune modification demandée"))
    moved = "folder_id" in changes
    folder_id = changes.pop("folder_id", None)
    version = _new_metadata_version(session, principal, document, changes, patch.comment) if changes else None
    if moved:  # after the version: its holding row comes before the audit chain's head, as in an upload
        _refile(session, principal, document, folder_id)
    # The new version carries the same bytes: its renditions are those of the previous one (copied, no job).
    _after_write(session, document, version)
    session.commit()
    return document


def _new_metadata_version(
    session: Session, principal: Principal, document: Document, changes: dict[str, Any], comment: str | None
) -> Version:
    current = document.current
    document_type = session.get(DocumentType, document.type_id) if document.type_id else None
    previous_values = current.field_values
    if "type" in changes:
        code = changes.pop("type")
        new_type = types.by_code(session, principal.tenant_id, code) if code else None
        if (new_type.id if new_type else None) != document.type_id:
            access.require_type(session, principal, new_type.id if new_type else None, "write")
            document_type, previous_values = new_type, {}  # another schema: the old values stay in old versions
            document.type_id = new_type.id if new_type else None
            changes.setdefault("document_type", new_type.code if new_type else current.document_type)
    values = types.validate_values(
        session, principal, document_type, changes.get("field_values") or {}, previous_values
    )
    return _add_version(
        session,
        document,
        principal.tenant_id,
        principal.actor,
        principal.username,
        base=current,
        title=changes.get("title", current.title),
        document_type=changes.get("document_type", current.document_type),
        document_date=changes.get("date", current.document_date),
        tags=changes.get("tags", current.tags),
        field_values=values,
        comment=comment,
    )


def _refile(session: Session, principal: Principal, document: Document, folder_id: str | None) -> None:
    if folder_id == document.folder_id:
        return
    access.require_folder(session, principal, folder_id, "write")  # also: unknown or another tenant's → 404
    before, document.folder_id = document.folder_id, folder_id
    document.updated_at = utcnow()
    journal.record_document(
        session,
        principal.tenant_id,
        principal.actor,
        "ged.document.filed",
        document.id,
        folder_id=folder_id,
        previous=before,
    )


def file_document(session: Session, principal: Principal, document_id: str, folder_id: str | None) -> Document:
    """File a document in a folder of the plan (None: out of the plan), without a new version.

    :raises NotFound: unknown folder; Forbidden: no right « write » on the document or the target folder.
    """
    document = read_document(session, principal, document_id, for_update=True)  # rights before the trash
    check_writable(session, principal, document, filing=True)
    _refile(session, principal, document, folder_id)
    _after_write(session, document)
    session.commit()
    return document


def add_content_version(
    session: Session, principal: Principal, document_id: str, stored: StoredObject, filename: str, media_type: str
) -> Document:
    """A new content for the document (metadata carried over). :raises Conflict: held…; NotFound, Forbidden."""
    document = read_document(session, principal, document_id, for_update=True)  # rights before the trash
    check_writable(session, principal, document)
    version = _add_version(
        session,
        document,
        principal.tenant_id,
        principal.actor,
        principal.username,
        base=document.current,
        object_key=stored.key,
        size=stored.size,
        media_type=media_type,
        filename=display_name(filename),
    )
    _after_write(session, document, version)
    session.commit()
    return document


def signed_comment(signed_by: list[str] | None, signatories: list[str]) -> str | None:
    """A signed version's comment: « Signé par Dominique Dupont, Maire ; Camille Martin, Adjointe » (names and
    qualities, from the parapheur), or « Signé par maire, agent » from a message queued before it sent them."""
    text = " ; ".join(signed_by) if signed_by else ", ".join(signatories)
    return ("Signé par " + text)[:2000] if text else None


def record_signed_version(
    session: Session,
    tenant_id: str,
    document_id: str,
    folder_id: str,
    object_key: str,
    size: int,
    filename: str,
    signatories: list[str],
    signed_by: list[str] | None = None,
) -> Version:
    """Store a signed PDF from the parapheur as a new version, once, however often the job runs. Its comment
    names the signatories as the parapheur does (``signed_by``), else by their usernames (an older message).

    :raises Conflict: the document is held, eliminated, archived or in a transfer in progress meanwhile: its copy
        is frozen (see check_writable). The job fails, visible in ``socle jobs``; once a transfer has ended without
        being accepted (or a hold is released), ``socle jobs retry`` adds the version.
    """
    origin = f"parapheur:{folder_id}"
    document = get_document(session, tenant_id, document_id, for_update=True)
    done = next((version for version in document.versions if version.origin == origin), None)
    if done is not None:
        return done
    if document.disposal == ELIMINATED:
        raise Conflict(message("document éliminé : la version signée ne peut plus y être ajoutée"))
    if document.disposal == TRANSFERRED:
        raise Conflict(
            message(
                "document en cours de versement au système d'archivage (versement %(transfer_id)s) : la version signée "
                "ne pourra y être ajoutée que si le versement se termine sans être accepté (« socle jobs retry » la "
                "relance alors)",
                transfer_id=document.archive_transfer_id or "?",
            )
        )
    if document.disposal == ARCHIVED:
        raise Conflict(
            message(
                "document archivé au système d'archivage : sa copie dans la GED est figée, la version signée ne peut "
                "plus y être ajoutée"
            )
        )
    holds.check_not_held(session, document)
    if not get_store().exists(object_key):
        raise NotFound(message("PDF signé %(object_key)s introuvable dans le stockage", object_key=object_key))
    version = _add_version(
        session,
        document,
        tenant_id,
        "service:parapheur",
        "parapheur",
        base=document.current,
        object_key=object_key,
        size=size,
        media_type=PDF,
        filename=display_name(filename),
        origin=origin,
        comment=signed_comment(signed_by, signatories),
    )
    version.signatories = list(signatories)
    _after_write(session, document, version)
    session.commit()
    return version


_CARRIED = ("object_key", "size", "media_type", "filename", "title", "document_type", "document_date", "tags")


def _add_version(
    session: Session,
    document: Document,
    tenant_id: str,
    actor: str,
    author: str,
    *,
    base: Version,
    origin: str | None = None,
    comment: str | None = None,
    **overrides: Any,
) -> Version:
    """A new version: ``base``'s content and metadata with ``overrides``; field values carried over too."""
    values = {name: getattr(base, name) for name in _CARRIED}
    values["field_values"] = dict(base.field_values or {})
    values.update(overrides)
    version = Version(number=document.current_version + 1, author=author, origin=origin, comment=comment, **values)
    document.versions.append(version)
    document.current_version = version.number
    document.updated_at = utcnow()
    session.flush()
    _hold(session, tenant_id, version, base)
    journal.record_document(
        session,
        tenant_id,
        actor,
        "ged.version.created",
        document.id,
        version=version.number,
        sha256=version.object_key,
        origin=origin,
    )
    return version


def _hold(session: Session, tenant_id: str, version: Version, base: Version) -> None:
    """Record the GED's holding of the version's bytes (see socle.storage.ownership).

    New bytes are checked in the store under their object lock. The base's own bytes (a metadata change) are
    not: this transaction holds the document's row, whose current version refers to them, so no purge can take
    them meanwhile. Their lock would only make a metadata change wait for any upload of the same bytes (and, a
    move being audited first, it once came after the audit head and deadlocked with such an upload). Nor is the
    store asked: a metadata change works even when the bytes went missing from it (it answered 503).
    """
    if version.object_key == base.object_key:
        record_held_unchecked(session, tenant_id, version.object_key, holder="ged")
    else:
        record_held(session, tenant_id, version.object_key, holder="ged")


def get_document(
    session: Session, tenant_id: str, document_id: str, *, for_update: bool = False, trashed: bool = False
) -> Document:
    """A document of the tenant, its versions loaded; in the trash only with ``trashed``.

    :raises NotFound: unknown, another tenant's, or in the trash.
    """
    query = (
        select(Document)
        .where(Document.id == document_id, Document.tenant_id == tenant_id)
        .options(selectinload(Document.versions))
    )
    if for_update:
        query = query.with_for_update(of=Document)
    document = session.execute(query).scalar_one_or_none()
    if document is None:
        raise NotFound(message("document %(document_id)s introuvable", document_id=document_id))
    if document.deleted_at is not None and not trashed:
        raise _in_trash(document_id)
    return document


def _in_trash(document_id: str) -> NotFound:
    return NotFound(message("document %(document_id)s introuvable (il est dans la corbeille)", document_id=document_id))


def read_document(
    session: Session, principal: Principal, document_id: str, right: str = "read", *, for_update: bool = False
) -> Document:
    """A document the user may read (or has ``right`` on). :raises NotFound, Forbidden."""
    document = get_document(session, principal.tenant_id, document_id, trashed=True, for_update=for_update)
    access.require(session, principal, document, right)  # first: only a reader may learn it is in the trash
    if document.deleted_at is not None:
        raise _in_trash(document_id)
    return document


def readable_content(document: Document, version: Version) -> Version:
    """:raises Gone: the content was eliminated (the record stays)."""
    if document.disposal == ELIMINATED:
        raise Gone(
            message(
                "contenu du document %(document_id)s éliminé le %(document)s ; seule sa notice reste",
                document_id=document.id,
                document=_day(document),
            )
        )
    return version


def _day(document: Document) -> str:
    return document.disposal_at.date().isoformat() if document.disposal_at else "?"


def get_version(document: Document, number: int) -> Version:
    version = next((version for version in document.versions if version.number == number), None)
    if version is None:
        raise NotFound(
            message(
                "version %(number)s du document %(document_id)s introuvable", number=number, document_id=document.id
            )
        )
    return version


def _current_version_join() -> Any:
    return (Version.document_id == Document.id) & (Version.number == Document.current_version)


def list_documents(
    session: Session,
    principal: Principal,
    *,
    document_type: str | None = None,
    type_code: str | None = None,
    folder_id: str | None = None,
    tag: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Document], int]:
    """The live documents the user may read (not in the trash, not eliminated), newest change first."""
    query = (
        select(Document)
        .join(Version, _current_version_join())
        .where(access.readable(session, principal), Document.deleted_at.is_(None))
        .where((Document.disposal.is_(None)) | (Document.disposal != ELIMINATED))
    )
    if document_type:
        query = query.where(Version.document_type == document_type)
    if type_code:
        found = types.find_by_code(session, principal.tenant_id, type_code)
        if found is None:  # as search answers: an unknown code is a mistake, not « the untyped documents »
            raise InvalidInput(message("type de document inconnu : « %(code)s »", code=type_code))
        query = query.where(Document.type_id == found.id)
    if folder_id:
        access.require_folder(session, principal, folder_id, "read")
        query = query.where(Document.folder_id == folder_id)
    if tag:
        query = query.where(cast(Version.tags, String).like(f"%{_like(json.dumps(tag))}%", escape="\\"))
    return _page(session, query, limit, offset)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _page(session: Session, query: Any, limit: int, offset: int) -> tuple[list[Document], int]:
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
    document = read_document(session, principal, document_id)
    version = readable_content(document, document.current)
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
    journal.record_document(
        session,
        principal.tenant_id,
        principal.actor,
        "ged.document.delivery_requested",
        document_id,
        connector=connector,
        version=version.number,
    )
    session.commit()
    return version


# ---------------------------------------------------------------------------------------------------------
# Trash


def trash_days() -> int:
    return get_settings().ged_trash_days


def trash_document(session: Session, principal: Principal, document_id: str) -> Document:
    """Put a document in the trash (restorable for ``ged_trash_days``).

    :raises Conflict: held (naming the hold) or eliminated; NotFound, Forbidden: rights.
    """
    document = read_document(session, principal, document_id, for_update=True)  # rights before the trash
    check_writable(session, principal, document, "delete")
    document.deleted_at, document.deleted_by = utcnow(), principal.username
    journal.record_document(
        session, principal.tenant_id, principal.actor, "ged.document.trashed", document.id, title=document.current.title
    )
    _after_write(session, document)
    session.commit()
    return document


def restore_document(session: Session, principal: Principal, document_id: str) -> Document:
    """Take a document out of the trash, within the window.

    :raises Conflict: not in the trash, or the window has closed.
    """
    document = get_document(session, principal.tenant_id, document_id, for_update=True, trashed=True)
    access.require(session, principal, document, "delete")
    if document.deleted_at is None:
        raise Conflict(message("le document n'est pas dans la corbeille"))
    limit = document.deleted_at + timedelta(days=trash_days())
    if utcnow() > limit:
        raise Conflict(
            message(
                "délai de restauration dépassé : %(trash_days)s jours après la suppression", trash_days=trash_days()
            )
        )
    document.deleted_at, document.deleted_by = None, None
    document.updated_at = utcnow()
    journal.record_document(session, principal.tenant_id, principal.actor, "ged.document.restored", document.id)
    _after_write(session, document)
    session.commit()
    return document


def list_trash(session: Session, principal: Principal, *, limit: int, offset: int) -> tuple[list[Document], int]:
    """The documents in the trash the user may read."""
    query = select(Document).where(access.readable(session, principal), Document.deleted_at.is_not(None))
    return _page(session, query, limit, offset)
