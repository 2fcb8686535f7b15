"""The archivist's tools: inspecting an uploaded SEDA package, and the mappings per GED document type."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from fastapi.testclient import TestClient
from ui_kit import csrf_of, post_form, sign_in

from conftest import Kit, make_pdf, run_jobs, upload_document

INSPECT = "/archives/inspection"


def built_package(kit: Kit, client: TestClient) -> bytes:
    """A package the kit built through the pages, as the archivist downloads it."""
    document = upload_document(kit["agent"], make_pdf("Arrêté à inspecter"), title="Arrêté n° 3")
    answer = post_form(
        client,
        "/archives/transferts/nouveau",
        "/archives/transferts/nouveau",
        {"selection": "documents", "document_ids": document["id"], "archival_agency": "AD037", "seda_version": "2.2"},
    )
    assert answer.status_code == 303, answer.text
    run_jobs()
    sip = client.get(f"{answer.headers['location']}/paquet")
    assert sip.status_code == 200
    return bytes(sip.content)


def tampered(package: bytes) -> bytes:
    """The same package with one content file changed: its digest and size no longer match the manifest."""
    source, target = zipfile.ZipFile(io.BytesIO(package)), io.BytesIO()
    with zipfile.ZipFile(target, "w") as out:
        for info in source.infolist():
            data = source.read(info)
            out.writestr(info.filename, data if info.filename == "manifest.xml" else data + b"altered")
    return target.getvalue()


def inspect(client: TestClient, filename: str, data: bytes) -> Any:
    token = csrf_of(client.get(INSPECT).text)
    return client.post(INSPECT, data={"csrf": token}, files={"file": (filename, data, "application/zip")})


def test_inspection_of_a_sound_package(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    form = client.get(INSPECT)
    assert form.status_code == 200 and 'enctype="multipart/form-data"' in form.text and 'type="file"' in form.text
    answer = inspect(client, "versement.zip", built_package(kit, client))
    assert answer.status_code == 200
    assert "Résultat pour versement.zip" in answer.text and "Aucun écart" in answer.text
    assert "Arrêté n° 3" in answer.text  # the tree of units
    assert "1 déclaré(s), 1 relu(s) et recalculé(s)" in answer.text
    assert "<td>Conforme</td>" in answer.text


def test_inspection_reports_each_discrepancy(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    answer = inspect(client, "modifie.zip", tampered(built_package(kit, client)))
    assert answer.status_code == 200
    assert "écart(s) trouvé(s)" in answer.text and "Aucun écart" not in answer.text
    assert "<strong>Écart</strong>" in answer.text

    not_a_zip = inspect(client, "note.zip", b"pas un zip")
    assert not_a_zip.status_code == 200 and "n&#39;est pas un zip lisible" in not_a_zip.text


def test_inspection_without_a_file_says_so_next_to_the_field(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    token = csrf_of(client.get(INSPECT).text)
    answer = client.post(INSPECT, data={"csrf": token})
    assert answer.status_code == 422 and 'id="file-erreur"' in answer.text
    empty = client.post(INSPECT, data={"csrf": token}, files={"file": ("vide.zip", b"", "application/zip")})
    assert empty.status_code == 422 and "Le fichier « vide.zip » est vide." in empty.text


def test_mappings_are_listed_opened_and_saved(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    listing = client.get("/archives/correspondances")
    assert listing.status_code == 200 and "Aucune correspondance enregistrée" in listing.text
    opened = client.get("/archives/correspondances?type=deliberation")
    assert opened.status_code == 303 and opened.headers["location"] == "/archives/correspondances/deliberation"
    page = client.get("/archives/correspondances/deliberation")
    assert page.status_code == 200 and "voici la correspondance par défaut" in page.text
    assert 'id="title" name="title" type="text" value="title"' in page.text

    url = "/archives/correspondances/deliberation"
    answer = post_form(
        client,
        url,
        url,
        {
            "title": "field:objet",
            "description_level": "File",
            "start_date": "document_date",
            "end_date": "document_date",
            "keyword_fields": "commune, theme",
            "originating_agency": "tenant",
            "submission_agency": "tenant",
            "access_start": "document_date",
        },
    )
    assert answer.status_code == 303
    saved = kit["archiviste"].get("/archive/mappings/deliberation").json()
    assert saved["title"] == "field:objet" and saved["description_level"] == "File"
    assert saved["keyword_fields"] == ["commune", "theme"] and saved["keywords_from_tags"] is False
    assert saved["default"] is False and saved["updated_by"] == "archiviste"
    page = client.get(url).text
    assert "Correspondance du type « deliberation » enregistrée." in page and 'value="field:objet"' in page
    assert 'href="/archives/correspondances/deliberation"' in client.get("/archives/correspondances").text


def test_a_wrong_mapping_is_refused_next_to_its_field(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    url = "/archives/correspondances/arrete"
    answer = post_form(client, url, url, {"title": "nimportequoi", "keyword_fields": "bon, mauvais nom"})
    assert answer.status_code == 422
    assert 'id="title-erreur"' in answer.text and 'id="keyword_fields-erreur"' in answer.text
    assert "Source inconnue" in answer.text
    assert 'value="nimportequoi"' in answer.text and 'value="bon, mauvais nom"' in answer.text
    assert kit["archiviste"].get("/archive/mappings/arrete").json()["default"] is True

    bad_code = client.get("/archives/correspondances?type=pas%20un%20code")
    assert bad_code.status_code == 422 and 'id="type-erreur"' in bad_code.text


def test_rules_are_chosen_from_the_referential(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    rules = [
        {"id": "APP-10", "category": "AppraisalRule", "duration": "P10Y", "description": "Dix ans"},
        {"id": "ACC-25", "category": "AccessRule", "duration": "P25Y"},
    ]
    assert kit["archiviste"].put("/archive/referential", json={"rules": rules}).status_code == 200
    url = "/archives/correspondances/deliberation"
    page = client.get(url).text
    assert '<option value="APP-10">APP-10 — P10Y — Dix ans</option>' in page
    assert '<option value="ACC-25">' in page.split('id="access_rule"')[1]
    assert '<option value="ACC-25">' not in page.split('id="appraisal_rule"')[1].split("</select>")[0]
    wrong = post_form(client, url, url, {"appraisal_rule": "ACC-25"})  # a forged choice of the wrong category
    assert wrong.status_code == 422 and 'id="appraisal_rule-erreur"' in wrong.text
    right = post_form(client, url, url, {"appraisal_rule": "APP-10", "access_rule": "ACC-25"})
    assert right.status_code == 303
    saved = kit["archiviste"].get("/archive/mappings/deliberation").json()
    assert saved["appraisal_rule"] == "APP-10" and saved["access_rule"] == "ACC-25"
