"""One root exception for the whole kit, mapped to RFC 9457 problem details by the web layer.

Domain code raises these (never an HTTP framework exception); the API turns them into
``application/problem+json`` and the CLI into a plain message. ``detail`` is written for the user, in French.

A detail made with ``message("dossier %(folder_id)s introuvable", folder_id=x)`` is that French text (a ``str``),
and also keeps its template and values: the web interface translates the template through the English
catalogue (``errors.po``, extracted from these calls), then puts the values back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Message(str):
    """A French message, formatted, that remembers its template and values for the interface's translation."""

    template: str
    values: dict[str, Any]

    def __new__(cls, template: str, values: Mapping[str, Any] | None = None) -> Message:
        # Without values the template is the text itself (no "%%" escaping), as gettext's python-format does.
        self = super().__new__(cls, template % values if values else template)
        self.template = template
        self.values = dict(values or {})
        return self

    def __reduce__(self) -> tuple[type[Message], tuple[str, dict[str, Any]]]:
        return Message, (self.template, self.values)

    def record(self) -> dict[str, Any]:
        """The message as JSON can keep it (stored with what it explains, translated when shown)."""
        values = {name: {"message": v.record()} if isinstance(v, Message) else v for name, v in self.values.items()}
        return {"template": self.template, "values": values}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Message:
        values = {
            name: cls.from_record(v["message"]) if isinstance(v, dict) and "message" in v else v
            for name, v in record.get("values", {}).items()
        }
        return cls(str(record["template"]), values)


def message(template: str, /, **values: Any) -> Message:
    """The French ``template % values``, translatable later: the one way to write a detail a user may read."""
    return Message(template, values)


class SocleError(Exception):
    """Root of every expected error. ``status`` is the HTTP status the API answers with."""

    status: int = 400
    title: str = message("Requête invalide")
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
    title = message("Données invalides")
    slug = "invalid-input"


class Unauthenticated(SocleError):
    status = 401
    title = message("Authentification requise")
    slug = "unauthenticated"


class Forbidden(SocleError):
    status = 403
    title = message("Action non autorisée")
    slug = "forbidden"


class NotFound(SocleError):
    status = 404
    title = message("Introuvable")
    slug = "not-found"


class Conflict(SocleError):
    status = 409
    title = message("Conflit")
    slug = "conflict"


class PayloadTooLarge(SocleError):
    status = 413
    title = message("Fichier trop volumineux")
    slug = "payload-too-large"


class UnsupportedMediaType(SocleError):
    status = 415
    title = message("Type de fichier non accepté")
    slug = "unsupported-media-type"


class DigestMismatch(SocleError):
    status = 422
    title = message("Empreinte incorrecte")
    slug = "digest-mismatch"


class ServiceUnavailable(SocleError):
    status = 503
    title = message("Service indisponible")
    slug = "unavailable"


class SettingsError(SocleError):
    """A wrong setting: the program stops at start with this message."""

    status = 500
    title = message("Configuration invalide")
    slug = "settings"
