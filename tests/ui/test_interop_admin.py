"""Interop administration pages: connectors (write-only secrets, test, enable/disable), flows to resume."""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from ui_kit import post_form, sign_in

from interop import service
from interop.models import Connector, Delivery, Flow, FlowEvent
from socle.db import new_session, transaction, utcnow
from socle.settings import get_settings
from socle.storage import get_store
from socle.storage.ownership import record_held

from conftest import Kit, make_pdf, run_jobs

WEBHOOK_SECRET = "un-secret-de-signature-de-32-caracteres-au-moins"
OTHER_SECRET = "un-autre-secret-de-signature-tout-aussi-long-0123"


def _connector(kit: Kit, name: str) -> dict[str, Any]:
    response = kit["admin"].get(f"/interop/connectors/{name}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _secrets(kit: Kit, name: str) -> dict[str, str]:
    with new_session() as db:
        return service.connector_secrets(service.get_connector(db, kit.tenant_id, name))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _add_webhook(kit: Kit, name: str = "evenements") -> None:
    config = {"url": f"http://127.0.0.1:{_closed_port()}/hook", "signing_secret": WEBHOOK_SECRET}
    response = kit["admin"].post("/interop/connectors", json={"name": name, "kind": "webhook", "config": config})
    assert response.status_code == 201, response.text


def test_a_depot_connector_is_created_through_the_two_steps(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    empty = admin.get("/admin/connecteurs")
    assert empty.status_code == 200 and "Aucun connecteur" in empty.text
    chooser = admin.get("/admin/connecteurs/nouveau")
    assert chooser.status_code == 200 and 'type="radio"' in chooser.text and "S²LOW" in chooser.text
    form = admin.get("/admin/connecteurs/nouveau?type=depot")
    assert form.status_code == 200 and 'name="packaging"' in form.text and 'name="type" value="depot"' in form.text
    answer = post_form(
        admin,
        "/admin/connecteurs/nouveau?type=depot",
        "/admin/connecteurs/nouveau",
        {"type": "depot", "name": "archives-papier", "path": "versements", "packaging": "zip", "done_marker": "1"},
    )
    assert answer.status_code == 303, answer.text
    created = _connector(kit, "archives-papier")
    assert created["kind"] == "depot" and created["enabled"]
    assert created["config"]["path"] == "versements" and created["config"]["packaging"] == "zip"
    assert created["config"]["done_marker"] is True
    listed = admin.get("/admin/connecteurs")
    assert "archives-papier" in listed.text and "Dépôt dans un dossier du serveur" in listed.text


def test_secrets_are_write_only_on_every_page(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    url = "/admin/connecteurs/nouveau?type=webhook"
    answer = post_form(
        admin,
        url,
        "/admin/connecteurs/nouveau",
        {
            "type": "webhook",
            "name": "evenements",
            "url": "https://ged.example.test/hook",
            "signing_secret": WEBHOOK_SECRET,
        },
    )
    assert answer.status_code == 303, answer.text
    assert _secrets(kit, "evenements") == {"signing_secret": WEBHOOK_SECRET}
    page = admin.get("/admin/connecteurs/evenements")
    assert WEBHOOK_SECRET not in page.text and "Enregistré : laissez vide pour le garder." in page.text
    assert "Secret de signature" in admin.get("/admin/connecteurs").text  # named, never shown
    # Saved with the secret left empty: kept; the other settings change.
    edit = post_form(
        admin,
        "/admin/connecteurs/evenements",
        "/admin/connecteurs/evenements",
        {"url": "https://ged.example.test/autre", "event": "acte.transmis", "signing_secret": ""},
    )
    assert edit.status_code == 303, edit.text
    assert _secrets(kit, "evenements") == {"signing_secret": WEBHOOK_SECRET}
    assert _connector(kit, "evenements")["config"]["event"] == "acte.transmis"
    # A form sent back with an error never carries the secret that was typed.
    refused = post_form(
        admin,
        "/admin/connecteurs/evenements",
        "/admin/connecteurs/evenements",
        {"url": "pas une adresse", "signing_secret": OTHER_SECRET},
    )
    assert refused.status_code == 422 and 'id="url-erreur"' in refused.text
    assert OTHER_SECRET not in refused.text and 'value="pas une adresse"' in refused.text
    assert _secrets(kit, "evenements") == {"signing_secret": WEBHOOK_SECRET}
    replaced = post_form(
        admin,
        "/admin/connecteurs/evenements",
        "/admin/connecteurs/evenements",
        {"url": "https://ged.example.test/autre", "signing_secret": OTHER_SECRET},
    )
    assert replaced.status_code == 303 and _secrets(kit, "evenements") == {"signing_secret": OTHER_SECRET}
    assert OTHER_SECRET not in admin.get("/admin/connecteurs/evenements").text


def test_a_recorded_optional_secret_can_be_removed(app: Any, kit: Kit) -> None:
    config = {"url": "https://dav.example.test/depot", "username": "depot", "password": "mot-de-passe-webdav"}
    created = kit["admin"].post("/interop/connectors", json={"name": "dav", "kind": "webdav", "config": config})
    assert created.status_code == 201, created.text
    admin = sign_in(app, kit, "admin")
    page = admin.get("/admin/connecteurs/dav")
    assert 'name="password__retirer"' in page.text and "mot-de-passe-webdav" not in page.text
    answer = post_form(
        admin,
        "/admin/connecteurs/dav",
        "/admin/connecteurs/dav",
        {"url": "https://dav.example.test/depot", "username": "depot", "password__retirer": "1"},
    )
    assert answer.status_code == 303 and _secrets(kit, "dav") == {}


def test_connector_errors_are_french_and_next_to_their_field(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    url = "/admin/connecteurs/nouveau?type=sftp"
    missing = post_form(
        admin,
        url,
        "/admin/connecteurs/nouveau",
        {"type": "sftp", "name": "sftp-tresor", "port": "vingt-deux", "password": "secret-sftp-a-ne-pas-montrer"},
    )
    assert missing.status_code == 422
    for field in ("host", "username", "host_key", "port"):
        assert f'id="{field}-erreur"' in missing.text, field
    assert "Champ obligatoire." in missing.text and "Saisissez un nombre entier." in missing.text
    assert 'value="sftp-tresor"' in missing.text and 'value="vingt-deux"' in missing.text
    assert "secret-sftp-a-ne-pas-montrer" not in missing.text
    bad_name = post_form(
        admin,
        "/admin/connecteurs/nouveau?type=depot",
        "/admin/connecteurs/nouveau",
        {"type": "depot", "name": "Mon Dépôt"},
    )
    assert bad_name.status_code == 422 and 'id="name-erreur"' in bad_name.text
    _add_webhook(kit)
    taken = post_form(
        admin,
        "/admin/connecteurs/nouveau?type=depot",
        "/admin/connecteurs/nouveau",
        {"type": "depot", "name": "evenements"},
    )
    assert taken.status_code == 409 and "existe déjà" in taken.text and 'id="name-erreur"' in taken.text
    assert [row["name"] for row in kit["admin"].get("/interop/connectors").json()] == ["evenements"]


def test_enable_disable_and_delete(app: Any, kit: Kit) -> None:
    _add_webhook(kit)
    admin = sign_in(app, kit, "admin")
    off = post_form(
        admin, "/admin/connecteurs", "/admin/connecteurs/evenements/activation", {"enabled": "0", "suivant": "liste"}
    )
    assert off.status_code == 303 and off.headers["location"] == "/admin/connecteurs"
    assert not _connector(kit, "evenements")["enabled"]
    assert "il refuse les nouveaux envois" in admin.get("/admin/connecteurs").text
    on = post_form(admin, "/admin/connecteurs/evenements", "/admin/connecteurs/evenements/activation", {"enabled": "1"})
    assert on.status_code == 303 and _connector(kit, "evenements")["enabled"]
    gone = post_form(admin, "/admin/connecteurs/evenements", "/admin/connecteurs/evenements/suppression", {})
    assert gone.status_code == 303 and kit["admin"].get("/interop/connectors/evenements").status_code == 404


def test_connection_test_result_in_plain_words(app: Any, kit: Kit) -> None:
    created = kit["admin"].post(
        "/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "essai"}}
    )
    assert created.status_code == 201, created.text
    _add_webhook(kit)  # nobody listens on its port
    admin = sign_in(app, kit, "admin")
    works = post_form(admin, "/admin/connecteurs/depot", "/admin/connecteurs/depot/test", {})
    assert works.status_code == 303
    page = admin.get("/admin/connecteurs/depot")
    assert "« depot » : la connexion fonctionne" in page.text and "flash-success" in page.text
    fails = post_form(admin, "/admin/connecteurs", "/admin/connecteurs/evenements/test", {"suivant": "liste"})
    assert fails.headers["location"] == "/admin/connecteurs"
    listed = admin.get("/admin/connecteurs")
    assert "« evenements » : la connexion a échoué. Motif :" in listed.text and "flash-error" in listed.text


def _depot_flow(kit: Kit, filename: str, text: str) -> str:
    key = get_store().put(io.BytesIO(make_pdf(text))).key
    with transaction() as db:  # the collectivité's own file, as its GED upload would record it
        record_held(db, kit.tenant_id, key, holder="ged")
    body = {"kind": "depot", "connector": "depot", "documents": [{"object_key": key, "filename": filename}]}
    response = kit["agent"].post("/interop/flows", json=body)
    assert response.status_code == 201, response.text
    for _ in range(5):
        run_jobs()
    return str(response.json()["id"])


def _flow(flow_id: str) -> Flow:
    with new_session() as db:
        flow = db.get(Flow, flow_id)
        assert flow is not None
        db.expunge(flow)
        return flow


def test_flows_in_error_show_their_history_and_are_resumed(app: Any, kit: Kit) -> None:
    kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "flux"}})
    done = _depot_flow(kit, "arrete.pdf", "premier")
    failed = _depot_flow(kit, "arrete.pdf", "autre contenu, même nom")
    assert _flow(done).status == "done" and _flow(failed).status == "error"
    admin = sign_in(app, kit, "admin")
    page = admin.get("/admin/flux")
    assert page.status_code == 200 and f'href="/admin/flux/{failed}"' in page.text
    assert f'href="/admin/flux/{done}"' not in page.text and "Aucun flux bloqué." in page.text
    detail = admin.get(f"/admin/flux/{failed}")
    assert detail.status_code == 200 and "arrete.pdf" in detail.text and "Historique" in detail.text
    assert (_flow(failed).error or "")[:40] in detail.text
    (folder := get_settings().effective_deposit_root / kit.slug / "flux" / "arrete.pdf").unlink()  # the cause is fixed
    resumed = post_form(admin, f"/admin/flux/{failed}", f"/admin/flux/{failed}/reprendre", {})
    assert resumed.status_code == 303 and "Flux repris" in admin.get(f"/admin/flux/{failed}").text
    assert _flow(failed).status == "running"
    for _ in range(5):
        run_jobs()
    assert _flow(failed).status == "done" and folder.is_file()
    with new_session() as db:
        actors = db.execute(select(FlowEvent.actor).where(FlowEvent.flow_id == failed)).scalars().all()
    assert "user:admin" in actors
    # A flow that is done cannot be resumed: the page says so.
    refused = post_form(admin, f"/admin/flux/{done}", f"/admin/flux/{done}/reprendre", {})
    assert refused.status_code == 409 and "seul un flux en erreur ou bloqué" in refused.text


def test_stuck_flows_are_listed_apart(app: Any, kit: Kit) -> None:
    kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "bloque"}})
    flow_id = _depot_flow(kit, "mandat.pdf", "bloqué")
    with transaction() as db:
        flow = db.get(Flow, flow_id)
        assert flow is not None
        flow.status, flow.next_check_at, flow.updated_at = "waiting", None, utcnow() - timedelta(days=2)
    admin = sign_in(app, kit, "admin")
    page = admin.get("/admin/flux")
    assert "Aucun flux en erreur." in page.text and f'href="/admin/flux/{flow_id}"' in page.text
    detail = admin.get(f"/admin/flux/{flow_id}")
    assert "bloqué : son étape suivante" in detail.text and "Reprendre le flux" in detail.text


