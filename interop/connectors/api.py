"""The interface every connector kind implements."""

from __future__ import annotations

from typing import Any, Protocol

from socle.storage import ObjectStore


class Connector(Protocol):
    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        """Send one stored object; return the receipt. Sending the same object again must not send it twice."""

    def test(self) -> str:
        """Check that the connector can work (reachable, writable…); return a message for the operator."""
