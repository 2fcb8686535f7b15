"""Archive API: transfers of GED documents into SEDA 2.2 packages, checked independently, and their sending."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import xmlschema
from lxml import etree

from socle.settings import get_settings, reset_settings

from conftest import Kit, assert_problem, make_pdf, run_jobs, upload_document

SEDA = "fr:gouv:culture:archivesdefrance:seda:v2.2"
NS = {"s": SEDA}
UNKNOWN = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def without_schemas(tmp_path: Path) -> Iterator[Path]:
    """SOCLE_SEDA_SCHEMAS names a folder that does not exist, for the duration of the test."""
    previous = os.environ["SOCLE_SEDA_SCHEMAS"]
    os.environ["SOCLE_SEDA_SCHEMAS"] = str(tmp_path / "absent")
    reset_settings()
    try:
        yield tmp_path / "absent"
    finally:
        os.environ["SOCLE_SEDA_SCHEMAS"] = previous
        reset_settings()


def request_transfer(kit: Kit, document_ids: list[str], **extra: Any) -> dict[str, Any]:
    response = kit["archiviste"].post(
        "/archive/transfers", json={"document_ids": document_ids, "archival_agency": "AD037", **extra}
    )
    assert response.status_code == 202, response.text
    transfer = response.json()
    assert transfer["status"] == "requested"
    return transfer


def transfer_of(kit: Kit, transfer_id: str) -> dict[str, Any]:
    response = kit["archiviste"].get(f"/archive/transfers/{transfer_id}")
    assert response.status_code == 200, response.text
    return response.json()


def built_transfer(kit: Kit, document_ids: list[str], **extra: Any) -> dict[str, Any]:
    transfer = request_transfer(kit, document_ids, **extra)
    run_jobs()
    return transfer_of(kit, transfer["id"])


def download_sip(kit: Kit, transfer: dict[str, Any]) -> bytes:
    response = kit["archiviste"].get(f"/archive/transfers/{transfer['id']}/sip")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert f"{transfer['message_identifier']}.zip" in response.headers["content-disposition"]
    return response.content


def create_connector(kit: Kit, name: str = "sae", path: str = "sae") -> None:
    response = kit["admin"].post("/interop/connectors", json={"name": name, "kind": "depot", "config": {"path": path}})
    assert response.status_code == 201, response.text


def deposit_folder(kit: Kit, path: str = "sae") -> Path:
    return get_settings().effective_deposit_root / kit.slug / path


def check_sip(sip: bytes, schema: xmlschema.XMLSchema) -> tuple[etree._Element, dict[str, bytes]]:
    """Independent checks of a SIP: layout, XSD, and every declared object against the zip's own bytes."""
    with zipfile.ZipFile(io.BytesIO(sip)) as archive:
        names = archive.namelist()
        assert names[0] == "manifest.xml"
        entries = {name: archive.read(name) for name in names}
    manifest = entries.pop("manifest.xml")
    errors = [str(error.reason) for error in schema.iter_errors(manifest)]
    assert errors == []
    root = etree.fromstring(manifest)
    objects = root.findall(".//s:BinaryDataObject", NS)
    assert objects
    for obj in objects:
        uri = obj.findtext("s:Uri", namespaces=NS)
        digest = obj.find("s:MessageDigest", NS)
        assert digest is not None and digest.get("algorithm") == "SHA-512"
        data = entries[uri]
        assert digest.text == hashlib.sha512(data).hexdigest()
        assert int(obj.findtext("s:Size", namespaces=NS)) == len(data)
    assert set(entries) == {obj.findtext("s:Uri", namespaces=NS) for obj in objects}  # nothing undeclared
    return root, entries


