"""A S²LOW simulator: @ctes and Hélios transactions as the platform answers them, with its failures.

Written from the protocol the connector speaks (see ``interop.connectors.s2low``). What it checks like the
real platform: the tar.gz is readable, its envelope and act message are valid against the ACTES XSD (when a
schema folder is given), an act (IDActe) or a PES file name is received once — a second send is answered
« KO … déjà … ». Scenario knobs (``PUT /_simulateur/scenario``, or ``socle interop simulate s2low``):

- ``faults``: per endpoint (send, status, find, classification, helios_send, helios_status, acquit, retour,
  documents), a list consumed one per call: ``500``, ``html``, ``timeout``, ``malformed``, ``ko`` (a KO answer),
  ``accept_then_timeout`` (send only: received, the answer never comes);
- ``pending_checks``: status calls answering « posté / en attente / transmis » before the acknowledgement;
- ``verdict``: ``KO`` puts transactions in error (status -1) instead of acknowledging them;
- ``aracte_unknown``: the ARActe sent back names another act (an acknowledgement for an unknown act);
- ``acquit``: ``KO`` makes the accountant refuse the PES (PES Acquit with EtatAck 2);
- ``pes_retour``: the accountant also sends a PES Retour;
- ``classification_date``: the date of the prefecture's classification (a later one makes the tenant's stale);
- ``delay``: seconds before every answer (a slow platform).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from interop import actes
from interop.simulators.common import HTML_ERROR, Scenario
from socle.errors import InvalidInput

FAULTS = ("500", "html", "timeout", "malformed", "accept_then_timeout", "ko")
NS = actes.NS
LATIN1 = "ISO-8859-1"


@dataclass
class S2lowScenario(Scenario):
    aracte_unknown: bool = False
    acquit: str = "OK"
    pes_retour: bool = False
    classification_date: str = "2026-01-15"

    def update(self, values: dict[str, Any]) -> None:
        """Change knobs; :raises ValueError: an unknown knob or fault (French message)."""
        rest = dict(values)
        for endpoint, faults in dict(rest.pop("faults", {}) or {}).items():
            unknown = set(faults) - set(FAULTS)
            if unknown:
                raise ValueError(f"panne inconnue : {', '.join(sorted(unknown))}")
            self.faults[str(endpoint)] = list(faults)
        for name in ("aracte_unknown", "pes_retour"):
            if name in rest:
                setattr(self, name, bool(rest.pop(name)))
        if "acquit" in rest:
            if rest["acquit"] not in ("OK", "KO"):
                raise ValueError("acquit : OK ou KO")
            self.acquit = rest.pop("acquit")
        if "classification_date" in rest:
            self.classification_date = date.fromisoformat(str(rest.pop("classification_date"))).isoformat()
        super().update(rest)


@dataclass
class Transaction:
    id: str
    kind: str  # actes, helios
    key: str  # IDActe, or the PES file name
    received_at: datetime
    act: bytes | None = None  # the Acte message received
    checks: int = 0
    verdict: str = "OK"
    cancelled: bool = False


@dataclass
class S2lowState:
    scenario: S2lowScenario = field(default_factory=S2lowScenario)
    schemas: Path | None = None
    credentials: tuple[str, str] | None = None
    transactions: dict[str, Transaction] = field(default_factory=dict)
    sends: dict[str, int] = field(default_factory=dict)  # sends per IDActe / PES file name
    letters: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))

    def by_key(self, kind: str, key: str) -> Transaction | None:
        return next((t for t in self.transactions.values() if t.kind == kind and t.key == key), None)

    def add_letter(self, transaction_id: str, kind: str = "LettreObservations") -> str:
        """The prefecture writes about an act (a test or the operator rehearsing asks for it)."""
        letter_id = str(next(self.counter))
        self.letters.append({"id": letter_id, "type": kind, "related_transaction_id": transaction_id})
        return letter_id

    def summary(self) -> dict[str, Any]:
        return {
            "sends": dict(self.sends),
            "transactions": {
                t.id: {"kind": t.kind, "key": t.key, "checks": t.checks, "cancelled": t.cancelled}
                for t in self.transactions.values()
            },
            "letters": list(self.letters),
            "replies": list(self.replies),
            "requests": self.requests[-200:],
        }


def _ok(*lines: str) -> Response:
    return PlainTextResponse("\n".join(("OK", *lines)))


def _ko(message: str) -> Response:
    return PlainTextResponse(f"KO\n{message}")


async def _fault(state: S2lowState, endpoint: str) -> tuple[Response | None, bool]:
    """The delay, then this endpoint's next fault: (answer to give instead, accept-then-hang)."""
    if state.scenario.delay:
        await asyncio.sleep(state.scenario.delay)
    fault = state.scenario.next_fault(endpoint)
    if fault == "500":
        return PlainTextResponse("Erreur interne simulée", status_code=500), False
    if fault == "html":
        return Response(HTML_ERROR, media_type="text/html"), False
    if fault == "timeout":
        await asyncio.sleep(state.scenario.hang_seconds)
        return Response(b"", status_code=504), False
    if fault == "malformed":
        return Response(b"<?xml version='1.0'?><import><id>12</id><resul", media_type="application/xml"), False
    if fault == "ko":
        message = "Erreur simulée : la plateforme refuse la demande"
        return (_import("KO", message=message) if endpoint.startswith("helios") else _ko(message)), False
    return None, fault == "accept_then_timeout"


