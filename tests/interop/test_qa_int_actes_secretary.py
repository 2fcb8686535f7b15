"""QA of the « actes » flow as a commune's secretary uses it: what S²LOW or the prefecture would refuse is
refused at once (422, in French, nothing created), an act number is never taken twice, and a second act
with a number S²LOW already holds never takes over the first one's transaction."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from s2low_helpers import (
    S2low,
    act_request,
    add_s2low,
    drive,
    events,
    s2low_config,
    start,
    step_jobs,
    store,
)
from sqlalchemy import func, select

from interop import actes
from interop.models import Flow, FlowLock
from socle import queue
from socle.db import new_session, transaction
from socle.storage import get_store

from conftest import Kit, assert_problem, make_pdf

pytestmark = pytest.mark.usefixtures("actes_schemas")


def flows_of(kit: Kit) -> int:
    with new_session() as session:
        return int(session.scalar(select(func.count()).select_from(Flow).where(Flow.tenant_id == kit.tenant_id)) or 0)


def png() -> bytes:
    """A 1×1 PNG (a scanned plan, say), written by hand: signature, IHDR, IDAT, IEND."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        # A trailing newline went through « ^…$ » into the IDActe and the tar's file names, and S²LOW got it.
        ({"numero": "DEL_1\n"}, "numéro interne invalide"),
        # « ² ».isdigit() is true but int() refuses it: a 500.
        ({"matiere": "1.²"}, "code matière invalide"),
        # A control character made the package step crash three times (« erreur technique »).
        ({"objet": "Budget\x0b primitif"}, "caractère de contrôle"),
        # Refused by the XSD only at the package step (in English), or a crash for a number.
        ({"precedent_acte": "pas-un-identifiant"}, "acte précédent invalide"),
        ({"precedent_acte": 12}, "acte précédent invalide"),
        # S²LOW: « La date de décision est une date dans le futur ».
        ({"date": "2099-01-01"}, "date de la décision dans le futur"),
        # 1.9 and true were taken for « 1 » (délibération).
        ({"nature": 1.9}, "nature d'acte invalide"),
        ({"nature": True}, "nature d'acte invalide"),
        # Not in the classification already kept: refused at once, not at the first step.
        ({"matiere": "9.9"}, "code matière « 9.9 » absent de la classification"),
    ],
)
def test_what_s2low_would_refuse_is_refused_at_once(kit: Kit, sim: S2low, change: dict[str, Any], detail: str) -> None:
    add_s2low(kit, sim)
    body = act_request(kit, "QA_1")
    body["metadata"] = body["metadata"] | change
    problem = assert_problem(kit["agent"].post("/interop/flows", json=body), 422)
    assert detail in problem["detail"]
    assert flows_of(kit) == 0


