"""GED ingestion: resumable uploads (tus-like), the watched drop folder and the bulk import of a folder tree.

Every path ends in ``service.create_document``: rights, audit and indexing stay in one place. Bytes are
never held whole in memory: pieces go to a spool file under ``data_dir/uploads``, files are streamed from
disk into the object store (write-once, digest checked).
"""

from __future__ import annotations

import csv
import fcntl
import hashlib
import io
import mimetypes
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ged import access, service
from ged.models import Document, DocumentType, Folder, ImportedFile, ImportRun, UploadSession
from ged.schemas import Metadata
from socle import audit
from socle.auth import Principal
from socle.db import utcnow
from socle.errors import (
    Conflict,
    DigestMismatch,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    SocleError,
    UnsupportedMediaType,
    message,
)
from socle.files import write_atomically
from socle.models import Tenant, User
from socle.settings import get_settings
from socle.storage import StoredObject, get_store
from socle.validation_messages import french_message

UPLOAD_TTL = timedelta(hours=24)
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
# C0, DEL, C1, and the bidi overrides/isolates that make « facture\u202efdp.exe » look like a PDF.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_HEAD = 4096


class UploadGone(SocleError):
    """An upload that expired or was cancelled: the client must start a new one (tus answers 410)."""

    status = 410
    title = "Envoi expiré"
    slug = "upload-gone"


class UploadBusy(SocleError):
    status = 423
    title = "Envoi en cours"
    slug = "upload-locked"


# ---------------------------------------------------------------------------------------------------------
# Checks shared by every way in


def check_filename(filename: str) -> str:
    """A client's file name, refused (not cleaned) when it could be taken for a path or breaks a header.

    Raises InvalidInput naming the problem: empty, too long, path separators, control characters, ``..``.
    """
    if not filename or not filename.strip():
        raise InvalidInput(message("le nom de fichier est vide"))
    if "/" in filename or "\\" in filename:
        raise InvalidInput(
            message(
                "le nom de fichier ne doit pas contenir de séparateur de chemin : %(filename)s", filename=repr(filename)
            )
        )
    if _CONTROL.search(filename):
        raise InvalidInput(
            message("le nom de fichier contient des caractères de contrôle : %(filename)s", filename=repr(filename))
        )
    if filename.strip() in {".", ".."}:
        raise InvalidInput(message("nom de fichier invalide : %(filename)s", filename=repr(filename)))
    if len(filename) > 255:
        raise InvalidInput(message("le nom de fichier dépasse 255 caractères"))
    return filename


# Signatures of the formats a collectivité files most; a declared type among these must match the bytes.
_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
    "application/zip": (b"PK\x03\x04",),
}
_GENERIC = {"", "application/octet-stream", "binary/octet-stream", "application/binary"}


def _sniffed(head: bytes) -> str | None:
    for media_type, signatures in _SIGNATURES.items():
        if head.startswith(signatures):
            return media_type
    return None


def checked_media_type(head: bytes, declared: str | None, filename: str) -> str:
    """The media type to keep, or UnsupportedMediaType when the declared one lies about the bytes.

    A declared type is compared with the bytes' signature for the formats above; an OOXML/ODF file (a zip)
    declared as such is accepted. Nothing declared: the signature, else a guess from the name.
    """
    label = (declared or "").split(";", 1)[0].strip().lower()
    sniffed = _sniffed(head)
    if label in _GENERIC:
        guessed = mimetypes.guess_type(filename)[0]
        if sniffed is None or (sniffed == "application/zip" and guessed is not None and _zip_based(guessed)):
            return service.sniff_media_type(head, guessed or "application/octet-stream")
        return sniffed
    expected = _SIGNATURES.get(label)
    zip_based = sniffed == "application/zip" and _zip_based(label)
    if (expected is not None and not head.startswith(expected)) or (
        sniffed is not None and sniffed != label and not zip_based
    ):
        raise UnsupportedMediaType(
            f"le contenu ne correspond pas au type déclaré « {label} »"
            + (f" (contenu reconnu : {sniffed})" if sniffed else ""),
            declared=label,
            detected=sniffed,
        )
    return service.sniff_media_type(head, label)


def _zip_based(media_type: str) -> bool:
    """OOXML, ODF, EPUB…: zip containers with a type of their own."""
    return (
        media_type.startswith("application/vnd.") or media_type.endswith("+zip") or media_type == "application/epub+zip"
    )


def refuse_empty(path: Path) -> None:
    """A store check: an empty file is refused before it becomes an object."""
    if path.stat().st_size == 0:
        raise InvalidInput(message("le fichier est vide"))