def _safe_parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


def _read_actes(data: bytes, schemas: Path | None) -> tuple[str, bytes]:
    """The IDActe and the Acte message of an @ctes tar.gz. :raises InvalidInput: what S²LOW would refuse."""
    files = actes.read_package(data)
    envelopes = [name for name in files if name.startswith("EACT--") and name.endswith(".xml")]
    if len(envelopes) != 1:
        raise InvalidInput("archive sans enveloppe EACT unique")
    envelope = files[envelopes[0]]
    if schemas is not None:
        actes.validate(envelope, schemas, "enveloppe")
    forms = [el.text or "" for el in _safe_parse(envelope).iter(f"{{{NS}}}NomFichier")]
    if len(forms) != 1 or forms[0] not in files or not forms[0].endswith("-1-1_0.xml"):
        raise InvalidInput("l'enveloppe ne désigne pas un message d'acte présent dans l'archive")
    message = files[forms[0]]
    if schemas is not None:
        actes.validate(message, schemas, "message Acte")
    for name in _safe_parse(message).iter(f"{{{NS}}}NomFichier"):
        if (name.text or "") not in files:
            raise InvalidInput(f"fichier annoncé absent de l'archive : {name.text}")
    return forms[0].removesuffix("-1-1_0.xml"), message


def _aracte(transaction: Transaction, scenario: S2lowScenario) -> bytes:
    """An ARActe for the act received: the act's data as received, and the prefecture's classification date."""
    act_id = transaction.key
    if scenario.aracte_unknown:
        act_id = act_id.rsplit("-", 2)[0] + "-INCONNU999-" + act_id.rsplit("-", 1)[1]
    root = etree.Element(f"{{{NS}}}ARActe", nsmap={"actes": NS, "insee": actes.INSEE_NS})
    root.set(f"{{{NS}}}IDActe", act_id)
    root.set(f"{{{NS}}}DateReception", transaction.received_at.date().isoformat())
    received = _safe_parse(transaction.act or b"<x/>")
    received.tag = f"{{{NS}}}ActeRecu"
    root.append(received)
    etree.SubElement(root, f"{{{NS}}}ClassificationDateVersionEnCours").text = scenario.classification_date
    return bytes(etree.tostring(root, xml_declaration=True, encoding=LATIN1))


