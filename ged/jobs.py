"""GED jobs: the messages other services send to the GED (see socle.messages and docs/jobs.md)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from ged import access, service
from socle import messages
from socle.auth import Principal
from socle.db import transaction
from socle.errors import Conflict, Forbidden, NotFound, SocleError, message
from socle.queue import enqueue

if TYPE_CHECKING:  # typing only: the models stay imported lazily, by the jobs that use them
    from sqlalchemy.orm import Session


def send_to_parapheur(*, tenant_id: str, document_id: str, folder_id: str, username: str) -> None:
    """The parapheur asks, for the user creating a folder, for a document's current version: sent only if that
    user may read it, and if the GED could take its signed version back (not archived, nor in a transfer in
    progress: frozen, service.check_writable); otherwise the answer is the one for a missing document, with why."""
    # One reply per folder, whichever it is: the key makes a second run send nothing more.
    key = f"parapheur.attach:{folder_id}"
    with transaction() as session:
        try:
            document = service.read_document(session, _requester(session, tenant_id, username), document_id)
            version = service.readable_content(document, document.current)
            if document.disposal in (service.ARCHIVED, service.TRANSFERRED):  # the signed version would be refused
                raise Conflict(service.archived_detail(document))
        except SocleError as exc:
            enqueue(
                session,
                messages.PARAPHEUR_DOCUMENT_UNAVAILABLE,
                key=key,
                tenant_id=tenant_id,
                folder_id=folder_id,
                reason=exc.detail,
            )
            return
        enqueue(
            session,
            messages.PARAPHEUR_ATTACH_DOCUMENT,
            key=key,
            tenant_id=tenant_id,
            folder_id=folder_id,
            document_id=document_id,
            version=version.number,
            object_key=version.object_key,
            size=version.size,
            filename=version.filename,
            media_type=version.media_type,
        )


def store_signed_version(
    *,
    tenant_id: str,
    document_id: str,
    folder_id: str,
    object_key: str,
    size: int,
    filename: str,
    signatories: list[str],
    signed_by: list[str] | None,
) -> None:
    """``signed_by``: the signatories' names and qualities (« Dominique Dupont, Maire »), for the version's
    comment; None in a message queued before it was sent (socle.queue gives null), the usernames then."""
    with transaction() as session:
        service.record_signed_version(
            session, tenant_id, document_id, folder_id, object_key, size, filename, signatories, signed_by
        )


def export_for_archive(*, tenant_id: str, transfer_id: str, document_ids: list[str], username: str | None) -> None:
    """The archive service asks, for the archivist who requested the transfer, for given documents: answer with
    their export (and mark them transferred), or why it cannot be."""
    with transaction() as session:
        if _answered(session, transfer_id):
            return  # a second run: the first one's answer stands (and marked what it sent)
        try:
            requester = _requester(session, tenant_id, username)
            # Every right is checked before anything is said about a document: an unreadable one is « introuvable ».
            chosen = [service.read_document(session, requester, doc_id, for_update=True) for doc_id in document_ids]
            _check_transferable(session, transfer_id, chosen)
            _export_done(session, requester, transfer_id, chosen)
        except SocleError as exc:
            session.rollback()  # nothing marked: the failure alone is answered
            _export_failed(session, tenant_id, transfer_id, exc.detail)


def select_for_archive(
    *, tenant_id: str, transfer_id: str, folder_id: str | None, dua_reached: bool, username: str | None
) -> None:
    """The archive service asks for a folder of the plan (with its subtree) or for the documents whose DUA
    ended with final action keep or sort: the GED chooses them among those the archivist may read (see
    ``_selectable``), marks them transferred and exports them."""
    with transaction() as session:
        if _answered(session, transfer_id):
            return  # a second run must not mark documents chosen since: the first answer stands
        try:
            requester = _requester(session, tenant_id, username)
            if folder_id is not None:
                folder = _folder(session, requester, folder_id)
                chosen = _select_folder(session, requester, folder)
                empty = message(
                    "le dossier « %(folder_name)s » ne contient aucun document à verser", folder_name=folder.name
                )
            else:
                chosen = _select_dua_reached(session, requester) if dua_reached else []
                empty = message(
                    "aucun document n'a atteint la fin de sa DUA avec un sort final « conserver » ou « trier »"
                )
            if not chosen:
                raise NotFound(
                    message(
                        "%(empty)s (parmi ceux que vous pouvez lire : ni dans la corbeille, ni gelé, ni déjà versé, "
                        "archivé ou éliminé) : versement vide",
                        empty=empty,
                    )
                )
            _export_done(session, requester, transfer_id, chosen)
        except SocleError as exc:
            session.rollback()
            _export_failed(session, tenant_id, transfer_id, exc.detail)


def _answered(session: Session, transfer_id: str) -> bool:
    """Whether the GED already answered this transfer (its reply's job key is taken)."""
    from sqlalchemy import select

    from socle.models import Job

    return session.execute(select(Job.id).where(Job.key == f"archive.build:{transfer_id}")).first() is not None


def _requester(session: Session, tenant_id: str, username: str | None) -> Principal:
    """Who asked, as they are now: their rights choose what the GED gives. None: an interop flow archiving the
    documents it filed, acting as the service itself (no user behind the message).

    :raises NotFound: unknown collectivité or user; InvalidInput: a disabled user.
    """
    from ged.ingest import principal_for
    from socle.models import Tenant

    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(message("collectivité %(tenant_id)s introuvable", tenant_id=tenant_id))
    if username is None:
        return Principal(
            tenant.id, tenant.slug, tenant.name, "service:interop", "interop", "Interopérabilité", frozenset({"admin"})
        )
    return principal_for(session, tenant.slug, username)


def _check_transferable(session: Session, transfer_id: str, documents: list[Any]) -> None:
    """:raises Conflict: documents already in a transfer (another one), archived, eliminated or held, named by
    their titles: a document goes to the SAE once."""
    from ged import holds

    held = holds.active_holds(session, [document.id for document in documents])
    problems: list[str] = []
    for document in dict.fromkeys(documents):
        title = document.current.title
        if document.disposal == service.TRANSFERRED and document.archive_transfer_id != transfer_id:
            problems.append(f"« {title} » est déjà dans un versement en cours")
        elif document.disposal == service.ARCHIVED:
            problems.append(f"« {title} » est déjà archivé")
        elif document.disposal == service.ELIMINATED:
            problems.append(f"« {title} » est éliminé")
        elif document.id in held:
            problems.append(f"« {title} » est gelé par « {held[document.id][0]} »")
    if problems:
        raise Conflict(message("documents non versables : %(problems)s", problems=" ; ".join(problems)))


# Selected at most per transfer: the same bound as a transfer by document ids.
MAX_SELECTED = 1000


def _folder(session: Session, requester: Principal, folder_id: str) -> Any:
    """A folder of the plan the requester may read; another tenant's, or an unreadable one, is as unknown as a
    missing one."""
    from ged.models import Folder

    folder = session.get(Folder, folder_id)
    if (
        folder is None
        or folder.tenant_id != requester.tenant_id
        or "read" not in access.folder_rights(session, requester, folder.id)
    ):
        raise NotFound(message("dossier du plan de classement %(folder_id)s introuvable", folder_id=folder_id))
    return folder


def _selectable(session: Session, requester: Principal) -> Any:
    """Live documents the requester may read: not in the trash, not under an active legal hold (frozen for the
    litigation: its documents stay in the GED), and not already transferred, archived or eliminated
    (``disposal`` set). Locked: two transfers at once cannot both take a document."""
    from sqlalchemy import exists, select

    from ged.models import Document, HeldDocument, Hold

    held = exists().where(
        HeldDocument.document_id == Document.id, HeldDocument.hold_id == Hold.id, Hold.released_at.is_(None)
    )
    return (
        select(Document)
        .where(access.readable(session, requester), Document.deleted_at.is_(None), Document.disposal.is_(None), ~held)
        .with_for_update(of=Document)
    )


def _select_folder(session: Session, requester: Principal, folder: Any) -> list[Any]:
    from sqlalchemy.orm import selectinload

    from ged.models import Document, Folder

    subtree = _folders(folder.tenant_id).where((Folder.id == folder.id) | Folder.path.startswith(f"{folder.path}/"))
    query = _selectable(session, requester).where(Document.folder_id.in_(subtree.with_only_columns(Folder.id)))
    query = query.options(selectinload(Document.versions)).order_by(Document.created_at, Document.id)
    return list(session.execute(query.limit(MAX_SELECTED)).scalars())


def _folders(tenant_id: str) -> Any:
    from sqlalchemy import select

    from ged.models import Folder

    return select(Folder).where(Folder.tenant_id == tenant_id)


def _select_dua_reached(session: Session, requester: Principal) -> list[Any]:
    from sqlalchemy.orm import selectinload

    from ged.models import Document, DocumentType
    from ged.retention import TRANSFER_ACTIONS
    from socle.dates import french_today

    query = (
        _selectable(session, requester)
        .join(DocumentType, DocumentType.id == Document.type_id)
        .where(Document.dua_ends_on <= french_today(), DocumentType.final_action.in_(TRANSFER_ACTIONS))
        .options(selectinload(Document.versions))
        .order_by(Document.dua_ends_on, Document.id)
    )
    return list(session.execute(query.limit(MAX_SELECTED)).scalars())


def _export_done(session: Session, requester: Principal, transfer_id: str, chosen: list[Any]) -> None:
    """Export the documents and mark them « transferred » to this transfer, in the same commit as the answer:
    off the lists to transfer, out of any other transfer and of elimination until the SAE replies."""
    from ged import journal
    from socle.db import utcnow

    documents = [_export(session, document) for document in chosen]
    now = utcnow()
    for document in dict.fromkeys(chosen):
        if document.disposal == service.TRANSFERRED and document.archive_transfer_id == transfer_id:
            continue
        document.disposal, document.disposal_at, document.archive_transfer_id = service.TRANSFERRED, now, transfer_id
        journal.record_document(
            session,
            requester.tenant_id,
            requester.actor,
            "ged.document.transferred",
            document.id,
            transfer_id=transfer_id,
        )
    enqueue(
        session,
        messages.ARCHIVE_BUILD_PACKAGE,
        key=f"archive.build:{transfer_id}",
        tenant_id=requester.tenant_id,
        transfer_id=transfer_id,
        documents=documents,
    )


def _export_failed(session: Session, tenant_id: str, transfer_id: str, reason: str) -> None:
    enqueue(
        session,
        messages.ARCHIVE_EXPORT_FAILED,
        key=f"archive.build:{transfer_id}",
        tenant_id=tenant_id,
        transfer_id=transfer_id,
        reason=reason,
    )


def mark_archived(*, tenant_id: str, transfer_id: str, documents: list[dict[str, Any]]) -> None:
    from ged import retention

    with transaction() as session:
        retention.mark_archived(session, tenant_id, transfer_id, documents)


def transfer_ended(*, tenant_id: str, transfer_id: str, outcome: str) -> None:
    """A transfer ended without the SAE's acceptance (package not built, or rejected): the documents the GED
    marked « transferred » for it are live again, each with a line in its history. Found by the transfer's id,
    as the GED marked them (the archive service does not know the documents of a selection that failed).
    Idempotent: a second run finds none still marked."""
    from sqlalchemy import select

    from ged import journal
    from ged.models import Document

    with transaction() as session:
        query = (
            select(Document)
            .where(
                Document.tenant_id == tenant_id,
                Document.archive_transfer_id == transfer_id,
                Document.disposal == service.TRANSFERRED,
            )
            .with_for_update()
        )
        for document in session.execute(query).scalars():
            document.disposal = document.disposal_at = document.archive_transfer_id = None
            journal.record_document(
                session,
                tenant_id,
                "service:archive",
                "ged.document.transfer_ended",
                document.id,
                transfer_id=transfer_id,
                outcome=outcome,
            )


def purge_trash(*, tenant_id: str) -> None:
    from ged import retention

    with transaction() as session:
        retention.purge(session, tenant_id)


_UPLOADS_BATCH = 500


def purge_uploads() -> None:
    """Expire the resumable uploads past their time, of every tenant, and remove their spool files, by batches
    (messages.GED_PURGE_UPLOADS; ``socle ged purge-uploads`` does the same).

    The spool files are under the API's ``SOCLE_DATA_DIR/uploads``: a worker that does not see that folder would
    mark the uploads expired and leave their files on the API's disk for ever, so it refuses instead (a failure
    that ``socle jobs`` shows), unless there is nothing to purge.
    """
    from sqlalchemy import select

    from ged import ingest
    from ged.models import UploadSession
    from socle.db import utcnow

    if not ingest.spool_dir().is_dir():
        with transaction() as session:
            expired = session.execute(
                select(UploadSession.id)
                .where(UploadSession.status == "open", UploadSession.expires_at <= utcnow())
                .limit(1)
            ).first()
        if expired is None:
            return
        raise Conflict(
            message(
                "le dossier des envois reprenables (%(folder)s) est absent de ce worker : il doit voir celui de l'API "
                "de la GED (même SOCLE_DATA_DIR, ou dossier uploads partagé) pour en effacer les fichiers",
                folder=str(ingest.spool_dir()),
            )
        )
    while True:
        with transaction() as session:
            count = ingest.purge_expired_uploads(session, limit=_UPLOADS_BATCH)
        if count < _UPLOADS_BATCH:
            return


def store_flow_document(
    *,
    tenant_id: str,
    flow_id: str,
    name: str,
    object_key: str,
    size: int,
    filename: str,
    media_type: str,
    title: str,
    document_type: str,
    ged_folder: str | None,
    username: str | None,
    document_date: str | None,
    type_code: str | None,
    description: str | None,
) -> None:
    """A document brought back by an interop flow: stored once (found again by its origin) in the folder of the
    plan ``ged_folder`` names (path or id), then answered.

    ``document_date`` (ISO) is its date; ``type_code`` the collectivité's document type it takes when it has one
    of that code whose fields ask nothing (else ``document_type`` stays its label); ``description`` becomes its
    version's comment. All three null for a message queued before they were sent.

    ``ged_folder`` is the interop connector's, set by an administrator, or the one the flow's creator named
    (``username``): it is then taken only if that user may write there, as if they filed it themselves.

    :raises NotFound: no ``ged_folder`` (not set on the connector, or a message queued before it was required),
        no such folder, or one ``username`` may not read; Forbidden: one they may read but not write in. Never
        filed outside the plan, where every user of the collectivité would read it.
    """
    from ged.schemas import Metadata
    from socle.storage import StoredObject

    origin = f"interop:{flow_id}:{name}"
    with transaction() as session:
        # Checked only for a first filing: a second run answers with the document filed, wherever it is now.
        filed_in = (
            None
            if _already_filed(session, tenant_id, origin)
            else _flow_folder(session, tenant_id, ged_folder, username)
        )
        typed = _flow_document_type(session, tenant_id, type_code)
        found = _file_once(
            session,
            tenant_id,
            origin,
            ("interop", "Interopérabilité"),
            StoredObject(object_key, size),
            filename,
            media_type,
            Metadata(
                title=title[:500],
                document_type=typed.name[:100] if typed is not None else document_type,
                type=typed.code if typed is not None else None,
                date=_iso_date(document_date),
                folder_id=filed_in.id if filed_in else None,
            ),
            comment=description[:2000] if description else None,
            match_title=True,
        )
        enqueue(
            session,
            messages.INTEROP_FLOW_DOCUMENT_STORED,
            key=f"interop.flow-stored:{origin}",
            tenant_id=tenant_id,
            flow_id=flow_id,
            name=name,
            document_id=found,
        )


def _flow_document_type(session: Session, tenant_id: str, code: str | None) -> Any:
    """The collectivité's document type an interop document takes (docs/interop.md: aracte,
    courrier_prefecture, pes_acquit, pes_retour): None when it has none of that code, or one with a required field
    no flow fills (the document would be refused, and never filed)."""
    from sqlalchemy import select

    from ged.models import DocumentType

    if not code:
        return None
    found = session.execute(
        select(DocumentType).where(DocumentType.tenant_id == tenant_id, DocumentType.code == code)
    ).scalar_one_or_none()
    if found is None or any(field.get("required") and not field.get("retired") for field in found.fields or []):
        return None
    return found


def _iso_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def _flow_folder(session: Session, tenant_id: str, reference: str | None, username: str | None) -> Any:
    """The folder of the plan where an interop flow's document is filed (see store_flow_document)."""
    from ged import plan

    if not reference:
        raise NotFound(
            message(
                "aucun dossier de la GED n'est désigné pour les documents de ce flux : renseignez « ged_folder » "
                "(chemin dans le plan de classement, ex. Actes/2026, ou identifiant du dossier) dans la "
                "configuration du connecteur ; document non classé"
            )
        )
    if username is None:  # the connector's folder, set by an administrator: a new year's folder is made
        return plan.year_folder_at(session, tenant_id, reference, "service:interop")
    folder = plan.folder_at(session, tenant_id, reference)
    rights = access.folder_rights(session, _requester(session, tenant_id, username), folder.id)
    if "read" not in rights:  # as unknown as a missing folder: its existence is not told
        raise NotFound(message("dossier « %(reference)s » introuvable dans le plan de classement", reference=reference))
    if "write" not in rights:
        raise Forbidden(
            message(
                "le créateur du flux n'a pas le droit d'écriture dans le dossier « %(reference)s » de la GED "
                "qu'il a désigné (ged_folder) : document non classé",
                reference=reference,
            )
        )
    return folder


def file_signed_document(
    *,
    tenant_id: str,
    folder_id: str,
    object_key: str,
    size: int,
    filename: str,
    media_type: str,
    title: str,
    document_type: str,
    signatories: list[str],
    ged_folder: str | None,
    signed_by: list[str] | None,
) -> None:
    """A signed document of a folder made by upload in the parapheur: filed once as a new document in the folder
    of the plan its sous-type names (``ged_folder``: path or id), answered.

    :raises NotFound: no ``ged_folder`` (a message queued before it was required), or no such folder: never
        filed outside the plan, where every user of the collectivité would read it.
    """
    from ged import plan
    from ged.schemas import Metadata
    from socle.storage import StoredObject

    origin = f"parapheur:{folder_id}"
    with transaction() as session:
        # The folder is resolved for a first filing only: a second run answers with the document filed, wherever
        # it is now, even if its folder was renamed or deleted since.
        first = _already_filed(session, tenant_id, origin) is None
        if first and not ged_folder:
            raise NotFound(
                message("le sous-type du dossier ne désigne aucun dossier de la GED : document signé non classé")
            )
        filed_in = plan.folder_at(session, tenant_id, ged_folder) if first and ged_folder else None
        found = _file_once(
            session,
            tenant_id,
            origin,
            ("parapheur", "Parapheur"),
            StoredObject(object_key, size),
            filename,
            media_type,
            Metadata(
                title=title[:500],
                document_type=document_type[:100] or "Parapheur",
                tags=["parapheur"],
                folder_id=filed_in.id if filed_in else None,
            ),
            comment=service.signed_comment(signed_by, signatories),
            signatories=list(signatories),
        )
        enqueue(
            session,
            messages.PARAPHEUR_FILED_IN_GED,
            key=f"parapheur.filed:{folder_id}",
            tenant_id=tenant_id,
            folder_id=folder_id,
            document_id=found,
        )


def _file_once(
    session: Session,
    tenant_id: str,
    origin: str,
    author: tuple[str, str],
    stored: Any,
    filename: str,
    media_type: str,
    metadata: Any,
    *,
    comment: str | None = None,
    signatories: list[str] | None = None,
    match_title: bool = False,
) -> str:
    """Create a document another service sent, once: the version's origin finds it again on a second run.

    ``author`` is the sending service's (username, display name); the document is created in its name, its
    version with ``comment`` and ``signatories`` (the parapheur's).
    """
    from sqlalchemy import select

    from ged.models import Document, Version
    from socle.auth import Principal
    from socle.models import Tenant

    found = _already_filed(session, tenant_id, origin)
    if found is not None:
        return found
    # A run killed between the creation and the origin's commit left its version unmarked: adopt it.
    orphans = (
        select(Version)
        .join(Document)
        .where(
            Document.tenant_id == tenant_id,
            Version.object_key == stored.key,
            Version.author == author[0],
            Version.origin.is_(None),
        )
    )
    if match_title:
        orphans = orphans.where(Version.title == metadata.title)
    orphan = session.execute(orphans).scalars().first()
    if orphan is not None:
        orphan.origin = origin
        # Killed before these too (they are set with the origin): the adopted version gets them now.
        if comment is not None:
            orphan.comment = comment
        if signatories is not None:
            orphan.signatories = signatories
        return str(orphan.document_id)
    tenant = session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"collectivité {tenant_id} introuvable")
    sender = Principal(
        tenant.id, tenant.slug, tenant.name, f"service:{author[0]}", author[0], author[1], frozenset({"admin"})
    )
    document = service.create_document(session, sender, stored, filename, media_type, metadata)
    document.current.origin = origin
    if comment is not None:
        document.current.comment = comment
    if signatories is not None:  # None left unset: SQL NULL, not JSON null
        document.current.signatories = signatories
    return str(document.id)


