"""Transfers chosen in the GED (a folder of the plan with its subtree, or the documents at the end of their
DUA), described by the archivists' mapping per document type, built through the queue into valid SIPs."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
import xmlschema
from lxml import etree
from sqlalchemy import select

from archive.seda import NAMESPACES
from archive.validation import validate_manifest
from ged import jobs as ged_jobs
from ged.models import Document, Version
from socle.db import new_session
from socle.storage import get_store

from conftest import SHARED_SEDA, Kit, assert_problem, make_pdf, run_jobs

# --- GED side, through its API ---------------------------------------------------------------------------


def make_type(kit: Kit, code: str, **body: Any) -> None:
    response = kit["admin"].post("/ged/types", json={"code": code, "name": code.capitalize(), **body})
    assert response.status_code == 201, response.text


def make_folder(kit: Kit, name: str, parent_id: str | None = None, code: str | None = None) -> str:
    response = kit["admin"].post("/ged/plan", json={"name": name, "parent_id": parent_id, "code": code})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def add_document(kit: Kit, title: str, **data: Any) -> str:
    if "field_values" in data:
        data["field_values"] = json.dumps(data["field_values"])
    response = kit["admin"].post(
        "/ged/documents",
        files={"file": ("acte.pdf", make_pdf(title), "application/pdf")},
        data={"title": title, **data},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def set_referential(kit: Kit, rules: list[dict[str, Any]]) -> None:
    response = kit["archiviste"].put("/archive/referential", json={"rules": rules})
    assert response.status_code == 200, response.text


def put_mapping(kit: Kit, type_code: str, **mapping: Any) -> dict[str, Any]:
    response = kit["archiviste"].put(f"/archive/mappings/{type_code}", json=mapping)
    assert response.status_code == 200, response.text
    return dict(response.json())


# --- archive side ------------------------------------------------------------------------------------------


def transfer(kit: Kit, **selection: Any) -> dict[str, Any]:
    """Request a transfer, run the queue (GED then archive), return the transfer as the API shows it."""
    response = kit["archiviste"].post("/archive/transfers", json={"archival_agency": "AD037", **selection})
    assert response.status_code == 202, response.text
    run_jobs()
    found = kit["archiviste"].get(f"/archive/transfers/{response.json()['id']}")
    assert found.status_code == 200, found.text
    return dict(found.json())


def manifest_of(kit: Kit, built: dict[str, Any]) -> bytes:
    assert built["status"] == "built", built
    response = kit["archiviste"].get(f"/archive/transfers/{built['id']}/sip")
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        return archive.read("manifest.xml")


class Manifest:
    """Reading helpers over a manifest of any SEDA 2.x version."""

    def __init__(self, data: bytes, version: str) -> None:
        self.root = etree.fromstring(data)
        self.ns = {"s": NAMESPACES[version]}

    def units(self) -> list[etree._Element]:
        return list(self.root.iterfind(".//s:ArchiveUnit", self.ns))

    def text(self, element: etree._Element, path: str) -> str | None:
        return element.findtext(path, namespaces=self.ns)

    def texts(self, element: etree._Element, path: str) -> list[str]:
        return [str(found.text) for found in element.iterfind(path, self.ns)]

    def title(self, unit: etree._Element) -> str | None:
        return self.text(unit, "s:Content/s:Title")

    def children(self, unit: etree._Element) -> list[etree._Element]:
        return list(unit.iterfind("s:ArchiveUnit", self.ns))

    def roots(self) -> list[etree._Element]:
        return list(self.root.iterfind(".//s:DescriptiveMetadata/s:ArchiveUnit", self.ns))

    def unit_of(self, document_id: str) -> etree._Element:
        found = [
            u for u in self.units() if self.text(u, "s:Content/s:OriginatingAgencyArchiveUnitIdentifier") == document_id
        ]
        assert len(found) == 1, document_id
        return found[0]


# --- a council's plan --------------------------------------------------------------------------------------

FIELDS = [
    {"name": "seance", "label": "Date de séance", "kind": "date"},
    {"name": "service", "label": "Service producteur", "kind": "text"},
    {"name": "matiere", "label": "Matière", "kind": "choice", "choices": ["Finances", "Voirie"]},
    {"name": "objet", "label": "Objet", "kind": "text"},
]


@pytest.fixture
def council(kit: Kit) -> dict[str, Any]:
    """A plan « 1D Conseil municipal » / « 2026 » / « Séance de mars », a folder beside it, deliberations in
    each (one of them in the trash, one held), and the referential's rules."""
    make_type(kit, "deliberation", fields=FIELDS, dua_months=120, dua_event="seance", final_action="keep")
    council = make_folder(kit, "Conseil municipal", code="1D")
    year = make_folder(kit, "2026", council)
    march = make_folder(kit, "Séance de mars", year)
    other = make_folder(kit, "Ressources humaines")
    values = {"seance": "2026-03-12", "service": "FR_MAIRIE_DGS", "matiere": "Finances"}

    def deliberation(title: str, folder: str, **extra: Any) -> str:
        return add_document(
            kit, title, type="deliberation", folder_id=folder, date="2026-03-15", tags=["conseil"],
            field_values={**values, "objet": f"Objet {title}", **extra},
        )  # fmt: skip

    ids = {
        "top": deliberation("Règlement intérieur", council),
        "year": deliberation("Budget primitif 2026", year),
        "march": deliberation("Tarifs de la cantine", march, matiere="Voirie"),
        "elsewhere": deliberation("Tableau des effectifs", other),
        "trashed": deliberation("Brouillon", march),
        "held": deliberation("Marché contesté", year),
    }
    assert kit["admin"].delete(f"/ged/documents/{ids['trashed']}").status_code == 200
    hold = kit["archiviste"].post("/ged/holds", json={"name": "Contentieux", "reason": "Recours au TA"})
    assert hold.status_code == 201, hold.text
    held = kit["archiviste"].post(f"/ged/holds/{hold.json()['id']}/documents", json={"document_ids": [ids["held"]]})
    assert held.status_code == 200, held.text
    set_referential(
        kit,
        [
            {"id": "APP-DELIB", "category": "AppraisalRule", "duration": "P10Y"},
            {"id": "AR038", "category": "AccessRule", "duration": "P25Y"},
        ],
    )
    return {"folders": {"council": council, "year": year, "march": march, "other": other}, "documents": ids}


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
def test_folder_transfer_nests_the_plan_and_maps_the_metadata(
    kit: Kit, council: dict[str, Any], version: str, seda_schema: xmlschema.XMLSchema
) -> None:
    put_mapping(
        kit,
        "deliberation",
        start_date="field:seance",
        keyword_fields=["matiere"],
        originating_agency="field:service",
        access_rule="AR038",
        access_start="field:seance",
    )
    documents = council["documents"]
    built = transfer(kit, folder_id=council["folders"]["council"], seda_version=version, comment="Conseil 2026")

    data = manifest_of(kit, built)
    assert built["validation"]["status"] == "valid", built["validation"]
    report = validate_manifest(data, SHARED_SEDA, version)
    assert report.valid, report.issues
    if version == "2.2":
        assert [str(error.reason) for error in seda_schema.iter_errors(data)] == []
    assert built["selection"] == {"kind": "folder", "folder_id": council["folders"]["council"]}
    # Live documents of the subtree only: not the folder beside it, not the trashed one, not the held one.
    assert sorted(built["document_ids"]) == sorted([documents["top"], documents["year"], documents["march"]])

    manifest = Manifest(data, version)
    [root] = manifest.roots()
    assert manifest.title(root) == "Conseil municipal"  # the cote apart, as an identifier
    assert manifest.text(root, "s:Content/s:OriginatingAgencyArchiveUnitIdentifier") == "1D"
    assert manifest.text(root, "s:Content/s:DescriptionLevel") == "RecordGrp"
    top, year = manifest.children(root)
    assert manifest.title(top) == "Règlement intérieur"
    assert (manifest.title(year), manifest.text(year, "s:Content/s:DescriptionLevel")) == ("2026", "SubGrp")
    budget, march = manifest.children(year)
    assert manifest.title(budget) == "Budget primitif 2026"
    assert manifest.title(march) == "Séance de mars"
    assert [manifest.title(unit) for unit in manifest.children(march)] == ["Tarifs de la cantine"]

    # Each document's unit, as the archive loop needs it to tell the GED.
    assert built["document_units"] == {
        document_id: unit.get("id") for document_id in built["document_ids"] for unit in [manifest.unit_of(document_id)]
    }
    item = manifest.unit_of(documents["march"])
    assert manifest.text(item, "s:Content/s:DescriptionLevel") == "Item"
    assert manifest.text(item, "s:Content/s:StartDate") == "2026-03-12"  # the séance, as mapped
    assert manifest.text(item, "s:Content/s:EndDate") == "2026-03-15"  # the document date, by default
    assert manifest.texts(item, "s:Content/s:Keyword/s:KeywordContent") == ["conseil", "Voirie"]
    appraisal = item.find("s:Management/s:AppraisalRule", manifest.ns)
    assert appraisal is not None
    # The DUA (120 months from the séance) is the referential's 10-year rule; final action keep → Keep.
    assert manifest.text(appraisal, "s:Rule") == "APP-DELIB"
    assert manifest.text(appraisal, "s:StartDate") == "2026-03-12"
    assert manifest.text(appraisal, "s:FinalAction") == "Keep"
    assert manifest.text(item, "s:Management/s:AccessRule/s:Rule") == "AR038"
    assert manifest.text(root, "s:Content/s:OriginatingAgency/s:Identifier") == "FR_MAIRIE_DGS"
    assert manifest.text(root, "s:Content/s:SubmissionAgency/s:Identifier") == "213700000"  # the tenant's SIREN


