"""Flows (flux): document types as state machines, each transition a job on the interop queue.

A flow is started by the API (``POST /interop/flows``: kind, documents, metadata); each state with a step is
run by one job (messages.INTEROP_FLOW_STEP, keyed by the flow's step number, so a job pushed twice runs
once and a stale job — the flow has moved on — does nothing). Every transition is a line of the flow's
history (FlowEvent) and of the audit log.

A step may hold a lock key (FlowLock) while it runs: what must not run twice at once (one transmission per
flow) waits. A step ends in one of: :class:`Advance` (a new state), :class:`Wait` (the platform has nothing
yet: asked again under the connector's retry policy), :class:`Pause` (another service will answer with a
message). A platform that does not answer as it should counts as a try of the same policy; once spent, or
when the platform refuses, the flow stops in error with the platform's words kept, visible
(``GET /interop/flows?state=error``, ``socle interop flows``) and resumable (``POST /interop/flows/{id}/resume``).

Kinds: ``actes`` (act signed → S²LOW → ARActe → GED → archive service, when the metadata name an ``archive``:
see :func:`archive_settings`), ``helios`` (PES Aller signed → S²LOW → PES Acquit and
PES Retour → GED), ``depot`` and ``mail`` (each document through any connector's ``deliver``), ``signature``
(documents à signer: a folder on a parapheur through a « parapheur » connector, followed until its circuit ends,
the signed documents fetched → GED). ``actes`` and ``helios`` start with the same signature stage when their
metadata name one: ``signature: {"connector": "<parapheur connector>"}``.

What a flow files in the GED goes to a folder of the plan, never its root: the one its connector names
(``ged_folder``, set by an administrator), or the one its metadata name if its creator may write there (see
:func:`_filing_folder`); a flow that would file with neither is refused.

What S²LOW hands back is the collectivité's only if it names its SIREN (:func:`commune_siren`): an ARActe, a letter
of the prefecture, a PES Acquit or Retour of another collectivité (an account two collectivités share) is refused
before anything is stored, filed or marked read (:func:`refuse_foreign`). The prefecture's letters are read by
whoever may send acts (:data:`LETTER_ROLES`), collected by the schedule (:func:`collect_prefecture_letters`) and
noted in their act's flow history. Who started a flow hears by mail of a refusal, an error, a new letter
(interop.notices).
"""

from __future__ import annotations

import io
import logging
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from string import Template
from typing import Any

from lxml import etree
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from interop import actes, notices
from interop.connectors.mail import template_values
from interop.connectors.parapheur import ParapheurConnector, send_id
from interop.connectors.s2low import (
    S2lowConnector,
    S2lowDuplicate,
    S2lowRefused,
    acquit_refusal,
    aracte_fields,
    pes_siren,
)
from interop.connectors.sae import parse_xml
from interop.models import Connector, Delivery, Flow, FlowEvent, FlowLock, TdtClassification
from interop.retry import DEFAULT_POLICY, parse_policy
from interop.schemas import YEAR_PLACEHOLDER
from socle import audit, messages
from socle.auth import Principal, Role
from socle.dates import spelled_date
from socle.db import advisory_xact_lock, utcnow
from socle.errors import Conflict, InvalidInput, Message, NotFound, SocleError, message
from socle.models import AuditEntry, Job, Tenant
from socle.queue import FAILED, enqueue
from socle.settings import get_settings
from socle.storage import get_store
from socle.storage.ownership import record_held, tenant_holds
from socle.text import check_text

log = logging.getLogger("interop.flows")

KINDS = ("actes", "helios", "depot", "mail", "signature")
TDT_KINDS = ("s2low",)
STATUSES = ("running", "waiting", "error", "done")
DSIG = "http://www.w3.org/2000/09/xmldsig#"
# Waiting for the GED's answer; final states.
FILING, FILED, DELIVERED, CANCELLED = "classement GED", "classé", "déposé", "annulation demandée"
# actes with an « archive » in their metadata: « classé » then asks the archive service for a transfer.
ARCHIVED, TRANSFER = "versé aux archives", "versement"
SAE_KINDS = ("vitam", "asalae")
# The signature stage: « au parapheur » (« au parapheur : étape 2 sur 3 » while the circuit runs), then « signé »
# (actes, helios: their own machine goes on from there), or « rejeté » (final).
AT_PARAPHEUR, SIGNED, REJECTED = "au parapheur", "signé", "rejeté"
LOCK_GRACE = timedelta(seconds=60)
# A PES Retour in the GED: named « retour:<S²LOW id> », its « flow » the TdT connector's id (see collect_pes_retours).
RETOUR_PREFIX = "retour:"
# A prefecture's letter in the GED: named « courrier:<S²LOW id>:<n> », its « flow » the TdT connector's id.
LETTER_PREFIX = "courrier:"
# The platform's states the « actes » and « helios » machines follow (each a state with the follow step).
FOLLOW_STATES = ("posté", "en attente de transmission", "transmis")
# The states a flow may end in; any other state without a step is an error, never « done ».
FINAL_STATES = frozenset({FILED, ARCHIVED, DELIVERED, "envoyé", REJECTED, CANCELLED})
# A S²LOW identifier (transaction, prefecture letter): ASCII digits only.
DIGITS_ID = re.compile(r"[0-9]{1,20}")
# Who starts, lists and reads flows (an administrator too: Principal.require); the secrétariat des assemblées is
# who usually transmits délibérations and arrêtés to the préfecture.
FLOW_ROLES = (Role.AGENT, Role.SECRETARIAT, Role.ARCHIVISTE)
# Who reads the prefecture's letters and answers them: whoever may send the acts they are about (docs/interop.md:
# the secrétariat des assemblées transmits délibérations and arrêtés, so it hears from the prefecture and replies),
# an administrator too. A letter is the collectivité's (the SIREN of its act), never another's.
LETTER_ROLES = FLOW_ROLES
# What a step's data says of the platform's current state: dropped when the flow leaves that state (the history
# keeps each line), so that « état S²LOW : posté » is never read as current once the flow has moved on.
PLATFORM_NOTES = ("platform_state", "platform_code", "last_message")


class Refused(InvalidInput):
    """The platform refused the act or the PES (the prefecture's, the accountant's): the flow stops in error and who
    started it is told it was refused (interop.notices)."""


class ForeignDocument(InvalidInput):
    """S²LOW handed the connector a document of another collectivité (another SIREN): refused before anything is
    stored, filed or marked read; audited and told to the administrators (see :func:`refuse_foreign`)."""


# --------------------------------------------------------------------------------------------------------
# Outcomes of a step


@dataclass
class Advance:
    to: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    wait: bool = False  # the new state polls the platform: its first step after the policy's delay


@dataclass
class Wait:
    message: str


@dataclass
class Pause:
    """Another service answers with a message (the GED): no job until then."""

    message: str


Outcome = Advance | Wait | Pause


@dataclass
class Step:
    run: Callable[[Session, Flow, Connector], Outcome]
    lock: Callable[[Flow], str] | None = None
    connector: Callable[[Flow], str] | None = None  # the connector the step talks to (default: the flow's)
    sends: bool = False  # the step sends to the platform: paced by the connector's send_retry_policy if set


# --------------------------------------------------------------------------------------------------------
# Starting, listing, resuming


def start_flow(
    session: Session,
    principal: Principal,
    kind: str,
    connector_name: str,
    documents: list[dict[str, Any]],
    metadata: dict[str, Any],
) -> Flow:
    """Start a flow: check what can be checked now, record it, enqueue its first step.

    :param documents: each {object_key, filename, sha256?, type_pj?}; the object must be one the tenant holds
        (a GED version, a parapheur document, an archive package, a flow's file: socle.storage.ownership), in the
        store.
    :raises InvalidInput: unknown kind, a connector of the wrong kind, a document missing or another
        collectivité's (the same message: no oracle), bad metadata.
    :raises NotFound: no such connector. :raises Conflict: the connector is disabled.
    """
    principal.require(*FLOW_ROLES)
    if kind not in KINDS:
        raise InvalidInput(
            message("type de flux inconnu : %(kind)s (attendu : %(kinds)s)", kind=kind, kinds=", ".join(KINDS))
        )
    connector = _connector(session, principal.tenant_id, connector_name)
    _check_connector_kind(kind, connector)
    checked = [_checked_document(session, principal.tenant_id, document) for document in documents]
    if not checked:
        raise InvalidInput(message("un flux demande au moins un document"))
    if kind == "helios" and len(checked) > 1:  # only the first would be sent: the others silently dropped
        raise InvalidInput(message("un flux Hélios transmet un seul fichier : le PES Aller"))
    metadata = _with_ged_folder(kind, connector, metadata)
    signing = signature_settings(kind, connector_name, metadata)
    if signing is not None:
        parapheur = _connector(session, principal.tenant_id, signing)
        if parapheur.kind != "parapheur":
            raise InvalidInput(
                message(
                    "« %(parapheur_name)s » n'est pas un connecteur de parapheur (signature)",
                    parapheur_name=parapheur.name,
                )
            )
    if kind == "actes":
        act = actes.act_from_metadata(metadata, checked)  # a bad field is refused now, not at the first step
        actes.check_files(get_store(), act)
        _check_codes_now(session, connector, act)
        _check_number_free(session, principal.tenant_id, connector_name, act.number)
        metadata = {**metadata, "numero": act.number}  # as a string: how _check_number_free finds it
        archive = archive_settings(metadata)
        if archive is not None:
            sae = _connector(session, principal.tenant_id, archive["connector"])
            if sae.kind not in SAE_KINDS:
                raise InvalidInput(
                    message(
                        "« %(sae_name)s » n'est pas un connecteur de système d'archivage (Vitam, As@lae)",
                        sae_name=sae.name,
                    )
                )
    flow = Flow(
        tenant_id=principal.tenant_id,
        kind=kind,
        connector=connector_name,
        state="nouveau",
        status="running",
        documents=checked,
        flow_metadata=dict(metadata),
        data={},
        created_by=principal.actor,
    )
    session.add(flow)
    session.flush()
    _event(session, flow, None, "nouveau", principal.actor, f"flux « {kind} » créé", {"connector": connector_name})
    _enqueue_step(session, flow)
    session.commit()
    return flow


def _check_codes_now(session: Session, connector: Connector, act: actes.Act) -> None:
    """The act's nature, code matière and types against the classification kept, when there is one (its
    freshness is checked before the send). A code missing from a classification known to be out of date may
    be in the newer one: the refusal then says so, and to fetch it again, rather than « absent » alone.

    :raises InvalidInput: what is missing, and the classification's staleness when known.
    """
    row = _classification(session, connector)
    if row is None:
        return
    try:
        actes.check_codes(act, row.natures, row.matieres)
    except InvalidInput as exc:
        stale = actes.staleness(_kept(row), _max_age(connector), utcnow())
        if stale is None:
            raise
        detail = message("%(detail)s — %(stale)s", detail=exc.detail, stale=stale)
        raise InvalidInput(detail.replace("{nom}", connector.name)) from None


def _check_number_free(session: Session, tenant_id: str, connector_name: str, number: str) -> None:
    """S²LOW takes an act number once per collectivité, whatever its date (« numéro interne … en conflit »):
    another act flow with this number is refused now, unless it ended without ever sending (see
    :func:`_never_sent`).

    The number's lock is taken first and held until the caller commits the new flow: two starts with the same
    number at once check one after the other, the second seeing the first's flow.

    :raises Conflict: the number is taken, with the flow that took it.
    """
    # Taken before any row or object lock and before the audit chain's head, once per transaction.
    advisory_xact_lock(session, "interop-act-number", tenant_id, connector_name, number)
    query = select(Flow).where(
        Flow.tenant_id == tenant_id,
        Flow.kind == "actes",
        Flow.connector == connector_name,
        Flow.flow_metadata["numero"].as_string() == number,
    )
    for other in session.execute(query).scalars():
        if not _never_sent(other):
            raise Conflict(
                message(
                    "numéro interne « %(number)s » déjà pris par le flux %(flow_id)s : S²LOW n'accepte un numéro "
                    "qu'une fois par collectivité (%(hint)s)",
                    number=number,
                    flow_id=other.id,
                    hint=_other_number_hint(number),
                )
            )


def _never_sent(flow: Flow) -> bool:
    """A flow that stopped (in error, or done: rejected at the parapheur) with neither a send under way nor a
    transaction: S²LOW never had its act. A flow still on its way will send its number: it keeps it."""
    stopped = flow.status in ("error", "done")
    return stopped and not flow.data.get("sending") and not flow.data.get("transaction_id")


def _other_number_hint(number: str) -> Message:
    """What to do with a taken number: an example only when it is itself a valid number (15 characters)."""
    suggestion = f"{number}_B"
    if actes.valid_number(suggestion):
        return message("ajoutez un suffixe, ex. %(suggestion)s", suggestion=suggestion)
    return message("choisissez un autre numéro, 15 caractères au plus : lettres, chiffres, _")


def _connector(session: Session, tenant_id: str, name: str) -> Connector:
    from interop.service import get_connector

    connector = get_connector(session, tenant_id, name)
    if not connector.enabled:
        raise Conflict(message("le connecteur « %(name)s » est désactivé", name=name))
    return connector


