"""What comes back from the prefecture and the trésorerie is filed where people look for it: each kind in its own
folder of the GED (« Actes/{année} »), titled with the act's number and subject, dated, typed when the
collectivité has the conventional document type, and a letter's text on its GED document."""

from __future__ import annotations

from html import unescape
from typing import Any

import pytest
from s2low_helpers import S2low, act_request, add_s2low, drive, plan_folder, start, store
from sqlalchemy import select
from ui_kit import post_form, sign_in

from ged.models import Document, DocumentType, Folder, Version
from interop import jobs
from socle.db import new_session
from socle.models import AuditEntry

from conftest import Kit, assert_problem, run_jobs

pytestmark = pytest.mark.usefixtures("actes_schemas")

SUBJECT = "Approbation du budget primitif 2027 – section d'investissement"  # act_request's


def folder(kit: Kit, path: str) -> str:
    """The folder at ``path`` in the kit's GED plan (each level created when missing): its id."""
    parent: str | None = None
    for name in path.split("/"):
        if parent is None:
            parent = plan_folder(kit, name)
            continue
        created = kit["admin"].post("/ged/plan", json={"name": name, "parent_id": parent})
        assert created.status_code == 201, created.text
        parent = str(created.json()["id"])
    assert parent is not None
    return parent


def filed(origin: str) -> dict[str, Any]:
    """The GED document of ``origin``: its current version's title, date, label, comment, its type and folder."""
    with new_session() as session:
        version = session.execute(select(Version).where(Version.origin == origin)).scalar_one()
        document = session.get(Document, version.document_id)
        assert document is not None
        kind = session.get(DocumentType, document.type_id) if document.type_id else None
        where = session.get(Folder, document.folder_id) if document.folder_id else None
        return {
            "id": document.id,
            "title": version.title,
            "date": version.document_date.isoformat() if version.document_date else None,
            "label": version.document_type,
            "comment": version.comment,
            "type": kind.code if kind else None,
            "folder": where.id if where else None,
        }


def test_each_kind_is_filed_in_its_own_folder_of_the_acts_year_titled_dated_and_typed(kit: Kit, sim: S2low) -> None:
    receipts, letters = folder(kit, "Actes/2026/Accusés"), folder(kit, "Courriers/2026")
    aracte_type = kit["admin"].post("/ged/types", json={"code": "aracte", "name": "Accusé de réception d'acte"})
    assert aracte_type.status_code == 201, aracte_type.text
    # A « courrier_prefecture » type asking a field no flow fills: not taken (the letter would never be filed).
    asking = {"name": "service", "label": "Service", "kind": "text", "required": True}
    letter_type = {"code": "courrier_prefecture", "name": "Courrier de la préfecture", "fields": [asking]}
    assert kit["admin"].post("/ged/types", json=letter_type).status_code == 201
    add_s2low(
        kit, sim, ged_folder_aracte="Actes/{année}/Accusés", ged_folder_courrier="/Courriers/{année}/"
    )  # and « Actes » for the rest
    flow = drive(start(kit, act_request(kit, "DEL_42")))
    assert flow.status == "done", flow.error

    aracte = filed(f"interop:{flow.id}:aracte")
    assert aracte["title"] == f"Accusé de réception — acte n° DEL_42 : {SUBJECT}"
    assert aracte["date"] == flow.data["aracte"]["date_reception"]  # a date filter finds it
    assert aracte["type"] == "aracte" and aracte["label"] == "Accusé de réception d'acte"
    assert aracte["folder"] == receipts
    assert f"Acte {flow.data['act_id']} reçu par la préfecture le " in aracte["comment"]
    page = kit["agent"].get(f"/ged/documents/{aracte['id']}")
    assert page.status_code == 200 and "acte n° DEL_42" in page.text

    letter = sim.state.add_letter(flow.data["transaction_id"], 3)
    fetched = kit["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch")
    assert fetched.status_code == 200, fetched.text
    run_jobs()
    (file,) = fetched.json()["files"]
    document = filed(file["origin"])
    assert document["title"] == f"Demande de pièces complémentaires — acte n° DEL_42 : {SUBJECT}"
    assert document["date"] == fetched.json()["date"][:10]
    assert document["folder"] == letters
    # Its « courrier_prefecture » type asks a field: the label as before, the letter filed all the same.
    assert document["type"] is None and document["label"] == "actes"
    assert "Demande de pièces complémentaires de la préfecture du " in document["comment"]
    assert "Pièces demandées : " in document["comment"] and "plan de financement" in document["comment"]


def test_a_new_years_folder_is_made_by_the_first_document_of_that_year(kit: Kit, sim: S2low) -> None:
    """« Actes/{année} »: nobody makes « Actes/2027 » on the 1st of January; the first ARActe of the year makes it
    under « Actes », with its parent's rights, audited for the service; the next documents file into it."""
    actes = folder(kit, "Actes")
    add_s2low(kit, sim, ged_folder_aracte="Actes/{année}")
    first = drive(start(kit, act_request(kit, "DEL_51")))
    second = drive(start(kit, act_request(kit, "DEL_52")))
    assert (first.status, second.status) == ("done", "done"), (first.error, second.error)
    year = first.data["act_id"].split("-")[2][:4]  # 037-<SIREN>-<AAAAMMJJ>-<numéro>-<nature>
    with new_session() as session:
        (made,) = session.execute(select(Folder).where(Folder.parent_id == actes)).scalars()
        assert made.name == year and made.path.startswith(f"{actes}/")
        created = session.execute(
            select(AuditEntry).where(AuditEntry.action == "ged.folder.created", AuditEntry.object_id == made.id)
        ).scalar_one()
        assert created.actor == "service:interop" and created.details["cause"] == "année"
    assert filed(f"interop:{first.id}:aracte")["folder"] == made.id
    assert filed(f"interop:{second.id}:aracte")["folder"] == made.id