def test_dua_selection_takes_keep_and_sort_documents_whose_dua_ended(kit: Kit) -> None:
    for code, action in (("contrat", "keep"), ("courrier", "sort"), ("bon", "destroy")):
        make_type(kit, code, dua_months=12, dua_event="document_date", final_action=action)
    make_type(kit, "registre", dua_months=1200, dua_event="document_date", final_action="keep")
    kept = add_document(kit, "Contrat de maintenance", type="contrat", date="2019-05-02")
    sorted_ = add_document(kit, "Courrier du préfet", type="courrier", date="2020-01-31")
    add_document(kit, "Bon de commande", type="bon", date="2019-05-02")  # destroy: eliminated, not transferred
    add_document(kit, "Registre des délibérations", type="registre", date="2019-05-02")  # DUA runs until 2119
    add_document(kit, "Note sans type", document_type="note", date="2001-01-01")  # no type, no DUA
    set_referential(kit, [{"id": "APP-1AN", "category": "AppraisalRule", "duration": "P1Y"}])

    built = transfer(kit, dua_reached=True)

    assert built["selection"] == {"kind": "dua_reached"}
    assert built["validation"]["status"] == "valid", built["validation"]
    assert sorted(built["document_ids"]) == sorted([kept, sorted_])
    manifest = Manifest(manifest_of(kit, built), "2.2")
    for document_id, start in ((kept, "2019-05-02"), (sorted_, "2020-01-31")):
        unit = manifest.unit_of(document_id)
        assert manifest.text(unit, "s:Management/s:AppraisalRule/s:Rule") == "APP-1AN"
        assert manifest.text(unit, "s:Management/s:AppraisalRule/s:StartDate") == start
        assert manifest.text(unit, "s:Management/s:AppraisalRule/s:FinalAction") == "Keep"
    # « trier » is kept, with a note saying a sort remains to be done.
    assert "trier" in (manifest.text(manifest.unit_of(sorted_), "s:Content/s:Description") or "")
    assert manifest.text(manifest.unit_of(kept), "s:Content/s:Description") is None

    # Transferred now (the SAE has not replied yet): on no list, in no second transfer.
    again = transfer(kit, dua_reached=True)
    assert again["status"] == "error" and "DUA" in again["error"] and again["document_ids"] == []


