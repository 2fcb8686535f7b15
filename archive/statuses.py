"""The states of a transfer (versement), and their French labels."""

from __future__ import annotations

REQUESTED, BUILT, INVALID, UNVALIDATED, ERROR = "requested", "built", "invalid", "unvalidated", "error"
SENDING, DELIVERED, DELIVERY_FAILED = "sending", "delivered", "delivery_failed"
SENDABLE = (BUILT, UNVALIDATED, DELIVERY_FAILED)
# Set from the archival system's messages (archive.lifecycle).
ACKNOWLEDGED, ACCEPTED, REJECTED = "acknowledged", "accepted", "rejected"
AFTER_DELIVERY = (ACKNOWLEDGED, ACCEPTED, REJECTED)
# Set by the archivist (archive.service.abandon): a transfer given up before the SAE's reply; its documents go back.
ABANDONED = "abandoned"
# What may be abandoned: a built package not (successfully) sent, or sent and never answered (an SAE may never
# answer: a reply it cannot write, one the connector cannot fetch), else it would hold the GED's documents for
# ever. A package still in preparation is the GED's to answer first; one being sent, the connector's; an error,
# an acceptance or a refusal has already ended.
ABANDONABLE = (BUILT, INVALID, UNVALIDATED, DELIVERY_FAILED, DELIVERED, ACKNOWLEDGED)
# Abandoned while the SAE has the package: a reply may still come, kept and refused (archive.lifecycle).
ABANDONED_AFTER_DELIVERY = (DELIVERED, ACKNOWLEDGED)
# What « Refaire ce versement » is offered for: a transfer that will not reach the SAE as it is.
REDOABLE = (INVALID, ERROR, REJECTED, DELIVERY_FAILED, ABANDONED)
STATUS_LABELS: dict[str, str] = {
    REQUESTED: "demandé : paquet en préparation",
    BUILT: "prêt : paquet construit et valide",
    INVALID: "paquet non conforme",
    UNVALIDATED: "paquet construit, non validé (schémas absents)",
    ERROR: "en erreur",
    SENDING: "en cours d'envoi",
    DELIVERED: "envoyé : déposé auprès du système d'archivage",
    DELIVERY_FAILED: "échec de l'envoi",
    ACKNOWLEDGED: "reçu par le système d'archivage (accusé de réception)",
    ACCEPTED: "accepté par le système d'archivage",
    REJECTED: "refusé par le système d'archivage",
    ABANDONED: "abandonné par l'archiviste : documents rendus à la GED",
}
