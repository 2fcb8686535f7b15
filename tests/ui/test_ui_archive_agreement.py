"""The new-transfer form asks for the entry contract; a rule id made up for lack of a referential is a warning."""

from __future__ import annotations

import re
from typing import Any

from ui_kit import csrf_of, post_form, sign_in

from conftest import Kit, make_pdf, run_jobs, upload_document

NEW = "/archives/transferts/nouveau"


def ask(client: Any, **fields: str) -> str:
    answer = post_form(client, NEW, NEW, {"archival_agency": "AD037", "seda_version": "2.2", **fields})
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/archives/transferts/([0-9a-f-]{36})", answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def test_the_entry_contract_is_asked_shown_and_offered_again(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    form = client.get(NEW).text
    assert '<label for="archival_agreement">Contrat d\'entrée</label>' in form
    assert "Identifiant du contrat d'entrée donné par le service d'archives." in form
    document = upload_document(kit["agent"], make_pdf("Délibération"), title="Délibération n° 4")

    transfer_id = ask(client, selection="documents", document_ids=document["id"], archival_agreement=" IC-000001 ")
    run_jobs()
    transfer = kit["archiviste"].get(f"/archive/transfers/{transfer_id}").json()
    assert transfer["archival_agreement"] == "IC-000001" and transfer["status"] == "built"
    page = client.get(f"/archives/transferts/{transfer_id}").text
    assert "<dt>Contrat d'entrée</dt><dd>IC-000001</dd>" in page
    # Most collectivités send under one contract: the next form offers it, as does « do it again ».
    assert 'name="archival_agreement" type="text" value="IC-000001"' in client.get(NEW).text
    assert 'value="IC-000001"' in client.get(f"{NEW}?depuis={transfer_id}").text

    token = csrf_of(client.get(NEW).text)
    bad = client.post(
        NEW, data={"csrf": token, "selection": "dua", "archival_agency": "AD037", "archival_agreement": "I" * 101}
    )
    assert bad.status_code == 422 and 'id="archival_agreement-erreur"' in bad.text


def test_a_made_up_rule_is_shown_as_a_warning(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    made = kit["admin"].post("/ged/types", json={"code": "bon", "name": "Bon", "dua_months": 18})
    assert made.status_code == 201, made.text
    added = kit["admin"].post(
        "/ged/documents",
        files={"file": ("bon.pdf", make_pdf("Bon"), "application/pdf")},
        data={"title": "Bon", "type": "bon"},
    )
    assert added.status_code == 201, added.text

    transfer_id = ask(client, selection="documents", document_ids=added.json()["id"], archival_agreement="IC-000001")
    run_jobs()
    page = client.get(f"/archives/transferts/{transfer_id}").text

    assert "status-built" in page and "Paquet conforme" in page
    assert "1 avertissement(s) à lire avant l'envoi" in page
    assert "<strong>Avertissement :</strong> Règle DUA-P18M inventée faute de référentiel" in page
    assert "Envoyer au système d'archivage" in page  # still sendable