def _already_filed(session: Session, tenant_id: str, origin: str) -> str | None:
    """The document another service's message created already (its version carries the message's origin)."""
    from sqlalchemy import select

    from ged.models import Document, Version

    found = session.execute(
        select(Version.document_id).join(Document).where(Document.tenant_id == tenant_id, Version.origin == origin)
    ).scalar_one_or_none()
    return str(found) if found is not None else None


def _export(session: Session, document: Any) -> dict[str, Any]:
    """What the archive service maps to SEDA: metadata of the current version, its type and DUA, where it is
    filed in the plan (folder names from the root), its author and signatories (see _people), and the digests
    of every version."""
    from ged.models import DocumentType

    if document.disposal == "eliminated":
        raise NotFound(f"document {document.id} éliminé : son contenu n'existe plus")
    version = document.current
    document_type = session.get(DocumentType, document.type_id) if document.type_id else None
    return {
        "document_id": document.id,
        "version": version.number,
        "title": version.title,
        "document_type": version.document_type,
        "type": _type_export(document, document_type),
        "field_values": dict(version.field_values or {}),
        "folder": _folder_path(session, document.folder_id),
        "date": version.document_date.isoformat() if version.document_date else None,
        "tags": list(version.tags),
        "object_key": version.object_key,
        "size": version.size,
        "filename": version.filename,
        "media_type": version.media_type,
        # The renditions made so far (archived beside the original): PDF/A-2b copy, extracted text (UTF-8).
        "pdfa_key": version.pdfa_key,
        "text_key": version.text_key,
        "created_at": document.created_at.isoformat(),
        "modified_at": version.created_at.isoformat(),
        **_people(session, document),
        "created_by": document.created_by,
        "versions": [
            {"number": v.number, "sha256": v.object_key, "size": v.size, "created_at": v.created_at.isoformat()}
            for v in document.versions
        ],
    }


