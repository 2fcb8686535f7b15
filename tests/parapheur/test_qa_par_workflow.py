"""The parapheur as its users use it: circuits a PES cannot follow, reminders, and the acts around them."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from parapheur_kit import Standard, act, desk, ok, sent_folder, typology
from pes import make_pes_aller
from sqlalchemy import select, update
from ui_kit import post_form, sign_in

from parapheur import notify, report
from parapheur.models import Folder, PendingNotice, SigningIdentity
from socle import secrets
from socle.db import new_session, transaction, utcnow
from socle.migrating import upgrade_all

from conftest import Kit, assert_problem, missing, run_jobs, signing_identity


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def both_kit(request: pytest.FixtureRequest, make_kit: Any, use_env: Any) -> Kit:
    """A collectivité on SQLite, then on PostgreSQL (a private schema): the rules are queries on both."""
    if request.param == "postgresql":
        use_env(SOCLE_DATABASE_URL=request.getfixturevalue("postgres_url"))
        upgrade_all()
    kit: Kit = make_kit()
    return kit


def pdftotext(path: Path) -> str:
    """poppler's reading of a PDF's text: independent of the library that wrote it."""
    if shutil.which("pdftotext") is None:
        missing("poppler-utils (pdftotext) n'est pas installé : lancez « make test », qui l'installe")
    return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, timeout=60, check=True).stdout


def _xades_type(kit: Kit) -> str:
    body = {"name": "Flux comptables", "signature_format": "xades"}
    return str(ok(kit["admin"].post("/parapheur/types", json=body), 201)["id"])


def test_a_pes_circuit_signing_a_bordereau_twice_is_refused_when_it_is_made(kit: Kit) -> None:
    """A bordereau takes one XAdES signature: a second signer would be refused at every folder, for ever."""
    setup = Standard(kit)
    adjoint = desk(kit, "Adjoint", ["agent"], "Premier adjoint")
    type_id = _xades_type(kit)
    twice = [
        [{"kind": "signature", "desk_ids": [setup.maire]}, {"kind": "signature", "desk_ids": [adjoint]}],
        [{"kind": "signature", "desk_ids": [setup.maire, adjoint]}],  # mode all: both desks sign
        [{"kind": "signature", "desk_ids": [setup.maire, adjoint], "mode": "quorum", "quorum": 2}],
    ]
    for circuit in twice:
        body = assert_problem(
            kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json={"name": "Mandats", "circuit": circuit}), 422
        )
        assert "une signature par bordereau" in body["detail"]
    # One signature, whoever gives it, after any number of visas: accepted, and the folder completes.
    once = [
        {"kind": "visa", "desk_ids": [setup.secretariat]},
        {"kind": "signature", "desk_ids": [setup.maire, adjoint], "mode": "any"},
    ]
    subtype = ok(
        kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json={"name": "Mandats", "circuit": once}), 201
    )
    folder = sent_folder(kit, subtype["id"], files=[("PESALR2.xml", make_pes_aller(2), "application/xml")])
    ok(act(kit, "agent", folder["id"], "visa"))
    assert ok(act(kit, "maire", folder["id"], "sign"))["status"] == "completed"
    # Nor may the circuit become one that signs twice, or its type turn a two-signature circuit into a PES one.
    patch = {"circuit": [*once, {"kind": "signature", "desk_ids": [setup.maire]}]}
    assert_problem(kit["admin"].patch(f"/parapheur/subtypes/{subtype['id']}", json=patch), 422)
    pdf_type = ok(kit["admin"].get(f"/parapheur/subtypes/{setup.visa_then_sign}"))["type_id"]
    ok(
        kit["admin"].patch(
            f"/parapheur/subtypes/{setup.visa_then_sign}",
            json={"circuit": [{"kind": "signature", "desk_ids": [setup.maire, adjoint]}]},
        )
    )
    body = assert_problem(kit["admin"].patch(f"/parapheur/types/{pdf_type}", json={"signature_format": "xades"}), 422)
    assert "Délibération" in body["detail"]
    assert ok(kit["admin"].get(f"/parapheur/types/{pdf_type}"))["signature_format"] == "pades"


def test_the_admin_form_says_so_at_the_top_of_the_circuit_and_keeps_nothing(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    type_id = _xades_type(kit)
    admin = sign_in(app, kit, "admin")
    url = f"/admin/parapheur/typologies/{type_id}/sous-types/nouveau"
    step = {"steps-0-kind": "signature", "steps-0-desks": [setup.maire, setup.secretariat], "steps-0-mode": "all"}
    answer = post_form(admin, url, url, {"name": "Mandats", "action": "save", "steps-0-position": "1", **step})
    assert answer.status_code == 422
    assert 'id="steps-0-kind-erreur"' in answer.text and 'id="seal_identity_id-erreur"' not in answer.text
    assert ok(kit["admin"].get("/parapheur/subtypes", params={"type_id": type_id})) == []


def test_a_late_reminder_goes_only_to_the_desks_still_awaited(both_kit: Kit) -> None:
    """A visa step of two desks (all): the one that already visaed is not told its folder is late."""
    kit = both_kit
    setup = Standard(kit)
    subtype = typology(kit, [{"kind": "visa", "desk_ids": [setup.secretariat, setup.maire]}], name="Contrat")
    for user in ("agent", "maire"):
        ok(kit[user].put("/parapheur/notifications/preferences", json={"mode": "digest"}))
    folder = sent_folder(kit, subtype, title="Contrat en retard")
    ok(act(kit, "agent", folder["id"], "visa"))
    with transaction() as session:
        past = utcnow().date() - timedelta(days=2)
        session.execute(update(Folder).where(Folder.id == folder["id"]).values(due_date=past))
    with transaction() as session:
        assert notify.notice_late(session, kit.tenant_id, utcnow().date()) == 1
    with new_session() as session:
        late = session.execute(
            select(PendingNotice.username).where(PendingNotice.tenant_id == kit.tenant_id, PendingNotice.kind == "late")
        ).scalars()
        assert sorted(late) == ["maire"]
    # The same desks as the "late" boxes: the secretariat's is empty, the mayor's holds the folder.
    assert ok(kit["agent"].get(f"/parapheur/desks/{setup.secretariat}/folders?box=late")) == []
    assert [f["id"] for f in ok(kit["maire"].get(f"/parapheur/desks/{setup.maire}/folders?box=late"))] == [folder["id"]]


def test_a_desk_asked_for_an_opinion_or_that_acted_cannot_be_deleted(both_kit: Kit) -> None:
    """Its pending opinion could never be answered, and the history would name a desk that no longer exists."""
    kit = both_kit
    setup = Standard(kit)
    legal = desk(kit, "Juridique", ["maire"], "Juriste")
    folder = sent_folder(kit, setup.visa_then_sign)
    opinion = ok(act(kit, "agent", folder["id"], "opinions", {"desk_id": legal, "question": "Est-ce légal ?"}), 201)
    body = assert_problem(kit["admin"].delete(f"/parapheur/desks/{legal}"), 409)
    assert "Juridique" in body["detail"]
    answered = kit["maire"].post(
        f"/parapheur/folders/{folder['id']}/opinions/{opinion['id']}/answer", json={"answer": "Oui."}
    )
    assert ok(answered)["answered_by"] == "maire"
    # A desk that visaed, then was taken out of the circuit by a transfer, is named by its act all the same.
    relay = desk(kit, "Relais", ["agent"], "Agent relais")
    note = typology(kit, [{"kind": "visa", "desk_ids": [relay]}], name="Note")
    other = sent_folder(kit, note)
    ok(act(kit, "agent", other["id"], "transfer", {"desk_id": setup.secretariat}))
    circuit = [{"kind": "visa", "desk_ids": [setup.secretariat]}]
    ok(kit["admin"].patch(f"/parapheur/subtypes/{note}", json={"circuit": circuit}))  # no sous-type names it now
    assert_problem(kit["admin"].delete(f"/parapheur/desks/{relay}"), 409)
    assert ok(kit["admin"].get(f"/parapheur/desks/{relay}"))["name"] == "Relais"
    # A desk nothing refers to still goes.
    unused = desk(kit, "Inutile", ["agent"])
    assert kit["admin"].delete(f"/parapheur/desks/{unused}").status_code == 204


def test_a_ged_document_keeps_its_media_type_in_the_folder(both_kit: Kit) -> None:
    """A CAdES folder signs any file: a GED text note is served back as text, not labelled a PDF."""
    kit = both_kit
    setup = Standard(kit)
    subtype = typology(kit, [{"kind": "signature", "desk_ids": [setup.maire]}], name="Note", signature_format="cades")
    document = ok(
        kit["agent"].post(
            "/ged/documents",
            files={"file": ("note.txt", b"Note de service", "text/plain")},
            data={"title": "Note", "document_type": "note", "date": "2026-11-02"},
        ),
        201,
    )
    body = {"subtype_id": subtype, "title": "Note", "ged_document_id": document["id"], "send": True}
    folder = ok(kit["agent"].post("/parapheur/folders", json=body), 202)
    run_jobs()
    (main,) = ok(kit["maire"].get(f"/parapheur/folders/{folder['id']}"))["documents"]
    assert main["media_type"] == "text/plain"
    served = kit["maire"].get(f"/parapheur/folders/{folder['id']}/documents/{main['id']}")
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/plain")
    assert served.content == b"Note de service"
    assert ok(act(kit, "maire", folder["id"], "sign"))["status"] == "completed"


def test_taking_back_the_visa_before_a_failed_seal_clears_the_seal_error(kit: Kit) -> None:
    """The seal step is pending again: « cachet serveur impossible » no longer describes the folder."""
    setup = Standard(kit)
    identity = {"file": ("cachet.p12", signing_identity()[0], "application/x-pkcs12")}
    passphrase = signing_identity()[1].decode()
    seal = ok(
        kit["admin"].post(
            "/parapheur/identities/seals", data={"label": "Cachet", "passphrase": passphrase}, files=identity
        ),
        201,
    )
    visa_step = {"kind": "visa", "desk_ids": [setup.secretariat]}
    subtype = typology(kit, [visa_step, {"kind": "seal"}], name="Certificat", seal_identity_id=seal["id"])
    folder = sent_folder(kit, subtype)
    # The seal's passphrase no longer opens its key: the seal job is refused, the folder keeps the error.
    with transaction() as session:
        session.execute(
            update(SigningIdentity)
            .where(SigningIdentity.id == seal["id"])
            .values(passphrase_encrypted=secrets.encrypt(b"plus la bonne"))
        )
    ok(act(kit, "agent", folder["id"], "visa"))
    run_jobs()
    assert "cachet serveur impossible" in ok(kit["agent"].get(f"/parapheur/folders/{folder['id']}"))["error"]
    taken_back = ok(act(kit, "agent", folder["id"], "undo"))
    assert taken_back["current_step"] == 0 and taken_back["error"] is None
    history = [event["action"] for event in ok(kit["agent"].get(f"/parapheur/folders/{folder['id']}/history"))]
    assert "seal_failed" in history  # the failure stays told in the history


def test_the_bordereau_names_every_event_in_french(kit: Kit, tmp_path: Path) -> None:
    """An opinion given and metadata completed were printed as « opinion_given », « metadata_updated »."""
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    asked = {"desk_id": setup.maire, "question": "Le montant est-il juste ?"}
    opinion = ok(act(kit, "agent", folder["id"], "opinions", asked), 201)
    answer = {"answer": "Oui."}
    ok(kit["maire"].post(f"/parapheur/folders/{folder['id']}/opinions/{opinion['id']}/answer", json=answer))
    ok(kit["agent"].patch(f"/parapheur/folders/{folder['id']}/metadata", json={"metadata": {"objet": "cantine"}}))
    response = kit["agent"].get(f"/parapheur/folders/{folder['id']}/bordereau")
    assert response.status_code == 200
    (tmp_path / "bordereau.pdf").write_bytes(response.content)
    text = " ".join(pdftotext(tmp_path / "bordereau.pdf").split())
    assert "Avis rendu" in text and "Métadonnées modifiées" in text
    assert "opinion_given" not in text and "metadata_up" not in text
    # Every event the history can hold has its French label, as on the folder's page.
    labels = (Path(report.__file__).parent / "templates" / "labels.html").read_text()
    macro = labels.split("{% macro action(code) -%}", 1)[1].split("{%- endmacro %}", 1)[0]
    assert set(re.findall(r'"([a-z_]+)": _\(', macro)) <= set(report.ACTION_LABELS)
