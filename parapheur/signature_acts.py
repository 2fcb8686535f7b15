"""Signature acts beside the server-side one: client-side (smart card, prepare/finish) and paper signature.

Client-side signing: ``prepare`` writes the PDF with its stamp and an empty signature container and returns
what the card must sign; ``finish`` puts the card's signature in and records the act. Between the two calls a
PreparedSignature row keeps pyHanko's state and the prepared PDF's key; it serves once, before it expires,
to the same user, while the folder still waits at the same step on the same document.

Signature papier: the agent prints, signs by hand and uploads the scan (a PDF), kept as a document of role
"scan"; the act is recorded as such (the right not to use digital tools).
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy.orm import Session

from parapheur import pades, remote, service, signing
from parapheur.circuits import Actor
from parapheur.models import Folder, FolderDocument, PreparedSignature, Step
from socle.auth import Principal
from socle.db import utcnow
from socle.errors import Conflict, Forbidden, InvalidInput, NotFound, ServiceUnavailable, message
from socle.settings import get_settings
from socle.storage import get_store
from socle.storage.api import spool

PREPARED_LIFETIME = timedelta(minutes=15)
MAX_CHAIN = 10


def decode_b64(value: str, what: str) -> bytes:
    """Strict base64. :raises InvalidInput: naming ``what``."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(message("%(what)s : base64 invalide", what=what)) from None


# ---------------------------------------------------------------------------------------------------------
# Client-side signing


def prepare(
    session: Session,
    principal: Principal,
    folder_id: str,
    certificate_der: bytes,
    chain_der: list[bytes],
    desk_id: str | None = None,
) -> tuple[PreparedSignature, remote.PreparedSignature]:
    """Prepare the folder's (single, PDF) main document for the card of ``principal``; commits.

    :raises InvalidInput: not a PAdES folder, several main documents, bad certificate or document.
    :raises Conflict/Forbidden: the folder does not wait for this user's signature (see service).
    """
    if len(chain_der) > MAX_CHAIN:
        raise InvalidInput(message("chaîne de certificats trop longue (%(max_chain)s au plus)", max_chain=MAX_CHAIN))
    folder, step, actor = service.current_for(session, principal, folder_id, ("signature",), desk_id)
    service.check_read(session, principal, folder)
    document = _single_pdf(folder)
    request = signing.signature_request(session, folder, actor)
    with signing.scratch_dir() as scratch, get_store().local_path(document.current_key) as source:
        prepared_pdf = scratch / "prepared.pdf"
        try:
            prepared = remote.prepare(source, prepared_pdf, certificate_der, chain_der, request)
        except (pades.PdfError, pades.IdentityError, pades.SigningError) as exc:
            raise InvalidInput(str(exc)) from None
        prepared_key = signing.put_file(prepared_pdf)
    row = PreparedSignature(
        tenant_id=folder.tenant_id,
        folder_id=folder.id,
        step_id=step.id,
        document_id=document.id,
        username=principal.username,
        desk_id=actor.desk_id,
        on_behalf_of_desk_id=actor.on_behalf_of_desk_id,
        source_key=document.current_key,
        prepared_key=prepared_key,
        state=prepared.state,
        expires_at=utcnow() + PREPARED_LIFETIME,
    )
    session.add(row)
    session.commit()
    return row, prepared


def finish(session: Session, principal: Principal, folder_id: str, prepared_id: str, signature_value: bytes) -> Folder:
    """Complete a prepared signature with the card's value, record the signature act; commits.

    :raises NotFound: unknown preparation. :raises Forbidden: another user's. :raises Conflict: expired, used, or
        the folder moved on since. :raises InvalidInput: the value does not match the certificate.
    :raises ServiceUnavailable: the timestamp authority is down (the preparation stays usable until it expires).
    """
    service.folder_for(session, principal, folder_id)  # a folder this user may not see: 404 before anything
    row = session.get(PreparedSignature, prepared_id)
    if row is None or row.folder_id != folder_id or row.tenant_id != principal.tenant_id:
        raise NotFound(message("signature préparée introuvable"))
    if row.username != principal.username:
        raise Forbidden(message("cette signature a été préparée par une autre personne"))
    # The step's desk the preparation was made for (the replaced one under delegation), not merely the first
    # free desk of the user's: someone holding two desks of the step prepared for one of them.
    step_desk = row.on_behalf_of_desk_id or row.desk_id
    folder, step, actor = service.current_for(session, principal, folder_id, ("signature",), step_desk)
    session.refresh(row)  # read again under the folder's lock: a finish running at the same time may have used it
    _check_still_valid(row, folder, step, actor)
    document = next(doc for doc in folder.documents if doc.id == row.document_id)
    state_level = _state_level(row.state)
    with signing.scratch_dir() as scratch, get_store().local_path(row.prepared_key) as prepared_pdf:
        output = scratch / "signed.pdf"
        try:
            remote.finish(prepared_pdf, row.state, signature_value, output, signing.trust_services())
        except pades.SigningError as exc:
            raise (ServiceUnavailable if exc.retryable else InvalidInput)(str(exc)) from None
        except pades.PdfError as exc:
            raise InvalidInput(str(exc)) from None
        previous = {document.id: document.signed_key}
        document.signed_key = signing.put_file(output)
    row.used_at = utcnow()
    signing.after_signing(session, folder, actor, [state_level])
    service.record_act(session, folder, step, actor, "signature", "Signature par carte (poste de l'agent)", previous)
    session.commit()
    return folder


