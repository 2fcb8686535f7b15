"""The page of a carried-out elimination shows the proof's digests (and sizes) only of the documents its
viewer may read; the others are counted, not described. The audit entry, the legal record, stays whole."""

from __future__ import annotations

import hashlib
from typing import Any

from ga_helpers import make_folder, make_type, new_document
from sqlalchemy import select
from ui_kit import sign_in

from socle.db import transaction
from socle.models import AuditEntry

from conftest import Kit, make_pdf


def _restricted_folder(kit: Kit) -> str:
    """A folder only the group « rh » (the maire) may read: the archivist may not."""
    folder = make_folder(kit, "Ressources humaines")
    group = kit["admin"].post("/ged/groups", json={"name": "rh"}).json()
    assert kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": "maire"}).status_code == 200
    rights = [{"group_id": group["id"], "rights": ["read", "write", "delete", "manage"]}]
    assert kit["admin"].put(f"/ged/plan/{folder['id']}/permissions", json=rights).status_code == 200
    return str(folder["id"])


def test_the_proof_page_shows_no_digest_of_a_document_the_viewer_may_not_read(kit: Kit, app: Any) -> None:
    make_type(kit, "bon", dua_months=12, dua_event="document_date", final_action="destroy")
    folder = _restricted_folder(kit)
    secret = new_document(
        kit, user="admin", folder_id=folder, type="bon", date="2019-05-01", title="Sanction 2019", text="sanction"
    )
    open_one = new_document(kit, type="bon", date="2019-05-01", title="Bon de commande 2019", text="bon")
    secret_digest = hashlib.sha256(make_pdf("sanction")).hexdigest()
    open_digest = hashlib.sha256(make_pdf("bon")).hexdigest()
    assert secret["current"]["content"]["sha256"] == secret_digest
    proposal = kit["admin"].post("/ged/eliminations", json={"document_ids": [secret["id"], open_one["id"]]})
    assert proposal.status_code == 201, proposal.text
    elimination = proposal.json()["id"]
    assert kit["archiviste"].post(f"/ged/eliminations/{elimination}/approve").status_code == 200
    assert kit["admin"].post(f"/ged/eliminations/{elimination}/execute").json()["status"] == "done"

    # The archivist who approved it may not read « Sanction 2019 »: its digest is not on the page.
    html = sign_in(app, kit, "archiviste").get(f"/archives/eliminations/{elimination}").text
    assert "Preuve de l'élimination" in html and open_digest in html and "Bon de commande 2019" in html
    assert secret_digest not in html and "Sanction 2019" not in html
    assert "1 document(s) éliminé(s) que vous ne pouvez pas lire" in html

    html = sign_in(app, kit, "admin").get(f"/archives/eliminations/{elimination}").text
    assert secret_digest in html and open_digest in html and "Sanction 2019" in html
    assert "que vous ne pouvez pas lire" not in html

    # The legal record keeps both documents, with their digests.
    with transaction() as session:
        proof = session.execute(
            select(AuditEntry).where(AuditEntry.object_id == elimination, AuditEntry.action == "ged.elimination.done")
        ).scalar_one()
        digests = {item["document_id"]: item["versions"][0]["sha256"] for item in proof.details["documents"]}
    assert digests == {secret["id"]: secret_digest, open_one["id"]: open_digest}