def test_a_type_pj_is_checked_whole_and_against_the_classification(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    body = act_request(kit, "QA_2")
    body["documents"][1]["type_pj"] = "99_AU\n"
    assert "type de pièce invalide" in assert_problem(kit["agent"].post("/interop/flows", json=body), 422)["detail"]
    body["documents"][1]["type_pj"] = "41_NC"  # well formed, but the prefecture lists only 99_AU here
    problem = assert_problem(kit["agent"].post("/interop/flows", json=body), 422)
    assert "« 41_NC »" in problem["detail"] and "types admis : 99_AU" in problem["detail"]
    assert flows_of(kit) == 0


def test_the_act_must_be_a_pdf_and_annexes_in_a_format_actes_takes(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    body = act_request(kit, "QA_3")
    body["documents"][0] = {"object_key": store(b"PK\x03\x04 un docx", kit).key, "filename": "deliberation.docx"}
    problem = assert_problem(kit["agent"].post("/interop/flows", json=body), 422)
    assert "doit être un PDF" in problem["detail"] and "deliberation.docx" in problem["detail"]
    body = act_request(kit, "QA_3")
    body["documents"][1] = {"object_key": store(b"MZ\x90\x00 un programme", kit).key, "filename": "annexe.pdf"}
    assert "format refusé par @ctes" in assert_problem(kit["agent"].post("/interop/flows", json=body), 422)["detail"]
    assert flows_of(kit) == 0

    # A plan scanned as PNG with a name full of accents and spaces and no extension; an act named « .PDF  ».
    body = act_request(kit, "QA_3", annexes=0)
    body["documents"][0]["filename"] = "Délibération n° 3 .PDF "
    body["documents"].append({"object_key": store(png(), kit).key, "filename": "plan cadastral élargi"})
    flow = drive(start(kit, body))
    assert flow.status == "done", flow.error
    with get_store().open(flow.data["package_key"]) as stream:
        names = sorted(actes.read_package(stream.read()))
    base = "037-213700000-20261130-QA_3-DE-1-1"
    assert f"99_AU-{base}_1.pdf" in names and f"99_AU-{base}_2.png" in names, names


def test_an_act_number_is_taken_once(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    first = start(kit, act_request(kit, "QA_4"))
    again = act_request(kit, "QA_4")
    again["metadata"] = again["metadata"] | {"date": "2026-11-29", "objet": "Un autre acte"}
    problem = assert_problem(kit["agent"].post("/interop/flows", json=again), 409)
    assert "déjà pris par le flux" in problem["detail"] and first in problem["detail"]
    assert flows_of(kit) == 1
    assert drive(first).status == "done"
    assert_problem(kit["agent"].post("/interop/flows", json=again), 409)  # once sent, for good


def test_a_number_s2low_already_holds_never_takes_over_its_transaction(kit: Kit, sim: S2low) -> None:
    # Another tool (or a second connector to the same account) already sent act QA_5 of the same day.
    add_s2low(kit, sim)
    add_s2low(kit, sim, name="tdt-bis")
    first = drive(start(kit, act_request(kit, "QA_5")))
    assert first.status == "done", first.error
    other = drive(start(kit, act_request(kit, "QA_5", connector="tdt-bis")))
    # Before: S²LOW's « numéro … en conflit » made the flow adopt the first act's transaction, and file its
    # ARActe as its own, though its documents never reached the prefecture.
    assert other.status == "error" and other.state == "prêt", other.state
    assert other.data.get("transaction_id") is None
    assert "n'a pas été transmis" in (other.error or "") and "en conflit" in (other.error or "")
    assert len([t for t in sim.state.transactions.values() if t.kind == "actes"]) == 1


def test_a_prefecture_reply_needs_a_tdt_and_a_pdf(kit: Kit, sim: S2low, make_kit: Callable[..., Kit]) -> None:
    add_s2low(kit, sim)
    kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {}})
    pdf = store(make_pdf("Réponse"), kit)
    body = {"type": "4", "object_key": pdf.key, "filename": "reponse.pdf"}
    # Before: a KeyError (no « url » in a depot's config), a 500.
    problem = assert_problem(kit["admin"].post("/interop/connectors/depot/prefecture/1/reply", json=body), 422)
    assert "n'est pas un tiers de télétransmission" in problem["detail"]
    text = store(b"Bonjour, voici notre reponse.", kit)
    not_pdf = {"type": "4", "object_key": text.key, "filename": "reponse.txt"}
    problem = assert_problem(kit["admin"].post("/interop/connectors/tdt/prefecture/1/reply", json=not_pdf), 422)
    assert "doit être un PDF" in problem["detail"] and sim.state.replies == []

    # Another collectivité: the connector, the flow and its cancellation are absent, the same as unknown ones.
    flow_id = drive(start(kit, act_request(kit, "QA_6"))).id
    other = make_kit(with_identity=False)
    assert_problem(other["admin"].post(f"/interop/flows/{flow_id}/cancel"), 404)
    assert_problem(other["admin"].post("/interop/flows/00000000-0000-0000-0000-000000000000/cancel"), 404)
    theirs = store(make_pdf("Réponse"), other)
    reply = {"type": "4", "object_key": theirs.key, "filename": "r.pdf"}
    assert_problem(other["admin"].post("/interop/connectors/tdt/prefecture/1/reply", json=reply), 404)
    assert_problem(other["agent"].get("/interop/connectors/tdt/prefecture"), 404)
    assert not sim.state.transactions[next(iter(sim.state.transactions))].cancelled


def test_a_return_address_the_xsd_refuses_is_refused_with_the_connector(kit: Kit, sim: S2low) -> None:
    # Before: accepted, then every act stopped at its packaging (« au moins une adresse de retour valide »).
    config = s2low_config(sim, return_emails=["greffe+actes@mairie-test.fr"])
    answer = kit["admin"].post("/interop/connectors", json={"name": "tdt", "kind": "s2low", "config": config})
    assert answer.status_code == 422 and "greffe+actes@mairie-test.fr" in answer.text, answer.text
    add_s2low(kit, sim)
    patched = kit["admin"].patch(
        "/interop/connectors/tdt", json={"config": s2low_config(sim, return_emails=["greffe@mairie"])}
    )
    assert "refusée par le schéma ACTES" in assert_problem(patched, 422)["detail"]


def test_an_envelope_for_another_collectivite_is_refused_then_sent_once_fixed(kit: Kit, sim: S2low) -> None:
    # S²LOW compares the envelope's SIREN, department, arrondissement and nature with its account's.
    sim.state.authority = {"siren": "213700000", "department": "037", "arrondissement": "1", "nature": "1"}
    add_s2low(kit, sim)  # arrondissement « 0 », collectivity_nature « 01 »
    flow = drive(start(kit, act_request(kit, "QA_7")))
    assert flow.status == "error" and flow.state == "prêt"
    assert "L'arrondissement de la collectivité contenu dans l'enveloppe ne correspond pas" in (flow.error or "")
    # Refused by S²LOW, so not received: the number stays free, nothing is left « sending ».
    assert flow.data["sending"] is False
    config = s2low_config(sim, arrondissement="1", ged_folder="Actes")  # the whole configuration, its folder too
    patched = kit["admin"].patch("/interop/connectors/tdt", json={"config": config})
    assert patched.status_code == 200, patched.text
    assert kit["admin"].post(f"/interop/flows/{flow.id}/resume").status_code == 200
    # Before: the package built with the old arrondissement was sent again, refused again, for ever.
    flow = drive(flow.id)
    assert flow.status == "done", flow.error
    assert any(event.message == "paquet @ctes reconstruit avant l'envoi" for event in events(flow.id))
    assert sim.sends("037-213700000-20261130-QA_7-DE") == 1


def test_a_classification_fetched_again_goes_into_the_package_sent(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    waiting = start(kit, act_request(kit, "QA_8"))
    assert queue.execute(step_jobs(waiting)[0].id) == "done"  # packaged with the classification of 2026-01-15
    with transaction() as session:  # its send waits (another holder has its lock) while…
        session.add(FlowLock(key=f"flow-send:{waiting}", holder="un-autre-worker"))
    # …the prefecture moves to a new classification; another act's ARActe says so.
    sim.scenario(classification_date="2026-06-01")
    assert drive(start(kit, act_request(kit, "QA_9"))).status == "done"
    with transaction() as session:
        session.execute(FlowLock.__table__.delete().where(FlowLock.key == f"flow-send:{waiting}"))
    stale = drive(waiting)
    assert stale.status == "error" and stale.state == "prêt" and "périmée" in (stale.error or "")
    assert kit["admin"].post("/interop/connectors/tdt/classification").status_code == 200
    assert kit["admin"].post(f"/interop/flows/{waiting}/resume").status_code == 200
    done = drive(waiting)
    assert done.status == "done", done.error
    # Before: the package of 2026-01-15 left, though the flow had checked the new classification.
    with get_store().open(done.data["package_key"]) as stream:
        files = actes.read_package(stream.read())
    message = next(content for name, content in files.items() if name.endswith("-1-1_0.xml"))
    assert b"<actes:ClassificationDateVersion>2026-06-01<" in message
