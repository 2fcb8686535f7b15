"""One root exception for the whole kit, mapped to RFC 9457 problem details by the web layer.

Domain code raises these (never an HTTP framework exception); the API turns them into
``application/problem+json`` and the CLI into a plain message. ``detail`` is written for the user, in French.
"""

from __future__ import annotations

from typing import Any


class SocleError(Exception):
    """Root of every expected error. ``status`` is the HTTP status the API answers with."""

    status: int = 400
    title: str = "Requête invalide"
    slug: str = "bad-request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:socle:problem:{self.slug}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        body.update(self.extra)
        return body


class InvalidInput(SocleError):
    status = 422
    title = "Données invalides"
    slug = "invalid-input"


class Unauthenticated(SocleError):
    status = 401
    title = "Authentification requise"
    slug = "unauthenticated"


class Forbidden(SocleError):
    status = 403
    title = "Action non autorisée"
    slug = "forbidden"


class NotFound(SocleError):
    status = 404
    title = "Introuvable"
    slug = "not-found"


class Conflict(SocleError):
    status = 409
    title = "Conflit"
    slug = "conflict"


class PayloadTooLarge(SocleError):
    status = 413
    title = "Fichier trop volumineux"
    slug = "payload-too-large"


class UnsupportedMediaType(SocleError):
    status = 415
    title = "Type de fichier non accepté"
    slug = "unsupported-media-type"


class DigestMismatch(SocleError):
    status = 422
    title = "Empreinte incorrecte"
    slug = "digest-mismatch"


class ServiceUnavailable(SocleError):
    status = 503
    title = "Service indisponible"
    slug = "unavailable"


class SettingsError(SocleError):
    """A wrong setting: the program stops at start with this message."""

    status = 500
    title = "Configuration invalide"
    slug = "settings"