def _check_connector_kind(kind: str, connector: Connector) -> None:
    if kind in ("actes", "helios") and connector.kind not in TDT_KINDS:
        raise InvalidInput(
            message(
                "le flux « %(kind)s » passe par un tiers de télétransmission (S²LOW), pas « %(connector_kind)s »",
                kind=kind,
                connector_kind=connector.kind,
            )
        )
    if kind == "mail" and connector.kind != "mail":
        raise InvalidInput(
            message(
                "le flux « mail » passe par un connecteur de courriel, pas « %(connector_kind)s »",
                connector_kind=connector.kind,
            )
        )
    if kind == "signature" and connector.kind != "parapheur":
        raise InvalidInput(
            message(
                "le flux « signature » passe par un connecteur de parapheur, pas « %(connector_kind)s »",
                connector_kind=connector.kind,
            )
        )
    if kind == "depot" and connector.kind in (*TDT_KINDS, "mail"):
        raise InvalidInput(
            message(
                "le flux « dépôt » ne passe pas par un connecteur « %(connector_kind)s »", connector_kind=connector.kind
            )
        )


# The kinds that file what they bring back in the GED (ARActe, PES Acquit, signed documents…): never without a
# folder of the plan, where every user of the collectivité would read them (see ged_folder).
GED_KINDS = ("actes", "helios", "signature")


def _with_ged_folder(kind: str, connector: Connector, metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata with their ``ged_folder`` checked and normalised (or left out when blank).

    :raises InvalidInput: a ``ged_folder`` that is not a path or an id, or given to a kind that files nothing;
        a kind that files in the GED with no folder named, neither by the metadata nor by the connector.
    """
    chosen = ged_folder_reference(metadata.get("ged_folder"))
    if chosen is not None and kind not in GED_KINDS:
        raise InvalidInput(
            message("le flux « %(kind)s » ne classe rien dans la GED : ged_folder est sans objet", kind=kind)
        )
    if kind in GED_KINDS and chosen is None:
        ged_folder(connector)  # refused now rather than once the platform has answered
    without = {key: item for key, item in metadata.items() if key != "ged_folder"}
    return without | ({"ged_folder": chosen} if chosen is not None else {})


GED_FOLDER_MAX_LENGTH = 1000  # as a connector's (interop.schemas.GED_FOLDER_FIELD) and a sous-type's


def ged_folder_reference(value: Any) -> str | None:
    """A folder of the GED's plan named in a flow's metadata, as in a connector's settings: its path of names
    (slashes at the ends ignored) or its id; None when blank. Its existence is the GED's to check, when it files.

    :raises InvalidInput: not a text, more than 1,000 characters, a control character.
    """
    if value is None:
        return None
    if not isinstance(value, str) or len(value.strip(" /")) > GED_FOLDER_MAX_LENGTH:
        raise InvalidInput(
            message(
                "ged_folder : chemin d'un dossier du plan de classement de la GED (ex. Actes/2026, %(max_length)s "
                "caractères au plus) ou son identifiant attendu",
                max_length=GED_FOLDER_MAX_LENGTH,
            )
        )
    check_text(value, "ged_folder", required=False)
    return value.strip(" /") or None


def ged_folder(connector: Connector) -> str:
    """The folder of the GED's plan where the connector's flows file what they bring back (its ``ged_folder``).

    :raises InvalidInput: none set, with what to do.
    """
    reference = str(connector.config.get("ged_folder") or "").strip()
    if not reference:
        raise InvalidInput(
            message(
                "le connecteur « %(name)s » ne désigne aucun dossier de la GED où classer les documents de ses flux : "
                "un administrateur doit renseigner « ged_folder » dans sa configuration (chemin dans le plan de "
                "classement, ex. Actes/2026, ou identifiant du dossier)",
                name=connector.name,
            )
        )
    return reference


def _filing_folder(flow: Flow, connector: Connector) -> tuple[str, str | None]:
    """Where the GED files the flow's documents, and who chose it: the folder its creator named in its metadata
    (the GED then files only if they may write there), else the connector's, set by an administrator (None).

    :raises InvalidInput: neither names one (see :func:`ged_folder`).
    """
    chosen = flow.flow_metadata.get("ged_folder")
    if chosen:
        # Never unchecked: a flow no user started (none today) names its actor, a user the GED does not know.
        return str(chosen), _creator(flow) or flow.created_by
    return ged_folder(connector), None


# What a TdT connector files, by the name of its document: the setting naming its own folder (ged_folder_<kind>,
# else ged_folder) and the code of the GED's document type it takes when the collectivité has one (docs/interop.md).
FILED_KINDS = {
    "aracte": ("aracte", "aracte"),
    "acquit": ("pes_acquit", "pes_acquit"),
    "retour": ("pes_retour", "pes_retour"),
    "courrier": ("courrier", "courrier_prefecture"),
}


def kind_folder(connector: Connector, kind: str | None, year: str) -> str:
    """The folder of the GED's plan where ``connector`` files a document of ``kind`` (aracte, acquit, retour,
    courrier; None: any other): its own folder when set (``ged_folder_aracte``…), else ``ged_folder``; its
    ``{année}`` replaced by ``year``, the act's or the document's.

    :raises InvalidInput: no ``ged_folder`` (see :func:`ged_folder`): it stays the default of every kind.
    """
    default = ged_folder(connector)
    setting = FILED_KINDS[kind][0] if kind in FILED_KINDS else None
    own = str(connector.config.get(f"ged_folder_{setting}") or "").strip() if setting else ""
    return (own or default).replace(YEAR_PLACEHOLDER, year)


def act_number(act_id: str) -> str:
    """The collectivité's number of an act from its @ctes id (037-213700000-20261130-DEL_42-DE → DEL_42)."""
    parts = act_id.split("-")
    return parts[3] if len(parts) == 5 else act_id


def act_year(act_id: str) -> str:
    """The year of an act from its @ctes id (its date, AAAAMMJJ), else the current year."""
    parts = act_id.split("-")
    return parts[2][:4] if len(parts) == 5 and parts[2][:4].isdigit() else str(utcnow().year)


def act_title(label: str, act_id: str, subject: str) -> str:
    """« Accusé de réception — acte n° DEL_42 : Budget primitif 2027 »: what a filed document is about."""
    said = f"{label} — acte n° {act_number(act_id) or '?'}"
    return (f"{said} : {subject}" if subject else said)[:500]


def _checked_document(session: Session, tenant_id: str, document: dict[str, Any]) -> dict[str, Any]:
    key = str(document.get("object_key") or "")
    digest = document.get("sha256")
    if digest is not None and str(digest).lower() != key.lower():
        raise InvalidInput(
            message(
                "empreinte du document %(document)s différente de sa clé d'objet", document=document.get("filename")
            )
        )
    store = get_store()
    if not _held_in_store(session, tenant_id, key):
        raise _absent(key)
    out = {"object_key": key, "filename": str(document.get("filename") or "document"), "size": store.size(key)}
    if document.get("type_pj"):
        out["type_pj"] = str(document["type_pj"])
    return out


# The services whose objects a flow may be given: the documents of the GED, the parapheur and the flows. Not
# the archive service's packages: a SIP holds whole documents of folders the caller may not read, and its key
# is shown with the transfer; a transfer goes to the SAE through the archive service, never through a flow.
FLOW_SOURCES = frozenset({"ged", "parapheur", "interop"})


def _held_in_store(session: Session, tenant_id: str, key: str) -> bool:
    """The tenant's own object (GED, parapheur, its flows), still in the store. The shared store is
    content-addressed: a key alone proves nothing, and another tenant's object is told apart from no object at
    all by nothing (see :func:`_absent`)."""
    return bool(key) and tenant_holds(session, tenant_id, key, through=FLOW_SOURCES) and get_store().exists(key)


def _absent(key: str) -> InvalidInput:
    """The same refusal for an object missing from the store and for another collectivité's: no oracle."""
    return InvalidInput(
        message(
            "document absent du stockage de la collectivité : %(object_key_start)s",
            object_key_start=key[:16] or "(clé vide)",
        )
    )


def _stuck_before() -> datetime:
    return utcnow() - timedelta(seconds=get_settings().job_timeout) - LOCK_GRACE


def _stuck() -> Any:
    """A flow on its way whose next step should have run long ago (a lost job, a GED that never answered)."""
    return Flow.status.in_(("running", "waiting")) & (
        func.coalesce(Flow.next_check_at, Flow.updated_at) < _stuck_before()
    )


def list_flows(session: Session, tenant_id: str, state: str | None, limit: int) -> list[Flow]:
    """The tenant's flows, newest first.

    :param state: a status (running, waiting, error, done), ``stuck`` (on its way but nothing has happened for
        longer than a job may take), or a state name.
    """
    query = select(Flow).where(Flow.tenant_id == tenant_id)
    if state == "stuck":
        query = query.where(_stuck())
    elif state in STATUSES:
        query = query.where(Flow.status == state)
    elif state:
        query = query.where(Flow.state == state)
    return list(session.execute(query.order_by(Flow.created_at.desc()).limit(limit)).scalars())


