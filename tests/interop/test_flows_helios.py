"""The « helios » flow end to end: signed PES Aller → S²LOW simulator → PES Acquit → GED."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from s2low_helpers import S2low, add_s2low, drive, events, flow_of, start, step_jobs, store
from sqlalchemy import select, update

from ged.models import Document, Version
from interop import jobs
from interop.models import Flow
from socle.db import new_session, transaction, utcnow
from socle.errors import SocleError
from socle.storage import get_store

from conftest import Kit, assert_problem, run_jobs

SIGNED_PES = (
    b'<?xml version="1.0" encoding="UTF-8"?><PES_Aller><EnTetePES/><PES_DepenseAller><Bordereau Id="B1"/>'
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature>'
    b"</PES_DepenseAller></PES_Aller>"
)


def pes_request(kit: Kit, filename: str, content: bytes = SIGNED_PES) -> dict:
    obj = store(content + filename.encode().join([b"<!--", b"-->"]), kit)
    return {"kind": "helios", "connector": "tdt", "documents": [{"object_key": obj.key, "filename": filename}]}


def test_a_pes_goes_to_the_accountant_and_its_acquit_into_the_ged(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)  # Hélios needs no @ctes classification
    sim.scenario(pending_checks=2, pes_retour=True)
    flow = drive(start(kit, pes_request(kit, "PESALR2_213700000_2026_001.xml")))
    assert flow.status == "done" and flow.state == "classé", flow.error
    assert sim.sends("PESALR2_213700000_2026_001.xml") == 1
    states = [event.to_state for event in events(flow.id)]
    assert states == ["nouveau", "prêt", "posté", "en attente de transmission", "classement GED", "classé"]
    stored = flow.data["ged_documents"]
    assert set(stored) == {"acquit"}
    with new_session() as session:
        origins = session.execute(
            select(Version.origin).where(Version.document_id.in_(list(stored.values())))
        ).scalars()
        assert sorted(origins) == [f"interop:{flow.id}:acquit"]
    # The PES Retour is the collectivité's on S²LOW (not the transaction's): the flow leaves it unread there.
    assert [retour["lu"] for retour in sim.state.retours] == [False]
    with get_store().open(flow.data["acquit_key"]) as acquit:
        assert b'<EtatAck V="1"/>' in acquit.read()


def test_a_pes_acquit_ko_stops_the_flow_with_the_accountants_words(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    sim.scenario(acquit="KO")
    flow = drive(start(kit, pes_request(kit, "PES_KO.xml")))
    assert flow.status == "error" and "PES refusé par le comptable" in (flow.error or "")
    assert "montant du mandat incohérent" in (flow.error or "") and flow.data["acquit_key"]
    errors = kit["agent"].get("/interop/flows", params={"state": "error"}).json()
    assert [row["id"] for row in errors] == [flow.id]


def test_an_unsigned_or_unreadable_pes_is_refused_before_sending(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    unsigned = drive(start(kit, pes_request(kit, "PES_NS.xml", b"<PES_Aller><EnTetePES/></PES_Aller>")))
    assert unsigned.status == "error" and "PES Aller non signé" in (unsigned.error or "")
    other = drive(start(kit, pes_request(kit, "PES_X.xml", b"<PES_Retour/>")))
    assert other.status == "error" and "n'est pas un PES Aller" in (other.error or "")
    html = drive(start(kit, pes_request(kit, "PES_H.xml", b"<html><body>erreur</body></html>")))
    assert html.status == "error" and "page HTML" in (html.error or "")
    assert sim.state.sends == {}
    resumed = kit["admin"].post(f"/interop/flows/{unsigned.id}/resume")
    assert resumed.status_code == 200 and drive(unsigned.id).status == "error"  # same input, same refusal


def test_a_pes_received_before_a_timeout_is_never_accepted_twice(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    sim.scenario(faults={"helios_send": ["accept_then_timeout"]}, hang_seconds=3)
    flow = drive(start(kit, pes_request(kit, "PES_T.xml")))
    # S²LOW has no lookup by file name: the retry is refused as a « doublon » and the flow stops for an operator.
    assert flow.status == "error" and "doublon détecté" in (flow.error or "")
    assert "vérifiez-la sur S²LOW" in (flow.error or "")
    assert [t.key for t in sim.state.transactions.values()] == ["PES_T.xml"]

    # The operator finds the transaction on S²LOW and gives it: checked there, followed, never sent again.
    assert_problem(kit["admin"].post(f"/interop/flows/{flow.id}/resume", json={"transaction_id": "9999"}), 422)
    assert flow_of(flow.id).status == "error"
    (transaction_id,) = sim.state.transactions
    tries = sim.sends("PES_T.xml")  # the send, and the resend refused as a « doublon »
    resumed = kit["admin"].post(f"/interop/flows/{flow.id}/resume", json={"transaction_id": transaction_id})
    assert resumed.status_code == 200, resumed.text
    assert (
        resumed.json()["history"][-1]["message"] == f"flux repris par un opérateur (transaction S²LOW {transaction_id})"
    )
    done = drive(flow.id)
    assert done.status == "done" and done.state == "classé", done.error
    assert done.data["transaction_id"] == transaction_id and sim.sends("PES_T.xml") == tries
    assert len(sim.state.transactions) == 1
    assert_problem(kit["admin"].post(f"/interop/flows/{flow.id}/resume", json={"transaction_id": "1"}), 409)


def test_a_transaction_is_given_only_to_a_helios_flow_waiting_to_send(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    refused = drive(start(kit, pes_request(kit, "PES_NS2.xml", b"<PES_Aller><EnTetePES/></PES_Aller>")))
    assert refused.status == "error" and refused.state == "nouveau"
    answer = kit["admin"].post(f"/interop/flows/{refused.id}/resume", json={"transaction_id": "12"})
    assert "flux Hélios arrêté avant de connaître la sienne" in assert_problem(answer, 409)["detail"]
    assert_problem(kit["admin"].post(f"/interop/flows/{refused.id}/resume", json={"transaction_id": "abc"}), 422)


def test_platform_states_without_the_acquit_keep_the_flow_following(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    sim.scenario(intermediate=[7, 24])  # « en traitement », « transmis sans acquittement », then the acquit
    flow = drive(start(kit, pes_request(kit, "PES_I.xml")))
    assert flow.status == "done" and flow.state == "classé", flow.error
    assert set(flow.data["ged_documents"]) == {"acquit"}
    assert "platform_state" not in flow.data and "last_message" not in flow.data  # history, not the current state
    lines = [(event.from_state, event.to_state, event.message) for event in events(flow.id)]
    assert ("posté", "posté", "état S²LOW : en traitement") in lines
    assert ("posté", "posté", "état S²LOW : transmis sans acquittement") in lines
    assert [line[1] for line in lines][-2:] == ["classement GED", "classé"]


def test_a_platform_state_that_lasts_spends_the_policy_and_stops_in_error(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    sim.scenario(intermediate=[7] * 10)
    flow = drive(start(kit, pes_request(kit, "PES_L.xml")))
    assert flow.status == "error" and flow.state == "posté" and "état S²LOW : en traitement" in (flow.error or "")
    assert [event.message for event in events(flow.id)].count("état S²LOW : en traitement") == 1  # noted once


def test_a_stale_step_job_of_a_resumed_flow_never_sends(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    flow_id = start(kit, pes_request(kit, "PES_S.xml"))
    jobs.flow_step(**step_jobs(flow_id)[0].arguments)  # checked: « prêt », its send job enqueued
    delayed = step_jobs(flow_id)[-1].arguments
    assert delayed["state"] == "prêt" and delayed["step"] == flow_of(flow_id).steps
    with transaction() as session:  # the send job is only delayed, but the flow looks stuck: an operator resumes
        session.execute(update(Flow).where(Flow.id == flow_id).values(updated_at=utcnow() - timedelta(hours=1)))
    assert kit["admin"].post(f"/interop/flows/{flow_id}/resume").status_code == 200
    current = step_jobs(flow_id)[-1].arguments
    assert current["step"] == delayed["step"] + 1
    jobs.flow_step(**delayed)  # the delayed job runs at last: the flow has moved past its step
    assert sim.sends("PES_S.xml") == 0 and flow_of(flow_id).state == "prêt"
    jobs.flow_step(**current)
    jobs.flow_step(**current)  # the same job twice
    assert sim.sends("PES_S.xml") == 1 and flow_of(flow_id).state == "posté"
    done = drive(flow_id)
    assert done.status == "done" and sim.sends("PES_S.xml") == 1, done.error


def test_a_tdt_flow_refuses_an_unknown_kind(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    body = pes_request(kit, "PES_U.xml") | {"kind": "fax"}
    assert_problem(kit["agent"].post("/interop/flows", json=body), 422)


def retours_of(kit: Kit) -> Any:
    """The versions of the PES Retour the GED filed for this collectivité (other tests file theirs too)."""
    return (
        select(Version)
        .join(Document, Document.id == Version.document_id)
        .where(Document.tenant_id == kit.tenant_id, Version.origin.like("interop:%:retour:%"))
    )


def test_pes_retours_are_filed_in_the_ged_once_then_marked_read(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    sim.scenario(pes_retour=True)
    assert drive(start(kit, pes_request(kit, "PES_R.xml"))).status == "done"
    (retour,) = sim.state.retours
    assert_problem(kit["agent"].post("/interop/connectors/tdt/pes-retours"), 403)

    sim.scenario(faults={"retour": ["500"]})  # S²LOW's list fails: nothing filed, nothing marked
    with pytest.raises(SocleError):
        jobs.collect_pes_retours(tenant_id=kit.tenant_id, connector="tdt")
    assert retour["lu"] is False

    answer = kit["admin"].post("/interop/connectors/tdt/pes-retours")
    assert answer.status_code == 202 and answer.json()["job_id"], answer.text
    jobs.collect_pes_retours(tenant_id=kit.tenant_id, connector="tdt")
    assert retour["lu"] is False  # asked of the GED, which has not answered yet
    run_jobs()
    assert retour["lu"] is True
    with new_session() as session:
        versions = session.execute(retours_of(kit)).scalars().all()
        assert [(v.origin.rsplit(":", 2)[1:], v.title) for v in versions] == [
            (["retour", retour["id"]], f"PES Retour — {retour['nom']}")
        ]
        with get_store().open(versions[0].object_key) as stored:
            assert stored.read() == retour["content"]

    retour["lu"] = False  # marked read, but S²LOW lost it: the next run marks it again, without a second document
    assert kit["admin"].post("/interop/connectors/tdt/pes-retours").status_code == 202
    run_jobs()
    assert retour["lu"] is True
    with new_session() as session:
        count = session.execute(retours_of(kit)).scalars().all()
        assert len(count) == 1

    # The same from the command line (as cron runs it): nothing new to file, the lost mark set again.
    from click.testing import CliRunner

    from interop.cli import group

    retour["lu"] = False
    result = CliRunner().invoke(group, ["pes-retours", "--tenant", kit.slug, "--connector", "tdt"])
    assert result.exit_code == 0, result.output
    assert "PES Retour confiés à la GED : 0 ; marqués lus chez S²LOW : 1." in result.output
    assert retour["lu"] is True


def test_pes_retours_are_collected_only_from_a_tdt(kit: Kit) -> None:
    config = {"url": "https://a.example.org", "signing_secret": "s" * 40}
    created = kit["admin"].post("/interop/connectors", json={"name": "crochet", "kind": "webhook", "config": config})
    assert created.status_code == 201, created.text
    answer = assert_problem(kit["admin"].post("/interop/connectors/crochet/pes-retours"), 422)
    assert "n'est pas un tiers de télétransmission" in answer["detail"]
    assert_problem(kit["admin"].post("/interop/connectors/inconnu/pes-retours"), 404)