def unit_content(unit: etree._Element) -> dict[str, Any]:
    content = unit.find("s:Content", NS)
    assert content is not None
    return {
        "level": content.findtext("s:DescriptionLevel", namespaces=NS),
        "title": content.findtext("s:Title", namespaces=NS),
        "identifier": content.findtext("s:OriginatingAgencyArchiveUnitIdentifier", namespaces=NS),
        "type": content.findtext("s:DocumentType", namespaces=NS),
        "keywords": [k.text for k in content.findall("s:Keyword/s:KeywordContent", NS)],
        "start": content.findtext("s:StartDate", namespaces=NS),
    }


# --------------------------------------------------------------------------------------------------------
# Building


def test_transfer_of_one_document_builds_a_valid_sip(kit: Kit, seda_schema: xmlschema.XMLSchema) -> None:
    content = make_pdf("Délibération à archiver")
    document = upload_document(kit["agent"], content, title="Délibération n° 12", tags=["budget"])
    transfer = built_transfer(kit, [document["id"]])
    assert transfer["status"] == "built", transfer
    assert transfer["validation"]["status"] == "valid"
    # Without entry contract: said, not blocking (see test_archive_review_fixes).
    assert [issue["level"] for issue in transfer["validation"]["issues"]] == ["warning"]
    assert transfer["transferring_agency"] == "213700000" and transfer["error"] is None

    sip = download_sip(kit, transfer)
    assert transfer["sip_sha256"] == hashlib.sha256(sip).hexdigest() and transfer["sip_size"] == len(sip)
    root, entries = check_sip(sip, seda_schema)
    assert list(entries.values()) == [content]  # the GED's bytes, unchanged

    assert root.findtext("s:MessageIdentifier", namespaces=NS) == transfer["message_identifier"]
    assert root.findtext("s:ArchivalAgency/s:Identifier", namespaces=NS) == "AD037"
    assert root.findtext("s:TransferringAgency/s:Identifier", namespaces=NS) == "213700000"
    obj = root.find(".//s:BinaryDataObject", NS)
    assert obj.findtext("s:FormatIdentification/s:FormatId", namespaces=NS).startswith("fmt/")
    assert obj.findtext("s:FormatIdentification/s:MimeType", namespaces=NS) == "application/pdf"
    assert obj.findtext("s:FileInfo/s:Filename", namespaces=NS) == "acte.pdf"
    assert obj.findtext("s:DataObjectVersion", namespaces=NS) == "BinaryMaster_1"

    units = root.findall("s:DataObjectPackage/s:DescriptiveMetadata/s:ArchiveUnit", NS)
    assert len(units) == 1
    assert unit_content(units[0]) == {
        "level": "Item",
        "title": "Délibération n° 12",
        "identifier": document["id"],
        "type": "deliberation",
        "keywords": ["budget"],
        "start": "2026-11-02",
    }
    group = units[0].findtext("s:DataObjectReference/s:DataObjectGroupReferenceId", namespaces=NS)
    assert obj.getparent().get("id") == group


def test_two_documents_make_a_record_group(kit: Kit, seda_schema: xmlschema.XMLSchema) -> None:
    first = upload_document(kit["agent"], make_pdf("premier"), title="Arrêté n° 1", filename="arrete.pdf")
    second = upload_document(kit["agent"], make_pdf("second"), title="Arrêté n° 2", filename="arrete.pdf")
    transfer = built_transfer(kit, [first["id"], second["id"], first["id"]], comment="Arrêtés de novembre")
    assert transfer["status"] == "built", transfer
    assert transfer["document_ids"] == [first["id"], second["id"]]  # duplicates dropped

    root, entries = check_sip(download_sip(kit, transfer), seda_schema)
    assert len(entries) == 2  # same filename twice, two distinct entries
    top = root.findall("s:DataObjectPackage/s:DescriptiveMetadata/s:ArchiveUnit", NS)
    assert len(top) == 1
    assert unit_content(top[0])["level"] == "RecordGrp"
    assert unit_content(top[0])["title"] == "Arrêtés de novembre"
    children = top[0].findall("s:ArchiveUnit", NS)
    assert [unit_content(child)["identifier"] for child in children] == [first["id"], second["id"]]
    assert [unit_content(child)["title"] for child in children] == ["Arrêté n° 1", "Arrêté n° 2"]
    assert all(unit_content(child)["level"] == "Item" for child in children)


