"""Test helpers for the parapheur's workflow: desks, typologies and folders set up through the real API."""

from __future__ import annotations

import json
from typing import Any

from conftest import Kit, make_pdf, run_jobs, upload_document


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def desk(kit: Kit, name: str, members: list[str], stamp_role: str | None = None) -> str:
    """A desk created by the admin; returns its id."""
    body = {"name": name, "members": members, "stamp_role": stamp_role}
    return str(ok(kit["admin"].post("/parapheur/desks", json=body), 201)["id"])


def typology(
    kit: Kit,
    circuit: list[dict[str, Any]],
    *,
    signature_format: str = "pades",
    type_name: str | None = None,
    name: str = "Sous-type",
    **fields: Any,
) -> str:
    """A type (with its format) and one sous-type with ``circuit``; returns the sous-type's id."""
    type_body = {"name": type_name or f"Type {name}", "signature_format": signature_format}
    type_id = ok(kit["admin"].post("/parapheur/types", json=type_body), 201)["id"]
    body = {"name": name, "circuit": circuit, **fields}
    return str(ok(kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json=body), 201)["id"])


class Standard:
    """The usual set-up: « Secrétariat » (agent) visas, then « Maire » (maire) signs."""

    def __init__(self, kit: Kit, **subtype_fields: Any) -> None:
        self.kit = kit
        self.secretariat = desk(kit, "Secrétariat", ["agent"], "Secrétaire de mairie")
        self.maire = desk(kit, "Maire", ["maire"], "Maire")
        self.visa_then_sign = typology(
            kit,
            [{"kind": "visa", "desk_ids": [self.secretariat]}, {"kind": "signature", "desk_ids": [self.maire]}],
            name="Délibération",
            **subtype_fields,
        )
        self.sign_only = typology(
            kit, [{"kind": "signature", "desk_ids": [self.maire]}], name="Arrêté", type_name="Arrêtés"
        )


def upload_folder(
    kit: Kit,
    subtype_id: str,
    files: list[tuple[str, bytes, str]] | None = None,
    *,
    user: str = "agent",
    title: str = "Arrêté du maire",
    annexes: list[tuple[str, bytes, str]] | None = None,
    send: bool = True,
    **form: Any,
) -> Any:
    """POST /folders/upload (the raw response): ``files`` as (name, bytes, media type), main documents."""
    parts = [("files", item) for item in files or [("acte.pdf", make_pdf(title), "application/pdf")]]
    parts += [("annexes", item) for item in annexes or []]
    data = {"subtype_id": subtype_id, "title": title, "send": str(send).lower()}
    data.update({key: value if isinstance(value, str) else json.dumps(value) for key, value in form.items()})
    return kit[user].post("/parapheur/folders/upload", files=parts, data=data)


def sent_folder(kit: Kit, subtype_id: str, **kwargs: Any) -> dict[str, Any]:
    """An uploaded folder, sent on its circuit."""
    folder: dict[str, Any] = ok(upload_folder(kit, subtype_id, **kwargs), 201)
    assert folder["status"] == "in_progress", folder
    return folder


def ged_folder(kit: Kit, subtype_id: str, content: bytes, *, send: bool = True) -> tuple[str, str]:
    """A GED document and its folder, the document received (then in progress if sent): (document, folder)."""
    document = upload_document(kit["agent"], content)
    body = {"subtype_id": subtype_id, "title": "Délibération n° 7", "ged_document_id": document["id"], "send": send}
    folder = ok(kit["agent"].post("/parapheur/folders", json=body), 202)
    assert folder["status"] == "awaiting_document"
    run_jobs()
    return document["id"], folder["id"]


def act(kit: Kit, user: str, folder_id: str, action: str, body: dict[str, Any] | None = None) -> Any:
    return kit[user].post(f"/parapheur/folders/{folder_id}/{action}", json=body or {})


def folder_of(kit: Kit, folder_id: str, user: str = "agent") -> dict[str, Any]:
    result: dict[str, Any] = ok(kit[user].get(f"/parapheur/folders/{folder_id}"))
    return result


def filing_into(kit: Kit, subtype_id: str, name: str = "Actes signés") -> str:
    """A folder of the GED's plan (created by the admin) that the sous-type files its signed documents in;
    returns the folder's id."""
    folder = kit["admin"].post("/ged/plan", json={"name": name, "parent_id": None})
    assert folder.status_code == 201, folder.text
    changed = kit["admin"].patch(f"/parapheur/subtypes/{subtype_id}", json={"ged_folder": name})
    assert changed.status_code == 200, changed.text
    return str(folder.json()["id"])