def get_flow(session: Session, tenant_id: str, flow_id: str, *, for_update: bool = False) -> Flow:
    """:raises NotFound: no such flow in the tenant."""
    query = select(Flow).where(Flow.id == flow_id, Flow.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    flow = session.execute(query).scalar_one_or_none()
    if flow is None:
        raise NotFound(message("flux %(flow_id)s introuvable", flow_id=flow_id))
    return flow


def history(session: Session, flow: Flow) -> list[FlowEvent]:
    """The flow's transitions, oldest first."""
    return list(session.execute(select(FlowEvent).where(FlowEvent.flow_id == flow.id).order_by(FlowEvent.id)).scalars())


# --------------------------------------------------------------------------------------------------------
# Who reads the object keys of a flow's files
#
# A flow is started with object keys, and the tenant holding a key is all start_flow can check (the GED's and the
# parapheur's rights are theirs: services never ask each other). So a key is as good as the document: the keys of
# a flow's files (its documents, the @ctes package, the ARActe, the PES Acquit, the signed documents back from the
# parapheur…) are shown whole only to who started it and to administrators. Any other reader of the flow sees the
# files' names and sizes, its states and its history, each key cut to its first 16 characters (as the error
# messages quote them): enough to tell two files apart, of no use to start a flow.

# An object key (a SHA-256 in hex), wherever it is: a document, what a step learnt, a history line, a receipt.
_OBJECT_KEY = re.compile(r"[0-9a-fA-F]{64,}")


def shows_keys(principal: Principal, flow: Flow) -> bool:
    """Whether ``principal`` may read the object keys (digests) of the flow's files: its creator, an administrator."""
    return Role.ADMIN in principal.roles or flow.created_by == principal.actor


def without_keys(value: Any) -> Any:
    """``value`` (JSON: dicts, lists, strings…) with every object key in it cut to its first 16 characters and « … »,
    in a field of its own or within a text."""
    if isinstance(value, dict):
        return {name: without_keys(item) for name, item in value.items()}
    if isinstance(value, list):
        return [without_keys(item) for item in value]
    if isinstance(value, str):
        return _OBJECT_KEY.sub(lambda found: f"{found[0][:16]}…", value)
    return value


def deliveries_showing_keys(session: Session, principal: Principal, deliveries: list[Delivery]) -> set[str]:
    """The ids of the deliveries whose object keys ``principal`` may read (the delivered object, the receipt, the
    SAE's messages): an administrator, all; a flow's delivery (« flow:<id>:<n> »), its flow's creator, as for the
    flow (:func:`shows_keys`); a GED document's « envoyer vers » (« ged:… »), no one else (who asked is not kept
    here: the GED shows the key to those who may read the document); any other (an archive transfer's package
    and the SAE's answers), archivists, who follow the transfers.
    """
    if Role.ADMIN in principal.roles:
        return {delivery.id for delivery in deliveries}
    flow_of = {delivery.id: _delivery_flow(delivery) for delivery in deliveries}
    flow_ids = {flow_id for flow_id in flow_of.values() if flow_id is not None}
    mine: set[str] = set()
    if flow_ids:  # the flows among them this user started, in one query
        query = select(Flow.id).where(
            Flow.tenant_id == principal.tenant_id, Flow.id.in_(flow_ids), Flow.created_by == principal.actor
        )
        mine = set(session.execute(query).scalars())
    shown = set()
    for delivery in deliveries:
        flow_id = flow_of[delivery.id]
        if flow_id is not None:
            if flow_id in mine:
                shown.add(delivery.id)
        elif not delivery.idempotency_key.startswith("ged:") and Role.ARCHIVISTE in principal.roles:
            shown.add(delivery.id)
    return shown


def _delivery_flow(delivery: Delivery) -> str | None:
    """The flow a delivery was made for (its key, see :func:`_deliver_all`), if any."""
    prefix, _, rest = delivery.idempotency_key.partition(":")
    return rest.rsplit(":", 1)[0] if prefix == "flow" and rest else None


def resume(session: Session, principal: Principal, flow_id: str, transaction_id: str | None = None) -> Flow:
    """An operator resumes a flow stopped in error, or stuck: its current state's step runs again, a new round
    of tries (a delayed job of the flow is harmless: it carries an older step number, see :func:`run_step`).

    :param transaction_id: a Hélios flow whose PES S²LOW received though the answer was lost (a resend is
        refused as a « doublon » and S²LOW cannot find a PES by name): the transaction the operator found on
        S²LOW. It is checked there, then kept: the flow follows it and never sends again.
    :raises Conflict: the flow is neither in error nor stuck; a transaction given to a flow that is not a
        Hélios flow waiting to send. :raises InvalidInput: S²LOW does not know the transaction.
    """
    principal.require(Role.ADMIN)
    flow = get_flow(session, principal.tenant_id, flow_id, for_update=True)
    stuck = session.execute(select(Flow.id).where(Flow.id == flow.id, _stuck())).first() is not None
    if flow.status != "error" and not stuck:
        raise Conflict(
            message(
                "seul un flux en erreur ou bloqué peut être repris (statut : %(flow_status)s)", flow_status=flow.status
            )
        )
    details: dict[str, Any] = {}
    if transaction_id is not None:
        flow = _resume_with_transaction(session, principal, flow, transaction_id)
        details = {"transaction_id": transaction_id}
    flow.status, flow.error, flow.round_start = "running", None, flow.checks
    note = "flux repris par un opérateur" + (f" (transaction S²LOW {transaction_id})" if details else "")
    _event(session, flow, flow.state, flow.state, principal.actor, note, details)
    _enqueue_step(session, flow)
    session.commit()
    return flow


def _resume_with_transaction(session: Session, principal: Principal, flow: Flow, transaction_id: str) -> Flow:
    """Check on S²LOW the transaction an operator gives a Hélios flow, and keep it (the flow locked again)."""
    if flow.kind != "helios" or flow.state != "prêt" or flow.data.get("transaction_id"):
        raise Conflict(
            message(
                "une transaction S²LOW ne peut être donnée qu'à un flux Hélios arrêté avant de "
                "connaître la sienne (état « %(flow_state)s »)",
                flow_state=flow.state,
            )
        )
    if not DIGITS_ID.fullmatch(transaction_id):  # ASCII digits only, as S²LOW's ids
        raise InvalidInput(
            message(
                "identifiant de transaction S²LOW invalide : « %(transaction_id)s » (chiffres attendus)",
                transaction_id=transaction_id[:40],
            )
        )
    connector = _connector(session, principal.tenant_id, flow.connector)
    _check_transaction_free(session, flow, transaction_id)
    session.commit()  # no lock held while S²LOW answers
    try:
        status = s2low(connector).helios_status(transaction_id)
    except S2lowRefused as exc:
        raise InvalidInput(
            message(
                "transaction %(transaction_id)s introuvable sur S²LOW : %(exc_detail)s",
                transaction_id=transaction_id,
                exc_detail=exc.detail,
            )
        ) from None
    flow = get_flow(session, principal.tenant_id, flow.id, for_update=True)
    if flow.data.get("transaction_id"):
        raise Conflict(
            message(
                "le flux connaît déjà sa transaction S²LOW (%(flow_data_transaction_id)s)",
                flow_data_transaction_id=flow.data["transaction_id"],
            )
        )
    _check_transaction_free(session, flow, transaction_id)
    _set(flow, transaction_id=transaction_id, recovered=True, platform_state=status.label)
    return flow


def _check_transaction_free(session: Session, flow: Flow, transaction_id: str) -> None:
    """A transaction another flow follows is that flow's PES: given to this one, its PES Acquit would be filed
    twice and this flow's own PES never followed.

    :raises Conflict: another flow of the collectivité on the same connector has it.
    """
    query = select(Flow).where(
        Flow.tenant_id == flow.tenant_id,
        Flow.connector == flow.connector,
        Flow.kind.in_(("actes", "helios")),
        Flow.id != flow.id,
        Flow.data["transaction_id"].as_string() == transaction_id,
    )
    other = session.execute(query).scalars().first()
    if other is not None:
        raise Conflict(
            message(
                "la transaction S²LOW %(transaction_id)s est déjà celle du flux %(flow_id)s",
                transaction_id=transaction_id,
                flow_id=other.id,
            )
        )


# --------------------------------------------------------------------------------------------------------
# Running a step (the job)


def run_step(tenant_id: str, flow_id: str, state: str, step_number: int) -> None:
    """Run the step of ``state`` if the flow is still there and this job is its latest one.

    :param step_number: the flow's step count when the job was enqueued; a job the flow has moved past (a
        delayed job of a flow an operator resumed since, a job pushed twice) does nothing, so the lock holder
        ``{flow}:{step}`` is never shared by two jobs.
    """
    from socle.db import transaction

    with transaction() as session:
        flow = get_flow(session, tenant_id, flow_id, for_update=True)
        if flow.steps != step_number:
            log.info("flow %s: stale job (step %s, flow at %s) ignored", flow.id, step_number, flow.steps)
            return
        step = _step_of(flow, flow.state)
        if flow.state != state or flow.status not in ("running", "waiting") or step is None:
            return
        name = _connector_name(flow, flow.state)
        connector = session.execute(
            select(Connector).where(Connector.tenant_id == tenant_id, Connector.name == name)
        ).scalar_one_or_none()
        if connector is None:
            _fail(session, flow, f"connecteur « {name} » supprimé")
            return
        lock = step.lock(flow) if step.lock else None
        holder = f"{flow.id}:{flow.steps}"
        if lock and not _acquire(session, lock, holder):
            log.info("flow %s: %s is held, step %s postponed", flow.id, lock, state)
            _enqueue_step(session, flow, utcnow() + timedelta(seconds=5))
            return
        try:
            _run(session, flow, connector, step)
        finally:
            if lock:
                session.rollback()
                session.execute(delete(FlowLock).where(FlowLock.key == lock, FlowLock.holder == holder))
                session.commit()


def _run(session: Session, flow: Flow, connector: Connector, step: Step) -> None:
    session.commit()  # no transaction held while the platform is called (on SQLite, the write lock)
    try:
        outcome = step.run(session, flow, connector)
    except SocleError as exc:
        session.rollback()
        flow = get_flow(session, flow.tenant_id, flow.id, for_update=True)
        if exc.status >= 500:
            _count_try(session, flow, connector, exc.detail)  # the platform did not answer as it should
        else:  # refused: trying again with the same input would not help
            _fail(session, flow, exc.detail, refused=isinstance(exc, Refused))
        session.commit()
        return
    if isinstance(outcome, Advance):
        _advance(session, flow, outcome)
    elif isinstance(outcome, Wait):
        _count_try(session, flow, connector, outcome.message)
    else:
        flow.status = "waiting"
        flow.updated_at = utcnow()
    session.commit()


def _acquire(session: Session, key: str, holder: str) -> bool:
    """Take the lock key; the same holder again (its job re-run after a crash) or a stale holder gives it up."""
    found = session.get(FlowLock, key)
    stale = utcnow() - timedelta(seconds=get_settings().job_timeout) - LOCK_GRACE
    if found is not None:
        if found.holder != holder and found.acquired_at > stale:
            return False
        found.holder, found.acquired_at = holder, utcnow()
        session.commit()
        return True
    session.add(FlowLock(key=key, holder=holder))
    try:
        session.commit()
    except IntegrityError:  # taken at the same instant by another worker
        session.rollback()
        return False
    return True


def _enqueue_step(session: Session, flow: Flow, when: datetime | None = None) -> None:
    flow.steps += 1
    flow.next_check_at = when
    enqueue(
        session,
        messages.INTEROP_FLOW_STEP,
        key=f"interop.flow:{flow.id}:{flow.steps}",
        not_before=when,
        tenant_id=flow.tenant_id,
        flow_id=flow.id,
        state=flow.state,
        step=flow.steps,
    )


def _advance(session: Session, flow: Flow, outcome: Advance, actor: str = "service:interop") -> None:
    before = flow.state
    if outcome.to != before and any(name in flow.data for name in PLATFORM_NOTES):
        # Said of the state the flow leaves: kept in its history, never shown as the platform's current state.
        flow.data = {name: value for name, value in flow.data.items() if name not in PLATFORM_NOTES}
    flow.state, flow.checks, flow.round_start, flow.updated_at = outcome.to, 0, 0, utcnow()
    _event(session, flow, before, outcome.to, actor, outcome.message, outcome.details)
    if _step_of(flow, outcome.to) is None:
        if outcome.to not in FINAL_STATES:  # a state the machine does not know: stop, visible, never « done »
            _fail(session, flow, f"état « {outcome.to} » sans étape dans le flux « {flow.kind} »")
            return
        flow.status, flow.next_check_at = "done", None
        return
    flow.status = "running"
    wait = _policy(session, flow).delay(0) if outcome.wait else None
    if outcome.wait:
        flow.status = "waiting"
    _enqueue_step(session, flow, utcnow() + wait if wait else None)


def _step_of(flow: Flow, state: str) -> Step | None:
    """The step of ``state`` in the flow's machine; « classé » is final unless the act is to be archived."""
    if flow.kind == "actes" and state == FILED and archive_settings(flow.flow_metadata) is None:
        return None
    if state.startswith(AT_PARAPHEUR):  # « au parapheur », « au parapheur : étape 2 sur 3 »
        return SIGNATURE_FOLLOW
    if state == "nouveau" and signature_settings(flow.kind, flow.connector, flow.flow_metadata) is not None:
        return SIGNATURE_SEND
    return MACHINES[flow.kind].get(state)


def _connector_name(flow: Flow, state: str) -> str:
    """The connector the step of ``state`` talks to: its retry policy paces the step's tries."""
    step = _step_of(flow, state)
    return step.connector(flow) if step is not None and step.connector is not None else flow.connector


def _policy_text(session: Session, flow: Flow) -> str:
    name = _connector_name(flow, flow.state)
    connector = session.execute(
        select(Connector).where(Connector.tenant_id == flow.tenant_id, Connector.name == name)
    ).scalar_one_or_none()
    return _connector_policy(connector.config if connector else {}, flow)


def _connector_policy(config: dict[str, Any], flow: Flow) -> str:
    """The policy pacing the current step: ``send_retry_policy`` for a sending step when set, else ``retry_policy``."""
    step = _step_of(flow, flow.state)
    if step is not None and step.sends and config.get("send_retry_policy"):
        return str(config["send_retry_policy"])
    return str(config.get("retry_policy") or DEFAULT_POLICY)


def _policy(session: Session, flow: Flow) -> Any:
    return parse_policy(_policy_text(session, flow))


def _count_try(session: Session, flow: Flow, connector: Connector, message: str) -> None:
    """One more try of the current state; the next one after the policy's delay, or the flow in error."""
    flow.checks += 1
    flow.data = {**flow.data, "last_message": message}
    policy = parse_policy(_connector_policy(connector.config, flow))
    tries = flow.checks - flow.round_start
    wait = policy.delay(tries - 1)
    if wait is None:
        _fail(session, flow, f"{message} — après {tries} essai(s) ({policy.describe()})")
        return
    flow.status, flow.updated_at = "waiting", utcnow()
    _enqueue_step(session, flow, utcnow() + wait)


def _fail(session: Session, flow: Flow, reason: str, *, refused: bool = False) -> None:
    """The flow stops in error, resumable; who started it hears it by mail, and the administrators unless the
    platform refused the act or the PES (``refused``: the prefecture's or the accountant's word, not an operator's
    matter)."""
    flow.status, flow.next_check_at, flow.updated_at = "error", None, utcnow()
    flow.error = f"{reason}. Reprendre : POST /interop/flows/{flow.id}/resume"
    _event(session, flow, flow.state, flow.state, "service:interop", f"erreur : {reason}", {"status": "error"})
    notices.flow_stopped(session, flow, reason, refused=refused)


def fail_from_job(tenant_id: str, flow_id: str, reason: str) -> None:
    """A job of the flow failed for good (messages.INTEROP_FLOW_FAILED): the flow stops in error, visible."""
    from socle.db import transaction

    with transaction() as session:
        query = select(Flow).where(Flow.id == flow_id, Flow.tenant_id == tenant_id).with_for_update()
        flow = session.execute(query).scalar_one_or_none()
        if flow is None:  # a PES Retour's or a letter's GED job (« flow_id »: its connector): left unread on S²LOW
            log.warning("GED job of %s failed for good: %s", flow_id, reason)
            connector = session.execute(
                select(Connector.id).where(Connector.tenant_id == tenant_id, Connector.id == flow_id)
            ).scalar_one_or_none()
            if connector is not None:  # in the audit log too, where an administrator finds it (folder missing…)
                audit.record(
                    session,
                    tenant_id=tenant_id,
                    actor="service:interop",
                    action="interop.ged_filing.failed",
                    object_type="connector",
                    object_id=connector,
                    details={"reason": reason[:500]},
                )
            return
        if flow.status not in ("done", "error"):
            _fail(session, flow, reason)


def document_stored(tenant_id: str, flow_id: str, name: str, document_id: str) -> None:
    """The GED has stored one of the flow's documents (messages.INTEROP_FLOW_DOCUMENT_STORED); once all are,
    the flow is filed. A repeated message changes nothing."""
    from socle.db import transaction

    if name.startswith(RETOUR_PREFIX):  # a PES Retour collected for a TdT connector, not a flow's document
        pes_retour_stored(tenant_id, flow_id, name.removeprefix(RETOUR_PREFIX), document_id)
        return
    if name.startswith(LETTER_PREFIX):  # a file of a prefecture's letter, fetched for a TdT connector
        letter_stored(tenant_id, flow_id, name.removeprefix(LETTER_PREFIX).split(":")[0], document_id)
        return
    with transaction() as session:
        flow = get_flow(session, tenant_id, flow_id, for_update=True)
        if name == TRANSFER:
            _transfer_created(session, flow, document_id)
            return
        stored = dict(flow.data.get("ged_documents") or {})
        if flow.state != FILING or name in stored:
            return
        stored[name] = document_id
        flow.data = {**flow.data, "ged_documents": stored}
        if set(stored) >= set(flow.data.get("ged_expected") or []):
            _advance(session, flow, Advance(FILED, "documents enregistrés dans la GED", {"documents": stored}))
        else:
            flow.updated_at = utcnow()


def _event(
    session: Session,
    flow: Flow,
    before: str | None,
    after: str,
    actor: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        FlowEvent(
            flow_id=flow.id,
            tenant_id=flow.tenant_id,
            from_state=before,
            to_state=after,
            actor=actor,
            message=message,
            details=details or None,
        )
    )
    audit.record(
        session,
        tenant_id=flow.tenant_id,
        actor=actor,
        action="interop.flow.error" if (details or {}).get("status") == "error" else "interop.flow.transition",
        object_type="flow",
        object_id=flow.id,
        details={"kind": flow.kind, "from": before, "to": after, "message": message[:500]},
    )


# --------------------------------------------------------------------------------------------------------
# S²LOW and the classification


def s2low(connector: Connector) -> S2lowConnector:
    """The S²LOW client of a TdT connector, its secrets decrypted."""
    from interop.service import connector_secrets

    return S2lowConnector(connector.name, connector.config, connector_secrets(connector))


def fetch_classification(session: Session, principal: Principal, connector_name: str) -> TdtClassification:
    """Fetch the tenant's @ctes classification from its TdT and keep it with its date (administrator).

    :raises InvalidInput: not a TdT connector, or an answer that is not a RetourClassification.
    :raises SaeUnavailable: the TdT did not answer as expected.
    """
    principal.require(Role.ADMIN)
    connector = _connector(session, principal.tenant_id, connector_name)
    if connector.kind not in TDT_KINDS:
        raise InvalidInput(
            message("« %(connector_name)s » n'est pas un tiers de télétransmission", connector_name=connector_name)
        )
    raw = s2low(connector).classification()
    when, natures, matieres = actes.parse_classification(parse_xml(raw, "classification @ctes"))
    stored = get_store().put(io.BytesIO(raw))
    row = _classification(session, connector)
    if row is None:
        row = TdtClassification(tenant_id=principal.tenant_id, connector_id=connector.id)
        session.add(row)
    row.classification_date, row.fetched_at, row.object_key = when, utcnow(), stored.key
    row.natures, row.matieres = natures, matieres
    if row.platform_date is not None and row.platform_date <= when:
        row.platform_date = None
    session.flush()
    record_held(session, principal.tenant_id, stored.key, holder="interop")
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="interop.classification.fetched",
        object_type="connector",
        object_id=connector.id,
        details={"date": when.isoformat(), "matieres": len(matieres), "sha256": stored.key},
    )
    session.commit()
    return row