def test_transfer_takes_the_current_signed_version(
    kit: Kit, pdf_bytes: bytes, seda_schema: xmlschema.XMLSchema
) -> None:
    document = upload_document(kit["agent"], pdf_bytes)
    patched = kit["agent"].patch(f"/ged/documents/{document['id']}", json={"title": "Titre définitif"})
    assert patched.status_code == 200
    new_content = make_pdf("version 3")
    kit["agent"].post(f"/ged/documents/{document['id']}/versions", files={"file": ("v3.pdf", new_content)})
    transfer = built_transfer(kit, [document["id"]])
    root, entries = check_sip(download_sip(kit, transfer), seda_schema)
    assert list(entries.values()) == [new_content]
    assert unit_content(root.find(".//s:ArchiveUnit", NS))["title"] == "Titre définitif"


def test_only_an_archiviste_may_request_or_send(kit: Kit, pdf_bytes: bytes) -> None:
    document = upload_document(kit["agent"], pdf_bytes)
    body = {"document_ids": [document["id"]], "archival_agency": "AD037"}
    assert_problem(kit["agent"].post("/archive/transfers", json=body), 403)
    assert_problem(kit["maire"].post("/archive/transfers", json=body), 403)
    assert kit["archiviste"].get("/archive/transfers").json() == []

    transfer = built_transfer(kit, [document["id"]])
    assert_problem(kit["agent"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "sae"}), 403)
    assert transfer_of(kit, transfer["id"])["status"] == "built"


def test_invalid_requests_are_refused(kit: Kit) -> None:
    client = kit["archiviste"]
    assert_problem(client.post("/archive/transfers", json={"document_ids": [], "archival_agency": "AD037"}), 422)
    assert_problem(client.post("/archive/transfers", json={"document_ids": ["x"], "archival_agency": ""}), 422)
    assert_problem(client.post("/archive/transfers", json={"archival_agency": "AD037"}), 422)
    assert client.get("/archive/transfers").json() == []
    assert_problem(client.get(f"/archive/transfers/{UNKNOWN}"), 404)
    assert_problem(client.get(f"/archive/transfers/{UNKNOWN}/sip"), 404)
    assert_problem(client.post(f"/archive/transfers/{UNKNOWN}/send", json={"connector": "sae"}), 404)


def test_unknown_document_puts_the_transfer_in_error(kit: Kit, pdf_bytes: bytes) -> None:
    known = upload_document(kit["agent"], pdf_bytes)
    transfer = built_transfer(kit, [known["id"], UNKNOWN])
    assert transfer["status"] == "error"
    assert UNKNOWN in transfer["error"] and "introuvable" in transfer["error"]
    assert transfer["sip_sha256"] is None and transfer["validation"] is None
    assert_problem(kit["archiviste"].get(f"/archive/transfers/{transfer['id']}/sip"), 404)
    create_connector(kit)
    assert_problem(kit["archiviste"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "sae"}), 409)


