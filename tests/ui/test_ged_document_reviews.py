"""Users' reviews of the GED's document page: a document signed in the parapheur (its PDF/A copy deliberately not
made is no failure, its signatories by their names, its free type label explained), and an archived document,
whose GED copy is frozen (page, web interface and API)."""

from __future__ import annotations

import io
from typing import Any

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from sqlalchemy import select
from ui_kit import post_form, sign_in

from ged import jobs as ged_jobs
from ged import renditions, retention
from ged.models import Version
from socle.db import new_session, transaction
from socle.models import AuditEntry
from socle.storage import get_store

from conftest import Kit, make_pdf, run_jobs, signing_identity, upload_document

SKIPPED = "Copie PDF/A non faite : le PDF est signé (la convertir invaliderait la signature)"


def signed_pdf() -> bytes:
    signer = signers.SimpleSigner.load_pkcs12_data(signing_identity()[0], [], passphrase=signing_identity()[1])
    writer = IncrementalPdfFileWriter(io.BytesIO(make_pdf("Délibération signée")))
    return signers.sign_pdf(writer, signers.PdfSignatureMetadata(field_name="Signature1"), signer=signer).getvalue()


def file_signed(kit: Kit, circuit: str, document_type: str) -> str:
    """A signed PDF filed by the parapheur (its job), with a free type label; its renditions made."""
    stored = get_store().put(io.BytesIO(signed_pdf()))
    ged_jobs.file_signed_document(
        tenant_id=kit.tenant_id,
        folder_id=circuit,
        object_key=stored.key,
        size=stored.size,
        filename="deliberation-signee.pdf",
        media_type="application/pdf",
        title=f"Délibération {circuit}",
        document_type=document_type,
        signatories=["maire"],
        signed_by=None,  # a message queued before the parapheur sent names: the page names them itself
        ged_folder="Délibérations",
    )
    run_jobs()
    with new_session() as session:
        version = session.execute(select(Version).where(Version.origin == f"parapheur:{circuit}")).scalar_one()
        return version.document_id


def test_a_document_signed_in_the_parapheur_reads_right(app: Any, kit: Kit) -> None:
    assert kit["admin"].post("/ged/plan", json={"name": "Délibérations", "parent_id": None}).status_code == 201
    document_id = file_signed(kit, "circuit-1", "Délibération")
    with transaction() as session:
        entries = session.execute(
            select(AuditEntry.action, AuditEntry.details).where(
                AuditEntry.object_id == document_id, AuditEntry.action.like("ged.rendition.%")
            )
        ).all()
        # Recorded as deliberately skipped, not as a failure, and never asked again by a redo.
        assert [(action, details["rendu"], details["cause"]) for action, details in entries] == [
            ("ged.rendition.skipped", "PDF/A", renditions.SIGNED)
        ]
        assert renditions.redo_renditions(session, kit.tenant_id) == 0
        assert renditions.redo_renditions(session, kit.tenant_id, missing=True) == 0

    page = sign_in(app, kit, "admin").get(f"/documents/{document_id}").text
    assert "Échec d'un rendu" not in page
    assert page.count(SKIPPED) == 2  # the PDF/A line and the document's log
    assert "Pas de copie PDF/A pour ce document." not in page
    # The signatories by their display names, as the export names them, not by their logins.
    assert "Signé par Dominique Dupont" in page and "Signé par maire" not in page
    # Filed by the parapheur, which the page names in French, not by its code.
    assert "<dd>le parapheur, " in page and "<td>parapheur</td>" not in page
    # A free label the GED does not know as a type: said, rather than « document sans type ».
    assert "Non défini : le type « Délibération » n'est pas un type de document de la GED" in page
    assert "Non défini (document sans type)" not in page

    # A label that is a GED type's name, the document not attached to it: said as well.
    body = {"code": "arrete", "name": "Arrêté", "dua_months": 12, "dua_event": "document_date", "final_action": "keep"}
    assert kit["admin"].post("/ged/types", json=body).status_code == 201
    other = file_signed(kit, "circuit-2", "Arrêté")
    page = sign_in(app, kit, "admin").get(f"/documents/{other}").text
    assert "Non défini : le document n'est rattaché à aucun type de document de la GED" in page
    assert "type « Arrêté » : modifiez ses métadonnées" in page


def test_an_archived_document_is_frozen(app: Any, kit: Kit) -> None:
    """Chosen: like a held one, its GED copy takes no new version, no new metadata and no trash (409), since
    it would diverge from the SAE's; filing it in the plan and proposing its elimination stay possible."""
    document = upload_document(kit["agent"], make_pdf("Registre"), title="Registre 2018")
    document_id = document["id"]
    created = kit["admin"].post("/ged/plan", json={"name": "Registres", "parent_id": None})
    assert created.status_code == 201, created.text
    folder_id = created.json()["id"]
    with transaction() as session:
        marked = retention.mark_archived(
            session, kit.tenant_id, "versement-1", [{"document_id": document_id, "sae_identifier": "SAE-42"}]
        )
    assert marked == [document_id]

    agent = kit["agent"]
    pdf = {"file": ("v2.pdf", make_pdf("v2"), "application/pdf")}
    for answer in (
        agent.post(f"/ged/documents/{document_id}/versions", files=pdf),
        agent.patch(f"/ged/documents/{document_id}", json={"title": "Registre modifié"}),
        agent.delete(f"/ged/documents/{document_id}"),
    ):
        assert answer.status_code == 409, answer.text
        assert "archivé au système d'archivage (SAE-42)" in answer.json()["detail"]
    assert agent.get(f"/ged/documents/{document_id}").json()["current_version"] == 1
    assert agent.put(f"/ged/documents/{document_id}/folder", json={"folder_id": folder_id}).status_code == 200
    # Filing through the metadata route too, when the folder is all it changes; not with anything else.
    refiled = agent.patch(f"/ged/documents/{document_id}", json={"folder_id": None})
    assert refiled.status_code == 200 and refiled.json()["folder_id"] is None, refiled.text
    mixed = agent.patch(f"/ged/documents/{document_id}", json={"folder_id": folder_id, "title": "Autre"})
    assert mixed.status_code == 409, mixed.text

    client = sign_in(app, kit, "agent")
    page_url = f"/documents/{document_id}"
    page = client.get(page_url).text
    assert "Archivé au système d'archivage le" in page and "cette copie de la GED est figée" in page
    assert f'action="{page_url}/versions"' not in page and f'action="{page_url}/corbeille"' not in page
    assert f'href="{page_url}/metadonnees"' not in page
    assert f'action="{page_url}/classer"' in page  # filing stays
    files = {"file": ("v2.pdf", make_pdf("v2"), "application/pdf")}
    refused = post_form(client, page_url, f"{page_url}/versions", {}, files=files)
    assert refused.status_code == 409 and "document archivé au système d&#39;archivage (SAE-42)" in refused.text
    assert 'href="#file"' not in refused.text  # about the document, not a field the page no longer shows
    assert client.get(f"{page_url}/metadonnees").status_code == 409
    trashed = post_form(client, page_url, f"{page_url}/corbeille", {})
    assert trashed.status_code == 409 and "figée" in trashed.text
    assert agent.get(f"/ged/documents/{document_id}").json()["current_version"] == 1