SIGNED_PES = (
    b'<?xml version="1.0" encoding="UTF-8"?><PES_Aller><EnTetePES/><PES_DepenseAller><Bordereau Id="B1"/>'
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature>'
    b"</PES_DepenseAller></PES_Aller>"
)


def pes_flow(kit: Kit) -> str:
    """A signed PES Aller sent through « tdt »: its flow's id."""
    pes = store(SIGNED_PES, kit)
    return start(
        kit, {"kind": "helios", "connector": "tdt", "documents": [{"object_key": pes.key, "filename": "PES.xml"}]}
    )


def retour_origin(kit: Kit, sim: S2low) -> str:
    """The GED origin of the simulator's one PES Retour, once collected and filed in the kit's GED (another test's
    simulator numbers its retours alike)."""
    (retour,) = sim.state.retours
    with new_session() as session:
        found = session.execute(
            select(Version.origin)
            .join(Document, Document.id == Version.document_id)
            .where(Document.tenant_id == kit.tenant_id, Version.origin.like(f"interop:%:retour:{retour['id']}"))
        ).scalar_one()
    return str(found)


def test_an_old_connector_files_everything_in_its_one_folder(kit: Kit, sim: S2low) -> None:
    only = plan_folder(kit, "Actes")
    add_s2low(kit, sim)  # « ged_folder » only, as before
    flow = drive(start(kit, act_request(kit, "DEL_43")))
    assert flow.status == "done", flow.error
    letter = sim.state.add_letter(flow.data["transaction_id"], 4)
    (file,) = kit["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch").json()["files"]
    sim.scenario(pes_retour=True)
    acquitted = drive(pes_flow(kit))
    assert acquitted.status == "done", acquitted.error
    jobs.collect_pes_retours(tenant_id=kit.tenant_id, connector="tdt")
    run_jobs()
    origins = [f"interop:{flow.id}:aracte", file["origin"], f"interop:{acquitted.id}:acquit", retour_origin(kit, sim)]
    assert [filed(origin)["folder"] for origin in origins] == [only] * 4
    letter_document = filed(file["origin"])
    assert letter_document["title"] == f"Lettre d'observations — acte n° DEL_43 : {SUBJECT}"
    assert "Observations : " in letter_document["comment"]
    acquit = filed(f"interop:{acquitted.id}:acquit")
    assert acquit["date"] is not None and (acquit["type"], acquit["label"]) == (None, "helios")


def test_pes_go_to_their_folders_with_their_types(kit: Kit, sim: S2low) -> None:
    acquits, retours = folder(kit, "Finances/Acquits"), folder(kit, "Finances/Retours")
    plan_folder(kit, "Actes")
    for code in ("pes_acquit", "pes_retour"):
        assert kit["admin"].post("/ged/types", json={"code": code, "name": code.upper()}).status_code == 201
    add_s2low(kit, sim, fetch=False, ged_folder_pes_acquit="Finances/Acquits", ged_folder_pes_retour="Finances/Retours")
    sim.scenario(pes_retour=True)
    flow = drive(pes_flow(kit))
    assert flow.status == "done", flow.error
    acquit = filed(f"interop:{flow.id}:acquit")
    assert (acquit["folder"], acquit["type"], acquit["label"]) == (acquits, "pes_acquit", "PES_ACQUIT")
    assert acquit["date"] is not None
    jobs.collect_pes_retours(tenant_id=kit.tenant_id, connector="tdt")
    run_jobs()
    retour = filed(retour_origin(kit, sim))
    assert (retour["folder"], retour["type"]) == (retours, "pes_retour") and retour["date"] is not None


def test_a_folder_path_takes_only_the_year_between_braces(app: Any, kit: Kit, sim: S2low) -> None:
    plan_folder(kit, "Actes")
    for bad in ("Actes/{annee}", "Actes/{année", "Actes/{mois}/{année}"):
        body = {
            "name": "tdt",
            "kind": "s2low",
            "config": {
                "url": sim.url,
                "department": "037",
                "return_emails": ["greffe@mairie-test.fr"],
                "ged_folder": "Actes",
                "ged_folder_courrier": bad,
            },
        }
        problem = assert_problem(kit["admin"].post("/interop/connectors", json=body), 422)
        assert "seul « {année} »" in str(problem), problem
    # In the connector's form, each kind's folder has its own field, in French.
    admin = sign_in(app, kit, "admin")
    page = admin.get("/admin/connecteurs/nouveau", params={"type": "s2low"})
    assert page.status_code == 200
    assert "Dossier de la GED des courriers de la préfecture" in page.text
    assert 'name="ged_folder_pes_retour"' in page.text
    form = {
        "type": "s2low",
        "name": "tdt",
        "url": sim.url,
        "department": "037",
        "return_emails": "greffe@mairie-test.fr",
        "ged_folder": "Actes",
        "ged_folder_aracte": "Actes/{mois}",
    }
    url = "/admin/connecteurs/nouveau?type=s2low"
    refused = post_form(admin, url, "/admin/connecteurs/nouveau", form)
    assert refused.status_code == 422 and "seul « {année} »" in unescape(refused.text)
    saved = post_form(admin, url, "/admin/connecteurs/nouveau", form | {"ged_folder_aracte": "Actes/{année}/"})
    assert saved.status_code == 303, saved.text
    config = kit["admin"].get("/interop/connectors/tdt").json()["config"]
    assert config["ged_folder_aracte"] == "Actes/{année}" and "ged_folder_courrier" not in config
