"""What the GED's pages share: the plan as a tree, typed fields as form inputs, form values, paging.

Everything here reads through the GED's own rules (ged.access, ged.plan, ged.types): a page never shows a
folder or a document the user could not read through the API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

from fastapi import Request
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile

from ged import access
from ged.models import DocumentType, Folder, Version
from socle.auth import Principal, Role
from socle.errors import SocleError
from socle.ui.web import address_number, t
from socle.ui.web import form_text as text
from socle.validation_messages import french_message

T = TypeVar("T")
FIELD_PREFIX = "champ_"  # typed fields of a document type, in forms: champ_<name>
PAGE_SIZE = 20
# Up to this many folders the whole plan is shown unfolded; beyond, only the way to the selected folder.
TREE_UNFOLDED_MAX = 300


def is_archivist(principal: Principal) -> bool:
    return bool({Role.ARCHIVISTE, Role.ADMIN} & principal.roles)


def is_admin(principal: Principal) -> bool:
    return Role.ADMIN in principal.roles


# ---------------------------------------------------------------------------------------------------------
# Form values


def upload(form: FormData, name: str) -> UploadFile | None:
    value = form.get(name)
    return value if isinstance(value, UploadFile) and value.filename else None


def form_values(form: FormData) -> dict[str, str]:
    """What was typed, to show the form again (files and the CSRF token left out)."""
    return {key: value for key, value in form.multi_items() if isinstance(value, str) and key != "csrf"}


def parse_date(raw: str, request: Request) -> date | None:
    """A form's date (AAAA-MM-JJ, as date inputs send it). :raises ValueError: with the French message."""
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ValueError(t(request, "Date attendue au format AAAA-MM-JJ (par exemple 2026-03-31).")) from None


def split_tags(raw: str) -> list[str]:
    """Tags typed as a comma-separated list."""
    return [tag.strip() for tag in raw.split(",") if tag.strip()]


def error_field(exc: SocleError, default: str = "form") -> str:
    """The form field an error is about: the domain names typed fields (``field``), else ``default``."""
    name = exc.extra.get("field")
    return f"{FIELD_PREFIX}{name}" if isinstance(name, str) and name else default


def validation_errors(
    request: Request,
    exc: ValidationError,
    fields: dict[str, str],
    default: str = "form",
    formats: dict[str, str] | None = None,
) -> dict[str, str]:
    """Pydantic's errors of a model built from a form, in French, tied to the form's fields.

    :param fields: model field → form field. :param formats: form field → what its expected format is.
    """
    errors: dict[str, str] = {}
    for error in exc.errors():
        location = str(error["loc"][0]) if error["loc"] else ""
        name = fields.get(location, default)
        errors.setdefault(name, _in_french(request, error, (formats or {}).get(name)))
    return errors


def _in_french(request: Request, error: Any, expected_format: str | None) -> str:
    kind, limits = error["type"], error.get("ctx") or {}
    if kind in ("missing", "string_too_short"):
        return t(request, "Ce champ est obligatoire.")
    if kind == "string_too_long":
        return t(request, "%(count)s caractères au plus.", count=limits.get("max_length", "?"))
    if kind == "too_long":
        return t(request, "%(count)s éléments au plus.", count=limits.get("max_length", "?"))
    if kind == "string_pattern_mismatch":
        return expected_format or t(request, "Format non valide.")
    if kind == "literal_error":
        return t(request, "Choisissez une valeur de la liste.")
    if kind == "value_error":  # the schemas' own checks, already in French
        return french_message(error)
    return t(request, "Valeur non valide.")


# ---------------------------------------------------------------------------------------------------------
# Paging


@dataclass(frozen=True)
class Pager:
    page: int
    pages: int
    total: int
    size: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


