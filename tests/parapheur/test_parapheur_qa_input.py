"""Hostile input at the parapheur's boundary: refused in French (problem+json, or the form's page), never a 500,
and nothing written: control characters in texts, lying or absurd media types, stamp numbers a database or a
PDF cannot hold, delegation instants UTC cannot hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from parapheur_kit import Standard, act, desk, folder_of, ok, sent_folder, upload_folder
from sqlalchemy import func, select
from ui_kit import post_form, sign_in

from socle.db import transaction
from socle.migrating import upgrade_all
from socle.models import AuditEntry

from conftest import Kit, assert_problem, make_pdf


def _audit_count(kit: Kit) -> int:
    with transaction() as session:
        query = select(func.count()).select_from(AuditEntry).where(AuditEntry.tenant_id == kit.tenant_id)
        return int(session.execute(query).scalar_one())


def _raw_json(client: Any, method: str, url: str, body: dict[str, Any]) -> Any:
    """A JSON body as Python writes it, NaN and Infinity included (which JSON parsers of the server accept)."""
    return client.request(method, url, content=json.dumps(body), headers={"content-type": "application/json"})


def _check_refusals(kit: Kit, setup: Standard) -> None:
    """Each request carries a NUL (or another control) in a text the parapheur would keep or look up."""
    agent, admin = kit["agent"], kit["admin"]
    folder = sent_folder(kit, setup.visa_then_sign)
    type_id = ok(admin.post("/parapheur/types", json={"name": "Contrats"}), 201)["id"]
    audited = _audit_count(kit)
    url = f"/parapheur/folders/{folder['id']}"
    circuit = [{"kind": "signature", "desk_ids": [setup.maire], "mandatory_metadata": ["objet\x00"]}]
    refusals = [
        ("titre", upload_folder(kit, setup.sign_only, title="Arrêté\x00n° 3")),
        ("métadonnée", upload_folder(kit, setup.sign_only, metadata={"objet": "cantine\x00"})),
        ("nom de métadonnée", upload_folder(kit, setup.sign_only, metadata={"ob\x00jet": "cantine"})),
        ("commentaire", act(kit, "agent", folder["id"], "visa", {"comment": "vu\x00"})),
        ("bureau", act(kit, "agent", folder["id"], "visa", {"desk_id": "\x00"})),
        ("motif", act(kit, "agent", folder["id"], "reject", {"reason": "non\x00"})),
        ("annotation", agent.post(f"{url}/annotations", json={"text": "note\x00"})),
        ("question", agent.post(f"{url}/opinions", json={"desk_id": setup.maire, "question": "avis\x00 ?"})),
        ("métadonnées", agent.patch(f"{url}/metadata", json={"metadata": {"objet": "x\x00"}})),
        ("retrait", act(kit, "agent", folder["id"], "withdraw", {"comment": "\x1b[31m"})),
        ("bureau (nom)", admin.post("/parapheur/desks", json={"name": "Élus\x00"})),
        ("bureau (direction)", admin.post("/parapheur/desks", json={"name": "Élus\u202egnp.exe"})),
        ("membre", admin.post(f"/parapheur/desks/{setup.maire}/members", json={"username": "ma\x00ire"})),
        ("type", admin.post("/parapheur/types", json={"name": "Arrêtés\x00"})),
        ("sous-type", admin.post(f"/parapheur/types/{type_id}/subtypes", json={"name": "S", "circuit": circuit})),
    ]
    for label, response in refusals:
        body = assert_problem(response, 422)
        assert "contrôle" in json.dumps(body, ensure_ascii=False), (label, body)
    assert [row["id"] for row in ok(admin.get("/parapheur/folders"))] == [folder["id"]]
    kept = folder_of(kit, folder["id"])
    assert kept["status"] == "in_progress" and kept["metadata"] == {}
    assert all(not step["acts"] for step in kept["steps"])
    assert {row["name"] for row in ok(admin.get("/parapheur/desks"))} == {"Secrétariat", "Maire"}
    assert ok(admin.get("/parapheur/subtypes", params={"type_id": type_id})) == []
    assert _audit_count(kit) == audited  # nothing refused was audited, since nothing was done


def test_control_characters_are_refused_before_anything_is_written(kit: Kit) -> None:
    _check_refusals(kit, Standard(kit))


@pytest.mark.integration
def test_control_characters_are_refused_on_postgres_too(
    postgres_url: str, use_env: Any, make_kit: Any, app: Any
) -> None:
    # PostgreSQL refuses a NUL in any text: before the fix, each of these was a 500.
    use_env(SOCLE_DATABASE_URL=postgres_url)
    upgrade_all()
    kit = make_kit()
    _check_refusals(kit, Standard(kit))


def test_the_folder_page_refuses_a_nul_in_a_form_with_a_french_page(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    agent = sign_in(app, kit, "agent")
    url = f"/dossiers/{folder['id']}"
    visa = post_form(agent, url, f"{url}/viser", {"commentaire_visa": "vu\x00"})
    assert visa.status_code == 422 and "caractère de contrôle interdit" in visa.text
    bidi = post_form(agent, url, f"{url}/rejeter", {"motif": "refus \u202eexe.fdp"})
    assert bidi.status_code == 422 and "direction du texte" in bidi.text
    transfer = post_form(agent, url, f"{url}/transferer", {"bureau_transfert": "\x00"})
    assert transfer.status_code == 422 and "caractère de contrôle interdit" in transfer.text
    assert all(not step["acts"] for step in folder_of(kit, folder["id"])["steps"])


def test_a_client_label_does_not_become_the_media_type_a_document_is_served_with(kit: Kit) -> None:
    setup = Standard(kit)
    files = [("acte.pdf", make_pdf("Acte"), "text/html")]  # a PDF labelled as a web page
    annexes = [("notes.txt", b"notes", "application/" + "x" * 300), ("plan.csv", b"a;b", "text/csv; charset=utf-8")]
    folder = ok(upload_folder(kit, setup.sign_only, files, annexes=annexes), 201)
    types = {document["filename"]: document["media_type"] for document in folder["documents"]}
    assert types == {"acte.pdf": "application/pdf", "notes.txt": "text/plain", "plan.csv": "text/csv"}
    main = next(document for document in folder["documents"] if document["role"] == "main")
    served = kit["agent"].get(f"/parapheur/folders/{folder['id']}/documents/{main['id']}")
    assert served.status_code == 200 and served.headers["content-type"] == "application/pdf"


@pytest.mark.integration
def test_a_long_media_type_is_no_server_error_on_postgres(
    postgres_url: str, use_env: Any, make_kit: Any, app: Any
) -> None:
    use_env(SOCLE_DATABASE_URL=postgres_url)
    upgrade_all()
    kit = make_kit()
    setup = Standard(kit)
    annexes = [("notes.txt", b"notes", "application/" + "x" * 300)]  # longer than the column: a 500 before
    folder = ok(upload_folder(kit, setup.sign_only, annexes=annexes), 201)
    assert {document["media_type"] for document in folder["documents"]} == {"application/pdf", "text/plain"}


@pytest.mark.parametrize(
    "fields",
    [
        {"stamp_page": 2**70},  # more than 64 bits: the database cannot bind it
        {"stamp_page": 2**40},  # more than PostgreSQL's integer
        {"stamp_width": float("inf")},  # shown as null, then every signature of the type refused
        {"stamp_height": float("nan")},
        {"stamp_x": float("nan"), "stamp_y": 10},  # NaN passed « x ≥ 0 » and « x and y together »
        {"stamp_x": 10, "stamp_y": 1e308},
        {"stamp_width": 1e308, "stamp_height": 1e308},
    ],
)
def test_stamp_numbers_out_of_any_page_are_refused(kit: Kit, fields: dict[str, Any]) -> None:
    admin = kit["admin"]
    body = assert_problem(_raw_json(admin, "POST", "/parapheur/types", {"name": "Arrêtés", **fields}), 422)
    assert "cachet" in body["detail"]
    type_id = ok(admin.post("/parapheur/types", json={"name": "Arrêtés"}), 201)["id"]
    assert_problem(_raw_json(admin, "PATCH", f"/parapheur/types/{type_id}", fields), 422)
    kept = ok(admin.get(f"/parapheur/types/{type_id}"))
    assert (kept["stamp_page"], kept["stamp_x"], kept["stamp_width"], kept["stamp_height"]) == (-1, None, 200, 60)


def test_the_largest_sensible_stamp_values_are_still_accepted(kit: Kit) -> None:
    fields = {"name": "Plans", "stamp_page": 100_000, "stamp_x": 14_000, "stamp_y": 0, "stamp_width": 400}
    created = ok(kit["admin"].post("/parapheur/types", json=fields), 201)
    assert (created["stamp_page"], created["stamp_x"], created["stamp_width"]) == (100_000, 14_000, 400)


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "field"),
    [
        ("0001-01-01T00:00:00+14:00", "2027-01-01T00:00:00Z", "starts_at"),  # before year 1 in UTC
        ("2027-01-01T00:00:00Z", "9999-12-31T23:00:00-14:00", "ends_at"),  # after year 9999 in UTC
    ],
)
def test_a_delegation_instant_utc_cannot_hold_is_refused(kit: Kit, starts_at: str, ends_at: str, field: str) -> None:
    setup = Standard(kit)
    body = {"from_desk_id": setup.maire, "to_desk_id": setup.secretariat, "starts_at": starts_at, "ends_at": ends_at}
    problem = assert_problem(kit["admin"].post("/parapheur/delegations", json=body), 422)
    assert problem["field"] == field and "délégation" in problem["detail"]
    assert ok(kit["admin"].get("/parapheur/delegations")) == []


def test_the_delegation_page_says_which_date_is_impossible(app: Any, kit: Kit) -> None:
    maire = desk(kit, "Maire", ["maire"])
    adjoint = desk(kit, "Adjoint", ["agent"])
    admin = sign_in(app, kit, "admin")
    url = "/admin/parapheur/delegations"
    # Paris time on 1 January of year 1, midnight: before the first instant UTC can hold.
    form = {
        "from_desk_id": maire,
        "to_desk_id": adjoint,
        "starts_at": "0001-01-01T00:00",
        "ends_at": "2027-01-01T08:00",
    }
    answer = post_form(admin, url, url, form)
    assert answer.status_code == 422 and 'id="starts_at-erreur"' in answer.text
    assert "hors des dates possibles" in answer.text
    assert ok(kit["admin"].get("/parapheur/delegations")) == []