def test_deliveries_in_error_are_resumed_from_the_flows_page(app: Any, kit: Kit) -> None:
    kit["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "envois"}})
    content = make_pdf("paquet")
    key = get_store().put(io.BytesIO(content)).key
    with transaction() as db:
        connector = db.execute(
            select(Connector).where(Connector.tenant_id == kit.tenant_id, Connector.name == "depot")
        ).scalar_one()
        row = Delivery(
            tenant_id=kit.tenant_id,
            connector_id=connector.id,
            idempotency_key="essai:1",
            object_key=key,
            filename="paquet.pdf",
            size=len(content),
            status="error",
            error="échec définitif de la tâche : dossier inaccessible",
        )
        db.add(row)
        db.flush()
        delivery_id = row.id
    admin = sign_in(app, kit, "admin")
    page = admin.get("/admin/flux")
    assert "paquet.pdf" in page.text and "dossier inaccessible" in page.text
    answer = post_form(admin, "/admin/flux", f"/admin/flux/envois/{delivery_id}/reprendre", {})
    assert answer.status_code == 303
    run_jobs()
    with new_session() as db:
        delivery = db.get(Delivery, delivery_id)
        assert delivery is not None and delivery.status == "done"
    again = post_form(admin, "/admin/flux", f"/admin/flux/envois/{delivery_id}/reprendre", {})
    assert again.status_code == 409 and "seul un envoi ou un suivi en erreur" in again.text


def test_interop_administration_is_for_admins_and_confined_to_the_collectivite(
    app: Any, kit: Kit, make_kit: Callable[..., Kit]
) -> None:
    agent = sign_in(app, kit, "agent")
    for url in ("/admin/connecteurs", "/admin/connecteurs/nouveau", "/admin/flux"):
        assert agent.get(url).status_code == 403, url
    other = make_kit(with_identity=False)
    other["admin"].post("/interop/connectors", json={"name": "depot", "kind": "depot", "config": {"path": "x"}})
    flow_id = _depot_flow(other, "x.pdf", "ailleurs")
    admin = sign_in(app, kit, "admin")
    for url in ("/admin/connecteurs/depot", f"/admin/flux/{flow_id}"):
        assert admin.get(url).status_code == 404, url
    for action in (
        "/admin/connecteurs/depot/test",
        "/admin/connecteurs/depot/activation",
        f"/admin/flux/{flow_id}/reprendre",
    ):
        assert post_form(admin, "/admin/flux", action, {"enabled": "0"}).status_code == 404, action
    assert other["admin"].get("/interop/connectors/depot").json()["enabled"]
