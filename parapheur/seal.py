"""Cachet serveur: when a seal step starts, the server signs the folder with the sous-type's seal identity.

Runs in the job ``parapheur.jobs.apply_seal``. A refusal (no seal configured, unusable seal or document) leaves
the folder in its step with the reason in ``folder.error``, its history and the audit log; an operator fixes the
cause and retries the job (``socle jobs retry``). A responder down makes the kernel retry it by itself.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from parapheur import identities, service, signing
from parapheur.circuits import Actor
from parapheur.models import Folder, FolderEvent, SigningIdentity, Step, Subtype
from socle import audit
from socle.db import transaction
from socle.errors import Conflict, SocleError, message

SERVICE_ACTOR = "service:parapheur"


def apply(tenant_id: str, folder_id: str, step_id: str) -> None:
    """Seal the folder if ``step_id`` is still its current seal step (a second run does nothing)."""
    try:
        with transaction() as session:
            folder = service.get_folder(session, tenant_id, folder_id, for_update=True)
            step = next((s for s in folder.steps if s.id == step_id), None)
            if step is None or step.kind != "seal" or step.status != "current" or folder.status != "in_progress":
                return
            row = seal_identity(session, folder)
            actor = Actor(username=SERVICE_ACTOR, display_name=row.label or row.subject)
            previous = signing.sign_documents(session, folder, actor, identity_id=row.id)
            folder.error = None
            service.record_act(session, folder, step, actor, "seal", previous_keys=previous)
    except SocleError as exc:
        if exc.status < 500:
            _record_failure(tenant_id, folder_id, step_id, exc.detail)
        raise


def seal_identity(session: Session, folder: Folder) -> SigningIdentity:
    """The sous-type's seal, else the tenant's only seal. :raises Conflict: none, or several to choose from."""
    subtype = session.get(Subtype, folder.subtype_id) if folder.subtype_id else None
    if subtype is not None and subtype.seal_identity_id:
        return identities.identity_row(session, folder.tenant_id, subtype.seal_identity_id)
    seals = identities.seal_rows(session, folder.tenant_id)
    if len(seals) == 1:
        return seals[0]
    if not seals:
        raise Conflict(
            message("aucun cachet serveur n'est enregistré pour la collectivité (socle parapheur seal-import)")
        )
    raise Conflict(message("plusieurs cachets serveur existent : choisissez celui du sous-type"))


def _record_failure(tenant_id: str, folder_id: str, step_id: str, reason: str) -> None:
    with transaction() as session:
        folder = session.execute(
            select(Folder).where(Folder.id == folder_id, Folder.tenant_id == tenant_id)
        ).scalar_one_or_none()
        step = session.get(Step, step_id)
        if folder is None or step is None:
            return
        folder.error = f"cachet serveur impossible : {reason}"
        service_actor = Actor(SERVICE_ACTOR, "Parapheur")
        session.add(FolderEvent.of_act(folder, service_actor, "seal_failed", folder.error, {"step": step.position}))
        audit.record(
            session,
            tenant_id=tenant_id,
            actor=SERVICE_ACTOR,
            action="parapheur.seal_failed",
            object_type="folder",
            object_id=folder.id,
            details={"title": folder.title, "step": step.position, "reason": reason},
        )
