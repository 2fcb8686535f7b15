"""Signature externe: an outside signer, with no account, signs through a one-time link sent by e-mail.

The link carries a random secret; only its SHA-256 is stored on the step, with an expiry date. The signer
sees the folder's title and documents, consents, types their name, and the server signs with the tenant's
seal identity, the stamp naming the signer ("Signé par <nom> (<adresse>) — lien à usage unique"). The act is
recorded as "externe:<adresse>"; the link then dies, like an expired one (404, the same answer as a link
that never existed: nothing tells a guesser which secrets were real).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from parapheur import events, external_reading, seal, service, signing
from parapheur.circuits import Actor
from parapheur.models import Folder, FolderDocument, Step
from socle.db import utcnow
from socle.errors import InvalidInput, NotFound, message
from socle.text import check_text

EXTERNAL_ACTION = "external_signature"
_GONE = "lien de signature invalide, déjà utilisé ou expiré"


@dataclass(frozen=True)
class ExternalView:
    title: str
    signer_name: str | None
    signer_email: str | None
    expires_at: str | None
    documents: list[FolderDocument]


def find(session: Session, secret: str, *, for_update: bool = False) -> tuple[Folder, Step]:
    """The folder and current external step this secret opens. :raises NotFound: unknown, used or expired.

    ``for_update`` locks the folder first, then reads the step again: of two requests signing at once, the
    second sees the link already dead.
    """
    if not secret or len(secret) > 200:
        raise NotFound(_GONE)
    digest = events.hash_secret(secret)
    step = _step(session, digest)
    folder = session.get(Folder, step.folder_id)
    if folder is None:
        raise NotFound(_GONE)
    if for_update:
        folder = service.get_folder(session, folder.tenant_id, folder.id, for_update=True)
        step = _step(session, digest, fresh=True)
    if folder.status != "in_progress":
        raise NotFound(_GONE)
    return folder, step


def _step(session: Session, digest: str, *, fresh: bool = False) -> Step:
    query = select(Step).where(Step.token_hash == digest)
    if fresh:
        query = query.execution_options(populate_existing=True)
    step = session.execute(query).scalar_one_or_none()
    if (
        step is None
        or step.kind != "external_signature"
        or step.status != "current"
        or step.token_expires_at is None
        or step.token_expires_at <= utcnow()
    ):
        raise NotFound(_GONE)
    return step


def view(session: Session, secret: str) -> ExternalView:
    """What the external signer sees: the title, the documents (main and annexes), their own name."""
    folder, step = find(session, secret)
    return ExternalView(
        title=folder.title,
        signer_name=step.external_name,
        signer_email=step.external_email,
        expires_at=step.token_expires_at.isoformat() if step.token_expires_at else None,
        documents=[doc for doc in folder.documents if doc.role in ("main", "annex")],
    )


def document(session: Session, secret: str, document_id: str) -> tuple[str, FolderDocument]:
    """(object key, document) of one of the folder's documents, as it stands (signed so far)."""
    folder, _step = find(session, secret)
    for doc in folder.documents:
        if doc.id == document_id and doc.role in ("main", "annex"):
            return doc.current_key, doc
    raise NotFound(message("document introuvable dans ce dossier"))


def sign(session: Session, secret: str, consent: bool, name: str) -> Folder:
    """Sign with the tenant's seal for the external signer, record the act, kill the link; commits.

    :raises NotFound: the link is unknown, used or expired. :raises InvalidInput: no consent, no name, or a
        document that cannot be signed (the step then stays current and the link alive). :raises Conflict: the
        sous-type asks for reading and a main document was not read (external_reading).
    """
    if consent is not True:
        raise InvalidInput(message("il faut accepter de signer (consentement) pour signer ce dossier"))
    name = " ".join(name.split())
    if not name or len(name) > 200:
        raise InvalidInput(message("indiquez votre nom (200 caractères au plus)"))
    check_text(name, message("nom"))
    folder, step = find(session, secret, for_update=True)
    external_reading.check_read(session, folder, step)  # lecture obligatoire, as for agents
    email = step.external_email or "adresse inconnue"
    actor = Actor(username=f"externe:{email}", display_name=f"{name} ({email})")
    identity = seal.seal_identity(session, folder)
    previous = signing.sign_documents(
        session, folder, actor, identity_id=identity.id, stamp_name=f"{name} ({email}) — lien à usage unique"
    )
    step.token_hash, step.token_expires_at = None, None  # single use: the link dies with the act
    comment = f"Signé par lien à usage unique ; nom saisi : {name}"
    if step.external_name and step.external_name != name:
        comment += f" (signataire prévu : {step.external_name})"
    service.record_act(session, folder, step, actor, EXTERNAL_ACTION, comment, previous_keys=previous)
    session.commit()
    return folder
