"""The S²LOW connector (tiers de télétransmission): @ctes to the prefecture, Hélios to the public accountant.

Protocol, as read in S²LOW's code (libriciel/s2low, public.ssl/modules) and in Pastell's S2low connector;
authentication by TLS client certificate, with an optional basic auth in front. With ``api=1`` S²LOW answers
plain text « OK\\n<value>\\n » or « KO\\n<message>\\n », the message in ISO-8859-1 (some pages echo UTF-8):

- @ctes: ``POST /modules/actes/actes_transac_submit.php`` (``api=1``, file ``enveloppe`` = the @ctes tar.gz,
  named after the ACTES convention) → ``OK\\n<count>\\n<id>…``; S²LOW refuses an act whose number is already
  known for the collectivité (« Un numéro interne d'acte entre en conflit… »). Platforms may switch the
  envelope import off (« fonctionnalité dépréciée »: ``actes_transac_create.php`` with form fields instead);
  ``GET actes_transac_get_status.php?transaction=ID`` (or ``?unique_id=IDActe``) → ``OK\\n<code>\\n`` then
  the ARActe when the code is 4, the error when it is -1; ``GET api/list_actes.php?status_id=&offset=&limit=``
  (JSON, the collectivité's transactions in one status); ``POST actes_transac_cancel.php`` (``api``, ``id``) →
  ``OK\\n<id>``; ``GET actes_classification_fetch.php?api=1`` (RetourClassification XML);
- the prefecture's documents: ``GET api/list_document_prefecture.php`` (JSON, unread ones: id, type 2 courrier
  simple / 3 demande de pièces / 4 lettre d'observations / 5 déféré, related_transaction_id, number,
  unique_id, last_status_id), ``GET actes_transac_get_document.php?id=`` (redirects to the message's tar.gz),
  ``GET api/document_prefecture_mark_as_read.php?transaction_id=`` and the reply ``POST
  actes_transac_reponse_create.php`` (``api``, ``id``, ``type_envoie`` 3 refus / 4 réponse, ``type_acte``, file
  ``acte_pdf_file``) → ``OK\\n<id>``;
- Hélios: ``POST /modules/helios/api/helios_importer_fichier.php`` (file ``enveloppe``) → XML
  ``<import><id/><resultat>OK|KO</resultat><message/></import>`` (a file already posted: « doublon détecté »);
  ``GET api/helios_transac_get_status.php?transaction=ID`` → XML ``<transaction><id/><resultat/><status/>
  <message/></transaction>``, the PES Acquit being there in status 4 (acquitté), 6 (refusé) and 8 (information
  disponible); ``GET helios_download_acquit.php?id=``; the PES Retour belong to the collectivité, not to a
  transaction: ``GET api/helios_get_list.php`` (unread ones), ``GET api/helios_get_retour.php?id=`` and
  ``GET api/helios_change_status.php?id=`` (marks it read);
- the connection: ``GET /api/test-connexion.php`` (« OK ») and ``GET /api/info-connexion.php`` (JSON: the
  ``user_info`` and ``authority_info`` of the account that answered; no SIREN in it).

What S²LOW hands back names a collectivité: the SIREN in an act's IDActe (ARActe, the prefecture's letters) and
a PES's ``EnTetePES/IdColl`` (:func:`pes_siren`); interop.flows refuses what is not the connector's collectivité's.

S²LOW has no lookup by our own key: an act is found again by its IDActe (``unique_id``) then its number in
the list of its status; a PES file cannot be looked up, but S²LOW refuses it a second time (doublon).
Answers that are not what the protocol promises (HTML page, malformed XML, 5xx, timeout) raise
:class:`SaeUnavailable` (retried); a ``KO`` raises :class:`S2lowRefused` with the platform's words. Every XML
goes through :func:`interop.connectors.sae.parse_xml` (no DTD, no entities, no network).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography import x509
from cryptography.x509.oid import NameOID
from lxml import etree

from interop.connectors.sae import SaeRefused, SaeUnavailable, excerpt, http_client, parse_xml, request
from interop.connectors.transport import download_extensions
from socle.errors import InvalidInput, message
from socle.storage import ObjectStore

ACTES = "/modules/actes"
HELIOS = "/modules/helios"
# S²LOW's @ctes statuses (ActesStatusSQL), in the flow's words (French: shown to users as is).
STATUS_LABELS: dict[int, str] = {
    -1: "erreur",
    0: "annulé",
    1: "posté",
    2: "en attente de transmission",
    3: "transmis",
    4: "acquittement reçu",
    5: "validé",
    7: "document reçu",
    8: "acquittement envoyé",
    12: "envoyé au SAE",
    13: "archivé par le SAE",
    14: "erreur lors de l'archivage",
    16: "détruit",
    17: "en attente d'être posté",
    18: "en attente d'être signé",
    19: "en attente de transmission au SAE",
    20: "erreur lors de l'envoi au SAE",
    21: "document reçu (pas d'AR)",
}
# S²LOW's Hélios statuses (HeliosStatus): their numbers mean other things than @ctes ones from 6 on.
HELIOS_LABELS: dict[int, str] = {
    -1: "erreur",
    0: "annulé",
    1: "posté",
    2: "en attente de transmission",
    3: "transmis",
    4: "acquitté",
    5: "validé",
    6: "refusé par le comptable",
    7: "en traitement",
    8: "information disponible",
    9: "envoyé au SAE",
    10: "accepté par le SAE",
    11: "refusé par le SAE",
    13: "en attente d'être signé",
    14: "en attente d'être posté",
    19: "en attente de transmission au SAE",
    20: "erreur lors de l'envoi au SAE",
    22: "détruit",
    24: "transmis sans acquittement",
}
ACKNOWLEDGED, ERROR, CANCELLED = 4, -1, 0
HELIOS_ACQUIT_STATUSES = frozenset({4, 6, 8})  # the PES Acquit is on S²LOW (ApiHeliosStatusResolver)
# After the acknowledgement an act keeps living on S²LOW (SAE, letters): these still mean « acquitté ».
ACTES_AFTER_ACK = frozenset({4, 5, 12, 13, 14, 19, 20})
MAX_REDIRECTS = 3
DOCUMENT_MAX_BYTES = 160 * 1024 * 1024
DUPLICATE_WORDS = ("déjà", "doublon", "conflit avec un acte existant", "même numéro")
# The KO of actes_transac_get_status.php for a transaction (or unique_id) it does not have; its other KOs
# (rights, authentication, module) come before it looks the act up.
UNKNOWN_TRANSACTION = "numéro de transaction invalide"


class S2lowRefused(SaeRefused):
    """S²LOW answered « KO »: the platform's own words are kept in the message."""


