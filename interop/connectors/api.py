"""The interface every connector kind implements."""

from __future__ import annotations

from typing import Any, Protocol

from interop.connectors.sae import FollowResult
from socle.storage import ObjectStore


class Connector(Protocol):
    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """Send one stored object; return the receipt. Sending the same object again must not send it twice."""

    def test(self) -> str:
        """Check that the connector can work (reachable, writable…); return a message for the operator."""


class SaeConnector(Connector, Protocol):
    """An archival system (Vitam, As@lae): a send starts an operation that is followed until its reply."""

    kind: str

    def find_sent(self, store: ObjectStore, object_key: str, size: int) -> dict[str, Any] | None:
        """After an interrupted send: the receipt if the platform already has this SIP, else None."""

    def follow(self, receipt: dict[str, Any]) -> FollowResult:
        """Where the operation of ``receipt`` stands, with the SEDA messages the platform has for it."""
