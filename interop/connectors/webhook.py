"""Signed webhooks: an event POSTed as JSON, signed with HMAC-SHA256 over « timestamp.body ».

Headers of each request::

    X-Socle-Event: document.delivered
    X-Socle-Event-Id: evt_3f2a…            (the same for every retry of the same event)
    X-Socle-Signature: t=1764560000,v1=5d0c…   (hex HMAC-SHA256 of b"1764560000." + body)

The receiver recomputes the signature with the shared secret, refuses a timestamp outside its tolerance
window (5 minutes by default) and an event id it has already accepted within that window: a captured request
cannot be replayed. The recipe, with a function to copy, is in docs/interop.md.

A 2xx answer is a success. A 5xx, a timeout or a network failure raises ServiceUnavailable: the delivery job is
retried (with the same event id, so the receiver recognises a duplicate). A 4xx is a refusal: not retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from interop.connectors.mail import template_values
from interop.connectors.sae import excerpt
from interop.connectors.transport import BoundedTransport
from interop.connectors.webdav import http_failure
from socle.errors import Conflict, ServiceUnavailable, message
from socle.storage import ObjectStore

SIGNATURE_HEADER = "X-Socle-Signature"
EVENT_ID_HEADER = "X-Socle-Event-Id"
EVENT_TYPE_HEADER = "X-Socle-Event"
DEFAULT_TOLERANCE = 300  # seconds


class InvalidSignature(ValueError):
    """A webhook request whose signature, timestamp or format is not acceptable."""


def signature_header(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-Socle-Signature`` value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(
    secret: str, header: str, body: bytes, *, tolerance: int = DEFAULT_TOLERANCE, now: float | None = None
) -> int:
    """Check a received ``X-Socle-Signature``; return its timestamp (the receiver also checks the event id).

    :raises InvalidSignature: malformed header, timestamp outside the window, or no matching signature.
    """
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        raise InvalidSignature("en-tête de signature mal formé (t= manquant)") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidSignature("horodatage hors de la fenêtre de tolérance (requête rejouée ?)")
    expected = signature_header(secret, body, timestamp).split("v1=", 1)[1]
    # Several v1= values are allowed (a secret being rotated); each is compared in constant time.
    if not any(hmac.compare_digest(expected, given) for given in fields.get("v1", [])):
        raise InvalidSignature("signature invalide")
    return timestamp


def event_id(connector: str, object_key: str, event: str) -> str:
    """A stable id for the event about ``object_key``: retries carry the same one."""
    return "evt_" + hashlib.sha256(f"{connector}\n{event}\n{object_key}".encode()).hexdigest()[:32]


class WebhookConnector:
    """Posts signed events; ``config`` as :class:`interop.schemas.WebhookConfig`, ``signing_secret`` decrypted."""

    def __init__(self, name: str, config: dict[str, Any], secrets: dict[str, str]) -> None:
        self.name, self.config = name, config
        self.secret = secrets.get("signing_secret", "")

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """Post the event announcing the document; return the receipt (event id, status of the answer).

        :raises ServiceUnavailable: 5xx, timeout, network failure (the job is retried).
        :raises Conflict: a 4xx answer (the receiver refused: not retried).
        """
        event = str(self.config.get("event") or "document.delivered")
        values = template_values(self.name, filename, size, object_key, self.config.get("link_url"))
        data: dict[str, Any] = {"filename": values["filename"], "size": size, "sha256": object_key}
        if values["link"]:
            data["link"] = values["link"]
        identifier = event_id(self.name, object_key, event)
        response = self._post(identifier, event, data)
        return {
            "connector": self.name,
            "event_id": identifier,
            "event": event,
            "status": response.status_code,
            "sha256": object_key,
            "sent_at": datetime.now(UTC).isoformat(),
        }

    def test(self) -> str:
        """Post a signed « ping » event; the receiver must answer 2xx."""
        response = self._post("evt_ping_" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:16], "ping", {})
        return f"le destinataire a accepté l'événement de test (HTTP {response.status_code})"

    def _post(self, identifier: str, event: str, data: dict[str, Any]) -> httpx.Response:
        body = json.dumps(
            {"id": identifier, "type": event, "created_at": datetime.now(UTC).isoformat(), "data": data},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        url = str(self.config["url"])
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "socle-webhook/1",
            EVENT_TYPE_HEADER: event,
            EVENT_ID_HEADER: identifier,
            # Signed at the moment of sending: a retry gets a fresh timestamp, the same event id.
            SIGNATURE_HEADER: signature_header(self.secret, body, int(time.time())),
        }
        context = ssl.create_default_context(cafile=self.config.get("ca_file") or None)
        timeout = httpx.Timeout(float(self.config.get("timeout") or 15))
        try:
            transport = BoundedTransport(verify=context)  # bounded answers, no link-local address
            with httpx.Client(transport=transport, timeout=timeout, follow_redirects=False) as client:
                response = client.post(url, content=body, headers=headers)
        except httpx.TransportError as exc:
            raise http_failure(exc, f"destinataire du webhook {url}") from None
        said = excerpt(response.content)
        if response.status_code >= 500:
            raise ServiceUnavailable(
                message(
                    "erreur %(response_status_code)s du destinataire du webhook (%(url)s) : %(said)s",
                    response_status_code=response.status_code,
                    url=url,
                    said=said,
                )
            )
        if not 200 <= response.status_code < 300:
            raise Conflict(
                message(
                    "refus %(response_status_code)s du destinataire du webhook (%(url)s) : %(said)s",
                    response_status_code=response.status_code,
                    url=url,
                    said=said,
                )
            )
        return response
