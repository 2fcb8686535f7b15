"""The folder's bordereau (PDF history): its facts and every event, "en l'absence de" for delegated acts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from parapheur.models import Desk, Folder, FolderEvent, Subtype
from socle.errors import message
from socle.models import Tenant, User

if TYPE_CHECKING:
    from parapheur.bordereau import BordereauData

ACTION_LABELS = {
    "created": "Création",
    "sent": "Envoi dans le circuit",
    "send_requested": "Envoi demandé (document attendu de la GED)",
    "visa": "Visa",
    "signature": "Signature",
    "seal": "Cachet serveur",
    "reading": "Lecture",
    "external_signature": "Signature externe (lien à usage unique)",
    "paper_signature": "Signature papier",
    "reject": "Rejet",
    "rejected": "Rejet",
    "transfer": "Transfert",
    "transferred": "Transfert",
    "undone": "Droit de remords",
    "withdrawn": "Retrait par le créateur",
    "external_link_resent": "Lien de signature externe renvoyé",
    "completed": "Dossier terminé",
    "annotation": "Annotation",
    "annotated": "Annotation",
    "opinion_requested": "Demande d'avis",
    "opinion_answered": "Avis rendu",
    "opinion_given": "Avis rendu",
    "document_read": "Lecture du document",
    "document_attached": "Document reçu de la GED",
    "document_unavailable": "Document indisponible dans la GED",
    "metadata": "Métadonnées modifiées",
    "metadata_updated": "Métadonnées modifiées",
    "filed_in_ged": "Classé dans la GED",
    "ged_filing_failed": "Classement dans la GED impossible",
    "resumed": "Repris dans un nouveau dossier",
    "signature_degraded": "Signature à niveau réduit",
    "signature_upgraded": "Signature complétée",
    "seal_failed": "Échec du cachet serveur",
}
STATUS_LABELS = {
    "draft": "Brouillon",
    "awaiting_document": "En attente du document",
    "in_progress": "En cours",
    "completed": "Terminé",
    "rejected": "Rejeté",
    "withdrawn": "Retiré",
    "error": "En erreur",
}

# The same, as the words of a sentence (« état : en cours »), translated with the message that carries them.
STATUS_NAMES = {
    "draft": message("brouillon"),
    "awaiting_document": message("en attente du document"),
    "in_progress": message("en cours"),
    "completed": message("terminé"),
    "rejected": message("rejeté"),
    "withdrawn": message("retiré"),
    "error": message("en erreur"),
}


def status_name(status: str) -> str:
    """A folder's state in a sentence of a message (its code when unknown)."""
    return STATUS_NAMES.get(status, status)


def write_bordereau(session: Session, folder: Folder, destination: Path) -> None:
    """Render the bordereau of ``folder`` (helper F's layout) into ``destination``, atomically."""
    from parapheur.bordereau import render_bordereau

    render_bordereau(bordereau_data(session, folder), destination)


def bordereau_data(session: Session, folder: Folder) -> BordereauData:
    """The BordereauData of ``folder``: documents as they stand, history in order, delegations named."""
    from parapheur.bordereau import BordereauData, HistoryLine

    tenant = session.get(Tenant, folder.tenant_id)
    events = list(
        session.execute(
            select(FolderEvent).where(FolderEvent.folder_id == folder.id).order_by(FolderEvent.at, FolderEvent.id)
        ).scalars()
    )
    desk_ids = {event.on_behalf_of_desk_id for event in events if event.on_behalf_of_desk_id}
    rows = session.execute(select(Desk.id, Desk.name).where(Desk.id.in_(desk_ids))).all() if desk_ids else []
    desks = {row.id: row.name for row in rows}
    creator = session.execute(
        select(User.display_name).where(User.tenant_id == folder.tenant_id, User.username == folder.created_by)
    ).scalar_one_or_none()
    return BordereauData(
        tenant_name=tenant.name if tenant else "",
        folder_id=folder.id,
        title=folder.title,
        typology=_typology(session, folder),
        status=STATUS_LABELS.get(folder.status, folder.status),
        created_by=f"{creator} ({folder.created_by})" if creator else folder.created_by,
        created_at=folder.created_at,
        documents=[(doc.filename, doc.current_key) for doc in folder.documents]
        + [(f"{doc.filename} (signature .p7s)", doc.signature_key) for doc in folder.documents if doc.signature_key],
        history=[
            HistoryLine(
                at=event.at,
                actor=event.actor_name if event.actor_name == event.actor else f"{event.actor_name} ({event.actor})",
                action=ACTION_LABELS.get(event.action, event.action),
                on_behalf_of=desks.get(event.on_behalf_of_desk_id) if event.on_behalf_of_desk_id else None,
                comment=event.comment,
            )
            for event in events
        ],
    )


def _typology(session: Session, folder: Folder) -> str | None:
    subtype = session.get(Subtype, folder.subtype_id) if folder.subtype_id else None
    return f"{subtype.type.name} / {subtype.name}" if subtype else None
