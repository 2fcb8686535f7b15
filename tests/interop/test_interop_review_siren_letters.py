"""Review findings on the TdT connectors: a SIREN one collectivité keeps only in its connector is not another's to
take; a Hélios-only collectivité without SIREN sends and is not failed every hour; the hourly letter collection
fetches a letter once; the mail of a letter about an act sent outside socle points to the letters' page."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from s2low_helpers import S2low, act_request, add_s2low, drive, s2low_config, start, store
from sqlalchemy import func, select, update

from interop import jobs
from interop.models import Connector
from interop.notices import notice_mail
from socle.auth import create_tenant, update_tenant
from socle.db import new_session, transaction
from socle.errors import Conflict
from socle.models import AuditEntry, Job, Tenant
from socle.queue import FAILED

from conftest import Kit, assert_problem, run_jobs

pytestmark = pytest.mark.usefixtures("actes_schemas")

PES = (
    b'<?xml version="1.0" encoding="UTF-8"?><PES_Aller><EnTetePES><IdColl V="21370000000017"/></EnTetePES>'
    b'<PES_DepenseAller/><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/>'
    b"</ds:Signature></PES_Aller>"
)


def new_siren() -> str:
    """A SIREN no other test of the database uses (the kits all share 213700000)."""
    return f"29{random.randrange(10**7):07d}"


def no_siren(kit: Kit) -> None:
    with transaction() as session:
        session.execute(update(Tenant).where(Tenant.id == kit.tenant_id).values(siren=None))


def audits(kit: Kit, action: str) -> int:
    with new_session() as session:
        return session.execute(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.tenant_id == kit.tenant_id, AuditEntry.action == action)
        ).scalar_one()


def connector_id(kit: Kit, name: str = "tdt") -> str:
    with new_session() as session:
        return session.execute(
            select(Connector.id).where(Connector.tenant_id == kit.tenant_id, Connector.name == name)
        ).scalar_one()


def letter_jobs(kit: Kit) -> list[Job]:
    with new_session() as session:
        prefix = f"ged.flow-document:{connector_id(kit)}:courrier:"
        return list(session.execute(select(Job).where(Job.key.startswith(prefix))).scalars())


# --------------------------------------------------------------------------------------------------------
# 1. A SIREN kept only in a connector


def test_a_connector_may_not_take_the_siren_another_communes_connector_names(
    make_kit: Callable[..., Kit], sim: S2low
) -> None:
    a, b = make_kit(with_identity=False), make_kit(with_identity=False)
    no_siren(a)
    no_siren(b)
    siren = new_siren()
    add_s2low(a, sim, siren=siren)  # A keeps its SIREN in its connector only (« siren du connecteur »)
    copied = {"name": "tdt", "kind": "s2low", "config": s2low_config(sim, siren=siren)}
    problem = assert_problem(b["admin"].post("/interop/connectors", json=copied), 422)
    assert f"le SIREN {siren} du connecteur « tdt » est déjà celui d'une autre collectivité" in problem["detail"]
    add_s2low(b, sim)  # without it, then changed: refused alike
    changed = b["admin"].patch("/interop/connectors/tdt", json={"config": s2low_config(sim, siren=siren)})
    assert "déjà celui d'une autre collectivité" in assert_problem(changed, 422)["detail"]
    # A connector saved before this check: its flows are refused, nothing leaves under A's SIREN.
    with transaction() as session:
        row = session.execute(
            select(Connector).where(Connector.tenant_id == b.tenant_id, Connector.name == "tdt")
        ).scalar_one()
        row.config = {**row.config, "siren": siren}
    flow = drive(start(b, act_request(b, "SB_1")))
    assert flow.status == "error" and "est celui d'une autre collectivité de l'installation" in (flow.error or "")
    assert sim.state.sends == {}


def test_a_collectivite_may_not_take_the_siren_another_communes_connector_names(
    make_kit: Callable[..., Kit], sim: S2low
) -> None:
    a, b = make_kit(with_identity=False), make_kit(with_identity=False)
    no_siren(a)
    siren = new_siren()
    add_s2low(a, sim, siren=siren)
    with transaction() as session:
        tenant = session.get(Tenant, b.tenant_id)
        assert tenant is not None
        with pytest.raises(Conflict, match="déjà celui d'une autre collectivité"):
            update_tenant(session, tenant, name=tenant.name, siren=siren, actor="test")
        with pytest.raises(Conflict, match="déjà celui d'une autre collectivité"):
            create_tenant(session, f"c-{siren}", "Commune C", siren)
    # Its own SIREN stays the collectivité's to name on its connectors.
    own = new_siren()
    with transaction() as session:
        tenant = session.get(Tenant, b.tenant_id)
        assert tenant is not None
        update_tenant(session, tenant, name=tenant.name, siren=own, actor="test")
    add_s2low(b, sim, siren=own)


# --------------------------------------------------------------------------------------------------------
# 2. A Hélios-only collectivité without SIREN


def test_a_helios_flow_without_siren_is_done(kit: Kit, sim: S2low) -> None:
    no_siren(kit)
    add_s2low(kit, sim, fetch=False)
    obj = store(PES, kit)
    body = {"kind": "helios", "connector": "tdt", "documents": [{"object_key": obj.key, "filename": "PES_A.xml"}]}
    flow = drive(start(kit, body))
    assert flow.status == "done", flow.error


def test_collections_without_siren_are_skipped_not_failed(kit: Kit, sim: S2low) -> None:
    no_siren(kit)
    add_s2low(kit, sim, fetch=False)
    before = len(sim.state.requests)
    for _ in range(2):  # two hours: no error, one audit entry for each collection
        jobs.collect_pes_retours(tenant_id=kit.tenant_id, connector="tdt")
        jobs.collect_prefecture_letters(tenant_id=kit.tenant_id, connector="tdt")
    assert audits(kit, "interop.tdt.collect_skipped") == 2
    assert sim.state.requests[before:] == []  # nothing read from S²LOW that could not be told the collectivité's
    tested = kit["admin"].post("/interop/connectors/tdt/test")  # the connector's test says why
    assert tested.status_code == 200, tested.text
    assert "aucun SIREN connu" in tested.json()["message"]


# --------------------------------------------------------------------------------------------------------
# 3. The hourly letter collection fetches a letter once


def test_a_letter_is_fetched_once_by_the_schedule(make_kit: Callable[..., Kit], sim: S2low) -> None:
    kit = make_kit(with_identity=False)
    add_s2low(kit, sim)
    flow = drive(start(kit, act_request(kit, "RP_1")))
    assert flow.status == "done", flow.error
    letter_id = sim.state.add_letter(flow.data["transaction_id"], 3)
    for _ in range(3):  # three hours, the GED's workers behind
        jobs.collect_prefecture_letters(tenant_id=kit.tenant_id, connector="tdt")
    assert audits(kit, "interop.prefecture.fetched") == 1
    assert len(letter_jobs(kit)) == 1
    run_jobs()  # the GED files it; its answer marks it read
    assert [letter["lu"] for letter in sim.state.letters if letter["id"] == letter_id] == [True]
    jobs.collect_prefecture_letters(tenant_id=kit.tenant_id, connector="tdt")
    assert audits(kit, "interop.prefecture.fetched") == 1


def test_a_letter_whose_filing_failed_for_good_is_not_asked_again_every_hour(
    make_kit: Callable[..., Kit], sim: S2low
) -> None:
    kit = make_kit(with_identity=False)
    add_s2low(kit, sim)
    flow = drive(start(kit, act_request(kit, "RP_2")))
    assert flow.status == "done", flow.error
    sim.state.add_letter(flow.data["transaction_id"], 4)
    jobs.collect_prefecture_letters(tenant_id=kit.tenant_id, connector="tdt")
    with transaction() as session:  # the GED refused it for good
        session.execute(update(Job).where(Job.id.in_([job.id for job in letter_jobs(kit)])).values(status=FAILED))
    for _ in range(2):
        jobs.collect_prefecture_letters(tenant_id=kit.tenant_id, connector="tdt")
    assert len(letter_jobs(kit)) == 1 and audits(kit, "interop.prefecture.fetched") == 1


# --------------------------------------------------------------------------------------------------------
# 4. The mail of a letter about an act sent outside socle


def test_the_mail_of_a_letter_without_flow_points_to_the_letters_page(use_env: Callable[..., None]) -> None:
    use_env(SOCLE_PUBLIC_URL="https://socle.mairie.test")
    notice = {"kind": "letter", "letter_label": "Demande de pièces complémentaires", "act_id": "037-1-DE"}
    text = notice_mail(("admin@mairie.test",), notice).text
    assert "depuis la page du flux" not in text
    assert "vous pouvez y répondre depuis la page des courriers de la préfecture" in text
    assert "Les courriers de la préfecture : https://socle.mairie.test/flux/courriers" in text
