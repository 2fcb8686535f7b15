"""The administration screens for the browser run: kernel (collectivité, users), parapheur, interop.

Data is prepared through the kit's API clients, as an administrator would have; names are chosen so as not to
meet the other services' screens if they share the kit (an existing desk or connector is reused).
"""

from __future__ import annotations

import io
from typing import Any

from screens import Screen
from sqlalchemy import select

from socle.db import new_session, transaction
from socle.models import User
from socle.storage import get_store
from socle.storage.ownership import record_held

from conftest import Kit, make_pdf, run_jobs


def _ok(response: Any, *statuses: int) -> Any:
    assert response.status_code in statuses, response.text
    return response.json() if response.content else None


def _desk(kit: Kit, name: str, members: list[str]) -> str:
    for desk in _ok(kit["admin"].get("/parapheur/desks"), 200):
        if desk["name"] == name:
            return str(desk["id"])
    body = {"name": name, "members": members, "stamp_role": name}
    return str(_ok(kit["admin"].post("/parapheur/desks", json=body), 201)["id"])


def _connector(kit: Kit, name: str, kind: str, config: dict[str, Any]) -> None:
    if kit["admin"].get(f"/interop/connectors/{name}").status_code == 404:
        _ok(kit["admin"].post("/interop/connectors", json={"name": name, "kind": kind, "config": config}), 201)


def _flow_in_error(kit: Kit) -> str:
    """A « dépôt » flow stopped in error: a file of the same name but another content is already there."""
    flow_ids = []
    for text in ("premier envoi", "autre contenu"):
        key = get_store().put(io.BytesIO(make_pdf(text))).key
        with transaction() as session:  # the collectivité's own file, as its GED upload would record it
            record_held(session, kit.tenant_id, key, holder="ged")
        body = {
            "kind": "depot",
            "connector": "depot-admin",
            "documents": [{"object_key": key, "filename": "arrete.pdf"}],
        }
        flow_ids.append(str(_ok(kit["agent"].post("/interop/flows", json=body), 201)["id"]))
        for _ in range(5):
            run_jobs()
    return flow_ids[-1]


def screens(kit: Kit) -> list[Screen]:
    dgs = _desk(kit, "Direction générale des services", ["agent"])
    finances = _desk(kit, "Adjoint aux finances", ["maire"])
    type_id = _ok(kit["admin"].post("/parapheur/types", json={"name": "Courriers (administration)"}), 201)["id"]
    circuit = [
        {"kind": "visa", "desk_ids": [dgs]},
        {"kind": "signature", "desk_ids": [dgs, finances], "mode": "quorum", "quorum": 1},
    ]
    body = {"name": "Courrier sortant", "circuit": circuit, "due_days": 10}
    subtype_id = _ok(kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json=body), 201)["id"]
    delegation = {
        "from_desk_id": finances,
        "to_desk_id": dgs,
        "starts_at": "2026-07-01T08:00:00Z",
        "ends_at": "2026-07-15T18:00:00Z",
        "subtype_ids": [subtype_id],
    }
    _ok(kit["admin"].post("/parapheur/delegations", json=delegation), 201)
    _connector(kit, "depot-admin", "depot", {"path": "ecrans-admin"})
    hook = {"url": "https://ged.example.test/hook", "signing_secret": "un-secret-de-signature-de-32-caracteres"}
    _connector(kit, "evenements-admin", "webhook", hook)
    flow_id = _flow_in_error(kit)
    with new_session() as db:
        agent_id = db.execute(
            select(User.id).where(User.tenant_id == kit.tenant_id, User.username == "agent")
        ).scalar_one()
    pages = [
        ("admin-index", "/admin"),
        ("admin-collectivite", "/admin/collectivite"),
        ("admin-utilisateurs", "/admin/utilisateurs"),
        ("admin-utilisateur-nouveau", "/admin/utilisateurs/nouveau"),
        ("admin-utilisateur", f"/admin/utilisateurs/{agent_id}"),
        ("admin-parapheur-bureaux", "/admin/parapheur/bureaux"),
        ("admin-parapheur-bureau", f"/admin/parapheur/bureaux/{dgs}"),
        ("admin-parapheur-delegations", "/admin/parapheur/delegations"),
        ("admin-parapheur-typologies", "/admin/parapheur/typologies"),
        ("admin-parapheur-type", f"/admin/parapheur/typologies/{type_id}"),
        ("admin-parapheur-sous-type", f"/admin/parapheur/sous-types/{subtype_id}"),
        ("admin-parapheur-sous-type-nouveau", f"/admin/parapheur/typologies/{type_id}/sous-types/nouveau"),
        ("admin-connecteurs", "/admin/connecteurs"),
        ("admin-connecteur-type", "/admin/connecteurs/nouveau"),
        ("admin-connecteur-nouveau-s2low", "/admin/connecteurs/nouveau?type=s2low"),
        ("admin-connecteur-webhook", "/admin/connecteurs/evenements-admin"),
        ("admin-flux", "/admin/flux"),
        ("admin-flux-detail", f"/admin/flux/{flow_id}"),
    ]
    return [Screen(name, "admin", path) for name, path in pages]
