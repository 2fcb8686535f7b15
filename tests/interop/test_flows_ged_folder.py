"""Where interop files in the GED: the folder of the plan its connector names (``ged_folder``), or the one the
flow's creator names when they may write there; never the root of the plan, where every user of the
collectivité reads a document whose type has no rights of its own."""

from __future__ import annotations

from typing import Any

import pytest
from s2low_helpers import (
    S2low,
    act_request,
    add_s2low,
    drive,
    plan_folder,
    s2low_config,
    start,
    store,
)
from sae_helpers import add_connector
from sqlalchemy import select
from ui_kit import post_form, sign_in

from ged.models import Document, Version
from interop import jobs
from interop.models import Flow
from socle import messages
from socle.db import new_session, transaction
from socle.errors import InvalidInput
from socle.models import AuditEntry, Job
from socle.queue import enqueue

from conftest import Kit, assert_problem, run_jobs

SIGNED_PES = (
    b'<?xml version="1.0" encoding="UTF-8"?><PES_Aller><EnTetePES/><PES_DepenseAller><Bordereau Id="B1"/>'
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature>'
    b"</PES_DepenseAller></PES_Aller>"
)
NO_FOLDER = "ne désigne aucun dossier de la GED"


pytestmark = pytest.mark.usefixtures("actes_schemas")


def only_for(kit: Kit, folder_id: str, username: str, rights: list[str], group: str) -> None:
    """The folder's rights given to a group of one member: no other user (but an admin) reads it."""
    created = kit["admin"].post("/ged/groups", json={"name": group})
    assert created.status_code == 201, created.text
    group_id = created.json()["id"]
    member = kit["admin"].post(f"/ged/groups/{group_id}/members", json={"username": username})
    granted = kit["admin"].put(f"/ged/plan/{folder_id}/permissions", json=[{"group_id": group_id, "rights": rights}])
    assert member.status_code == granted.status_code == 200, (member.text, granted.text)


def filed(flow_id: str) -> list[tuple[str, str | None]]:
    """(origin, folder) of each GED document the flow filed (by their origin, whatever the flow recorded)."""
    with new_session() as session:
        rows = session.execute(
            select(Version.origin, Document.folder_id)
            .join(Document, Document.id == Version.document_id)
            .where(Version.origin.startswith(f"interop:{flow_id}:"))
        )
        return sorted((str(origin), folder) for origin, folder in rows)


def set_folder(kit: Kit, sim: S2low, ged_folder: str | None) -> None:
    """The TdT connector's whole configuration again, naming ``ged_folder`` (None: none)."""
    extra = {"ged_folder": ged_folder} if ged_folder is not None else {}
    patched = kit["admin"].patch("/interop/connectors/tdt", json={"config": s2low_config(sim, **extra)})
    assert patched.status_code == 200, patched.text


def pes_request(kit: Kit, filename: str) -> dict[str, Any]:
    obj = store(SIGNED_PES + filename.encode().join([b"<!--", b"-->"]), kit)
    return {"kind": "helios", "connector": "tdt", "documents": [{"object_key": obj.key, "filename": filename}]}


def test_an_aracte_is_filed_in_the_connectors_folder_and_read_only_by_those_who_may(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, ged_folder="Actes/Cabinet")  # a path: the folder is under « Actes »
    top = plan_folder(kit, "Actes")
    created = kit["admin"].post("/ged/plan", json={"name": "Cabinet", "parent_id": top})
    assert created.status_code == 201, created.text
    cabinet = created.json()["id"]
    only_for(kit, cabinet, "maire", ["read", "write"], "Cabinet du maire")

    flow = drive(start(kit, act_request(kit, "GF_1")))
    assert (flow.status, flow.state) == ("done", "classé"), flow.error
    aracte = flow.data["ged_documents"]["aracte"]
    assert filed(flow.id) == [(f"interop:{flow.id}:aracte", cabinet)]

    # Before: at the root of the plan, the agent (and every user) read the act's acknowledgement.
    assert_problem(kit["agent"].get(f"/ged/documents/{aracte}"), 404)
    listed = kit["agent"].get("/ged/documents").json()["items"]
    assert aracte not in {item["id"] for item in listed}
    found = kit["agent"].get("/ged/search", params={"document_type": "actes"})
    assert found.status_code == 200 and aracte not in {item["document_id"] for item in found.json()["items"]}
    # The folder's readers do.
    assert kit["maire"].get(f"/ged/documents/{aracte}").status_code == 200
    assert aracte in {item["id"] for item in kit["maire"].get("/ged/documents").json()["items"]}
    found = kit["maire"].get("/ged/search", params={"document_type": "actes"})
    assert aracte in {item["document_id"] for item in found.json()["items"]}