def classification_xml(when: str) -> bytes:
    """A small RetourClassification: the six natures and a few codes matières."""
    root = etree.Element(f"{{{NS}}}RetourClassification", nsmap={"actes": NS})
    etree.SubElement(root, f"{{{NS}}}DateClassification").text = when
    natures = etree.SubElement(root, f"{{{NS}}}NaturesActes")
    for code, (abbreviation, label) in actes.NATURES.items():
        nature = etree.SubElement(natures, f"{{{NS}}}NatureActe")
        nature.set(f"{{{NS}}}CodeNatureActe", str(code))
        nature.set(f"{{{NS}}}Libelle", label)
        nature.set(f"{{{NS}}}TypeAbrege", abbreviation)
        pj = etree.SubElement(nature, f"{{{NS}}}TypePJNatureActe")
        pj.set(f"{{{NS}}}CodeTypePJ", "99_AU")
        pj.set(f"{{{NS}}}Libelle", "Autre document")
    matieres = etree.SubElement(root, f"{{{NS}}}Matieres")
    tree = {
        ("1", "Commande publique"): [("1", "Marchés publics"), ("2", "Délégation de service public")],
        ("2", "Urbanisme"): [("1", "Documents d'urbanisme")],
        ("7", "Finances locales"): [("1", "Décisions budgétaires"), ("2", "Fiscalité")],
    }
    for (first_code, first_label), children in tree.items():
        level1 = etree.SubElement(matieres, f"{{{NS}}}Matiere1")
        level1.set(f"{{{NS}}}CodeMatiere", first_code)
        level1.set(f"{{{NS}}}Libelle", first_label)
        for child_code, child_label in children:
            level2 = etree.SubElement(level1, f"{{{NS}}}Matiere2")
            level2.set(f"{{{NS}}}CodeMatiere", child_code)
            level2.set(f"{{{NS}}}Libelle", child_label)
    return bytes(etree.tostring(root, xml_declaration=True, encoding=LATIN1))


def _letter(state: S2lowState, letter: dict[str, Any]) -> bytes:
    transaction = state.transactions.get(str(letter["related_transaction_id"]))
    root = etree.Element(f"{{{NS}}}LettreObservations", nsmap={"actes": NS})
    root.set(f"{{{NS}}}IDActe", transaction.key if transaction else "037-000000000-20260101-X-DE")
    root.set(f"{{{NS}}}DateCourrierPref", datetime.now(UTC).date().isoformat())
    etree.SubElement(root, f"{{{NS}}}Motif").text = "Observations simulées de la préfecture"
    document = etree.SubElement(root, f"{{{NS}}}Document")
    etree.SubElement(document, f"{{{NS}}}NomFichier").text = f"courrier-{letter['id']}.pdf"
    return bytes(etree.tostring(root, xml_declaration=True, encoding=LATIN1))


