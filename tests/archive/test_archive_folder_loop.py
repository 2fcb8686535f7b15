"""The archive loop for a transfer by folder: once the SAE accepts the package, each GED document is marked
archived with the SystemId of its own unit, nested under its folders' units, not the flat numbering's."""

from __future__ import annotations

from typing import Any

from sae_messages import acknowledgement, sae_sends, transfer_reply
from test_archive_from_ged import Manifest, add_document, make_folder, make_type, manifest_of, transfer

from conftest import Kit, run_jobs


def deliver(kit: Kit, built: dict[str, Any]) -> dict[str, Any]:
    connector = kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "s"}})
    assert connector.status_code == 201, connector.text
    sent = kit["archiviste"].post(f"/archive/transfers/{built['id']}/send", json={"connector": "sae"})
    assert sent.status_code == 202, sent.text
    run_jobs()
    delivered = kit["archiviste"].get(f"/archive/transfers/{built['id']}").json()
    assert delivered["status"] == "delivered", delivered
    return dict(delivered)


def test_folder_transfer_accepted_marks_each_document_with_its_own_nested_unit(kit: Kit) -> None:
    make_type(kit, "arrete", final_action="keep")  # keep: no elimination proposal in the way
    plan = make_folder(kit, "Urbanisme", code="2T")
    permits = make_folder(kit, "Permis de construire", plan)
    certificates = make_folder(kit, "Certificats d'urbanisme", plan)
    documents = {
        "plan": add_document(kit, "Plan local d'urbanisme", type="arrete", folder_id=plan, date="2026-02-01"),
        "permit": add_document(kit, "PC 037 2026 0012", type="arrete", folder_id=permits, date="2026-03-02"),
        "certificate": add_document(kit, "CU 037 2026 0007", type="arrete", folder_id=certificates, date="2026-04-03"),
    }

    built = transfer(kit, folder_id=plan)
    assert built["validation"]["status"] == "valid", built["validation"]
    assert sorted(built["document_ids"]) == sorted(documents.values())
    manifest = Manifest(manifest_of(kit, built), "2.2")
    [root] = manifest.roots()
    assert manifest.title(root) == "Urbanisme"  # its cote « 2T » apart, as OriginatingAgencyArchiveUnitIdentifier
    # The unit of each document, read in the manifest itself (its OriginatingAgencyArchiveUnitIdentifier).
    unit_of = {name: str(manifest.unit_of(document_id).get("id")) for name, document_id in documents.items()}
    subfolders = {manifest.title(unit): unit for unit in manifest.children(root) if manifest.children(unit)}
    assert [manifest.children(subfolders["Permis de construire"])[0].get("id")] == [unit_of["permit"]]
    assert [manifest.children(subfolders["Certificats d'urbanisme"])[0].get("id")] == [unit_of["certificate"]]
    assert built["document_units"] == {documents[name]: unit for name, unit in unit_of.items()}
    # Nested: the documents are not where the flat numbering (AU2, AU3, AU4 in export order) would put them.
    flat = dict(zip(built["document_ids"], ["AU2", "AU3", "AU4"], strict=True))
    assert any(flat[documents[name]] != unit for name, unit in unit_of.items()), unit_of

    delivered = deliver(kit, built)
    request = delivered["message_identifier"]
    sae_sends(kit.tenant_id, built["id"], "acknowledgement", acknowledgement("2.2", request, "ACK-1"))
    # Every unit of the package, folders included, gets its own SystemId: a document given any other unit's
    # identifier (a folder's, a sibling's) fails the comparison below.
    system_ids = {str(unit.get("id")): f"sys-{unit.get('id')}" for unit in manifest.units()}
    assert len(system_ids) == 6  # the folder, its two subfolders, the three documents
    reply = transfer_reply("2.2", request, "OK", "ATR-7", units=system_ids)
    sae_sends(kit.tenant_id, built["id"], "reply", reply)
    assert kit["archiviste"].get(f"/archive/transfers/{built['id']}").json()["status"] == "accepted"

    archived = {name: kit["agent"].get(f"/ged/documents/{found}").json() for name, found in documents.items()}
    expected = {name: system_ids[unit] for name, unit in unit_of.items()}
    assert len(set(expected.values())) == 3  # three distinct identifiers: a swap cannot go unnoticed
    assert {name: document["sae_identifier"] for name, document in archived.items()} == expected
    assert all(d["disposal"] == "archived" and d["archive_transfer_id"] == built["id"] for d in archived.values())
