"""What the archive pages share: the archivist's role check, the states in words, a transfer as a table row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import aliased

from archive.models import Transfer
from archive.statuses import (
    ABANDONED,
    ACCEPTED,
    ACKNOWLEDGED,
    BUILT,
    DELIVERED,
    DELIVERY_FAILED,
    ERROR,
    INVALID,
    REJECTED,
    REQUESTED,
    SENDING,
    UNVALIDATED,
)
from socle.auth import Role
from socle.ui.sessions import SignedIn
from socle.ui.web import require_role


def _(message: str) -> str:
    """Marks a French text for the catalogues; the templates translate it when they show it."""
    return message


# Short words for the lists; the transfer page also says what each state asks of the archivist.
STATUS_NAMES: dict[str, str] = {
    REQUESTED: _("En préparation"),
    BUILT: _("Prêt à envoyer"),
    INVALID: _("Non conforme"),
    UNVALIDATED: _("Non validé (schémas absents)"),
    ERROR: _("En erreur"),
    SENDING: _("Envoi en cours"),
    DELIVERED: _("Envoyé"),
    DELIVERY_FAILED: _("Échec de l'envoi"),
    ACKNOWLEDGED: _("Reçu (accusé de réception)"),
    ACCEPTED: _("Accepté"),
    REJECTED: _("Refusé"),
    ABANDONED: _("Abandonné"),
}
STATUS_HELP: dict[str, str] = {
    REQUESTED: _("La GED prépare les documents, puis le paquet SEDA est construit et validé. Actualisez la page."),
    BUILT: _("Le paquet est construit et conforme : vous pouvez l'envoyer au système d'archivage."),
    INVALID: _(
        "Le paquet n'est pas conforme : corrigez la cause (correspondances, référentiel, profil) puis refaites "
        "le versement, ou revalidez-le si seul le référentiel ou le profil a changé."
    ),
    UNVALIDATED: _(
        "Le paquet n'a pas pu être validé : les schémas SEDA ne sont pas installés. Revalidez-le une fois les "
        "schémas installés, ou envoyez-le en connaissance de cause."
    ),
    ERROR: _("Le paquet n'a pas pu être construit : la raison est indiquée ci-dessous."),
    SENDING: _("Le connecteur dépose le paquet auprès du système d'archivage."),
    DELIVERED: _("Le paquet est déposé : le système d'archivage doit en accuser réception puis répondre."),
    DELIVERY_FAILED: _("Le dépôt a échoué : vous pouvez envoyer le paquet de nouveau."),
    ACKNOWLEDGED: _("Le système d'archivage a accusé réception du paquet ; sa réponse est attendue."),
    ACCEPTED: _("Le système d'archivage a accepté le versement : la GED marque les documents comme archivés."),
    REJECTED: _("Le système d'archivage a refusé le versement : ses motifs sont indiqués ci-dessous."),
    ABANDONED: _(
        "Le versement a été abandonné : ses documents sont rendus à la GED et peuvent entrer dans un nouveau "
        "versement. S'il avait été envoyé, vérifiez auprès du système d'archivage le sort du paquet."
    ),
}
SELECTION_NAMES: dict[str, str] = {
    "documents": _("Documents choisis"),
    "folder": _("Dossier du plan de classement"),
    "dua_reached": _("Documents arrivés au terme de leur DUA"),
    "folder_tree": _("Arborescence de fichiers déposée"),
}
# The archival systems by their connector's kind (interop), as their makers name them.
SAE_NAMES: dict[str, str] = {"vitam": "Vitam", "asalae": "As@lae"}
# Filters of the transfers list: a group of states, or one state.
GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "a-envoyer": (_("À envoyer"), (BUILT, UNVALIDATED, DELIVERY_FAILED)),
    "a-corriger": (_("À corriger"), (INVALID, ERROR, REJECTED)),
    "en-cours": (_("En cours"), (REQUESTED, SENDING, DELIVERED, ACKNOWLEDGED)),
    "acceptes": (_("Acceptés"), (ACCEPTED,)),
    "abandonnes": (_("Abandonnés"), (ABANDONED,)),  # finished too, without the SAE
}


# Groups that leave out a transfer done again (« Refaire ce versement »): its redo carries the correction.
WITHOUT_REDONE = frozenset({"a-corriger"})


def group_condition(key: str) -> ColumnElement[bool]:
    """The transfers of the group `key` (a key of GROUPS), as a condition on Transfer."""
    condition = Transfer.status.in_(GROUPS[key][1])
    if key not in WITHOUT_REDONE:
        return condition
    redo = aliased(Transfer)
    return condition & ~exists(select(redo.id).where(redo.redo_of == Transfer.id))


def require_archivist(user: SignedIn) -> None:
    """The archive pages are the archivists' (and the administrators'): a Forbidden page for anyone else."""
    require_role(user, Role.ARCHIVISTE)


def selection_kind(transfer: Transfer) -> str:
    return str((transfer.selection or {}).get("kind") or "documents")


def transfer_rows(transfers: list[Transfer]) -> list[dict[str, Any]]:
    """What a list shows of each transfer."""
    return [
        {
            "id": transfer.id,
            "message_identifier": transfer.message_identifier,
            "comment": transfer.comment,
            "status": transfer.status,
            "status_name": STATUS_NAMES.get(transfer.status, transfer.status),
            "selection": SELECTION_NAMES.get(selection_kind(transfer), selection_kind(transfer)),
            "documents": len(transfer.document_ids or []),
            "archival_agency": transfer.archival_agency,
            "created_at": transfer.created_at,
            "created_by": transfer.created_by,
        }
        for transfer in transfers
    ]
