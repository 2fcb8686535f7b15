"""Review of the paper path: par0011 gives a folder signed on paper several times its last scan (each act undoing
to the one before); only the step's desks, the secrétariat and administrators record a paper signature for someone
else; the GED's version comment says a signature is on paper; a folder whose signature cannot be a signed version
(CAdES) says where its scan is; a GED that refuses a signed version for good (archived document) is said so,
without advice that cannot succeed."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from html import unescape
from typing import Any

from fastapi.testclient import TestClient
from parapheur_kit import Standard, act, filing_into, folder_of, ged_folder, ok, sent_folder, typology
from sqlalchemy import MetaData, create_engine, insert, select, update
from ui_kit import sign_in

from ged import service as ged_service
from ged.models import Document
from parapheur import filing, service
from socle.auth import create_user, get_tenant, get_user, issue_token
from socle.dates import spelled_date
from socle.db import transaction

from conftest import Kit, assert_problem, make_pdf, run_jobs

PDF = "application/pdf"


def _page(client: TestClient, folder_id: str) -> str:
    page = client.get(f"/dossiers/{folder_id}")
    assert page.status_code == 200, page.text
    return " ".join(unescape(page.text).split())


def _paper_url(folder_id: str) -> str:
    return f"/parapheur/folders/{folder_id}/paper-signature"


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(json.loads(value) if isinstance(value, str) else value)


def test_a_folder_signed_on_paper_twice_before_the_upgrade_gets_its_last_scan(old_database_url: str) -> None:
    """Two desks of one paper step each signed on paper (mode all): the later scan is the signed version, whatever
    the order the rows are read in; undoing the later act gives back the earlier scan, undoing that one nothing."""
    from alembic import command

    from socle.migrating import alembic_config, upgrade_all

    upgrade_all(old_database_url)
    command.downgrade(alembic_config("parapheur", old_database_url), "par0010")
    engine = create_engine(old_database_url)
    meta = MetaData()
    meta.reflect(engine, only=["parapheur_folders", "parapheur_steps", "parapheur_step_acts", "parapheur_documents"])
    folders, steps = meta.tables["parapheur_folders"], meta.tables["parapheur_steps"]
    acts, documents = meta.tables["parapheur_step_acts"], meta.tables["parapheur_documents"]
    now = datetime(2026, 12, 1, 10, 0)
    with engine.begin() as connection:
        connection.execute(
            insert(folders).values(id="f", tenant_id="t", title="x", status="completed", source="upload",
                                   signature_format="pades", signature_level="B-B", ged_filing=True, metadata={},
                                   current_step=0, created_by="agent", created_at=now, updated_at=now)
        )  # fmt: skip
        connection.execute(
            insert(steps).values(id="s", folder_id="f", position=0, kind="paper_signature", desk_ids=["d1", "d2"],
                                 mode="all", mandatory_metadata=[], status="done")
        )  # fmt: skip
        for document_id, role, key, position in (("m", "main", "a" * 64, 0), ("c1", "scan", "1" * 64, 1),
                                                 ("c2", "scan", "2" * 64, 2)):  # fmt: skip
            connection.execute(
                insert(documents).values(id=document_id, folder_id="f", role=role, position=position,
                                         filename=f"{document_id}.pdf", media_type=PDF, key=key, size=position + 10,
                                         signed_key=None, added_by="agent", added_at=now)
            )  # fmt: skip
        # The later act first, as any physical order may be; its id sorts first too.
        for act_id, username, at, scan in (("a1", "adjoint", now + timedelta(hours=1), "c2"),
                                           ("a2", "maire", now, "c1")):  # fmt: skip
            connection.execute(
                insert(acts).values(id=act_id, step_id="s", folder_id="f", username=username, display_name=username,
                                    action="paper_signature", at=at, previous_keys={scan: None})
            )  # fmt: skip
    command.upgrade(alembic_config("parapheur", old_database_url), "head")
    upgraded = MetaData()
    upgraded.reflect(engine, only=["parapheur_step_acts", "parapheur_documents"])
    documents, acts = upgraded.tables["parapheur_documents"], upgraded.tables["parapheur_step_acts"]
    with engine.connect() as connection:
        main = connection.execute(select(documents).where(documents.c.id == "m")).one()
        previous = {row.id: _as_dict(row.previous_keys) for row in connection.execute(select(acts))}
    engine.dispose()
    assert (main.signed_key, main.signed_size, main.paper_scan_id) == ("2" * 64, 12, "c2")
    assert previous == {
        "a2": {"c1": None, "m": None, "paper_scan:m": None},  # the earlier act: unsigned before it
        "a1": {"c2": None, "m": "1" * 64, "paper_scan:m": "c1"},  # the later one: the earlier scan before it
    }


def _user(app: Any, kit: Kit, username: str, name: str, roles: list[str]) -> TestClient:
    with transaction() as session:
        created = create_user(session, get_tenant(session, kit.slug), username, name, roles)
        token = issue_token(session, created, "tests")
    return TestClient(app, headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=False)


def _in_secretariat(kit: Kit, username: str) -> None:
    with transaction() as session:
        user = get_user(session, get_tenant(session, kit.slug), username)
        user.roles = [*user.roles, "secretariat"]


def test_the_creator_and_its_desk_no_longer_sign_for_the_mayor_on_paper(app: Any, kit: Kit) -> None:
    """Creating a folder gives no right to upload any PDF as « signature papier du maire »: only the step's desks
    (a member records it for a colleague of the desk), the secrétariat and administrators."""
    setup = Standard(kit)
    colleague = _user(app, kit, "collegue", "Lou Durand", ["agent"])
    deputy = _user(app, kit, "adjoint", "Sam Leroy", ["agent"])
    ok(kit["admin"].post(f"/parapheur/desks/{setup.secretariat}/members", json={"username": "collegue"}))
    ok(kit["admin"].post(f"/parapheur/desks/{setup.maire}/members", json={"username": "adjoint"}))
    subtype = typology(
        kit,
        [{"kind": "visa", "desk_ids": [setup.secretariat]}, {"kind": "paper_signature", "desk_ids": [setup.maire]}],
        name="Délibération sur papier",
        creator_desk_ids=[setup.secretariat],
    )
    folder = sent_folder(kit, subtype)
    ok(act(kit, "agent", folder["id"], "visa"))
    url, scan = _paper_url(folder["id"]), {"file": ("scan.pdf", make_pdf("Signé ?"), PDF)}

    expected = (
        "seuls les membres des bureaux de l'étape (ou leurs suppléants), le secrétariat et les administrateurs "
        "peuvent enregistrer la signature papier d'une autre personne"
    )
    for client in (kit["agent"], colleague):  # its creator, a member of its creating desk
        for data in ({"signatory": "maire"}, {"signatory_name": "Dominique Dupont"}):
            assert assert_problem(client.post(url, files=scan, data=data), 403)["detail"] == expected
    html = _page(sign_in(app, kit, "agent"), folder["id"])
    assert "Qui a signé le document papier ?" not in html
    assert folder_of(kit, folder["id"])["status"] == "in_progress"

    # A member of the mayor's desk records the paper signature of the mayor, who signed by hand.
    done = ok(deputy.post(url, files=scan, data={"signatory": "maire"}))
    (paper_act,) = [a for step in done["steps"] for a in step["acts"] if a["action"] == "paper_signature"]
    assert (paper_act["username"], paper_act["signatory_username"]) == ("adjoint", "maire")
    assert done["status"] == "completed"


def test_the_ged_version_says_the_signature_is_on_paper(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    subtype = typology(kit, [{"kind": "paper_signature", "desk_ids": [setup.maire]}], name="Arrêté papier")
    document_id, folder_id = ged_folder(kit, subtype, make_pdf("Arrêté n° 4"))
    _in_secretariat(kit, "agent")
    signed_day = service.today() - timedelta(days=1)
    data = {"signatory": "maire", "signed_on": signed_day.isoformat()}
    ok(kit["agent"].post(_paper_url(folder_id), files={"file": ("arrete.pdf", make_pdf("Signé"), PDF)}, data=data))
    run_jobs()
    version = ok(kit["agent"].get(f"/ged/documents/{document_id}/versions"))[-1]
    assert version["comment"] == f"Signé par Dominique Dupont, Maire (signature papier du {spelled_date(signed_day)})"
    assert version["signatories"] == ["maire"]
    # The page keeps its own words: the person, then how and when.
    html = _page(sign_in(app, kit, "agent"), folder_id)
    assert f"<dd>Dominique Dupont, Maire (signature papier du {spelled_date(signed_day)}, enregistrée par " in html


def test_the_label_of_a_paper_signature_says_so() -> None:
    electronic = service.Signer("Dominique Dupont", "Maire")
    on_paper = service.Signer("Dominique Dupont", "Maire", True, date(2026, 12, 2), "Camille Martin")
    undated = service.Signer("Dominique Dupont", None, True)
    assert [electronic.label, on_paper.label, undated.label] == [
        "Dominique Dupont, Maire",
        "Dominique Dupont, Maire (signature papier du 2 décembre 2026)",
        "Dominique Dupont (signature papier)",
    ]


def test_a_cades_folder_signed_on_paper_says_its_scan_stays_an_annex(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    cades = typology(
        kit, [{"kind": "paper_signature", "desk_ids": [setup.maire]}], signature_format="cades", name="Acte"
    )
    filing_into(kit, cades, "Actes")
    odt = "application/vnd.oasis.opendocument.text"
    folder = sent_folder(kit, cades, files=[("acte.odt", b"contenu de l'acte", odt)], ged_filing="true")
    done = ok(kit["maire"].post(_paper_url(folder["id"]), files={"file": ("scan.pdf", make_pdf("Signé"), PDF)}))
    assert done["status"] == "completed" and [d["role"] for d in done["documents"]] == ["main", "scan"]
    run_jobs()
    assert folder_of(kit, folder["id"])["ged_document_id"] is None  # nothing was sent: no signed version
    html = _page(sign_in(app, kit, "agent"), folder["id"])
    assert "la signature est détachée" not in html
    assert (
        "Aucun document signé à classer dans la GED : le scan de la signature papier reste une annexe de ce "
        "dossier, dans le parapheur" in html
    )
    assert "Annexes et pièces jointes" in html and "scan.pdf" in html


def _frozen(document_id: str, disposal: str) -> None:
    """The GED document as the archive leaves it: in a transfer, or archived (accepted by the SAE)."""
    values: dict[str, Any] = {"disposal": disposal, "disposal_at": datetime(2026, 12, 1, 9, 0, tzinfo=UTC)}
    if disposal == ged_service.TRANSFERRED:
        values["archive_transfer_id"] = "versement-7"
    else:
        values["sae_identifier"] = "SAE-2026-42"
    with transaction() as session:
        session.execute(update(Document).where(Document.id == document_id).values(**values))


def test_a_signed_version_the_ged_refuses_for_good_is_said_without_retry_advice(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    page_of = sign_in(app, kit, "agent")
    said = {}
    for disposal in (ged_service.ARCHIVED, ged_service.TRANSFERRED, None):
        document_id, folder_id = ged_folder(kit, setup.sign_only, make_pdf(f"Arrêté {disposal}"))
        if disposal is not None:
            _frozen(document_id, disposal)
        else:  # a failure the GED does not give for good: a hold, released later
            hold = ok(kit["admin"].post("/ged/holds", json={"name": "Contentieux", "reason": "Recours"}), 201)
            ok(kit["admin"].post(f"/ged/holds/{hold['id']}/documents", json={"document_ids": [document_id]}))
        ok(act(kit, "maire", folder_id, "sign"))
        run_jobs()
        said[disposal] = _page(page_of, folder_id)
    archived, transferred, held = said[ged_service.ARCHIVED], said[ged_service.TRANSFERRED], said[None]
    assert (
        "la GED a refusé la version signée : document archivé au système d'archivage : sa copie dans la GED est "
        "figée, la version signée ne peut plus y être ajoutée. La version signée reste téléchargeable" in archived
    )
    assert (
        "la GED a refusé la version signée : document en cours de versement au système d'archivage "
        "(versement versement-7)" in transferred
    )
    for html in (archived, transferred):
        assert "l'exploitant peut relancer la tâche" not in html
    assert "la GED n'a pas pu enregistrer la version signée : l'exploitant peut relancer la tâche" in held


def test_only_a_frozen_document_is_a_refusal_for_good() -> None:
    assert filing.refusal(None) is None
    assert (
        filing.refusal("Traceback…\nsocle.errors.Conflict: document gelé par « Contentieux » : aucune modification\n")
        is None
    )
    assert (
        filing.refusal(
            "Traceback…\nsocle.errors.Conflict: document éliminé : la version signée ne peut plus y être ajoutée\n"
        )
        == "document éliminé : la version signée ne peut plus y être ajoutée"
    )
