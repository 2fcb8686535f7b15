"""The parapheur, third pass (review of the second): a type stays editable beside an old sous-type, a late folder
reminds someone even when its desk is empty or its external link expired, and states are said in words."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from email.message import EmailMessage

import pytest
from parapheur_kit import Standard, act, desk, ok, sent_folder, typology, upload_folder
from signing_helpers import set_email
from smtp import SmtpServer, kit_mailbox
from sqlalchemy import update

from parapheur import notify, service
from parapheur.models import Folder, Step, Subtype
from socle.db import transaction, utcnow

from conftest import Kit, assert_problem, run_jobs

SIGNER = {"name": "Claude Lefèvre", "email": "claude.lefevre@exemple.fr"}


@pytest.fixture
def mailbox(use_env: Callable[..., None]) -> Iterator[SmtpServer]:
    with kit_mailbox(use_env) as server:
        yield server


def _plain(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    return " ".join(str(body.get_content()).split())


def _make_late(folder_id: str) -> None:
    with transaction() as session:
        past = service.today() - timedelta(days=3)
        session.execute(update(Folder).where(Folder.id == folder_id).values(due_date=past))


def test_a_type_is_renamed_beside_a_sous_type_saved_before_the_one_signature_rule(kit: Kit) -> None:
    setup = Standard(kit)
    type_id = ok(kit["admin"].post("/parapheur/types", json={"name": "Flux", "signature_format": "xades"}), 201)["id"]
    once = [{"kind": "signature", "desk_ids": [setup.maire]}]
    body = {"name": "Mandats", "circuit": once}
    subtype = ok(kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json=body), 201)
    twice = [*once, {"kind": "signature", "desk_ids": [setup.secretariat]}]
    with transaction() as session:  # saved before the rule
        session.execute(update(Subtype).where(Subtype.id == subtype["id"]).values(circuit=twice))
    renamed = ok(kit["admin"].patch(f"/parapheur/types/{type_id}", json={"name": "Flux comptables"}))
    assert renamed["name"] == "Flux comptables"
    # Turning a PAdES type into XAdES still checks its sous-types' circuits.
    pdf_type = ok(kit["admin"].post("/parapheur/types", json={"name": "Actes", "signature_format": "pades"}), 201)
    ok(kit["admin"].post(f"/parapheur/types/{pdf_type['id']}/subtypes", json={"name": "Double", "circuit": twice}), 201)
    refused = assert_problem(
        kit["admin"].patch(f"/parapheur/types/{pdf_type['id']}", json={"signature_format": "xades"}), 422
    )
    assert "Double" in refused["detail"]


def test_a_late_folder_at_an_empty_desk_or_an_expired_link_reminds_its_creator(kit: Kit, mailbox: SmtpServer) -> None:
    Standard(kit)  # the agent's own desk: they may create folders
    set_email(kit, "agent", "camille.martin@mairie.test")
    empty = desk(kit, "Urbanisme", ["maire"])
    waiting = sent_folder(kit, typology(kit, [{"kind": "visa", "desk_ids": [empty]}], name="Permis"), title="Permis")
    ok(kit["admin"].patch(f"/parapheur/desks/{empty}", json={"members": []}))  # the only member left
    external = typology(kit, [{"kind": "external_signature"}], name="Convention")
    outside = sent_folder(kit, external, title="Convention de mise à disposition", external_signers=[SIGNER])
    with transaction() as session:
        session.execute(
            update(Step).where(Step.folder_id == outside["id"]).values(token_expires_at=utcnow() - timedelta(days=2))
        )
    _make_late(waiting["id"])
    _make_late(outside["id"])
    already = len(mailbox.messages)

    with transaction() as session:
        assert notify.notice_late(session, kit.tenant_id, service.today()) == 2
    run_jobs()
    late = {
        mail.message["Subject"]: _plain(mail.message)
        for mail in mailbox.messages[already:]
        if "camille.martin@mairie.test" in mail.rcpt_tos
    }
    (about_desk,) = [body for subject, body in late.items() if "retard : Permis" in subject]
    assert "n'a plus aucun membre actif" in about_desk
    (about_link,) = [body for subject, body in late.items() if "retard : Convention" in subject]
    assert "dont le lien a expiré le" in about_link and "renvoyez-lui un lien" in about_link


def test_a_refusal_names_the_state_in_words(kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)
    ok(act(kit, "agent", folder["id"], "withdraw"))
    body = assert_problem(act(kit, "agent", folder["id"], "visa"), 409)
    assert "(état : retiré)" in body["detail"] and "withdrawn" not in body["detail"]


def test_a_drafts_default_due_date_counts_from_its_sending(kit: Kit) -> None:
    setup = Standard(kit)
    visa = [{"kind": "visa", "desk_ids": [setup.secretariat]}]
    subtype = typology(kit, visa, name="Courrier", due_days=3)
    kept = ok(upload_folder(kit, subtype, send=False, title="Courrier gardé"), 201)
    chosen = ok(upload_folder(kit, subtype, send=False, title="Courrier daté", due_date="2030-01-31"), 201)
    week_ago = utcnow() - timedelta(days=7)
    with transaction() as session:  # both drafts were written a week ago
        session.execute(
            update(Folder)
            .where(Folder.id == kept["id"])
            .values(created_at=week_ago, due_date=service.today() - timedelta(days=4))
        )
        session.execute(update(Folder).where(Folder.id == chosen["id"]).values(created_at=week_ago))
    sent = ok(act(kit, "agent", kept["id"], "send"))
    assert sent["due_date"] == (service.today() + timedelta(days=3)).isoformat() and sent["late"] is False
    assert ok(act(kit, "agent", chosen["id"], "send"))["due_date"] == "2030-01-31"  # the creator's own date
