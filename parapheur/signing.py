"""Signing a folder's main documents for one act, in the folder's format: PAdES, CAdES detached or XAdES (PES).

Low level on purpose: the engine (parapheur.service) calls :func:`sign_documents` before recording a signature
act, and :func:`restore_documents` when the act is undone (droit de remords); this module never imports it.

Degrade, then upgrade: when the level asked for needs a responder (TSA, OCSP, CRL) that does not answer, the
document is signed at the highest level possible now, the folder's ``pending_level`` keeps the level owed,
and the job ``parapheur.jobs.upgrade_signature`` raises it later (see :func:`upgrade_folder`).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from io import BytesIO
from pathlib import Path
from typing import TypeVar

from sqlalchemy.orm import Session

from parapheur import identities, pades
from parapheur.circuits import Actor
from parapheur.models import Desk, Folder, FolderDocument, FolderEvent, SignatureType, Subtype
from socle import audit, messages
from socle.errors import InvalidInput, ServiceUnavailable, message
from socle.models import Tenant
from socle.queue import enqueue
from socle.settings import get_settings
from socle.storage import get_store

log = logging.getLogger("parapheur.signing")

PADES, CADES, XADES = "pades", "cades", "xades"
# What to fall back to when a responder is down: B-T needs the TSA only, B-LT and B-LTA revocation data too.
_FALLBACKS: dict[str, tuple[pades.SignatureLevel, ...]] = {
    "B-B": ("B-B",),
    "B-T": ("B-T", "B-B"),
    "B-LT": ("B-LT", "B-T", "B-B"),
    "B-LTA": ("B-LTA", "B-T", "B-B"),
}
_CADES_LEVELS = ("B-B", "B-T")
_T = TypeVar("_T")
_SERVICE = Actor("service:parapheur", "Parapheur")


def trust_services() -> pades.TrustServices:
    """The timestamp authority (setting ``tsa_url``) used above B-B; none configured → B-T is impossible."""
    return pades.TrustServices(tsa_url=get_settings().tsa_url)


# ---------------------------------------------------------------------------------------------------------
# Signing an act


def sign_documents(
    session: Session,
    folder: Folder,
    actor: Actor,
    *,
    identity_id: str | None = None,
    stamp_name: str | None = None,
) -> dict[str, str | None]:
    """Sign every main document of ``folder`` for ``actor``'s act, in the folder's format and level.

    :param identity_id: the identity to sign with (a seal); None = the acting user's own identity.
    :param stamp_name: the name the stamp shows after "Signé par" (default: the actor's display name).
    :returns: {document id: its signed_key (or signature_key for CAdES) before this act}, for the droit de
        remords. Documents are updated in the session; nothing is committed here.
    :raises InvalidInput: unusable document (encrypted, broken, certified against changes, not a PES),
        unusable identity (wrong PIN, expired or revoked certificate).
    :raises Conflict: no identity registered for the user.
    :raises ServiceUnavailable: even a B-B signature could not be made for a service reason (retry later).
    """
    row = (
        identities.identity_row(session, folder.tenant_id, identity_id)
        if identity_id
        else identities.user_identity_row(session, folder.tenant_id, actor.username)
    )
    identity = identities.load_row(row)
    documents = folder.main_documents
    if not documents:
        raise InvalidInput(message("ce dossier n'a aucun document principal à signer"))
    request = signature_request(session, folder, actor, row.stamp_image, stamp_name)
    previous: dict[str, str | None] = {}
    reached: list[pades.SignatureLevel] = []
    for document in documents:
        previous[document.id], level = _sign_one(folder, document, identity, request)
        reached.append(level)
    after_signing(session, folder, actor, reached)
    return previous


def restore_documents(folder: Folder, previous: dict[str, str | None]) -> None:
    """Undo a signature act: put back each document's key as it was before (see :func:`sign_documents`)."""
    for document in folder.documents:
        if document.id not in previous:
            continue
        if folder.signature_format == CADES:
            document.signature_key = previous[document.id]
        else:
            document.signed_key = previous[document.id]


def signature_request(
    session: Session, folder: Folder, actor: Actor, stamp_image: bytes | None = None, stamp_name: str | None = None
) -> pades.SignatureRequest:
    """The PAdES request of an act on ``folder``: level, stamp wording (role, delegation, image) and place."""
    tenant = session.get(Tenant, folder.tenant_id)
    return pades.SignatureRequest(
        signer_name=stamp_name or actor.display_name,
        reason=f"Signature : {folder.title}"[:200],
        location=tenant.name if tenant else None,
        level=_level(folder.signature_level),
        role=actor.stamp_role,
        on_behalf_of=_replaced_quality(session, actor),
        stamp_image=stamp_image,
        placement=placement(session, folder),
    )


def _replaced_quality(session: Session, actor: Actor) -> str | None:
    """For a signature by delegation, the replaced bureau's quality in the stamp (« Le Maire »), else its name."""
    if actor.on_behalf_of_desk_id is None:
        return actor.on_behalf_of_name
    replaced = session.get(Desk, actor.on_behalf_of_desk_id)
    return (replaced.stamp_role if replaced is not None else None) or actor.on_behalf_of_name


def placement(session: Session, folder: Folder) -> pades.StampPlacement:
    """Where the folder's type puts the stamp (automatic when the folder has no typology)."""
    subtype = session.get(Subtype, folder.subtype_id) if folder.subtype_id else None
    kind: SignatureType | None = subtype.type if subtype else None
    if kind is None:
        return pades.StampPlacement()
    return pades.StampPlacement(
        page=kind.stamp_page, x=kind.stamp_x, y=kind.stamp_y, width=kind.stamp_width, height=kind.stamp_height
    )


def _level(value: str | None) -> pades.SignatureLevel:
    for level in pades.LEVELS:
        if level == value:
            return level
    return "B-B"


def _sign_one(
    folder: Folder, document: FolderDocument, identity: pades.SigningIdentity, request: pades.SignatureRequest
) -> tuple[str | None, pades.SignatureLevel]:
    """Sign one document; returns (its key before, the level reached)."""
    if folder.signature_format == CADES:
        before = document.signature_key
        signature, level = _cades(document, identity, request.level)
        document.signature_key = _put_bytes(signature)
        return before, level
    before = document.signed_key
    with scratch_dir() as scratch, get_store().local_path(document.current_key) as source:
        output = scratch / "signed"
        if folder.signature_format == XADES:
            _xades(source, output, identity, request)
            level = request.level  # XAdES-EPES for Hélios: no level ladder
        else:
            level = _pades(source, output, identity, request)
        document.signed_key = put_file(output)
    return before, level


def _pades(
    source: Path, output: Path, identity: pades.SigningIdentity, request: pades.SignatureRequest
) -> pades.SignatureLevel:
    services = trust_services()

    def sign_at(level: pades.SignatureLevel) -> None:
        pades.sign_pdf(source, output, identity, _at_level(request, level), services)

    _, level = _highest_possible(request.level, sign_at)
    return level


def _highest_possible(
    wanted: pades.SignatureLevel, sign_at: Callable[[pades.SignatureLevel], _T]
) -> tuple[_T, pades.SignatureLevel]:
    """Sign at ``wanted``, else at the next level down while a responder is down (degrade, then upgrade).

    :raises InvalidInput: the document or the identity cannot sign at all.
    :raises ServiceUnavailable: not even B-B could be made for a service reason.
    """
    last: pades.SigningError | None = None
    for level in _FALLBACKS[wanted]:
        try:
            return sign_at(level), level
        except pades.PdfError as exc:
            raise InvalidInput(str(exc)) from None
        except pades.SigningError as exc:
            if not exc.retryable:
                raise InvalidInput(str(exc)) from None
            last = exc
            log.warning("signature at %s impossible now (%s), trying a lower level", level, exc)
    raise ServiceUnavailable(str(last))


def _at_level(request: pades.SignatureRequest, level: pades.SignatureLevel) -> pades.SignatureRequest:
    return replace(request, level=level)


def _xades(source: Path, output: Path, identity: pades.SigningIdentity, request: pades.SignatureRequest) -> None:
    from parapheur import xades

    try:
        xades.sign_pes(source, output, identity, role=request.role, city=request.location)
    except (xades.PesError, pades.SigningError, pades.PdfError) as exc:
        raise InvalidInput(str(exc)) from None


def _cades(
    document: FolderDocument, identity: pades.SigningIdentity, wanted: pades.SignatureLevel
) -> tuple[bytes, pades.SignatureLevel]:
    """A detached signature of the document as received, added beside the earlier signers' ones."""
    from parapheur import cades

    target: pades.SignatureLevel = "B-T" if wanted != "B-B" else "B-B"
    services = trust_services()
    with get_store().local_path(document.key) as source:

        def sign_at(level: pades.SignatureLevel) -> bytes:
            return cades.sign_detached(source, identity, level=level, services=services)

        signature, level = _highest_possible(target, sign_at)
    if document.signature_key:
        try:
            signature = cades.merge_signatures(_get_bytes(document.signature_key), signature)
        except pades.PdfError as exc:  # the stored .p7s is unreadable: said, not a server error
            raise InvalidInput(str(exc)) from None
    return signature, level


def after_signing(session: Session, folder: Folder, actor: Actor, reached: list[pades.SignatureLevel]) -> None:
    """A degraded signature: the folder owes its level; note it in the history and ask for the upgrade."""
    wanted = _level(folder.signature_level)
    if folder.signature_format == XADES or not reached:
        return
    if folder.signature_format == CADES and wanted not in _CADES_LEVELS:
        wanted = "B-T"
    lowest = min(reached, key=pades.LEVELS.index)
    if pades.LEVELS.index(lowest) >= pades.LEVELS.index(wanted):
        return
    folder.pending_level = wanted
    comment = (
        f"Signature faite au niveau {lowest} (service d'horodatage ou de révocation injoignable) ; "
        f"le niveau {wanted} sera atteint automatiquement."
    )
    details = {"reached": lowest, "pending": wanted}
    session.add(FolderEvent.of_act(folder, actor, "signature_degraded", comment, details))
    _audit(session, folder, actor, "parapheur.signature_degraded", details)
    request_upgrade(session, folder)


def request_upgrade(session: Session, folder: Folder) -> None:
    """Enqueue the upgrade job, once per signed state of the folder (keyed by its documents' keys)."""
    state = "|".join(f"{doc.signed_key}:{doc.signature_key}" for doc in folder.main_documents)
    digest = hashlib.sha256(state.encode()).hexdigest()[:32]
    enqueue(
        session,
        messages.PARAPHEUR_UPGRADE_SIGNATURE,
        key=f"parapheur.upgrade:{folder.id}:{digest}",
        tenant_id=folder.tenant_id,
        folder_id=folder.id,
    )


# ---------------------------------------------------------------------------------------------------------
# Upgrading a degraded signature


def upgrade_folder(session: Session, folder: Folder) -> pades.SignatureLevel | None:
    """Raise the folder's signed documents to ``pending_level``; clears it once reached. Idempotent.

    :returns: the level reached, or None when nothing was owed (or no signature is left to upgrade).
    :raises ServiceUnavailable: a responder is still down (the job is retried later).
    :raises InvalidInput: the document cannot be upgraded (the job fails; the folder keeps its pending level,
        for an operator to retry the job once the cause is fixed).
    """
    target = folder.pending_level
    if target is None:
        return None
    wanted = _level(target)
    reached: list[pades.SignatureLevel] = []
    for document in folder.main_documents:
        if folder.signature_format == CADES:
            if document.signature_key:
                document.signature_key = _put_bytes(_timestamp_cades(_get_bytes(document.signature_key)))
                reached.append("B-T")
        elif document.signed_key:
            reached.append(_upgrade_pdf(document, wanted))
    if not reached:
        # The degraded signature was taken back (droit de remords): nothing is owed, no upgrade to claim.
        folder.pending_level = None
        return None
    lowest = min(reached, key=pades.LEVELS.index)
    if pades.LEVELS.index(lowest) >= pades.LEVELS.index(wanted):
        folder.pending_level = None
    details = {"reached": lowest, "pending": folder.pending_level}
    comment = f"Signature portée au niveau {lowest}."
    session.add(FolderEvent.of_act(folder, _SERVICE, "signature_upgraded", comment, details))
    _audit(session, folder, _SERVICE, "parapheur.signature_upgraded", details)
    return lowest


def _audit(session: Session, folder: Folder, actor: Actor, action: str, details: Mapping[str, str | None]) -> None:
    """The history event's audit entry, named like the acts' (``parapheur.`` and the event's action)."""
    audit.record(
        session,
        tenant_id=folder.tenant_id,
        actor=actor.username if ":" in actor.username else f"user:{actor.username}",
        action=action,
        object_type="folder",
        object_id=folder.id,
        details={"title": folder.title, **details},
    )


def _timestamp_cades(signature: bytes) -> bytes:
    from parapheur import cades

    try:
        return cades.add_signature_timestamps(signature, trust_services())
    except pades.SigningError as exc:
        raise (ServiceUnavailable if exc.retryable else InvalidInput)(str(exc)) from None
    except pades.PdfError as exc:
        raise InvalidInput(str(exc)) from None


def _upgrade_pdf(document: FolderDocument, target: pades.SignatureLevel) -> pades.SignatureLevel:
    assert document.signed_key is not None
    with scratch_dir() as scratch, get_store().local_path(document.signed_key) as source:
        output = scratch / "upgraded.pdf"
        try:
            level = pades.upgrade_pdf(source, output, target, trust_services())
        except pades.PdfError as exc:
            raise InvalidInput(str(exc)) from None
        except pades.SigningError as exc:
            raise (ServiceUnavailable if exc.retryable else InvalidInput)(str(exc)) from None
        document.signed_key = put_file(output)
    return level


# ---------------------------------------------------------------------------------------------------------
# Store helpers


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A private temporary folder under the data directory (same file system as the store), removed after."""
    work_dir = get_settings().data_dir / "tmp"
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        yield Path(scratch)


def put_file(path: Path) -> str:
    """Store a file's content; its object key."""
    with path.open("rb") as stream:
        return get_store().put(stream).key


def _put_bytes(data: bytes) -> str:
    return get_store().put(BytesIO(data)).key


def _get_bytes(key: str) -> bytes:
    with get_store().open(key) as stream:
        return bytes(stream.read())
