"""A S²LOW simulator: @ctes and Hélios transactions as the platform answers them, with its failures.

Written from S²LOW's own pages (libriciel/s2low, public.ssl/modules; see ``interop.connectors.s2low``): the
same addresses, parameters and answers (« OK\\n… » / « KO\\n… » texts, the Hélios XML answers, the JSON of
the ``api/`` pages). What it checks like the real platform: the tar.gz is readable, its envelope and act
message are valid against the ACTES XSD (when a schema folder is given), an act number is received once per
collectivité (« Un numéro interne d'acte entre en conflit… ») and a PES file once (« doublon détecté »); a
cancellation needs an acknowledged act. Scenario knobs (``PUT /_simulateur/scenario``, or ``socle interop
simulate s2low``):

- ``faults``: per endpoint (send, status, find — the list of acts —, classification, helios_send,
  helios_status, acquit, retour, documents), a list consumed one per call: ``500``, ``html``, ``timeout``,
  ``malformed``, ``ko`` (a KO answer), ``denied`` (« KO Accès refusé » in text, as S²LOW checks rights before
  answering in its page's format), ``accept_then_timeout`` (send only: received, the answer never comes);
- ``pending_checks``: status calls answering « posté / en attente / transmis » before the acknowledgement;
- ``intermediate``: status codes answered one per call after the pending ones and before the verdict (Hélios 7
  « en traitement », 24; @ctes 17, 18, 21): states without the awaited document, that end nothing;
- ``verdict``: ``KO`` puts transactions in error (status -1) instead of acknowledging them;
- ``aracte_unknown``: the ARActe sent back names another act (an acknowledgement for an unknown act);
- ``aracte_siren``: the ARActe sent back names this SIREN instead of the act's (another collectivité's act);
- ``acquit``: ``KO`` makes the accountant refuse the PES (status 6, PES Acquit with EtatAck 2);
- ``pes_retour``: the accountant also sends a PES Retour (in the collectivité's unread list);
- ``envelope_submission``: ``false`` answers the envelope import as platforms that switched it off;
- ``sae_after_ack``: an acknowledged act is already « envoyé au SAE » (12) when asked: its status carries
  no ARActe any more, which is then on ``actes_transac_get_ARActe.php``;
- ``classification_date``: the date of the prefecture's classification (a later one makes the tenant's stale);
- ``delay``: seconds before every answer (a slow platform).

``S2lowState.authority`` (siren, department, arrondissement, nature) is the account's collectivité: an envelope
naming another one is refused with S²LOW's words (« … ne correspond pas à celui de l'utilisateur authentifié »).
Its SIREN (else :data:`DEFAULT_SIREN`, the demo commune's) is the one of the letters about an act the simulator
never received and of the PES Retour of a PES Aller naming no collectivité; a PES Aller's own
``EnTetePES/IdColl`` is repeated in its PES Acquit and PES Retour, as the accountant does. ``api/info-connexion.php``
tells which account answered (``S2lowState.account``).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from interop import actes
from interop.simulators.common import HTML_ERROR, Scenario
from socle.errors import InvalidInput

FAULTS = ("500", "html", "timeout", "malformed", "accept_then_timeout", "ko", "denied")
NS = actes.NS
LATIN1 = "ISO-8859-1"
DUPLICATE_ACT = "Un numéro interne d'acte entre en conflit avec un acte existant dans la base de données."
DUPLICATE_PES = "doublon détecté. Ce fichier a déjà été posté"
SUBMISSION_OFF = (
    "Cette fonctionnalité est déprécié. Vous devez désormais utiliser : "
    "'/modules/actes/actes_transac_create.php' pour créer un acte."
)
# The collectivité of the account when no ``authority`` is set: the demo commune's (socle demo, the test kits).
DEFAULT_SIREN = "213700000"
LETTER_TYPES = {2: "courrier simple", 3: "demande de pièces complémentaires", 4: "lettre d'observations", 5: "déféré"}
# The @ctes message of each type of letter, and its text (simulated).
LETTER_MESSAGES = {
    2: ("CourrierSimple", ""),
    3: ("DemandePieceComplementaire", "Pièces simulées demandées : plan de financement"),
    4: ("LettreObservations", "Observations simulées de la préfecture"),
    5: ("DefereTA", "Illégalité simulée : incompétence"),
}
LETTER_TEXT_ELEMENTS = {"DemandePieceComplementaire": "DescriptionPieces", "LettreObservations": "Motif"}


@dataclass
class S2lowScenario(Scenario):
    aracte_unknown: bool = False
    aracte_siren: str = ""
    acquit: str = "OK"
    pes_retour: bool = False
    envelope_submission: bool = True
    sae_after_ack: bool = False
    classification_date: str = "2026-01-15"
    intermediate: list[int] = field(default_factory=list)

    def update(self, values: dict[str, Any]) -> None:
        """Change knobs; :raises ValueError: an unknown knob or fault (French message)."""
        rest = dict(values)
        for endpoint, faults in dict(rest.pop("faults", {}) or {}).items():
            unknown = set(faults) - set(FAULTS)
            if unknown:
                raise ValueError(f"panne inconnue : {', '.join(sorted(unknown))}")
            self.faults[str(endpoint)] = list(faults)
        for name in ("aracte_unknown", "pes_retour", "envelope_submission", "sae_after_ack"):
            if name in rest:
                setattr(self, name, bool(rest.pop(name)))
        if "aracte_siren" in rest:
            siren = str(rest.pop("aracte_siren") or "")
            if siren and not (len(siren) == 9 and siren.isdigit()):
                raise ValueError("aracte_siren : un SIREN de 9 chiffres, ou vide")
            self.aracte_siren = siren
        if "acquit" in rest:
            if rest["acquit"] not in ("OK", "KO"):
                raise ValueError("acquit : OK ou KO")
            self.acquit = rest.pop("acquit")
        if "intermediate" in rest:
            codes = rest.pop("intermediate") or []
            if not isinstance(codes, list) or not all(isinstance(code, int) and code > 4 for code in codes):
                raise ValueError("intermediate : une liste de codes d'état supérieurs à 4")
            self.intermediate = list(codes)
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
    acquit: str = "OK"
    cancelled: bool = False
    last_status: int = 1
    collectivity: str = ""  # Hélios: the PES Aller's EnTetePES/IdColl (a SIRET), repeated in its Acquit and Retour

    @property
    def number(self) -> str:
        """The act's number: the fourth part of its IDActe (dept-SIREN-date-number-nature)."""
        parts = self.key.split("-")
        return parts[3] if self.kind == "actes" and len(parts) >= 5 else ""