def pager(raw_page: str | None, total: int, size: int = PAGE_SIZE, max_offset: int | None = None) -> Pager:
    pages = max(1, -(-total // size))
    if max_offset is not None:
        pages = min(pages, max_offset // size + 1)
    page = address_number(raw_page) or 1
    return Pager(min(page, pages), pages, total, size)


def page_number(raw: str | None) -> int:
    """The page an address asks for; anything else than 1 to 99,999 is the first page."""
    number = address_number(raw)
    return number if number is not None and 0 < number < 100_000 else 1


def paged(fetch: Callable[[int, int], tuple[list[T], int]], raw_page: str | None) -> tuple[list[T], Pager]:
    """One page of a list (``fetch(limit, offset)`` → items, total); past the end, the last page."""
    wanted = page_number(raw_page)
    items, total = fetch(PAGE_SIZE, (wanted - 1) * PAGE_SIZE)
    paging = pager(str(wanted), total)
    if paging.page != wanted:
        items, total = fetch(PAGE_SIZE, paging.offset)
    return items, paging


# ---------------------------------------------------------------------------------------------------------
# The classification plan


@dataclass
class FolderNode:
    id: str
    name: str
    code: str | None
    parent_id: str | None
    path: str
    children: list[FolderNode] = field(default_factory=list)
    trail: str = ""  # « Finances › Budget »: the folder named with its ancestors, for lists and selects


def folder_tree(session: Session, principal: Principal) -> list[FolderNode]:
    """The folders the user may read, as a tree: one query for the whole plan, rights checked once.

    A folder is shown only under readable ancestors, as the API's navigation from the root would find it.
    """
    rows = session.execute(
        select(Folder.id, Folder.name, Folder.code, Folder.parent_id, Folder.path)
        .where(Folder.tenant_id == principal.tenant_id)
        .order_by(Folder.name, Folder.id)
    ).all()
    readable = access.readable_folder_ids(session, principal, [row.id for row in rows])
    nodes = {row.id: FolderNode(row.id, row.name, row.code, row.parent_id, row.path) for row in rows}
    roots: list[FolderNode] = []
    for node in nodes.values():
        if node.id not in readable:
            continue
        if node.parent_id is None:
            roots.append(node)
        elif node.parent_id in nodes:
            nodes[node.parent_id].children.append(node)
    _name_trails(roots, "")
    return roots


def _name_trails(nodes: list[FolderNode], prefix: str) -> None:
    for node in nodes:
        node.trail = f"{prefix} › {node.name}" if prefix else node.name
        _name_trails(node.children, node.trail)


def flatten(nodes: list[FolderNode]) -> list[FolderNode]:
    """Every node of the tree, in tree order."""
    found: list[FolderNode] = []
    for node in nodes:
        found.append(node)
        found.extend(flatten(node.children))
    return found


def folder_options(nodes: list[FolderNode], exclude_subtree: str | None = None) -> list[tuple[str, str]]:
    """(id, « Finances › Budget ») pairs for a select; ``exclude_subtree``: a folder and its subfolders."""
    options = []
    for node in flatten(nodes):
        if exclude_subtree and (node.id == exclude_subtree or f"/{exclude_subtree}/" in f"/{node.path}/"):
            continue
        options.append((node.id, node.trail))
    return options


def open_ids(nodes: list[FolderNode], selected: Folder | None) -> set[str] | None:
    """The folders to show unfolded: all of them (None) for a small plan, else the way to ``selected``."""
    if len(flatten(nodes)) <= TREE_UNFOLDED_MAX:
        return None
    return set(selected.path.split("/")) if selected is not None else set()


def folder_names(session: Session, tenant_id: str, ids: set[str | None]) -> dict[str, str]:
    wanted = [folder_id for folder_id in ids if folder_id]
    if not wanted:
        return {}
    rows = session.execute(
        select(Folder.id, Folder.name).where(Folder.tenant_id == tenant_id, Folder.id.in_(wanted))
    ).all()
    return {row.id: row.name for row in rows}


def with_thumbnail(session: Session, pairs: list[tuple[str, int]]) -> dict[str, str]:
    """Those documents (id, version shown) whose version has a thumbnail, with its key: lists show it."""
    if not pairs:
        return {}
    ids = [document_id for document_id, _ in pairs]
    rows = session.execute(
        select(Version.document_id, Version.number, Version.thumbnail_key).where(
            Version.document_id.in_(ids), Version.thumbnail_key.is_not(None)
        )
    ).all()
    found = {(row.document_id, row.number): row.thumbnail_key for row in rows}
    return {
        document_id: found[(document_id, number)] for document_id, number in pairs if (document_id, number) in found
    }


# ---------------------------------------------------------------------------------------------------------
# Typed fields


@dataclass(frozen=True)
class FieldInput:
    """A typed field of a document type, as a form shows it."""

    name: str
    label: str
    kind: str
    required: bool
    choices: list[str]

    @property
    def input_name(self) -> str:
        return FIELD_PREFIX + self.name

    @property
    def choice_options(self) -> list[tuple[str, str]]:
        return [(choice, choice) for choice in self.choices]


def field_inputs(document_type: DocumentType | None) -> list[FieldInput]:
    """The fields a user may fill for a type (retired ones only keep their old values)."""
    if document_type is None:
        return []
    return [
        FieldInput(f["name"], f["label"], f["kind"], bool(f.get("required")), list(f.get("choices") or []))
        for f in document_type.fields
        if not f.get("retired")
    ]


def shown_value(value: Any) -> str:
    """A stored field value as a form input holds it (booleans as the select's true/false)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_form_values(values: dict[str, Any]) -> dict[str, str]:
    return {FIELD_PREFIX + name: shown_value(value) for name, value in values.items()}


def typed_values(form: FormData, fields: list[FieldInput]) -> dict[str, Any]:
    """The typed values of a form: every field, empty ones as None (which clears them)."""
    return {f.name: (text(form, f.input_name) or None) for f in fields}


def changed_values(form: FormData, fields: list[FieldInput], current: dict[str, Any]) -> dict[str, Any]:
    """Only the typed values that differ from the current ones: an unchanged form adds no version."""
    changed: dict[str, Any] = {}
    for f in fields:
        typed = text(form, f.input_name)
        if typed != shown_value(current.get(f.name)):
            changed[f.name] = typed or None
    return changed


@dataclass(frozen=True)
class FieldShown:
    label: str
    kind: str
    value: Any
    retired: bool


def fields_shown(document_type: DocumentType | None, values: dict[str, Any]) -> list[FieldShown]:
    """A version's typed values with their labels, in the schema's order (unknown names last, as stored)."""
    shown: list[FieldShown] = []
    known = set()
    for f in document_type.fields if document_type else []:
        known.add(f["name"])
        if f["name"] in values:
            shown.append(
                FieldShown(f["label"], f["kind"], _display(f["kind"], values[f["name"]]), bool(f.get("retired")))
            )
    shown.extend(FieldShown(name, "text", value, False) for name, value in values.items() if name not in known)
    return shown


def _display(kind: str, value: Any) -> Any:
    if kind == "date" and isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return value
    return value


def type_options(types_list: list[DocumentType]) -> list[tuple[str, str]]:
    return [(document_type.code, f"{document_type.name} ({document_type.code})") for document_type in types_list]
