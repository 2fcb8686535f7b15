"""What both simulators share: scenario knobs, the SEDA replies they write, a server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import socket
import ssl
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from lxml import etree
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

SEDA_NAMESPACE = "fr:gouv:culture:archivesdefrance:seda:v{version}"
FAULTS = ("500", "html", "timeout", "malformed", "accept_then_timeout")
HTML_ERROR = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>Bad Gateway</h1><p>Le serveur mandataire a re\xc3\xa7u une r\xc3\xa9ponse invalide.</p></body></html>"
)


@dataclass
class Scenario:
    """Scenario knobs, changed at start (command line) or on the fly (``PUT /_simulateur/scenario``).

    - ``faults``: per endpoint (send, status, reply, acknowledgement, search), a list of faults consumed one per
      call: ``500`` (HTTP 500), ``html`` (an HTML error page), ``timeout`` (no answer before ``hang_seconds``),
      ``malformed`` (broken XML), ``accept_then_timeout`` (send only: the transfer is received, the answer
      never comes — what a client sees when the connection drops after the send);
    - ``verdict``: ``OK`` or ``KO`` (the ArchiveTransferReply accepts or rejects the transfer);
    - ``pending_checks``: how many follow-up calls answer « still running » before the reply is there;
    - ``delay``: seconds added before every answer (a slow platform);
    - ``corrected_verdict`` (As@lae): ``OK`` or ``KO``, the platform replaces its ArchiveTransferReply by a
      corrected one with this verdict and its own MessageIdentifier (``ATR-…-2``); empty: the first reply again;
    - duplicates are always detected: a MessageIdentifier received twice is answered 409.
    """

    faults: dict[str, list[str]] = field(default_factory=dict)
    verdict: str = "OK"
    pending_checks: int = 0
    delay: float = 0.0
    hang_seconds: float = 30.0
    corrected_verdict: str | None = None

    def update(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if name == "faults":
                for endpoint, faults in dict(value).items():
                    unknown = set(faults) - set(FAULTS)
                    if unknown:
                        raise ValueError(f"panne inconnue : {', '.join(sorted(unknown))}")
                    self.faults[str(endpoint)] = list(faults)
            elif name == "verdict" and value in ("OK", "KO"):
                self.verdict = value
            elif name == "corrected_verdict" and value in ("OK", "KO", "", None):
                self.corrected_verdict = value or None
            elif name in ("pending_checks",):
                self.pending_checks = int(value)
            elif name in ("delay", "hang_seconds"):
                setattr(self, name, float(value))
            else:
                raise ValueError(f"réglage inconnu ou invalide : {name}")

    def next_fault(self, endpoint: str) -> str | None:
        pending = self.faults.get(endpoint) or []
        return pending.pop(0) if pending else None


@dataclass
class Received:
    """A transfer the simulated platform holds."""

    operation_id: str
    message_identifier: str
    version: str
    transferring_agency: str
    archival_agency: str
    received_at: datetime
    verdict: str
    size: int
    units: tuple[tuple[str, str, str], ...] = ()  # each unit of the SIP: (id, DescriptionLevel, Title)
    checks: int = 0


@dataclass
class PlatformState:
    scenario: Scenario = field(default_factory=Scenario)
    transfers: dict[str, Received] = field(default_factory=dict)  # by MessageIdentifier
    sends: dict[str, int] = field(default_factory=dict)  # how many sends carried each MessageIdentifier
    requests: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def by_operation(self, operation_id: str) -> Received | None:
        return next((t for t in self.transfers.values() if t.operation_id == operation_id), None)

    def summary(self) -> dict[str, Any]:
        return {
            "sends": dict(self.sends),
            "transfers": {
                mi: {"operation_id": t.operation_id, "verdict": t.verdict, "checks": t.checks, "size": t.size}
                for mi, t in self.transfers.items()
            },
            "requests": list(self.requests[-200:]),
        }


def new_operation_id() -> str:
    # Vitam's identifiers are 36 lowercase base32 characters starting with « aeaa »; this one looks alike.
    return "aeaa" + uuid.uuid4().hex


class SipError(ValueError):
    """The package received is not a readable SEDA transfer (answered 400)."""


def read_units(manifest: bytes) -> tuple[tuple[str, str, str], ...]:
    """The SIP's archive units (id, level, title): the reply gives each its identifier in the platform."""
    root = etree.fromstring(manifest, etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
    units = []
    for unit in root.iter("{*}ArchiveUnit"):
        content = unit.find("{*}Content")
        if unit.get("id") and content is not None:
            level, title = content.findtext("{*}DescriptionLevel") or "", content.findtext("{*}Title") or ""
            units.append((unit.get("id", ""), level.strip(), title.strip()))
    return tuple(units)


def read_manifest(manifest: bytes) -> dict[str, str]:
    """The fields of an ArchiveTransfer the simulators need, parsed without DTD, entities or network."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(manifest, parser)
    except etree.XMLSyntaxError as exc:
        raise SipError(f"bordereau illisible : {exc}") from None
    qname = etree.QName(root)
    prefix = SEDA_NAMESPACE.format(version="")
    if qname.localname != "ArchiveTransfer" or not (qname.namespace or "").startswith(prefix):
        raise SipError("le bordereau n'est pas un ArchiveTransfer SEDA 2.x")
    ns = qname.namespace

    def text(path: str) -> str:
        found = root.find(path.replace("{}", f"{{{ns}}}"))
        return (found.text or "").strip() if found is not None else ""

    identifier = text("{}MessageIdentifier")
    if not identifier:
        raise SipError("le bordereau n'a pas de MessageIdentifier")
    return {
        "message_identifier": identifier,
        "version": (ns or "").removeprefix(prefix),
        "transferring_agency": text("{}TransferringAgency/{}Identifier") or "inconnu",
        "archival_agency": text("{}ArchivalAgency/{}Identifier") or "inconnu",
    }


def manifest_of_zip(data: bytes) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return archive.read("manifest.xml")
    except (zipfile.BadZipFile, KeyError):
        raise SipError("le paquet n'est pas un zip avec manifest.xml") from None


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _builder(version: str, root_name: str) -> tuple[etree._Element, Any]:
    ns = SEDA_NAMESPACE.format(version=version)
    root = etree.Element(f"{{{ns}}}{root_name}", nsmap={None: ns})

    def add(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{ns}}}{name}")
        if text is not None:
            element.text = text
        return element

    return root, add


def acknowledgement(transfer: Received, platform: str) -> bytes:
    """A SEDA Acknowledgement of the transfer, in the transfer's SEDA version."""
    root, add = _builder(transfer.version, "Acknowledgement")
    add(root, "Comment", f"Accusé de réception du transfert {transfer.message_identifier} ({platform} simulé)")
    add(root, "Date", _now())
    add(root, "MessageIdentifier", f"ACK-{transfer.operation_id}")
    add(root, "MessageReceivedIdentifier", transfer.message_identifier)
    add(add(root, "Sender"), "Identifier", transfer.archival_agency)
    add(add(root, "Receiver"), "Identifier", transfer.transferring_agency)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def transfer_reply(transfer: Received, platform: str, codes: tuple[str, str], revision: int = 1) -> bytes:
    """A SEDA ArchiveTransferReply: accepted (``codes[0]``) or rejected (``codes[1]``) with the failing event.

    ``revision`` above 1: a corrected reply, with its own MessageIdentifier (``ATR-<operation>-<revision>``).
    """
    accepted = transfer.verdict == "OK"
    root, add = _builder(transfer.version, "ArchiveTransferReply")
    add(root, "Comment", f"Réponse au transfert {transfer.message_identifier} ({platform} simulé)")
    add(root, "Date", _now())
    suffix = f"-{revision}" if revision > 1 else ""
    add(root, "MessageIdentifier", f"ATR-{transfer.operation_id}{suffix}")
    add(add(root, "CodeListVersions"), "ReplyCodeListVersion", "ReplyCodeListVersion0")
    if accepted and transfer.units:
        _archived_units(root, add, transfer)
    add(root, "ReplyCode", codes[0] if accepted else codes[1])
    operation = add(root, "Operation")
    events = [("CHECK_SEDA", "Vérification de la conformité du bordereau", "OK", "CHECK_SEDA.OK", "Succès")]
    if accepted:
        events.append(("STORAGE", "Stockage des objets", "OK", "STORAGE.OK", "Succès du stockage"))
    else:
        events.append(
            (
                "CHECK_DIGEST",
                "Vérification de l'empreinte des objets",
                "KO",
                "CHECK_DIGEST.KO",
                "Échec : l'empreinte d'un objet ne correspond pas à celle déclarée dans le bordereau",
            )
        )
    for code, label, outcome, detail, message in events:
        event = add(operation, "Event")
        add(event, "EventTypeCode", code)
        add(event, "EventType", label)
        add(event, "EventDateTime", _now())
        add(event, "Outcome", outcome)
        add(event, "OutcomeDetail", detail)
        add(event, "OutcomeDetailMessage", message)
    add(root, "MessageRequestIdentifier", transfer.message_identifier)
    if accepted:
        add(root, "GrantDate", _now())
    add(add(root, "ArchivalAgency"), "Identifier", transfer.archival_agency)
    add(add(root, "TransferringAgency"), "Identifier", transfer.transferring_agency)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _archived_units(root: etree._Element, add: Any, transfer: Received) -> None:
    """Each unit of the transfer with the identifiers the platform gave it (SystemId, archives' reference)."""
    package = add(root, "DataObjectPackage")
    descriptive = add(package, "DescriptiveMetadata")
    for number, (unit_id, level, title) in enumerate(transfer.units, start=1):
        unit = add(descriptive, "ArchiveUnit")
        unit.set("id", unit_id)
        content = add(unit, "Content")
        if level:
            add(content, "DescriptionLevel", level)
        if title:
            add(content, "Title", title)
        add(content, "SystemId", f"{transfer.operation_id[:28]}u{number:07d}")
        add(content, "ArchivalAgencyArchiveUnitIdentifier", f"{transfer.archival_agency}-{number:05d}")
    add(package, "ManagementMetadata")


async def apply_fault(state: PlatformState, endpoint: str) -> Response | None:
    """The slow-platform delay, then this endpoint's next fault, if any (None: answer normally)."""
    if state.scenario.delay:
        await asyncio.sleep(state.scenario.delay)
    with state.lock:
        fault = state.scenario.next_fault(endpoint)
    if fault == "500":
        return JSONResponse({"httpCode": 500, "message": "Erreur interne simulée"}, status_code=500)
    if fault == "html":
        return Response(HTML_ERROR, status_code=200, media_type="text/html")
    if fault == "timeout":
        await asyncio.sleep(state.scenario.hang_seconds)
        return Response(b"", status_code=504)
    if fault == "malformed":
        return Response(b"<?xml version='1.0'?><ArchiveTransferReply><ReplyCode>OK</Repl", media_type="application/xml")
    if fault == "accept_then_timeout":
        return Response(b"accept_then_timeout", status_code=599)  # marker, handled by the send endpoint
    return None


async def control(request: Request, state: PlatformState) -> Response:
    """``GET /_simulateur`` shows what was received; ``PUT /_simulateur/scenario`` changes the knobs."""
    if request.method == "PUT":
        try:
            with state.lock:
                state.scenario.update(await request.json())
        except (ValueError, TypeError) as exc:
            return JSONResponse({"erreur": str(exc)}, status_code=400)
    with state.lock:
        return JSONResponse(state.summary() | {"scenario": state.scenario.__dict__})


@dataclass
class RunningServer:
    """A simulator served on 127.0.0.1 in a thread (tests), stopped by :meth:`stop`."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def serve_in_thread(app: Any, *, port: int = 0, tls: dict[str, Any] | None = None) -> RunningServer:
    """Start ``app`` on 127.0.0.1 (``port`` 0: any free port) in a daemon thread; return once it listens.

    ``tls``: ``certfile``, ``keyfile``, and ``ca_certs`` to require a client certificate signed by that CA.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    options: dict[str, Any] = {}
    if tls:
        options = {"ssl_certfile": tls["certfile"], "ssl_keyfile": tls["keyfile"]}
        if tls.get("ca_certs"):
            options |= {"ssl_ca_certs": tls["ca_certs"], "ssl_cert_reqs": ssl.CERT_REQUIRED}
    config = uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1, **options)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("le simulateur n'a pas démarré")
        time.sleep(0.02)
    scheme = "https" if tls else "http"
    return RunningServer(f"{scheme}://127.0.0.1:{sock.getsockname()[1]}", server, thread)
