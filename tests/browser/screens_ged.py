"""The GED's screens for the browser run: search (empty, with results and facets), the plan, a document with
its preview, upload, metadata editing, trash, holds, and the GED's administration."""

from __future__ import annotations

import json
from typing import Any

from screens import Screen

from conftest import Kit, make_pdf, run_jobs


def _ok(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _document(kit: Kit, title: str, **data: Any) -> dict[str, Any]:
    files = {"file": (f"{title}.pdf", make_pdf(title), "application/pdf")}
    form = {"title": title, "document_type": "deliberation", "date": "2026-03-12", **data}
    return _ok(kit["agent"].post("/ged/documents", files=files, data=form))


def screens(kit: Kit) -> list[Screen]:
    fields = [
        {"name": "numero", "label": "Numéro", "kind": "integer", "required": True},
        {"name": "montant", "label": "Montant", "kind": "decimal"},
        {"name": "seance", "label": "Date de séance", "kind": "date"},
        {"name": "urgent", "label": "Urgent", "kind": "boolean"},
        {"name": "service", "label": "Service", "kind": "choice", "choices": ["RH", "Finances"]},
        {"name": "objet", "label": "Objet", "kind": "text"},
        {"name": "annexe_de", "label": "Annexe de", "kind": "reference"},
    ]
    body = {"code": "deliberation", "name": "Délibération", "fields": fields, "dua_months": 120}
    document_type = _ok(kit["admin"].post("/ged/types", json={**body, "dua_event": "seance", "final_action": "keep"}))
    finances = _ok(kit["admin"].post("/ged/plan", json={"name": "Finances", "code": "1D"}))
    budget = _ok(kit["admin"].post("/ged/plan", json={"name": "Budget", "parent_id": finances["id"]}))
    urbanisme = _ok(kit["admin"].post("/ged/plan", json={"name": "Urbanisme", "code": "2T"}))
    # Everything is filed in folders of one group, which « maire » is not in: their GED screens are empty.
    group = _ok(kit["admin"].post("/ged/groups", json={"name": "Service des finances"}))
    for username in ("agent", "archiviste"):
        _ok(kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": username}), 200)
    rights = [{"group_id": group["id"], "rights": ["read", "write", "delete", "manage"]}]
    for folder in (finances, urbanisme):
        _ok(kit["admin"].put(f"/ged/plan/{folder['id']}/permissions", json=rights), 200)
    # The group also manages the type: « agent » reaches its pages without being an administrator.
    _ok(kit["admin"].put(f"/ged/types/{document_type['id']}/permissions", json=rights), 200)

    values = {"numero": 12, "montant": "1200.50", "seance": "2026-03-12", "urgent": True, "service": "Finances"}
    typed = _document(
        kit,
        "Budget primitif 2026",
        type="deliberation",
        folder_id=budget["id"],
        tags=["budget", "finances"],
        field_values=json.dumps(values),
    )
    for number in range(3):
        _document(
            kit, f"Arrêté de voirie n° {number + 1}", document_type="arrete", tags=["voirie"], folder_id=urbanisme["id"]
        )
    trashed = _document(kit, "Brouillon à jeter", folder_id=finances["id"])
    _ok(kit["agent"].delete(f"/ged/documents/{trashed['id']}"), 200)
    hold = _ok(kit["archiviste"].post("/ged/holds", json={"name": "Contentieux 2026-14", "reason": "Recours au TA"}))
    held = _document(kit, "Permis de construire contesté", folder_id=urbanisme["id"])
    _ok(kit["archiviste"].post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [held["id"]]}), 200)
    released = _ok(kit["archiviste"].post("/ged/holds", json={"name": "Audit 2025", "reason": "Contrôle CRC"}))
    _ok(kit["archiviste"].post(f"/ged/holds/{released['id']}/release", json={"reason": "Jugement définitif"}), 200)
    run_jobs()  # previews, thumbnails and extracted text

    return [
        Screen("ged-recherche-vide", "maire", "/documents"),
        Screen("ged-plan-vide", "maire", "/plan"),
        Screen("ged-corbeille-vide", "maire", "/corbeille"),
        Screen("ged-recherche", "agent", "/documents?q=budget"),
        Screen("ged-recherche-facettes", "agent", "/documents?tag=voirie&sort=title"),
        Screen("ged-recherche-aucun-resultat", "agent", "/documents?q=introuvable"),
        Screen("ged-plan", "agent", "/plan"),
        Screen("ged-plan-dossier", "agent", f"/plan/{budget['id']}"),
        Screen("ged-document", "agent", f"/documents/{typed['id']}"),
        Screen("ged-document-archiviste", "archiviste", f"/documents/{typed['id']}"),
        Screen("ged-document-gele", "agent", f"/documents/{held['id']}"),
        Screen("ged-metadonnees", "agent", f"/documents/{typed['id']}/metadonnees"),
        Screen("ged-depot", "agent", "/documents/nouveau"),
        Screen("ged-depot-type", "agent", f"/documents/nouveau?type=deliberation&dossier={budget['id']}"),
        Screen("ged-corbeille", "agent", "/corbeille"),
        Screen("ged-corbeille-admin", "admin", "/corbeille"),
        Screen("ged-gels", "archiviste", "/gels"),
        Screen("ged-gel", "archiviste", f"/gels/{hold['id']}"),
        Screen("ged-gel-leve", "archiviste", f"/gels/{released['id']}"),
        Screen("ged-admin-types", "admin", "/admin/ged/types"),
        Screen("ged-admin-type", "admin", f"/admin/ged/types/{document_type['id']}"),
        Screen("ged-admin-champ", "admin", f"/admin/ged/types/{document_type['id']}/champs/service"),
        Screen("ged-admin-droits-type", "admin", f"/admin/ged/types/{document_type['id']}/droits"),
        Screen("ged-types-gestion", "agent", "/admin/ged/types"),
        Screen("ged-type-gestion", "agent", f"/admin/ged/types/{document_type['id']}"),
        Screen("ged-admin-groupes", "admin", "/admin/ged/groupes"),
        Screen("ged-admin-groupe", "admin", f"/admin/ged/groupes/{group['id']}"),
        Screen("ged-admin-plan", "admin", "/admin/ged/plan"),
        Screen("ged-admin-dossier", "admin", f"/admin/ged/plan/{finances['id']}"),
        Screen("ged-admin-droits-dossier", "admin", f"/admin/ged/plan/{finances['id']}/droits"),
    ]