def test_destroy_maps_to_destroy_and_a_dua_without_rule_in_the_referential_fails(kit: Kit) -> None:
    make_type(kit, "bon", dua_months=18, dua_event="document_date", final_action="destroy")
    bon = add_document(kit, "Bon de commande", type="bon", date="2019-05-02")

    manifest = Manifest(manifest_of(kit, transfer(kit, document_ids=[bon])), "2.2")
    appraisal = manifest.unit_of(bon).find("s:Management/s:AppraisalRule", manifest.ns)
    assert appraisal is not None  # no referential: a rule id that says the DUA
    assert (manifest.text(appraisal, "s:Rule"), manifest.text(appraisal, "s:FinalAction")) == ("DUA-P18M", "Destroy")

    set_referential(kit, [{"id": "APP-10", "category": "AppraisalRule", "duration": "P10Y"}])
    other = add_document(kit, "Bon de commande 2", type="bon", date="2019-05-02")  # the first is in a transfer
    failed = transfer(kit, document_ids=[other])
    assert failed["status"] == "error"
    assert "P18M" in failed["error"] and "appraisal_rule" in failed["error"] and "« bon »" in failed["error"]


def test_mapping_edited_by_the_archivist_changes_the_manifest(kit: Kit) -> None:
    make_type(kit, "arrete", fields=FIELDS)

    def arrete() -> str:
        return add_document(
            kit, "AR-2026-12", type="arrete", date="2026-02-01", tags=["voirie"],
            field_values={"objet": "Stationnement rue Nationale", "matiere": "Voirie"},
        )  # fmt: skip

    document = arrete()
    default = kit["archiviste"].get("/archive/mappings/arrete")
    assert default.status_code == 200 and default.json()["default"] is True
    assert default.json()["title"] == "title" and default.json()["description_level"] == "Item"
    before = Manifest(manifest_of(kit, transfer(kit, document_ids=[document])), "2.2")
    unit = before.unit_of(document)
    assert before.title(unit) == "AR-2026-12"
    assert before.texts(unit, "s:Content/s:Keyword/s:KeywordContent") == ["voirie"]

    saved = put_mapping(
        kit,
        "arrete",
        title="field:objet",
        description="title",
        description_level="File",
        keywords_from_tags=False,
        keyword_fields=["matiere"],
    )
    assert saved["default"] is False and saved["updated_by"] == "archiviste"
    assert kit["archiviste"].get("/archive/mappings/arrete").json()["title"] == "field:objet"
    assert [m["type_code"] for m in kit["agent"].get("/archive/mappings").json()] == ["arrete"]

    document = arrete()  # the same act again: the first one is in a transfer in progress
    after = Manifest(manifest_of(kit, transfer(kit, document_ids=[document])), "2.2")
    unit = after.unit_of(document)
    assert after.title(unit) == "Stationnement rue Nationale"
    assert after.text(unit, "s:Content/s:Description") == "AR-2026-12"
    assert after.text(unit, "s:Content/s:DescriptionLevel") == "File"
    assert after.texts(unit, "s:Content/s:Keyword/s:KeywordContent") == ["Voirie"]

    # A document without the field the mapping names: the transfer fails, naming both.
    bare = add_document(kit, "AR-2026-13", type="arrete")
    failed = transfer(kit, document_ids=[bare])
    assert failed["status"] == "error"
    assert "title" in failed["error"] and "field:objet" in failed["error"] and bare in failed["error"]


