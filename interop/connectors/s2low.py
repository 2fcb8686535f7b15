"""The S²LOW connector (tiers de télétransmission): @ctes to the prefecture, Hélios to the public accountant.

Protocol (S²LOW's API, as its clients such as Pastell use it; authentication by TLS client certificate, with
an optional basic auth in front):

- @ctes: ``POST /modules/actes/actes_transac_create.php`` (multipart: ``api=1``, file ``enveloppe`` = the tar.gz)
  → ``OK\\n<id>`` or ``KO\\n<message>``; ``GET actes_transac_get_status.php?transaction=ID`` → ``OK\\n<code>``
  (then the ARActe XML once the code is 4); ``POST actes_transac_cancel.php`` (``id``); the classification
  ``GET actes_classification_fetch.php?api=1`` (RetourClassification); the prefecture's letters
  ``GET api/list_document_prefecture.php`` (JSON), ``GET actes_transac_get_document.php?id=`` and the reply
  ``POST actes_transac_reponse_create.php`` (``id``, ``type``, file ``fichier``);
- Hélios: ``POST /modules/helios/api/helios_importer_fichier.php`` (file ``enveloppe`` = the signed PES Aller) →
  XML ``<import><id/><resultat>OK|KO</resultat><message/></import>``; ``GET api/helios_transac_get_status.php?
  transaction=ID`` → XML ``<transaction><id/><resultat/><status/><message/></transaction>``; the PES Acquit
  ``GET helios_download_acquit.php?id=`` and the PES Retour ``GET api/helios_get_retour.php?transaction=``;
- finding what was sent before a crash: ``GET /modules/actes/api/find_transaction.php?unique_id=`` (the act's
  IDActe) and ``GET /modules/helios/api/find_transaction.php?filename=`` (the PES file name) → ``OK\\n<id>`` or
  ``KO\\n…``. These two are the simulator's convention: check them against the S²LOW version in use.

Answers that are not what the protocol promises (HTML page, malformed XML, 5xx, timeout) raise
:class:`SaeUnavailable` (retried); a ``KO`` raises :class:`S2lowRefused` with the platform's words. Every XML
goes through :func:`interop.connectors.sae.parse_xml` (no DTD, no entities, no network).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from lxml import etree

from interop.connectors.sae import SaeRefused, SaeUnavailable, excerpt, http_client, parse_xml, request
from socle.storage import ObjectStore

ACTES = "/modules/actes"
HELIOS = "/modules/helios"
# S²LOW's transaction statuses, mapped to the flow's words (French: shown to users as is).
STATUS_LABELS: dict[int, str] = {
    -1: "erreur",
    0: "annulé",
    1: "posté",
    2: "en attente de transmission",
    3: "transmis",
    4: "acquittement reçu",
    5: "validé",
    6: "refusé",
    7: "document reçu",
    8: "envoyé au SAE",
}
ACKNOWLEDGED, ERROR, CANCELLED, REFUSED = 4, -1, 0, 6


class S2lowRefused(SaeRefused):
    """S²LOW answered « KO »: the platform's own words are kept in the message."""


class S2lowDuplicate(S2lowRefused):
    """S²LOW already has this act or PES file (a send repeated after a crash)."""


@dataclass(frozen=True)
class Status:
    """Where a transaction stands on S²LOW."""

    code: int
    label: str
    message: str = ""
    document: bytes | None = None  # the ARActe (actes) once acknowledged

    @property
    def failed(self) -> bool:
        return self.code in (ERROR, CANCELLED, REFUSED)


