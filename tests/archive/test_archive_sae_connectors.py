"""The archive's copy of the collectivité's SAE connectors, told by the interop service through the queue: the
newest list kept whatever the order of the messages, the transfer form's list, and a send refused (422) through a
connector that list does not offer."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from ui_kit import post_form, sign_in

from archive.models import SaeConnectorList
from socle import messages
from socle.db import new_session, transaction
from socle.models import Job
from socle.queue import enqueue

from conftest import Kit, assert_problem, make_pdf, run_jobs, upload_document


def tell(kit: Kit, version: Any, connectors: Any) -> None:
    """The interop service's message, through the queue."""
    with transaction() as session:
        enqueue(
            session,
            messages.ARCHIVE_RECORD_SAE_CONNECTORS,
            tenant_id=kit.tenant_id,
            version=version,
            connectors=connectors,
        )


def kept(tenant_id: str) -> tuple[int, list[dict[str, Any]]] | None:
    with new_session() as session:
        row = session.get(SaeConnectorList, tenant_id)
        return (row.version, list(row.connectors)) if row is not None else None


def connector(name: str, kind: str = "depot", enabled: bool = True) -> dict[str, Any]:
    return {"name": name, "kind": kind, "enabled": enabled}


def depot(kit: Kit, name: str) -> None:
    response = kit["admin"].post("/interop/connectors", json={"name": name, "kind": "depot", "config": {"path": name}})
    assert response.status_code == 201, response.text


def built(kit: Kit, title: str = "Délibération à verser") -> str:
    document = upload_document(kit["agent"], make_pdf(title), title=title)
    created = kit["archiviste"].post(
        "/archive/transfers", json={"archival_agency": "AD037", "document_ids": [document["id"]]}
    )
    assert created.status_code == 202, created.text
    run_jobs()
    transfer = kit["archiviste"].get(f"/archive/transfers/{created.json()['id']}").json()
    assert transfer["status"] == "built", transfer
    return str(transfer["id"])


def send(kit: Kit, transfer_id: str, name: str) -> Any:
    return kit["archiviste"].post(f"/archive/transfers/{transfer_id}/send", json={"connector": name})


def deliveries_asked(tenant_id: str) -> int:
    with new_session() as session:
        query = select(Job.id).where(Job.tenant_id == tenant_id, Job.function == messages.INTEROP_DELIVER.function)
        return len(session.execute(query).all())


# ---------------------------------------------------------------------------------------------------------
# The list kept


def test_the_newest_list_is_kept_whatever_the_order_and_the_repeats(kit: Kit) -> None:
    assert kept(kit.tenant_id) is None
    newest = [connector("sae"), connector("vitam", "vitam")]
    tell(kit, 12, newest)
    tell(kit, 9, [connector("ancien")])  # older, arrived later: ignored
    tell(kit, 12, newest)  # the same message again
    run_jobs()
    assert kept(kit.tenant_id) == (12, newest)

    tell(kit, 13, [connector("vitam", "vitam"), connector("sae", enabled=False)])
    tell(kit, 12, [connector("ancien")])  # the same version with another list changes nothing either
    run_jobs()
    assert kept(kit.tenant_id) == (13, [connector("sae", enabled=False), connector("vitam", "vitam")])

    tell(kit, 20, [])  # every connector deleted: a known, empty list
    run_jobs()
    assert kept(kit.tenant_id) == (20, [])


def test_an_unreadable_list_fails_its_job_and_keeps_the_last_one(kit: Kit) -> None:
    tell(kit, 3, [connector("sae")])
    run_jobs()
    for version, connectors in ((4, "sae"), (5, [{"kind": "depot"}]), (6, [connector("x" * 101)]), ("7", [])):
        tell(kit, version, connectors)
    run_jobs()
    assert kept(kit.tenant_id) == (3, [connector("sae")])
    with new_session() as session:
        query = select(Job.status).where(
            Job.tenant_id == kit.tenant_id, Job.function == messages.ARCHIVE_RECORD_SAE_CONNECTORS.function
        )
        assert list(session.execute(query.order_by(Job.created_at)).scalars()) == ["done"] + ["failed"] * 4


# ---------------------------------------------------------------------------------------------------------
# Sending through the API


