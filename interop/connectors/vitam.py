"""The Vitam connector: ingest-external, operation follow-up, ArchiveTransferReply.

Protocol (Vitam's external API, as its clients use it):

- ``POST /ingest-external/v1/ingests`` with headers X-Tenant-Id, X-Context-Id (the ingest workflow), X-Action
  (RESUME) and the SIP zip as the body → ``202`` and the operation id in ``X-Request-Id``;
- ``HEAD /admin-external/v1/operations/{id}`` → ``X-Global-Execution-State`` (RUNNING, PAUSE, COMPLETED) and
  ``X-Global-Execution-Status`` (STARTED, OK, WARNING, KO, FATAL);
- ``GET /ingest-external/v1/ingests/{id}/archivetransferreply`` → the SEDA ArchiveTransferReply;
- ``GET /access-external/v1/logbookoperations`` (sent as POST with ``X-Http-Method-Override: GET``) with a DSL
  query on ``obIdIn``, the SIP's MessageIdentifier: finds an ingest already received, so that a send
  interrupted before its answer was recorded is not made twice.

Vitam authenticates the application by its TLS client certificate.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from interop.connectors.sae import (
    FollowResult,
    SaeRefused,
    SaeUnavailable,
    http_client,
    parse_xml,
    read_sip,
    request,
    sip_stream,
)
from socle.errors import message
from socle.storage import ObjectStore

INGEST = "/ingest-external/v1/ingests"
OPERATION = "/admin-external/v1/operations/{id}"
REPLY = "/ingest-external/v1/ingests/{id}/archivetransferreply"
LOGBOOK = "/access-external/v1/logbookoperations"
STATUS = "/ingest-external/v1/status"
FINISHED_STATES = ("COMPLETED",)


class VitamConnector:
    """Sends SIPs to a Vitam tenant and follows their ingest operations."""

    kind = "vitam"

    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name, self.config, self.secrets = name, config, secrets

    def _client(self) -> Any:
        headers = {"X-Tenant-Id": str(self.config["tenant"])}
        if self.config.get("application_id"):
            headers["X-Application-Id"] = str(self.config["application_id"])
        return http_client(self.config, self.secrets, headers)

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """Send the SIP; return the receipt with the operation id (``X-Request-Id``).

        :raises SaeUnavailable: the platform did not answer as expected (retried).
        :raises SaeRefused: the platform refused the package.
        """
        sip = read_sip(store, object_key)
        with self._client() as client:
            response = request(
                client,
                "POST",
                INGEST,
                content=sip_stream(store, object_key),
                headers={
                    "X-Context-Id": str(self.config.get("context_id") or "DEFAULT_WORKFLOW"),
                    "X-Action": str(self.config.get("action") or "RESUME"),
                    "Content-Type": "application/octet-stream",
                },
            )
            if response.status_code == 409:  # the platform already has this MessageIdentifier: find its operation
                found = self._operation_of(client, sip.message_identifier)
                if found is None:
                    raise SaeRefused(
                        message(
                            "Vitam signale un doublon de %(sip_message_identifier)s sans opération retrouvée",
                            sip_message_identifier=sip.message_identifier,
                        )
                    )
                return self._receipt(found, sip.message_identifier, object_key, size, recovered=True)
            operation = response.headers.get("X-Request-Id")
            if response.status_code != 202 or not operation:
                raise SaeUnavailable(
                    message(
                        "Vitam : réponse inattendue à l'envoi (HTTP %(response_status_code)s, sans X-Request-Id)",
                        response_status_code=response.status_code,
                    )
                )
        return self._receipt(operation, sip.message_identifier, object_key, size)

    def find_sent(self, store: ObjectStore, object_key: str, size: int) -> dict[str, Any] | None:
        """After an interrupted send: the receipt of the ingest Vitam already has for this SIP, or None."""
        sip = read_sip(store, object_key)
        with self._client() as client:
            operation = self._operation_of(client, sip.message_identifier)
        if operation is None:
            return None
        return self._receipt(operation, sip.message_identifier, object_key, size, recovered=True)

    def _operation_of(self, client: Any, message_identifier: str) -> str | None:
        query = {"$query": {"$and": [{"$eq": {"obIdIn": message_identifier}}, {"$eq": {"evTypeProc": "INGEST"}}]}}
        response = request(client, "POST", LOGBOOK, json=query, headers={"X-Http-Method-Override": "GET"})
        if response.status_code == 404:
            return None
        try:
            results = response.json().get("$results") or []
        except ValueError:
            raise SaeUnavailable(
                message("Vitam : réponse du journal des opérations illisible (JSON attendu)")
            ) from None
        operations = [str(row.get("evIdProc") or row.get("evId")) for row in results if isinstance(row, dict)]
        return operations[0] if operations else None

    def _receipt(
        self, operation: str, message_identifier: str, object_key: str, size: int, *, recovered: bool = False
    ) -> dict[str, Any]:
        receipt: dict[str, Any] = {
            "sae": "vitam",
            "connector": self.name,
            "operation_id": operation,
            "message_identifier": message_identifier,
            "sha256": object_key,
            "size": size,
            "sent_at": datetime.now(UTC).isoformat(),
        }
        if recovered:
            receipt["recovered"] = True  # found on the platform after an interrupted send: not sent again
        return receipt

    def follow(self, receipt: dict[str, Any]) -> FollowResult:
        """Ask where the ingest operation stands; once completed, fetch its ArchiveTransferReply.

        :raises SaeUnavailable: no answer, or an answer that is not what Vitam sends (retried by the policy).
        """
        operation = str(receipt["operation_id"])
        with self._client() as client:
            head = request(client, "HEAD", OPERATION.format(id=operation))
            if head.status_code == 404:
                raise SaeUnavailable(
                    message("Vitam ne connaît pas (encore) l'opération %(operation)s", operation=operation)
                )
            state = head.headers.get("X-Global-Execution-State", "")
            status = head.headers.get("X-Global-Execution-Status", "")
            details = {"state": state, "status": status}
            if state not in FINISHED_STATES:
                where = f"{state or 'inconnu'}/{status or 'inconnu'}"
                return FollowResult(finished=False, state=where, details=details)
            response = request(client, "GET", REPLY.format(id=operation), headers={"Accept": "application/xml"})
            if response.status_code == 404:
                return FollowResult(finished=False, state="réponse pas encore disponible", details=details)
        parse_xml(response.content, "ArchiveTransferReply de Vitam")  # checked here; the archive service reads it
        return FollowResult(finished=True, state=f"{state}/{status}", reply=response.content, details=details)

    def test(self) -> str:
        """Reach the platform with the configured certificate and tenant."""
        with self._client() as client:
            response = request(client, "GET", STATUS)
        return f"Vitam joignable (HTTP {response.status_code}, tenant {self.config['tenant']})"
