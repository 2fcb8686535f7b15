"""The transfer page's « Abandonner le versement »: shown while the SAE does not have the package, with a reason
and a confirmation; the documents go back to the GED."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from test_ui_archive_transfers import api_transfer, built_transfer, sent_transfer
from ui_kit import csrf_of, post_form, sign_in

from archive.models import Transfer
from socle.db import transaction

from conftest import Kit, run_jobs

BUTTON = "Abandonner le versement"


def test_abandoning_a_built_transfer_from_its_page(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    transfer_id, document_id = built_transfer(kit, client)
    page_url = f"/archives/transferts/{transfer_id}"
    page = client.get(page_url).text
    assert BUTTON in page
    action = f'action="/archives/transferts/{transfer_id}/abandonner"'
    form = page[page.index(action) : page.index("</form>", page.index(action))]
    assert "data-confirm=" in form and 'name="csrf"' in form
    assert '<label for="raison">Raison de l' in form and '<textarea id="raison" name="raison"' in form

    missing = post_form(client, page_url, f"{page_url}/abandonner", {"raison": "  "})
    assert missing.status_code == 422
    assert "Dites pourquoi le versement est abandonné." in missing.text
    assert api_transfer(kit, transfer_id)["status"] == "built"

    done = post_form(client, page_url, f"{page_url}/abandonner", {"raison": "Versement en double"})
    assert done.status_code == 303, done.text
    assert done.headers["location"] == page_url
    page = client.get(page_url).text
    assert "Versement abandonné : ses documents sont rendus à la GED." in page
    assert "Abandonné" in page and "Versement en double" in page and "Raison de l" in page
    assert BUTTON not in page and "Refaire ce versement" in page
    assert api_transfer(kit, transfer_id)["error"] == "Versement en double"
    run_jobs()
    assert kit["agent"].get(f"/ged/documents/{document_id}").json()["disposal"] is None
    listed = client.get("/archives/transferts?etat=abandonnes").text
    assert transfer_id in listed and '<option value="abandonnes" selected>' in listed
    assert "Abandonnés : 1" in client.get("/archives").text


def test_no_button_while_the_package_is_being_sent_and_the_post_is_refused(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    transfer_id, _ = sent_transfer(kit, client)
    with transaction() as session:  # the delivery under way: the SAE may be receiving the package right now
        session.execute(update(Transfer).where(Transfer.id == transfer_id).values(status="sending"))
    page_url = f"/archives/transferts/{transfer_id}"
    assert BUTTON not in client.get(page_url).text

    refused = client.post(f"{page_url}/abandonner", data={"csrf": csrf_of(client.get("/").text), "raison": "Erreur"})

    assert refused.status_code == 409
    assert "ne peut pas être abandonné pendant son envoi" in refused.text
    assert api_transfer(kit, transfer_id)["status"] == "sending"


def test_agents_cannot_abandon(app: Any, kit: Kit) -> None:
    transfer_id, _ = built_transfer(kit, sign_in(app, kit, "archiviste"))
    agent = sign_in(app, kit, "agent")
    token = csrf_of(agent.get("/").text)

    answer = agent.post(f"/archives/transferts/{transfer_id}/abandonner", data={"csrf": token, "raison": "Non"})

    assert answer.status_code == 403
    assert api_transfer(kit, transfer_id)["status"] == "built"
