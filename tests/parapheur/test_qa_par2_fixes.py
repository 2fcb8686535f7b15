"""The parapheur, second pass: sous-types older than a rule, Paris dates, reminders nobody got, a seal removed from
under a folder, drafts of a changed circuit, opinions on ended folders, where a delegate lands, and what the
review of this pass found."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from email.message import EmailMessage
from typing import Any

import pytest
from parapheur_kit import Standard, act, desk, folder_of, ok, sent_folder, typology, upload_folder
from pes import make_pes_aller
from signing_helpers import set_email
from smtp import SmtpServer, kit_mailbox
from sqlalchemy import func, select, update
from ui_kit import sign_in

import socle.dates
from parapheur import notify, service
from parapheur.models import Folder, PendingNotice, SigningIdentity, Step, Subtype
from socle import secrets
from socle.db import new_session, transaction, utcnow

from conftest import Kit, assert_problem, run_jobs, signing_identity

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


def _import_seal(kit: Kit, label: str) -> str:
    identity = {"file": ("cachet.p12", signing_identity()[0], "application/x-pkcs12")}
    data = {"label": label, "passphrase": signing_identity()[1].decode()}
    return str(ok(kit["admin"].post("/parapheur/identities/seals", data=data, files=identity), 201)["id"])


# 1. A PES sous-type saved before the one-signature rule


def test_a_pes_sous_type_saved_before_the_rule_takes_no_new_folder_and_sends_no_draft(kit: Kit) -> None:
    setup = Standard(kit)
    type_id = ok(kit["admin"].post("/parapheur/types", json={"name": "Flux", "signature_format": "xades"}), 201)["id"]
    once = [{"kind": "signature", "desk_ids": [setup.maire]}]
    body = {"name": "Mandats", "circuit": once}
    subtype = ok(kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json=body), 201)
    pes = [("PESALR2.xml", make_pes_aller(2), "application/xml")]
    draft = ok(upload_folder(kit, subtype["id"], files=pes, send=False), 201)
    # Saved before the rule: two signatures on one bordereau (the second would be refused, for ever).
    twice = [*once, {"kind": "signature", "desk_ids": [setup.secretariat]}]
    with transaction() as session:
        session.execute(update(Subtype).where(Subtype.id == subtype["id"]).values(circuit=twice))
    with new_session() as session:
        before = session.execute(select(func.count()).where(Folder.tenant_id == kit.tenant_id)).scalar_one()

    body = assert_problem(upload_folder(kit, subtype["id"], files=pes), 422)
    assert "une signature par bordereau" in body["detail"] and "Mandats" in body["detail"]
    with new_session() as session:
        assert session.execute(select(func.count()).where(Folder.tenant_id == kit.tenant_id)).scalar_one() == before

    body = assert_problem(act(kit, "agent", draft["id"], "send"), 422)
    assert "une signature par bordereau" in body["detail"]
    kept = folder_of(kit, draft["id"])
    assert kept["status"] == "draft" and len(kept["steps"]) == 1


# 2. Due dates and lateness on the Paris date


PARIS_HALF_PAST_MIDNIGHT = datetime(2026, 3, 14, 23, 30, tzinfo=UTC)  # 00:30 on 15 March in Paris (CET)


class _ParisClock(datetime):
    """A clock stopped at 00:30 in Paris, the hour the UTC date is still the day before."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> Any:
        return PARIS_HALF_PAST_MIDNIGHT.astimezone(tz) if tz else PARIS_HALF_PAST_MIDNIGHT.replace(tzinfo=None)


def test_due_dates_and_lateness_follow_the_paris_date(kit: Kit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socle.dates, "datetime", _ParisClock)
    setup = Standard(kit)
    subtype = typology(kit, [{"kind": "signature", "desk_ids": [setup.maire]}], name="Arrêté", due_days=0)
    ok(kit["maire"].put("/parapheur/notifications/preferences", json={"mode": "digest"}))
    due_today = sent_folder(kit, subtype, title="Dû aujourd'hui")
    # Created at 00:30 in Paris with 0 days: due on 15 March, the Paris day, not the UTC 14th.
    assert due_today["due_date"] == "2026-03-15" and due_today["late"] is False
    yesterday = sent_folder(kit, subtype, title="Dû hier")
    with transaction() as session:
        session.execute(update(Folder).where(Folder.id == yesterday["id"]).values(due_date=date(2026, 3, 14)))
    assert folder_of(kit, yesterday["id"], "maire")["late"] is True
    assert folder_of(kit, due_today["id"], "maire")["late"] is False
    late_box = ok(kit["maire"].get(f"/parapheur/desks/{setup.maire}/folders?box=late"))
    assert [folder["id"] for folder in late_box] == [yesterday["id"]]
    listed = ok(kit["maire"].get("/parapheur/folders", params={"late": "true"}))
    assert [folder["id"] for folder in listed] == [yesterday["id"]]
    # The reminders job takes the same date: only the folder due yesterday is late.
    notify.send_late_and_digests(kit.tenant_id)
    with new_session() as session:
        reminded = session.execute(
            select(PendingNotice.folder_id).where(
                PendingNotice.tenant_id == kit.tenant_id, PendingNotice.kind == "late"
            )
        ).scalars()
        assert set(reminded) == {yesterday["id"]}
    assert service.today(PARIS_HALF_PAST_MIDNIGHT) == date(2026, 3, 15)  # an instant given, its Paris date