@pytest.mark.parametrize(
    ("mapping", "words"),
    [
        ({"title": "titre"}, ["title", "source inconnue"]),
        ({"description_level": "Dossier"}, ["description_level", "valeur non admise"]),
        ({"couleur": "bleu"}, ["couleur", "inconnu"]),
        ({"keyword_fields": ["mat ière"]}, ["keyword_fields", "nom de champ invalide"]),
        ({"originating_agency": "title"}, ["originating_agency", "tenant"]),
        ({"appraisal_rule": "APP-99"}, ["appraisal_rule", "APP-99", "référentiel"]),
        ({"access_rule": "APP-10"}, ["access_rule", "AccessRule"]),
        ({"writer": ["auteur"]}, ["writer.0", "source inconnue", "author, signatories ou field:"]),
        ({"signer": "signatories"}, ["signer", "liste attendue"]),
        ([], ["objet JSON attendu"]),
    ],
)
def test_wrong_mapping_is_refused_in_french_naming_the_element(kit: Kit, mapping: Any, words: list[str]) -> None:
    set_referential(kit, [{"id": "APP-10", "category": "AppraisalRule", "duration": "P10Y"}])
    body = assert_problem(kit["archiviste"].put("/archive/mappings/arrete", json=mapping), 422)
    assert all(word in body["detail"] for word in words), body["detail"]
    assert kit["archiviste"].get("/archive/mappings/arrete").json()["default"] is True  # nothing saved


def test_only_archivists_edit_mappings(kit: Kit) -> None:
    assert_problem(kit["agent"].put("/archive/mappings/arrete", json={}), 403)
    assert_problem(kit["archiviste"].put("/archive/mappings/bad%20code", json={}), 422)