def _acquit(transaction: Transaction, accepted: bool) -> bytes:
    root = etree.Element("PES_ACQUIT")
    element = etree.SubElement(etree.SubElement(root, "ACQUIT"), "ElementACQUIT")
    etree.SubElement(element, "NomFic").set("V", transaction.key)
    etree.SubElement(element, "EtatAck").set("V", "1" if accepted else "2")
    if not accepted:
        detail = etree.SubElement(etree.SubElement(element, "DetailPiece"), "Erreur")
        etree.SubElement(detail, "LibelleAnoAck").set("V", "Bordereau 12 : montant du mandat incohérent (simulé)")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _pes_retour(transaction: Transaction) -> bytes:
    root = etree.Element("PES_Retour")
    etree.SubElement(etree.SubElement(root, "EnTetePES"), "NomFic").set("V", "retour-" + transaction.key)
    etree.SubElement(root, "PES_RecetteRetour").text = "simulé"
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def create_app(state: S2lowState | None = None) -> Starlette:
    """The simulator's ASGI application; ``app.state.platform`` is its state."""
    platform = state or S2lowState()

    def refused(request: Request) -> Response | None:
        platform.requests.append(f"{request.method} {request.url.path}")
        if platform.credentials is None:
            return None
        import base64

        expected = base64.b64encode(":".join(platform.credentials).encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return PlainTextResponse("Authentification requise", status_code=401)
        return None

    def status_code(transaction: Transaction) -> int:
        transaction.checks += 1
        if transaction.cancelled:
            return 0
        if transaction.checks <= platform.scenario.pending_checks:
            return min(transaction.checks, 3)
        return -1 if transaction.verdict == "KO" else 4

    async def actes_create(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        form = await request.form()
        upload = form.get("enveloppe")
        if form.get("api") != "1" or upload is None or isinstance(upload, str):
            return _ko("Paramètres manquants : api et enveloppe")
        data = await upload.read()
        answer, hang = await _fault(platform, "send")
        if answer is not None:
            return answer
        try:
            act_id, message = _read_actes(data, platform.schemas)
        except InvalidInput as exc:
            return _ko(exc.detail)
        platform.sends[act_id] = platform.sends.get(act_id, 0) + 1
        if platform.by_key("actes", act_id) is not None:
            return _ko(f"L'acte {act_id} a déjà été transmis (doublon)")
        transaction = Transaction(
            str(next(platform.counter)), "actes", act_id, datetime.now(UTC), message, verdict=platform.scenario.verdict
        )
        platform.transactions[transaction.id] = transaction
        if hang:
            await asyncio.sleep(platform.scenario.hang_seconds)
        return _ok(transaction.id)

    async def actes_status(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        answer, _ = await _fault(platform, "status")
        if answer is not None:
            return answer
        transaction = platform.transactions.get(request.query_params.get("transaction", ""))
        if transaction is None or transaction.kind != "actes":
            return _ko("Transaction inconnue")
        code = status_code(transaction)
        if code != 4:
            return _ok(str(code))
        return Response(b"OK\n4\n" + _aracte(transaction, platform.scenario), media_type="text/plain")

    async def find(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        answer, _ = await _fault(platform, "find")
        if answer is not None:
            return answer
        kind = "helios" if "/helios/" in request.url.path else "actes"
        key = request.query_params.get("filename" if kind == "helios" else "unique_id", "")
        found = platform.by_key(kind, key)
        return _ok(found.id) if found is not None else _ko("Aucune transaction")

    async def cancel(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        form = await request.form()
        transaction = platform.transactions.get(str(form.get("id") or ""))
        if transaction is None:
            return _ko("Transaction inconnue")
        transaction.cancelled = True
        return _ok(str(next(platform.counter)))

    async def classification(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        answer, _ = await _fault(platform, "classification")
        if answer is not None:
            return answer
        return Response(classification_xml(platform.scenario.classification_date), media_type="application/xml")

    async def documents(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        answer, _ = await _fault(platform, "documents")
        if answer is not None:
            return answer
        return JSONResponse(platform.letters)

    async def document(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        letter = next((x for x in platform.letters if x["id"] == request.query_params.get("id")), None)
        if letter is None:
            return _ko("Document inconnu")
        return Response(_letter(platform, letter), media_type="application/xml")

    async def reply(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        form = await request.form()
        upload = form.get("fichier")
        if upload is None or isinstance(upload, str):
            return _ko("Fichier de réponse manquant")
        content = await upload.read()
        reply_id = str(next(platform.counter))
        platform.replies.append({"id": reply_id, "to": form.get("id"), "type": form.get("type"), "size": len(content)})
        return _ok(reply_id)

    async def helios_import(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        form = await request.form()
        upload = form.get("enveloppe")
        if upload is None or isinstance(upload, str):
            return _import("KO", message="Fichier enveloppe manquant")
        data, filename = await upload.read(), upload.filename or ""
        answer, hang = await _fault(platform, "helios_send")
        if answer is not None:
            return answer
        try:
            root = _safe_parse(data)
        except etree.XMLSyntaxError:
            return _import("KO", message="Le fichier PES n'est pas un XML lisible")
        if etree.QName(root).localname != "PES_Aller":
            return _import("KO", message="Le fichier n'est pas un PES Aller")
        platform.sends[filename] = platform.sends.get(filename, 0) + 1
        if platform.by_key("helios", filename) is not None:
            return _import("KO", message=f"Le fichier {filename} a déjà été transmis (doublon)")
        transaction = Transaction(str(next(platform.counter)), "helios", filename, datetime.now(UTC))
        platform.transactions[transaction.id] = transaction
        if hang:
            await asyncio.sleep(platform.scenario.hang_seconds)
        return _import("OK", transaction.id)

    async def helios_status(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        answer, _ = await _fault(platform, "helios_status")
        if answer is not None:
            return answer
        transaction = platform.transactions.get(request.query_params.get("transaction", ""))
        if transaction is None or transaction.kind != "helios":
            return _xml("transaction", resultat="KO", message="Transaction inconnue")
        return _xml("transaction", id=transaction.id, resultat="OK", status=str(status_code(transaction)), message="")

    async def acquit(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        answer, _ = await _fault(platform, "acquit")
        if answer is not None:
            return answer
        transaction = platform.transactions.get(request.query_params.get("id", ""))
        if transaction is None or transaction.checks <= platform.scenario.pending_checks:
            return PlainTextResponse("Acquit non disponible", status_code=404)
        return Response(_acquit(transaction, platform.scenario.acquit == "OK"), media_type="application/xml")

    async def retour(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        answer, _ = await _fault(platform, "retour")
        if answer is not None:
            return answer
        transaction = platform.transactions.get(request.query_params.get("transaction", ""))
        if transaction is None or not platform.scenario.pes_retour:
            return PlainTextResponse("Pas de PES Retour", status_code=404)
        return Response(_pes_retour(transaction), media_type="application/xml")

    async def test_connection(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        return _ok()

    async def control(request: Request) -> Response:
        if request.method == "PUT":
            try:
                platform.scenario.update(json.loads(await request.body() or b"{}"))
            except (ValueError, TypeError) as exc:
                return JSONResponse({"erreur": str(exc)}, status_code=400)
        if request.method == "POST":
            body = json.loads(await request.body() or b"{}")
            platform.add_letter(str(body.get("transaction", "")), str(body.get("type") or "LettreObservations"))
        return JSONResponse(platform.summary() | {"scenario": platform.scenario.__dict__})

    app = Starlette(
        routes=[
            Route("/modules/actes/actes_transac_create.php", actes_create, methods=["POST"]),
            Route("/modules/actes/actes_transac_get_status.php", actes_status, methods=["GET"]),
            Route("/modules/actes/actes_transac_cancel.php", cancel, methods=["POST"]),
            Route("/modules/actes/actes_classification_fetch.php", classification, methods=["GET"]),
            Route("/modules/actes/api/list_document_prefecture.php", documents, methods=["GET"]),
            Route("/modules/actes/actes_transac_get_document.php", document, methods=["GET"]),
            Route("/modules/actes/actes_transac_reponse_create.php", reply, methods=["POST"]),
            Route("/modules/actes/api/find_transaction.php", find, methods=["GET"]),
            Route("/modules/helios/api/helios_importer_fichier.php", helios_import, methods=["POST"]),
            Route("/modules/helios/api/helios_transac_get_status.php", helios_status, methods=["GET"]),
            Route("/modules/helios/helios_download_acquit.php", acquit, methods=["GET"]),
            Route("/modules/helios/api/helios_get_retour.php", retour, methods=["GET"]),
            Route("/modules/helios/api/find_transaction.php", find, methods=["GET"]),
            Route("/api/test-connexion.php", test_connection, methods=["GET"]),
            Route("/_simulateur", control, methods=["GET"]),
            Route("/_simulateur/scenario", control, methods=["PUT"]),
            Route("/_simulateur/courrier", control, methods=["POST"]),
        ]
    )
    app.state.platform = platform
    return app


def _xml(root_name: str, **children: str) -> Response:
    root = etree.Element(root_name)
    for name, text in children.items():
        etree.SubElement(root, name).text = text
    return Response(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), media_type="application/xml")


def _import(result: str, transaction_id: str = "", message: str = "") -> Response:
    return _xml("import", id=transaction_id, resultat=result, message=message)