def _classification(session: Session, connector: Connector) -> TdtClassification | None:
    return session.execute(
        select(TdtClassification).where(
            TdtClassification.tenant_id == connector.tenant_id, TdtClassification.connector_id == connector.id
        )
    ).scalar_one_or_none()


def get_classification(session: Session, tenant_id: str, connector_name: str) -> TdtClassification:
    """:raises NotFound: never fetched."""
    connector = _connector(session, tenant_id, connector_name)
    row = _classification(session, connector)
    if row is None:
        raise NotFound(
            message("classification @ctes jamais récupérée pour « %(connector_name)s »", connector_name=connector_name)
        )
    return row


def _checked_classification(session: Session, flow: Flow, connector: Connector, act: actes.Act) -> date:
    row = _classification(session, connector)
    try:
        actes.check_classification(act, _kept(row) if row else None, _max_age(connector), utcnow())
    except InvalidInput as exc:
        raise InvalidInput(exc.detail.replace("{nom}", connector.name)) from None
    assert row is not None
    return row.classification_date


def _kept(row: TdtClassification) -> actes.Classification:
    return actes.Classification(row.classification_date, row.fetched_at, row.platform_date, row.natures, row.matieres)


def _max_age(connector: Connector) -> int:
    """Days a fetched classification stays fresh (connector setting ``classification_max_age_days``)."""
    return int(connector.config.get("classification_max_age_days") or 30)


def _sender(session: Session, flow: Flow, connector: Connector) -> actes.Sender:
    tenant = session.get(Tenant, flow.tenant_id)
    config = connector.config
    _check_connector_siren(session, flow.tenant_id, connector)
    return actes.Sender(
        siren=str(config.get("siren") or (tenant.siren if tenant else "") or ""),
        department=str(config.get("department") or ""),
        arrondissement=str(config.get("arrondissement") or "0"),
        nature=str(config.get("collectivity_nature") or "01"),
        return_emails=tuple(config.get("return_emails") or ()),
        trigram=str(config.get("actes_trigram") or "TRI"),
    )


def _set(flow: Flow, **values: Any) -> None:
    flow.data = {**flow.data, **values}  # a new dict: SQLAlchemy sees the JSON changed


# --------------------------------------------------------------------------------------------------------
# The collectivité's own documents only: what S²LOW hands back names a SIREN (an act's identifier, a PES's IdColl)

_SIREN = re.compile(r"[0-9]{9}")
# What a document of the TdT is called in a refusal, by the kind of refusal (see refuse_foreign).
FOREIGN_KINDS = {
    "courrier": "courrier de la préfecture",
    "retour": "PES Retour",
    "aracte": "ARActe",
    "acquit": "PES Acquit",
}


def commune_siren(session: Session, tenant_id: str, connector: Connector) -> str:
    """The SIREN of the collectivité a TdT connector speaks for: its ``siren`` when set, else the collectivité's.
    Whatever S²LOW hands back (ARActe, letters of the prefecture, PES Acquit and Retour) must name it.

    :raises InvalidInput: none is known (nothing could then be told the collectivité's), or the connector's is
        another collectivité's of this installation.
    """
    tenant = session.get(Tenant, tenant_id)
    siren = str(connector.config.get("siren") or (tenant.siren if tenant else "") or "").strip()
    if not _SIREN.fullmatch(siren):
        raise InvalidInput(
            message(
                "SIREN de la collectivité inconnu : sans lui, rien de ce que rapporte S²LOW ne peut être reconnu comme "
                "le sien ; renseignez-le (administration de la collectivité) ou « siren » dans la configuration du "
                "connecteur « %(name)s »",
                name=connector.name,
            )
        )
    _check_connector_siren(session, tenant_id, connector)
    return siren


def _check_connector_siren(session: Session, tenant_id: str, connector: Connector) -> None:
    """A connector's own ``siren`` may not be another collectivité's of the installation: its acts would go, and
    that collectivité's letters and PES Retour would come, under its name.

    :raises InvalidInput: it is.
    """
    own = str(connector.config.get("siren") or "").strip()
    if not own:
        return
    tenant = session.get(Tenant, tenant_id)
    if tenant is not None and tenant.siren == own:
        return
    if siren_holder(session, tenant_id, own) is not None:
        raise InvalidInput(
            message(
                "le SIREN %(siren)s du connecteur « %(name)s » est celui d'une autre collectivité de l'installation : "
                "rien n'est envoyé ni reçu sous ce SIREN",
                siren=own,
                name=connector.name,
            )
        )


def siren_holder(session: Session, tenant_id: str, siren: str) -> str | None:
    """The id of another collectivité of the installation that ``siren`` is already the SIREN of: its own
    (``Tenant.siren``), or the ``siren`` of one of its TdT connectors (a commune may keep it there only); None when
    no other holds it. Asked at a connector's save and at flow time."""
    found = session.execute(
        select(Tenant.id).where(Tenant.siren == siren, Tenant.id != tenant_id).limit(1)
    ).scalar_one_or_none()
    return str(found) if found is not None else connector_siren_holder(session, tenant_id, siren)


def connector_siren_holder(session: Session, tenant_id: str, siren: str) -> str | None:
    """The id of another collectivité one of whose TdT connectors names ``siren`` (its « siren »), or None."""
    claimed = session.execute(
        select(Connector.tenant_id)
        .where(
            Connector.kind.in_(TDT_KINDS),
            Connector.tenant_id != tenant_id,
            Connector.config["siren"].as_string() == siren,
        )
        .limit(1)
    ).scalar_one_or_none()
    return str(claimed) if claimed is not None else None


def known_siren(session: Session, tenant_id: str, connector: Connector) -> str | None:
    """The SIREN the TdT connector speaks for (:func:`commune_siren`), or None when none is known: a Hélios-only
    collectivité needs none to send (S²LOW ties a PES Acquit to its transaction).

    :raises InvalidInput: the connector's is another collectivité's of this installation.
    """
    tenant = session.get(Tenant, tenant_id)
    siren = str(connector.config.get("siren") or (tenant.siren if tenant else "") or "").strip()
    if not siren:
        return None
    return commune_siren(session, tenant_id, connector)


def skip_without_siren(session: Session, tenant_id: str, connector: Connector, what: str) -> dict[str, int]:
    """A collection (``what``: PES Retour, courriers de la préfecture) of a connector whose collectivité has no
    known SIREN: nothing is read, since nothing could be told the collectivité's; one log line per run, and one
    audit entry (``interop.tdt.collect_skipped``) the first time, not a failed job every hour. Committed."""
    log.warning("collection of %s for connector %s skipped: no SIREN known", what, connector.id)
    object_id = f"{connector.id}:{what}"[:100]
    told = session.execute(
        select(AuditEntry.id)
        .where(
            AuditEntry.tenant_id == tenant_id,
            AuditEntry.object_type == "tdt_collection",
            AuditEntry.object_id == object_id,
            AuditEntry.action == "interop.tdt.collect_skipped",
        )
        .limit(1)
    ).first()
    if told is None:
        audit.record(
            session,
            tenant_id=tenant_id,
            actor="service:interop",
            action="interop.tdt.collect_skipped",
            object_type="tdt_collection",
            object_id=object_id,
            details={"connector": connector.name, "what": what, "reason": "no SIREN known"},
        )
    session.commit()
    return {"skipped": 1}


def refuse_foreign(
    session: Session,
    tenant_id: str,
    connector: Connector,
    kind: str,
    remote_id: str,
    siren: str | None,
    expected: str,
    *,
    tell: bool = True,
) -> ForeignDocument:
    """A document of another collectivité (or naming none) that S²LOW handed the connector: nothing of it is stored,
    filed or marked read (its collectivité still finds it on S²LOW). Audited once per document
    (``interop.foreign_document.refused``) and, with ``tell``, told the administrators by mail (a flow's own ARActe
    or PES Acquit is told as the flow's error instead); committed. Returns the refusal, to raise or count.

    :param kind: courrier, retour, aracte, acquit (:data:`FOREIGN_KINDS`).
    """
    what = FOREIGN_KINDS[kind]
    object_id = f"{connector.id}:{kind}:{remote_id}"[:100]
    told = session.execute(
        select(AuditEntry.id)
        .where(
            AuditEntry.tenant_id == tenant_id,
            AuditEntry.object_type == "tdt_document",
            AuditEntry.object_id == object_id,
            AuditEntry.action == "interop.foreign_document.refused",
        )
        .limit(1)
    ).first()
    if told is None:
        audit.record(
            session,
            tenant_id=tenant_id,
            actor="service:interop",
            action="interop.foreign_document.refused",
            object_type="tdt_document",
            object_id=object_id,
            details={"connector": connector.name, "kind": kind, "id": remote_id, "siren": siren, "expected": expected},
        )
        if tell:
            notices.foreign_refused(
                session, tenant_id, connector.name, connector.id, what, remote_id, siren or "absent", expected
            )
        session.commit()
    log.warning("%s %s of connector %s names SIREN %s, not %s: refused", kind, remote_id, connector.id, siren, expected)
    if siren is None:
        detail = message(
            "%(what)s %(remote_id)s sans SIREN de collectivité : refusé (ni classé dans la GED ni marqué lu chez "
            "S²LOW), faute de pouvoir le reconnaître comme celui de la collectivité",
            what=what,
            remote_id=remote_id,
        )
    else:
        detail = message(
            "%(what)s %(remote_id)s d'une autre collectivité (SIREN %(siren)s ; celui de la collectivité : "
            "%(expected)s) : refusé, ni classé dans la GED ni marqué lu chez S²LOW ; le compte S²LOW du connecteur "
            "« %(name)s » sert sans doute à plusieurs collectivités (certificat partagé) : un administrateur est "
            "prévenu",
            what=what,
            remote_id=remote_id,
            siren=siren,
            expected=expected,
            name=connector.name,
        )
    return ForeignDocument(detail)


def _french_day(value: str) -> str:
    """A date the platform gives (``2026-12-03``) as a sentence writes it (« 3 décembre 2026 »); as it is otherwise."""
    try:
        return spelled_date(date.fromisoformat(value.strip()[:10]))
    except ValueError:
        return value


# --------------------------------------------------------------------------------------------------------
# actes


def _actes_package(session: Session, flow: Flow, connector: Connector) -> Outcome:
    act = actes.act_from_metadata(flow.flow_metadata, flow.documents)
    classification_date = _checked_classification(session, flow, connector, act)
    details = _build_package(session, flow, connector, act, classification_date)
    return Advance("prêt", "paquet @ctes construit et validé (schéma ACTES)", details)


