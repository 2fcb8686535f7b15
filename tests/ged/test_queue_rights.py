"""GED rights through the other services: the parapheur and the archive service ask the GED in the name of the
user who acted, and the GED checks that user's rights as its API does; a document they may not read answers
exactly as a missing one (the audit's probes, issue #4)."""

from __future__ import annotations

from typing import Any

from ga_helpers import make_folder, make_type, new_document
from parapheur_kit import Standard
from sqlalchemy import select

from socle.auth import set_active
from socle.db import transaction
from socle.models import User

from conftest import Kit, assert_problem, run_jobs

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def _restricted(kit: Kit, parent_id: str | None = None, **data: Any) -> dict[str, Any]:
    """A folder « Ressources humaines » only the group of « maire » may read (not the agent, not the
    archivist), and a document in it."""
    hr = make_folder(kit, "Ressources humaines", parent_id)
    group = kit["admin"].post("/ged/groups", json={"name": "Lecteurs RH"}).json()
    assert kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": "maire"}).status_code == 200
    rules = [{"group_id": group["id"], "rights": ["read"]}]
    assert kit["admin"].put(f"/ged/plan/{hr['id']}/permissions", json=rules).status_code == 200
    secret = new_document(kit, "admin", folder_id=hr["id"], title="Dossier de carrière", type="carriere", **data)
    for user in ("agent", "archiviste"):
        assert_problem(kit[user].get(f"/ged/documents/{secret['id']}"), 404)
    return {"folder": hr, "document": secret}


def _disposal(kit: Kit, document_id: str) -> Any:
    return kit["admin"].get(f"/ged/documents/{document_id}").json()["disposal"]


# ---------------------------------------------------------------------------------------------------------
# Parapheur


