"""Reading the SEDA messages an archival system (SAE) sends back: Acknowledgement and ArchiveTransferReply.

SEDA 2.1, 2.2 and 2.3 declare both messages identically; only the namespace changes. A message comes from
outside: it is parsed without DTD, entity substitution or network access, and refused above a size limit or when
an element that says what the message is (its identifiers, its reply code) appears twice. What is kept of it to be
shown is bounded (each text, the number of reasons and events) and its control and bidi characters are replaced:
the whole message stays in the store.

Reply codes. Vitam answers ``OK``, ``WARNING`` (accepted, with warnings) or ``KO``/``FATAL`` (refused), and
``Test OK``… for a blank test ingest (nothing archived: never an acceptance). As@lae keeps the SEDA 1.0 code
list: ``000`` is success (``001``/``002``: success with a reservation on the signature), any other code is a
refusal (1xx the message, 2xx the agencies, 3xx the agreement…). A reply without a code is unreadable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from lxml import etree

from archive.seda import NAMESPACES, version_of_namespace

__all__ = [
    "ACCEPTED_CODES",
    "MAX_MESSAGE_BYTES",
    "ReplyError",
    "SaeEvent",
    "SaeMessage",
    "parse_sae_message",
    "quoted",
]

MessageKind = Literal["acknowledgement", "reply"]
Outcome = Literal["received", "accepted", "rejected"]

# An ArchiveTransferReply lists every unit and object of the transfer: a few MB for the largest packages.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# What is kept to be shown: each text of the SAE (comment, event label or message) cut at TEXT_LIMIT characters,
# a quoted value in a refusal at QUOTE_LIMIT, at most MAX_REASONS reasons and MAX_EVENTS events in a summary.
TEXT_LIMIT = 1000
QUOTE_LIMIT = 200
MAX_REASONS = 50
MAX_EVENTS = 200  # Vitam's operation has some fifty
# The reply code kept (a column of 50): an accepted code is short, a longer one is a refusal whatever it says.
CODE_LIMIT = 50
# Controls (but tab and line breaks) and bidi embeddings, overrides and isolates: a text of the SAE shown to the
# archivist must read as it is (« refusé\u202e » cannot turn a line around).
_UNSHOWABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Elements that say what the message is: one each, or the message is ambiguous (which code is the verdict?).
SINGULAR = ("MessageIdentifier", "MessageReceivedIdentifier", "MessageRequestIdentifier", "ReplyCode")
ROOTS: dict[str, MessageKind] = {"Acknowledgement": "acknowledgement", "ArchiveTransferReply": "reply"}
KIND_LABELS: dict[str, str] = {"acknowledgement": "accusé de réception", "reply": "réponse au transfert"}

# Success codes, with the reservation they carry (None: plain success).
ACCEPTED_CODES: dict[str, str | None] = {
    "OK": None,
    "WARNING": "accepté avec avertissements",
    "000": None,
    "001": "accepté, mais la signature du message est invalide",
    "002": "accepté, sans prise en compte de la signature",
}
REFUSAL_LABELS: dict[str, str] = {
    "KO": "refusé",
    "FATAL": "refusé (erreur technique du système d'archivage)",
}
# Vitam's blank test ingest (« test à blanc », process INGEST_TEST) answers « Test OK », « Test KO »…: the package
# was checked, nothing was archived. Never an acceptance: the archivist must know no archive exists.
TEST_CODE_PREFIX = "test "
# What Vitam writes as MessageRequestIdentifier when it could not read the package's own (its ATR_KO_DEFAULT
# template says « Unknown »; its handler after an XSD failure leaves it empty).
UNKNOWN_REQUESTS = frozenset({"", "unknown"})


class ReplyError(ValueError):
    """A message that cannot be read as a SEDA Acknowledgement or ArchiveTransferReply (message in French)."""


@dataclass(frozen=True)
class SaeEvent:
    """One Operation/Event of a reply: what the SAE checked and how it went."""

    type_code: str | None
    type: str | None
    date_time: str | None
    outcome: str | None
    outcome_detail: str | None
    outcome_detail_message: str | None
    detail: str | None

    @property
    def failed(self) -> bool:
        return (self.outcome or "").upper() in {"KO", "FATAL", "ERROR"}

    @property
    def warned(self) -> bool:
        return (self.outcome or "").upper() == "WARNING"

    def describe(self) -> str:
        """One French line: the step, its outcome and the SAE's own explanation."""
        step = self.type or self.type_code or "étape sans nom"
        if self.type and self.type_code and self.type_code != self.type:
            step = f"{self.type} ({self.type_code})"
        line = f"{step} : {self.outcome or 'résultat non précisé'}"
        if self.outcome_detail:
            line += f" [{self.outcome_detail}]"
        explanation = self.outcome_detail_message or self.detail
        return f"{line} — {explanation}" if explanation else line

    def as_dict(self) -> dict[str, str | None]:
        return {
            "type_code": self.type_code,
            "type": self.type,
            "date_time": self.date_time,
            "outcome": self.outcome,
            "outcome_detail": self.outcome_detail,
            "outcome_detail_message": self.outcome_detail_message,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class SaeMessage:
    """What socle keeps of a SAE message; ``summary()`` is what the archivist reads."""

    kind: MessageKind
    version: str
    message_identifier: str
    date: str | None
    request_identifier: str  # MessageReceivedIdentifier (acknowledgement) or MessageRequestIdentifier (reply)
    reply_code: str | None = None
    grant_date: str | None = None
    archival_agency: str | None = None
    transferring_agency: str | None = None
    comments: tuple[str, ...] = ()
    events: tuple[SaeEvent, ...] = ()
    # Unit id in the transfer → the SAE's SystemId(s) and ArchivalAgencyArchiveUnitIdentifier(s);
    # object id → its DataObjectSystemId and DataObjectGroupSystemId.
    units: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    objects: dict[str, dict[str, str | None]] = field(default_factory=dict)

    @property
    def outcome(self) -> Outcome:
        if self.kind == "acknowledgement":
            return "received"
        return "accepted" if (self.reply_code or "").upper() in ACCEPTED_CODES else "rejected"

    @property
    def request_unknown(self) -> bool:
        """Whether a reply names no request (Vitam's « Unknown » or an empty MessageRequestIdentifier)."""
        return self.kind == "reply" and self.request_identifier.casefold() in UNKNOWN_REQUESTS

    @property
    def test_ingest(self) -> bool:
        """Whether the reply ends a Vitam blank test ingest (« Test OK », « Test KO »…): nothing archived."""
        return (self.reply_code or "").casefold().startswith(TEST_CODE_PREFIX)

    @property
    def reservation(self) -> str | None:
        """The warning an accepted reply carries (WARNING, 001…), in French."""
        return ACCEPTED_CODES.get((self.reply_code or "").upper()) if self.outcome == "accepted" else None

    def verdict(self) -> str:
        """One French sentence: what the SAE said."""
        if self.kind == "acknowledgement":
            return f"Accusé de réception du système d'archivage (message {self.message_identifier})."
        code = self.reply_code or ""
        if self.outcome == "accepted":
            reservation = f", {self.reservation}" if self.reservation else ""
            return f"Transfert accepté par le système d'archivage (code {code}{reservation})."
        if self.test_ingest:
            return (
                f"Entrée de test (test à blanc) du système d'archivage (code {code}) : le paquet a été contrôlé, "
                "rien n'a été archivé ; versez-le de nouveau hors mode test."
            )
        label = REFUSAL_LABELS.get(code.upper(), "refusé")
        return f"Transfert {label} par le système d'archivage (code {code})."

    def reasons(self) -> list[str]:
        """For a refusal, the French lines an archivist needs: failed events first, then comments; at most
        MAX_REASONS lines, then one saying how many more the whole message holds."""
        failed = [event.describe() for event in self.events if event.failed]
        found = failed + [f"Commentaire : {comment}" for comment in self.comments]
        if len(found) <= MAX_REASONS:
            return found
        more = len(found) - MAX_REASONS
        return [
            *found[:MAX_REASONS],
            f"… et {more} autre(s) motif(s), dans le message complet du système d'archivage.",
        ]

    def warnings(self) -> list[str]:
        """For an acceptance, the steps the SAE passed with a warning (Vitam's WARNING), as French lines."""
        found = [event.describe() for event in self.events if event.warned]
        return found[:MAX_REASONS]

    def summary(self) -> dict[str, Any]:
        """A JSON summary, with French labels, kept with the transfer."""
        return {
            "type": KIND_LABELS[self.kind],
            "version_seda": self.version,
            "identifiant_message": self.message_identifier,
            "date": self.date,
            "identifiant_demande": quoted(self.request_identifier),
            "code_reponse": self.reply_code,
            "issue": {"received": "reçu", "accepted": "accepté", "rejected": "refusé"}[self.outcome],
            "verdict": self.verdict(),
            "motifs": self.reasons() if self.outcome == "rejected" else [],
            "avertissements": self.warnings() if self.outcome == "accepted" else [],
            "date_prise_en_charge": self.grant_date,
            "service_archives": self.archival_agency,
            "service_versant": self.transferring_agency,
            "evenements": [event.as_dict() for event in self.events[:MAX_EVENTS]],
            "evenements_omis": max(0, len(self.events) - MAX_EVENTS),
            "unites": self.units,
            "objets": self.objects,
        }


def parse_sae_message(data: bytes, *, max_size: int = MAX_MESSAGE_BYTES) -> SaeMessage:
    """Parse an Acknowledgement or ArchiveTransferReply of SEDA 2.1 to 2.3.

    Raises ReplyError (French message) for a message too large, not well-formed, declaring a DTD, of another
    namespace or root, or missing its identifiers.
    """
    root = _safe_root(data, max_size)
    namespace = etree.QName(root).namespace or ""
    version = version_of_namespace(namespace)
    if version is None or version not in NAMESPACES:
        supported = ", ".join(sorted(NAMESPACES))
        raise ReplyError(
            f"Message refusé : espace de noms « {quoted(namespace)} » inconnu (SEDA {supported} attendus)."
        )
    kind = ROOTS.get(etree.QName(root).localname)
    if kind is None:
        raise ReplyError(
            f"Message refusé : « {quoted(etree.QName(root).localname)} » n'est ni un Acknowledgement ni un "
            "ArchiveTransferReply."
        )
    reader = _Reader(namespace)
    for name in SINGULAR:
        if len(reader.all(root, name)) > 1:
            raise ReplyError(f"Message refusé : l'élément {name} y figure plusieurs fois (message ambigu).")
    # Kept, shown and compared with the messages already received: bounded like the columns that keep it.
    identifier = _shown(_required(reader, root, "MessageIdentifier"), QUOTE_LIMIT) or ""
    date = _shown(reader.text(root, "Date"))
    comments = tuple(text for text in (_shown(_text(e)) for e in reader.all(root, "Comment")) if text)
    if kind == "acknowledgement":
        received = _required(reader, root, "MessageReceivedIdentifier")
        return SaeMessage(kind, version, identifier, date, received, comments=comments)
    return SaeMessage(
        kind,
        version,
        identifier,
        date,
        _request_identifier(reader, root),
        reply_code=_shown(_reply_code(reader, root), CODE_LIMIT),
        grant_date=_shown(reader.text(root, "GrantDate")),
        archival_agency=_shown(reader.text(root, "ArchivalAgency/{ns}Identifier")),
        transferring_agency=_shown(reader.text(root, "TransferringAgency/{ns}Identifier")),
        comments=comments,
        events=tuple(_event(reader, element) for element in reader.all(root, "Operation/{ns}Event")),
        units=_units(reader, root),
        objects=_objects(reader, root),
    )


def _safe_root(data: bytes, max_size: int) -> etree._Element:
    if len(data) > max_size:
        raise ReplyError(f"Message refusé : {len(data)} octets, plus que la limite de {max_size}.")
    if not data.strip():
        raise ReplyError("Message refusé : il est vide.")
    # No DTD loaded, no entity substituted, no network; huge_tree=False keeps libxml2's depth and size guards.
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        tree = etree.ElementTree(etree.fromstring(data, parser))
    except etree.XMLSyntaxError as error:
        if "entit" in str(error).lower() or b"<!DOCTYPE" in data[:65536]:
            raise ReplyError("Message refusé : il déclare une DTD ou des entités XML, interdites ici.") from None
        raise ReplyError(f"Message refusé : XML mal formé ({quoted(str(error), TEXT_LIMIT)}).") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise ReplyError("Message refusé : il déclare une DTD (DOCTYPE), interdite ici.")
    return tree.getroot()


class _Reader:
    """Namespaced lookups: paths are written with ``{ns}`` before each step after the first."""

    def __init__(self, namespace: str) -> None:
        self.prefix = "{" + namespace + "}"

    def path(self, relative: str) -> str:
        return self.prefix + relative.replace("{ns}", self.prefix)

    def text(self, element: etree._Element, relative: str) -> str | None:
        return _text(element.find(self.path(relative)))

    def all(self, element: etree._Element, relative: str) -> list[etree._Element]:
        return list(element.iterfind(self.path(relative)))


def _text(element: etree._Element | None) -> str | None:
    """An element's text, stripped, its control and bidi characters replaced (U+FFFD); None when empty."""
    if element is None or element.text is None:
        return None
    return _UNSHOWABLE.sub("\ufffd", element.text).strip() or None


def _shown(text: str | None, limit: int = TEXT_LIMIT) -> str | None:
    """A text of the SAE as kept to be shown: at most ``limit`` characters, an ellipsis saying it was cut."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def quoted(value: str, limit: int = QUOTE_LIMIT) -> str:
    """A value of the message quoted in a French refusal: cut at ``limit`` characters, controls replaced."""
    return _shown(_UNSHOWABLE.sub("\ufffd", value), limit) or ""


def _required(reader: _Reader, root: etree._Element, name: str) -> str:
    value = reader.text(root, name)
    if value is None:
        raise ReplyError(f"Message refusé : l'élément obligatoire {name} est absent ou vide.")
    return value


def _request_identifier(reader: _Reader, root: etree._Element) -> str:
    """A reply's MessageRequestIdentifier: required, but may be empty (Vitam's reply to a package it could not
    read); archive.lifecycle decides what such a reply may do."""
    if root.find(reader.path("MessageRequestIdentifier")) is None:
        raise ReplyError("Message refusé : l'élément obligatoire MessageRequestIdentifier est absent.")
    return reader.text(root, "MessageRequestIdentifier") or ""


def _reply_code(reader: _Reader, root: etree._Element) -> str:
    """The verdict. The XSD lets a reply omit it; a reply without one says neither yes nor no: unreadable."""
    code = reader.text(root, "ReplyCode")
    if code is None:
        raise ReplyError(
            "Message refusé : la réponse n'a pas de code (ReplyCode absent ou vide) : ni acceptation ni refus."
        )
    return code


def _event(reader: _Reader, element: etree._Element) -> SaeEvent:
    def shown(name: str) -> str | None:
        return _shown(reader.text(element, name))

    return SaeEvent(
        type_code=shown("EventTypeCode"),
        type=shown("EventType"),
        date_time=shown("EventDateTime"),
        outcome=shown("Outcome"),
        outcome_detail=shown("OutcomeDetail"),
        outcome_detail_message=shown("OutcomeDetailMessage"),
        detail=shown("EventDetail"),
    )


def _units(reader: _Reader, root: etree._Element) -> dict[str, dict[str, list[str]]]:
    """Each unit of the reply (any depth) with the identifiers the SAE gave it, when it says them: its
    SystemId (Vitam) and its ArchivalAgencyArchiveUnitIdentifier (the archives' own reference)."""
    units: dict[str, dict[str, list[str]]] = {}
    for unit in root.iter(reader.prefix + "ArchiveUnit"):
        found = {
            key: [text for text in (_text(e) for e in reader.all(unit, f"Content/{{ns}}{name}")) if text]
            for key, name in (("system_ids", "SystemId"), ("archival_agency_identifiers", _AGENCY_UNIT_ID))
        }
        unit_id = unit.get("id")
        if unit_id and any(found.values()):
            # The same id twice (no valid message does it): every identifier kept, those of the first unit first.
            kept = units.setdefault(unit_id, {key: [] for key in found})
            for key, values in found.items():
                kept[key] += [value for value in values if value not in kept[key]]
    return units


_AGENCY_UNIT_ID = "ArchivalAgencyArchiveUnitIdentifier"


def _objects(reader: _Reader, root: etree._Element) -> dict[str, dict[str, str | None]]:
    objects: dict[str, dict[str, str | None]] = {}
    for tag in ("BinaryDataObject", "PhysicalDataObject"):
        for element in root.iter(reader.prefix + tag):
            system_id = reader.text(element, "DataObjectSystemId")
            if element.get("id") and system_id:
                objects[element.get("id", "")] = {
                    "system_id": system_id,
                    "group_system_id": reader.text(element, "DataObjectGroupSystemId"),
                }
    return objects
