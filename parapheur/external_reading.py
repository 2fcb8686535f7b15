"""Lecture obligatoire for the external signer (« signature externe »), who has no account.

An agent's reading is kept as a ReadMark under their username (parapheur.service.record_read); the external
signer's is kept under their link's step, ``externe:<step id>``: the one-time link is who they are, and the
step id fits the column whatever the length of their address. Being shown a document's last page image, or
downloading it, counts as reading it, as for agents; the history and the audit log name the signer as their
signature will (``externe:<adresse>``).

:func:`check_read` is the rule of parapheur.service.check_read for that reader: when the folder's sous-type asks
for reading, every main document must have been read in its current state before signing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from parapheur import service
from parapheur.circuits import Actor
from parapheur.models import Folder, FolderDocument, FolderEvent, ReadMark, Step, Subtype, insert_once
from socle.errors import Conflict, message

_NO_ADDRESS = "adresse inconnue"  # as parapheur.external.sign names a signer without an address


def reader(step: Step) -> str:
    """The ReadMark ``username`` of the external signer of ``step``."""
    return f"externe:{step.id}"


def signer(step: Step) -> Actor:
    """The external signer as the history names them (the name typed at signing is not known yet)."""
    email = step.external_email or _NO_ADDRESS
    return Actor(
        username=f"externe:{email}", display_name=f"{step.external_name} ({email})" if step.external_name else email
    )


def record_read(session: Session, folder: Folder, step: Step, document: FolderDocument) -> None:
    """The external signer of ``step`` was shown the whole of ``document`` (or downloaded it): it counts as read.

    Once per state of the document: a ReadMark, a history line and an audit entry, committed; nothing the
    second time (nor when a concurrent request recorded it first).
    """
    key = document.current_key
    who = reader(step)
    known = session.execute(
        select(ReadMark.id).where(
            ReadMark.folder_id == folder.id, ReadMark.username == who, ReadMark.document_key == key
        )
    ).first()
    if known is not None:
        return
    values = {"folder_id": folder.id, "username": who, "document_key": key}
    if not insert_once(session, ReadMark, values, ("folder_id", "username", "document_key")):
        return
    actor = signer(step)
    details = {"document": document.id, "sha256": key}
    session.add(FolderEvent.of_act(folder, actor, "document_read", None, details))
    service.audit_folder(session, folder, actor.username, "parapheur.document_read", **details)
    session.commit()


def check_read(session: Session, folder: Folder, step: Step) -> None:
    """Lecture obligatoire: raise Conflict unless the external signer read every main document as it stands."""
    if not reading_required(session, folder):
        return
    read = set(
        session.execute(
            select(ReadMark.document_key).where(ReadMark.folder_id == folder.id, ReadMark.username == reader(step))
        ).scalars()
    )
    unread = [document.filename for document in folder.main_documents if document.current_key not in read]
    if unread:
        raise Conflict(
            message("lecture obligatoire avant de signer : ouvrez d'abord %(unread)s", unread=", ".join(unread)),
            unread=unread,
        )


def reading_required(session: Session, folder: Folder) -> bool:
    """Whether the folder's sous-type asks for reading before signing (the page says so)."""
    subtype = session.get(Subtype, folder.subtype_id) if folder.subtype_id else None
    return bool(subtype and subtype.reading_required)
