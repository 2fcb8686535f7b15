"""The filing of an uploaded folder's signed document in the GED, when it fails: kept on the folder, shown on its
page, asked again by its creator or an administrator once the GED's plan or the sous-type is corrected. Where a
folder's signed document stands with the GED (:func:`state`) is read from the folder and its job, for the page.

The folder asks the GED once (GED_FILE_SIGNED_DOCUMENT, keyed by service.filing_key, see
service.send_back_to_ged); a failure for good comes back as ``parapheur.jobs.ged_filing_failed`` (the kernel's
compensation). Asking again gives that same job another run (socle.queue.retry_keyed, as ``socle jobs retry``
does): the GED still files the document once, whatever the number of runs.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from parapheur import service
from parapheur.circuits import Actor
from parapheur.models import Folder, FolderEvent, Subtype
from socle.auth import Principal, Role
from socle.errors import Conflict, Forbidden, message
from socle.models import Job
from socle.queue import DONE, failure_attempts, failure_detail, retry_keyed
from socle.queue import FAILED as FAILED_JOB

_GED = Actor("service:ged", "GED")
FAILED = "ged_filing_failed"  # the history line's action (its label: « Classement dans la GED impossible »)


def record_failure(session: Session, tenant_id: str, folder_id: str, reason: str) -> None:
    """The GED could not file the signed document: the folder keeps why (the GED's reason, without the kernel's
    job name) and its history says it, once per failure: a failure delivered twice is recorded once, a new one
    (after a retry asked from the page or an operator's ``socle jobs retry``) is recorded again. Committed by the
    caller's transaction."""
    detail = failure_detail(reason)[:2000]
    # The filing is one job whatever the number of its runs (service.filing_key): its attempts tell one failure
    # from the next.
    attempts = failure_attempts(reason)
    folder = service.get_folder(session, tenant_id, folder_id, for_update=True)
    if folder.ged_document_id is not None:
        return  # filed meanwhile
    told = [
        details or {}
        for details in session.execute(
            select(FolderEvent.details).where(FolderEvent.folder_id == folder.id, FolderEvent.action == FAILED)
        ).scalars()
    ]
    if _already_told(folder, told, attempts, detail):
        return
    folder.ged_filing_error = detail
    details = {} if attempts is None else {"attempts": attempts}
    if not told:
        # The first failure: the engine's own line and audit entry (with the cause in the parapheur's words).
        service.record_ged_filing_failed(session, tenant_id, folder_id, detail, details)
        return
    # A failure again after a retry, which the engine's line (said once) would not tell.
    session.add(FolderEvent.of_act(folder, _GED, FAILED, detail, details))
    service.audit_folder(session, folder, "service:ged", "parapheur.folder.ged_filing_failed", reason=detail)


def _already_told(folder: Folder, told: list[dict[str, Any]], attempts: int | None, detail: str) -> bool:
    """Whether this failure is one the history tells already: the same run of the filing job (its attempts), or,
    when the notice or the history does not say the run (a line written before they did), the same cause while
    the folder still shows one."""
    runs = {details["attempts"] for details in told if "attempts" in details}
    if attempts is not None and runs:
        return attempts in runs
    return folder.ged_filing_error == detail


# What the folder's page says of its signed document and the GED (:func:`state`), from what is really so.
FILED = "filed"  # an uploaded folder's document is filed: ged_document_id
SENT = "sent"  # a GED folder's signed version is stored in the GED (its job done)
UNDER_WAY = "under_way"  # a job is asked and not answered yet
FAILING = "failed"  # the GED could not file it: ged_filing_error (asked again by :func:`retry`)
SEND_FAILED = "send_failed"  # a GED folder's signed version could not be stored (an operator retries the job)
SEND_REFUSED = "send_refused"  # the GED refused it for good: its document is archived, in a transfer, eliminated
AWAITING_LEVEL = "awaiting_level"  # a degraded signature owes its level: sent once reached
UNSIGNED = "unsigned"  # completed with no signed copy of the document (a detached CAdES signature)
PAPER_ANNEX = "paper_annex"  # the same, signed on paper: the scan stays an annex of the folder, in the parapheur
NOT_ASKED = "not_asked"  # completed, signed, and nothing asked the GED (asked by :func:`retry`)
LATER = "later"  # the circuit is not over yet
CLOSED = "closed"  # rejected, withdrawn or in error: nothing will go to the GED


class State(str):
    """A :func:`state` (compared as its string), with the GED's reason when it refused the signed version for
    good (:data:`SEND_REFUSED`): the page says why, and no retry advice that could not succeed."""

    reason: str | None

    def __new__(cls, value: str, reason: str | None = None) -> State:
        self = super().__new__(cls, value)
        self.reason = reason
        return self


# What the GED says when it will not take a signed version on a frozen document (ged.service.record_signed_version),
# as the last line of the failed job's error (the traceback socle.queue keeps): the detail of its Conflict.
_FROZEN = re.compile(
    r"^socle\.errors\.Conflict: (?P<detail>document (?:archivé au système d'archivage|en cours de versement au "
    r"système d'archivage|éliminé)\b.*)$",
    re.MULTILINE,
)


def refusal(last_error: str | None) -> str | None:
    """Why the GED refused a signed version for good, from its job's last error: its document is archived (frozen
    for good), in a transfer to the archive, or eliminated; None for any other failure (a retry may succeed)."""
    found = list(_FROZEN.finditer(last_error or ""))
    return found[-1].group("detail").strip() if found else None


def state(session: Session, folder: Folder) -> str | None:
    """Where the folder's signed document stands with the GED, read from the folder and its job (the database,
    the queue's source of truth), never assumed: « en cours » only while a job is really asked. None when the
    folder has nothing to do with the GED (an uploaded folder not asked to be filed). A :class:`State` that
    carries the GED's reason when it refused a GED folder's signed version for good."""
    if folder.source == "upload" and not folder.ged_filing:
        return None
    if folder.source == "upload" and folder.ged_document_id is not None:
        return FILED
    if folder.ged_filing_error is not None:
        return FAILING
    if folder.status in (service.REJECTED, service.WITHDRAWN, service.ERROR):
        return CLOSED
    if folder.status != service.COMPLETED:
        return LATER
    key = service.filing_key(folder) if folder.source == "upload" else service.send_back_key(folder)
    job = session.execute(select(Job.status, Job.last_error).where(Job.key == key)).one_or_none()
    if job is not None:
        if folder.source == "ged" and job.status == DONE:
            return SENT
        if folder.source == "ged" and job.status == FAILED_JOB:
            reason = refusal(job.last_error)
            return State(SEND_REFUSED, reason) if reason else SEND_FAILED
        return UNDER_WAY  # asked; for a filing also done or failed, while the GED's answer is on its way
    if folder.pending_level is not None:
        return AWAITING_LEVEL
    main = folder.main_documents
    if main and main[0].signed_key:
        return NOT_ASKED
    # No signed copy: a detached signature, or a paper one whose scan a CAdES or XAdES folder keeps beside its
    # document (signature_acts._signed_document; undoing the act takes the scan out).
    return PAPER_ANNEX if any(document.role == "scan" for document in folder.documents) else UNSIGNED


def may_retry(session: Session, principal: Principal, folder: Folder) -> bool:
    """Whether this user may ask the GED (again) now: the filing failed, or nothing was ever asked of a completed
    folder's signed document (one signed on paper before its scan was its signed version); and they are the
    folder's creator or an administrator (as for the external signer's link, service.resend_external_link)."""
    return _manages(principal, folder) and state(session, folder) in (FAILING, NOT_ASKED)


def _manages(principal: Principal, folder: Folder) -> bool:
    return folder.created_by == principal.username or Role.ADMIN in principal.roles


def retry(session: Session, principal: Principal, folder_id: str) -> Folder:
    """Ask the GED again to file the folder's signed document, in the sous-type's GED folder as it is now (the
    administrator may have corrected it), and commit: the page says « en cours » until the GED answers. A
    completed folder whose signed document was never sent (:data:`NOT_ASKED`) is sent now, as its end would have.

    :raises NotFound: a folder this user may not see.
    :raises Forbidden: neither its creator nor an administrator.
    :raises Conflict: nothing to ask again (filed, under way, not asked), or the sous-type names no GED folder.
    """
    folder = service.folder_for(session, principal, folder_id, for_update=True)
    if not _manages(principal, folder):
        raise Forbidden(message("seul le créateur du dossier ou un administrateur peut relancer le classement"))
    if state(session, folder) == NOT_ASKED:
        return _send_now(session, principal, folder)
    if folder.ged_document_id is not None:
        raise Conflict(message("le document signé est déjà classé dans la GED"))
    if folder.ged_filing_error is None:
        raise Conflict(message("aucun classement dans la GED en échec pour ce dossier : rien à relancer"))
    ged_folder = target_folder(session, folder)
    if not ged_folder:
        raise Conflict(
            message("le sous-type du dossier ne désigne aucun dossier de la GED : corrigez-le avant de relancer")
        )
    retry_keyed(session, service.filing_key(folder), ged_folder=ged_folder)
    reason, folder.ged_filing_error = folder.ged_filing_error, None
    service.audit_folder(
        session, folder, principal.actor, "parapheur.folder.ged_filing_retried", ged_folder=ged_folder, reason=reason
    )
    session.commit()
    return folder


def _send_now(session: Session, principal: Principal, folder: Folder) -> Folder:
    """Send the completed folder's signed document to the GED, which nothing asked yet; commits."""
    if folder.source == "upload" and not target_folder(session, folder):
        raise Conflict(
            message("le sous-type du dossier ne désigne aucun dossier de la GED : corrigez-le avant de relancer")
        )
    service.send_back_to_ged(session, folder)
    service.audit_folder(session, folder, principal.actor, "parapheur.folder.ged_send_asked", source=folder.source)
    session.commit()
    return folder


def target_folder(session: Session, folder: Folder) -> str | None:
    """The GED folder the sous-type files in now (path or id), if any."""
    subtype = session.get(Subtype, folder.subtype_id) if folder.subtype_id else None
    return subtype.ged_folder if subtype else None