# The services that write versions in their own name, each with an origin « <service>:… » (record_signed_version,
# _file_once): a program, not a person, so never a document's author (SEDA Writer).
SERVICE_AUTHORS = frozenset({"parapheur", "interop"})


def _by_service(version: Any) -> bool:
    """Whether a service wrote the version: its author is the service, and its origin names it. A user who happens
    to be called « parapheur » writes versions without an origin."""
    return version.author in SERVICE_AUTHORS and (version.origin or "").startswith(f"{version.author}:")


def _people(session: Session, document: Any) -> dict[str, Any]:
    """``author`` (username) and ``author_name``, and ``signatories`` ({username, name}) of the current content
    when the parapheur signed it; names are the users' display names (None for a former user).

    The parapheur's version (origin ``parapheur:<folder>``) keeps the signatories' usernames (``signatories``,
    data rather than its comment, which a user may write alike); its author is the parapheur itself, so the
    document's author is then the one of the version sent for signature. When the only author known is a service
    (a document the parapheur or an interop flow filed), there is none: ``author`` and ``author_name`` are None,
    the signatories stay.
    """
    from sqlalchemy import select

    from socle.models import User

    current = document.current
    signed = [
        version
        for version in document.versions
        if (version.origin or "").startswith("parapheur:") and version.object_key == current.object_key
    ]
    written, usernames = current, []
    if signed:
        usernames = [name for name in signed[-1].signatories or [] if name]
        before = [version for version in document.versions if version.number < current.number]
        if current is signed[-1] and before:
            written = before[-1]
    author = None if _by_service(written) else written.author
    wanted = {author, *usernames} - {None}
    query = select(User.username, User.display_name).where(
        User.tenant_id == document.tenant_id, User.username.in_(wanted)
    )
    names = {username: name for username, name in session.execute(query)}
    return {
        "author": author,
        "author_name": names.get(author) if author else None,
        "signatories": [{"username": name, "name": names.get(name)} for name in dict.fromkeys(usernames)],
    }