def test_another_tenants_folder_an_empty_folder_or_two_selections_are_refused(
    kit: Kit, make_kit: Callable[..., Kit]
) -> None:
    other = make_kit(with_identity=False)
    foreign = make_folder(other, "Conseil communautaire")
    add_document(other, "Délibération d’ailleurs", document_type="deliberation", folder_id=foreign)

    refused = transfer(kit, folder_id=foreign)
    assert refused["status"] == "error" and refused["sip_sha256"] is None
    assert "introuvable" in refused["error"] and refused["document_ids"] == []

    empty = transfer(kit, folder_id=make_folder(kit, "Vide"))
    assert empty["status"] == "error"
    assert "« Vide » ne contient aucun document à verser" in empty["error"]

    nothing = transfer(kit, dua_reached=True)
    assert nothing["status"] == "error" and "DUA" in nothing["error"]

    for body in ({"document_ids": ["x"], "folder_id": foreign}, {}, {"dua_reached": False}):
        problem = assert_problem(
            kit["archiviste"].post("/archive/transfers", json={"archival_agency": "A", **body}), 422
        )
        assert "exactement une sélection" in problem["detail"]


# --- agents: the GED's author, the parapheur's signatories, typed fields ------------------------------------------


def signed_document(kit: Kit, title: str, **data: Any) -> str:
    """A document « agent » (Camille Martin) wrote, then signed in the parapheur by « maire » (Dominique Dupont)
    and « agent »: the GED stores the signed PDF as a new version, as the parapheur's message asks it to."""
    if "field_values" in data:
        data["field_values"] = json.dumps(data["field_values"])
    response = kit["agent"].post(
        "/ged/documents",
        files={"file": ("acte.pdf", make_pdf(title), "application/pdf")},
        data={"title": title, "date": "2026-03-02", "document_type": "Arrêté", **data},
    )
    assert response.status_code == 201, response.text
    document_id = str(response.json()["id"])
    signed = get_store().put(io.BytesIO(make_pdf(f"{title} (signé)")))
    ged_jobs.store_signed_version(
        tenant_id=kit.tenant_id,
        document_id=document_id,
        folder_id=f"circuit-{document_id}",
        object_key=signed.key,
        size=signed.size,
        filename="acte-signé.pdf",
        signatories=["maire", "agent"],
        signed_by=None,
    )
    return document_id


def agents(manifest: Manifest, unit: etree._Element, role: str) -> list[list[str]]:
    return [manifest.texts(agent, "*") for agent in unit.iterfind(f"s:Content/s:{role}", manifest.ns)]


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
def test_the_author_and_the_signatories_become_agents_valid_in_each_version(kit: Kit, version: str) -> None:
    document = signed_document(kit, "Arrêté de voirie n° 7")

    data = manifest_of(kit, transfer(kit, document_ids=[document], seda_version=version))

    report = validate_manifest(data, SHARED_SEDA, version)
    assert report.valid, report.issues
    manifest = Manifest(data, version)
    unit = manifest.unit_of(document)
    # The author of the version sent for signature, not the parapheur that made the signed one.
    writer = ["Camille Martin", "agent"]
    signers = [["Dominique Dupont", "maire", "Signataire"], ["Camille Martin", "agent", "Signataire"]]
    if version == "2.1":  # no generic Agent in 2.1: the signatories are Writers whose Role says so
        assert agents(manifest, unit, "Writer") == [writer, *signers]
        assert agents(manifest, unit, "Agent") == []
    else:
        assert agents(manifest, unit, "Writer") == [writer]
        assert agents(manifest, unit, "Agent") == signers


