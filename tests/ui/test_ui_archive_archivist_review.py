"""An archivist's review of the archive pages: a transfer redone is no longer « à corriger », warnings are called
warnings, an abandoned transfer says so, the SAE is named as its maker names it."""

from __future__ import annotations

import uuid
from typing import Any

from test_ui_archive_transfers import NEW, api_transfer, ask_transfer, sae_messages, sent_transfer
from ui_kit import post_form, sign_in

from archive.models import Transfer
from socle.db import transaction

from conftest import Kit, make_pdf, run_jobs, upload_document


def test_a_transfer_redone_is_no_longer_counted_to_correct(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    failed = ask_transfer(client, selection="documents", document_ids=str(uuid.uuid4()))  # unknown to the GED
    run_jobs()
    assert api_transfer(kit, failed)["status"] == "error"
    assert "À corriger : 1" in client.get("/archives").text

    form = client.get(f"{NEW}?depuis={failed}").text
    assert f'<input type="hidden" name="depuis" value="{failed}">' in form
    document = upload_document(kit["agent"], make_pdf("Délibération"), title="Délibération")
    redo = ask_transfer(client, selection="documents", document_ids=document["id"], depuis=failed)
    run_jobs()

    assert api_transfer(kit, redo)["status"] == "built"
    assert api_transfer(kit, failed)["status"] == "error"  # it stays « En erreur »…
    assert "À corriger : 0" in client.get("/archives").text  # …but waits for no correction
    assert failed not in client.get("/archives/transferts?etat=a-corriger").text
    assert failed in client.get("/archives/transferts?etat=error").text  # the state itself still lists it
    page = client.get(f"/archives/transferts/{failed}").text
    assert "<dt>Refait par</dt>" in page and f'href="/archives/transferts/{redo}"' in page
    assert f'href="/archives/transferts/{failed}"' in client.get(f"/archives/transferts/{redo}").text


def test_a_redo_of_another_collectivite_s_transfer_is_not_linked(app: Any, kit: Kit, make_kit: Any) -> None:
    other = make_kit()
    foreign = sign_in(app, other, "archiviste")
    theirs = ask_transfer(foreign, selection="documents", document_ids=str(uuid.uuid4()))
    run_jobs()
    client = sign_in(app, kit, "archiviste")

    mine = ask_transfer(client, selection="dua", depuis=theirs)

    with transaction() as session:
        transfer = session.get(Transfer, mine)
        assert transfer is not None and transfer.redo_of is None


def test_warnings_are_called_warnings_and_read_before_sending_only(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    made = kit["admin"].post("/ged/types", json={"code": "bon", "name": "Bon", "dua_months": 18})
    assert made.status_code == 201, made.text
    added = kit["admin"].post(
        "/ged/documents",
        files={"file": ("bon.pdf", make_pdf("Bon"), "application/pdf")},
        data={"title": "Bon", "type": "bon"},
    )
    assert added.status_code == 201, added.text
    transfer_id = ask_transfer(client, selection="documents", document_ids=added.json()["id"])
    run_jobs()
    page_url = f"/archives/transferts/{transfer_id}"
    page = client.get(page_url).text

    assert "avertissement(s) à lire avant l'envoi" in page
    title = page[page.index("<h3>Contrôles métier") : page.index("</h3>", page.index("<h3>Contrôles métier"))]
    assert "conforme — 2 avertissement(s)" in title and "problème" not in title, title
    assert '<th scope="col">Avertissements</th>' in page

    done = post_form(client, page_url, f"{page_url}/abandonner", {"raison": "Refait autrement"})
    assert done.status_code == 303, done.text
    page = client.get(page_url).text
    assert "à lire avant l'envoi" not in page and "2 avertissement(s), détaillés ci-dessous." in page
    steps = page[page.index('<ol class="archive-steps">') : page.index("</ol>")]
    assert "en échec" not in steps and "à venir" not in steps, steps
    assert "Fin du versement</span> : <strong>abandonné par l'archiviste" in steps
    assert "Paquet envoyé</span> : <strong>non fait : versement abandonné avant" in steps


def test_the_state_filter_has_one_label_per_state(app: Any, kit: Kit) -> None:
    page = sign_in(app, kit, "archiviste").get("/archives/transferts").text

    assert '<option value="built">Prêt à envoyer</option>' in page
    assert '<option value="a-envoyer">À envoyer</option>' in page and "Prêts à envoyer" not in page


def test_the_archival_system_is_named_as_its_maker_names_it(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    transfer_id, _ = sent_transfer(kit, client)
    builders = sae_messages()
    request = api_transfer(kit, transfer_id)["message_identifier"]
    builders.sae_sends(kit.tenant_id, transfer_id, "reply", builders.transfer_reply("2.2", request, "000", "ATR-1"))
    with transaction() as session:  # as the As@lae connector's receipt names it (interop.connectors.asalae)
        transfer = session.get(Transfer, transfer_id)
        assert transfer is not None
        transfer.sae_identifiers = {**(transfer.sae_identifiers or {}), "sae": "asalae"}

    page = client.get(f"/archives/transferts/{transfer_id}").text

    assert "<dt>Système d'archivage</dt><dd>As@lae</dd>" in page