class S2lowConnector:
    """One tenant's account on a S²LOW platform."""

    kind = "s2low"

    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name, self.config, self.secrets = name, config, secrets

    def _client(self) -> Any:
        user, password = self.config.get("username"), self.secrets.get("password")
        auth = (str(user), password or "") if user else None
        return http_client(self.config, self.secrets, {"Accept": "text/plain, application/xml"}, auth)

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        with self._client() as client:
            response = request(client, method, url, **kwargs)
        if response.status_code == 404:
            raise SaeUnavailable(f"S²LOW : adresse inconnue ({url}), version de la plateforme à vérifier")
        return response

    # ------------------------------------------------------------------------------------------------
    # Plain-text answers: « OK\n… » or « KO\n… »

    @staticmethod
    def _lines(response: httpx.Response, what: str) -> list[str]:
        text = response.content.decode("utf-8", "replace").strip()
        head = text[:100].lower()
        if head.startswith(("<!doctype html", "<html")):
            raise SaeUnavailable(f"{what} : S²LOW a répondu une page HTML ({excerpt(response.content)})")
        lines = [line.strip() for line in text.splitlines()]
        if not lines or lines[0] not in ("OK", "KO"):
            raise SaeUnavailable(f"{what} : réponse illisible de S²LOW ({excerpt(response.content)})")
        if lines[0] == "KO":
            said = " ".join(lines[1:]) or "sans message"
            kind = S2lowDuplicate if "déjà" in said.lower() or "doublon" in said.lower() else S2lowRefused
            raise kind(f"{what} refusé par S²LOW : {said}")
        return lines[1:]

    # ------------------------------------------------------------------------------------------------
    # @ctes

    def send_actes(self, store: ObjectStore, package_key: str, filename: str) -> str:
        """Post an @ctes tar.gz; return the transaction id.

        :raises S2lowDuplicate: S²LOW already has this act. :raises S2lowRefused: other KO.
        :raises SaeUnavailable: no usable answer (retried; the flow asks before sending again).
        """
        with store.open(package_key) as stream:
            response = self._call(
                "POST",
                f"{ACTES}/actes_transac_create.php",
                data={"api": "1"},
                files={"enveloppe": (filename, stream, "application/x-gzip")},
            )
        lines = self._lines(response, "envoi de l'acte")
        if not lines or not lines[0].isdigit():
            raise SaeUnavailable(f"envoi de l'acte : identifiant de transaction absent ({excerpt(response.content)})")
        return lines[0]

    def find_actes(self, unique_id: str) -> str | None:
        """The transaction id S²LOW holds for this act (IDActe), or None."""
        return self._find(f"{ACTES}/api/find_transaction.php", {"unique_id": unique_id})

    def _find(self, url: str, params: dict[str, str]) -> str | None:
        response = self._call("GET", url, params=params)
        try:
            lines = self._lines(response, "recherche d'une transmission")
        except S2lowRefused:
            return None
        return lines[0] if lines and lines[0].isdigit() else None

    def actes_status(self, transaction_id: str) -> Status:
        """The status of an act's transaction; with the ARActe once acknowledged (parsed safely, kept raw)."""
        response = self._call("GET", f"{ACTES}/actes_transac_get_status.php", params={"transaction": transaction_id})
        lines = self._lines(response, f"état de la transaction {transaction_id}")
        try:
            code = int(lines[0])
        except (IndexError, ValueError):
            raise SaeUnavailable(f"état de la transaction {transaction_id} : code illisible") from None
        document = None
        if code == ACKNOWLEDGED:
            # The ARActe follows the two lines as S²LOW stored it (ISO-8859-1): kept as bytes, never re-encoded.
            raw = response.content.lstrip().split(b"\n", 2)
            document = raw[2].strip() if len(raw) > 2 and raw[2].strip() else None
            if document is None:
                raise SaeUnavailable(f"transaction {transaction_id} acquittée sans ARActe dans la réponse")
            parse_xml(document, "ARActe")
        return Status(code, STATUS_LABELS.get(code, f"état {code}"), document=document)

    def cancel(self, transaction_id: str) -> str:
        """Ask S²LOW to cancel a transmitted act; return the cancellation's transaction id."""
        response = self._call("POST", f"{ACTES}/actes_transac_cancel.php", data={"api": "1", "id": transaction_id})
        lines = self._lines(response, f"annulation de la transaction {transaction_id}")
        return lines[0] if lines else ""

    def classification(self) -> bytes:
        """The tenant's classification (RetourClassification XML), checked to be XML."""
        response = self._call("GET", f"{ACTES}/actes_classification_fetch.php", params={"api": "1"})
        parse_xml(response.content, "classification @ctes")
        return response.content

    def prefecture_documents(self) -> list[dict[str, Any]]:
        """The prefecture's letters not yet read: each {id, type, related_transaction_id, date}."""
        response = self._call("GET", f"{ACTES}/api/list_document_prefecture.php", params={"api": "1"})
        try:
            rows = json.loads(response.content)
        except ValueError:
            raise SaeUnavailable(f"courriers de la préfecture : JSON attendu ({excerpt(response.content)})") from None
        if not isinstance(rows, list):
            raise SaeUnavailable("courriers de la préfecture : liste attendue")
        return [row for row in rows if isinstance(row, dict)]

    def prefecture_document(self, document_id: str) -> bytes:
        """One letter of the prefecture (its @ctes XML), checked to be XML."""
        response = self._call("GET", f"{ACTES}/actes_transac_get_document.php", params={"id": document_id})
        parse_xml(response.content, "courrier de la préfecture")
        return response.content

    def reply_prefecture(self, document_id: str, reply_type: str, store: ObjectStore, key: str, filename: str) -> str:
        """Answer a letter of the prefecture with a file; return the reply's transaction id."""
        with store.open(key) as stream:
            response = self._call(
                "POST",
                f"{ACTES}/actes_transac_reponse_create.php",
                data={"api": "1", "id": document_id, "type": reply_type},
                files={"fichier": (filename, stream, "application/pdf")},
            )
        lines = self._lines(response, "réponse à la préfecture")
        return lines[0] if lines else ""

    # ------------------------------------------------------------------------------------------------
    # Hélios

    def send_helios(self, store: ObjectStore, key: str, filename: str) -> str:
        """Post a signed PES Aller; return the transaction id.

        :raises S2lowDuplicate: the file name is already known. :raises S2lowRefused: KO. :raises SaeUnavailable.
        """
        with store.open(key) as stream:
            response = self._call(
                "POST",
                f"{HELIOS}/api/helios_importer_fichier.php",
                files={"enveloppe": (filename, stream, "application/xml")},
            )
        root = parse_xml(response.content, "import Hélios")
        result, message = _text(root, "resultat"), _text(root, "message")
        if etree.QName(root).localname != "import" or result not in ("OK", "KO"):
            raise SaeUnavailable(f"import Hélios : réponse inattendue ({excerpt(response.content)})")
        if result == "KO":
            duplicate = "déjà" in message.lower() or "doublon" in message.lower()
            raise (S2lowDuplicate if duplicate else S2lowRefused)(f"PES refusé par S²LOW : {message or 'sans message'}")
        transaction = _text(root, "id")
        if not transaction.isdigit():
            raise SaeUnavailable("import Hélios : identifiant de transaction absent")
        return transaction

    def find_helios(self, filename: str) -> str | None:
        """The transaction id S²LOW holds for this PES file name, or None."""
        return self._find(f"{HELIOS}/api/find_transaction.php", {"filename": filename})

    def helios_status(self, transaction_id: str) -> Status:
        """The status of a PES transaction (4: the PES Acquit is there)."""
        response = self._call(
            "GET", f"{HELIOS}/api/helios_transac_get_status.php", params={"transaction": transaction_id}
        )
        root = parse_xml(response.content, f"état du PES {transaction_id}")
        if _text(root, "resultat") == "KO":
            raise S2lowRefused(f"état du PES {transaction_id} : {_text(root, 'message') or 'refus sans message'}")
        try:
            code = int(_text(root, "status"))
        except ValueError:
            raise SaeUnavailable(f"état du PES {transaction_id} : code illisible") from None
        return Status(code, STATUS_LABELS.get(code, f"état {code}"), message=_text(root, "message"))

    def helios_acquit(self, transaction_id: str) -> bytes:
        """The PES Acquit of a transaction (XML, checked)."""
        response = self._call("GET", f"{HELIOS}/helios_download_acquit.php", params={"id": transaction_id})
        parse_xml(response.content, "PES Acquit")
        return response.content

    def helios_retour(self, transaction_id: str) -> bytes | None:
        """The PES Retour of a transaction when the accountant has sent one, else None."""
        with self._client() as client:
            response = request(
                client, "GET", f"{HELIOS}/api/helios_get_retour.php", params={"transaction": transaction_id}
            )
        if response.status_code == 404:
            return None
        parse_xml(response.content, "PES Retour")
        return response.content

    # ------------------------------------------------------------------------------------------------

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """A TdT is not a deposit: its documents go through the « actes » and « helios » flows."""
        raise SaeRefused("le connecteur S²LOW s'utilise par les flux « actes » et « helios », pas en dépôt simple")

    def test(self) -> str:
        """Reach the platform with the configured certificate (and basic auth)."""
        response = self._call("GET", "/api/test-connexion.php")
        self._lines(response, "test de connexion")
        return "S²LOW joignable, certificat accepté"