def _type_export(document: Any, document_type: Any) -> dict[str, Any] | None:
    """The type's code and name, and its DUA: months, starting event and its date, end date, final action."""
    from ged import types

    if document_type is None:
        return None
    # The DUA's own starting date (the type's rule), not the end minus the months: month ends are clamped.
    start = types.dua_start(document, document_type.dua_event) if document_type.dua_months is not None else None
    return {
        "code": document_type.code,
        "name": document_type.name,
        "dua_months": document_type.dua_months,
        "dua_event": document_type.dua_event,
        "dua_start": start.isoformat() if start else None,
        "dua_ends_on": document.dua_ends_on.isoformat() if document.dua_ends_on else None,
        "final_action": document_type.final_action,
    }


def _folder_path(session: Session, folder_id: str | None) -> list[dict[str, Any]]:
    """The folders from the plan's root down to the document's own: id, name and code of each."""
    from ged.models import Folder

    if folder_id is None:
        return []
    folder = session.get(Folder, folder_id)
    if folder is None:
        return []
    ids = folder.path.split("/")
    found = {f.id: f for f in session.execute(_folders(folder.tenant_id).where(Folder.id.in_(ids))).scalars()}
    return [{"id": i, "name": found[i].name, "code": found[i].code} for i in ids if i in found]


