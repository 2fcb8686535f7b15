"""The GED's retention screens for the browser run: what reached the end of its DUA (with every final action
and a held document, filtered, and a filter that matches nothing), and eliminations in each state, the one
carried out with its proof. (An empty eliminations list would need a collectivité of its own: its page is
the same as the list's, with one sentence instead of the table.)"""

from __future__ import annotations

from typing import Any

from screens import Screen

from conftest import Kit, make_pdf


def _ok(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _type(kit: Kit, code: str, name: str, final_action: str) -> None:
    body = {"code": code, "name": name, "dua_months": 12, "dua_event": "document_date", "final_action": final_action}
    _ok(kit["admin"].post("/ged/types", json=body))


def _document(kit: Kit, title: str, type_code: str) -> str:
    files = {"file": (f"{title}.pdf", make_pdf(title), "application/pdf")}
    data = {"title": title, "document_type": type_code, "type": type_code, "date": "2019-03-12"}
    return str(_ok(kit["agent"].post("/ged/documents", files=files, data=data))["id"])


def _proposal(kit: Kit, *document_ids: str, comment: str) -> str:
    body = {"document_ids": list(document_ids), "comment": comment}
    return str(_ok(kit["archiviste"].post("/ged/eliminations", json=body))["id"])


def screens(kit: Kit) -> list[Screen]:
    _type(kit, "registre", "Registre des délibérations", "keep")
    _type(kit, "courrier", "Courrier", "sort")
    _type(kit, "bon", "Bon de commande", "destroy")
    _document(kit, "Registre des délibérations 2018", "registre")
    _document(kit, "Courrier au préfet", "courrier")
    held = _document(kit, "Bon de commande litigieux", "bon")
    hold = _ok(kit["archiviste"].post("/ged/holds", json={"name": "Contentieux Dupont", "reason": "Recours"}))
    _ok(kit["archiviste"].post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [held]}), 200)
    _document(kit, "Bon de commande 2018-041", "bon")

    proposed = _proposal(kit, _document(kit, "Bon de commande 2018-002", "bon"), comment="Tri annuel")
    refused = _proposal(kit, _document(kit, "Bon de commande 2018-003", "bon"), comment="Tri annuel")
    _ok(kit["admin"].post(f"/ged/eliminations/{refused}/refuse", json={"comment": "À garder"}), 200)
    approved = _proposal(kit, _document(kit, "Bon de commande 2018-004", "bon"), comment="Tri annuel")
    _ok(kit["admin"].post(f"/ged/eliminations/{approved}/approve", json={"comment": "Vu"}), 200)
    done = _proposal(kit, _document(kit, "Bon de commande 2018-005", "bon"), comment="Tri annuel")
    _ok(kit["admin"].post(f"/ged/eliminations/{done}/approve"), 200)
    _ok(kit["archiviste"].post(f"/ged/eliminations/{done}/execute"), 200)
    return [
        Screen("retention-dua-vide", "archiviste", "/archives/dua?sort=conserver&type=bon"),
        Screen("retention-dua", "archiviste", "/archives/dua"),
        Screen("retention-dua-a-detruire", "archiviste", "/archives/dua?sort=detruire"),
        Screen("retention-dua-admin", "admin", "/archives/dua?sort=conserver"),
        Screen("retention-eliminations", "archiviste", "/archives/eliminations"),
        Screen("retention-elimination-proposee-proposant", "archiviste", f"/archives/eliminations/{proposed}"),
        Screen("retention-elimination-a-decider", "admin", f"/archives/eliminations/{proposed}"),
        Screen("retention-elimination-refusee", "archiviste", f"/archives/eliminations/{refused}"),
        Screen("retention-elimination-approuvee", "archiviste", f"/archives/eliminations/{approved}"),
        Screen("retention-elimination-executee", "archiviste", f"/archives/eliminations/{done}"),
    ]