def _build_package(
    session: Session, flow: Flow, connector: Connector, act: actes.Act, classification_date: date
) -> dict[str, Any]:
    sender = _sender(session, flow, connector)
    schemas: Path | None = get_settings().actes_schemas
    package = actes.build_package(get_store(), sender, act, classification_date, flow.id[:8], schemas)
    _set(
        flow,
        act_id=package.act_id,
        package_key=package.stored.key,
        package_name=package.filename,
        files=package.files,
        classification_date=classification_date.isoformat(),
        send_refused=False,
    )
    record_held(session, flow.tenant_id, package.stored.key, holder="interop")
    return {"act_id": package.act_id, "package": package.filename, "sha256": package.stored.key}


def _actes_send(session: Session, flow: Flow, connector: Connector) -> Outcome:
    act = actes.act_from_metadata(flow.flow_metadata, flow.documents)
    classification_date = _checked_classification(session, flow, connector, act)  # even on a resume
    packaged = flow.data.get("classification_date")
    if not flow.data.get("sending") and (flow.data.get("send_refused") or packaged != classification_date.isoformat()):
        # Never received by S²LOW, and since packaged the classification was fetched again or S²LOW refused the
        # package (a connector setting fixed since, say): the act leaves as packaged now, not as it was.
        details = _build_package(session, flow, connector, act, classification_date)
        _event(
            session, flow, flow.state, flow.state, "service:interop", "paquet @ctes reconstruit avant l'envoi", details
        )
        session.commit()
    tdt, act_id = s2low(connector), str(flow.data["act_id"])
    try:
        return _send_once(
            session,
            flow,
            lambda: tdt.find_actes(act_id),
            lambda: tdt.send_actes(get_store(), flow.data["package_key"], flow.data["package_name"]),
        )
    except S2lowDuplicate as exc:
        raise InvalidInput(
            message(
                "%(exc_detail)s — le numéro interne « %(number)s » est déjà celui d'un autre acte de la "
                "collectivité sur S²LOW : cet acte n'a pas été transmis ; démarrez-le de nouveau avec un autre "
                "numéro",
                exc_detail=exc.detail,
                number=act.number,
            )
        ) from None


def _send_once(session: Session, flow: Flow, find: Callable[[], str | None], send: Callable[[], str]) -> Outcome:
    """Send once: « sending » is committed first, so a later run knows to ask the platform before sending again."""
    session.refresh(flow, with_for_update=True)  # the sending state as committed, not as read before
    if flow.data.get("transaction_id"):
        return Advance("posté", "déjà transmis", {"transaction_id": flow.data["transaction_id"]}, wait=True)
    sent_before = bool(flow.data.get("sending"))
    if sent_before:
        found = find()
        if found is not None:
            _set(flow, transaction_id=found, recovered=True)
            message = "transmission retrouvée sur la plateforme après une interruption : pas de nouvel envoi"
            return Advance("posté", message, {"transaction_id": found, "recovered": True}, wait=True)
    _set(flow, sending=True)
    session.commit()
    try:
        transaction_id = send()
    except S2lowDuplicate:
        # Only a send of this flow may have been received before: on a first send the duplicate is another
        # act (another flow, another tool) with the same number, and its transaction is not this flow's.
        found = find() if sent_before else None
        if found is None:
            if not sent_before:
                # Nothing of this flow reached the platform: left « sending », a resume would ask the platform
                # by the act's number and take the other act's transaction as its own.
                _set(flow, sending=False, send_refused=True)
                session.commit()
            raise
        transaction_id = found
        _set(flow, recovered=True)
    except S2lowRefused:
        if not sent_before:
            # A « KO » to a first send says the platform did not take it: no « sending » left behind (a resume
            # sends again, and the act's number stays free), and the act is packaged again before then.
            _set(flow, sending=False, send_refused=True)
            session.commit()
        # After an interrupted send the KO (rights refused for a moment, say) says nothing of the first one,
        # which S²LOW may hold: « sending » stays, so a resume asks S²LOW first and the number stays taken.
        raise
    _set(flow, transaction_id=transaction_id)
    return Advance("posté", "transmis au tiers de télétransmission", {"transaction_id": transaction_id}, wait=True)


def _actes_follow(session: Session, flow: Flow, connector: Connector) -> Outcome:
    status = s2low(connector).actes_status(str(flow.data["transaction_id"]))
    if status.failed:
        said = f"transmission en état « {status.label} » chez S²LOW {status.message}".strip()
        raise (Refused if status.refused else InvalidInput)(said)
    if status.document is None:  # the ARActe comes with status 4, or later states of an acknowledged act
        return _follow_on(session, flow, status.code, status.label)
    fields = aracte_fields(status.document)
    expected = commune_siren(session, flow.tenant_id, connector)
    theirs = actes.act_siren(fields["id_acte"])
    if theirs != expected:  # another collectivité's act: nothing of it kept, filed or held by this one
        raise refuse_foreign(
            session, flow.tenant_id, connector, "aracte", str(flow.data["transaction_id"]), theirs, expected, tell=False
        )
    stored = get_store().put(io.BytesIO(status.document))
    _set(flow, aracte_key=stored.key, aracte=fields)
    record_held(session, flow.tenant_id, stored.key, holder="interop")
    if fields["id_acte"] != flow.data["act_id"]:
        session.commit()  # the ARActe is kept with the flow, whatever comes next
        raise InvalidInput(
            message(
                "ARActe pour un acte inconnu : %(aracte_act_id)s au lieu de %(flow_data_act_id)s (ARActe "
                "gardé, empreinte %(sha256_start)s…)",
                aracte_act_id=fields["id_acte"] or "(sans identifiant)",
                flow_data_act_id=flow.data["act_id"],
                sha256_start=stored.key[:16],
            )
        )
    _note_prefecture_classification(session, flow, connector, fields["classification_en_cours"])
    _set(flow, ged_expected=["aracte", *_act_documents_to_file(flow)])
    details = {"sha256": stored.key, **fields}
    return Advance(FILING, f"acquittement reçu le {_french_day(fields['date_reception'])}", details)


def _follow_on(session: Session, flow: Flow, code: int, label: str) -> Outcome:
    """The platform's state carries neither a failure nor the awaited document: the flow keeps following.

    A state of the machine (posté, en attente de transmission, transmis) is a transition; any other (Hélios 7
    « en traitement », @ctes 17, 18, 21…) is only noted, in flow.data and once in the history, and the follow
    step is tried again under the connector's policy: it never ends the flow.
    """
    if label in FOLLOW_STATES and label != flow.state:
        return Advance(label, f"état S²LOW : {label}", {"code": code}, wait=True)
    if label not in FOLLOW_STATES and flow.data.get("platform_state") != label:
        _set(flow, platform_state=label, platform_code=code)
        _event(session, flow, flow.state, flow.state, "service:interop", f"état S²LOW : {label}", {"code": code})
    return Wait(f"état S²LOW : {label}")


def _note_prefecture_classification(session: Session, flow: Flow, connector: Connector, value: str) -> None:
    """The ARActe says which classification the prefecture has: a newer one than ours makes ours stale."""
    try:
        theirs = date.fromisoformat(value)
    except ValueError:
        return
    row = _classification(session, connector)
    if row is not None and theirs > row.classification_date:
        row.platform_date = theirs


def _file_in_ged(session: Session, flow: Flow, connector: Connector) -> Outcome:
    """Ask the GED to store what the platform sent back (one message per document; the GED answers each)."""
    what = _ged_documents(flow)
    folder, chooser = _filing_folder(flow, connector)
    year = act_year(str(flow.data.get("act_id") or "")) if flow.kind == "actes" else str(utcnow().year)
    for name in flow.data.get("ged_expected") or []:
        key, filename, title, media_type = what[name]
        filed = FILED_KINDS.get(name)
        where = folder.replace(YEAR_PLACEHOLDER, year) if chooser else kind_folder(connector, name, year)
        enqueue(
            session,
            messages.GED_STORE_FLOW_DOCUMENT,
            key=f"ged.flow-document:{flow.id}:{name}:{flow.steps}",
            tenant_id=flow.tenant_id,
            flow_id=flow.id,
            name=name,
            object_key=key,
            size=get_store().size(key),
            filename=filename,
            media_type=media_type,
            title=title,
            document_type=flow.kind,
            ged_folder=where,
            username=chooser,
            document_date=_document_date(flow, name),
            type_code=filed[1] if filed else None,
            description=_document_description(flow, name),
        )
    return Pause("documents confiés à la GED")


def _document_date(flow: Flow, name: str) -> str | None:
    """The date of a document a flow files (ISO): the ARActe's, its receipt by the prefecture; a PES Acquit's,
    the day it came back; an act's own documents, the act's."""
    if name == "aracte":
        return str((flow.data.get("aracte") or {}).get("date_reception") or "")[:10] or None
    if name == "acquit":
        return utcnow().date().isoformat()
    if flow.kind == "actes":
        return str(flow.flow_metadata.get("date") or "")[:10] or None
    return None


def _document_description(flow: Flow, name: str) -> str | None:
    if name != "aracte":
        return None
    received = _french_day(str((flow.data.get("aracte") or {}).get("date_reception") or ""))
    return f"Acte {flow.data.get('act_id')} reçu par la préfecture le {received}" if received else None


def archive_settings(metadata: dict[str, Any]) -> dict[str, Any] | None:
    """The transfer an « actes » flow asks for once filed, from its metadata ``archive``; None: none asked.

    ``archive`` = {connector (the SAE connector), archival_agency, archival_agreement?, profile?, comment?,
    document_ids?}: ``archival_agreement`` is the SAE's entry contract (Vitam refuses a package without one);
    ``document_ids`` names the act's documents already in the GED; without it, the act and its annexes are filed
    in the GED with the ARActe, and all of them are archived.

    :raises InvalidInput: an ``archive`` that is not an object, without its connector or archival agency, or
        with an entry contract that is not an identifier.
    """
    value = metadata.get("archive")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(message("« archive » doit être un objet : connector, archival_agency, profile (facultatif)"))
    connector, agency = str(value.get("connector") or "").strip(), str(value.get("archival_agency") or "").strip()
    if not connector:
        raise InvalidInput(message("archive : le connecteur du système d'archivage (connector) est obligatoire"))
    if not agency or len(agency) > 100:
        raise InvalidInput(
            message("archive : le service d'archives destinataire (archival_agency) est obligatoire (100 car.)")
        )
    ids = value.get("document_ids")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids) or not ids):
        raise InvalidInput(
            message("archive : document_ids doit être une liste non vide d'identifiants de documents GED")
        )
    profile, comment = value.get("profile"), value.get("comment")
    return {
        "connector": connector,
        "archival_agency": agency,
        "archival_agreement": _archival_agreement(value.get("archival_agreement")),
        "profile": str(profile) if profile else None,
        "comment": str(comment)[:2000] if comment else None,
        "document_ids": list(ids) if ids else None,
    }


# The entry contract is written as SEDA's ArchivalAgreement (IdentifierType, a token): as the archive service
# reads it (archive.schemas.sae_token), so that a flow is refused here rather than its transfer there.
AGREEMENT_MAX_LENGTH = 100
_AGREEMENT_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _archival_agreement(value: Any) -> str | None:
    """The entry contract of the flow's settings, its spaces collapsed; None when it names none."""
    if value is None or value == "":
        return None
    token = " ".join(value.split()) if isinstance(value, str) else ""
    if not token or len(token) > AGREEMENT_MAX_LENGTH or _AGREEMENT_CONTROL.search(token):
        raise InvalidInput(
            message(
                "archive : le contrat d'entrée (archival_agreement) doit être un identifiant de 1 à %(max)s "
                "caractères, sans caractère de contrôle",
                max=AGREEMENT_MAX_LENGTH,
            )
        )
    return token


def _act_document_names(flow: Flow) -> list[str]:
    return ["acte", *(f"annexe-{number}" for number in range(1, len(flow.documents)))]


def _act_documents_to_file(flow: Flow) -> list[str]:
    """The act's own documents go to the GED with its ARActe when they are to be archived and not there yet."""
    settings = archive_settings(flow.flow_metadata)
    return _act_document_names(flow) if settings is not None and settings["document_ids"] is None else []


def _actes_archive(session: Session, flow: Flow, connector: Connector) -> Outcome:
    """Filed: ask the archive service for a transfer of the act, its annexes and its ARActe (it answers once)."""
    settings = archive_settings(flow.flow_metadata)
    assert settings is not None  # « classé » has this step only then (see _step_of)
    filed = dict(flow.data.get("ged_documents") or {})
    acts = settings["document_ids"] or [filed[name] for name in _act_document_names(flow)]
    document_ids = list(dict.fromkeys([*acts, filed["aracte"]]))
    subject = str(flow.flow_metadata.get("objet") or "")
    enqueue(
        session,
        messages.ARCHIVE_REQUEST_TRANSFER,
        key=f"archive.flow-transfer:{flow.id}:{flow.steps}",
        tenant_id=flow.tenant_id,
        flow_id=flow.id,
        document_ids=document_ids,
        archival_agency=settings["archival_agency"],
        archival_agreement=settings["archival_agreement"],
        connector=settings["connector"],
        profile=settings["profile"],
        comment=settings["comment"] or f"Acte {flow.data.get('act_id')} — {subject}"[:2000],
        # The GED gives the archive only what the flow's creator may read, as if they asked themselves.
        username=_creator(flow),
    )
    _set(flow, archive_documents=document_ids)
    return Pause("versement demandé au service d'archives")


