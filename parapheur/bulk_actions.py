"""Bulk actions: one "viser" or "signer" on a selection of folders, processed by a job, folder by folder.

Each folder goes through the engine (service.visa / service.sign) in its own transaction, in which its item is
marked done: a failure rolls back that folder only, is recorded on its item with the French reason, and the
next folder goes on. A job run twice skips the items already processed.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from parapheur import service
from parapheur.models import BulkItem, BulkOperation
from socle import messages
from socle.auth import Principal
from socle.db import new_session, transaction, utcnow
from socle.errors import Conflict, Forbidden, InvalidInput, Message, NotFound, SocleError, message
from socle.models import Tenant, User
from socle.queue import enqueue

log = logging.getLogger("parapheur.bulk")

ACTIONS = ("visa", "sign")
MAX_FOLDERS = 500


def create(
    session: Session, principal: Principal, action: str, folder_ids: list[str], comment: str | None
) -> BulkOperation:
    """Record the operation and its items, and enqueue its job; commits. :raises InvalidInput: bad request."""
    if action not in ACTIONS:
        raise InvalidInput(message("action inconnue : %(action)s (attendu : visa ou sign)", action=action))
    service.check_comment(comment)
    unique = list(dict.fromkeys(folder_ids))
    if not unique:
        raise InvalidInput(message("la sélection ne contient aucun dossier"))
    if len(unique) > MAX_FOLDERS:
        raise InvalidInput(
            message("une action groupée porte sur %(max_folders)s dossiers au plus", max_folders=MAX_FOLDERS)
        )
    operation = BulkOperation(
        tenant_id=principal.tenant_id, username=principal.username, action=action, comment=comment, status="pending"
    )
    operation.items = [BulkItem(folder_id=folder_id, position=index) for index, folder_id in enumerate(unique)]
    session.add(operation)
    session.flush()
    enqueue(
        session,
        messages.PARAPHEUR_RUN_BULK,
        key=f"parapheur.bulk:{operation.id}",
        tenant_id=principal.tenant_id,
        operation_id=operation.id,
    )
    session.commit()
    return operation


def get(session: Session, principal: Principal, operation_id: str) -> BulkOperation:
    """An operation of the caller's (another person's is not shown). :raises NotFound."""
    operation = session.get(BulkOperation, operation_id)
    if operation is None or operation.tenant_id != principal.tenant_id or operation.username != principal.username:
        raise NotFound(message("opération groupée %(operation_id)s introuvable", operation_id=operation_id))
    return operation


def run(tenant_id: str, operation_id: str) -> None:
    """Process every pending item; the operation is finished when none is left."""
    with transaction() as session:
        operation = session.get(BulkOperation, operation_id)
        if operation is None or operation.tenant_id != tenant_id or operation.status == "finished":
            return
        operation.status = "running"
        pending = [(item.id, item.folder_id) for item in operation.items if item.status == "pending"]
        action, comment = operation.action, operation.comment
        try:
            principal: Principal | None = _principal(session, operation)
        except Forbidden as exc:
            principal, refusal = None, exc.detail
    for item_id, folder_id in pending:
        if principal is None:
            _fail(item_id, refusal)  # nothing is done in the name of someone who may no longer act
        else:
            _process(principal, action, comment, item_id, folder_id)
    with transaction() as session:
        operation = session.get(BulkOperation, operation_id)
        if operation is not None:
            operation.status, operation.finished_at = "finished", utcnow()


def _principal(session: Session, operation: BulkOperation) -> Principal:
    """The person who asked, as they are now: a deactivated user's operation acts on nothing."""
    row = session.execute(
        select(User, Tenant)
        .join(Tenant, Tenant.id == User.tenant_id)
        .where(User.tenant_id == operation.tenant_id, User.username == operation.username)
    ).one_or_none()
    if row is None or not row.User.active:
        raise Forbidden(
            message("l'utilisateur « %(operation_username)s » n'est plus actif", operation_username=operation.username)
        )
    return Principal(
        tenant_id=row.Tenant.id,
        tenant_slug=row.Tenant.slug,
        tenant_name=row.Tenant.name,
        user_id=row.User.id,
        username=row.User.username,
        display_name=row.User.display_name,
        roles=frozenset(row.User.roles),
    )


def _process(principal: Principal, action: str, comment: str | None, item_id: str, folder_id: str) -> None:
    session = new_session()
    try:
        item = session.get(BulkItem, item_id)
        if item is None or item.status != "pending":
            return
        # Marked done before the act: the engine commits both together, or neither.
        item.status, item.done_at = "done", utcnow()
        if action == "visa":
            service.visa(session, principal, folder_id, comment)
        else:
            service.sign(session, principal, folder_id, comment)
        session.commit()
    except SocleError as exc:
        session.rollback()
        _fail(item_id, _reason(action, exc))
    except Exception:
        session.rollback()
        log.exception("bulk item %s (folder %s) failed", item_id, folder_id)
        _fail(item_id, message("erreur technique inattendue ; elle est journalisée"))
    finally:
        session.close()


# What a step waits for, in words that take their article: « attend un visa, pas une signature ».
_AWAITED: dict[str, Message] = {
    "visa": message("un visa"),
    "signature": message("une signature"),
    "seal": message("un cachet serveur"),
    "reading": message("une lecture"),
    "external_signature": message("une signature externe"),
    "paper_signature": message("une signature papier"),
}


def _reason(action: str, exc: SocleError) -> str:
    """The engine's refusal as a sentence of this list: a step of another kind says what it waits for instead
    of the act asked (the engine's « l'étape en cours attend : visa » names no act)."""
    waited = exc.extra.get("step_kind")
    if isinstance(exc, Conflict) and waited in _AWAITED:
        asked = _AWAITED["visa" if action == "visa" else "signature"]
        return message("l'étape en cours attend %(awaited)s, pas %(asked)s", awaited=_AWAITED[waited], asked=asked)
    return exc.detail


def _fail(item_id: str, reason: str) -> None:
    with transaction() as session:
        item = session.get(BulkItem, item_id)
        if item is not None and item.status == "pending":
            item.status, item.error, item.done_at = "failed", reason[:2000], utcnow()
            # Kept translatable too: the result page speaks its reader's language.
            item.error_message = reason.record() if isinstance(reason, Message) else None
