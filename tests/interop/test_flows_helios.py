"""The « helios » flow end to end: signed PES Aller → S²LOW simulator → PES Acquit → GED."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from s2low_helpers import S2low, add_s2low, drive, events, running_s2low, start, store
from sqlalchemy import select

from ged.models import Version
from socle.db import new_session
from socle.storage import get_store

from conftest import Kit, assert_problem

SIGNED_PES = (
    b'<?xml version="1.0" encoding="UTF-8"?><PES_Aller><EnTetePES/><PES_DepenseAller><Bordereau Id="B1"/>'
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature>'
    b"</PES_DepenseAller></PES_Aller>"
)


@pytest.fixture
def sim() -> Iterator[S2low]:
    yield from running_s2low()


def pes_request(filename: str, content: bytes = SIGNED_PES) -> dict:
    obj = store(content + filename.encode().join([b"<!--", b"-->"]))
    return {"kind": "helios", "connector": "tdt", "documents": [{"object_key": obj.key, "filename": filename}]}


def test_a_pes_goes_to_the_accountant_and_its_acquit_into_the_ged(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)  # Hélios needs no @ctes classification
    sim.scenario(pending_checks=2, pes_retour=True)
    flow = drive(start(kit, pes_request("PESALR2_213700000_2026_001.xml")))
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
    flow = drive(start(kit, pes_request("PES_KO.xml")))
    assert flow.status == "error" and "PES refusé par le comptable" in (flow.error or "")
    assert "montant du mandat incohérent" in (flow.error or "") and flow.data["acquit_key"]
    errors = kit["agent"].get("/interop/flows", params={"state": "error"}).json()
    assert [row["id"] for row in errors] == [flow.id]


def test_an_unsigned_or_unreadable_pes_is_refused_before_sending(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    unsigned = drive(start(kit, pes_request("PES_NS.xml", b"<PES_Aller><EnTetePES/></PES_Aller>")))
    assert unsigned.status == "error" and "PES Aller non signé" in (unsigned.error or "")
    other = drive(start(kit, pes_request("PES_X.xml", b"<PES_Retour/>")))
    assert other.status == "error" and "n'est pas un PES Aller" in (other.error or "")
    html = drive(start(kit, pes_request("PES_H.xml", b"<html><body>erreur</body></html>")))
    assert html.status == "error" and "page HTML" in (html.error or "")
    assert sim.state.sends == {}
    resumed = kit["admin"].post(f"/interop/flows/{unsigned.id}/resume")
    assert resumed.status_code == 200 and drive(unsigned.id).status == "error"  # same input, same refusal


def test_a_pes_received_before_a_timeout_is_never_accepted_twice(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    sim.scenario(faults={"helios_send": ["accept_then_timeout"]}, hang_seconds=3)
    flow = drive(start(kit, pes_request("PES_T.xml")))
    # S²LOW has no lookup by file name: the retry is refused as a « doublon » and the flow stops for an operator.
    assert flow.status == "error" and "doublon détecté" in (flow.error or "")
    assert "vérifiez-la sur S²LOW" in (flow.error or "")
    assert [t.key for t in sim.state.transactions.values()] == ["PES_T.xml"]


def test_a_tdt_flow_refuses_an_unknown_kind(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    body = pes_request("PES_U.xml") | {"kind": "fax"}
    assert_problem(kit["agent"].post("/interop/flows", json=body), 422)