@dataclass
class S2lowState:
    scenario: S2lowScenario = field(default_factory=S2lowScenario)
    schemas: Path | None = None
    credentials: tuple[str, str] | None = None
    trigram: str = "TRI"  # the platform's ACTES_APPLI_TRIGRAMME, first part of an archive's name
    # The account's collectivité (siren, department, arrondissement, nature): when set, an envelope naming
    # another one is refused as S²LOW does (ActesEnvelope::processXMLEnvelope); None: not compared.
    authority: dict[str, str] | None = None
    transactions: dict[str, Transaction] = field(default_factory=dict)
    sends: dict[str, int] = field(default_factory=dict)  # sends per IDActe / PES file name
    letters: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    retours: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    # Who api/info-connexion.php says answered: its user_info and authority_info (S²LOW's users and authorities).
    account: dict[str, Any] = field(
        default_factory=lambda: {
            "user_info": {"id": 1, "givenname": "Camille", "name": "Simulée", "email": "tdt@simulateur.test"},
            "authority_info": {"id": 1, "name": "Commune simulée", "department": "037", "district": "0"},
        }
    )

    @property
    def siren(self) -> str:
        """The SIREN of the account's collectivité."""
        return str((self.authority or {}).get("siren") or DEFAULT_SIREN)

    def by_key(self, kind: str, key: str) -> Transaction | None:
        return next((t for t in self.transactions.values() if t.kind == kind and t.key == key), None)

    def by_number(self, number: str) -> Transaction | None:
        return next((t for t in self.transactions.values() if t.kind == "actes" and t.number == number), None)

    def add_letter(self, transaction_id: str, kind: int = 4) -> str:
        """The prefecture writes about an act (type 2 to 5; a test or the operator rehearsing asks for it)."""
        if kind not in LETTER_TYPES:
            raise ValueError("type de courrier : 2, 3, 4 ou 5")
        act = self.transactions.get(transaction_id)
        letter_id = str(next(self.counter))
        self.letters.append(
            {
                "id": letter_id,
                "type": str(kind),
                "related_transaction_id": transaction_id,
                "number": act.number if act else "",
                "unique_id": act.key if act else "",
                "last_status_id": 7,
                "lu": False,
            }
        )
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
            "retours": [{k: v for k, v in r.items() if k != "content"} for r in self.retours],
            "requests": self.requests[-200:],
        }


