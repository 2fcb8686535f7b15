"""QA: a commune reads the prefecture's letters (courrier simple, demande de pièces complémentaires, lettre
d'observations, déféré) through its TdT: what each says, its PDF filed in the GED, the letter marked read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from s2low_helpers import ACTES_SCHEMAS, S2low, act_request, add_s2low, drive, events, start, store
from sqlalchemy import select

from ged.models import Document, Version
from interop import actes
from interop.connectors.s2low import S2lowConnector
from socle.auth import create_user, issue_token
from socle.db import new_session, transaction
from socle.models import Tenant

from conftest import Kit, assert_problem, make_pdf, run_jobs

pytestmark = pytest.mark.usefixtures("actes_schemas")


@pytest.mark.parametrize(
    ("kind", "label", "text"),
    [
        (2, "Courrier simple", ""),
        (3, "Demande de pièces complémentaires", "plan de financement"),
        (4, "Lettre d'observations", "Observations simulées"),
        (5, "Déféré au tribunal administratif", "incompétence"),
    ],
)
def test_each_kind_of_letter_is_read_and_filed_once(kit: Kit, sim: S2low, kind: int, label: str, text: str) -> None:
    add_s2low(kit, sim)
    flow = drive(start(kit, act_request(kit, "LET_1")))
    assert flow.status == "done", flow.error
    letter = sim.state.add_letter(flow.data["transaction_id"], kind)
    # What the simulator hands out is what a prefecture writes: valid against the XSD.
    tdt = S2lowConnector("tdt", {"url": sim.url, "timeout": 5}, {})
    files = actes.read_package(tdt.prefecture_document(letter))
    fields = actes.letter_fields(files)
    actes.validate(files[fields["message"]], ACTES_SCHEMAS, "courrier")

    # Before: no way to read a letter at all (listed only); an agent fetches it now.
    answer = kit["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["label"] == label and text in body["text"] and body["act_id"] == flow.data["act_id"]
    assert body["type"] == str(kind)
    assert [item["name"] for item in body["files"]] == [f"courrier-{letter}.pdf"]
    run_jobs()
    with new_session() as session:
        version = session.execute(select(Version).where(Version.origin == body["files"][0]["origin"])).scalar_one()
        document = session.get(Document, version.document_id)
        assert document is not None and document.tenant_id == kit.tenant_id
        assert version.object_key == body["files"][0]["sha256"]
    assert kit["agent"].get("/interop/connectors/tdt/prefecture").json() == []  # marked read once filed
    # Fetched again (by its id, read or not): the GED keeps one document.
    assert kit["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch").status_code == 200
    run_jobs()
    with new_session() as session:
        versions = session.execute(select(Version).where(Version.origin == body["files"][0]["origin"])).scalars()
        assert len(list(versions)) == 1


def test_a_letter_is_fetched_only_through_ones_own_tdt(kit: Kit, sim: S2low, make_kit: Callable[..., Kit]) -> None:
    add_s2low(kit, sim)
    kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {}})
    problem = assert_problem(kit["agent"].post("/interop/connectors/depot/prefecture/1/fetch"), 422)
    assert "n'est pas un tiers de télétransmission" in problem["detail"]
    assert_problem(kit["agent"].post("/interop/connectors/tdt/prefecture/abc/fetch"), 422)
    unknown = assert_problem(kit["agent"].post("/interop/connectors/tdt/prefecture/424242/fetch"), 409)
    assert "Numéro de transaction invalide" in unknown["detail"]
    other = make_kit(with_identity=False)
    assert_problem(other["agent"].post("/interop/connectors/tdt/prefecture/1/fetch"), 404)


def test_who_may_send_acts_reads_and_answers_the_letters_others_do_not(kit: Kit, sim: S2low, app: Any) -> None:
    """The secrétariat des assemblées sends the acts (docs/interop.md): it reads the prefecture's letters about them
    and answers them; a user with no role does neither."""
    add_s2low(kit, sim)
    flow = drive(start(kit, act_request(kit, "LET_R")))
    letter = sim.state.add_letter(flow.data["transaction_id"], 3)
    with transaction() as session:
        tenant = session.get(Tenant, kit.tenant_id)
        assert tenant is not None
        clerk = create_user(session, tenant, "accueil", "Dominique Accueil", ["secretariat"])
        nobody = create_user(session, tenant, "stagiaire", "Lou Stagiaire", [])
        tokens = issue_token(session, clerk, "tests"), issue_token(session, nobody, "tests")
    answer = store(make_pdf("Pièces complémentaires"), kit)
    body = {"type": "4", "object_key": answer.key, "filename": "pieces.pdf"}
    with TestClient(app, headers={"Authorization": f"Bearer {tokens[1]}"}, raise_server_exceptions=False) as client:
        assert_problem(client.get("/interop/connectors/tdt/prefecture"), 403)
        assert_problem(client.post(f"/interop/connectors/tdt/prefecture/{letter}/fetch"), 403)
        assert_problem(client.post(f"/interop/connectors/tdt/prefecture/{letter}/reply", json=body), 403)
    with TestClient(app, headers={"Authorization": f"Bearer {tokens[0]}"}, raise_server_exceptions=False) as client:
        assert [item["id"] for item in client.get("/interop/connectors/tdt/prefecture").json()] == [letter]
        assert client.post(f"/interop/connectors/tdt/prefecture/{letter}/fetch").status_code == 200
        replied = client.post(f"/interop/connectors/tdt/prefecture/{letter}/reply", json=body)
        assert replied.status_code == 200, replied.text
    assert [reply["to"] for reply in sim.state.replies] == [letter]
    assert kit["archiviste"].get("/interop/connectors/tdt/prefecture").status_code == 200
    # The act's history tells of the letter and of the answer.
    said = [event.message for event in events(flow.id)]
    assert any(
        line.startswith("courrier de la préfecture reçu : demande de pièces complémentaires du ") for line in said
    )
    assert f"réponse envoyée à la préfecture (demande de pièces complémentaires, courrier {letter})" in said
