"""The store is shared: a GED document sent to the parapheur and the folder's copy are one object. Purging or
eliminating the GED document removes its record and its registry entry, not bytes another service still holds
(the kernel's registry, socle.storage.ownership); without another holder the bytes go."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from ga_helpers import make_type, new_document
from parapheur_kit import Standard
from sqlalchemy import select, update

from ged.models import Document
from socle.db import transaction, utcnow
from socle.models import TenantObject

from conftest import Kit, run_jobs

OBJECTS = Path(os.environ["SOCLE_DATA_DIR"]) / "objects"


def _stored(key: str) -> bool:
    return (OBJECTS / key[:2] / key[2:4] / key).is_file()


def _holders(tenant_id: str, key: str) -> list[str]:
    """Who holds the object for the tenant, in the kernel's registry."""
    with transaction() as session:
        query = select(TenantObject.holder).where(TenantObject.tenant_id == tenant_id, TenantObject.object_key == key)
        return sorted(session.execute(query).scalars())


def _sent_to_the_parapheur(kit: Kit, document: dict[str, Any]) -> str:
    """A signature folder on the GED document (the GED sends its current version): the folder's id."""
    body = {"subtype_id": Standard(kit).sign_only, "title": "Arrêté", "ged_document_id": document["id"], "send": True}
    response = kit["agent"].post("/parapheur/folders", json=body)
    assert response.status_code == 202, response.text
    run_jobs()
    folder_id = str(response.json()["id"])
    assert kit["agent"].get(f"/parapheur/folders/{folder_id}").json()["status"] == "in_progress"
    return folder_id


def _purged(kit: Kit, document: dict[str, Any]) -> None:
    """Trashed, aged past the restore window, and purged."""
    assert kit["agent"].delete(f"/ged/documents/{document['id']}").status_code == 200
    with transaction() as session:
        when = utcnow() - timedelta(days=40)
        session.execute(update(Document).where(Document.id == document["id"]).values(deleted_at=when))
    response = kit["admin"].post("/ged/trash/purge")
    assert response.status_code == 200, response.text
    assert response.json()["purged"] == [document["id"]]


def test_purging_a_document_sent_to_the_parapheur_keeps_the_folders_copy(kit: Kit) -> None:
    document = new_document(kit, title="Arrêté de voirie", text="voirie")
    key = document["current"]["content"]["sha256"]
    content = kit["agent"].get(f"/ged/documents/{document['id']}/content").content
    folder_id = _sent_to_the_parapheur(kit, document)
    assert _holders(kit.tenant_id, key) == ["ged", "parapheur"]  # one object, two holders

    _purged(kit, document)

    assert _stored(key)
    served = kit["agent"].get(f"/parapheur/folders/{folder_id}/document")
    assert served.status_code == 200 and served.content == content
    assert kit["agent"].get(f"/ged/documents/{document['id']}").status_code == 404  # the GED's record went
    assert _holders(kit.tenant_id, key) == ["parapheur"]  # and its registry entry


def test_purging_a_document_no_other_service_holds_removes_its_bytes(kit: Kit) -> None:
    document = new_document(kit, title="Arrêté de voirie", text="voirie seule")
    key = document["current"]["content"]["sha256"]
    assert _stored(key) and _holders(kit.tenant_id, key) == ["ged"]

    _purged(kit, document)

    assert not _stored(key)
    assert _holders(kit.tenant_id, key) == []


def test_eliminating_a_document_sent_to_the_parapheur_keeps_the_folders_copy(kit: Kit) -> None:
    make_type(kit, "bon", dua_months=12, dua_event="document_date", final_action="destroy")
    document = new_document(kit, type="bon", date="2019-05-02", title="Bon de commande", text="bon")
    kept = new_document(kit, type="bon", date="2019-05-02", title="Autre bon", text="autre bon")
    key, other_key = document["current"]["content"]["sha256"], kept["current"]["content"]["sha256"]
    content = kit["agent"].get(f"/ged/documents/{document['id']}/content").content
    folder_id = _sent_to_the_parapheur(kit, document)

    proposal = kit["archiviste"].post("/ged/eliminations", json={"document_ids": [document["id"], kept["id"]]})
    assert proposal.status_code == 201, proposal.text
    elimination = proposal.json()["id"]
    assert kit["admin"].post(f"/ged/eliminations/{elimination}/approve").status_code == 200
    done = kit["archiviste"].post(f"/ged/eliminations/{elimination}/execute")
    assert done.status_code == 200, done.text

    assert kit["agent"].get(f"/ged/documents/{document['id']}/content").status_code == 410
    assert _stored(key)  # the parapheur's folder still has it
    served = kit["agent"].get(f"/parapheur/folders/{folder_id}/document")
    assert served.status_code == 200 and served.content == content
    assert _holders(kit.tenant_id, key) == ["parapheur"]  # the GED no longer holds it: no flow gets it from the GED
    assert not _stored(other_key) and _holders(kit.tenant_id, other_key) == []  # no other holder: gone
