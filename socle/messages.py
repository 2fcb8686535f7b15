"""The job messages the services send each other: the only contract between them.

A service never imports another one: it enqueues one of these messages, by name, with JSON arguments
(ids, object keys, digests; never document bytes). ``docs/jobs.md`` documents them; a test checks that each
one names an existing job function taking exactly these arguments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Message:
    function: str
    parameters: tuple[str, ...]
    description: str
    # Sent by the kernel, once, when this job fails for good, so that the object waiting for it does not stay
    # stuck: a message whose parameters are found among this one's, plus « reason ».
    on_failure: str | None = None
    # A queue of its own, beside the service's main one, for slow jobs (renditions, OCR): quick jobs never wait
    # behind them, as a worker takes from its services' main queues first (see socle.queue.worker_queues).
    lane: str | None = None

    @property
    def service(self) -> str:
        return self.function.split(".", 1)[0]


# GED
GED_SEND_TO_PARAPHEUR = Message(
    "ged.jobs.send_to_parapheur",
    ("tenant_id", "document_id", "folder_id", "username"),
    "Le parapheur demande la version courante d'un document pour un dossier, au nom de l'utilisateur qui le crée "
    "(« username ») ; la GED répond par PARAPHEUR_ATTACH_DOCUMENT si cet utilisateur peut lire le document, sinon "
    "par PARAPHEUR_DOCUMENT_UNAVAILABLE (comme pour un document inexistant).",
    on_failure="parapheur.jobs.document_unavailable",
)
GED_STORE_SIGNED_VERSION = Message(
    "ged.jobs.store_signed_version",
    ("tenant_id", "document_id", "folder_id", "object_key", "size", "filename", "signatories", "signed_by"),
    "Le circuit est terminé : la GED enregistre le PDF signé comme nouvelle version du document (signatories : les "
    "identifiants des signataires ; signed_by : leurs noms et qualités, pour le commentaire de la version).",
)
GED_FILE_SIGNED_DOCUMENT = Message(
    "ged.jobs.file_signed_document",
    (
        "tenant_id",
        "folder_id",
        "object_key",
        "size",
        "filename",
        "media_type",
        "title",
        "document_type",
        "signatories",
        "signed_by",
        "ged_folder",
    ),
    "Le circuit d'un dossier déposé dans le parapheur est terminé et son créateur a demandé de le classer : la GED "
    "enregistre le document signé comme nouveau document, une seule fois, dans le dossier du plan que nomme son "
    "sous-type (ged_folder : chemin ou identifiant), et répond par PARAPHEUR_FILED_IN_GED.",
    on_failure="parapheur.jobs.ged_filing_failed",
)
GED_EXPORT_FOR_ARCHIVE = Message(
    "ged.jobs.export_for_archive",
    ("tenant_id", "transfer_id", "document_ids", "username"),
    "Le service d'archives demande les métadonnées et les objets de documents, au nom de l'archiviste qui "
    "demande le versement (« username » ; pour un flux d'interopérabilité, son créateur, ou null : le service) ; "
    "la GED les marque « versés » et répond par ARCHIVE_BUILD_PACKAGE, ou par ARCHIVE_EXPORT_FAILED (document "
    "introuvable ou illisible pour lui, déjà versé, archivé, éliminé ou gelé).",
    on_failure="archive.jobs.export_failed",
)
GED_SELECT_FOR_ARCHIVE = Message(
    "ged.jobs.select_for_archive",
    ("tenant_id", "transfer_id", "folder_id", "dua_reached", "username"),
    "Le service d'archives demande un dossier du plan de classement (avec ses sous-dossiers) ou les documents "
    "arrivés au terme de leur DUA avec le sort final « conserver » ou « trier », au nom de l'archiviste "
    "(« username ») : la GED choisit ceux qu'il peut lire et répond comme à GED_EXPORT_FOR_ARCHIVE "
    "(ARCHIVE_BUILD_PACKAGE ou ARCHIVE_EXPORT_FAILED).",
    on_failure="archive.jobs.export_failed",
)
GED_MARK_ARCHIVED = Message(
    "ged.jobs.mark_archived",
    ("tenant_id", "transfer_id", "documents"),
    "Le système d'archivage a accepté un versement : la GED marque ses documents « archivés » avec leur "
    "identifiant dans le SAE (« documents » : liste de {document_id, sae_identifier}) et propose à "
    "l'élimination la copie GED de ceux dont le sort final est la destruction.",
)
GED_TRANSFER_ENDED = Message(
    "ged.jobs.transfer_ended",
    ("tenant_id", "transfer_id", "outcome"),
    "Un versement s'est terminé sans être accepté (« outcome » : failed, paquet non construit ; rejected, refusé "
    "par le système d'archivage ; abandoned, abandonné par l'archiviste avant que le système d'archivage ait le "
    "paquet) : la GED remet en service les documents qu'elle avait marqués « versés » pour lui, et le note dans "
    "leur historique.",
)
GED_STORE_FLOW_DOCUMENT = Message(
    "ged.jobs.store_flow_document",
    (
        "tenant_id",
        "flow_id",
        "name",
        "object_key",
        "size",
        "filename",
        "media_type",
        "title",
        "document_type",
        "ged_folder",
        "username",
        "document_date",
        "type_code",
        "description",
    ),
    "Un flux d'interopérabilité rapporte un document (ARActe, PES Acquit, PES Retour, document signé, courrier de "
    "la préfecture…) : la GED l'enregistre comme nouveau document, une seule fois, dans le dossier du plan que "
    "nomme « ged_folder » (chemin ou identifiant : celui du connecteur, choisi par un administrateur, ou celui que "
    "le créateur du flux a désigné, « username », qui doit alors pouvoir y écrire ; null : aucun, classement "
    "refusé), et répond par INTEROP_FLOW_DOCUMENT_STORED. Jamais hors du plan de classement. « document_date » "
    "(AAAA-MM-JJ) est la date du document (réception de l'ARActe, date du courrier) ; « type_code » le code d'un type "
    "de document de la GED (aracte, courrier_prefecture, pes_acquit, pes_retour), pris si la collectivité en a un de "
    "ce code sans champ obligatoire, sinon « document_type » reste le libellé ; « description » (ce que dit le "
    "courrier : pièces demandées, observations…) devient le commentaire de la version. Null : rien de tout cela.",
    on_failure="interop.jobs.flow_failed",
)
GED_PURGE_TRASH = Message(
    "ged.jobs.purge_trash",
    ("tenant_id",),
    "Purger la corbeille de la GED d'une collectivité : supprimer les documents dont le délai de restauration "
    "est passé, sauf ceux qui sont gelés ou encore sous leur DUA.",
)
GED_PURGE_UPLOADS = Message(
    "ged.jobs.purge_uploads",
    (),
    "Nettoyer les envois reprenables expirés de toutes les collectivités : les marquer expirés et effacer leurs "
    "fichiers de réception (sous SOCLE_DATA_DIR/uploads, que le worker doit voir comme l'API).",
)
# GED, jobs of its own (renditions of a new content version, see ged/renditions.py)
GED_EXTRACT_TEXT = Message(
    "ged.jobs.extract_text",
    ("tenant_id", "document_id", "version"),
    "Extraire la couche texte d'une version PDF (PDFium), la ranger dans le stockage et réindexer le document ; "
    "un PDF scanné sans texte ou une image passe à GED_OCR_TEXT.",
    on_failure="ged.jobs.rendition_failed",
)
GED_OCR_TEXT = Message(
    "ged.jobs.ocr_text",
    ("tenant_id", "document_id", "version"),
    "Reconnaître le texte d'un PDF scanné ou d'une image (OCRmyPDF, en français), le ranger et réindexer le document.",
    on_failure="ged.jobs.rendition_failed",
    lane="renditions",
)
GED_MAKE_PREVIEW = Message(
    "ged.jobs.make_preview",
    ("tenant_id", "document_id", "version"),
    "Faire l'aperçu (PNG) et la vignette de la première page d'une version (PDF ou image).",
    on_failure="ged.jobs.rendition_failed",
    lane="renditions",
)
GED_MAKE_PDFA = Message(
    "ged.jobs.make_pdfa",
    ("tenant_id", "document_id", "version"),
    "Faire une copie PDF/A-2b d'une version PDF (Ghostscript ; OCRmyPDF pour un PDF scanné).",
    on_failure="ged.jobs.rendition_failed",
    lane="renditions",
)
GED_RENDITION_FAILED = Message(
    "ged.jobs.rendition_failed",
    ("tenant_id", "document_id", "version", "reason"),
    "Une tâche de rendu (texte, OCR, aperçu, PDF/A) a échoué définitivement, par exemple un stockage injoignable "
    "au-delà des essais : le rendu de la version est marqué en échec avec la raison, au lieu de rester « en cours ».",
)

# Parapheur
PARAPHEUR_ATTACH_DOCUMENT = Message(
    "parapheur.jobs.attach_document",
    ("tenant_id", "folder_id", "document_id", "version", "object_key", "size", "filename", "media_type"),
    "La GED fournit le document d'un dossier (clé d'objet et empreinte).",
    on_failure="parapheur.jobs.document_unavailable",
)
PARAPHEUR_DOCUMENT_UNAVAILABLE = Message(
    "parapheur.jobs.document_unavailable",
    ("tenant_id", "folder_id", "reason"),
    "La GED ne peut pas fournir le document demandé.",
)
PARAPHEUR_FILED_IN_GED = Message(
    "parapheur.jobs.filed_in_ged",
    ("tenant_id", "folder_id", "document_id"),
    "La GED a classé le document signé d'un dossier déposé : le dossier garde l'identifiant du document GED.",
)
# Parapheur, jobs of its own (asked by the parapheur for itself)
PARAPHEUR_GED_FILING_FAILED = Message(
    "parapheur.jobs.ged_filing_failed",
    ("tenant_id", "folder_id", "reason"),
    "La GED n'a pas pu classer le document signé d'un dossier déposé (dossier du plan introuvable…) : l'historique "
    "du dossier le dit, avec la raison.",
)
PARAPHEUR_UPGRADE_SIGNATURE = Message(
    "parapheur.jobs.upgrade_signature",
    ("tenant_id", "folder_id"),
    "Une signature a été faite à un niveau inférieur (horodatage ou révocation injoignable) : la porter au "
    "niveau attendu ; réessayée tant que le service manque.",
)
PARAPHEUR_APPLY_SEAL = Message(
    "parapheur.jobs.apply_seal",
    ("tenant_id", "folder_id", "step_id"),
    "Une étape « cachet serveur » commence : signer avec le cachet du sous-type et passer à l'étape suivante.",
)
PARAPHEUR_SEND_NOTICE = Message(
    "parapheur.jobs.send_notice",
    ("tenant_id", "recipient", "notice"),
    "Envoyer un avis par courriel à un utilisateur (« recipient » = identifiant) ou à un signataire externe "
    "(« recipient » = adresse) ; réessayé si le serveur SMTP est injoignable.",
)
PARAPHEUR_SEND_DIGESTS = Message(
    "parapheur.jobs.send_digests",
    ("tenant_id",),
    "Envoyer les récapitulatifs des avis en attente (préférence « digest ») et les avis de retard.",
)
PARAPHEUR_RUN_BULK = Message(
    "parapheur.jobs.run_bulk",
    ("tenant_id", "operation_id"),
    "Viser ou signer une sélection de dossiers, chacun dans sa transaction ; l'échec de l'un n'arrête pas les autres.",
)

# Archive
ARCHIVE_BUILD_PACKAGE = Message(
    "archive.jobs.build_package",
    ("tenant_id", "transfer_id", "documents"),
    "La GED fournit les documents d'un versement : le service d'archives construit et valide le paquet SEDA.",
    on_failure="archive.jobs.export_failed",
)
ARCHIVE_EXPORT_FAILED = Message(
    "archive.jobs.export_failed",
    ("tenant_id", "transfer_id", "reason"),
    "La GED ne peut pas fournir les documents d'un versement.",
)
ARCHIVE_RECORD_DELIVERY = Message(
    "archive.jobs.record_delivery",
    ("tenant_id", "transfer_id", "receipt"),
    "Le connecteur a déposé le paquet : le service d'archives enregistre l'accusé de dépôt.",
)
ARCHIVE_DELIVERY_FAILED = Message(
    "archive.jobs.delivery_failed",
    ("tenant_id", "transfer_id", "reason"),
    "Le connecteur n'a pas pu déposer le paquet.",
)
ARCHIVE_RECORD_SAE_MESSAGE = Message(
    "archive.jobs.record_sae_message",
    ("tenant_id", "transfer_id", "message_kind", "object_key", "size"),
    "Le système d'archivage a répondu (« acknowledgement » ou « reply », message SEDA dans le stockage) : le "
    "service d'archives le lit et fait avancer le versement (reçu, accepté ou refusé).",
)
ARCHIVE_REQUEST_TRANSFER = Message(
    "archive.jobs.request_transfer",
    (
        "tenant_id",
        "flow_id",
        "document_ids",
        "archival_agency",
        "archival_agreement",
        "connector",
        "profile",
        "comment",
        "username",
    ),
    "Un flux d'interopérabilité (actes) demande le versement de ses documents GED (l'acte, ses annexes, l'ARActe) "
    "au nom de l'utilisateur qui l'a créé (« username » ; null : la GED répond comme au service), sous le contrat "
    "d'entrée du SAE que nomment ses réglages (« archival_agreement » ; null : aucun) : "
    "le service d'archives crée le versement une seule fois par flux, comme l'API, et répond par "
    "INTEROP_FLOW_DOCUMENT_STORED (« name » : versement, « document_id » : l'identifiant du versement).",
    on_failure="interop.jobs.flow_failed",
)
ARCHIVE_BUILD_FOLDER_TRANSFER = Message(
    "archive.jobs.build_folder_transfer",
    ("tenant_id", "transfer_id", "object_key", "csv_key"),
    "Un archiviste a envoyé une arborescence de dossiers (zip ou tar dans le stockage, CSV de métadonnées "
    "facultatif : « csv_key » vaut alors null) : le service d'archives la décompresse à l'abri, construit et "
    "valide le paquet SEDA comme « socle archive build », puis efface le dossier de travail.",
    on_failure="archive.jobs.export_failed",
)
ARCHIVE_RECORD_SAE_CONNECTORS = Message(
    "archive.jobs.record_sae_connectors",
    ("tenant_id", "version", "connectors"),
    "L'interopérabilité donne la liste entière des connecteurs d'une collectivité qui peuvent porter un paquet "
    "vers le système d'archivage (« connectors » : liste de {name, kind, enabled}), à chaque création, "
    "modification, activation, désactivation ou suppression de l'un d'eux, et à la demande (socle interop "
    "sae-connectors) ; « version » croît à chaque liste : le service d'archives garde la plus récente et ignore "
    "une liste plus ancienne ou déjà reçue.",
)

# Interop
INTEROP_DELIVER = Message(
    "interop.jobs.deliver",
    ("tenant_id", "connector", "object_key", "size", "filename", "idempotency_key", "reply"),
    "Dépose un objet du stockage par un connecteur du tenant ; « reply » nomme les messages de réponse "
    "(success, failure) et leurs arguments fixes, ou vaut null quand personne n'attend de réponse. Relancé selon "
    "la file ; en échec définitif, INTEROP_DELIVERY_FAILED met l'envoi en erreur et envoie la réponse d'échec.",
    on_failure="interop.jobs.delivery_failed",
)
INTEROP_DELIVERY_FAILED = Message(
    "interop.jobs.delivery_failed",
    ("tenant_id", "connector", "idempotency_key", "reply", "reason"),
    "Un dépôt (INTEROP_DELIVER) a échoué définitivement : l'envoi passe en erreur avec le dernier message, "
    "reprenable (POST /interop/deliveries/{id}/resume), et le demandeur reçoit sa réponse « failure ».",
)
INTEROP_CANCEL_DELIVERY = Message(
    "interop.jobs.cancel_delivery",
    ("tenant_id", "idempotency_key", "reason", "actor"),
    "Le service d'archives a abandonné un versement dont l'envoi avait échoué (« actor » : l'archiviste) : "
    "l'envoi de la collectivité qui porte cette clé d'idempotence passe « cancelled » avec le motif et ne peut "
    "plus être repris ; un envoi déjà déposé n'est pas touché (annulation tardive, notée dans l'historique). "
    "Sans effet pour une clé inconnue ou un envoi déjà annulé.",
)
INTEROP_FOLLOW_SAE = Message(
    "interop.jobs.follow_sae",
    ("tenant_id", "delivery_id"),
    "Suivre chez le SAE (Vitam, As@lae) l'opération d'un envoi : transmettre l'accusé et la réponse au service "
    "d'archives (archive.jobs.record_sae_message), relancé selon la politique du connecteur.",
)
INTEROP_FLOW_STEP = Message(
    "interop.jobs.flow_step",
    ("tenant_id", "flow_id", "state", "step"),
    "Faire avancer un flux (actes, helios, dépôt, mail) depuis l'état « state » : une transition par tâche ; "
    "sans effet si le flux a déjà quitté cet état ou si « step » (le numéro d'étape du flux à la mise en file) "
    "n'est plus le sien (tâche périmée, flux repris depuis).",
    on_failure="interop.jobs.flow_failed",
)
INTEROP_COLLECT_PES_RETOURS = Message(
    "interop.jobs.collect_pes_retours",
    ("tenant_id", "connector"),
    "Relever les PES Retour non lus d'un connecteur TdT (S²LOW) : chacun est confié à la GED une seule fois "
    "(GED_STORE_FLOW_DOCUMENT, « name » : retour:<id>, « flow_id » : l'identifiant du connecteur) et marqué lu "
    "chez S²LOW quand la GED a répondu par INTEROP_FLOW_DOCUMENT_STORED.",
)
INTEROP_COLLECT_ALL_PES_RETOURS = Message(
    "interop.jobs.collect_all_pes_retours",
    ("period",),
    "Demander la relève des PES Retour de chaque connecteur TdT (S²LOW) actif de chaque collectivité : une tâche "
    "INTEROP_COLLECT_PES_RETOURS par connecteur, une seule fois par « period » (l'échéance qui la demande, "
    "ex. 2026-12-01T09:00Z).",
)
INTEROP_PUBLISH_SAE_CONNECTORS = Message(
    "interop.jobs.publish_sae_connectors",
    ("tenant_id",),
    "Envoyer de nouveau au service d'archives la liste des connecteurs du système d'archivage de la collectivité "
    "(ARCHIVE_RECORD_SAE_CONNECTORS), telle qu'elle est : chaque jour par le calendrier intégré, pour qu'une "
    "installation mise à jour ou une base d'archives restaurée retrouve la liste sans geste de l'exploitant.",
)
INTEROP_COLLECT_PREFECTURE_LETTERS = Message(
    "interop.jobs.collect_prefecture_letters",
    ("tenant_id", "connector"),
    "Relever les courriers de la préfecture non lus d'un connecteur TdT (S²LOW) : chacun de la collectivité (SIREN "
    "de son acte) est lu, ses fichiers confiés à la GED une seule fois (GED_STORE_FLOW_DOCUMENT, « name » : "
    "courrier:<id>:<n>), noté dans l'historique du flux de son acte et annoncé par courriel à qui l'a démarré ; "
    "celui d'une autre collectivité est refusé (ni classé ni marqué lu), au journal d'audit et annoncé aux "
    "administrateurs.",
)
INTEROP_COLLECT_ALL_PREFECTURE_LETTERS = Message(
    "interop.jobs.collect_all_prefecture_letters",
    ("period",),
    "Demander la relève des courriers de la préfecture de chaque connecteur TdT (S²LOW) actif qui a un dossier de la "
    "GED : une tâche INTEROP_COLLECT_PREFECTURE_LETTERS par connecteur, une seule fois par « period ».",
)
INTEROP_SEND_NOTICE = Message(
    "interop.jobs.send_notice",
    ("tenant_id", "recipient", "notice"),
    "Envoyer par courriel un avis sur un flux ou un document du TdT (acte ou PES refusé, flux en erreur, nouveau "
    "courrier de la préfecture, document d'une autre collectivité refusé) à un utilisateur (« recipient » = "
    "identifiant ; son adresse est lue à l'envoi), une seule fois par clé d'avis (« notice » : key) ; réessayé si le "
    "serveur SMTP est injoignable.",
)
INTEROP_FLOW_FAILED = Message(
    "interop.jobs.flow_failed",
    ("tenant_id", "flow_id", "reason"),
    "Une tâche d'un flux a échoué définitivement : le flux passe en erreur, visible et reprenable.",
)
INTEROP_FLOW_DOCUMENT_STORED = Message(
    "interop.jobs.flow_document_stored",
    ("tenant_id", "flow_id", "name", "document_id"),
    "La GED a enregistré un document d'un flux (« name » : aracte, acquit, retour, acte, annexe-N) ; le flux est "
    "classé quand tous le sont. Le service d'archives l'envoie aussi (« name » : versement) quand il a créé le "
    "versement demandé par le flux.",
)


def failure_message(message: Message, arguments: dict[str, Any], reason: str) -> tuple[Message, dict[str, Any]] | None:
    """What to send when a job of ``message`` with these arguments has failed for good, if anything.

    The job's own ``on_failure`` comes first: a message that has both it and a ``reply`` parameter receives the
    reply among its arguments and is the one that tells the asker (see :func:`reply_failure`).
    """
    target = BY_FUNCTION.get(message.on_failure or "")
    if target is not None:
        return target, {name: arguments[name] for name in target.parameters if name != "reason"} | {"reason": reason}
    if "reply" in message.parameters:  # the asker named its own failure reply: checked like any reply
        return reply_failure(arguments, reason)
    return None


def reply_failure(arguments: dict[str, Any], reason: str) -> tuple[Message, dict[str, Any]] | None:
    """The asker's failure reply named in ``arguments["reply"]``, if it is a documented message of the same tenant."""
    reply = arguments.get("reply") or {}
    target, fixed = BY_FUNCTION.get(reply.get("failure", "")), reply.get("arguments", {})
    if target is None or fixed.get("tenant_id") != arguments.get("tenant_id"):
        return None  # never to another tenant's object
    if set(target.parameters) != set(fixed) | {"reason"}:
        return None
    return target, {**fixed, "reason": reason}


ALL: tuple[Message, ...] = tuple(value for value in list(globals().values()) if isinstance(value, Message))
BY_FUNCTION: dict[str, Message] = {message.function: message for message in ALL}