# 3. A late folder no desk acts on reminds its creator


def test_a_late_folder_at_an_external_signature_or_a_failed_seal_reminds_its_creator(
    kit: Kit, mailbox: SmtpServer
) -> None:
    setup = Standard(kit)
    set_email(kit, "agent", "camille.martin@mairie.test")
    external = typology(kit, [{"kind": "external_signature"}], name="Convention")
    outside = sent_folder(kit, external, title="Convention de mise à disposition", external_signers=[SIGNER])
    seal_id = _import_seal(kit, "Cachet de la mairie")
    visa = {"kind": "visa", "desk_ids": [setup.secretariat]}
    sealed = typology(kit, [visa, {"kind": "seal"}], name="Certificat", seal_identity_id=seal_id)
    with transaction() as session:  # the seal's passphrase no longer opens its key: the seal job is refused
        session.execute(
            update(SigningIdentity)
            .where(SigningIdentity.id == seal_id)
            .values(passphrase_encrypted=secrets.encrypt(b"plus la bonne"))
        )
    certificate = sent_folder(kit, sealed, title="Certificat d'urbanisme")
    ok(act(kit, "agent", certificate["id"], "visa"))
    run_jobs()
    assert (folder_of(kit, certificate["id"])["error"] or "").startswith("cachet serveur impossible")
    _make_late(outside["id"])
    _make_late(certificate["id"])
    already = len(mailbox.messages)

    with transaction() as session:
        assert notify.notice_late(session, kit.tenant_id, service.today()) == 2
    run_jobs()
    late = {
        mail.message["Subject"]: _plain(mail.message)
        for mail in mailbox.messages[already:]
        if "camille.martin@mairie.test" in mail.rcpt_tos
    }
    (about_outside,) = [body for subject, body in late.items() if "retard : Convention" in subject]
    assert "signature externe de Claude Lefèvre" in about_outside and "relancez" in about_outside
    (about_seal,) = [body for subject, body in late.items() if "retard : Certificat" in subject]
    assert "cachet serveur, qui a échoué" in about_seal and "administrateur" in about_seal
    # Once a day: a second run the same day tells nobody again.
    with transaction() as session:
        notify.notice_late(session, kit.tenant_id, service.today())
    run_jobs()
    assert sum("retard" in mail.message["Subject"] for mail in mailbox.messages[already:]) == 2


# 4. A seal a folder on its way still needs


def test_a_seal_a_folder_in_progress_still_needs_cannot_be_deleted(kit: Kit) -> None:
    setup = Standard(kit)
    seal = _import_seal(kit, "Cachet")
    visa = {"kind": "visa", "desk_ids": [setup.secretariat]}
    subtype = typology(kit, [visa, {"kind": "seal"}], name="Certificat", seal_identity_id=seal)
    folder = sent_folder(kit, subtype, title="Certificat n° 12")
    # The sous-type drops its seal step and its seal: the folder, sent before, still has its seal step.
    ok(kit["admin"].patch(f"/parapheur/subtypes/{subtype}", json={"circuit": [visa], "seal_identity_id": None}))
    body = assert_problem(kit["admin"].delete(f"/parapheur/identities/seals/{seal}"), 409)
    assert "Cachet" in body["detail"] and "« Certificat n° 12 »" in body["detail"]
    with new_session() as session:
        assert session.get(SigningIdentity, seal) is not None
    # Pointed at another seal, the sous-type's folders seal with that one: the first may go.
    other = _import_seal(kit, "Nouveau cachet")
    ok(kit["admin"].patch(f"/parapheur/subtypes/{subtype}", json={"circuit": [visa], "seal_identity_id": other}))
    assert kit["admin"].delete(f"/parapheur/identities/seals/{seal}").status_code == 204
    assert_problem(kit["admin"].delete(f"/parapheur/identities/seals/{other}"), 409)  # named by the sous-type
    ok(kit["admin"].patch(f"/parapheur/subtypes/{subtype}", json={"circuit": [visa], "seal_identity_id": None}))
    assert_problem(kit["admin"].delete(f"/parapheur/identities/seals/{other}"), 409)  # the tenant's only seal now
    # Once the folder ended (withdrawn), nothing needs the seal any more.
    ok(act(kit, "agent", folder["id"], "withdraw"))
    assert kit["admin"].delete(f"/parapheur/identities/seals/{other}").status_code == 204


