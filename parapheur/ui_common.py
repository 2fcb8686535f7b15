"""What the parapheur's pages share: who may open them, the names shown for desks and typologies, form values."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from parapheur import config
from socle.auth import Principal, Role
from socle.errors import InvalidInput, message
from socle.ui.sessions import SignedIn
from socle.ui.web import form_text, require_role

PAGE_SIZE = 25  # folders per page of a list
STATUSES = ("draft", "awaiting_document", "in_progress", "completed", "rejected", "withdrawn", "error")


def parapheur_user(user: SignedIn) -> Principal:
    """The signed-in principal, if the parapheur is open to them (agents, secretariat, administrators)."""
    require_role(user, Role.AGENT, Role.SECRETARIAT)
    return user.principal


def typology_names(session: Session, tenant_id: str) -> dict[str, str]:
    """« Type / Sous-type » of each sous-type of the tenant, by sous-type id."""
    return {row.id: f"{row.type.name} / {row.name}" for row in config.list_subtypes(session, tenant_id)}


def text(form: FormData, name: str, limit: int = 2000) -> str:
    """A text field of a form, trimmed and cut to ``limit`` characters (absent: empty); see :func:`form_value`."""
    return form_value(form, name, limit)


def form_value(form: FormData, name: str, limit: int | None = None) -> str:
    """A text field of a form, trimmed (and cut to ``limit`` characters if given); absent or a file: empty.

    A NUL is refused (InvalidInput naming the field) before any query reads the value: PostgreSQL refuses it in
    any text, ids included. The engine checks the other control characters of the texts it keeps.
    """
    return refuse_nul(form_text(form, name, limit), name)


def refuse_nul(value: str, name: str) -> str:
    """``value`` unchanged, or InvalidInput naming the form field ``name`` if it holds a NUL."""
    if "\x00" in value:
        fault = message("caractère de contrôle interdit (%(code)s)", code="U+0000")
        raise InvalidInput(message("%(field)s : %(fault)s", field=name, fault=fault), field=name)
    return value


def files(form: FormData, name: str) -> list[UploadFile]:
    """The files chosen in a file input (a browser sends an empty part when none is chosen)."""
    return [item for item in form.getlist(name) if isinstance(item, UploadFile) and item.filename]


def kept(form: FormData) -> dict[str, Any]:
    """What the user typed, to show again with the errors (files cannot be shown again by a browser)."""
    return {key: value for key, value in form.items() if isinstance(value, str) and key != "csrf"}
