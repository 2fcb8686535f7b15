"""The archivist's pages: build a transfer, read its validation report, send it, follow it to the SAE's reply."""

from __future__ import annotations

import importlib.util
import io
import re
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi.testclient import TestClient
from ui_kit import csrf_of, post_form, sign_in

from conftest import SHARED_SEDA, Kit, make_pdf, run_jobs, upload_document

NEW = "/archives/transferts/nouveau"


def sae_messages() -> ModuleType:
    """The SAE message builders of the archive tests (tests/archive/sae_messages.py), checked there against the XSDs."""
    found = sys.modules.get("sae_messages")
    if found is None:
        spec = importlib.util.spec_from_file_location(
            "sae_messages", Path(__file__).parents[1] / "archive" / "sae_messages.py"
        )
        assert spec is not None and spec.loader is not None
        found = importlib.util.module_from_spec(spec)
        sys.modules["sae_messages"] = found
        spec.loader.exec_module(found)
    return found


def api_transfer(kit: Kit, transfer_id: str) -> dict[str, Any]:
    response = kit["archiviste"].get(f"/archive/transfers/{transfer_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def ask_transfer(client: TestClient, **fields: str) -> str:
    """Submit the new transfer form; return the new transfer's id (from the redirect)."""
    answer = post_form(client, NEW, NEW, {"archival_agency": "AD037", "seda_version": "2.2", **fields})
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/archives/transferts/([0-9a-f-]{36})", answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def built_transfer(kit: Kit, client: TestClient, title: str = "Délibération à verser") -> tuple[str, str]:
    document = upload_document(kit["agent"], make_pdf(title), title=title)
    transfer_id = ask_transfer(client, selection="documents", document_ids=document["id"])
    run_jobs()
    return transfer_id, str(document["id"])


def create_connector(kit: Kit, name: str = "sae") -> None:
    response = kit["admin"].post("/interop/connectors", json={"name": name, "kind": "depot", "config": {"path": name}})
    assert response.status_code == 201, response.text


def set_referential(kit: Kit, algorithms: list[str]) -> None:
    response = kit["archiviste"].put("/archive/referential", json={"rules": [], "digest_algorithms": algorithms})
    assert response.status_code == 200, response.text


def sent_transfer(kit: Kit, client: TestClient) -> tuple[str, str]:
    transfer_id, document_id = built_transfer(kit, client)
    create_connector(kit)
    page = f"/archives/transferts/{transfer_id}"
    answer = post_form(client, page, f"{page}/envoyer", {"connector": "sae"})
    assert answer.status_code == 303, answer.text
    run_jobs()
    assert api_transfer(kit, transfer_id)["status"] == "delivered"
    return transfer_id, document_id


# ---------------------------------------------------------------------------------------------------------


def test_home_offers_the_dua_transfer_and_counts_the_transfers(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    page = client.get("/archives")
    assert page.status_code == 200
    assert page.text.count("<h1>") == 1
    assert "À envoyer : 0" in page.text
    assert 'href="/archives/transferts/nouveau?selection=dua"' in page.text
    assert 'href="/archives/dua"' in page.text and 'href="/archives/eliminations"' in page.text
    assert "Aucun versement de fin de DUA pour l'instant." in page.text
    built_transfer(kit, client)
    assert "À envoyer : 1" in client.get("/archives").text
    assert 'href="/archives"' in client.get("/").text  # the navigation offers the section


def test_archivist_builds_and_validates_a_transfer(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    document = upload_document(kit["agent"], make_pdf("Délibération n° 12"), title="Délibération n° 12")
    form = client.get(f"{NEW}?documents={document['id']}")
    assert form.status_code == 200
    assert document["id"] in form.text and 'value="documents" checked' in form.text  # prefilled from the GED's link
    transfer_id = ask_transfer(client, selection="documents", document_ids=document["id"], comment="Conseil de mai")

    waiting = client.get(f"/archives/transferts/{transfer_id}")
    assert waiting.status_code == 200
    assert "Versement demandé" in waiting.text  # the flash message
    assert "status-requested" in waiting.text and "Le rapport sera disponible" in waiting.text
    assert api_transfer(kit, transfer_id)["selection"] == {"kind": "documents"}

    run_jobs()
    page = client.get(f"/archives/transferts/{transfer_id}").text
    assert "status-built" in page and "Paquet conforme" in page
    assert "Schéma XSD du SEDA" in page and "Contrôles métier du système d'archivage" in page
    assert "Conseil de mai" in page and f'href="/documents/{document["id"]}"' in page
    assert 'aria-current="step"' not in page  # nothing in progress: waiting for the archivist to send it
    transfer = api_transfer(kit, transfer_id)
    assert transfer["status"] == "built" and transfer["validation"]["status"] == "valid"

    sip = client.get(f"/archives/transferts/{transfer_id}/paquet")
    assert sip.status_code == 200 and sip.headers["content-type"] == "application/zip"
    assert f"{transfer['message_identifier']}.zip" in sip.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(sip.content)) as package:
        assert package.namelist()[0] == "manifest.xml"
        assert b"Conseil de mai" in package.read("manifest.xml")


def test_new_transfer_errors_are_next_to_their_fields_and_keep_what_was_typed(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    token = csrf_of(client.get(NEW).text)
    answer = client.post(
        NEW,
        data={"csrf": token, "selection": "documents", "document_ids": " ", "archival_agency": "", "comment": "Mai"},
    )
    assert answer.status_code == 422
    assert 'id="document_ids-erreur"' in answer.text and 'id="archival_agency-erreur"' in answer.text
    assert "Indiquez au moins un identifiant de document." in answer.text
    assert 'aria-describedby="archival_agency-aide archival_agency-erreur"' in answer.text
    assert 'value="Mai"' in answer.text and 'value="documents" checked' in answer.text

    nothing_chosen = client.post(NEW, data={"csrf": token, "archival_agency": "AD037"})
    assert nothing_chosen.status_code == 422 and 'id="selection-erreur"' in nothing_chosen.text
    assert 'value="AD037"' in nothing_chosen.text

    no_profile = client.post(
        NEW, data={"csrf": token, "selection": "dua", "archival_agency": "AD037", "profile": "inconnu"}
    )
    assert no_profile.status_code == 422 and 'id="profile-erreur"' in no_profile.text
    assert "inconnu" in no_profile.text

    too_long = client.post(NEW, data={"csrf": token, "selection": "dua", "archival_agency": "A" * 101})
    assert too_long.status_code == 422 and "100 caractères au plus" in too_long.text
    assert kit["archiviste"].get("/archive/transfers").json() == []  # nothing was created


def test_transfers_by_folder_and_by_dua_are_asked_to_the_ged(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    folder = kit["admin"].post("/ged/plan", json={"name": "Conseil municipal", "parent_id": None, "code": "1D"})
    assert folder.status_code == 201, folder.text
    by_folder = ask_transfer(client, selection="dossier", folder_id=folder.json()["id"])
    by_dua = ask_transfer(client, selection="dua")
    assert api_transfer(kit, by_folder)["selection"] == {"kind": "folder", "folder_id": folder.json()["id"]}
    assert api_transfer(kit, by_dua)["selection"] == {"kind": "dua_reached"}

    run_jobs()  # nothing to transfer in either: the GED says so, the transfer is in error with its reason
    page = client.get(f"/archives/transferts/{by_dua}").text
    assert "status-error" in page and 'role="alert"' in page
    assert "aucun document n&#39;a atteint la fin de sa DUA" in page
    assert f'href="/archives/transferts/nouveau?depuis={by_dua}"' in page  # do it again later
    again = client.get(f"{NEW}?depuis={by_folder}").text
    assert 'value="dossier" checked' in again and f'value="{folder.json()["id"]}"' in again
    home = client.get("/archives").text
    assert "Derniers versements de fin de DUA" in home and f'href="/archives/transferts/{by_dua}"' in home


def test_an_invalid_package_shows_each_problem_with_its_element_then_validates_again(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    set_referential(kit, ["SHA-256"])  # the SAE would not recompute the kit's SHA-512 digests
    transfer_id, _ = built_transfer(kit, client)
    page = client.get(f"/archives/transferts/{transfer_id}")
    assert page.status_code == 200
    assert "Paquet non conforme" in page.text and "status-invalid" in page.text
    assert "<strong>MessageDigest</strong>" in page.text and "objet binaire" in page.text
    assert "Algorithme d&#39;empreinte « SHA-512 » non accepté (acceptés : SHA-256)" in page.text
    assert "<td>Algorithme d&#39;empreinte" in page.text  # the location is shown apart, not repeated in the message
    assert "Traceback" not in page.text
    assert "Envoyer au système d'archivage" not in page.text  # an invalid package is not sent

    set_referential(kit, ["SHA-512"])  # the referential corrected: the same package passes
    answer = post_form(client, f"/archives/transferts/{transfer_id}", f"/archives/transferts/{transfer_id}/valider", {})
    assert answer.status_code == 303
    page = client.get(f"/archives/transferts/{transfer_id}").text
    assert "Paquet validé : il est conforme." in page and "Paquet conforme" in page
    assert api_transfer(kit, transfer_id)["status"] == "built"


def test_an_unvalidated_package_is_sent_only_once_confirmed(
    app: Any, kit: Kit, use_env: Callable[..., None], tmp_path: Path
) -> None:
    client = sign_in(app, kit, "archiviste")
    use_env(SOCLE_SEDA_SCHEMAS=str(tmp_path / "absents"))
    transfer_id, _ = built_transfer(kit, client)
    page_url = f"/archives/transferts/{transfer_id}"
    page = client.get(page_url).text
    assert "status-unvalidated" in page and "Validation incomplète" in page
    assert "socle archive schemas install" in page

    create_connector(kit)
    refused = post_form(client, page_url, f"{page_url}/envoyer", {"connector": "sae"})
    assert refused.status_code == 409 and 'id="accept_unvalidated-erreur"' in refused.text
    assert 'value="sae"' in refused.text
    assert api_transfer(kit, transfer_id)["status"] == "unvalidated"

    use_env(SOCLE_SEDA_SCHEMAS=str(SHARED_SEDA))  # the schemas installed: validating again makes it valid
    assert post_form(client, page_url, f"{page_url}/valider", {}).status_code == 303
    assert api_transfer(kit, transfer_id)["status"] == "built"


def test_sending_then_the_sae_accepts_with_its_identifiers(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    transfer_id, document_id = built_transfer(kit, client)
    page_url = f"/archives/transferts/{transfer_id}"
    missing = post_form(client, page_url, f"{page_url}/envoyer", {"connector": ""})
    assert missing.status_code == 422 and 'id="connector-erreur"' in missing.text

    create_connector(kit)
    sent = post_form(client, page_url, f"{page_url}/envoyer", {"connector": "sae"})
    assert sent.status_code == 303
    assert "status-sending" in client.get(page_url).text
    run_jobs()
    page = client.get(page_url).text
    assert "status-delivered" in page and 'aria-current="step"' in page  # waiting for the acknowledgement
    again = post_form(client, page_url, f"{page_url}/envoyer", {"connector": "sae"})
    assert again.status_code == 409  # the form is gone, and a forged post is refused by the domain

    builders = sae_messages()
    request = api_transfer(kit, transfer_id)["message_identifier"]
    sae_messages().sae_sends(
        kit.tenant_id, transfer_id, "acknowledgement", builders.acknowledgement("2.2", request, "ACK-1")
    )
    assert "status-acknowledged" in client.get(page_url).text
    reply = builders.transfer_reply("2.2", request, "OK", "ATR-77", units={"AU1": "aeaqaaaaaahg6"})
    sae_messages().sae_sends(kit.tenant_id, transfer_id, "reply", reply)
    page = client.get(page_url).text
    assert "status-accepted" in page and "Transfert accepté par le système d&#39;archivage (code OK)." in page
    assert "aeaqaaaaaahg6" in page and "ATR-77" in page and "ACK-1" in page
    assert f'<a href="/documents/{document_id}">' in page.split("Unités d'archives dans le système")[1]
    assert api_transfer(kit, transfer_id)["status"] == "accepted"


def test_a_rejection_shows_the_reasons(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    transfer_id, _ = sent_transfer(kit, client)
    builders = sae_messages()
    request = api_transfer(kit, transfer_id)["message_identifier"]
    sae_messages().sae_sends(
        kit.tenant_id,
        transfer_id,
        "reply",
        builders.transfer_reply("2.2", request, "KO", events=builders.VITAM_REFUSAL),
    )
    page = client.get(f"/archives/transferts/{transfer_id}").text
    assert "status-rejected" in page and "Motifs du refus" in page
    assert "Règle de gestion APP-99 inconnue du référentiel" in page
    assert f"nouveau?depuis={transfer_id}" in page


def test_the_list_filters_by_state(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    empty = client.get("/archives/transferts")
    assert empty.status_code == 200 and "Aucun versement pour l'instant." in empty.text
    ready, _ = built_transfer(kit, client)
    failed = ask_transfer(client, selection="dua")
    run_jobs()
    every = client.get("/archives/transferts").text
    assert f"/archives/transferts/{ready}" in every and f"/archives/transferts/{failed}" in every
    assert "<caption>Versements : 2</caption>" in every
    to_send = client.get("/archives/transferts?etat=a-envoyer").text
    assert f"/archives/transferts/{ready}" in to_send and f"/archives/transferts/{failed}" not in to_send
    assert '<option value="a-envoyer" selected>' in to_send
    in_error = client.get("/archives/transferts?etat=error").text
    assert f"/archives/transferts/{failed}" in in_error and f"/archives/transferts/{ready}" not in in_error
    none = client.get("/archives/transferts?etat=accepted").text
    assert "Aucun versement dans cet état." in none
    unknown = client.get("/archives/transferts?etat=nimporte&page=99")
    assert unknown.status_code == 200 and f"/archives/transferts/{ready}" in unknown.text


def test_another_collectivite_s_transfer_is_not_found(app: Any, kit: Kit, make_kit: Callable[..., Kit]) -> None:
    client = sign_in(app, kit, "archiviste")
    transfer_id, _ = built_transfer(kit, client)
    other = sign_in(app, make_kit(with_identity=False), "archiviste")
    for path in (f"/archives/transferts/{transfer_id}", f"/archives/transferts/{transfer_id}/paquet"):
        answer = other.get(path)
        assert answer.status_code == 404 and answer.headers["content-type"].startswith("text/html")
    page = other.get("/archives/transferts").text
    assert transfer_id not in page
    answer = post_form(other, "/archives/transferts", f"/archives/transferts/{transfer_id}/valider", {})
    assert answer.status_code == 404
    assert api_transfer(kit, transfer_id)["status"] == "built"


def test_the_archive_pages_are_for_archivists(app: Any, kit: Kit) -> None:
    agent = sign_in(app, kit, "agent")
    for path in ("/archives", "/archives/transferts", NEW, "/archives/inspection", "/archives/correspondances"):
        answer = agent.get(path)
        assert answer.status_code == 403, path
        assert "Action non autorisée" in answer.text
    token = csrf_of(agent.get("/").text)
    answer = agent.post(NEW, data={"csrf": token, "selection": "dua", "archival_agency": "AD037"})
    assert answer.status_code == 403
    assert kit["archiviste"].get("/archive/transfers").json() == []
    assert 'href="/archives"' not in agent.get("/").text
    admin = sign_in(app, kit, "admin")  # administrators see every section
    assert admin.get("/archives").status_code == 200


def test_the_pages_speak_english_too(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    home = client.get("/archives")
    client.post("/langue", data={"csrf": csrf_of(home.text), "locale": "en", "suivant": "/archives"})
    english = client.get("/archives").text
    assert '<html lang="en">' in english and "New transfer" in english and "Nouveau versement" not in english
