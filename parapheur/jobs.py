"""Parapheur jobs (see socle.messages): the GED's answers about a folder's document, and the parapheur's own
background work: upgrading degraded signatures, the server seal, notices and digests, bulk actions.

Each job is written so that running it twice has the effect of once (the kernel may run a job again after a
crash); a SocleError of status >= 500 (a responder or the SMTP server down) makes the kernel retry it later.
"""

from __future__ import annotations

from typing import Any

from parapheur import bulk_actions, filing, notify, seal, service, signing
from socle.db import transaction


def attach_document(
    *,
    tenant_id: str,
    folder_id: str,
    document_id: str,
    version: int,
    object_key: str,
    size: int,
    filename: str,
    media_type: str,
) -> None:
    with transaction() as session:
        service.attach_document(
            session,
            tenant_id,
            folder_id,
            key=object_key,
            size=size,
            filename=filename,
            version=version,
            media_type=media_type,  # the GED version's: a CAdES folder signs any file, served back as it is
        )


def document_unavailable(*, tenant_id: str, folder_id: str, reason: str) -> None:
    with transaction() as session:
        service.mark_unavailable(session, tenant_id, folder_id, reason)


def filed_in_ged(*, tenant_id: str, folder_id: str, document_id: str) -> None:
    """The GED filed the signed document of an uploaded folder: keep its id on the folder."""
    with transaction() as session:
        service.record_ged_filing(session, tenant_id, folder_id, document_id)


def ged_filing_failed(*, tenant_id: str, folder_id: str, reason: str) -> None:
    """The GED could not file the signed document: the folder keeps why, its page and history say it (the GED's
    reason, not the kernel's job name), and its creator or an administrator may ask again (parapheur.filing)."""
    with transaction() as session:
        filing.record_failure(session, tenant_id, folder_id, reason)


def upgrade_signature(*, tenant_id: str, folder_id: str) -> None:
    """Raise a degraded signature to the folder's pending level (retried while a responder is down)."""
    with transaction() as session:
        folder = service.get_folder(session, tenant_id, folder_id, for_update=True)
        owed = folder.pending_level
        signing.upgrade_folder(session, folder)
        if owed and folder.pending_level is None and folder.status == "completed":
            # A folder that ended while its signature was owed goes to the GED now, at its full level.
            service.send_back_to_ged(session, folder)


def apply_seal(*, tenant_id: str, folder_id: str, step_id: str) -> None:
    """Sign a seal step's documents with the sous-type's seal and record the act as the service's."""
    seal.apply(tenant_id, folder_id, step_id)


def send_notice(*, tenant_id: str, recipient: str, notice: dict[str, Any]) -> None:
    """Mail one notice to a user (by username) or to an external signer (by address)."""
    notify.send_notice(tenant_id, recipient, notice)


def send_digests(*, tenant_id: str) -> None:
    """Late-folder notices, then one digest mail per person with pending notices."""
    notify.send_late_and_digests(tenant_id)


def run_bulk(*, tenant_id: str, operation_id: str) -> None:
    """Process a bulk visa/signature operation, folder by folder."""
    bulk_actions.run(tenant_id, operation_id)