# 5. A draft whose sous-type changed since


def test_a_draft_is_sent_on_the_current_circuit_or_refused_when_it_lacks_a_new_external_signer(kit: Kit) -> None:
    setup = Standard(kit)
    visa = {"kind": "visa", "desk_ids": [setup.secretariat]}
    subtype = typology(kit, [visa], name="Convention")
    draft = ok(upload_folder(kit, subtype, title="Convention", send=False), 201)
    ok(kit["admin"].patch(f"/parapheur/subtypes/{subtype}", json={"circuit": [visa, {"kind": "external_signature"}]}))
    body = assert_problem(act(kit, "agent", draft["id"], "send"), 409)
    assert "a changé depuis la création de ce brouillon" in body["detail"] and "Convention" in body["detail"]
    kept = folder_of(kit, draft["id"])
    assert kept["status"] == "draft" and [step["kind"] for step in kept["steps"]] == ["visa"]
    # A change that needs no new signer applies at sending: the folder follows the sous-type's circuit of today.
    signature = {"kind": "signature", "desk_ids": [setup.maire]}
    ok(kit["admin"].patch(f"/parapheur/subtypes/{subtype}", json={"circuit": [visa, signature]}))
    sent = ok(act(kit, "agent", draft["id"], "send"))
    assert sent["status"] == "in_progress" and [step["kind"] for step in sent["steps"]] == ["visa", "signature"]


# 6. Opinions on an ended folder


def test_an_opinion_cannot_be_given_once_the_folder_ended(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    legal = desk(kit, "Juridique", ["agent"], "Juriste")
    folder = sent_folder(kit, setup.sign_only, title="Arrêté de voirie")
    asked = {"desk_id": legal, "question": "Est-ce légal ?"}
    opinion = ok(act(kit, "maire", folder["id"], "opinions", asked), 201)
    assert ok(act(kit, "maire", folder["id"], "sign"))["status"] == "completed"
    answer = {"answer": "Oui."}
    url = f"/parapheur/folders/{folder['id']}/opinions/{opinion['id']}/answer"
    body = assert_problem(kit["agent"].post(url, json=answer), 409)
    assert "l'avis ne peut plus être donné" in body["detail"]
    history = [event["action"] for event in ok(kit["agent"].get(f"/parapheur/folders/{folder['id']}/history"))]
    assert "opinion_given" not in history
    # The folder's page no longer offers the answer form.
    page = sign_in(app, kit, "agent").get(f"/dossiers/{folder['id']}")
    assert page.status_code == 200 and f"/avis/{opinion['id']}" not in page.text


# 7. Where a delegate lands


def test_a_delegate_lands_where_the_folders_received_by_delegation_are_told(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    desk(kit, "Accueil", ["agent"])  # sorted before « Secrétariat », and empty
    now = datetime.now(UTC)
    window = {"starts_at": (now - timedelta(hours=1)).isoformat(), "ends_at": (now + timedelta(days=3)).isoformat()}
    delegation = {"from_desk_id": setup.maire, "to_desk_id": setup.secretariat, **window}
    ok(kit["admin"].post("/parapheur/delegations", json=delegation), 201)
    sent_folder(kit, setup.sign_only, title="Arrêté d'alignement")
    client = sign_in(app, kit, "agent")
    page = client.get("/bureau")  # landing: the box where the folder is, opened
    assert page.status_code == 200
    assert "Bureau « Secrétariat » : Reçus par délégation" in page.text and "alignement" in page.text
    # Asked for, their own empty box tells where the folder is.
    page = client.get(f"/bureau?bureau={setup.secretariat}")
    assert "Bureau « Secrétariat » : À traiter" in page.text
    assert 'id="delegues-en-attente"' in page.text
    notice = page.text.split('id="delegues-en-attente"', 1)[1].split("</p>", 1)[0]
    assert "1 dossier(s) reçu(s) par délégation" in notice
    assert f"bureau={setup.secretariat}&amp;corbeille=delegues" in notice
    # The mayor, whose own box holds the folder, sees no such notice.
    own = sign_in(app, kit, "maire").get("/bureau")
    assert "alignement" in own.text and 'id="delegues-en-attente"' not in own.text


# 8. Found by the review of this pass: a type stays editable beside an old sous-type, a late folder reminds
# someone even at an empty desk or an expired link, states are said in words, a draft's delay counts from its
# sending


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