def _ok(*lines: str) -> Response:
    return Response("\n".join(("OK", *lines, "")).encode(LATIN1), media_type="text/plain")


def _ko(message: str) -> Response:
    # Pages going through ResponseHelper::returnAndExit convert their message to ISO-8859-1.
    return Response(f"KO\n{message}\n".encode(LATIN1), media_type="text/plain")


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
        body = b'{"transactions": [' if endpoint in ("find", "documents") else b"<?xml version='1.0'?><import><resul"
        return Response(body, media_type="application/xml"), False
    if fault == "denied":  # the user's rights, checked before any page's own format: always plain text
        return PlainTextResponse("KO\nAccès refusé"), False
    if fault == "ko":
        message = "Erreur simulée : la plateforme refuse la demande"
        return (_import("KO", message=message) if endpoint.startswith("helios") else _ko(message)), False
    return None, fault == "accept_then_timeout"


def _archive_name_error(name: str, trigram: str) -> str | None:
    """What S²LOW says of an archive name that is not « TRI-EACT--… .tar.gz » with its own trigram, or None."""
    parts = name.split("-")
    if len(parts) < 2 or not name.endswith(".tar.gz"):
        return "Le nom de l'archive n'est pas correct"
    if parts[0] != trigram:
        return f"Le trigramme trouvé ({parts[0]}) ne correspond pas au trigramme attendu ({trigram})"
    if parts[1] != "EACT":
        return f"Le quadrigramme trouvé ({parts[1]}) ne correspond pas au quadrigramme attendu (EACT)"
    return None


def _safe_parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


AUTHORITY_WORDS = {
    "siren": "Le numéro de SIREN",
    "nature": "Le type de collectivité",
    "department": "Le département de la collectivité",
    "arrondissement": "L'arrondissement de la collectivité",
}


def _check_authority(envelope: bytes, authority: dict[str, str]) -> None:
    """S²LOW compares the envelope's collectivité with the account's. :raises InvalidInput: its words."""
    emitter = _safe_parse(envelope).find(f"{{{NS}}}Emetteur/{{{NS}}}IDCL")
    found = {
        "siren": emitter.get(f"{{{actes.INSEE_NS}}}SIREN") if emitter is not None else None,
        "nature": emitter.get(f"{{{NS}}}Nature") if emitter is not None else None,
        "department": emitter.get(f"{{{NS}}}Departement") if emitter is not None else None,
        "arrondissement": emitter.get(f"{{{NS}}}Arrondissement") if emitter is not None else None,
    }
    for key, words in AUTHORITY_WORDS.items():
        theirs, ours = found[key], authority.get(key)
        if key == "nature" and (theirs or "").isdigit() and (ours or "").isdigit():
            theirs, ours = str(int(theirs or "0")), str(int(ours or "0"))  # PHP's « != »: « 01 » is « 1 »
        if key in authority and theirs != ours:
            raise InvalidInput(
                f"{words} contenu dans l'enveloppe ne correspond pas à celui de l'utilisateur authentifié. Abandon."
            )


def _read_actes(data: bytes, schemas: Path | None, authority: dict[str, str] | None = None) -> tuple[str, bytes]:
    """The IDActe and the Acte message of an @ctes tar.gz. :raises InvalidInput: what S²LOW would refuse."""
    files = actes.read_package(data)
    envelopes = [name for name in files if name.startswith("EACT--") and name.endswith(".xml")]
    if len(envelopes) != 1:
        raise InvalidInput("archive sans enveloppe EACT unique")
    envelope = files[envelopes[0]]
    if schemas is not None:
        actes.validate(envelope, schemas, "enveloppe")
    if authority is not None:
        _check_authority(envelope, authority)
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
    if scenario.aracte_siren:
        parts = act_id.split("-")
        act_id = "-".join([parts[0], scenario.aracte_siren, *parts[2:]])
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


