"""The archive loop through the real services: a transfer accepted by the SAE marks the GED documents archived
with the identifier the SAE gave each unit, and proposes the GED copy of « destroy » documents for
elimination; the archivist approves it with another person and carries it out."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path
from typing import Any

import pikepdf
from ga_helpers import make_type, new_document
from lxml import etree
from sqlalchemy import select

from archive import packaging
from ged.models import Elimination
from socle.db import transaction

from conftest import Kit, assert_problem, run_jobs

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "archive"))
from sae_messages import acknowledgement, sae_sends, transfer_reply


def delivered_transfer(kit: Kit, document_ids: list[str]) -> dict[str, Any]:
    created = kit["archiviste"].post(
        "/archive/transfers", json={"document_ids": document_ids, "archival_agency": "AD037"}
    )
    assert created.status_code == 202, created.text
    # Generous: in a whole session this run also renders every document earlier tests left pending.
    run_jobs(timeout=900)
    connector = kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "s"}})
    assert connector.status_code == 201, connector.text
    sent = kit["archiviste"].post(f"/archive/transfers/{created.json()['id']}/send", json={"connector": "sae"})
    assert sent.status_code == 202, sent.text
    run_jobs()
    transfer = kit["archiviste"].get(f"/archive/transfers/{created.json()['id']}").json()
    assert transfer["status"] == "delivered", transfer
    return dict(transfer)


def test_accepted_transfer_marks_documents_archived_and_proposes_the_destroy_copies(kit: Kit) -> None:
    make_type(kit, "bon", final_action="destroy")
    make_type(kit, "deliberation", final_action="keep")
    copy = new_document(kit, type="bon", text="bon de commande", title="Bon de commande")
    kept = new_document(kit, type="deliberation", text="délibération", title="Délibération")
    transfer = delivered_transfer(kit, [copy["id"], kept["id"]])

    request = transfer["message_identifier"]
    sae_sends(kit.tenant_id, transfer["id"], "acknowledgement", acknowledgement("2.2", request, "ACK-1"))
    # Two documents: the package groups them under AU1, as AU2 and AU3 in the transfer's order.
    reply = transfer_reply("2.2", request, "OK", "ATR-9", units={"AU1": "grp-1", "AU2": "sys-bon", "AU3": "sys-delib"})
    sae_sends(kit.tenant_id, transfer["id"], "reply", reply)
    assert kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()["status"] == "accepted"

    archived = {d: kit["agent"].get(f"/ged/documents/{d}").json() for d in (copy["id"], kept["id"])}
    assert archived[copy["id"]]["sae_identifier"] == "sys-bon"
    assert archived[kept["id"]]["sae_identifier"] == "sys-delib"
    assert all(d["disposal"] == "archived" and d["archive_transfer_id"] == transfer["id"] for d in archived.values())

    with transaction() as session:
        proposal = session.execute(select(Elimination).where(Elimination.tenant_id == kit.tenant_id)).scalar_one()
        assert proposal.document_ids == [copy["id"]] and proposal.status == "proposed"
        assert transfer["id"] in (proposal.comment or "")
        proposal_id = proposal.id
    approved = kit["archiviste"].post(f"/ged/eliminations/{proposal_id}/approve")
    assert approved.status_code == 200, approved.text
    done = kit["archiviste"].post(f"/ged/eliminations/{proposal_id}/execute")
    assert done.json()["status"] == "done"
    assert_problem(kit["agent"].get(f"/ged/documents/{copy['id']}/content"), 410)
    assert kit["agent"].get(f"/ged/documents/{kept['id']}/content").status_code == 200


def test_text_and_pdfa_go_beside_the_original_in_its_object_group(kit: Kit, tmp_path: Path) -> None:
    """A document with its extracted text and its PDF/A copy is archived with both, as other versions of the
    same document: one object group holding BinaryMaster_1, Dissemination_1 and TextContent_1."""
    make_type(kit, "deliberation", final_action="keep")
    versions = ("2.1", "2.2", "2.3")
    documents = {version: text_document(kit, f"Délibération {version}") for version in versions}
    run_jobs(timeout=900)  # their renditions
    transfers = {}
    for version, document in documents.items():
        state = kit["agent"].get(f"/ged/documents/{document['id']}/renditions").json()
        assert state["text"] and state["pdfa"], state
        created = kit["archiviste"].post(
            "/archive/transfers",
            json={"document_ids": [document["id"]], "archival_agency": "AD037", "seda_version": version},
        )
        assert created.status_code == 202, created.text
        transfers[version] = created.json()["id"]
    run_jobs()

    for version, document in documents.items():
        check_renditions_package(kit, version, document["id"], transfers[version], tmp_path / f"sip-{version}.zip")


def text_document(kit: Kit, title: str) -> dict[str, Any]:
    """A PDF with a text layer (Helvetica, WinAnsi): the GED extracts its text and makes its PDF/A copy."""
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    page = pdf.pages[0]
    font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica,
        Encoding=pikepdf.Name.WinAnsiEncoding,
    )  # fmt: skip
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    page.Contents = pdf.make_stream(b"BT /F1 18 Tf 72 760 Td (%s) Tj ET\n" % title.encode("cp1252"))
    out = io.BytesIO()
    pdf.save(out)
    data = {"title": title, "document_type": "Délibération", "type": "deliberation"}
    response = kit["agent"].post(
        "/ged/documents", files={"file": ("acte.pdf", out.getvalue(), "application/pdf")}, data=data
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def check_renditions_package(kit: Kit, version: str, document_id: str, transfer_id: str, sip: Path) -> None:
    transfer = kit["archiviste"].get(f"/archive/transfers/{transfer_id}").json()
    # Validated against the official XSD of its version, then the business checks (as many objects as files).
    assert transfer["status"] == "built", transfer
    assert transfer["validation"]["checks"] == {"schema": "valid", "profile": None, "business": "valid"}
    sip.write_bytes(kit["archiviste"].get(f"/archive/transfers/{transfer_id}/sip").content)
    assert packaging.verify_sip(sip) == []
    with zipfile.ZipFile(sip) as archive:
        root = etree.fromstring(archive.read("manifest.xml"))
        entries = {name: archive.read(name) for name in archive.namelist()}
    ns = {"s": f"fr:gouv:culture:archivesdefrance:seda:v{version}"}
    [group] = root.findall(".//s:DataObjectGroup", ns)
    objects = {str(obj.findtext("s:DataObjectVersion", namespaces=ns)): obj for obj in group}
    assert list(objects) == ["BinaryMaster_1", "Dissemination_1", "TextContent_1"]
    assert len(root.findall(".//s:BinaryDataObject", ns)) == 3 and len(entries) == 4  # with the manifest
    content = {usage: entries[str(obj.findtext("s:Uri", namespaces=ns))] for usage, obj in objects.items()}
    names = {usage: obj.findtext("s:FileInfo/s:Filename", namespaces=ns) for usage, obj in objects.items()}
    mime_types = {
        usage: obj.findtext("s:FormatIdentification/s:MimeType", namespaces=ns) for usage, obj in objects.items()
    }

    ged = f"/ged/documents/{document_id}"
    assert content["Dissemination_1"] == kit["agent"].get(f"{ged}/pdfa").content
    assert content["TextContent_1"] == kit["agent"].get(f"{ged}/text").content
    assert f"Délibération {version}" in content["TextContent_1"].decode()
    assert names == {"BinaryMaster_1": "acte.pdf", "Dissemination_1": "acte-pdfa.pdf", "TextContent_1": "acte.txt"}
    assert (mime_types["Dissemination_1"], mime_types["TextContent_1"]) == ("application/pdf", "text/plain")
    # The document's unit points at the group: its renditions are archived with it.
    [unit] = root.findall(".//s:ArchiveUnit", ns)
    assert unit.findtext("s:DataObjectReference/s:DataObjectGroupReferenceId", namespaces=ns) == group.get("id")