def test_a_send_through_a_connector_the_known_list_lacks_is_refused(kit: Kit) -> None:
    transfer_id = built(kit)
    depot(kit, "sae")
    depot(kit, "vitam-departement")
    run_jobs()  # interop's lists reach the archive

    refused = assert_problem(send(kit, transfer_id, "sea"), 422)
    assert refused["detail"] == (
        "le connecteur « sea » n'est pas un connecteur du système d'archivage de la collectivité ; "
        "connecteurs connus : sae, vitam-departement"
    )
    assert refused["usable_connectors"] == ["sae", "vitam-departement"] and refused["connector"] == "sea"
    transfer = kit["archiviste"].get(f"/archive/transfers/{transfer_id}").json()
    assert transfer["status"] == "built" and transfer["connector"] is None
    assert deliveries_asked(kit.tenant_id) == 0

    assert kit["admin"].patch("/interop/connectors/sae", json={"enabled": False}).status_code == 200
    run_jobs()
    disabled = assert_problem(send(kit, transfer_id, "sae"), 422)
    assert disabled["detail"] == (
        "le connecteur « sae » est désactivé ; connecteurs du système d'archivage actifs : vitam-departement"
    )
    assert kit["admin"].patch("/interop/connectors/vitam-departement", json={"enabled": False}).status_code == 200
    run_jobs()
    none = assert_problem(send(kit, transfer_id, "vitam-departement"), 422)
    assert "aucun connecteur du système d'archivage de la collectivité n'est actif" in none["detail"]
    assert none["usable_connectors"] == [] and deliveries_asked(kit.tenant_id) == 0

    assert kit["admin"].patch("/interop/connectors/sae", json={"enabled": True}).status_code == 200
    run_jobs()
    assert send(kit, transfer_id, "sae").status_code == 202
    run_jobs()
    assert kit["archiviste"].get(f"/archive/transfers/{transfer_id}").json()["status"] == "delivered"


def test_an_unknown_or_empty_list_refuses_nothing(kit: Kit) -> None:
    """Nothing known (connectors made before the lists): the interop service judges the name, as before."""
    transfer_id = built(kit)
    assert send(kit, transfer_id, "plus-tard").status_code == 202
    run_jobs()
    assert kit["archiviste"].get(f"/archive/transfers/{transfer_id}").json()["status"] == "delivery_failed"

    tell(kit, 1, [])
    run_jobs()
    assert send(kit, transfer_id, "plus-tard").status_code == 202
    assert deliveries_asked(kit.tenant_id) == 2


# ---------------------------------------------------------------------------------------------------------
# The transfer page, end to end: a connector created in interop reaches the form through the queue


def test_a_connector_created_in_interop_is_offered_on_the_transfer_form(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    first = built(kit, "Délibération n° 1")
    page_url = f"/archives/transferts/{first}"

    page = client.get(page_url).text
    assert "La liste des connecteurs du système d'archivage n'est pas encore connue du service d'archives" in page
    assert '<input id="connector" name="connector" type="text"' in page and '<select id="connector"' not in page

    depot(kit, "sae")
    depot(kit, "autre")
    run_jobs()
    page = client.get(page_url).text
    assert "pas encore connue" not in page and '<input id="connector"' not in page
    assert options(page) == [
        ("", "Choisissez un connecteur", False),  # two connectors, none used yet: the archivist chooses
        ("autre", "autre — Dépôt dans un dossier du serveur", False),
        ("sae", "sae — Dépôt dans un dossier du serveur", False),
    ]

    typo = post_form(client, page_url, f"{page_url}/envoyer", {"connector": "sea"})
    assert typo.status_code == 422
    assert re.search(
        r'<p class="field-error" id="connector-erreur">Le connecteur « sea » n&#39;est pas un connecteur', typo.text
    )
    assert "connecteurs connus : autre, sae" in typo.text

    sent = post_form(client, page_url, f"{page_url}/envoyer", {"connector": "sae"})
    assert sent.status_code == 303, sent.text
    run_jobs()
    assert kit["archiviste"].get(f"/archive/transfers/{first}").json()["status"] == "delivered"

    second = built(kit, "Délibération n° 2")
    assert [value for value, _text, chosen in options(client.get(f"/archives/transferts/{second}").text) if chosen] == [
        "sae"  # the last one used
    ]

    # Disabled in interop: no longer offered; none active, the page says so.
    assert kit["admin"].patch("/interop/connectors/sae", json={"enabled": False}).status_code == 200
    run_jobs()
    assert options(client.get(f"/archives/transferts/{second}").text) == [
        ("autre", "autre — Dépôt dans un dossier du serveur", True)  # the only one: chosen
    ]
    assert kit["admin"].delete("/interop/connectors/autre").status_code == 204
    run_jobs()
    page = client.get(f"/archives/transferts/{second}").text
    assert "Aucun connecteur du système d'archivage (Vitam, As@lae, dépôt, SFTP, WebDAV) n'est actif" in page
    assert '<select id="connector"' not in page


def options(page: str) -> list[tuple[str, str, bool]]:
    """The connector list's options: value, text, whether chosen."""
    found = re.search(r'<select id="connector" name="connector"[^>]*>(.*?)</select>', page, re.S)
    assert found, "pas de liste de connecteurs"
    return [
        (value, text.strip(), bool(selected))
        for value, selected, text in re.findall(r'<option value="([^"]*)"( selected)?>([^<]*)</option>', found.group(1))
    ]