def _letter_archive(state: S2lowState, letter: dict[str, Any]) -> bytes:
    """The tar.gz S²LOW hands out for a prefecture's document: its @ctes message and the letter's PDF."""
    transaction = state.transactions.get(str(letter["related_transaction_id"]))
    act_id = transaction.key if transaction else f"037-{state.siren}-20260101-X-DE"  # an act sent by another tool
    # Each type of letter is its own @ctes message (valid against the XSD), as the prefecture writes it.
    element, text = LETTER_MESSAGES[int(letter["type"])]
    today = datetime.now(UTC).date().isoformat()
    root = etree.Element(f"{{{NS}}}{element}", nsmap={"actes": NS})
    root.set(f"{{{NS}}}IDActe", act_id)
    pdf_name = f"courrier-{letter['id']}.pdf"
    if element == "DefereTA":
        etree.SubElement(root, f"{{{NS}}}DateDepot").text = today
        etree.SubElement(root, f"{{{NS}}}NatureIllegalite").text = text
        pieces = etree.SubElement(root, f"{{{NS}}}PiecesJointes")
        etree.SubElement(etree.SubElement(pieces, f"{{{NS}}}PieceJointe"), f"{{{NS}}}NomFichier").text = pdf_name
    else:
        root.set(f"{{{NS}}}DateCourrierPref", today)
        if text:
            etree.SubElement(root, f"{{{NS}}}{LETTER_TEXT_ELEMENTS[element]}").text = text
        etree.SubElement(etree.SubElement(root, f"{{{NS}}}Document"), f"{{{NS}}}NomFichier").text = pdf_name
    members = {
        f"{act_id}-{letter['type']}-1_0.xml": bytes(etree.tostring(root, xml_declaration=True, encoding=LATIN1)),
        pdf_name: b"%PDF-1.4\n% courrier simule\n%%EOF\n",
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _acquit(transaction: Transaction, accepted: bool) -> bytes:
    """A PES Acquit as the DGFiP writes it: Enveloppe/Parametres/NomFic, ACQUIT/ElementACQUIT/EtatAck."""
    root = etree.Element("PES_ACQUIT")
    etree.SubElement(etree.SubElement(etree.SubElement(root, "Enveloppe"), "Parametres"), "NomFic").set(
        "V", transaction.key
    )
    if transaction.collectivity:  # the PES Aller's collectivité, as the accountant writes it back
        etree.SubElement(etree.SubElement(root, "EnTetePES"), "IdColl").set("V", transaction.collectivity)
    element = etree.SubElement(etree.SubElement(root, "ACQUIT"), "ElementACQUIT")
    etree.SubElement(element, "EtatAck").set("V", "1" if accepted else "2")
    if not accepted:
        error = etree.SubElement(etree.SubElement(element, "DetailPiece"), "Erreur")
        etree.SubElement(error, "NumAnoAck").set("V", "42")
        etree.SubElement(error, "LibelleAnoAck").set("V", "Bordereau 12 : montant du mandat incohérent (simulé)")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _pes_retour(transaction: Transaction, siren: str) -> bytes:
    """A PES Retour for the collectivité of ``transaction``'s PES Aller (its IdColl, else the account's ``siren``)."""
    root = etree.Element("PES_Retour")
    header = etree.SubElement(root, "EnTetePES")
    etree.SubElement(header, "NomFic").set("V", "retour-" + transaction.key)
    etree.SubElement(header, "IdColl").set("V", transaction.collectivity or f"{siren}00017")
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
        """The status a call finds, moving the transaction on by one check."""
        transaction.checks += 1
        return current_status(transaction)

    def current_status(transaction: Transaction) -> int:
        if transaction.cancelled:
            return 0
        if transaction.checks <= platform.scenario.pending_checks:
            return max(1, min(transaction.checks, 3))
        past = transaction.checks - platform.scenario.pending_checks
        if past <= len(platform.scenario.intermediate):
            return platform.scenario.intermediate[past - 1]
        if transaction.verdict == "KO":
            return -1
        if transaction.kind == "helios" and transaction.acquit == "KO":
            return 6
        return 4

    async def actes_submit(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        form = await request.form()
        upload = form.get("enveloppe")
        if not platform.scenario.envelope_submission:
            return _ko(SUBMISSION_OFF)
        if upload is None or isinstance(upload, str):
            return _ko("Pas de fichier archive spécifié.")
        if (refused_name := _archive_name_error(upload.filename or "", platform.trigram)) is not None:
            return _ko(f"L'archive n'a pas un nom valide : {refused_name}")
        data = await upload.read()
        answer, hang = await _fault(platform, "send")
        if answer is not None:
            return answer
        try:
            act_id, message = _read_actes(data, platform.schemas, platform.authority)
        except InvalidInput as exc:
            return _ko(f"Erreur d'importation de l'enveloppe :\n{exc.detail}")
        platform.sends[act_id] = platform.sends.get(act_id, 0) + 1
        transaction = Transaction(
            str(next(platform.counter)), "actes", act_id, datetime.now(UTC), message, verdict=platform.scenario.verdict
        )
        if platform.by_number(transaction.number) is not None:
            return _ko(DUPLICATE_ACT)
        platform.transactions[transaction.id] = transaction
        if hang:
            await asyncio.sleep(platform.scenario.hang_seconds)
        return _ok("1", transaction.id)

    async def actes_status(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        answer, _ = await _fault(platform, "status")
        if answer is not None:
            return answer
        unique_id = request.query_params.get("unique_id")
        if unique_id:
            transaction = platform.by_key("actes", unique_id)
        else:
            transaction = platform.transactions.get(request.query_params.get("transaction", ""))
        if transaction is None or transaction.kind != "actes":
            return PlainTextResponse("KO\nNuméro de transaction invalide.")  # echoed as is (UTF-8) by S²LOW
        code = status_code(transaction)
        transaction.last_status = code
        if code == 4 and platform.scenario.sae_after_ack:
            transaction.last_status = 12
            return _ok("12")
        if code == 4:
            return Response(b"OK\n4\n" + _aracte(transaction, platform.scenario), media_type="text/plain")
        if code == -1:
            return Response("OK\n-1\nErreur simulée : enveloppe refusée par le ministère".encode(LATIN1))
        return _ok(str(code))

    async def get_aracte(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        transaction = platform.transactions.get(request.query_params.get("id", ""))
        if transaction is None or transaction.kind != "actes" or current_status(transaction) != 4:
            return RedirectResponse("index.php", status_code=302)  # S²LOW's page sends the browser back
        return Response(_aracte(transaction, platform.scenario), media_type="application/xml")

    async def list_actes(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        answer, _ = await _fault(platform, "find")
        if answer is not None:
            return answer
        try:
            status = int(request.query_params.get("status_id", "0"))
            offset = int(request.query_params.get("offset", "0"))
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            return JSONResponse({"error": "paramètre entier attendu"})
        matching = sorted(
            (t for t in platform.transactions.values() if t.kind == "actes" and t.last_status == status),
            key=lambda t: -int(t.id),
        )
        rows = [
            {"id": t.id, "subject": "", "number": t.number, "date": t.received_at.date().isoformat(), "type": "1"}
            for t in matching[offset : offset + limit]
        ]
        body = {"status_id": status, "authority_id": 1, "offset": offset, "limit": limit, "transactions": rows}
        return JSONResponse(body)

    async def cancel(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        form = await request.form()
        transaction = platform.transactions.get(str(form.get("id") or ""))
        if transaction is None or transaction.kind != "actes":
            return _ko("Erreur d'initialisation de la transaction.")
        if transaction.cancelled:
            return _ko("Une demande d'annulation est déjà en cours pour cette transaction.")
        if current_status(transaction) != 4:
            return _ko("Impossible d'annuler une transaction qui n'est pas en état « Acquittement reçu ».")
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
        return JSONResponse([{k: v for k, v in x.items() if k != "lu"} for x in platform.letters if not x["lu"]])

    async def mark_read(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        for letter in platform.letters:
            if letter["id"] == request.query_params.get("transaction_id"):
                letter["lu"] = True
        return JSONResponse({"result": "ok"})

    async def document(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        wanted = request.query_params.get("id", "")
        letter = next((x for x in platform.letters if x["id"] == wanted), None)
        if letter is not None:  # a prefecture's message: S²LOW redirects to its envelope
            return RedirectResponse(f"actes_download_file.php?env={wanted}", status_code=302)
        act = platform.transactions.get(wanted)
        if act is None:
            return PlainTextResponse("KO\nNuméro de transaction invalide.")
        lines = [
            f"{x['type']}-{x['last_status_id']}-{x['id']}"
            for x in platform.letters
            if x["related_transaction_id"] == wanted
        ]
        return PlainTextResponse("".join(f"{line}\n" for line in lines))

    async def download(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        letter = next((x for x in platform.letters if x["id"] == request.query_params.get("env")), None)
        if letter is None:
            return _ko("Enveloppe inconnue")
        return Response(_letter_archive(platform, letter), media_type="application/x-gzip")

    async def reply(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        form = await request.form()
        upload = form.get("acte_pdf_file")
        if not form.get("type_acte"):
            return _ko("Erreur lors de la réception du fichier : typologie absente")
        if upload is None or isinstance(upload, str):
            return PlainTextResponse("KO : Envoi de fichier illégal.")
        if form.get("type_envoie") not in ("3", "4"):
            return PlainTextResponse("KO : type de réponse inconnu")
        content = await upload.read()
        reply_id = str(next(platform.counter))
        platform.replies.append(
            {"id": reply_id, "to": form.get("id"), "type": form.get("type_envoie"), "size": len(content)}
        )
        return _ok(reply_id)

    async def helios_import(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        form = await request.form()
        upload = form.get("enveloppe")
        if upload is None or isinstance(upload, str):
            return _import("KO", message="Echec lors du téléchargement du fichier")
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
            return _import("KO", message=DUPLICATE_PES)
        transaction = Transaction(
            str(next(platform.counter)),
            "helios",
            filename,
            datetime.now(UTC),
            verdict=platform.scenario.verdict,
            acquit=platform.scenario.acquit,
            collectivity=_collectivity(root),
        )
        platform.transactions[transaction.id] = transaction
        if hang:
            await asyncio.sleep(platform.scenario.hang_seconds)
        return _import("OK", transaction.id, "Téléchargement du fichier réussi.")

    async def helios_status(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        answer, _ = await _fault(platform, "helios_status")
        if answer is not None:
            return answer
        wanted = request.query_params.get("transaction", "")
        transaction = platform.transactions.get(wanted)
        if transaction is None or transaction.kind != "helios":
            return _xml("transaction", id=wanted, resultat="KO", message="Numéro de transaction invalide", status="")
        code = status_code(transaction)
        if code == 4 and platform.scenario.pes_retour and not any(r["of"] == transaction.id for r in platform.retours):
            retour_id = str(next(platform.counter))
            name = f"PES_RETOUR_{retour_id}.xml"
            content = _pes_retour(transaction, platform.siren)
            platform.retours.append(
                {"id": retour_id, "nom": name, "of": transaction.id, "lu": False, "content": content}
            )
        return _xml("transaction", id=transaction.id, resultat="OK", message=f"état {code}", status=str(code))

    async def acquit(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        answer, _ = await _fault(platform, "acquit")
        if answer is not None:
            return answer
        transaction = platform.transactions.get(request.query_params.get("id", ""))
        if transaction is None or current_status(transaction) not in (4, 6):
            return PlainTextResponse("Le fichier n'est pas encore disponible", status_code=404)
        return Response(_acquit(transaction, transaction.acquit == "OK"), media_type="application/xml")

    async def retour_list(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        answer, _ = await _fault(platform, "retour")
        if answer is not None:
            return answer
        root = etree.Element("liste")
        etree.SubElement(root, "idColl").text = "1"
        etree.SubElement(root, "dateDemande").text = datetime.now(UTC).date().isoformat()
        etree.SubElement(root, "resultat").text = "OK"
        etree.SubElement(root, "message").text = ""
        for item in (r for r in platform.retours if not r["lu"]):
            element = etree.SubElement(root, "pes_retour")
            etree.SubElement(element, "id").text = item["id"]
            etree.SubElement(element, "nom").text = item["nom"]
            etree.SubElement(element, "date").text = datetime.now(UTC).date().isoformat()
        return Response(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), media_type="text/xml")

    async def retour(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        wanted = request.query_params.get("id", "")
        item = next((r for r in platform.retours if r["id"] == wanted), None)
        if item is None:
            return _xml("get_retour", id=wanted, resultat="KO", message="retour id n'est pas correcte")
        return Response(item["content"], media_type="text/xml")

    async def retour_read(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        wanted = request.query_params.get("id", "")
        item = next((r for r in platform.retours if r["id"] == wanted), None)
        if item is None:
            return _xml("transaction", idRetour=wanted, resultat="KO", message="Changement de status est echoué.")
        item["lu"] = True
        return _xml("transaction", idRetour=wanted, resultat="OK", message="reussi de changer status")

    async def test_connection(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        return PlainTextResponse("OK")

    async def info_connection(request: Request) -> Response:
        if (refusal := refused(request)) is not None:
            return refusal
        return JSONResponse(platform.account)

    async def control(request: Request) -> Response:
        if request.method == "PUT":
            try:
                platform.scenario.update(json.loads(await request.body() or b"{}"))
            except (ValueError, TypeError) as exc:
                return JSONResponse({"erreur": str(exc)}, status_code=400)
        if request.method == "POST":
            body = json.loads(await request.body() or b"{}")
            try:
                platform.add_letter(str(body.get("transaction", "")), int(body.get("type") or 4))
            except (ValueError, TypeError) as exc:
                return JSONResponse({"erreur": str(exc)}, status_code=400)
        return JSONResponse(platform.summary() | {"scenario": platform.scenario.__dict__})

    actes_pages = "/modules/actes"
    helios_pages = "/modules/helios"
    app = Starlette(
        routes=[
            Route(f"{actes_pages}/actes_transac_submit.php", actes_submit, methods=["POST"]),
            Route(f"{actes_pages}/actes_transac_get_status.php", actes_status, methods=["GET"]),
            Route(f"{actes_pages}/api/list_actes.php", list_actes, methods=["GET"]),
            Route(f"{actes_pages}/actes_transac_get_ARActe.php", get_aracte, methods=["GET"]),
            Route(f"{actes_pages}/actes_transac_cancel.php", cancel, methods=["POST"]),
            Route(f"{actes_pages}/actes_classification_fetch.php", classification, methods=["GET"]),
            Route(f"{actes_pages}/api/list_document_prefecture.php", documents, methods=["GET"]),
            Route(f"{actes_pages}/api/document_prefecture_mark_as_read.php", mark_read, methods=["GET"]),
            Route(f"{actes_pages}/actes_transac_get_document.php", document, methods=["GET"]),
            Route(f"{actes_pages}/actes_download_file.php", download, methods=["GET"]),
            Route(f"{actes_pages}/actes_transac_reponse_create.php", reply, methods=["POST"]),
            Route(f"{helios_pages}/api/helios_importer_fichier.php", helios_import, methods=["POST"]),
            Route(f"{helios_pages}/api/helios_transac_get_status.php", helios_status, methods=["GET"]),
            Route(f"{helios_pages}/helios_download_acquit.php", acquit, methods=["GET"]),
            Route(f"{helios_pages}/api/helios_get_list.php", retour_list, methods=["GET"]),
            Route(f"{helios_pages}/api/helios_get_retour.php", retour, methods=["GET"]),
            Route(f"{helios_pages}/api/helios_change_status.php", retour_read, methods=["GET"]),
            Route("/api/test-connexion.php", test_connection, methods=["GET"]),
            Route("/api/info-connexion.php", info_connection, methods=["GET"]),
            Route("/_simulateur", control, methods=["GET"]),
            Route("/_simulateur/scenario", control, methods=["PUT"]),
            Route("/_simulateur/courrier", control, methods=["POST"]),
        ]
    )
    app.state.platform = platform
    return app


def _collectivity(pes: etree._Element) -> str:
    """The ``EnTetePES/IdColl`` of a PES Aller (a SIRET), or "" when it names none."""
    found = pes.find("EnTetePES/IdColl")
    return (found.get("V") or "").strip() if found is not None else ""


def _xml(root_name: str, **children: str) -> Response:
    root = etree.Element(root_name)
    for name, text in children.items():
        etree.SubElement(root, name).text = text
    return Response(etree.tostring(root, xml_declaration=True, encoding="UTF-8"), media_type="text/xml")


def _import(result: str, transaction_id: str = "", message: str = "") -> Response:
    return _xml("import", id=transaction_id, resultat=result, message=message)
