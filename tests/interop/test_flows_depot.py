"""The generic « dépôt » flow: every document through any connector's deliver, once."""

from __future__ import annotations

from collections.abc import Callable

from s2low_helpers import drive, events, start, store
from smtp import smtp_server
from sqlalchemy import select

from interop.models import Delivery
from socle.db import new_session
from socle.settings import get_settings

from conftest import Kit, assert_problem, make_pdf


def depot_request(kit: Kit, *names: str, connector: str = "depot", text: str = "") -> dict:
    documents = [{"object_key": store(make_pdf(name + text), kit).key, "filename": name} for name in names]
    return {"kind": "depot", "connector": connector, "documents": documents, "metadata": {"objet": "Dépôt"}}


def test_a_depot_flow_delivers_each_document_once(kit: Kit) -> None:
    response = kit["admin"].post(
        "/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "flux"}}
    )
    assert response.status_code == 201, response.text
    flow = drive(start(kit, depot_request(kit, "arrete-1.pdf", "arrete-2.pdf")))
    assert flow.status == "done" and flow.state == "déposé", flow.error
    folder = get_settings().effective_deposit_root / kit.slug / "flux"
    assert (folder / "arrete-1.pdf").read_bytes().startswith(b"%PDF") and (folder / "arrete-2.pdf").is_file()
    with new_session() as session:
        keys = session.execute(
            select(Delivery.idempotency_key).where(Delivery.tenant_id == kit.tenant_id, Delivery.status == "done")
        ).scalars()
        assert sorted(keys) == [f"flow:{flow.id}:0", f"flow:{flow.id}:1"]
    assert events(flow.id)[-1].message == "2 document(s) remis par « depot »"


def test_a_refused_deposit_stops_the_flow_and_a_disabled_connector_refuses_it(kit: Kit) -> None:
    kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "flux2"}})
    first = drive(start(kit, depot_request(kit, "meme-nom.pdf")))
    assert first.status == "done"
    again = drive(start(kit, depot_request(kit, "meme-nom.pdf")))  # the same file: recognised, not an error
    assert again.status == "done"
    clash = drive(start(kit, depot_request(kit, "meme-nom.pdf", text=" (autre)")))  # another file, same name
    assert clash.status == "error" and "meme-nom.pdf" in (clash.error or "")
    kit["admin"].patch("/interop/connectors/depot", json={"enabled": False})
    assert (
        "désactivé"
        in assert_problem(kit["agent"].post("/interop/flows", json=depot_request(kit, "x.pdf")), 409)["detail"]
    )


def test_a_mail_flow_needs_a_mail_connector(kit: Kit) -> None:
    kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {}})
    body = depot_request(kit, "a.pdf") | {"kind": "mail"}
    assert "connecteur de courriel" in assert_problem(kit["agent"].post("/interop/flows", json=body), 422)["detail"]


def test_a_mail_flow_sends_each_document_through_a_real_smtp_server(kit: Kit, use_env: Callable[..., None]) -> None:
    with smtp_server() as server:
        use_env(
            SOCLE_SMTP_HOST=server.host,
            SOCLE_SMTP_PORT=str(server.port),
            SOCLE_SMTP_SECURITY=server.security,
            SOCLE_MAIL_FROM="Commune de Test <interop@commune.test>",
        )
        config = {"to": ["tresorerie@dgfip.test"]}
        created = kit["admin"].post("/interop/connectors", json={"name": "courriel", "kind": "mail", "config": config})
        assert created.status_code == 201, created.text
        body = depot_request(kit, "mandat-42.pdf", connector="courriel") | {"kind": "mail"}
        flow = drive(start(kit, body))
        assert flow.status == "done" and flow.state == "envoyé", flow.error
        assert len(server.messages) == 1
        message = server.messages[0].message
    assert server.messages[0].rcpt_tos == ("tresorerie@dgfip.test",)
    assert [part.get_filename() for part in message.iter_attachments()] == ["mandat-42.pdf"]
