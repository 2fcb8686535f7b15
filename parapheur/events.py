"""What happens when a circuit step starts or a folder ends: the engine (parapheur.service) calls these.

Low level: never imports the engine. A seal step gets its job (the server signs with the sous-type's seal);
an external step gets its one-time link, mailed to the signer; any other step notifies the people it waits
for. Everything is done in the caller's transaction: jobs leave only if it commits.
"""

from __future__ import annotations

import hashlib
import secrets as token_source
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from parapheur import notify
from parapheur.models import Folder, Step
from socle import messages
from socle.db import utcnow
from socle.queue import enqueue

if TYPE_CHECKING:
    from parapheur.circuits import Actor

EXTERNAL_LINK_DAYS = 14


def step_started(session: Session, folder: Folder, step: Step) -> None:
    """A step became current: start the seal job, send the external link, or notify the desks' members."""
    if step.kind == "seal":
        enqueue(
            session,
            messages.PARAPHEUR_APPLY_SEAL,
            key=f"parapheur.seal:{step.id}:{(step.started_at or utcnow()).isoformat()}",
            tenant_id=folder.tenant_id,
            folder_id=folder.id,
            step_id=step.id,
        )
    elif step.kind == "external_signature":
        secret = issue_external_link(step)
        notify.external_signature(session, folder, step, external_url(secret))
    else:
        notify.to_act(session, folder, step)


def folder_ended(session: Session, folder: Folder, actor: Actor | None) -> None:
    """The folder is completed, rejected or withdrawn: tell its creator (per their preference)."""
    notify.folder_ended(
        session,
        folder,
        actor.display_name if actor else None,
        actor.on_behalf_of_name if actor else None,
    )


def issue_external_link(step: Step, days: int = EXTERNAL_LINK_DAYS) -> str:
    """A fresh one-time secret for an external step: only its SHA-256 is kept, with an expiry date."""
    secret = token_source.token_urlsafe(32)
    step.token_hash = hash_secret(secret)
    step.token_expires_at = utcnow() + timedelta(days=days)
    return secret


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def external_url(secret: str) -> str:
    """The page the external signer opens (absolute when the setting ``public_url`` is set): the web form of
    parapheur.ui_external. The API's ``/parapheur/external/{secret}`` routes take the same secret."""
    return f"{notify.public_url()}/signature-externe/{secret}"