def _text(root: etree._Element, name: str) -> str:
    found = root.find(name)
    return (found.text or "").strip() if found is not None else ""


def acquit_refusal(acquit: bytes) -> str | None:
    """The accountant's refusal in a PES Acquit (EtatAck other than 1), with its reasons; None when accepted."""
    root = parse_xml(acquit, "PES Acquit")
    states = [element.get("V", "") for element in root.iter("EtatAck")]
    if states and all(state == "1" for state in states):
        return None
    reasons = [element.get("V", "") for element in root.iter("LibelleAnoAck") if element.get("V")]
    return "PES refusé par le comptable : " + ("; ".join(reasons) or f"état {', '.join(states) or 'absent'}")


def aracte_fields(aracte: bytes) -> dict[str, str]:
    """What the flow keeps of an ARActe: the act's id, the date of receipt, the prefecture's classification date."""
    root = parse_xml(aracte, "ARActe")
    ns = "http://www.interieur.gouv.fr/ACTES#v1.1-20040216"
    if etree.QName(root).localname != "ARActe":
        raise SaeUnavailable(f"ARActe attendu, reçu {etree.QName(root).localname}")
    return {
        "id_acte": root.get(f"{{{ns}}}IDActe", ""),
        "date_reception": root.get(f"{{{ns}}}DateReception", ""),
        "classification_en_cours": root.findtext(f"{{{ns}}}ClassificationDateVersionEnCours") or "",
    }