def _creator(flow: Flow) -> str | None:
    """The username of the user who started the flow (``created_by`` is their actor, « user:<username> »); None
    for a flow started otherwise (none is today: every flow comes from POST /interop/flows)."""
    return flow.created_by.removeprefix("user:") if flow.created_by.startswith("user:") else None


def _transfer_created(session: Session, flow: Flow, transfer_id: str) -> None:
    """The archive service created the flow's transfer: the flow ends « versé aux archives », once."""
    if flow.kind != "actes" or flow.state != FILED or flow.status not in ("running", "waiting"):
        return  # a repeated answer, or a flow that has moved on
    _set(flow, transfer_id=transfer_id)
    details = {"transfer_id": transfer_id, "documents": flow.data.get("archive_documents")}
    _advance(session, flow, Advance(ARCHIVED, "versement créé par le service d'archives", details))


def _ged_documents(flow: Flow) -> dict[str, tuple[str, str, str, str]]:
    data, subject = flow.data, str(flow.flow_metadata.get("objet") or flow.documents[0]["filename"])
    found: dict[str, tuple[str, str, str, str]] = {}
    if flow.kind == "actes":
        for name, document in zip(_act_document_names(flow), flow.documents, strict=True):
            title = subject if name == "acte" else f"{name.replace('-', ' ').capitalize()} — {subject}"
            media_type = mimetypes.guess_type(document["filename"])[0] or "application/octet-stream"
            found[name] = (document["object_key"], document["filename"], title, media_type)
    if flow.kind == "signature":
        for number, document in enumerate(flow.documents, start=1):
            media_type = mimetypes.guess_type(document["filename"])[0] or "application/octet-stream"
            title = subject if len(flow.documents) == 1 else f"{subject} ({number}/{len(flow.documents)})"
            found[f"document-{number}"] = (document["object_key"], document["filename"], title, media_type)
    if data.get("aracte_key"):
        found["aracte"] = (
            data["aracte_key"],
            f"ARActe-{data['act_id']}.xml",
            act_title("Accusé de réception", str(data["act_id"]), str(flow.flow_metadata.get("objet") or "")),
            "application/xml",
        )
    for name in ("acquit", "retour"):
        if data.get(f"{name}_key"):
            found[name] = _pes_answer(flow, name)
    return found


def _pes_answer(flow: Flow, name: str) -> tuple[str, str, str, str]:
    """The PES answer ``name`` (acquit, retour) kept for a Hélios flow: object key, file name, title, media type."""
    filename, kind = flow.documents[0]["filename"], name.capitalize()
    return flow.data[f"{name}_key"], f"PES_{kind}-{filename}", f"PES {kind} — {filename}", "application/xml"


# --------------------------------------------------------------------------------------------------------
# helios


def _helios_check(session: Session, flow: Flow, connector: Connector) -> Outcome:
    document = flow.documents[0]
    with get_store().open(document["object_key"]) as stream:
        data = stream.read()
    try:
        root = parse_xml(data, "PES Aller")
    except SocleError as exc:
        raise InvalidInput(exc.detail) from None
    if etree.QName(root).localname != "PES_Aller":
        raise InvalidInput(
            message(
                "le document n'est pas un PES Aller (élément racine %(localname)s)",
                localname=etree.QName(root).localname,
            )
        )
    if root.find(f".//{{{DSIG}}}Signature") is None:
        raise InvalidInput(
            message("PES Aller non signé : il doit passer par le parapheur (signature XAdES) avant l'envoi")
        )
    return Advance("prêt", "PES Aller lisible et signé", {"filename": document["filename"]})


def _helios_send(session: Session, flow: Flow, connector: Connector) -> Outcome:
    tdt, document = s2low(connector), flow.documents[0]
    try:
        # S²LOW cannot be asked for a PES by name: a resend after a crash is refused as a « doublon », and the
        # flow stops for an operator rather than sending twice.
        return _send_once(
            session,
            flow,
            lambda: None,
            lambda: tdt.send_helios(get_store(), document["object_key"], document["filename"]),
        )
    except S2lowDuplicate as exc:
        raise InvalidInput(
            message(
                "%(exc_detail)s — S²LOW a déjà reçu ce PES mais ne permet pas de retrouver sa "
                "transaction par le nom du fichier : vérifiez-la sur S²LOW avant toute reprise "
                "(aucun second envoi n'a été accepté)",
                exc_detail=exc.detail,
            )
        ) from None


def _helios_follow(session: Session, flow: Flow, connector: Connector) -> Outcome:
    tdt, transaction_id = s2low(connector), str(flow.data["transaction_id"])
    status = tdt.helios_status(transaction_id)
    if status.failed:
        said = f"PES en état « {status.label} » chez S²LOW {status.message}".strip()
        raise (Refused if status.refused else InvalidInput)(said)
    if not status.acquit_ready:
        return _follow_on(session, flow, status.code, status.label)
    acquit = tdt.helios_acquit(transaction_id)
    theirs = pes_siren(acquit, "PES Acquit")
    if theirs is not None:  # S²LOW binds the acquit to this transaction; one naming a collectivité must name ours
        # when one is known: a Hélios-only collectivité may have none (its acquit is then taken, bound as said)
        expected = known_siren(session, flow.tenant_id, connector)
        if expected is not None and theirs != expected:
            raise refuse_foreign(
                session, flow.tenant_id, connector, "acquit", transaction_id, theirs, expected, tell=False
            )
    stored = get_store().put(io.BytesIO(acquit))
    _set(flow, acquit_key=stored.key)
    record_held(session, flow.tenant_id, stored.key, holder="interop")
    refusal = acquit_refusal(acquit)
    if refusal is not None:
        session.commit()  # the PES Acquit is kept with the flow: it holds the accountant's reasons
        raise Refused(
            message(
                "%(refusal)s (PES Acquit gardé, empreinte %(sha256_start)s…)",
                refusal=refusal,
                sha256_start=stored.key[:16],
            )
        )
    # PES Retour belong to the collectivité on S²LOW, not to a transaction: they are not this flow's.
    _set(flow, ged_expected=["acquit"])
    return Advance(FILING, "PES Acquit reçu : accepté par le comptable", {"sha256": stored.key})


# --------------------------------------------------------------------------------------------------------
# PES Retour: the collectivité's, not a transaction's; collected per TdT connector into the GED


def request_pes_retours(session: Session, principal: Principal, connector_name: str) -> str:
    """Ask for the collection of a TdT connector's unread PES Retour (administrator); return the job's id.

    :raises InvalidInput: not a TdT connector. :raises NotFound: no such connector. :raises Conflict: disabled.
    """
    principal.require(Role.ADMIN)
    connector = _connector(session, principal.tenant_id, connector_name)
    if connector.kind not in TDT_KINDS:
        raise InvalidInput(
            message("« %(connector_name)s » n'est pas un tiers de télétransmission", connector_name=connector_name)
        )
    ged_folder(connector)  # the collection would refuse: said now
    job = enqueue(
        session, messages.INTEROP_COLLECT_PES_RETOURS, tenant_id=principal.tenant_id, connector=connector_name
    )
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="interop.pes_retours.requested",
        object_type="connector",
        object_id=connector.id,
        details={"job": job.id},
    )
    session.commit()
    return job.id


def collect_pes_retours(session: Session, tenant_id: str, connector_name: str) -> dict[str, int]:
    """File each unread PES Retour of a TdT connector in the GED, once; return {asked, marked, refused}.

    Each is asked of the GED under the name ``retour:<id>`` (the GED's origin, so stored once, whatever the
    runs); it is marked read on S²LOW only once the GED has answered (:func:`pes_retour_stored`), or here, by a
    later run, when that answer exists already (its marking was lost). One whose ``EnTetePES/IdColl`` does not
    name the collectivité is refused (:func:`refuse_foreign`: left unread, counted in ``refused``).

    :raises SaeUnavailable: S²LOW did not answer as expected (the job is tried again).
    """
    connector = _connector(session, tenant_id, connector_name)
    if connector.kind not in TDT_KINDS:
        raise InvalidInput(
            message("« %(connector_name)s » n'est pas un tiers de télétransmission", connector_name=connector_name)
        )
    ged_folder(connector)  # nothing read from S²LOW that could not be filed
    expected = known_siren(session, tenant_id, connector)  # nor what could not be told the collectivité's
    if expected is None:
        return skip_without_siren(session, tenant_id, connector, "PES Retour")
    session.commit()  # no transaction held while S²LOW answers
    tdt, counts = s2low(connector), {"asked": 0, "marked": 0, "refused": 0}
    for retour in tdt.pes_retours():
        retour_id = retour["id"]
        name = f"{RETOUR_PREFIX}{retour_id}"
        answered = session.execute(
            select(Job.id).where(Job.key == f"interop.flow-stored:interop:{connector.id}:{name}")
        ).first()
        if answered is not None:  # the GED confirmed already: only the read mark is missing
            tdt.mark_pes_retour_read(retour_id)
            counts["marked"] += 1
            continue
        content = tdt.pes_retour(retour_id)
        theirs = pes_siren(content, "PES Retour")
        if theirs != expected:  # another collectivité's (a shared account), or naming none: left unread, told
            refuse_foreign(session, tenant_id, connector, "retour", retour_id, theirs, expected)
            counts["refused"] += 1
            continue
        stored = get_store().put(io.BytesIO(content))
        filename = retour["nom"] or f"PES_Retour_{retour_id}.xml"
        record_held(session, tenant_id, stored.key, holder="interop")
        _ask_ged(
            session,
            f"ged.flow-document:{connector.id}:{name}",
            tenant_id=tenant_id,
            flow_id=connector.id,
            name=name,
            object_key=stored.key,
            size=stored.size,
            filename=filename,
            media_type="application/xml",
            title=f"PES Retour — {filename}",
            document_type="helios",
            ged_folder=kind_folder(connector, "retour", str(utcnow().year)),
            username=None,  # the connector's folder, chosen by an administrator
            document_date=utcnow().date().isoformat(),
            type_code=FILED_KINDS["retour"][1],
            description=None,
        )
        session.commit()
        counts["asked"] += 1
    return counts


def pes_retour_stored(tenant_id: str, connector_id: str, retour_id: str, document_id: str) -> None:
    """The GED stored a PES Retour: it is marked read on S²LOW (a KO of S²LOW is raised: the job tries again)."""
    _mark_read_on_tdt(
        tenant_id,
        connector_id,
        lambda tdt: tdt.mark_pes_retour_read(retour_id),
        "interop.pes_retour.filed",
        {"retour": retour_id, "document": document_id},
    )


def _mark_read_on_tdt(
    tenant_id: str, connector_id: str, mark: Callable[[S2lowConnector], None], action: str, details: dict[str, Any]
) -> None:
    """Mark something the GED has filed as read on the TdT, then audit it (nothing if the connector is gone)."""
    from socle.db import transaction

    with transaction() as session:
        connector = session.execute(
            select(Connector).where(Connector.tenant_id == tenant_id, Connector.id == connector_id)
        ).scalar_one_or_none()
        if connector is None:  # deleted since: nothing to mark
            return
        session.commit()
        mark(s2low(connector))
        audit.record(
            session,
            tenant_id=tenant_id,
            actor="service:interop",
            action=action,
            object_type="connector",
            object_id=connector.id,
            details=details,
        )


# --------------------------------------------------------------------------------------------------------
# The signature stage: « signature » flows, and « actes » / « helios » flows whose metadata name a parapheur


def signature_settings(kind: str, connector_name: str, metadata: dict[str, Any]) -> str | None:
    """The parapheur connector a flow's documents are signed through first; None: no signature stage.

    A « signature » flow's own connector; for « actes » and « helios », metadata ``signature: {"connector"}``.

    :raises InvalidInput: ``signature`` malformed, or asked of a flow kind that cannot have it.
    """
    if kind == "signature":
        return connector_name
    value = metadata.get("signature")
    if value is None:
        return None
    if kind not in ("actes", "helios"):
        raise InvalidInput(
            message(
                "le flux « %(kind)s » ne passe pas par le parapheur (signature réservée à actes et helios)", kind=kind
            )
        )
    name = str(value.get("connector") or "").strip() if isinstance(value, dict) else ""
    if not name:
        raise InvalidInput(message('« signature » doit être un objet : {"connector": "<connecteur de parapheur>"}'))
    return name


def _signature_connector(flow: Flow) -> str:
    name = signature_settings(flow.kind, flow.connector, flow.flow_metadata)
    assert name is not None  # the signature steps exist only then (see _step_of)
    return name


def _parapheur(connector: Connector) -> ParapheurConnector:
    from interop.service import connector_secrets

    if connector.kind != "parapheur":
        raise InvalidInput(
            message(
                "« %(connector_name)s » n'est pas un connecteur de parapheur (signature)", connector_name=connector.name
            )
        )
    return ParapheurConnector(connector.name, connector.config, connector_secrets(connector))


