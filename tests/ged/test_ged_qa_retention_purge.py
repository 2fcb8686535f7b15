"""The trash purge removes only what nothing keeps: not a document whose DUA has not started, nor one in a
transfer in progress or in an open elimination, nor an elimination's notice; a document restored (or purged)
between the listing and its turn is left alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from ga_helpers import make_type, new_document
from sqlalchemy import update

from ged import retention
from ged.models import Document
from socle.db import new_session, transaction, utcnow
from socle.migrating import upgrade_all

from conftest import Kit, run_jobs


def age_in_trash(document_id: str, days: int) -> None:
    with transaction() as session:
        when = utcnow() - timedelta(days=days)
        session.execute(update(Document).where(Document.id == document_id).values(deleted_at=when))


def trash(kit: Kit, document: dict[str, Any], days: int = 40) -> None:
    response = kit["agent"].delete(f"/ged/documents/{document['id']}")
    assert response.status_code == 200, response.text
    age_in_trash(document["id"], days)


def purge(kit: Kit) -> dict[str, Any]:
    response = kit["admin"].post("/ged/trash/purge")
    assert response.status_code == 200, response.text
    return dict(response.json())


def in_trash(kit: Kit) -> set[str]:
    return {item["id"] for item in kit["agent"].get("/ged/trash", params={"limit": 100}).json()["items"]}


def test_a_document_whose_dua_has_not_started_is_not_purged(kit: Kit) -> None:
    """A contract kept 10 years after its end: no end date yet, so its DUA has not even started."""
    make_type(
        kit,
        "contrat",
        dua_months=120,
        dua_event="fin",
        final_action="destroy",
        fields=[{"name": "fin", "label": "Fin du contrat", "kind": "date"}],
    )
    contract = new_document(kit, type="contrat", title="Contrat de maintenance")
    untyped = new_document(kit, text="sans type")  # no rule at all: the purge may take it
    assert kit["agent"].get(f"/ged/documents/{contract['id']}").json()["dua_ends_on"] is None
    trash(kit, contract)
    trash(kit, untyped)

    report = purge(kit)

    assert report["purged"] == [untyped["id"]]
    assert "DUA non commencée" in report["kept"][contract["id"]]
    assert contract["id"] in in_trash(kit)


def test_a_document_in_a_transfer_in_progress_is_not_purged(kit: Kit) -> None:
    make_type(kit, "registre", dua_months=12, dua_event="document_date", final_action="keep")
    register = new_document(kit, type="registre", date="2019-01-01", title="Registre 2018")
    created = kit["archiviste"].post(
        "/archive/transfers", json={"archival_agency": "AD037", "document_ids": [register["id"]]}
    )
    assert created.status_code == 202, created.text
    run_jobs()
    assert kit["agent"].get(f"/ged/documents/{register['id']}").json()["disposal"] == "transferred"
    # Frozen until the transfer ends, it no longer goes to the trash (test_transfer_freeze.py); one an older release
    # let go there is still kept by the purge.
    assert kit["agent"].delete(f"/ged/documents/{register['id']}").status_code == 409
    age_in_trash(register["id"], 40)

    report = purge(kit)

    assert report["purged"] == []
    assert "versement en cours" in report["kept"][register["id"]]
    assert kit["archiviste"].get(f"/ged/documents/{register['id']}/content").status_code == 404  # in the trash
    assert register["id"] in in_trash(kit)


def test_the_elimination_decides_for_a_trashed_document_it_holds_and_its_notice_stays(kit: Kit) -> None:
    make_type(kit, "bon", dua_months=12, dua_event="document_date", final_action="destroy")
    order = new_document(kit, type="bon", date="2019-05-02", title="Bon de commande", text="bon")
    trash(kit, order)
    proposal = kit["archiviste"].post("/ged/eliminations", json={"document_ids": [order["id"]]})
    assert proposal.status_code == 201, proposal.text
    elimination_id = proposal.json()["id"]

    report = purge(kit)  # proposed, not yet approved: the four eyes decide, not the purge
    assert "proposé à l'élimination" in report["kept"][order["id"]]

    assert kit["admin"].post(f"/ged/eliminations/{elimination_id}/approve").status_code == 200
    done = kit["archiviste"].post(f"/ged/eliminations/{elimination_id}/execute")
    assert done.status_code == 200, done.text

    report = purge(kit)  # eliminated: the record is the notice that stays
    assert report["purged"] == [] and "notice" in report["kept"][order["id"]]
    with transaction() as session:
        tombstone = session.get(Document, order["id"])
        assert tombstone is not None and tombstone.disposal == "eliminated"


def test_two_purges_at_once_remove_each_document_once_and_touch_no_live_one(kit: Kit) -> None:
    """The purge lists its candidates, then takes each in its own transaction: the scheduled job and the
    administrator's button may run together; the second finds the document gone (and must go on), and a
    document that is no longer in the trash past its window when its turn comes is left alone."""
    old = new_document(kit, title="Ancien")
    trash(kit, old)
    live = new_document(kit, title="Restauré", text="vivant")
    recent = new_document(kit, title="Mis à la corbeille hier", text="hier")
    trash(kit, recent, days=1)

    first, second = retention.PurgeReport(), retention.PurgeReport()
    with new_session() as session:
        assert retention._purge_one(session, kit.tenant_id, old["id"], retention.SYSTEM, first) is None
        for document_id in (old["id"], live["id"], recent["id"]):
            assert retention._purge_one(session, kit.tenant_id, document_id, retention.SYSTEM, second) is None

    assert first.purged == [old["id"]] and second.purged == []
    assert kit["agent"].get(f"/ged/documents/{live['id']}").status_code == 200
    assert recent["id"] in in_trash(kit)


@pytest.mark.integration
def test_purge_and_carrying_out_on_postgres(
    postgres_url: str, use_env: Callable[..., None], make_kit: Callable[..., Kit]
) -> None:
    """The same rules where row locks are real: a second purge finds the document gone and goes on; an
    approved elimination keeps the document held since and eliminates the other."""
    use_env(SOCLE_DATABASE_URL=postgres_url)
    upgrade_all()
    kit = make_kit(with_identity=False)
    make_type(kit, "bon", dua_months=12, dua_event="document_date", final_action="destroy")
    old = new_document(kit, title="Ancien")
    trash(kit, old)
    first, second = retention.PurgeReport(), retention.PurgeReport()
    with new_session() as session:
        assert retention._purge_one(session, kit.tenant_id, old["id"], retention.SYSTEM, first) is None
        assert retention._purge_one(session, kit.tenant_id, old["id"], retention.SYSTEM, second) is None
    assert (first.purged, second.purged) == ([old["id"]], [])

    order = new_document(kit, type="bon", date="2019-05-02", title="Bon de commande", text="bon")
    disputed = new_document(kit, type="bon", date="2019-05-02", title="Bon litigieux", text="litige")
    proposal = kit["archiviste"].post("/ged/eliminations", json={"document_ids": [order["id"], disputed["id"]]})
    assert kit["admin"].post(f"/ged/eliminations/{proposal.json()['id']}/approve").status_code == 200
    hold = kit["archiviste"].post("/ged/holds", json={"name": "Litige", "reason": "recours"}).json()
    kit["archiviste"].post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [disputed["id"]]})
    done = kit["archiviste"].post(f"/ged/eliminations/{proposal.json()['id']}/execute")
    assert done.status_code == 200, done.text
    assert kit["agent"].get(f"/ged/documents/{order['id']}/content").status_code == 410
    assert kit["agent"].get(f"/ged/documents/{disputed['id']}/content").status_code == 200
