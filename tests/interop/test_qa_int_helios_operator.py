"""QA of the « helios » flow as an operator runs it: one PES per flow, and a transaction given on a resume is
never one another flow already follows."""

from __future__ import annotations

from s2low_helpers import S2low, add_s2low, drive, start, store

from conftest import Kit, assert_problem

SIGNED_PES = (
    b'<?xml version="1.0" encoding="UTF-8"?><PES_Aller><EnTetePES/><PES_DepenseAller><Bordereau Id="B1"/>'
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature>'
    b"</PES_DepenseAller></PES_Aller>"
)


def pes(kit: Kit, filename: str) -> dict[str, str]:
    return {"object_key": store(SIGNED_PES + filename.encode().join([b"<!--", b"-->"]), kit).key, "filename": filename}


def test_a_helios_flow_sends_one_pes_and_says_so(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    body = {"kind": "helios", "connector": "tdt", "documents": [pes(kit, "PES_A.xml"), pes(kit, "PES_B.xml")]}
    # Before: accepted, and PES_B.xml silently never sent.
    problem = assert_problem(kit["agent"].post("/interop/flows", json=body), 422)
    assert "un seul fichier" in problem["detail"]


def test_a_resume_never_takes_another_flows_transaction(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, fetch=False)
    first = drive(start(kit, {"kind": "helios", "connector": "tdt", "documents": [pes(kit, "PES_1.xml")]}))
    assert first.status == "done", first.error
    sim.scenario(faults={"helios_send": ["ko"]})
    second = drive(start(kit, {"kind": "helios", "connector": "tdt", "documents": [pes(kit, "PES_2.xml")]}))
    assert second.status == "error" and second.state == "prêt"
    # The operator copies the wrong number from S²LOW: the first flow's transaction.
    answer = kit["admin"].post(
        f"/interop/flows/{second.id}/resume", json={"transaction_id": first.data["transaction_id"]}
    )
    problem = assert_problem(answer, 409)
    assert first.id in problem["detail"]
    # Its own transaction, once it sends, is still accepted.
    assert kit["admin"].post(f"/interop/flows/{second.id}/resume").status_code == 200
    assert drive(second.id).status == "done"