class S2lowDuplicate(S2lowRefused):
    """S²LOW already has this act number or PES file (a send repeated after a crash)."""


@dataclass(frozen=True)
class Status:
    """Where a transaction stands on S²LOW."""

    code: int
    label: str
    message: str = ""
    document: bytes | None = None  # the ARActe (actes) once acknowledged
    failed: bool = False  # a dead end: error or cancelled
    acquit_ready: bool = False  # Hélios: the PES Acquit can be downloaded

    @property
    def refused(self) -> bool:
        """The platform refused the transaction (error: the ministry's @ctes system, Hélios); cancelled is not."""
        return self.code == ERROR


def decode(content: bytes) -> str:
    """S²LOW's text: UTF-8 where the page echoes its own strings, ISO-8859-1 where it converts them."""
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("iso-8859-1")


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
            raise SaeUnavailable(
                message("S²LOW : adresse inconnue (%(url)s), version de la plateforme à vérifier", url=url)
            )
        return response

    # ------------------------------------------------------------------------------------------------
    # Plain-text answers: « OK\n… » or « KO\n… »

    @staticmethod
    def _lines(response: httpx.Response, what: str) -> list[str]:
        text = decode(response.content).strip()
        if text[:100].lower().startswith(("<!doctype html", "<html")):
            raise SaeUnavailable(
                message(
                    "%(what)s : S²LOW a répondu une page HTML (%(response_content)s)",
                    what=what,
                    response_content=excerpt(response.content),
                )
            )
        lines = [line.strip() for line in text.splitlines()]
        head = lines[0] if lines else ""
        if head.startswith("KO"):
            # « KO\nmessage », or « KO : message » (actes_transac_reponse_create.php called with api in the URL)
            said = " ".join([head[2:].lstrip(" :"), *lines[1:]]).strip() or "sans message"
            duplicate = any(word in said.lower() for word in DUPLICATE_WORDS)
            raise (S2lowDuplicate if duplicate else S2lowRefused)(f"{what} refusé par S²LOW : {said}")
        if head != "OK":
            raise SaeUnavailable(
                message(
                    "%(what)s : réponse illisible de S²LOW (%(response_content)s)",
                    what=what,
                    response_content=excerpt(response.content),
                )
            )
        return lines[1:]

    # ------------------------------------------------------------------------------------------------
    # @ctes

    def send_actes(self, store: ObjectStore, package_key: str, filename: str) -> str:
        """Post an @ctes tar.gz (envelope import); return the act's transaction id.

        :raises S2lowDuplicate: S²LOW already has this act number. :raises S2lowRefused: other KO (among them a
            platform where the envelope import is switched off). :raises SaeUnavailable: no usable answer.
        """
        with store.open(package_key) as stream:
            response = self._call(
                "POST",
                f"{ACTES}/actes_transac_submit.php",
                data={"api": "1"},
                files={"enveloppe": (filename, stream, "application/x-gzip")},
            )
        lines = self._lines(response, "envoi de l'acte")
        # « OK\n<number of transactions>\n<id>… »: our envelope carries one act.
        if len(lines) < 2 or not lines[0].isdigit() or not lines[1].isdigit():
            raise SaeUnavailable(
                message(
                    "envoi de l'acte : identifiant de transaction absent (%(response_content)s)",
                    response_content=excerpt(response.content),
                )
            )
        return lines[1]

    def find_actes(self, unique_id: str) -> str | None:
        """The transaction id S²LOW holds for this act (its IDActe), or None when S²LOW does not know it.

        S²LOW answers a status by ``unique_id`` but not the id: the id is then read in the list of the
        collectivité's transactions in that status, by the act's number (unique per collectivité).
        :raises SaeUnavailable: the act is known but not found in its list, or S²LOW answered another KO than
            « unknown » (rights refused, authentication failed…): that says nothing of the act (retried).
        """
        response = self._call("GET", f"{ACTES}/actes_transac_get_status.php", params={"unique_id": unique_id})
        try:
            lines = self._lines(response, "recherche de l'acte")
        except S2lowRefused as exc:
            _raise_unless_unknown(exc)
            return None  # « Numéro de transaction invalide. »: never received
        code = _code(lines, "recherche de l'acte")
        number = unique_id.split("-")[3] if unique_id.count("-") >= 4 else ""
        for offset in range(0, 1000, 100):
            rows = self.list_actes(code, offset)
            found = [str(row.get("id")) for row in rows if str(row.get("number")) == number]
            if found:
                return found[0]
            if len(rows) < 100:
                break
        raise SaeUnavailable(
            message(
                "acte %(unique_id)s connu de S²LOW (état %(code)s) mais absent de sa liste",
                unique_id=unique_id,
                code=code,
            )
        )

    def list_actes(self, status: int, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """The collectivité's act transactions in one status, newest first (id, number, subject, type…)."""
        params = {"status_id": str(status), "offset": str(offset), "limit": str(limit)}
        response = self._call("GET", f"{ACTES}/api/list_actes.php", params=params)
        try:
            body = json.loads(decode(response.content))
        except ValueError:
            raise SaeUnavailable(
                message(
                    "liste des actes : JSON attendu (%(response_content)s)", response_content=excerpt(response.content)
                )
            ) from None
        rows = body.get("transactions") if isinstance(body, dict) else None
        if not isinstance(rows, list):
            raise SaeUnavailable(message("liste des actes : « transactions » attendu"))
        return [row for row in rows if isinstance(row, dict)]

    def actes_status(self, transaction_id: str) -> Status:
        """The status of an act's transaction; with the ARActe once acknowledged (parsed safely, kept raw)."""
        response = self._call("GET", f"{ACTES}/actes_transac_get_status.php", params={"transaction": transaction_id})
        what = f"état de la transaction {transaction_id}"
        code = _code(self._lines(response, what), what)
        label = STATUS_LABELS.get(code, f"état {code}")
        rest = response.content.lstrip().split(b"\n", 2)
        tail = rest[2].strip() if len(rest) > 2 else b""
        if code == ERROR:
            return Status(code, label, message=decode(tail)[:500], failed=True)
        if code not in ACTES_AFTER_ACK:
            return Status(code, label, failed=code == CANCELLED)
        if code != ACKNOWLEDGED:
            # S²LOW joins to a status only that status' return flow: past 4 (SAE…), the ARActe has its own page.
            return Status(code, label, document=self.aracte(transaction_id))
        # The ARActe follows the two lines as S²LOW stored it (ISO-8859-1): kept as bytes, never re-encoded.
        if not tail:
            raise SaeUnavailable(
                message(
                    "transaction %(transaction_id)s acquittée sans ARActe dans la réponse",
                    transaction_id=transaction_id,
                )
            )
        parse_xml(tail, "ARActe")
        return Status(code, label, document=tail)

    def aracte(self, transaction_id: str) -> bytes:
        """The ARActe of an acknowledged act (the return flow of its status 4), checked to be XML."""
        response = self._call("GET", f"{ACTES}/actes_transac_get_ARActe.php", params={"id": transaction_id})
        parse_xml(response.content, "ARActe")
        return response.content

    def cancel(self, transaction_id: str) -> str:
        """Ask S²LOW to cancel an acknowledged act; return the cancellation's transaction id.

        :raises S2lowRefused: not acknowledged yet, or a cancellation already pending.
        """
        response = self._call("POST", f"{ACTES}/actes_transac_cancel.php", data={"api": "1", "id": transaction_id})
        lines = self._lines(response, f"annulation de la transaction {transaction_id}")
        return lines[0] if lines else ""

    def classification(self) -> bytes:
        """The tenant's classification (RetourClassification XML), checked to be XML.

        :raises S2lowRefused: S²LOW answered KO. :raises SaeUnavailable: not XML.
        """
        response = self._call("GET", f"{ACTES}/actes_classification_fetch.php", params={"api": "1"})
        if response.content.lstrip().startswith(b"KO"):
            self._lines(response, "classification @ctes")
        parse_xml(response.content, "classification @ctes")
        return response.content

    def prefecture_documents(self) -> list[dict[str, Any]]:
        """The prefecture's unread documents: each {id, type, related_transaction_id, number, unique_id,
        last_status_id} (type 2 courrier simple, 3 demande de pièces complémentaires, 4 lettre d'observations,
        5 déféré au tribunal administratif)."""
        response = self._call("GET", f"{ACTES}/api/list_document_prefecture.php")
        try:
            rows = json.loads(decode(response.content))
        except ValueError:
            raise SaeUnavailable(
                message(
                    "courriers de la préfecture : JSON attendu (%(response_content)s)",
                    response_content=excerpt(response.content),
                )
            ) from None
        if not isinstance(rows, list):
            raise SaeUnavailable(message("courriers de la préfecture : liste attendue"))
        return [row for row in rows if isinstance(row, dict)]

    def prefecture_document(self, document_id: str) -> bytes:
        """One document of the prefecture: the tar.gz of its @ctes message and files (S²LOW redirects to it)."""
        with self._client() as client:
            # A letter's tar.gz holds the prefecture's PDFs: more room than an API answer (@ctes: 150 Mo at most).
            bounds = download_extensions(DOCUMENT_MAX_BYTES, float(self.config.get("timeout") or 60))
            page = f"{ACTES}/actes_transac_get_document.php"
            response = request(client, "GET", page, params={"id": document_id}, extensions=bounds)
            for _hop in range(MAX_REDIRECTS):
                if not response.is_redirect:
                    break
                # Followed by hand, to S²LOW itself only: never another host, port or scheme.
                target = response.url.join(response.headers.get("Location", ""))
                if (target.scheme, target.host, target.port) != (
                    response.url.scheme,
                    response.url.host,
                    response.url.port,
                ):
                    raise SaeRefused(
                        message(
                            "courrier %(document_id)s de la préfecture : S²LOW redirige hors de la plateforme "
                            "(%(target)s), redirection refusée",
                            document_id=document_id,
                            target=_without_query(target),
                        )
                    )
                response = request(client, "GET", str(target), extensions=bounds)
        if response.is_redirect:
            raise SaeUnavailable(
                message("courrier %(document_id)s de la préfecture : trop de redirections", document_id=document_id)
            )
        if response.status_code == 404:
            raise SaeUnavailable(
                message("courrier %(document_id)s de la préfecture : adresse inconnue", document_id=document_id)
            )
        if not response.content.startswith(b"\x1f\x8b"):
            if response.content.lstrip().startswith(b"KO"):
                self._lines(response, f"courrier {document_id} de la préfecture")
            raise SaeUnavailable(
                message(
                    "courrier de la préfecture : archive tar.gz attendue (%(response_content)s)",
                    response_content=excerpt(response.content),
                )
            )
        return response.content

    def mark_prefecture_document_read(self, document_id: str) -> None:
        """Tell S²LOW the document was fetched: it leaves the unread list."""
        response = self._call(
            "GET", f"{ACTES}/api/document_prefecture_mark_as_read.php", params={"transaction_id": document_id}
        )
        try:
            answer = json.loads(decode(response.content))
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or answer.get("result") != "ok":
            raise SaeUnavailable(
                message(
                    "courrier %(document_id)s : marquage « lu » non confirmé (%(response_content)s)",
                    document_id=document_id,
                    response_content=excerpt(response.content),
                )
            )

    def reply_prefecture(
        self,
        document_id: str,
        reply_type: str,
        store: ObjectStore,
        key: str,
        filename: str,
        document_type: str = "99_AU",
    ) -> str:
        """Answer a document of the prefecture with a PDF; return the reply's transaction id.

        :param reply_type: ``4`` a reply, ``3`` a refusal to reply (S²LOW's ``type_envoie``).
        :param document_type: the typology code of the PDF (``type_acte``, a code of the classification).
        :raises InvalidInput: another reply type. :raises S2lowRefused: KO.
        """
        if reply_type not in ("3", "4"):
            raise InvalidInput(message("type de réponse à la préfecture : 4 (réponse) ou 3 (refus de répondre)"))
        with store.open(key) as stream:
            response = self._call(
                "POST",
                f"{ACTES}/actes_transac_reponse_create.php",
                data={"api": "1", "id": document_id, "type_envoie": reply_type, "type_acte": document_type},
                files={"acte_pdf_file": (filename, stream, "application/pdf")},
            )
        lines = self._lines(response, "réponse à la préfecture")
        if not lines or not lines[0].isdigit():
            raise SaeUnavailable(
                message(
                    "réponse à la préfecture : identifiant absent (%(response_content)s)",
                    response_content=excerpt(response.content),
                )
            )
        return lines[0]

    # ------------------------------------------------------------------------------------------------
    # Hélios

    def send_helios(self, store: ObjectStore, key: str, filename: str) -> str:
        """Post a signed PES Aller; return the transaction id.

        :raises S2lowDuplicate: the file was already posted. :raises S2lowRefused: KO. :raises SaeUnavailable.
        """
        with store.open(key) as stream:
            response = self._call(
                "POST",
                f"{HELIOS}/api/helios_importer_fichier.php",
                files={"enveloppe": (filename, stream, "application/xml")},
            )
        if response.content.lstrip().startswith(b"KO"):  # authentication and rights are answered in text
            self._lines(response, "envoi du PES")
        root = parse_xml(response.content, "import Hélios")
        result, answer = _text(root, "resultat"), _text(root, "message")
        if etree.QName(root).localname != "import" or result not in ("OK", "KO"):
            raise SaeUnavailable(
                message(
                    "import Hélios : réponse inattendue (%(response_content)s)",
                    response_content=excerpt(response.content),
                )
            )
        if result == "KO":
            duplicate = any(word in answer.lower() for word in DUPLICATE_WORDS)
            raise (S2lowDuplicate if duplicate else S2lowRefused)(f"PES refusé par S²LOW : {answer or 'sans message'}")
        transaction = _text(root, "id")
        if not transaction.isdigit():
            raise SaeUnavailable(message("import Hélios : identifiant de transaction absent"))
        return transaction

    def helios_status(self, transaction_id: str) -> Status:
        """The status of a PES transaction (4, 6 or 8: the PES Acquit is there)."""
        response = self._call(
            "GET", f"{HELIOS}/api/helios_transac_get_status.php", params={"transaction": transaction_id}
        )
        root = parse_xml(response.content, f"état du PES {transaction_id}")
        if _text(root, "resultat") == "KO":
            raise S2lowRefused(
                message(
                    "état du PES %(transaction_id)s : %(s2low_message)s",
                    transaction_id=transaction_id,
                    s2low_message=_text(root, "message") or "refus sans message",
                )
            )
        try:
            code = int(_text(root, "status"))
        except ValueError:
            raise SaeUnavailable(
                message("état du PES %(transaction_id)s : code illisible", transaction_id=transaction_id)
            ) from None
        return Status(
            code,
            HELIOS_LABELS.get(code, f"état {code}"),
            message=_text(root, "message"),
            failed=code in (ERROR, CANCELLED),
            acquit_ready=code in HELIOS_ACQUIT_STATUSES,
        )

    def helios_acquit(self, transaction_id: str) -> bytes:
        """The PES Acquit of a transaction (XML, checked)."""
        response = self._call("GET", f"{HELIOS}/helios_download_acquit.php", params={"id": transaction_id})
        parse_xml(response.content, "PES Acquit")
        return response.content

    def pes_retours(self) -> list[dict[str, str]]:
        """The collectivité's unread PES Retour: each {id, nom, date}."""
        response = self._call("GET", f"{HELIOS}/api/helios_get_list.php")
        root = parse_xml(response.content, "liste des PES Retour")
        if _text(root, "resultat") == "KO":
            raise S2lowRefused(
                message(
                    "liste des PES Retour : %(s2low_message)s",
                    s2low_message=_text(root, "message") or "refus sans message",
                )
            )
        return [
            {"id": _text(item, "id"), "nom": _text(item, "nom"), "date": _text(item, "date")}
            for item in root.iter("pes_retour")
        ]

    def pes_retour(self, retour_id: str) -> bytes:
        """One PES Retour file. :raises S2lowRefused: S²LOW answered its <get_retour> KO."""
        response = self._call("GET", f"{HELIOS}/api/helios_get_retour.php", params={"id": retour_id})
        root = parse_xml(response.content, "PES Retour")
        if etree.QName(root).localname == "get_retour" and _text(root, "resultat") == "KO":
            raise S2lowRefused(
                message(
                    "PES Retour %(retour_id)s : %(s2low_message)s",
                    retour_id=retour_id,
                    s2low_message=_text(root, "message") or "refus sans message",
                )
            )
        return response.content

    def mark_pes_retour_read(self, retour_id: str) -> None:
        """Mark a PES Retour read on S²LOW: it leaves the unread list."""
        response = self._call("GET", f"{HELIOS}/api/helios_change_status.php", params={"id": retour_id})
        root = parse_xml(response.content, "PES Retour lu")
        if _text(root, "resultat") == "KO":
            raise S2lowRefused(
                message(
                    "PES Retour %(retour_id)s : %(s2low_message)s",
                    retour_id=retour_id,
                    s2low_message=_text(root, "message") or "refus sans message",
                )
            )

    # ------------------------------------------------------------------------------------------------

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """A TdT is not a deposit: its documents go through the « actes » and « helios » flows."""
        raise SaeRefused(
            message("le connecteur S²LOW s'utilise par les flux « actes » et « helios », pas en dépôt simple")
        )

    def test(self) -> str:
        """Reach the platform as the connector will (its certificate, its basic auth) and say, in French, what was
        really checked: a client certificate presented or none configured, a login sent or not, and the account
        S²LOW says answered (``api/info-connexion.php``: the user and the collectivité of the certificate), when
        the platform tells it.

        :raises SaeRefused: the platform refused the connection (401, KO). :raises SaeUnavailable: unreachable.
        """
        response = self._call("GET", "/api/test-connexion.php")
        self._lines(response, "test de connexion")
        said = ["S²LOW joignable, réponse OK"]
        certificate = certificate_subject(str(self.config.get("client_certificate") or ""))
        if certificate is None:
            said.append(
                "aucun certificat client configuré : S²LOW a répondu sans, l'authentification par certificat n'est "
                "pas vérifiée (la plateforme réelle l'exige)"
            )
        else:
            said.append(f"certificat client « {certificate} » présenté")
        if self.config.get("username"):
            said.append(f"identifiant « {self.config['username']} » accepté (authentification basique)")
        said.append(self._account())
        return " ; ".join(said)

    def _account(self) -> str:
        """Which account answered, as ``api/info-connexion.php`` tells it (user, collectivité, département); a
        platform without that page, or an answer that is not its JSON, says nothing of it."""
        try:
            response = self._call("GET", "/api/info-connexion.php")
            body = json.loads(decode(response.content))
        except (SaeUnavailable, SaeRefused, ValueError):
            return "compte non précisé par la plateforme"
        if response.status_code != 200 or not isinstance(body, dict):
            return "compte non précisé par la plateforme"
        found_user, found_authority = body.get("user_info"), body.get("authority_info")
        user: dict[str, Any] = found_user if isinstance(found_user, dict) else {}
        authority: dict[str, Any] = found_authority if isinstance(found_authority, dict) else {}
        who = " ".join(str(user.get(name) or "").strip() for name in ("givenname", "name")).strip()
        email = str(user.get("email") or "").strip()
        person = f"{who} <{email}>" if who and email else (who or email or "utilisateur sans nom")
        collectivity = str(authority.get("name") or "").strip() or "sans nom"
        words = f"compte de {person[:200]}, collectivité « {collectivity[:200]} »"
        department = str(authority.get("department") or "").strip()
        if department:
            words += f" (département {department[:10]})"
            expected = str(self.config.get("department") or "").strip()
            if expected and department.lstrip("0") != expected.lstrip("0"):
                words += f" — attention : le connecteur indique le département {expected}"
        return words


def _raise_unless_unknown(refusal: S2lowRefused) -> None:
    """Nothing when the KO of actes_transac_get_status.php is its answer for an act it does not have (« Numéro
    de transaction invalide. »: no transaction for this unique_id).

    :raises SaeUnavailable: any other KO (« Accès refusé », « Échec de l'authentification », « Erreur
        consultation statut. »…): S²LOW may hold the act, so the caller must not send it again; retried.
    """
    if UNKNOWN_TRANSACTION in refusal.detail.lower():
        return
    raise SaeUnavailable(
        message(
            "%(detail)s — impossible de savoir si S²LOW a déjà reçu l'acte : nouvel essai plus tard",
            detail=refusal.detail,
        )
    )


def _code(lines: list[str], what: str) -> int:
    try:
        return int(lines[0])
    except (IndexError, ValueError):
        raise SaeUnavailable(message("%(what)s : code illisible", what=what)) from None


def _text(root: etree._Element, name: str) -> str:
    found = root.find(name)
    return (found.text or "").strip() if found is not None else ""


def acquit_refusal(acquit: bytes) -> str | None:
    """The accountant's refusal in a PES Acquit, with its anomalies; None when accepted.

    A PES Acquit is accepted when every ``ACQUIT/ElementACQUIT/EtatAck/@V`` is 1; the anomalies of a refusal are
    in ``ElementACQUIT/DetailPiece/Erreur`` (``NumAnoAck``, ``LibelleAnoAck``).
    """
    root = parse_xml(acquit, "PES Acquit")
    elements = list(root.iter("ElementACQUIT"))
    states = [element.find("EtatAck") for element in elements]
    values = [state.get("V", "") if state is not None else "" for state in states]
    if values and all(value == "1" for value in values):
        return None
    reasons = []
    for error in root.iter("Erreur"):
        number, label = error.find("NumAnoAck"), error.find("LibelleAnoAck")
        text = label.get("V", "") if label is not None else ""
        code = number.get("V", "") if number is not None else ""
        if text or code:
            reasons.append(f"{text} (anomalie {code})" if code else text)
    return "PES refusé par le comptable : " + ("; ".join(reasons) or f"état {', '.join(values) or 'absent'}")


def certificate_subject(pem: str) -> str | None:
    """The common name (or whole subject) of a PEM client certificate, for a message; None when there is none, and
    « illisible » when it cannot be read (the connection would have failed on it first)."""
    if not pem.strip():
        return None
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return "illisible"
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    name = str(names[0].value) if names else certificate.subject.rfc4514_string()
    return name[:200] or "sans nom"


def pes_siren(document: bytes, what: str) -> str | None:
    """The SIREN of the collectivité a PES (Acquit, Retour) names: the first nine digits of its
    ``EnTetePES/IdColl/@V`` (a SIRET, or a SIREN); None when it names none.

    :raises SaeUnavailable: not readable XML (see :func:`interop.connectors.sae.parse_xml`).
    """
    root = parse_xml(document, what)
    for element in root.iter():
        if not isinstance(element.tag, str) or etree.QName(element).localname != "IdColl":
            continue
        parent = element.getparent()
        if parent is None or etree.QName(parent).localname != "EnTetePES":
            continue
        value = (element.get("V") or element.text or "").strip()
        if not value:
            return None
        # A SIRET's first nine digits are its SIREN; anything else is kept as it is: it matches no SIREN.
        return value[:9] if value[:9].isascii() and value[:9].isdigit() else value[:20]
    return None


def aracte_fields(aracte: bytes) -> dict[str, str]:
    """What the flow keeps of an ARActe: the act's id, the date of receipt, the prefecture's classification date."""
    root = parse_xml(aracte, "ARActe")
    ns = "http://www.interieur.gouv.fr/ACTES#v1.1-20040216"
    if etree.QName(root).localname != "ARActe":
        raise SaeUnavailable(message("ARActe attendu, reçu %(localname)s", localname=etree.QName(root).localname))
    return {
        "id_acte": root.get(f"{{{ns}}}IDActe", ""),
        "date_reception": root.get(f"{{{ns}}}DateReception", ""),
        "classification_en_cours": root.findtext(f"{{{ns}}}ClassificationDateVersionEnCours") or "",
    }


def _without_query(url: httpx.URL) -> str:
    """An address for a message: scheme, host, port and path, never the query (it may carry a token)."""
    return str(url.copy_with(query=None, fragment=None, username=None, password=None))