def parse_metadata(values: dict[str, Any]) -> Metadata:
    """The GED metadata of a future document, or InvalidInput naming each wrong field."""
    try:
        return Metadata.model_validate(values)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'métadonnées'} : {french_message(error)}"
            for error in exc.errors()
        )
        raise InvalidInput(message("métadonnées invalides : %(details)s", details=details)) from None


def principal_for(session: Session, tenant_slug: str, username: str) -> Principal:
    """The principal a command acts as (drop folder, bulk import): an active user of the tenant."""
    row = session.execute(
        select(User, Tenant)
        .join(Tenant, Tenant.id == User.tenant_id)
        .where(Tenant.slug == tenant_slug)
        .where(User.username == username)
    ).one_or_none()
    if row is None:
        raise NotFound(
            message(
                "utilisateur « %(username)s » inconnu dans la collectivité « %(tenant_slug)s »",
                username=username,
                tenant_slug=tenant_slug,
            )
        )
    if not row.User.active:
        raise InvalidInput(message("l'utilisateur « %(username)s » est désactivé", username=username))
    return Principal(
        tenant_id=row.Tenant.id,
        tenant_slug=row.Tenant.slug,
        tenant_name=row.Tenant.name,
        user_id=row.User.id,
        username=row.User.username,
        display_name=row.User.display_name,
        roles=frozenset(row.User.roles),
    )


# ---------------------------------------------------------------------------------------------------------
# Resumable uploads


def spool_dir() -> Path:
    return get_settings().data_dir.resolve() / "uploads"


def spool_path(upload_id: str) -> Path:
    return spool_dir() / f"{upload_id}.part"


def create_upload(
    session: Session,
    principal: Principal,
    *,
    filename: str,
    size: int,
    metadata: dict[str, Any],
    media_type: str | None = None,
    sha256: str | None = None,
) -> UploadSession:
    """Open a resumable upload of ``size`` bytes; its pieces come next (``append``), then ``finish``.

    Raises InvalidInput (bad name, zero bytes, bad digest or metadata), PayloadTooLarge (over the limit).
    """
    check_filename(filename)
    limit = get_settings().max_upload_bytes
    if size <= 0:
        raise InvalidInput(message("le fichier est vide : la taille annoncée doit être positive"))
    if size > limit:
        raise PayloadTooLarge(
            message("le fichier dépasse la taille maximale de %(limit)s octets", limit=limit), max_size=limit
        )
    if sha256 is not None and not _SHA256.match(sha256):
        raise InvalidInput(message("l'empreinte SHA-256 doit compter 64 caractères hexadécimaux"))
    if media_type is not None and len(media_type) > 200:
        raise InvalidInput(message("type de fichier trop long"))
    # Checked as the finish will check it: read from the form it is kept in (JSON), by the same model and the same
    # checks (folder, type and rights, typed field values), before any byte is sent. What passes here can only be
    # refused at the finish for a change made meanwhile (a right, the type), never for the metadata itself.
    kept = parse_metadata(metadata).model_dump(mode="json", exclude_unset=True)
    parsed = parse_metadata(kept)
    service.check_can_create(session, principal, parsed)
    purge_expired_uploads(session, limit=20)  # opportunistic: abandoned uploads never pile up
    upload = UploadSession(
        tenant_id=principal.tenant_id,
        username=principal.username,
        filename=filename,
        media_type=media_type,
        size=size,
        received=0,
        expected_sha256=sha256.lower() if sha256 else None,
        metadata_json=kept,
        status="open",
        expires_at=utcnow() + UPLOAD_TTL,
    )
    session.add(upload)
    session.flush()
    _audit_upload(session, principal, "ged.upload.started", upload, filename=filename, size=size, sha256=sha256)
    spool_dir().mkdir(parents=True, exist_ok=True)
    spool_path(upload.id).touch(exist_ok=False)
    session.commit()
    return upload


def get_upload(session: Session, principal: Principal, upload_id: str, *, for_update: bool = False) -> UploadSession:
    """The caller's own upload (another user's or tenant's is NotFound); UploadGone once expired or cancelled."""
    query = select(UploadSession).where(
        UploadSession.id == upload_id,
        UploadSession.tenant_id == principal.tenant_id,
        UploadSession.username == principal.username,
    )
    if for_update:
        query = query.with_for_update()
    upload = session.execute(query).scalar_one_or_none()
    if upload is None:
        raise NotFound(message("envoi %(upload_id)s introuvable", upload_id=upload_id))
    if upload.status == "open" and _aware(upload.expires_at) <= utcnow():
        _close(session, upload, "expired")
    if upload.status in {"expired", "cancelled"}:
        raise UploadGone(message("l'envoi %(upload_id)s a expiré ou été annulé : recommencez-le", upload_id=upload_id))
    return upload


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _close(session: Session, upload: UploadSession, status: str) -> None:
    upload.status = status
    session.commit()
    spool_path(upload.id).unlink(missing_ok=True)


