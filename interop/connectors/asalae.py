"""The As@lae connector: the REST « sedaMessages » interface.

Protocol (as As@lae's clients use it):

- ``POST /sedaMessages``, multipart: ``seda_message`` = the manifest (the ArchiveTransfer), ``attachments`` = the
  archive (the SIP zip);
- the replies, once As@lae has them, at
  ``/sedaMessages/sequence:ArchiveTransfer/message:{Acknowledgement|ArchiveTransferReply}/
  originOrganizationIdentification:{org}/originMessageIdentifier:{id}`` (404 until then).

The Acknowledgement URL also answers « does As@lae already have this transfer? » before a send is made again.
Authentication: HTTP basic (user + password) or a bearer token; optionally a TLS client certificate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from interop.connectors.sae import (
    FollowResult,
    SaeRefused,
    SaeUnavailable,
    SipInfo,
    excerpt,
    http_client,
    parse_xml,
    read_sip,
    request,
)
from socle.storage import ObjectStore

SEND = "/sedaMessages"
REPLY = (
    "/sedaMessages/sequence:ArchiveTransfer/message:{message}/"
    "originOrganizationIdentification:{org}/originMessageIdentifier:{id}"
)
ACKNOWLEDGEMENT, TRANSFER_REPLY = "Acknowledgement", "ArchiveTransferReply"
PROBE_IDENTIFIER = "socle-test-de-connexion"


def reply_path(message: str, organization: str, message_identifier: str) -> str:
    return REPLY.format(message=message, org=quote(organization, safe=""), id=quote(message_identifier, safe=""))


class AsalaeConnector:
    """Sends SIPs to As@lae and fetches its Acknowledgement and ArchiveTransferReply."""

    kind = "asalae"

    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name, self.config, self.secrets = name, config, secrets

    def _client(self) -> Any:
        headers: dict[str, str] = {}
        auth: tuple[str, str] | None = None
        if self.secrets.get("token"):
            headers["Authorization"] = f"Bearer {self.secrets['token']}"
        elif self.config.get("username"):
            auth = (str(self.config["username"]), self.secrets.get("password", ""))
        return http_client(self.config, self.secrets, headers, auth)

    def _organization(self, sip: SipInfo) -> str:
        # The transferring agency's identifier, unless the connector names the one As@lae knows it by.
        organization = self.config.get("organization") or sip.transferring_agency
        if not organization:
            raise SaeRefused("As@lae : service versant inconnu (ni dans le connecteur, ni dans le bordereau)")
        return str(organization)

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """Send the manifest and the archive; return the receipt (the transfer's identifiers).

        :raises SaeUnavailable: the platform did not answer as expected (retried).
        :raises SaeRefused: the platform refused the transfer.
        """
        sip = read_sip(store, object_key)
        organization = self._organization(sip)
        with self._client() as client, store.open(object_key) as archive:
            response = request(
                client,
                "POST",
                SEND,
                files={
                    "seda_message": ("manifest.xml", sip.manifest, "application/xml"),
                    "attachments": (filename, archive, "application/zip"),
                },
            )
            if response.status_code == 409:  # already received: the Acknowledgement tells which transfer it is
                if not self._has(client, organization, sip.message_identifier):
                    raise SaeRefused(f"As@lae signale un doublon de {sip.message_identifier} sans accusé retrouvé")
                return self._receipt(sip, organization, None, object_key, size, recovered=True)
            transfer = _transfer_id(response.content)
            # A 200 that is not As@lae's answer (an HTML page from a proxy) proves nothing: the Acknowledgement does.
            if response.status_code not in (200, 201, 202) or (
                transfer is None and not self._has(client, organization, sip.message_identifier)
            ):
                raise SaeUnavailable(
                    f"As@lae : réponse inattendue à l'envoi (HTTP {response.status_code}) : {excerpt(response.content)}"
                )
        return self._receipt(sip, organization, transfer, object_key, size)

    def find_sent(self, store: ObjectStore, object_key: str, size: int) -> dict[str, Any] | None:
        """After an interrupted send: the receipt if As@lae already acknowledged this transfer, else None."""
        sip = read_sip(store, object_key)
        organization = self._organization(sip)
        with self._client() as client:
            if not self._has(client, organization, sip.message_identifier):
                return None
        return self._receipt(sip, organization, None, object_key, size, recovered=True)

    def _has(self, client: Any, organization: str, message_identifier: str) -> bool:
        response = request(client, "GET", reply_path(ACKNOWLEDGEMENT, organization, message_identifier))
        if response.status_code == 404:
            return False
        parse_xml(response.content, "Acknowledgement d'As@lae")
        return True

    def _receipt(
        self,
        sip: SipInfo,
        organization: str,
        transfer: str | None,
        object_key: str,
        size: int,
        *,
        recovered: bool = False,
    ) -> dict[str, Any]:
        receipt: dict[str, Any] = {
            "sae": "asalae",
            "connector": self.name,
            # As@lae files replies by the sender's MessageIdentifier: it is the operation's identifier here.
            "operation_id": transfer or sip.message_identifier,
            "message_identifier": sip.message_identifier,
            "organization": organization,
            "sha256": object_key,
            "size": size,
            "sent_at": datetime.now(UTC).isoformat(),
        }
        if recovered:
            receipt["recovered"] = True
        return receipt

    def follow(self, receipt: dict[str, Any]) -> FollowResult:
        """Fetch the Acknowledgement and the ArchiveTransferReply, whichever As@lae has already.

        :raises SaeUnavailable: no answer, or an answer that is not XML (retried by the policy).
        """
        organization, identifier = str(receipt["organization"]), str(receipt["message_identifier"])
        found: dict[str, bytes] = {}
        with self._client() as client:
            for message in (ACKNOWLEDGEMENT, TRANSFER_REPLY):
                response = request(client, "GET", reply_path(message, organization, identifier))
                if response.status_code == 200:
                    parse_xml(response.content, f"{message} d'As@lae")
                    found[message] = response.content
        reply = found.get(TRANSFER_REPLY)
        state = "réponse reçue" if reply else "accusé reçu" if ACKNOWLEDGEMENT in found else "en attente"
        acknowledgement = found.get(ACKNOWLEDGEMENT)
        return FollowResult(finished=reply is not None, state=state, acknowledgement=acknowledgement, reply=reply)

    def test(self) -> str:
        """Reach the platform and check the credentials: an unknown transfer's reply URL must answer 404."""
        with self._client() as client:
            response = request(client, "GET", reply_path(ACKNOWLEDGEMENT, "socle", PROBE_IDENTIFIER))
        if response.status_code not in (200, 404):
            raise SaeUnavailable(f"As@lae : réponse inattendue (HTTP {response.status_code})")
        return "As@lae joignable, identifiants acceptés"


def _transfer_id(content: bytes) -> str | None:
    """As@lae's own id of the transfer, when its answer gives one (JSON ``id``); the receipt works without it."""
    import json

    try:
        value = json.loads(content or b"null")
    except ValueError:
        return None
    if isinstance(value, dict) and value.get("id") is not None:
        return str(value["id"])
    return None