def _to_sign(flow: Flow) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(documents to sign, annexes joined unsigned): an act is signed, its annexes are not; a PES alone."""
    if flow.kind == "actes":
        return flow.documents[:1], flow.documents[1:]
    if flow.kind == "helios":
        return flow.documents[:1], []
    return list(flow.documents), []


def _signature_send(session: Session, flow: Flow, connector: Connector) -> Outcome:
    """Create the flow's folder on the parapheur, once: its marker finds an earlier creation (a lost answer, a
    worker killed before the folder's id was kept)."""
    folder_id = flow.data.get("folder_id")
    if folder_id:
        return Advance(AT_PARAPHEUR, "dossier déjà créé sur le parapheur", {"folder_id": folder_id}, wait=True)
    parapheur = _parapheur(connector)
    mains, annexes = _to_sign(flow)
    first = mains[0]
    values = template_values(connector.name, first["filename"], int(first["size"]), first["object_key"], None)
    title = Template(str(connector.config.get("title") or "$filename")).safe_substitute(values)[:200]
    folder = parapheur.create_folder(
        get_store(),
        [(doc["object_key"], doc["filename"]) for doc in mains],
        [(doc["object_key"], doc["filename"]) for doc in annexes],
        title,
        send_id(connector.name, f"flow:{flow.id}"),
    )
    _set(flow, folder_id=folder["id"], folder_url=f"{parapheur.base}/parapheur/folders/{folder['id']}")
    details = {"folder_id": folder["id"], "status": folder.get("status"), "connector": connector.name}
    return Advance(AT_PARAPHEUR, f"dossier « {title} » créé sur le parapheur « {connector.name} »", details, wait=True)


def _signature_follow(session: Session, flow: Flow, connector: Connector) -> Outcome:
    """Where the folder stands: a new step of the circuit is a transition; rejected ends the flow « rejeté »;
    completed: the signed documents are fetched, stored (digest checked) and the flow goes on."""
    parapheur, folder_id = _parapheur(connector), str(flow.data["folder_id"])
    result = parapheur.follow({"folder_id": folder_id})
    status, details = result.details["status"], result.details
    if not result.finished:
        label = (
            f"{AT_PARAPHEUR} : étape {details['step']} sur {details['steps']}" if "step" in details else AT_PARAPHEUR
        )
        if label != flow.state:
            return Advance(label, f"parapheur : {result.state}", {"folder_id": folder_id}, wait=True)
        return Wait(f"parapheur : {result.state}")
    if status == "rejected":
        reason = str(details.get("reason") or "sans motif")
        _set(flow, rejection_reason=reason)
        return Advance(REJECTED, f"rejeté au parapheur : {reason}", {"folder_id": folder_id, "reason": reason})
    if status != "completed":
        raise InvalidInput(
            message(
                "dossier %(folder_id)s du parapheur « %(connector_name)s » : %(result_state)s",
                folder_id=folder_id,
                connector_name=connector.name,
                result_state=result.state,
            )
        )
    signed = _fetch_signed(flow, parapheur, folder_id)
    record_held(session, flow.tenant_id, *(document["object_key"] for document in signed), holder="interop")
    _set(flow, unsigned_documents=flow.documents)
    flow.documents = signed + _to_sign(flow)[1]
    details = {
        "folder_id": folder_id,
        "documents": [{"filename": d["filename"], "sha256": d["object_key"]} for d in signed],
    }
    if flow.kind == "signature":
        _set(flow, ged_expected=[f"document-{number}" for number in range(1, len(signed) + 1)])
        return Advance(FILING, f"{len(signed)} document(s) signé(s) reçu(s) du parapheur", details)
    return Advance(SIGNED, "document signé reçu du parapheur", details)


def _fetch_signed(flow: Flow, parapheur: ParapheurConnector, folder_id: str) -> list[dict[str, Any]]:
    """The flow's documents to sign, as they came back: stored, each matched to the one sent by its digest."""
    back = {str(doc["sha256"]): content for doc, content in parapheur.fetch_signed(folder_id)}
    out = []
    for document in _to_sign(flow)[0]:
        content = back.get(document["object_key"])
        if content is None:
            raise InvalidInput(
                message(
                    "%(document_filename)s absent du dossier %(folder_id)s revenu du parapheur",
                    document_filename=document["filename"],
                    folder_id=folder_id,
                )
            )
        stored = get_store().put(io.BytesIO(content))
        if stored.key == document["object_key"] and flow.kind != "helios":  # helios: _helios_check says why
            raise InvalidInput(
                message(
                    "%(document_filename)s est revenu du parapheur sans signature (circuit sans signature ?)",
                    document_filename=document["filename"],
                )
            )
        out.append({**document, "object_key": stored.key, "size": stored.size})
    return out


def _sign_lock(flow: Flow) -> str:
    return f"flow-sign:{flow.id}"  # one folder creation per flow at a time


SIGNATURE_SEND = Step(_signature_send, _sign_lock, _signature_connector, sends=True)
SIGNATURE_FOLLOW = Step(_signature_follow, None, _signature_connector)


# --------------------------------------------------------------------------------------------------------
# dépôt and mail: any connector's deliver


def _deliver_all(session: Session, flow: Flow, connector: Connector) -> Outcome:
    """Each document through the connector, as a delivery with a stable key (never twice, see service.deliver)."""
    from interop import service

    receipts = []
    for number, document in enumerate(flow.documents):
        key = f"flow:{flow.id}:{number}"
        service.deliver(
            session,
            tenant_id=flow.tenant_id,
            connector_name=flow.connector,
            object_key=document["object_key"],
            size=int(document["size"]),
            filename=document["filename"],
            idempotency_key=key,
            reply=None,
        )
        delivery = session.execute(
            select(Delivery).where(Delivery.tenant_id == flow.tenant_id, Delivery.idempotency_key == key)
        ).scalar_one_or_none()
        if delivery is None:
            raise InvalidInput(
                message(
                    "connecteur « %(flow_connector)s » désactivé : %(document_filename)s non remis",
                    flow_connector=flow.connector,
                    document_filename=document["filename"],
                )
            )
        if delivery.status != "done":
            raise InvalidInput(
                message(
                    "%(document_filename)s : %(delivery_error)s",
                    document_filename=document["filename"],
                    delivery_error=delivery.error or "non remis",
                )
            )
        receipts.append(delivery.id)
    done = "envoyé" if flow.kind == "mail" else DELIVERED
    return Advance(done, f"{len(receipts)} document(s) remis par « {flow.connector} »", {"deliveries": receipts})


def _flow_lock(flow: Flow) -> str:
    return f"flow-send:{flow.id}"  # one transmission per flow at a time


# The machines: state → step. A state without a step is final (the flow is done).
MACHINES: dict[str, dict[str, Step]] = {
    "actes": {
        "nouveau": Step(_actes_package),
        SIGNED: Step(_actes_package),  # after the signature stage
        "prêt": Step(_actes_send, _flow_lock, sends=True),
        "posté": Step(_actes_follow),
        "en attente de transmission": Step(_actes_follow),
        "transmis": Step(_actes_follow),
        FILING: Step(_file_in_ged),
        FILED: Step(_actes_archive),  # only when the act is to be archived (see _step_of)
    },
    "helios": {
        "nouveau": Step(_helios_check),
        SIGNED: Step(_helios_check),  # after the signature stage: the PES must have come back signed
        "prêt": Step(_helios_send, _flow_lock, sends=True),
        "posté": Step(_helios_follow),
        "en attente de transmission": Step(_helios_follow),
        "transmis": Step(_helios_follow),
        FILING: Step(_file_in_ged),
    },
    "depot": {"nouveau": Step(_deliver_all, _flow_lock)},
    "mail": {"nouveau": Step(_deliver_all, _flow_lock)},
    "signature": {FILING: Step(_file_in_ged)},  # « nouveau » and « au parapheur… »: see _step_of
}


# --------------------------------------------------------------------------------------------------------
# What an operator does beside the flows: cancel a transmitted act, read and answer the prefecture


def cancel_act(session: Session, principal: Principal, flow_id: str) -> Flow:
    """Ask the TdT to cancel a transmitted act (administrator); the flow ends in « annulation demandée ».

    :raises Conflict: not an « actes » flow, or nothing transmitted yet. :raises SaeUnavailable: TdT unreachable.
    """
    principal.require(Role.ADMIN)
    flow = get_flow(session, principal.tenant_id, flow_id, for_update=True)
    if flow.kind != "actes" or not flow.data.get("transaction_id") or flow.state == CANCELLED:
        raise Conflict(message("seul un acte déjà transmis, et pas encore annulé, peut faire l'objet d'une annulation"))
    connector = _connector(session, principal.tenant_id, flow.connector)
    session.commit()
    cancellation = s2low(connector).cancel(str(flow.data["transaction_id"]))
    flow = get_flow(session, principal.tenant_id, flow_id, for_update=True)
    _set(flow, cancel_transaction_id=cancellation)
    before, flow.state, flow.status, flow.error, flow.next_check_at = flow.state, CANCELLED, "done", None, None
    details = {"transaction_id": flow.data["transaction_id"], "cancel_transaction_id": cancellation}
    _event(session, flow, before, CANCELLED, principal.actor, "annulation de l'acte demandée au TdT", details)
    session.commit()
    return flow


def may_read_letters(principal: Principal) -> bool:
    """Whether ``principal`` may list, read and answer the prefecture's letters of their collectivité
    (:data:`LETTER_ROLES`, or an administrator): whoever may send its acts."""
    return Role.ADMIN in principal.roles or bool(principal.roles.intersection(LETTER_ROLES))


def _tdt_connector(session: Session, tenant_id: str, connector_name: str) -> Connector:
    connector = _connector(session, tenant_id, connector_name)
    if connector.kind not in TDT_KINDS:
        raise InvalidInput(
            message("« %(connector_name)s » n'est pas un tiers de télétransmission", connector_name=connector_name)
        )
    return connector


def prefecture_letters(session: Session, principal: Principal, connector_name: str) -> list[dict[str, Any]]:
    """The prefecture's letters waiting on the TdT, each with the flow of its act when there is one; for those who
    may read them (:data:`LETTER_ROLES`: their subjects already tell of the acts).

    A letter about another collectivité's act (the SIREN of its ``unique_id``: an account S²LOW shares between two
    collectivités) is left out, audited and told the administrators once (:func:`refuse_foreign`).
    """
    principal.require(*LETTER_ROLES)
    connector = _tdt_connector(session, principal.tenant_id, connector_name)
    expected = commune_siren(session, principal.tenant_id, connector)
    session.commit()  # no transaction held while S²LOW answers
    letters = []
    for letter in s2low(connector).prefecture_documents():
        theirs = actes.act_siren(str(letter.get("unique_id") or ""))
        if theirs is not None and theirs != expected:
            refuse_foreign(session, principal.tenant_id, connector, "courrier", str(letter.get("id")), theirs, expected)
            continue
        letters.append(letter)
    transactions = {str(letter.get("related_transaction_id")) for letter in letters}
    transaction_id = Flow.data["transaction_id"].as_string()
    found = session.execute(  # only the flows of these letters, not every act the collectivité ever sent
        select(transaction_id, Flow.id).where(
            Flow.tenant_id == principal.tenant_id, Flow.kind == "actes", transaction_id.in_(transactions)
        )
    )
    flows_by_transaction = {str(number): flow_id for number, flow_id in found}
    return [
        letter | {"flow_id": flows_by_transaction.get(str(letter.get("related_transaction_id")))} for letter in letters
    ]


def fetch_prefecture_letter(
    session: Session, principal: Principal, connector_name: str, letter_id: str
) -> dict[str, Any]:
    """Fetch a letter of the prefecture from the TdT and file its documents in the GED (marked read on S²LOW once
    the GED has one): what it says (its @ctes message) and its files, each with its GED origin. The letter is
    noted in its act's flow history, and who started that flow told by mail (once).

    :raises InvalidInput: not a TdT connector, or not a letter's archive. :raises ForeignDocument: a letter about
        another collectivité's act (nothing filed, not marked read). :raises S2lowRefused: S²LOW does not know the
        letter. :raises SaeUnavailable: the TdT did not answer as expected.
    """
    principal.require(*LETTER_ROLES)
    connector = _tdt_connector(session, principal.tenant_id, connector_name)
    if not DIGITS_ID.fullmatch(letter_id):  # not isdigit(): « ² » or « ٣ » are digits to it, not to S²LOW
        raise InvalidInput(message("identifiant de courrier invalide : chiffres attendus"))
    folder = ged_folder(connector)  # refused before the letter is fetched: it could not be filed
    expected = commune_siren(session, principal.tenant_id, connector)
    session.commit()  # no transaction held while S²LOW answers
    return _file_letter(
        session, principal.tenant_id, connector, s2low(connector), letter_id, principal.actor, folder, expected
    )


