"""Helpers shared by the GA tests (types, plan, rights, trash, retention)."""

from __future__ import annotations

from typing import Any

from conftest import Kit, make_pdf


def make_type(kit: Kit, code: str = "deliberation", **body: Any) -> dict[str, Any]:
    payload = {"code": code, "name": code.capitalize(), **body}
    response = kit["admin"].post("/ged/types", json=payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


def make_folder(kit: Kit, name: str, parent_id: str | None = None, user: str = "admin") -> dict[str, Any]:
    response = kit[user].post("/ged/plan", json={"name": name, "parent_id": parent_id})
    assert response.status_code == 201, response.text
    return dict(response.json())


def post_document(kit: Kit, user: str = "agent", text: str = "acte", **data: Any) -> Any:
    form = {"title": data.pop("title", "Acte"), **data}
    return kit[user].post("/ged/documents", files={"file": ("acte.pdf", make_pdf(text), "application/pdf")}, data=form)


def new_document(kit: Kit, user: str = "agent", text: str = "acte", **data: Any) -> dict[str, Any]:
    data.setdefault("document_type", "arrete")
    response = post_document(kit, user, text, **data)
    assert response.status_code == 201, response.text
    return dict(response.json())
