"""The paper path ends in the GED like any signed act: the scan of a handwritten signature becomes the signed
version of the document (shown « signé sur papier », downloaded, signed by later steps, sent to the GED), its
unsigned original stays reachable; the secrétariat (or a member of the step's desks) records « signature papier de … »
for a signatory who uses no digital tool; a signature step may accept paper instead; the page says where the
signed document stands with the GED from what is really so; signatories are named by full name and quality."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from parapheur_kit import Standard, act, desk, filing_into, folder_of, ged_folder, ok, sent_folder, typology
from sqlalchemy import delete, select
from ui_kit import csrf_of, sign_in

from parapheur import service
from parapheur.pades import verify_pdf
from socle.auth import create_user, get_tenant, get_user, issue_token
from socle.dates import spelled_date
from socle.db import transaction
from socle.models import AuditEntry, Job

from conftest import Kit, assert_problem, identity_certificate, make_pdf, run_jobs

PDF = "application/pdf"
UNDER_WAY = "Classement du document signé dans la GED en cours"


def _page(client: TestClient, folder_id: str) -> str:
    page = client.get(f"/dossiers/{folder_id}")
    assert page.status_code == 200, page.text
    return " ".join(unescape(page.text).split())


def _paper_url(folder_id: str) -> str:
    return f"/parapheur/folders/{folder_id}/paper-signature"


def _scan(text: str = "Délibération signée à la main") -> bytes:
    return make_pdf(text, pages=2)


def _filing_job(folder_id: str) -> Job | None:
    with transaction() as session:
        return session.execute(select(Job).where(Job.key == f"ged.file:{folder_id}")).scalar_one_or_none()


def _audit(kit: Kit, action: str, folder_id: str) -> list[AuditEntry]:
    with transaction() as session:
        query = select(AuditEntry).where(
            AuditEntry.tenant_id == kit.tenant_id, AuditEntry.action == action, AuditEntry.object_id == folder_id
        )
        return list(session.execute(query).scalars())


def _in_secretariat(kit: Kit, username: str) -> None:
    """The user also holds the ``secretariat`` role: they may record a paper signature for its signatory."""
    with transaction() as session:
        user = get_user(session, get_tenant(session, kit.slug), username)
        user.roles = [*user.roles, "secretariat"]


def _deliberation(kit: Kit) -> tuple[Standard, str]:
    """Secrétariat visas, then the mayor signs on paper; the signed délibération is filed in « Délibérations »."""
    setup = Standard(kit)
    subtype = typology(
        kit,
        [{"kind": "visa", "desk_ids": [setup.secretariat]}, {"kind": "paper_signature", "desk_ids": [setup.maire]}],
        name="Délibération sur papier",
        creator_desk_ids=[setup.secretariat],
    )
    filing_into(kit, subtype, "Délibérations")
    return setup, subtype


def test_the_secretariat_records_the_mayors_paper_signature_and_the_ged_files_the_scan(app: Any, kit: Kit) -> None:
    _setup, subtype = _deliberation(kit)
    original = make_pdf("Délibération n° 12")
    folder = sent_folder(
        kit, subtype, title="Délibération n° 12", files=[("deliberation-12.pdf", original, PDF)], ged_filing="true"
    )
    folder_id, main_id = folder["id"], folder["documents"][0]["id"]
    ok(act(kit, "agent", folder_id, "visa"))
    _in_secretariat(kit, "agent")

    # The secrétaire, not a member of the mayor's desk, records the signature for him from the folder's page.
    agent = sign_in(app, kit, "agent")
    html = _page(agent, folder_id)
    assert "Signature papier" in html and "Qui a signé le document papier ?" in html
    assert re.search(r'<option value="maire"\s*>Dominique Dupont</option>', html)
    assert "Vous-même" not in html  # she does not hold the step's desk: she records it for its signatory
    signed_day = service.today() - timedelta(days=1)
    scan = _scan()
    answer = agent.post(
        f"/dossiers/{folder_id}/signature-papier",
        data={
            "csrf": csrf_of(agent.get(f"/dossiers/{folder_id}").text),
            "signataire": "maire",
            "date_signature": signed_day.isoformat(),
        },
        files={"scan": ("deliberation-12-signee.pdf", scan, PDF)},
    )
    assert answer.status_code == 303, answer.text

    done = folder_of(kit, folder_id)
    assert done["status"] == "completed"
    main = next(document for document in done["documents"] if document["id"] == main_id)
    assert main["signed_on_paper"] is True and main["current_sha256"] != main["sha256"]
    (paper_act,) = [a for step in done["steps"] for a in step["acts"] if a["action"] == "paper_signature"]
    assert (paper_act["username"], paper_act["signatory_username"]) == ("agent", "maire")
    assert (paper_act["signatory_name"], paper_act["signed_on"]) == ("Dominique Dupont", signed_day.isoformat())

    # A filing is really asked: the page says « en cours » because a job is queued, not because the circuit ended.
    job = _filing_job(folder_id)
    assert job is not None and job.arguments["object_key"] == main["current_sha256"]
    assert job.arguments["signatories"] == ["maire"]  # who signed by hand, never who recorded it
    assert UNDER_WAY in _page(agent, folder_id)

    run_jobs()
    document_id = folder_of(kit, folder_id)["ged_document_id"]
    assert document_id, "the GED filed nothing"
    assert kit["agent"].get(f"/ged/documents/{document_id}/content").content == scan
    (version,) = ok(kit["agent"].get(f"/ged/documents/{document_id}/versions"))
    assert version["signatories"] == ["maire"] and version["content"]["filename"] == "deliberation-12-signe.pdf"

    html = _page(agent, folder_id)
    assert f'<a href="/documents/{document_id}">Document signé classé dans la GED</a>' in html and UNDER_WAY not in html
    # The main document is the scan, said « signé sur papier », with who signed, when, who recorded it.
    day = signed_day.strftime("%d/%m/%Y")
    assert "(<strong>signé sur papier</strong>)" in html
    assert "<dt>Signataires</dt><dd>Dominique Dupont, Maire (signature papier du " in html
    assert "Signé sur papier par Dominique Dupont, Maire le " in html and "scan enregistré par Camille Martin." in html
    assert "pas une signature électronique" in html
    # The scan is the document, not an annex beside the unsigned original.
    assert "Annexes et pièces jointes" not in html
    downloaded = agent.get(f"/dossiers/{folder_id}/documents/{main_id}")
    assert downloaded.status_code == 200 and downloaded.content == scan
    assert agent.get(f"/dossiers/{folder_id}/documents/{main_id}/original").content == original
    assert kit["agent"].get(f"/parapheur/folders/{folder_id}/documents/{main_id}").content == scan
    assert kit["agent"].get(f"/parapheur/folders/{folder_id}/documents/{main_id}/original").content == original

    # History and audit: who recorded it, for whom, the day of the handwritten signature.
    history = ok(kit["agent"].get(f"/parapheur/folders/{folder_id}/history"))
    (line,) = [event for event in history if event["action"] == "paper_signature"]
    assert line["actor"] == "agent" and line["comment"] == (
        f"Signature papier de Dominique Dupont, Maire, le {day}, enregistrée par Camille Martin ; "
        "scan : deliberation-12-signee.pdf"
    )
    (entry,) = _audit(kit, "parapheur.paper_signature", folder_id)
    assert entry.actor == "user:agent" and entry.details["desk"] == "Maire"
    assert entry.details["signatory"] == "Dominique Dupont" and entry.details["signatory_username"] == "maire"
    assert entry.details["signed_on"] == signed_day.isoformat() and entry.details["document"] == main_id


def test_a_ged_folder_signed_on_paper_gets_the_scan_as_its_signed_version(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    subtype = typology(kit, [{"kind": "paper_signature", "desk_ids": [setup.maire]}], name="Arrêté papier")
    document_id, folder_id = ged_folder(kit, subtype, make_pdf("Arrêté n° 4"))
    scan = _scan("Arrêté signé")
    done = ok(kit["maire"].post(_paper_url(folder_id), files={"file": ("arrete-signe.pdf", scan, PDF)}))
    assert done["status"] == "completed" and done["documents"][0]["signed_on_paper"] is True
    html = _page(sign_in(app, kit, "agent"), folder_id)
    assert "enregistrement de la version signée dans la GED en cours" in html

    run_jobs()
    versions = ok(kit["agent"].get(f"/ged/documents/{document_id}/versions"))
    assert [version["number"] for version in versions] == [1, 2]
    assert versions[-1]["signatories"] == ["maire"] and versions[-1]["origin"] == f"parapheur:{folder_id}"
    assert kit["agent"].get(f"/ged/documents/{document_id}/content").content == scan
    assert "version signée enregistrée dans la GED" in _page(sign_in(app, kit, "agent"), folder_id)


def test_who_may_record_a_paper_signature_for_someone_else(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    juridique = desk(kit, "Juridique", ["archiviste"])
    other = typology(
        kit,
        [{"kind": "visa", "desk_ids": [juridique]}, {"kind": "paper_signature", "desk_ids": [setup.maire]}],
        name="Convention",
    )
    folder = sent_folder(kit, other)
    ok(act(kit, "archiviste", folder["id"], "visa"))
    url, scan = _paper_url(folder["id"]), {"file": ("scan.pdf", _scan(), PDF)}

    # A member of a visa desk sees the folder but holds no desk of the paper step.
    refused = kit["archiviste"].post(url, files=scan, data={"signatory_name": "Dominique Dupont"})
    assert "secrétariat" in assert_problem(refused, 403)["detail"]
    assert_problem(kit["archiviste"].post(url, files=scan), 403)  # nor for himself
    # Nor does its creator (of the agent role only): creating a folder gives no right to sign it for the mayor.
    refused = kit["agent"].post(url, files=scan, data={"signatory": "maire"})
    assert "secrétariat" in assert_problem(refused, 403)["detail"]

    # A user of the secrétariat role, who sees the folder through a desk of its circuit, may, naming who signed;
    # a signatory who holds no desk of the step, or a day to come, is refused.
    with transaction() as session:
        clerk = create_user(session, get_tenant(session, kit.slug), "greffe", "Alex Greffe", ["secretariat"])
        token = issue_token(session, clerk, "tests")
    ok(kit["admin"].post(f"/parapheur/desks/{juridique}/members", json={"username": "greffe"}))
    greffe = TestClient(app, headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=False)
    unnamed = assert_problem(greffe.post(url, files=scan), 403)["detail"]
    assert unnamed == "vous n'êtes pas attendu à cette étape : indiquez qui a signé le document papier"
    assert_problem(greffe.post(url, files=scan, data={"signatory": "archiviste"}), 422)
    tomorrow = (service.today() + timedelta(days=1)).isoformat()
    future = greffe.post(url, files=scan, data={"signatory": "maire", "signed_on": tomorrow})
    assert "futur" in assert_problem(future, 422)["detail"]
    assert folder_of(kit, folder["id"])["status"] == "in_progress"
    done = ok(greffe.post(url, files=scan, data={"signatory_name": "Dominique Dupont"}))
    assert done["status"] == "completed"
    (paper_act,) = [a for step in done["steps"] for a in step["acts"] if a["action"] == "paper_signature"]
    assert paper_act["username"] == "greffe" and paper_act["signatory_name"] == "Dominique Dupont"
    assert paper_act["signatory_username"] is None and paper_act["desk_id"] == setup.maire


def test_a_signature_step_may_accept_paper_instead_when_its_sous_type_says_so(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    before = sent_folder(kit, setup.sign_only)
    refused = kit["agent"].post(
        _paper_url(before["id"]), files={"file": ("scan.pdf", _scan(), PDF)}, data={"signatory": "maire"}
    )
    assert "signature" in assert_problem(refused, 409)["detail"]  # off by default: an electronic signature only
    assert "signer sur papier" not in _page(sign_in(app, kit, "maire"), before["id"])

    changed = ok(kit["admin"].patch(f"/parapheur/subtypes/{setup.sign_only}", json={"paper_allowed": True}))
    assert changed["paper_allowed"] is True
    folder = sent_folder(kit, setup.sign_only)
    assert folder["steps"][0]["paper_allowed"] is True
    assert before["steps"][0]["paper_allowed"] is False  # a folder already sent keeps its circuit
    html = _page(sign_in(app, kit, "maire"), folder["id"])
    assert "Ou signer sur papier" in html and "Vous-même (Dominique Dupont)" in html and "Signer" in html

    signed_day = service.today() - timedelta(days=2)
    _in_secretariat(kit, "agent")
    data = {"signatory_name": "Dominique Dupont", "signed_on": signed_day.isoformat()}
    done = ok(kit["agent"].post(_paper_url(folder["id"]), files={"file": ("scan.pdf", _scan(), PDF)}, data=data))
    assert done["status"] == "completed" and done["documents"][0]["signed_on_paper"] is True
    (paper_act,) = done["steps"][0]["acts"]
    assert paper_act["action"] == "paper_signature" and paper_act["desk_id"] == setup.maire
    # Named without an account: no identifier for the GED, and none claimed for the secrétaire who recorded it.
    with transaction() as session:
        completed = service.get_folder(session, kit.tenant_id, folder["id"])
        assert service.signatory_usernames(completed) == []
        labels = [signer.label for signer in service.signers(session, completed)]
    assert labels == [f"Dominique Dupont, Maire (signature papier du {spelled_date(signed_day)})"]

    # Never for a PES: Hélios takes a flux signed in XAdES.
    pes = typology(kit, [{"kind": "signature", "desk_ids": [setup.maire]}], signature_format="xades", name="PES")
    refused = kit["admin"].patch(f"/parapheur/subtypes/{pes}", json={"paper_allowed": True})
    assert "papier" in assert_problem(refused, 422)["detail"]


def test_the_circuit_editor_sets_the_paper_alternative(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    admin = sign_in(app, kit, "admin")
    url = f"/admin/parapheur/sous-types/{setup.sign_only}"
    page = admin.get(url).text
    assert 'name="paper_allowed"' in page and "Accepter aussi une signature papier" in page
    form = {
        "csrf": csrf_of(page),
        "name": "Arrêté",
        "steps-0-kind": "signature",
        "steps-0-desks": setup.maire,
        "steps-0-mode": "all",
        "steps-0-position": "1",
        "paper_allowed": "1",
    }
    assert admin.post(url, data=form).status_code == 303
    assert ok(kit["admin"].get(f"/parapheur/subtypes/{setup.sign_only}"))["paper_allowed"] is True
    # Saved again with the box left unticked, it is off.
    del form["paper_allowed"]
    form["csrf"] = csrf_of(admin.get(url).text)
    assert admin.post(url, data=form).status_code == 303
    assert ok(kit["admin"].get(f"/parapheur/subtypes/{setup.sign_only}"))["paper_allowed"] is False


def test_undo_and_later_steps_the_scan_is_what_is_signed_next(kit: Kit, tmp_path: Path) -> None:
    setup = Standard(kit)
    subtype = typology(
        kit,
        [
            {"kind": "paper_signature", "desk_ids": [setup.secretariat]},
            {"kind": "signature", "desk_ids": [setup.maire]},
        ],
        name="Convention signée deux fois",
    )
    folder = sent_folder(kit, subtype)
    url = _paper_url(folder["id"])
    main = folder["documents"][0]
    first = ok(kit["agent"].post(url, files={"file": ("scan-1.pdf", _scan("Premier scan"), PDF)}))
    assert first["documents"][0]["current_sha256"] != main["sha256"]

    # Droit de remords: the document is unsigned again, the scan gone with the act.
    undone = ok(act(kit, "agent", folder["id"], "undo"))
    assert undone["documents"] == [main]

    scan = _scan("Second scan")
    again = ok(kit["agent"].post(url, files={"file": ("scan-2.pdf", scan, PDF)}))
    scanned = again["documents"][0]
    assert scanned["signed_on_paper"] is True
    # The mayor signs electronically next: his signature goes on the scan, an incremental update of its bytes.
    signed = ok(act(kit, "maire", folder["id"], "sign"))
    assert signed["status"] == "completed" and signed["documents"][0]["signed_on_paper"] is True
    content = kit["maire"].get(f"/parapheur/folders/{folder['id']}/documents/{main['id']}").content
    assert content.startswith(scan) and len(content) > len(scan)
    path = tmp_path / "signe.pdf"
    path.write_bytes(content)
    assert [(check.signer_name, check.valid) for check in verify_pdf(path, [identity_certificate()])] == [
        ("Dominique Dupont", True)
    ]
    with transaction() as session:
        completed = service.get_folder(session, kit.tenant_id, folder["id"])
        assert service.signatory_usernames(completed) == ["agent", "maire"]
        assert [signer.label for signer in service.signers(session, completed)] == [
            "Camille Martin, Secrétaire de mairie (signature papier)",  # no day given: none claimed
            "Dominique Dupont, Maire",
        ]


def test_the_page_says_what_is_really_so_and_offers_to_send_what_nothing_asked(app: Any, kit: Kit) -> None:
    _setup, subtype = _deliberation(kit)
    folder = sent_folder(kit, subtype, ged_filing="true")
    ok(act(kit, "agent", folder["id"], "visa"))
    ok(kit["maire"].post(_paper_url(folder["id"]), files={"file": ("scan.pdf", _scan(), PDF)}))
    # As a folder completed before this fix: nothing was asked of the GED.
    with transaction() as session:
        session.execute(delete(Job).where(Job.key == f"ged.file:{folder['id']}"))
    agent = sign_in(app, kit, "agent")
    html = _page(agent, folder["id"])
    assert UNDER_WAY not in html and "Le document signé n'a pas été envoyé à la GED." in html
    assert "Classer le document signé dans la GED" in html
    assert "Classer le document signé dans la GED" not in _page(sign_in(app, kit, "maire"), folder["id"])

    answer = agent.post(
        f"/dossiers/{folder['id']}/relancer-classement",
        data={"csrf": csrf_of(agent.get(f"/dossiers/{folder['id']}").text)},
    )
    assert answer.status_code == 303, answer.text
    assert UNDER_WAY in _page(agent, folder["id"])
    (asked,) = _audit(kit, "parapheur.folder.ged_send_asked", folder["id"])
    assert asked.actor == "user:agent"
    run_jobs()
    assert folder_of(kit, folder["id"])["ged_document_id"]


def test_a_detached_signature_is_not_said_under_way_forever(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    cades = typology(kit, [{"kind": "signature", "desk_ids": [setup.maire]}], signature_format="cades", name="Acte")
    filing_into(kit, cades, "Actes")
    folder = sent_folder(
        kit,
        cades,
        files=[("acte.odt", b"contenu de l'acte", "application/vnd.oasis.opendocument.text")],
        ged_filing="true",
    )
    ok(act(kit, "maire", folder["id"], "sign"))
    html = _page(sign_in(app, kit, "agent"), folder["id"])
    assert UNDER_WAY not in html
    assert "Aucun document signé à classer dans la GED : la signature est détachée du document" in html


def test_folders_signed_on_paper_before_the_upgrade_get_the_scan_as_signed_version(old_database_url: str) -> None:
    """par0011 makes the scan of a PAdES folder's only main document its signed version (undone with the act);
    a folder whose document was signed electronically since, or of another format, keeps what it had."""
    from alembic import command
    from sqlalchemy import MetaData, create_engine, insert

    from socle.migrating import alembic_config, upgrade_all

    upgrade_all(old_database_url)
    command.downgrade(alembic_config("parapheur", old_database_url), "par0010")
    engine = create_engine(old_database_url)
    meta = MetaData()
    meta.reflect(engine, only=["parapheur_folders", "parapheur_steps", "parapheur_step_acts", "parapheur_documents"])
    folders, steps = meta.tables["parapheur_folders"], meta.tables["parapheur_steps"]
    acts, documents = meta.tables["parapheur_step_acts"], meta.tables["parapheur_documents"]
    now = datetime(2026, 12, 1, 10, 0)
    cases = {"pades": ("pades", None), "esigned": ("pades", "e" * 64), "cades": ("cades", None)}
    with engine.begin() as connection:
        for name, (signature_format, signed_key) in cases.items():
            values = {
                "id": f"f-{name}", "tenant_id": "t", "title": name, "status": "completed", "source": "upload",
                "signature_format": signature_format, "signature_level": "B-B", "ged_filing": True, "metadata": {},
                "current_step": 0, "created_by": "agent", "created_at": now, "updated_at": now,
            }  # fmt: skip
            connection.execute(insert(folders).values(**values))
            connection.execute(
                insert(steps).values(id=f"s-{name}", folder_id=f"f-{name}", position=0, kind="paper_signature",
                                     desk_ids=[], mode="all", mandatory_metadata=[], status="done")
            )  # fmt: skip
            for document_id, role, key, signed in (
                (f"m-{name}", "main", "a" * 64, signed_key),
                (f"c-{name}", "scan", "b" * 64, None),
            ):
                connection.execute(
                    insert(documents).values(id=document_id, folder_id=f"f-{name}", role=role, position=0,
                                             filename=f"{role}.pdf", media_type="application/pdf", key=key, size=10,
                                             signed_key=signed, added_by="agent", added_at=now)
                )  # fmt: skip
            connection.execute(
                insert(acts).values(id=f"a-{name}", step_id=f"s-{name}", folder_id=f"f-{name}", username="maire",
                                    display_name="Dominique Dupont", action="paper_signature", at=now,
                                    previous_keys={f"c-{name}": None})
            )  # fmt: skip
    command.upgrade(alembic_config("parapheur", old_database_url), "head")
    upgraded = MetaData()
    upgraded.reflect(engine, only=["parapheur_step_acts", "parapheur_documents"])
    documents, acts = upgraded.tables["parapheur_documents"], upgraded.tables["parapheur_step_acts"]
    with engine.connect() as connection:
        mains = {
            row.id: (row.signed_key, row.signed_size, row.paper_scan_id)
            for row in connection.execute(select(documents).where(documents.c.role == "main"))
        }
        previous = dict(connection.execute(select(acts.c.id, acts.c.previous_keys)).all())
    engine.dispose()
    assert mains == {
        "m-pades": ("b" * 64, 10, "c-pades"),
        "m-esigned": ("e" * 64, None, None),
        "m-cades": (None, None, None),
    }
    assert _as_dict(previous["a-pades"]) == {"c-pades": None, "m-pades": None, "paper_scan:m-pades": None}
    assert _as_dict(previous["a-esigned"]) == {"c-esigned": None}


def _as_dict(value: Any) -> dict[str, Any]:
    import json

    return dict(json.loads(value) if isinstance(value, str) else value)