def collect_prefecture_letters(session: Session, tenant_id: str, connector_name: str) -> dict[str, int]:
    """File each unread letter of the prefecture of a TdT connector in the GED, as an agent fetching it would
    (:func:`fetch_prefecture_letter`): noted in its act's flow, who started it told by mail. A letter about another
    collectivité's act is refused and left unread (:func:`refuse_foreign`). Return {fetched, marked, waiting,
    refused, failed}.

    As :func:`collect_pes_retours`, a letter is fetched once: one whose GED filing was asked already is not
    downloaded again (no new audit entry): marked read on S²LOW when the GED has answered (its marking was lost),
    left alone while the GED's job is live, and not asked again when that job failed for good (an agent fetching
    it asks anew). Without a known SIREN nothing is collected (:func:`skip_without_siren`).

    :raises InvalidInput: not a TdT connector, no GED folder. :raises SaeUnavailable: S²LOW did not
        answer as expected (the job is tried again; what was filed is not asked twice).
    """
    connector = _tdt_connector(session, tenant_id, connector_name)
    folder = ged_folder(connector)
    expected = known_siren(session, tenant_id, connector)
    if expected is None:
        return skip_without_siren(session, tenant_id, connector, "courriers de la préfecture")
    session.commit()  # no transaction held while S²LOW answers
    tdt = s2low(connector)
    counts = {"fetched": 0, "marked": 0, "waiting": 0, "refused": 0, "failed": 0}
    for letter in tdt.prefecture_documents():
        letter_id = str(letter.get("id") or "")
        if not DIGITS_ID.fullmatch(letter_id):
            log.warning("letter of connector %s with an unusable id %r skipped", connector.id, letter_id[:40])
            counts["failed"] += 1
            continue
        theirs = actes.act_siren(str(letter.get("unique_id") or ""))
        if theirs is not None and theirs != expected:  # said by the list: not even downloaded
            refuse_foreign(session, tenant_id, connector, "courrier", letter_id, theirs, expected)
            counts["refused"] += 1
            continue
        asked = _letter_filing(session, connector.id, letter_id)
        session.commit()
        if asked == "answered":  # the GED filed it already: only the read mark is missing
            tdt.mark_prefecture_document_read(letter_id)
            counts["marked"] += 1
            continue
        if asked == "live":  # the GED's workers have yet to answer: its job marks it read then
            counts["waiting"] += 1
            continue
        if asked == "failed":  # failed for good: not asked again every hour (an agent may fetch it anew)
            log.warning("letter %s of connector %s: its GED filing failed, not asked again", letter_id, connector.id)
            counts["failed"] += 1
            continue
        try:
            _file_letter(session, tenant_id, connector, tdt, letter_id, "service:interop", folder, expected)
        except ForeignDocument:
            counts["refused"] += 1
        except SocleError as exc:
            if exc.status >= 500:
                raise  # the platform did not answer: the job is tried again
            session.rollback()
            log.warning("letter %s of connector %s not fetched: %s", letter_id, connector.id, exc.detail)
            counts["failed"] += 1
        else:
            counts["fetched"] += 1
    return counts


def _letter_filing(session: Session, connector_id: str, letter_id: str) -> str | None:
    """Where the GED filing of a letter's files stands: « answered » (the GED stored one: its answer was queued),
    « live » (a job not failed), « failed » (every job failed for good), None (never asked)."""
    name = f"{LETTER_PREFIX}{letter_id}:"  # the letter's files: courrier:<id>:<n>
    stored = f"interop.flow-stored:interop:{connector_id}:{name}"
    if session.execute(select(Job.id).where(Job.key.startswith(stored, autoescape=True)).limit(1)).first():
        return "answered"
    asked = f"ged.flow-document:{connector_id}:{name}"  # with its « :again:n » jobs
    statuses = set(session.execute(select(Job.status).where(Job.key.startswith(asked, autoescape=True))).scalars())
    if not statuses:
        return None
    return "failed" if statuses == {FAILED} else "live"


def _file_letter(
    session: Session,
    tenant_id: str,
    connector: Connector,
    tdt: S2lowConnector,
    letter_id: str,
    actor: str,
    folder: str,
    expected: str,
) -> dict[str, Any]:
    """Fetch one letter, check it is about one of the collectivité's acts, ask the GED to file its files (once each),
    note it in its act's flow and tell who started it; committed. What it says, and its files."""
    files = actes.read_package(tdt.prefecture_document(letter_id))
    described = actes.letter_fields(files)
    theirs = actes.act_siren(described["act_id"])
    if theirs != expected:  # before anything is stored: another collectivité's letter is never held by this one
        raise refuse_foreign(session, tenant_id, connector, "courrier", letter_id, theirs, expected)
    kind = described["label"]
    act_id = described["act_id"]
    title = act_title(kind, act_id, _act_subject(session, tenant_id, connector, act_id))
    # Filed under the act's year, with the act's ARActe: a letter of January about December's act beside it.
    where = kind_folder(connector, "courrier", act_year(act_id))
    out: list[dict[str, Any]] = []
    # Two agents fetching the same letter at once: the second asks the GED after the first committed, and finds
    # its jobs (without the lock, on PostgreSQL, both would create the same job key: an error 500).
    advisory_xact_lock(session, "interop-letter", tenant_id, connector.id, letter_id)
    for index, name in enumerate(sorted(files), start=1):
        if name == described["message"]:
            continue  # the @ctes message: what it says is returned here, its files are the letter
        stored = get_store().put(io.BytesIO(files[name]))
        record_held(session, tenant_id, stored.key, holder="interop")
        document_name = f"{LETTER_PREFIX}{letter_id}:{index}"
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        _ask_ged(
            session,
            f"ged.flow-document:{connector.id}:{document_name}",
            tenant_id=tenant_id,
            flow_id=connector.id,
            name=document_name,
            object_key=stored.key,
            size=stored.size,
            filename=name,
            media_type=media_type,
            title=title,
            document_type="actes",
            ged_folder=where,
            username=None,  # the connector's folder, chosen by an administrator
            document_date=described["date"][:10] or None,
            type_code=FILED_KINDS["courrier"][1],
            description=_letter_description(described),
        )
        out.append(
            {
                "name": name,
                "sha256": stored.key,
                "size": stored.size,
                "origin": f"interop:{connector.id}:{document_name}",
            }
        )
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="interop.prefecture.fetched",
        object_type="connector",
        object_id=connector.id,
        details={"letter": letter_id, "files": [item["sha256"] for item in out]},
    )
    flow_id = _note_letter(session, tenant_id, connector, {"id": letter_id, **described}, out, actor)
    session.commit()
    return {"id": letter_id, **described, "files": out, "flow_id": flow_id}


# What the text of each kind of letter is (actes.LETTER_TEXTS), as the GED shows it.
_LETTER_TEXT_LABELS = {"3": "Pièces demandées", "4": "Observations", "5": "Nature de l'illégalité"}


def _letter_description(described: dict[str, str]) -> str | None:
    """What a letter says, for its GED document: « Courrier de la préfecture du 5 décembre 2026. Pièces
    demandées : … »."""
    dated = _french_day(described.get("date") or "")
    said = f"{described['label']} de la préfecture{f' du {dated}' if dated else ''}."
    text = " ".join((described.get("text") or "").split())
    if text:
        said += f" {_LETTER_TEXT_LABELS.get(described.get('type') or '', 'Texte')} : {text}"
    return said[:2000]


def _act_subject(session: Session, tenant_id: str, connector: Connector, act_id: str) -> str:
    """The subject of the act ``act_id`` as its flow gave it (« objet »), for a letter's title; empty for an act
    sent otherwise."""
    if not act_id:
        return ""
    subject = session.execute(
        select(Flow.flow_metadata)
        .where(
            Flow.tenant_id == tenant_id,
            Flow.kind == "actes",
            Flow.connector == connector.name,
            Flow.data["act_id"].as_string() == act_id,
        )
        .order_by(Flow.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    return str((subject or {}).get("objet") or "")


def _act_flow(session: Session, tenant_id: str, connector: Connector, act_id: str) -> Flow | None:
    """The collectivité's flow that sent the act ``act_id`` through ``connector`` (locked), the latest that S²LOW
    took; None for an act sent otherwise."""
    if not act_id:
        return None
    query = (
        select(Flow)
        .where(
            Flow.tenant_id == tenant_id,
            Flow.kind == "actes",
            Flow.connector == connector.name,
            Flow.data["act_id"].as_string() == act_id,
        )
        .order_by(Flow.created_at.desc())
    )
    candidates = list(session.execute(query).scalars())
    chosen = next((flow for flow in candidates if flow.data.get("transaction_id")), None)
    if chosen is None:
        return None
    return get_flow(session, tenant_id, chosen.id, for_update=True)


def _note_letter(
    session: Session,
    tenant_id: str,
    connector: Connector,
    letter: dict[str, Any],
    files: list[dict[str, Any]],
    actor: str,
) -> str | None:
    """A letter of the prefecture in its act's flow: a line of its history and ``data.letters``, and a mail to who
    started it, the first time it is read (by anyone, or by the schedule). Returns the flow's id, if any."""
    flow = _act_flow(session, tenant_id, connector, str(letter.get("act_id") or ""))
    known = list((flow.data.get("letters") if flow is not None else None) or [])
    if any(str(item.get("id")) == str(letter["id"]) for item in known):
        return flow.id if flow is not None else None
    if flow is not None:
        dated = _french_day(str(letter.get("date") or ""))
        said = f"courrier de la préfecture reçu : {str(letter.get('label') or 'courrier').lower()}"
        said += f" du {dated}" if dated else ""
        text = " ".join(str(letter.get("text") or "").split())
        details = {"letter": letter["id"], "type": letter.get("type"), "files": [item["name"] for item in files]}
        _event(session, flow, flow.state, flow.state, actor, f"{said}{f' — {text[:300]}' if text else ''}", details)
        entry = {key: letter.get(key) for key in ("id", "type", "label", "date")} | {"text": text[:1000]}
        _set(flow, letters=[*known, entry])
        flow.updated_at = utcnow()
    elif _letter_told(session, tenant_id, connector.id, str(letter["id"])):
        return None
    notices.letter_received(session, tenant_id, flow, connector.id, letter, actor)
    return flow.id if flow is not None else None


def _letter_told(session: Session, tenant_id: str, connector_id: str, letter_id: str) -> bool:
    """A letter about an act no flow sent: whether its administrators were told already (its notices asked)."""
    prefix = f"interop.notice:letter:{connector_id}:{letter_id}:"
    return (
        session.execute(select(Job.id).where(Job.key.startswith(prefix, autoescape=True)).limit(1)).first() is not None
    )


def _ask_ged(session: Session, key: str, **arguments: Any) -> Job:
    """Ask the GED to store a document (messages.GED_STORE_FLOW_DOCUMENT) once per ``key``: asked again, the job
    of that key is returned, unless it failed for good: then a new job is asked under a new key (« key:again:n »)
    — the same key would return the failed job, and the document would never be filed. The GED stores a
    document once per origin: a job asked twice files nothing twice."""
    same = (Job.key == key) | Job.key.startswith(f"{key}:again:", autoescape=True)
    jobs = list(session.execute(select(Job).where(same)).scalars())
    live = [job for job in jobs if job.status != FAILED]  # one at most: a new one is asked only when none is
    if live:
        return live[0]
    again = f"{key}:again:{len(jobs)}" if jobs else key  # the keys asked so far are key, key:again:1…
    return enqueue(session, messages.GED_STORE_FLOW_DOCUMENT, key=again, **arguments)


def letter_stored(tenant_id: str, connector_id: str, letter_id: str, document_id: str) -> None:
    """The GED stored a file of a prefecture's letter: the letter is marked read on S²LOW (each time: harmless)."""
    _mark_read_on_tdt(
        tenant_id,
        connector_id,
        lambda tdt: tdt.mark_prefecture_document_read(letter_id),
        "interop.prefecture.filed",
        {"letter": letter_id, "document": document_id},
    )


def answer_prefecture(
    session: Session,
    principal: Principal,
    connector_name: str,
    letter_id: str,
    reply_type: str,
    object_key: str,
    filename: str,
) -> str:
    """Answer a letter of the prefecture with a stored PDF (whoever may read the letters: :data:`LETTER_ROLES`);
    return the reply's transaction id. The letter is read again first: only one about the collectivité's own acts is
    answered. The answer is noted in the act's flow history.

    :raises InvalidInput: the file is not one of the collectivité's stored PDFs, a bad letter id.
    :raises ForeignDocument: the letter is about another collectivité's act. :raises S2lowRefused: the TdT refused.
    """
    principal.require(*LETTER_ROLES)
    connector = _tdt_connector(session, principal.tenant_id, connector_name)
    if not _held_in_store(session, principal.tenant_id, object_key):
        raise _absent(object_key)
    if actes.file_format(get_store(), object_key) != ".pdf":  # S²LOW takes the reply as « acte_pdf_file »
        raise InvalidInput(
            message("la réponse à la préfecture doit être un PDF : « %(filename)s » n'en est pas un", filename=filename)
        )
    if not DIGITS_ID.fullmatch(letter_id):
        raise InvalidInput(message("identifiant de courrier invalide : chiffres attendus"))
    expected = commune_siren(session, principal.tenant_id, connector)
    session.commit()
    tdt = s2low(connector)
    described = actes.letter_fields(actes.read_package(tdt.prefecture_document(letter_id)))
    theirs = actes.act_siren(described["act_id"])
    if theirs != expected:  # a shared account: another collectivité's letter is not this one's to answer
        raise refuse_foreign(session, principal.tenant_id, connector, "courrier", letter_id, theirs, expected)
    answer = tdt.reply_prefecture(letter_id, reply_type, get_store(), object_key, filename)
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="interop.prefecture.answered",
        object_type="connector",
        object_id=connector.id,
        details={"letter": letter_id, "type": reply_type, "sha256": object_key, "transaction": answer},
    )
    flow = _act_flow(session, principal.tenant_id, connector, described["act_id"])
    if flow is not None:
        said = "refus de répondre envoyé" if reply_type == "3" else "réponse envoyée"
        note = f"{said} à la préfecture ({described['label'].lower()}, courrier {letter_id})"
        details = {"letter": letter_id, "type": reply_type, "transaction": answer, "filename": filename}
        _event(session, flow, flow.state, flow.state, principal.actor, note, details)
    session.commit()
    return answer