@dataclass
class _Piece:
    """Where an incoming piece is written: the spool file, locked, positioned at the current offset."""

    handle: BinaryIO
    start: int
    limit: int
    written: int = 0

    def write(self, chunk: bytes) -> None:
        if self.start + self.written + len(chunk) > self.limit:
            raise PayloadTooLarge(
                message("le morceau dépasse la taille annoncée de l'envoi (%(limit)s octets)", limit=self.limit),
                max_size=self.limit,
            )
        self.handle.write(chunk)
        self.written += len(chunk)


@dataclass
class PieceWriter:
    """Receive one PATCH: ``begin`` checks the offset and locks, ``write`` appends, ``end`` commits or undoes.

    The spool file is locked for the whole request, so two concurrent pieces never interleave (the second
    gets 423). On a refused piece the file is cut back to the previous offset: nothing half-written.
    """

    upload_id: str
    offset: int
    piece: _Piece | None = None
    _handle: BinaryIO | None = field(default=None, repr=False)

    def begin(self, session: Session, principal: Principal) -> None:
        upload = get_upload(session, principal, self.upload_id)
        if upload.status != "open":
            raise Conflict(
                message("l'envoi %(upload_id)s est terminé", upload_id=self.upload_id), offset=upload.received
            )
        if self.offset != upload.received:
            raise Conflict(
                message(
                    "position incorrecte : l'envoi en est à l'octet %(upload_received)s, pas %(offset)s",
                    upload_received=upload.received,
                    offset=self.offset,
                ),
                offset=upload.received,
            )
        session.rollback()
        path = spool_path(self.upload_id)
        try:
            handle = path.open("r+b")
        except FileNotFoundError:
            raise UploadGone(
                message(
                    "l'envoi %(upload_id)s n'a plus de fichier de réception : recommencez-le", upload_id=self.upload_id
                )
            ) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UploadBusy(message("un autre morceau de cet envoi est en cours de réception")) from None
        handle.seek(self.offset)
        handle.truncate()  # bytes past the offset were never acknowledged: drop them
        self._handle = handle
        self.piece = _Piece(handle, self.offset, upload.size)

    def write(self, chunk: bytes) -> None:
        assert self.piece is not None
        try:
            self.piece.write(chunk)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Forget the piece: the file is cut back to where the piece began."""
        if self._handle is None:
            return
        self._handle.truncate(self.offset)
        self._release()

    def end(self, session: Session, principal: Principal) -> UploadSession:
        """Make the received bytes durable, then move the offset (only if nobody moved it meanwhile)."""
        assert self._handle is not None and self.piece is not None
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
            new_offset = self.offset + self.piece.written
            moved = session.execute(
                update(UploadSession)
                .where(
                    UploadSession.id == self.upload_id,
                    UploadSession.received == self.offset,
                    UploadSession.status == "open",
                )
                .values(received=new_offset)
            )
            if cast(CursorResult[Any], moved).rowcount != 1:
                session.rollback()
                self._handle.truncate(self.offset)
                raise Conflict(message("l'envoi a changé pendant la réception de ce morceau : relisez sa position"))
            session.commit()
        except BaseException:
            self._release()
            raise
        self._release()
        return get_upload(session, principal, self.upload_id)

    def _release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def finish_upload(session: Session, principal: Principal, upload_id: str) -> Document:
    """Turn a complete upload into a document (digest and media type checked), once.

    Raises Conflict when bytes are missing, DigestMismatch / UnsupportedMediaType (the upload is then
    cancelled: its bytes cannot become right), and whatever ``service.create_document`` refuses.
    """
    upload = get_upload(session, principal, upload_id, for_update=True)
    if upload.status == "complete":
        if upload.document_id is None:
            raise Conflict(message("l'envoi %(upload_id)s est déjà terminé", upload_id=upload_id))
        # The document as it is now: moved since to a folder the user may not read, it is « introuvable ».
        return service.read_document(session, principal, upload.document_id)
    if upload.received != upload.size:
        raise Conflict(
            message(
                "envoi incomplet : %(upload_received)s octets reçus sur %(upload_size)s",
                upload_received=upload.received,
                upload_size=upload.size,
            ),
            offset=upload.received,
        )
    metadata = parse_metadata(upload.metadata_json)
    service.check_can_create(session, principal, metadata)  # rights may have changed since the upload began
    path = spool_path(upload.id)
    try:
        stored, media_type = _store_spooled(path, upload)
    except (DigestMismatch, UnsupportedMediaType, InvalidInput) as exc:
        _audit_upload(session, principal, "ged.upload.cancelled", upload, reason=exc.detail)
        _close(session, upload, "cancelled")
        raise
    # Claimed in the transaction that creates the document: both are committed together, or neither; a
    # concurrent finish waits on the row (or SQLite's write lock), then finds it complete.
    claimed = session.execute(
        update(UploadSession)
        .where(UploadSession.id == upload.id, UploadSession.status == "open")
        .values(status="complete")
    )
    if cast(CursorResult[Any], claimed).rowcount != 1:
        session.rollback()
        return finish_upload(session, principal, upload_id)
    document = service.create_document(session, principal, stored, upload.filename, media_type, metadata)
    upload.document_id = document.id
    _audit_upload(session, principal, "ged.upload.completed", upload, document_id=document.id, sha256=stored.key)
    session.commit()
    path.unlink(missing_ok=True)
    return document


def _store_spooled(path: Path, upload: UploadSession) -> tuple[StoredObject, str]:
    with path.open("rb") as handle:
        media_type = checked_media_type(handle.read(_HEAD), upload.media_type, upload.filename)
        handle.seek(0)
        stored = get_store().put(
            handle,
            expected_sha256=upload.expected_sha256,
            max_size=get_settings().max_upload_bytes,
            check=refuse_empty,
        )
    return stored, media_type


def cancel_upload(session: Session, principal: Principal, upload_id: str) -> None:
    """Abandon an open upload (tus termination): its spool file goes at once."""
    upload = get_upload(session, principal, upload_id, for_update=True)
    if upload.status == "complete":
        raise Conflict(
            message(
                "l'envoi %(upload_id)s est terminé : le document existe déjà (%(upload_document_id)s)",
                upload_id=upload_id,
                upload_document_id=upload.document_id,
            )
        )
    _audit_upload(session, principal, "ged.upload.cancelled", upload)
    _close(session, upload, "cancelled")


def _audit_upload(session: Session, principal: Principal, action: str, upload: UploadSession, **details: Any) -> None:
    # In the caller's transaction, committed with the change it records (_close and finish commit it).
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action=action,
        object_type="upload",
        object_id=upload.id,
        details=details,
    )


def purge_expired_uploads(session: Session, *, now: datetime | None = None, limit: int = 1000) -> int:
    """Mark open uploads past their expiry as expired and remove their spool files; return how many."""
    moment = now or utcnow()
    stale = (
        session.execute(
            select(UploadSession).where(UploadSession.status == "open", UploadSession.expires_at <= moment).limit(limit)
        )
        .scalars()
        .all()
    )
    for upload in stale:
        upload.status = "expired"
    session.flush()
    for upload in stale:
        spool_path(upload.id).unlink(missing_ok=True)
    return len(stale)


# ---------------------------------------------------------------------------------------------------------
# Files from disk: one import, shared by the drop folder and the bulk import


def _store_file(path: Path) -> tuple[StoredObject, str]:
    with path.open("rb") as handle:
        media_type = checked_media_type(handle.read(_HEAD), None, path.name)
        handle.seek(0)
        stored = service.store_upload(handle)  # size limit, empty file refused
    return stored, media_type


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _already_imported(session: Session, tenant_id: str, source: str, sha256: str) -> ImportedFile | None:
    return session.execute(
        select(ImportedFile).where(
            ImportedFile.tenant_id == tenant_id, ImportedFile.source_path == source, ImportedFile.sha256 == sha256
        )
    ).scalar_one_or_none()


def import_file(
    session: Session, principal: Principal, run: ImportRun, path: Path, source: str, metadata: Metadata
) -> Document:
    """Store one file and create its document; the ImportedFile row is committed with the document."""
    check_filename(path.name)
    stored, media_type = _store_file(path)
    marker = ImportedFile(
        tenant_id=principal.tenant_id, run_id=run.id, source_path=source, sha256=stored.key, document_id=""
    )
    session.add(marker)
    try:
        document = service.create_document(session, principal, stored, path.name, media_type, metadata)
    except IntegrityError:  # another import took the same file at the same moment: the constraint decides
        session.rollback()
        raise Conflict(
            message("« %(path_name)s » vient d'être importé par un autre passage", path_name=path.name)
        ) from None
    except BaseException:
        session.rollback()
        raise
    marker.document_id = document.id
    session.commit()
    return document


def _start_run(session: Session, principal: Principal, source: str) -> ImportRun:
    run = ImportRun(tenant_id=principal.tenant_id, source=source[:1000], created_by=principal.username)
    session.add(run)
    session.commit()
    return run


def _end_run(
    session: Session, run: ImportRun, imported: int, errors: list[dict[str, Any]], *, status: str | None = None
) -> None:
    run.imported = imported
    run.failed = len(errors)
    run.errors = errors
    run.status = status or ("failed" if errors and not imported else "done")
    run.finished_at = utcnow()
    session.commit()


# ---------------------------------------------------------------------------------------------------------
# The drop folder

DONE_DIR = "traites"
ERROR_DIR = "erreurs"
_TEMPORARY = re.compile(r"(^\.|^~\$|~$|\.(tmp|temp|part|partial|crdownload|download|swp)$)", re.IGNORECASE)


def is_temporary_name(name: str) -> bool:
    """Names that editors, browsers and copy tools give files still being written."""
    return bool(_TEMPORARY.search(name))


@dataclass
class DropResult:
    imported: list[tuple[str, str]] = field(default_factory=list)  # (file name, document id)
    skipped: list[str] = field(default_factory=list)  # already imported: moved to traites/ again
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file name, reason)


Snapshot = dict[str, tuple[int, int]]


def snapshot(directory: Path) -> Snapshot:
    """The candidate files of a drop folder (name → size, mtime), temporary names and subfolders left out."""
    files: Snapshot = {}
    for entry in os.scandir(directory):
        if entry.is_file(follow_symlinks=False) and not is_temporary_name(entry.name):
            stat = entry.stat(follow_symlinks=False)
            files[entry.name] = (stat.st_size, stat.st_mtime_ns)
    return files


def stable_files(before: Snapshot, after: Snapshot) -> list[str]:
    """Files whose size and modification time did not move between two looks: their writer is done."""
    return sorted(name for name, state in after.items() if before.get(name) == state)


def process_drop_folder(
    session: Session, principal: Principal, directory: Path, names: Iterable[str], metadata: dict[str, Any]
) -> DropResult:
    """Import the named files of ``directory``, each moved to traites/ or erreurs/ with a .txt reason."""
    result = DropResult()
    names = list(names)
    if not names:
        return result
    run = _start_run(session, principal, f"depot:{directory}")
    errors: list[dict[str, Any]] = []
    for name in names:
        path = directory / name
        source = f"depot:{directory}/{name}"
        try:
            sha256 = _sha256(path)
            done = _already_imported(session, principal.tenant_id, source, sha256)
            if done is not None:
                _move(path, directory / DONE_DIR, f"déjà importé : document {done.document_id} (sha256 {sha256})")
                result.skipped.append(name)
                continue
            values = {"title": Path(name).stem or name, **metadata}
            document = import_file(session, principal, run, path, source, parse_metadata(values))
        except ServiceUnavailable as exc:
            # The store down for a while refuses nothing: the files stay in the folder for the next pass.
            session.rollback()
            waiting = message("%(detail)s (le fichier reste en attente du prochain passage)", detail=exc.detail)
            errors.append({"file": name, "message": waiting})
            result.failed.append((name, waiting))
            break
        except SocleError as exc:
            session.rollback()
            errors.append({"file": name, "message": exc.detail})
            result.failed.append((name, exc.detail))
            _move(path, directory / ERROR_DIR, f"refusé : {exc.detail}")
            continue
        except OSError as exc:
            session.rollback()
            reason = f"lecture impossible : {exc.strerror or exc}"
            errors.append({"file": name, "message": reason})
            result.failed.append((name, reason))
            continue
        _move(
            path,
            directory / DONE_DIR,
            f"importé : document {document.id} (sha256 {sha256}) le {utcnow():%Y-%m-%d %H:%M:%S} UTC",
        )
        result.imported.append((name, document.id))
    _end_run(session, run, len(result.imported), errors)
    return result


def _move(path: Path, target_dir: Path, reason: str) -> None:
    """Move a processed file aside with its reason; an existing name gets a numbered suffix, never replaced."""
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    counter = 1
    while target.exists() or target.with_name(target.name + ".txt").exists():
        target = target_dir / f"{path.stem}-{counter}{path.suffix}"
        counter += 1
    write_atomically(target.with_name(target.name + ".txt"), (reason + "\n").encode())
    os.replace(path, target)


def watch(
    session: Session,
    principal: Principal,
    directory: Path,
    metadata: dict[str, Any],
    *,
    once: bool,
    interval: float = 5.0,
    settle: float = 2.0,
    max_passes: int | None = None,
    report: Callable[[DropResult], None] | None = None,
) -> DropResult:
    """Poll ``directory``: a file is imported once its size and time stay still over ``settle`` seconds.

    ``once``: one look, a wait, a second look, import, return. Otherwise a pass every ``interval`` seconds until
    Ctrl-C (or ``max_passes``). :raises InvalidInput: the folder does not exist.
    """
    if not directory.is_dir():
        raise InvalidInput(message("le dossier de dépôt %(directory)s n'existe pas", directory=directory))
    directory = directory.resolve()  # the same folder is the same source, however it is named
    total = DropResult()
    previous = snapshot(directory)
    done = 0
    while True:
        time.sleep(settle if done == 0 else max(interval, settle))
        current = snapshot(directory)
        result = process_drop_folder(session, principal, directory, stable_files(previous, current), metadata)
        total.imported += result.imported
        total.skipped += result.skipped
        total.failed += result.failed
        if report is not None:
            report(result)
        done += 1
        if once or (max_passes is not None and done >= max_passes):
            return total
        previous = snapshot(directory)


# ---------------------------------------------------------------------------------------------------------
# Bulk import of a folder tree with a CSV of metadata

_CSV_BASE = ("path", "title", "type", "date", "tags")


@dataclass
class ImportProblem:
    """One problem found before anything is imported, located in the CSV (line, column) or in the tree."""

    message: str
    line: int | None = None
    column: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"ligne {self.line}")
        if self.column:
            where.append(f"colonne « {self.column} »")
        if self.file and self.line is None:
            where.append(f"fichier « {self.file} »")
        return (", ".join(where) + " : " if where else "") + self.message

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "column": self.column, "file": self.file, "message": self.message}


class ImportRefused(InvalidInput):
    """The tree or its CSV has problems: all of them, nothing imported."""

    def __init__(self, problems: list[ImportProblem], run_id: str | None = None) -> None:
        super().__init__(
            f"{len(problems)} problème(s), rien n'a été importé", problems=[problem.as_dict() for problem in problems]
        )
        self.problems = problems
        self.run_id = run_id


@dataclass
class PlannedFile:
    path: Path
    relative: str  # posix, relative to the tree's root
    values: dict[str, Any]  # Metadata fields


@dataclass
class ImportReport:
    run_id: str
    imported: list[tuple[str, str]] = field(default_factory=list)  # (relative path, document id)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    folders_created: int = 0


def _tree_files(root: Path, exclude: Path | None) -> tuple[list[Path], list[ImportProblem]]:
    files: list[Path] = []
    problems: list[ImportProblem] = []
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for name in sorted(filenames):
            path = Path(folder) / name
            if name.startswith(".") or path.is_symlink() or (exclude is not None and path.resolve() == exclude):
                continue
            files.append(path)
    for path in files + [Path(folder) for folder, _, _ in os.walk(root)]:
        if path == root:
            continue
        try:
            check_filename(path.name)
        except InvalidInput as exc:
            problems.append(ImportProblem(exc.detail, file=path.relative_to(root).as_posix()))
    return files, problems


# A metadata CSV is read whole (rows are looked up by path): one line per file, 64 MiB is half a million files.
MAX_CSV_BYTES = 64 * 1024 * 1024


def _read_csv(csv_path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]], list[ImportProblem]]:
    if csv_path.stat().st_size > MAX_CSV_BYTES:
        limit = MAX_CSV_BYTES // (1024 * 1024)
        problem = f"le fichier CSV dépasse {limit} Mio : découpez l'import en plusieurs dossiers"
        return [], [], [ImportProblem(problem, file=csv_path.name)]
    try:
        text = csv_path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [], [ImportProblem("le fichier CSV doit être encodé en UTF-8", file=csv_path.name)]
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = [column.strip().lower() for column in next(reader)]
    except StopIteration:
        return [], [], [ImportProblem("le fichier CSV est vide", file=csv_path.name)]
    problems: list[ImportProblem] = []
    if "path" not in header:
        problems.append(ImportProblem("colonne obligatoire absente", line=1, column="path"))
    for column in {column for column in header if header.count(column) > 1}:
        problems.append(ImportProblem("colonne en double", line=1, column=column))
    rows: list[tuple[int, dict[str, str]]] = []
    for values in reader:
        line = reader.line_num
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(header):
            problems.append(ImportProblem(f"{len(values)} valeurs pour {len(header)} colonnes", line=line))
            continue
        rows.append((line, {column: value.strip() for column, value in zip(header, values, strict=True)}))
    return header, rows, problems


def _parse_date(value: str) -> date:
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, pattern).date()
        except ValueError:
            continue
    raise ValueError(f"date invalide « {value} » (attendu AAAA-MM-JJ ou JJ/MM/AAAA)")


_SPACES = re.compile(r"\s")  # thousands' separators too: no-break and narrow no-break spaces are \s
_TRUE = {"oui", "vrai", "true", "1", "o", "yes"}
_FALSE = {"non", "faux", "false", "0", "n", "no"}


def _typed_value(spec: dict[str, Any], raw: str) -> Any:
    """A CSV cell converted to the JSON value of a typed field, or ValueError in French."""
    kind = spec.get("kind", "text")
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"nombre entier attendu, « {raw} » reçu") from None
    if kind == "decimal":
        # Kept as text (a float loses digits: 12345678901234567.89), only the thousands' spaces dropped: the
        # type layer reads the French comma and normalises the value as it does for the API.
        cleaned = _SPACES.sub("", raw)
        try:
            number = Decimal(cleaned.replace(",", "."))
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise ValueError(f"nombre décimal attendu, « {raw} » reçu")
        return cleaned
    if kind == "date":
        return _parse_date(raw).isoformat()
    if kind == "boolean":
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ValueError(f"oui ou non attendu, « {raw} » reçu")
    if kind == "choice":
        choices = [str(choice) for choice in spec.get("choices") or []]
        if raw not in choices:
            raise ValueError(f"« {raw} » n'est pas dans la liste : {', '.join(choices)}")
        return raw
    return raw


def _split_tags(raw: str) -> list[str]:
    return [tag.strip() for tag in re.split(r"[|,]", raw) if tag.strip()]


def plan_import(
    session: Session, principal: Principal, root: Path, csv_path: Path | None, default_type: str
) -> list[PlannedFile]:
    """Check the whole tree and its CSV; return what to import, or raise ImportRefused with every problem."""
    if not root.is_dir():
        raise InvalidInput(message("le dossier %(root)s n'existe pas", root=root))
    exclude = csv_path.resolve() if csv_path is not None else None
    files, problems = _tree_files(root, exclude)
    by_relative = {path.relative_to(root).as_posix(): path for path in files}
    types = {
        row.code: row
        for row in session.execute(select(DocumentType).where(DocumentType.tenant_id == principal.tenant_id)).scalars()
    }
    rows: dict[str, tuple[int, dict[str, str]]] = {}
    if csv_path is not None:
        if not csv_path.is_file():
            raise InvalidInput(message("le fichier CSV %(csv_path)s n'existe pas", csv_path=csv_path))
        _header, csv_rows, csv_problems = _read_csv(csv_path)
        problems += csv_problems
        for line, row in csv_rows:
            relative = row.get("path", "").replace("\\", "/").strip("/")
            if not relative:
                problems.append(ImportProblem("chemin manquant", line=line, column="path"))
            elif ".." in relative.split("/") or relative not in by_relative:
                problems.append(
                    ImportProblem(f"fichier « {relative} » absent de l'arborescence", line=line, column="path")
                )
            elif relative in rows:
                problems.append(
                    ImportProblem(f"fichier déjà décrit à la ligne {rows[relative][0]}", line=line, column="path")
                )
            else:
                rows[relative] = (line, row)
    planned: list[PlannedFile] = []
    for relative, path in by_relative.items():
        described = rows.get(relative)
        at, cells = (described[0], described[1]) if described else (None, {})
        values, row_problems = _row_metadata(path, cells, at, types, default_type)
        problems += row_problems
        size = path.stat().st_size
        if size == 0:
            problems.append(ImportProblem("le fichier est vide", file=relative, line=at))
        elif size > get_settings().max_upload_bytes:
            problems.append(ImportProblem("le fichier dépasse la taille maximale", file=relative, line=at))
        planned.append(PlannedFile(path, relative, values))
    if problems:
        problems.sort(key=lambda problem: (problem.line is None, problem.line or 0, problem.file or ""))
        raise ImportRefused(problems)
    return planned


def _row_metadata(
    path: Path, row: dict[str, str], line: int | None, types: dict[str, DocumentType], default_type: str
) -> tuple[dict[str, Any], list[ImportProblem]]:
    problems: list[ImportProblem] = []
    code = row.get("type") or default_type
    values: dict[str, Any] = {"title": row.get("title") or path.stem or path.name, "document_type": code}
    document_type = types.get(code)
    if document_type is not None:
        values["type"] = code
    elif row.get("type"):
        problems.append(ImportProblem(f"type de document « {code} » inconnu", line=line, column="type"))
    if row.get("date"):
        try:
            values["date"] = _parse_date(row["date"]).isoformat()
        except ValueError as exc:
            problems.append(ImportProblem(str(exc), line=line, column="date"))
    if row.get("tags"):
        values["tags"] = _split_tags(row["tags"])
    fields = {spec["name"]: spec for spec in (document_type.fields if document_type else []) if not spec.get("retired")}
    field_values: dict[str, Any] = {}
    for column, raw in row.items():
        if column in _CSV_BASE or not raw:
            continue
        spec = fields.get(column)
        if spec is None:
            problems.append(ImportProblem(f"champ inconnu pour le type « {code} »", line=line, column=column))
            continue
        try:
            field_values[column] = _typed_value(spec, raw)
        except ValueError as exc:
            problems.append(ImportProblem(str(exc), line=line, column=column))
    for name, spec in fields.items():
        if spec.get("required") and not row.get(name):
            problems.append(ImportProblem("champ obligatoire non renseigné", line=line, column=name, file=path.name))
    if field_values:
        values["field_values"] = field_values
    try:
        parse_metadata(values)
    except InvalidInput as exc:
        problems.append(ImportProblem(exc.detail, line=line, file=path.name))
    return values, problems


def import_tree(
    session: Session,
    principal: Principal,
    root: Path,
    csv_path: Path | None = None,
    *,
    default_type: str = "document",
    parent_folder_id: str | None = None,
) -> ImportReport:
    """Import a folder tree (its folders become classification folders, created as needed) with its CSV.

    Everything is checked first: any problem raises ImportRefused listing all of them, nothing imported.
    Files already imported (same place, same digest) are skipped, so a rerun finishes an interrupted one.
    """
    root = root.resolve()
    try:
        planned = plan_import(session, principal, root, csv_path, default_type)
    except ImportRefused as refused:
        run = _start_run(session, principal, f"import:{root}")
        # The first ones kept with the run (a CSV gone wrong may hold millions of bad lines)
        _end_run(session, run, 0, [problem.as_dict() for problem in refused.problems[:_KEPT_PROBLEMS]])
        refused.run_id = run.id
        raise
    run = _start_run(session, principal, f"import:{root}")
    report = ImportReport(run.id)
    folders: dict[str, str | None] = {"": parent_folder_id}
    errors: list[dict[str, Any]] = []
    try:
        _import_planned(session, principal, root, planned, run, report, folders, errors)
    except (ServiceUnavailable, KeyboardInterrupt, SystemExit):  # the store down, Ctrl-C, SIGTERM
        session.rollback()  # the file under way
        # Counted in the database: the signal may come between a file's commit and the report's line.
        imported = session.execute(select(func.count()).where(ImportedFile.run_id == run.id)).scalar_one()
        _end_run(session, run, imported, errors, status="interrupted")
        raise
    _end_run(session, run, len(report.imported), errors)
    return report


_KEPT_PROBLEMS = 1000


def _import_planned(
    session: Session,
    principal: Principal,
    root: Path,
    planned: list[PlannedFile],
    run: ImportRun,
    report: ImportReport,
    folders: dict[str, str | None],
    errors: list[dict[str, Any]],
) -> None:
    for item in planned:
        source = f"import:{root}/{item.relative}"
        try:
            sha256 = _sha256(item.path)
            if _already_imported(session, principal.tenant_id, source, sha256) is not None:
                report.skipped.append(item.relative)
                continue
            folder_id = _ensure_folders(
                session, principal, item.relative.rsplit("/", 1)[0] if "/" in item.relative else "", folders, report
            )
            values = dict(item.values)
            if folder_id is not None:
                values["folder_id"] = folder_id
            document = import_file(session, principal, run, item.path, source, parse_metadata(values))
        except ServiceUnavailable as exc:
            # The store down: every next file would wait for it, then fail the same way. Stopped here; a rerun
            # skips what is imported.
            errors.append({"file": item.relative, "message": exc.detail})
            raise ServiceUnavailable(
                message(
                    "%(detail)s ; import arrêté à %(file)s après %(count)s fichier(s) importé(s) : relancez la même "
                    "commande, les fichiers déjà importés seront sautés",
                    detail=exc.detail,
                    file=item.relative,
                    count=len(report.imported),
                )
            ) from None
        except SocleError as exc:
            session.rollback()
            errors.append({"file": item.relative, "message": exc.detail})
            report.failed.append((item.relative, exc.detail))
            continue
        report.imported.append((item.relative, document.id))


def _ensure_folders(
    session: Session, principal: Principal, relative_dir: str, known: dict[str, str | None], report: ImportReport
) -> str | None:
    """The classification folder for a directory of the tree, created (with its parents) when missing."""
    if relative_dir in known:
        return known[relative_dir]
    parent_dir, _, name = relative_dir.rpartition("/")
    parent_id = _ensure_folders(session, principal, parent_dir, known, report)
    existing = session.execute(
        select(Folder).where(
            Folder.tenant_id == principal.tenant_id, Folder.parent_id == parent_id, Folder.name == name
        )
    ).scalar_one_or_none()
    if existing is None:
        existing = _create_folder(session, principal, name, parent_id)
        report.folders_created += 1
    elif "read" not in access.folder_rights(session, principal, existing.id):
        # What creating it would answer: the folder's id (and that it lies there) is not the importer's to see.
        raise Conflict(message("un dossier « %(name)s » existe déjà à cet endroit", name=name))
    known[relative_dir] = existing.id
    return existing.id


def _create_folder(session: Session, principal: Principal, name: str, parent_id: str | None) -> Folder:
    from ged import plan  # the classification plan's own use case: rights, audit, path
    from ged.schemas import FolderIn

    return plan.create_folder(session, principal, FolderIn.model_validate({"name": name, "parent_id": parent_id}))