def test_the_archivist_maps_agents_from_typed_fields(kit: Kit) -> None:
    fields = [
        {"name": "redacteur", "label": "Rédacteur", "kind": "text"},
        {"name": "destinataire", "label": "Destinataire", "kind": "text"},
    ]
    make_type(kit, "courrier", fields=fields)
    default = kit["archiviste"].get("/archive/mappings/courrier").json()
    assert (default["writer"], default["signer"], default["addressee"]) == (["author"], ["signatories"], [])
    saved = put_mapping(
        kit, "courrier", writer=["field:redacteur", "author"], addressee=["field:destinataire"], signer=[]
    )
    assert saved["writer"] == ["field:redacteur", "author"] and saved["signer"] == []

    values = {"redacteur": "Jean Rédacteur", "destinataire": "Préfecture d'Indre-et-Loire"}
    document = signed_document(kit, "Courrier au préfet", type="courrier", field_values=values)
    unsigned = add_document(kit, "Courrier sans rédacteur", type="courrier", date="2026-03-02")
    data = manifest_of(kit, transfer(kit, document_ids=[document, unsigned]))

    manifest = Manifest(data, "2.2")
    unit = manifest.unit_of(document)
    assert agents(manifest, unit, "Writer") == [["Jean Rédacteur"], ["Camille Martin", "agent"]]
    assert agents(manifest, unit, "Addressee") == [["Préfecture d'Indre-et-Loire"]]
    assert agents(manifest, unit, "Agent") == []  # no signatories in this mapping
    # An empty field names nobody: agents are optional, the transfer goes on.
    other = manifest.unit_of(unsigned)
    assert agents(manifest, other, "Writer") == [["Sacha Petit", "admin"]]
    assert agents(manifest, other, "Addressee") == []


def filed_by_services(kit: Kit) -> tuple[str, str]:
    """A document uploaded in the parapheur, signed by « maire » and « agent », then filed in the GED by the
    parapheur itself (never in the GED before); and an ARActe an interop flow filed. Their authors are programs."""
    signed = get_store().put(io.BytesIO(make_pdf("Arrêté de circulation (signé)")))
    plan = kit["admin"].post("/ged/plan", json={"name": "Arrêtés signés", "parent_id": None})
    assert plan.status_code == 201, plan.text
    ged_jobs.file_signed_document(
        tenant_id=kit.tenant_id,
        folder_id="circuit-depose",
        object_key=signed.key,
        size=signed.size,
        filename="arrete-signe.pdf",
        media_type="application/pdf",
        title="Arrêté de circulation",
        document_type="Arrêté",
        signatories=["maire", "agent"],
        signed_by=None,
        ged_folder="Arrêtés signés",
    )
    aracte = get_store().put(io.BytesIO(b"<?xml version='1.0'?><ARActe/>"))
    ged_jobs.store_flow_document(
        tenant_id=kit.tenant_id,
        flow_id="flux-depose",
        name="aracte",
        object_key=aracte.key,
        size=aracte.size,
        filename="ARActe.xml",
        media_type="application/xml",
        title="Accusé de réception — Arrêté de circulation",
        document_type="actes",
        ged_folder="Arrêtés signés",
        username=None,
        document_date=None,
        type_code=None,
        description=None,
    )
    with new_session() as session:
        query = select(Version.origin, Version.document_id).join(Document).where(Document.tenant_id == kit.tenant_id)
        filed = {origin: document_id for origin, document_id in session.execute(query) if origin}
    return filed["parapheur:circuit-depose"], filed["interop:flux-depose:aracte"]


@pytest.mark.parametrize("version", ["2.1", "2.2", "2.3"])
def test_a_document_filed_by_the_parapheur_has_its_signatories_and_no_program_as_writer(
    kit: Kit, version: str, seda_schema: xmlschema.XMLSchema
) -> None:
    document, aracte = filed_by_services(kit)

    data = manifest_of(kit, transfer(kit, document_ids=[document, aracte], seda_version=version))

    report = validate_manifest(data, SHARED_SEDA, version)
    assert report.valid, report.issues
    if version == "2.2":
        assert [str(error.reason) for error in seda_schema.iter_errors(data)] == []
    manifest = Manifest(data, version)
    unit = manifest.unit_of(document)
    signers = [["Dominique Dupont", "maire", "Signataire"], ["Camille Martin", "agent", "Signataire"]]
    if version == "2.1":  # the signatories are Writers whose Role says so; no other Writer
        assert agents(manifest, unit, "Writer") == signers
    else:
        assert agents(manifest, unit, "Writer") == []
        assert agents(manifest, unit, "Agent") == signers
    # Neither service is named anywhere as a person: the ARActe has no agent at all.
    other = manifest.unit_of(aracte)
    assert agents(manifest, other, "Writer") == agents(manifest, other, "Agent") == []
    named = manifest.texts(manifest.root, ".//s:Content/*/s:FullName")
    assert "Dominique Dupont" in named and not {"parapheur", "interop", "Parapheur"} & set(named)
