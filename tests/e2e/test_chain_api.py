"""The walking skeleton through the APIs, jobs run inline: GED → parapheur → GED → archive → interop."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from parapheur_kit import Standard

from parapheur.pades import verify_pdf
from socle.settings import get_settings

from conftest import Kit, identity_certificate, pdfsig, run_jobs, upload_document


def test_document_travels_through_the_four_services(kit: Kit, pdf_bytes: bytes, tmp_path: Path) -> None:
    document = upload_document(kit["agent"], pdf_bytes)
    setup = Standard(kit)
    folder = (
        kit["agent"]
        .post(
            "/parapheur/folders",
            json={
                "subtype_id": setup.visa_then_sign,
                "title": "Délibération",
                "ged_document_id": document["id"],
                "send": True,
            },
        )
        .json()
    )
    assert folder["status"] == "awaiting_document"
    run_jobs()
    assert kit["agent"].get(f"/parapheur/folders/{folder['id']}").json()["status"] == "in_progress"

    assert kit["agent"].post(f"/parapheur/folders/{folder['id']}/visa", json={}).status_code == 200
    signed = kit["maire"].post(f"/parapheur/folders/{folder['id']}/sign", json={}).json()
    assert signed["status"] == "completed"
    run_jobs()

    current = kit["agent"].get(f"/ged/documents/{document['id']}").json()
    assert current["current_version"] == 2
    assert current["current"]["origin"] == f"parapheur:{folder['id']}"
    signed_pdf = tmp_path / "signed.pdf"
    signed_pdf.write_bytes(kit["agent"].get(f"/ged/documents/{document['id']}/content").content)
    assert "Signature is Valid" in pdfsig(signed_pdf)
    checks = verify_pdf(signed_pdf, [identity_certificate()])
    assert len(checks) == 1 and checks[0].intact and checks[0].valid
    original = kit["agent"].get(f"/ged/documents/{document['id']}/versions/1/content").content
    assert original == pdf_bytes

    transfer = (
        kit["archiviste"]
        .post("/archive/transfers", json={"document_ids": [document["id"]], "archival_agency": "AD037"})
        .json()
    )
    run_jobs()
    transfer = kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()
    assert transfer["status"] == "built", transfer
    assert transfer["validation"]["status"] == "valid"
    sip = kit["archiviste"].get(f"/archive/transfers/{transfer['id']}/sip").content
    with zipfile.ZipFile(io.BytesIO(sip)) as archive:
        assert archive.namelist()[0] == "manifest.xml"
        assert any(name.startswith("content/") for name in archive.namelist())

    kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "sae"}})
    sent = kit["archiviste"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "sae"})
    assert sent.status_code == 202, sent.text
    run_jobs()
    transfer = kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()
    assert transfer["status"] == "delivered", transfer
    deposited = get_settings().effective_deposit_root / kit.slug / transfer["receipt"]["path"]
    assert deposited.read_bytes() == sip

    # A GED document can be deposited too, directly.
    accepted = kit["agent"].post(f"/ged/documents/{document['id']}/deliver", json={"connector": "sae"})
    assert accepted.status_code == 202, accepted.text
    run_jobs()
    delivered = [d for d in kit["admin"].get("/interop/deliveries").json() if d["filename"] == "acte-signe.pdf"]
    assert len(delivered) == 1 and delivered[0]["status"] == "done"
    assert (deposited.parent / "acte-signe.pdf").read_bytes() == signed_pdf.read_bytes()