def _single_pdf(folder: Folder) -> FolderDocument:
    if folder.signature_format != signing.PADES:
        raise InvalidInput(
            message("la signature par carte sur le poste de l'agent n'est possible que pour un PDF (PAdES)")
        )
    documents = folder.main_documents
    if len(documents) != 1:
        raise InvalidInput(message("la signature par carte demande un seul document principal"))
    return documents[0]


def _check_still_valid(row: PreparedSignature, folder: Folder, step: Step, actor: Actor) -> None:
    if row.used_at is not None:
        raise Conflict(message("cette signature préparée a déjà servi : préparez-en une nouvelle"))
    if row.expires_at <= utcnow():
        raise Conflict(message("la signature préparée a expiré : préparez-en une nouvelle"))
    if row.step_id != step.id or (row.desk_id, row.on_behalf_of_desk_id) != (
        actor.desk_id,
        actor.on_behalf_of_desk_id,
    ):
        raise Conflict(message("le dossier a changé d'étape depuis la préparation : préparez une nouvelle signature"))
    document = next((doc for doc in folder.documents if doc.id == row.document_id), None)
    if document is None or document.current_key != row.source_key:
        raise Conflict(message("le document a changé depuis la préparation : préparez une nouvelle signature"))


def _state_level(state: bytes) -> pades.SignatureLevel:
    try:
        return "B-T" if json.loads(state).get("level") == "B-T" else "B-B"
    except (ValueError, AttributeError):
        return "B-B"


# ---------------------------------------------------------------------------------------------------------
# Paper signature


def paper_signature(
    session: Session,
    principal: Principal,
    folder_id: str,
    scan: BinaryIO,
    filename: str,
    comment: str | None,
    desk_id: str | None = None,
) -> Folder:
    """Record a handwritten signature: the scan (a PDF) joins the folder as role "scan"; commits.

    :raises InvalidInput: the scan is not a readable PDF. :raises Conflict/Forbidden: see service.
    """
    service.check_comment(comment)
    folder, step, actor = service.current_for(session, principal, folder_id, ("paper_signature",), desk_id)
    settings = get_settings()
    session.rollback()  # no lock held while the upload is spooled and checked
    spooled = spool(
        scan, settings.data_dir / "tmp", expected_sha256=None, max_size=settings.max_upload_bytes, check=_check_pdf
    )
    try:
        with spooled.path.open("rb") as handle:
            stored = get_store().put(handle)
    finally:
        spooled.path.unlink(missing_ok=True)
    folder, step, actor = service.current_for(session, principal, folder_id, ("paper_signature",), desk_id)
    position = max((doc.position for doc in folder.documents), default=-1) + 1
    scan_document = FolderDocument(
        role="scan",
        position=position,
        filename=filename,
        media_type="application/pdf",
        key=stored.key,
        size=stored.size,
        added_by=principal.username,
    )
    folder.documents.append(scan_document)
    session.flush()
    text = f"Signature manuscrite ; scan : {filename}" + (f" — {comment}" if comment else "")
    # {scan id: None}: the scan did not exist before the act, and a droit de remords takes it out with the act.
    service.record_act(session, folder, step, actor, "paper_signature", text, previous_keys={scan_document.id: None})
    session.commit()
    return folder


def _check_pdf(path: Path) -> None:
    try:
        pades.inspect_pdf(path)
    except pades.PdfError as exc:
        raise InvalidInput(message("le scan de la signature papier : %(exc)s", exc=exc)) from None