def test_a_flow_is_refused_at_its_start_when_nothing_names_a_folder(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim, ged_folder=None)
    refused = assert_problem(kit["agent"].post("/interop/flows", json=act_request(kit, "GF_2")), 422)["detail"]
    assert f"le connecteur « tdt » {NO_FOLDER}" in refused and "renseigner « ged_folder »" in refused
    assert_problem(kit["agent"].post("/interop/flows", json=pes_request(kit, "PES_GF_2.xml")), 422)
    with new_session() as session:
        assert session.execute(select(Flow).where(Flow.tenant_id == kit.tenant_id)).first() is None


def test_a_folder_missing_at_filing_stops_the_flow_with_nothing_filed_then_resumed(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    add_connector(kit, "sae", "asalae", {"url": "http://127.0.0.1:9", "username": "u", "password": "p"})
    body = act_request(kit, "GF_3")
    body["metadata"]["archive"] = {"connector": "sae", "archival_agency": "AD037"}  # act, annex, ARActe: 3 filings
    flow_id = start(kit, body)

    # The administrator empties the connector's folder while the act is at the prefecture.
    set_folder(kit, sim, None)
    flow = drive(flow_id)
    assert (flow.status, flow.state) == ("error", "classement GED")
    assert f"le connecteur « tdt » {NO_FOLDER}" in (flow.error or "") and "ged_folder" in (flow.error or "")
    assert filed(flow_id) == [] and "ged_documents" not in flow.data

    # A folder the GED does not have: each of the three filings is refused, none is half made.
    set_folder(kit, sim, "Actes/Inexistant")
    assert kit["admin"].post(f"/interop/flows/{flow_id}/resume").status_code == 200
    flow = drive(flow_id)
    assert (flow.status, flow.state) == ("error", "classement GED")
    assert "dossier « Actes/Inexistant » introuvable dans le plan de classement" in (flow.error or "")
    assert filed(flow_id) == [] and "ged_documents" not in flow.data

    # Set right, resumed: the three are filed there, and the act goes on to its transfer.
    set_folder(kit, sim, "Actes")
    assert kit["admin"].post(f"/interop/flows/{flow_id}/resume").status_code == 200
    flow = drive(flow_id)
    assert flow.state == "versé aux archives", flow.error
    actes = plan_folder(kit, "Actes")
    assert filed(flow_id) == [(f"interop:{flow_id}:{name}", actes) for name in ("acte", "annexe-1", "aracte")]


def test_a_filing_asked_before_the_upgrade_is_refused_not_put_at_the_root(kit: Kit) -> None:
    """A GED job queued by the previous version (no « ged_folder », no « username »): null, so refused, and the
    flow is told through its failure path."""
    aracte = store(b"<?xml version='1.0'?><ARActe/>", kit)
    with transaction() as session:
        flow = Flow(
            tenant_id=kit.tenant_id,
            kind="actes",
            connector="tdt",
            state="classement GED",
            status="waiting",
            documents=[],
            flow_metadata={},
            data={"ged_expected": ["aracte"]},
            created_by="user:agent",
        )
        session.add(flow)
        session.flush()
        flow_id = flow.id
        job = enqueue(
            session,
            messages.GED_STORE_FLOW_DOCUMENT,
            tenant_id=kit.tenant_id,
            flow_id=flow_id,
            name="aracte",
            object_key=aracte.key,
            size=aracte.size,
            filename="ARActe.xml",
            media_type="application/xml",
            title="Accusé de réception — avant",
            document_type="actes",
            ged_folder="Actes",
            username=None,
            document_date=None,
            type_code=None,
            description=None,
        )
        older = ("ged_folder", "username", "document_date", "type_code", "description")  # a job queued before them
        job.arguments = {key: value for key, value in job.arguments.items() if key not in older}

    run_jobs()

    assert filed(flow_id) == []
    with new_session() as session:
        flow = session.get(Flow, flow_id)
        assert flow is not None and flow.status == "error"
        assert "aucun dossier de la GED n'est désigné pour les documents de ce flux" in (flow.error or "")
        assert "« ged_folder »" in (flow.error or "")


def test_a_folder_the_flows_creator_names_is_taken_only_if_they_may_write_there(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    cabinet, lecture = plan_folder(kit, "Cabinet"), plan_folder(kit, "Lecture seule")
    only_for(kit, cabinet, "maire", ["read", "write"], "Cabinet du maire")
    only_for(kit, lecture, "agent", ["read"], "Lecteurs")

    def act_in(number: str, folder: str) -> dict[str, Any]:
        body = act_request(kit, number)
        body["metadata"]["ged_folder"] = folder
        return body

    # The agent may read « Lecture seule » but not write there: refused, nothing filed (the connector's folder
    # is not used instead: the creator asked for this one).
    flow = drive(start(kit, act_in("GF_4", "/Lecture seule/")))
    assert (flow.status, flow.state) == ("error", "classement GED")
    assert "le créateur du flux n'a pas le droit d'écriture dans le dossier « Lecture seule »" in (flow.error or "")
    assert filed(flow.id) == []
    # « Cabinet » is hidden from the agent: as unknown as a folder that does not exist.
    flow = drive(start(kit, act_in("GF_5", "Cabinet")))
    assert (flow.status, flow.state) == ("error", "classement GED")
    assert "dossier « Cabinet » introuvable dans le plan de classement" in (flow.error or "")
    assert filed(flow.id) == []
    with new_session() as session:
        asked = session.execute(
            select(Job.arguments).where(
                Job.function == messages.GED_STORE_FLOW_DOCUMENT.function, Job.tenant_id == kit.tenant_id
            )
        )
        assert {(arguments["ged_folder"], arguments["username"]) for arguments in asked.scalars()} == {
            ("Lecture seule", "agent"),
            ("Cabinet", "agent"),
        }
    # The mayor may write in « Cabinet »: filed there, not in the connector's « Actes ».
    flow = drive(start(kit, act_in("GF_6", "Cabinet"), by="maire"))
    assert (flow.status, flow.state) == ("done", "classé"), flow.error
    assert filed(flow.id) == [(f"interop:{flow.id}:aracte", cabinet)]
    assert_problem(kit["agent"].get(f"/ged/documents/{flow.data['ged_documents']['aracte']}"), 404)


def test_a_folder_in_the_metadata_is_checked_at_the_start(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    body = act_request(kit, "GF_7")
    for wrong in (["Actes"], 42, "Actes\x07"):
        body["metadata"]["ged_folder"] = wrong
        assert "ged_folder" in assert_problem(kit["agent"].post("/interop/flows", json=body), 422)["detail"]
    body["metadata"]["ged_folder"] = "x" * 1001
    assert "1000 caractères au plus" in assert_problem(kit["agent"].post("/interop/flows", json=body), 422)["detail"]
    kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {}})
    depot = {"kind": "depot", "connector": "depot", "documents": body["documents"][:1]}
    refused = kit["agent"].post("/interop/flows", json=depot | {"metadata": {"ged_folder": "Actes"}})
    assert "ne classe rien dans la GED" in assert_problem(refused, 422)["detail"]
    # Named by the flow, a folder needs none on the connector; blank, it names none.
    set_folder(kit, sim, None)
    body["metadata"]["ged_folder"] = " Actes/ "
    flow_id = start(kit, body)
    with new_session() as session:
        flow = session.get(Flow, flow_id)
        assert flow is not None and flow.flow_metadata["ged_folder"] == "Actes"
    body = act_request(kit, "GF_8")
    body["metadata"]["ged_folder"] = "  "
    assert NO_FOLDER in assert_problem(kit["agent"].post("/interop/flows", json=body), 422)["detail"]


def test_prefecture_letters_and_pes_retours_go_to_the_connectors_folder_or_not_at_all(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    sim.scenario(pes_retour=True)
    act = drive(start(kit, act_request(kit, "GF_9")))
    pes = drive(start(kit, pes_request(kit, "PES_GF_9.xml")))
    assert act.status == pes.status == "done", (act.error, pes.error)
    letter = sim.state.add_letter(act.data["transaction_id"], 4)
    (retour,) = sim.state.retours

    set_folder(kit, sim, None)
    refused = assert_problem(kit["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch"), 422)
    assert NO_FOLDER in refused["detail"]
    assert NO_FOLDER in assert_problem(kit["admin"].post("/interop/connectors/tdt/pes-retours"), 422)["detail"]
    with pytest.raises(InvalidInput, match=NO_FOLDER):  # as a scheduler runs it
        jobs.collect_pes_retours(tenant_id=kit.tenant_id, connector="tdt")
    run_jobs()
    assert retour["lu"] is False and [item["id"] for item in sim.state.letters if not item["lu"]] == [letter]
    with new_session() as session:
        asked = session.execute(
            select(Job.id).where(
                Job.function == messages.GED_STORE_FLOW_DOCUMENT.function, Job.tenant_id == kit.tenant_id
            )
        )
        assert len(asked.all()) == 2  # the two flows' own: nothing asked for the letter or the retour

    # A folder that is not in the plan: the GED refuses, the letter and the retour stay unread on S²LOW, and the
    # administrator finds why in the audit log.
    set_folder(kit, sim, "Courrier")
    assert kit["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch").status_code == 200
    assert kit["admin"].post("/interop/connectors/tdt/pes-retours").status_code == 202
    run_jobs()
    assert retour["lu"] is False and [item["id"] for item in sim.state.letters if not item["lu"]] == [letter]
    with new_session() as session:
        documents = session.execute(
            select(Version.origin)
            .join(Document, Document.id == Version.document_id)
            .where(Document.tenant_id == kit.tenant_id, Version.origin.like("interop:%:courrier:%"))
        )
        assert documents.all() == []
        reasons = session.execute(
            select(AuditEntry.details).where(
                AuditEntry.tenant_id == kit.tenant_id, AuditEntry.action == "interop.ged_filing.failed"
            )
        ).scalars()
        assert [("« Courrier » introuvable" in details["reason"]) for details in reasons] == [True, True]

    courrier = plan_folder(kit, "Courrier")
    only_for(kit, courrier, "maire", ["read"], "Lecteurs du courrier")
    assert kit["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch").status_code == 200
    assert kit["admin"].post("/interop/connectors/tdt/pes-retours").status_code == 202
    run_jobs()
    assert retour["lu"] is True
    with new_session() as session:
        rows = session.execute(
            select(Version.origin, Document.folder_id, Document.id)
            .join(Document, Document.id == Version.document_id)
            .where(Document.tenant_id == kit.tenant_id)
            .where(Version.origin.like("interop:%:courrier:%") | Version.origin.like("interop:%:retour:%"))
        ).all()
    assert sorted(origin.split(":")[2] for origin, _folder, _id in rows) == ["courrier", "retour"]
    assert {folder for _origin, folder, _id in rows} == {courrier}
    for _origin, _folder, document_id in rows:
        assert_problem(kit["agent"].get(f"/ged/documents/{document_id}"), 404)
        assert kit["maire"].get(f"/ged/documents/{document_id}").status_code == 200


def test_the_connectors_folder_is_checked_when_saved_and_shown_in_its_form(app: Any, kit: Kit, sim: S2low) -> None:
    bad = kit["admin"].post(
        "/interop/connectors",
        json={"name": "tdt", "kind": "s2low", "config": s2low_config(sim, ged_folder="Actes\x00")},
    )
    assert bad.status_code == 422 and "ged_folder" in bad.text
    add_s2low(kit, sim, ged_folder=" /Actes/2026/ ", fetch=False)
    assert kit["admin"].get("/interop/connectors/tdt").json()["config"]["ged_folder"] == "Actes/2026"
    set_folder(kit, sim, "  ")  # blank: none, not stored
    assert "ged_folder" not in kit["admin"].get("/interop/connectors/tdt").json()["config"]

    admin = sign_in(app, kit, "admin")
    page = admin.get("/admin/connecteurs/tdt")
    assert page.status_code == 200 and 'name="ged_folder"' in page.text and "Dossier de la GED" in page.text
    form = {
        "url": sim.url,
        "department": "037",
        "return_emails": "greffe@mairie-test.fr",
        "retry_policy": "1s X 3",
        "ged_folder": "Actes/Délibérations",
    }
    answer = post_form(admin, "/admin/connecteurs/tdt", "/admin/connecteurs/tdt", form)
    assert answer.status_code in (200, 303), answer.text
    assert kit["admin"].get("/interop/connectors/tdt").json()["config"]["ged_folder"] == "Actes/Délibérations"
    assert 'value="Actes/Délibérations"' in admin.get("/admin/connecteurs/tdt").text