# Renditions of a new content version (ged.renditions.schedule enqueues them).


def extract_text(*, tenant_id: str, document_id: str, version: int) -> None:
    from ged import renditions

    renditions.extract_text(tenant_id, document_id, version)


def ocr_text(*, tenant_id: str, document_id: str, version: int) -> None:
    from ged import renditions

    renditions.ocr_text_job(tenant_id, document_id, version)


def make_preview(*, tenant_id: str, document_id: str, version: int) -> None:
    from ged import renditions

    renditions.make_preview(tenant_id, document_id, version)


def make_pdfa(*, tenant_id: str, document_id: str, version: int) -> None:
    from ged import renditions

    renditions.make_pdfa(tenant_id, document_id, version)


def _preload_for_work_horses() -> None:
    # « socle worker » imports this module once, then forks a work horse per job: what is imported here is
    # inherited. The S3 client and the PostgreSQL driver are otherwise imported lazily, by every job again
    # (about 0.5 s of CPU per job, measured by bench/ged_ingest.py).
    import contextlib
    import importlib

    for name in ("ged.renditions", "minio", "psycopg", "pypdfium2", "PIL.PngImagePlugin", "PIL.PpmImagePlugin"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


_preload_for_work_horses()


def rendition_failed(*, tenant_id: str, document_id: str, version: int, reason: str) -> None:
    # Sent by the kernel when a rendition job has failed for good (see GED_RENDITION_FAILED).
    from ged import renditions

    renditions.rendition_failed(tenant_id, document_id, version, reason)