def test_other_tenants_transfers_and_documents_stay_out_of_reach(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    theirs = upload_document(other["agent"], make_pdf("B"), title="Document de la commune B")
    their_transfer = built_transfer(other, [theirs["id"]])
    assert their_transfer["status"] == "built"
    # Asking for the other tenant's document fails as if it did not exist.
    mine = built_transfer(kit, [theirs["id"]])
    assert mine["status"] == "error" and "introuvable" in mine["error"]
    assert [t["id"] for t in kit["archiviste"].get("/archive/transfers").json()] == [mine["id"]]
    assert_problem(kit["archiviste"].get(f"/archive/transfers/{their_transfer['id']}"), 404)
    assert_problem(kit["archiviste"].get(f"/archive/transfers/{their_transfer['id']}/sip"), 404)


# --------------------------------------------------------------------------------------------------------
# Without the schemas: never « valid »


def test_without_schemas_the_package_is_unvalidated_and_needs_confirmation(
    kit: Kit, pdf_bytes: bytes, without_schemas: Path, seda_schema: xmlschema.XMLSchema
) -> None:
    document = upload_document(kit["agent"], pdf_bytes)
    transfer = built_transfer(kit, [document["id"]])
    assert transfer["status"] == "unvalidated", transfer
    report = transfer["validation"]
    assert report["status"] != "valid" and report["status"] == "skipped"
    assert str(without_schemas) in report["message"] and "Installez-les" in report["message"]
    check_sip(download_sip(kit, transfer), seda_schema)  # the package itself is fine, only unchecked

    create_connector(kit)
    refused = kit["archiviste"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "sae"})
    assert "accept_unvalidated" in assert_problem(refused, 409)["detail"]
    assert transfer_of(kit, transfer["id"])["status"] == "unvalidated"
    sent = kit["archiviste"].post(
        f"/archive/transfers/{transfer['id']}/send", json={"connector": "sae", "accept_unvalidated": True}
    )
    assert sent.status_code == 202, sent.text
    run_jobs()
    assert transfer_of(kit, transfer["id"])["status"] == "delivered"


# --------------------------------------------------------------------------------------------------------
# Sending


def test_send_to_a_depot_connector_delivers_with_a_receipt(kit: Kit, pdf_bytes: bytes) -> None:
    document = upload_document(kit["agent"], pdf_bytes)
    transfer = built_transfer(kit, [document["id"]])
    sip = download_sip(kit, transfer)
    create_connector(kit)

    sent = kit["archiviste"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "sae"})
    assert sent.status_code == 202, sent.text
    assert sent.json()["status"] == "sending" and sent.json()["connector"] == "sae"
    # While it is on its way, it cannot be sent a second time.
    assert_problem(kit["archiviste"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "sae"}), 409)
    run_jobs()

    transfer = transfer_of(kit, transfer["id"])
    assert transfer["status"] == "delivered", transfer
    receipt = transfer["receipt"]
    name = f"{transfer['message_identifier']}.zip"
    deposited = deposit_folder(kit) / name
    assert receipt["name"] == name and deposit_folder(kit, ".") / receipt["path"] == deposited
    assert receipt["size"] == len(sip) and receipt["sha256"] == hashlib.sha256(sip).hexdigest()
    assert receipt["connector"] == "sae" and receipt["deposited_at"]
    assert deposited.read_bytes() == sip

    again = kit["archiviste"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "sae"})
    assert "delivered" in assert_problem(again, 409)["detail"]
    run_jobs()
    assert sorted(path.name for path in deposit_folder(kit).iterdir()) == [name, name + ".receipt.json"]


def test_send_to_an_unknown_connector_fails_then_succeeds_once_it_exists(kit: Kit, pdf_bytes: bytes) -> None:
    document = upload_document(kit["agent"], pdf_bytes)
    transfer = built_transfer(kit, [document["id"]])
    sent = kit["archiviste"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "plus-tard"})
    assert sent.status_code == 202, sent.text
    run_jobs()
    failed = transfer_of(kit, transfer["id"])
    assert failed["status"] == "delivery_failed"
    assert "plus-tard" in failed["error"] and "introuvable" in failed["error"]
    assert failed["receipt"] is None

    # The administrator creates the connector; sending again through it now works.
    create_connector(kit, "plus-tard", "plus-tard")
    resent = kit["archiviste"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "plus-tard"})
    assert resent.status_code == 202, resent.text
    run_jobs()
    delivered = transfer_of(kit, transfer["id"])
    assert delivered["status"] == "delivered", delivered
    assert delivered["error"] is None
    assert (deposit_folder(kit, ".") / delivered["receipt"]["path"]).read_bytes() == download_sip(kit, transfer)
