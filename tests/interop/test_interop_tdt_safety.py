"""Nothing from the prefecture or the trésorerie goes to the wrong collectivité, or unnoticed.

Two communes whose connectors share one S²LOW account (a copied certificate) never take each other's letters or
PES Retour: what names another SIREN is refused before it is stored, filed or marked read, audited once and told
to the administrators. The prefecture's letters are collected by the schedule, noted in the act's history and
mailed to who sent the act; a refused act, a flow in error are mailed too (a real SMTP server, the S²LOW simulator,
the real queue).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from s2low_helpers import S2low, act_request, add_s2low, drive, events, flow_of, s2low_config, start, store
from smtp import SmtpServer, kit_mailbox
from sqlalchemy import func, select, update

from ged.models import Document, Version
from interop import jobs
from interop.connectors.s2low import S2lowConnector
from interop.models import Connector as InteropConnector
from interop.models import InteropNotice
from socle.db import new_session, transaction
from socle.models import AuditEntry, Job, Tenant, User
from socle.queue import execute
from socle.schedule import TASKS, Scheduler, period_of
from socle.storage.ownership import tenant_holds

from conftest import Kit, assert_problem, migrate, run_jobs

pytestmark = pytest.mark.usefixtures("actes_schemas")

OTHER_SIREN = "217500000"  # commune B's; the kits' own is 213700000
PUBLIC = "https://socle.mairie.test"


@pytest.fixture
def mailbox(use_env: Callable[..., None]) -> Iterator[SmtpServer]:
    with kit_mailbox(use_env) as server:
        use_env(SOCLE_PUBLIC_URL=PUBLIC)
        yield server


def set_email(kit: Kit, username: str, email: str) -> None:
    with transaction() as session:
        session.execute(
            update(User).where(User.tenant_id == kit.tenant_id, User.username == username).values(email=email)
        )


def set_siren(kit: Kit, siren: str) -> None:
    with transaction() as session:
        session.execute(update(Tenant).where(Tenant.id == kit.tenant_id).values(siren=siren))


def mails_to(server: SmtpServer, address: str) -> list[EmailMessage]:
    return [received.message for received in server.messages if address in received.rcpt_tos]


def text_of(mail: EmailMessage) -> str:
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def refusals(kit: Kit) -> list[dict[str, Any]]:
    with new_session() as session:
        rows = session.execute(
            select(AuditEntry.details).where(
                AuditEntry.tenant_id == kit.tenant_id, AuditEntry.action == "interop.foreign_document.refused"
            )
        ).scalars()
        return list(rows)


def origins(kit: Kit, pattern: str) -> list[str]:
    with new_session() as session:
        rows = session.execute(
            select(Version.origin)
            .join(Document, Document.id == Version.document_id)
            .where(Document.tenant_id == kit.tenant_id, Version.origin.like(pattern))
        ).scalars()
        return list(rows)


def sharing_communes(make_kit: Callable[..., Kit], sim: S2low) -> tuple[Kit, Kit]:
    """Commune A and commune B (its own SIREN), each with a connector « tdt » on the same S²LOW account."""
    a, b = make_kit(with_identity=False), make_kit(with_identity=False)
    set_siren(b, OTHER_SIREN)
    add_s2low(a, sim)
    add_s2low(b, sim)
    set_email(b, "admin", "admin@commune-b.test")
    set_email(a, "admin", "admin@commune-a.test")
    return a, b


# --------------------------------------------------------------------------------------------------------
# 1. A shared S²LOW account: nothing of the other commune is taken


def test_a_letter_of_another_commune_is_refused_left_unread_and_told_once(
    make_kit: Callable[..., Kit], sim: S2low, mailbox: SmtpServer
) -> None:
    a, b = sharing_communes(make_kit, sim)
    flow = drive(start(a, act_request(a, "SH_1")))
    assert flow.status == "done", flow.error
    letter = sim.state.add_letter(flow.data["transaction_id"], 4)

    # B does not even see it listed; fetched by its id, it is refused before anything is kept.
    assert b["agent"].get("/interop/connectors/tdt/prefecture").json() == []
    refused = assert_problem(b["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch"), 422)
    assert f"courrier de la préfecture {letter} d'une autre collectivité (SIREN 213700000" in refused["detail"]
    assert f"celui de la collectivité : {OTHER_SIREN}" in refused["detail"]
    assert_problem(b["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch"), 422)  # again: the same
    run_jobs()
    assert [item["lu"] for item in sim.state.letters] == [False]  # never marked read for A's sake
    assert origins(b, "interop:%:courrier:%") == []
    assert [(row["kind"], row["id"], row["siren"], row["expected"]) for row in refusals(b)] == [
        ("courrier", letter, "213700000", OTHER_SIREN)
    ]
    (told,) = mails_to(mailbox, "admin@commune-b.test")  # listed, fetched twice: told once
    assert (
        str(told["Subject"])
        == "[Préfecture et trésorerie] Document d'une autre collectivité refusé (connecteur « tdt »)"
    )
    said = text_of(told)
    assert "SIREN 213700000" in said and OTHER_SIREN in said and "ni classé dans la GED ni marqué lu" in said
    assert f"{PUBLIC}/admin/connecteurs/tdt" in said
    assert mails_to(mailbox, "admin@commune-a.test") == []

    # A still finds its letter, reads it, and it is filed in A's GED.
    assert [item["id"] for item in a["agent"].get("/interop/connectors/tdt/prefecture").json()] == [letter]
    fetched = a["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch")
    assert fetched.status_code == 200, fetched.text
    run_jobs()
    assert [item["lu"] for item in sim.state.letters] == [True]
    assert len(origins(a, "interop:%:courrier:%")) == 1
    with new_session() as session:  # B holds nothing of the letter: no key to start a flow with
        assert not tenant_holds(session, b.tenant_id, fetched.json()["files"][0]["sha256"])


def test_a_pes_retour_of_another_commune_is_refused_by_the_collection(
    make_kit: Callable[..., Kit], sim: S2low, mailbox: SmtpServer
) -> None:
    a, b = sharing_communes(make_kit, sim)
    sim.scenario(pes_retour=True)
    pes = (
        b'<?xml version="1.0" encoding="UTF-8"?><PES_Aller><EnTetePES><IdColl V="21370000000017"/></EnTetePES>'
        b'<PES_DepenseAller/><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/>'
        b"</ds:Signature></PES_Aller>"
    )
    obj = store(pes, a)
    body = {"kind": "helios", "connector": "tdt", "documents": [{"object_key": obj.key, "filename": "PES_A.xml"}]}
    assert drive(start(a, body)).status == "done"  # its PES Acquit names A: A's flow files it
    (retour,) = sim.state.retours

    for _ in range(2):  # two collections (two hours): refused each time, audited and told once
        jobs.collect_pes_retours(tenant_id=b.tenant_id, connector="tdt")
        run_jobs()
    assert retour["lu"] is False and origins(b, "interop:%:retour:%") == []
    assert [(row["kind"], row["siren"]) for row in refusals(b)] == [("retour", "213700000")]
    (told,) = mails_to(mailbox, "admin@commune-b.test")
    assert "PES Retour" in text_of(told) and f"n° {retour['id']}" in text_of(told)

    jobs.collect_pes_retours(tenant_id=a.tenant_id, connector="tdt")
    run_jobs()
    assert retour["lu"] is True and len(origins(a, "interop:%:retour:%")) == 1


def test_an_aracte_or_a_pes_acquit_of_another_siren_stops_the_flow_with_nothing_kept(
    kit: Kit, sim: S2low, mailbox: SmtpServer
) -> None:
    add_s2low(kit, sim)
    set_email(kit, "agent", "agent@mairie.test")
    sim.scenario(aracte_siren=OTHER_SIREN)
    flow = drive(start(kit, act_request(kit, "SH_2")))
    assert (
        flow.status == "error" and "ARActe" in (flow.error or "") and "d'une autre collectivité" in (flow.error or "")
    )
    assert "aracte_key" not in flow.data and "aracte" not in flow.data
    sim.scenario(aracte_siren="")

    pes = (
        b'<?xml version="1.0" encoding="UTF-8"?><PES_Aller><EnTetePES><IdColl V="21750000000012"/></EnTetePES>'
        b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature></PES_Aller>'
    )
    body = {
        "kind": "helios",
        "connector": "tdt",
        "documents": [{"object_key": store(pes, kit).key, "filename": "P.xml"}],
    }
    helios = drive(start(kit, body))
    assert helios.status == "error" and "PES Acquit" in (helios.error or "") and OTHER_SIREN in (helios.error or "")
    assert "acquit_key" not in helios.data
    assert sorted(row["kind"] for row in refusals(kit)) == ["acquit", "aracte"]
    run_jobs()
    subjects = sorted(str(mail["Subject"]) for mail in mails_to(mailbox, "agent@mairie.test"))
    assert subjects == [
        "[Préfecture et trésorerie] Flux en erreur : PES P.xml",
        "[Préfecture et trésorerie] Flux en erreur : acte n° SH_2 — Approbation du budget primitif 2027 – section "
        "d'investissement",
    ]


def test_a_connector_may_not_speak_for_another_communes_siren(make_kit: Callable[..., Kit], sim: S2low) -> None:
    a, b = make_kit(with_identity=False), make_kit(with_identity=False)
    set_siren(a, "200000172")
    add_s2low(a, sim)
    named = {"name": "tdt", "kind": "s2low", "config": s2low_config(sim, siren="200000172")}
    refused = assert_problem(b["admin"].post("/interop/connectors", json=named), 422)  # refused at its save
    assert "déjà celui d'une autre collectivité" in refused["detail"]
    add_s2low(b, sim)
    with transaction() as session:  # B's administrator named A's SIREN before the save checked it
        row = session.execute(select(InteropConnector).where(InteropConnector.tenant_id == b.tenant_id)).scalar_one()
        row.config = {**row.config, "siren": "200000172"}
    flow = drive(start(b, act_request(b, "SH_3")))
    assert flow.status == "error" and "est celui d'une autre collectivité de l'installation" in (flow.error or "")
    assert sim.state.sends == {}  # nothing left under A's name
    problem = assert_problem(b["agent"].post("/interop/connectors/tdt/prefecture/1/fetch"), 422)
    assert "autre collectivité de l'installation" in problem["detail"]


# --------------------------------------------------------------------------------------------------------
# 2. Letters collected by the schedule, in the act's history, mailed to who sent it


@pytest.fixture
def own_sqlite(use_env: Callable[..., None], tmp_path: Path) -> Path:
    """A kit of its own (the schedule asks every connector of the database: none of the other tests')."""
    data = tmp_path / "data"
    use_env(SOCLE_DATA_DIR=str(data), SOCLE_DATABASE_URL=None)
    migrate()
    return data


def test_the_schedule_collects_a_letter_notes_it_in_the_history_and_mails_the_sender_once(
    own_sqlite: Path, make_kit: Callable[..., Kit], sim: S2low, mailbox: SmtpServer
) -> None:
    kit = make_kit(with_identity=False)
    add_s2low(kit, sim)
    set_email(kit, "agent", "agent@mairie.test")
    flow = drive(start(kit, act_request(kit, "SCH_1")))
    assert flow.status == "done", flow.error
    letter = sim.state.add_letter(flow.data["transaction_id"], 3)
    assert "interop.collect_prefecture_letters" in {task.name for task in TASKS}

    now = datetime.now(UTC)
    taken = Scheduler(["interop"]).tick(now)
    assert ("interop.collect_prefecture_letters", period_of(now.replace(minute=0, second=0, microsecond=0))) in taken
    run_jobs()
    assert [item["lu"] for item in sim.state.letters] == [True]  # filed in the GED, then marked read
    assert len(origins(kit, "interop:%:courrier:%")) == 1

    lines = [event.message for event in events(flow.id)]
    (noted,) = [line for line in lines if line.startswith("courrier de la préfecture reçu")]
    assert re.fullmatch(
        r"courrier de la préfecture reçu : demande de pièces complémentaires du \d{1,2}(er)? \w+ \d{4} — "
        r"Pièces simulées demandées : plan de financement",
        noted,
    ), noted
    assert [item["id"] for item in flow_of(flow.id).data["letters"]] == [letter]

    (mail,) = mails_to(mailbox, "agent@mairie.test")
    assert str(mail["Subject"]) == (
        "[Préfecture et trésorerie] Demande de pièces complémentaires de la préfecture : acte n° SCH_1 — "
        "Approbation du budget primitif 2027 – section d'investissement"
    )
    said = text_of(mail)
    assert "l'acte n° SCH_1 « Approbation du budget primitif 2027 – section d'investissement »" in said
    assert "Pièces demandées : Pièces simulées demandées : plan de financement" in said
    assert f"{PUBLIC}/flux/{flow.id}" in said
    assert not re.search(r"\d{4}-\d{2}-\d{2}", said)  # French dates only

    # The next hour, and the letter fetched again by hand: nothing more in the history, no second mail.
    Scheduler(["interop"]).tick(now + timedelta(hours=1))
    run_jobs()
    assert kit["maire"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch").status_code == 200
    run_jobs()
    assert [line for line in (event.message for event in events(flow.id)) if "courrier" in line] == [noted]
    assert len(mails_to(mailbox, "agent@mairie.test")) == 1


# --------------------------------------------------------------------------------------------------------
# 3. A refused act, a flow in error: mailed, once


def test_a_refused_act_is_mailed_to_its_sender_and_an_error_to_the_administrators_too(
    kit: Kit, sim: S2low, mailbox: SmtpServer
) -> None:
    add_s2low(kit, sim)
    set_email(kit, "agent", "agent@mairie.test")
    set_email(kit, "admin", "admin@mairie.test")
    sim.scenario(verdict="KO")
    refused = drive(start(kit, act_request(kit, "KO_1")))
    assert refused.status == "error"
    run_jobs()
    (mail,) = mails_to(mailbox, "agent@mairie.test")
    assert str(mail["Subject"]).startswith("[Préfecture et trésorerie] Refusé : acte n° KO_1 — Approbation")
    said = text_of(mail)
    assert "a été refusé : transmission en état « erreur » chez S²LOW" in said
    assert "enveloppe refusée par le ministère" in said and "Reprendre : POST" not in said
    assert re.search(r"transmis le \d{1,2}(er)? \w+ \d{4} à \d{1,2} h \d{2} par Camille Martin", said), said
    assert f"{PUBLIC}/flux/{refused.id}" in said
    assert mails_to(mailbox, "admin@mairie.test") == []  # the prefecture's word: no operator's matter

    sim.scenario(verdict="OK", aracte_unknown=True)
    broken = drive(start(kit, act_request(kit, "ERR_1")))
    assert broken.status == "error"
    run_jobs()
    for address in ("agent@mairie.test", "admin@mairie.test"):
        subjects = [str(mail["Subject"]) for mail in mails_to(mailbox, address)]
        assert any(
            subject.startswith("[Préfecture et trésorerie] Flux en erreur : acte n° ERR_1") for subject in subjects
        )

    # The job run again (its worker died after the mail left): nothing more is sent.
    with new_session() as session:
        job = session.execute(
            select(Job).where(Job.function == "interop.jobs.send_notice", Job.key.like(f"%:{refused.id}:%"))
        ).scalar_one()
        assert session.execute(select(func.count()).select_from(InteropNotice)).scalar() >= 3
    count = len(mailbox.messages)
    jobs.send_notice(**job.arguments)
    with transaction() as session:
        session.execute(update(Job).where(Job.id == job.id).values(status="pending"))
    assert execute(job.id) == "done"
    assert len(mailbox.messages) == count


# --------------------------------------------------------------------------------------------------------
# 4. What the history and the connection test say


def test_the_history_says_dates_in_french_and_the_connection_test_what_it_checked(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    flow = drive(start(kit, act_request(kit, "FR_1")))
    (line,) = [event.message for event in events(flow.id) if event.message.startswith("acquittement reçu le")]
    assert re.fullmatch(r"acquittement reçu le \d{1,2}(er)? \w+ \d{4}", line), line

    sim.state.account["authority_info"]["department"] = "034"
    said = S2lowConnector("tdt", s2low_config(sim), {}).test()
    assert "aucun certificat client configuré" in said and "certificat accepté" not in said
    assert "compte de Camille Simulée <tdt@simulateur.test>, collectivité « Commune simulée »" in said
    assert "(département 034) — attention : le connecteur indique le département 037" in said