def test_a_parapheur_folder_on_a_document_the_user_cannot_read_ends_as_on_a_missing_one(kit: Kit) -> None:
    make_type(kit, "carriere")
    secret = _restricted(kit)["document"]
    subtype = Standard(kit).sign_only

    def folder_on(user: str, document_id: str) -> str:
        body = {"subtype_id": subtype, "title": "Arrêté", "ged_document_id": document_id, "send": True}
        response = kit[user].post("/parapheur/folders", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    probe, missing, allowed = (
        folder_on("agent", secret["id"]),
        folder_on("agent", UNKNOWN),
        folder_on("maire", secret["id"]),
    )
    run_jobs()

    probed = kit["agent"].get(f"/parapheur/folders/{probe}").json()
    assert probed["status"] == "error", probed
    # Word for word what a missing document answers: nothing tells that it exists.
    assert probed["error"] == f"document {secret['id']} introuvable"
    assert kit["agent"].get(f"/parapheur/folders/{missing}").json()["error"] == f"document {UNKNOWN} introuvable"
    assert kit["agent"].get(f"/parapheur/folders/{probe}/document").status_code == 404  # never served
    # Its reader gets it, on the same path.
    assert kit["maire"].get(f"/parapheur/folders/{allowed}").json()["status"] == "in_progress"
    served = kit["maire"].get(f"/parapheur/folders/{allowed}/document")
    assert (
        served.status_code == 200
        and served.content == kit["maire"].get(f"/ged/documents/{secret['id']}/content").content
    )


# ---------------------------------------------------------------------------------------------------------
# Archive service


def _transfer(kit: Kit, **selection: Any) -> dict[str, Any]:
    created = kit["archiviste"].post("/archive/transfers", json={"archival_agency": "AD037", **selection})
    assert created.status_code == 202, created.text
    run_jobs()
    return dict(kit["archiviste"].get(f"/archive/transfers/{created.json()['id']}").json())


def test_an_archivist_cannot_transfer_a_document_they_cannot_read(kit: Kit) -> None:
    make_type(kit, "carriere")
    secret = _restricted(kit)["document"]
    readable = new_document(kit, "admin", title="Arrêté public")

    probed = _transfer(kit, document_ids=[readable["id"], secret["id"]])
    missing = _transfer(kit, document_ids=[UNKNOWN])

    assert probed["status"] == "error" and probed["sip_sha256"] is None
    assert probed["error"] == f"document {secret['id']} introuvable"  # as for a missing one
    assert missing["error"] == f"document {UNKNOWN} introuvable"
    assert "carrière" not in probed["error"].lower()
    # Nothing was taken from the GED: neither document is marked transferred.
    assert _disposal(kit, secret["id"]) is None and _disposal(kit, readable["id"]) is None


def test_a_selection_takes_only_what_the_archivist_may_read(kit: Kit) -> None:
    make_type(kit, "carriere", dua_months=12, dua_event="document_date", final_action="keep")
    council = make_folder(kit, "Administration générale")
    restricted = _restricted(kit, council["id"], date="2019-01-01")  # its DUA has ended too
    secret = restricted["document"]
    ended = new_document(kit, "admin", folder_id=council["id"], type="carriere", date="2019-01-01", text="fin")
    filed = new_document(kit, "admin", folder_id=council["id"], title="Note", text="note")

    by_dua = _transfer(kit, dua_reached=True)
    assert by_dua["status"] == "built", by_dua
    assert by_dua["document_ids"] == [ended["id"]]  # the restricted one is skipped

    by_folder = _transfer(kit, folder_id=council["id"])
    assert by_folder["status"] == "built", by_folder
    assert by_folder["document_ids"] == [filed["id"]]  # nor in its subfolder (the other one is transferred)
    assert _disposal(kit, secret["id"]) is None

    # The restricted folder itself is as unknown as a missing one.
    hidden = _transfer(kit, folder_id=restricted["folder"]["id"])
    absent = _transfer(kit, folder_id=UNKNOWN)
    assert hidden["error"] == f"dossier du plan de classement {restricted['folder']['id']} introuvable"
    assert absent["error"] == f"dossier du plan de classement {UNKNOWN} introuvable"
    # Its reader's selection takes it: the same request, another user.
    admin = kit["admin"].post("/archive/transfers", json={"archival_agency": "AD037", "dua_reached": True})
    run_jobs()
    assert kit["admin"].get(f"/archive/transfers/{admin.json()['id']}").json()["document_ids"] == [secret["id"]]


def test_a_transfer_whose_archivist_was_disabled_meanwhile_fails_and_says_why(kit: Kit) -> None:
    document = new_document(kit, "admin", title="Arrêté")
    created = kit["archiviste"].post(
        "/archive/transfers", json={"document_ids": [document["id"]], "archival_agency": "AD037"}
    )
    assert created.status_code == 202, created.text
    with transaction() as session:  # disabled before the GED answers: nothing is done in their name
        user = session.execute(
            select(User).where(User.tenant_id == kit.tenant_id, User.username == "archiviste")
        ).scalar_one()
        set_active(session, user, False, actor="user:admin")
    run_jobs()

    transfer = kit["admin"].get(f"/archive/transfers/{created.json()['id']}").json()
    assert transfer["status"] == "error"
    assert transfer["error"] == "l'utilisateur « archiviste » est désactivé"
    assert _disposal(kit, document["id"]) is None


def test_only_archivists_download_a_package(kit: Kit) -> None:
    document = new_document(kit, "agent", title="Arrêté de l'agent")  # even their own document's package
    built = _transfer(kit, document_ids=[document["id"]])
    assert built["status"] == "built", built
    url = f"/archive/transfers/{built['id']}/sip"
    for user in ("agent", "maire"):
        assert_problem(kit[user].get(url), 403)
    assert kit["archiviste"].get(url).status_code == 200
    assert kit["admin"].get(url).status_code == 200


def test_only_a_reader_learns_that_a_document_is_in_the_trash(kit: Kit) -> None:
    make_type(kit, "carriere")
    secret = _restricted(kit)["document"]
    assert kit["admin"].delete(f"/ged/documents/{secret['id']}").status_code == 200
    hidden = assert_problem(kit["agent"].get(f"/ged/documents/{secret['id']}"), 404)
    assert hidden["detail"] == f"document {secret['id']} introuvable"  # as a missing one: no word of the trash
    told = assert_problem(kit["maire"].get(f"/ged/documents/{secret['id']}"), 404)
    assert "corbeille" in told["detail"]
