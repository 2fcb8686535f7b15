"""Interop API and the « dépôt » connector: configuration, atomic and idempotent deposits, tenant isolation."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from archive_kit import sending_transfer
from sqlalchemy import func, select

from archive.models import Transfer
from interop.models import Connector, Delivery
from socle import messages
from socle.db import new_session, transaction
from socle.models import Job
from socle.queue import enqueue
from socle.settings import get_settings
from socle.storage import StoredObject, get_store

from conftest import Kit, assert_problem, run_jobs

OBJECTS = Path(os.environ["SOCLE_DATA_DIR"]) / "objects"


def create_connector(kit: Kit, name: str = "depot", path: str = "sae", **config: Any) -> Any:
    return kit["admin"].post(
        "/interop/connectors", json={"name": name, "kind": "depot", "config": {"path": path, **config}}
    )


def folder(kit: Kit, path: str = "sae") -> Path:
    return get_settings().effective_deposit_root / kit.slug / path


def store(content: bytes) -> StoredObject:
    return get_store().put(io.BytesIO(content))


def transfer_row(transfer_id: str) -> Transfer:
    with new_session() as session:
        transfer = session.get(Transfer, transfer_id)
        assert transfer is not None
        return transfer


def ask_delivery(
    kit: Kit,
    obj: StoredObject,
    filename: str,
    idempotency_key: str,
    transfer_id: str,
    connector: str = "depot",
    **reply: str,
) -> str:
    """Enqueue messages.INTEROP_DELIVER as the archive service does, with the archive's replies."""
    with transaction() as session:
        job = enqueue(
            session,
            messages.INTEROP_DELIVER,
            tenant_id=kit.tenant_id,
            connector=connector,
            object_key=obj.key,
            size=obj.size,
            filename=filename,
            idempotency_key=idempotency_key,
            reply={
                "success": reply.get("success", messages.ARCHIVE_RECORD_DELIVERY.function),
                "failure": reply.get("failure", messages.ARCHIVE_DELIVERY_FAILED.function),
                "arguments": {"tenant_id": kit.tenant_id, "transfer_id": transfer_id},
            },
        )
        return job.id


def deliveries(tenant_id: str) -> list[Delivery]:
    with new_session() as session:
        return list(session.execute(select(Delivery).where(Delivery.tenant_id == tenant_id)).scalars())


def hidden_files(path: Path) -> list[str]:
    return [entry.name for entry in path.iterdir() if entry.name.startswith(".")] if path.exists() else []


# --------------------------------------------------------------------------------------------------------
# Connectors


def test_admin_creates_a_connector(kit: Kit) -> None:
    response = create_connector(kit, "sae-departement", "archives/sae")
    assert response.status_code == 201, response.text
    connector = response.json()
    assert connector["name"] == "sae-departement" and connector["kind"] == "depot" and connector["enabled"]
    assert connector["config"] == {"path": "archives/sae", "tenant_slug": kit.slug}
    assert kit["agent"].get("/interop/connectors").json() == [connector]
    assert kit["agent"].get("/interop/connectors/sae-departement").json() == connector
    assert_problem(kit["agent"].get("/interop/connectors/absent"), 404)


def test_connector_creation_refusals(make_kit: Callable[..., Kit]) -> None:
    kit, other = make_kit(with_identity=False), make_kit(with_identity=False)
    for user in ("agent", "archiviste", "maire"):
        response = kit[user].post("/interop/connectors", json={"name": "x", "kind": "depot", "config": {"path": "x"}})
        assert_problem(response, 403)
    assert create_connector(kit, "sae").status_code == 201
    assert "existe déjà" in assert_problem(create_connector(kit, "sae", "ailleurs"), 409)["detail"]
    for path in ("..", "../voisin", "sae/../../voisin", "/etc", "/tmp/depot"):
        body = assert_problem(create_connector(kit, "evasion", path), 422)
        assert "relatif" in body["detail"], path
    # A NUL would stop the system's calls: a 500 (« embedded null byte »), at creation as at a change.
    for path in ("a\x00b", "sae\x00/../../voisin", "a\x1bb"):
        body = assert_problem(create_connector(kit, "nul", path), 422)
        assert "caractère de contrôle interdit" in body["detail"], body
        changed = kit["admin"].patch("/interop/connectors/sae", json={"config": {"path": path}})
        assert "caractère de contrôle interdit" in assert_problem(changed, 422)["detail"]
    assert kit["admin"].get("/interop/connectors/sae").json()["config"]["path"] == "sae"
    assert_problem(create_connector(kit, "Nom Invalide"), 422)
    assert_problem(kit["admin"].post("/interop/connectors", json={"name": "ftp", "kind": "ftp", "config": {}}), 422)
    assert [c["name"] for c in kit["admin"].get("/interop/connectors").json()] == ["sae"]
    # Names are per tenant: another collectivité may use the same one.
    assert create_connector(other, "sae").status_code == 201
    assert_problem(kit["admin"].get("/interop/connectors/evasion"), 404)


def test_connectors_never_show_secrets(kit: Kit) -> None:
    # A connector kind with credentials keeps them in its configuration: they must stay on the server.
    with transaction() as session:
        session.add(
            Connector(
                tenant_id=kit.tenant_id,
                name="pastell",
                kind="depot",
                config={"path": "p", "tenant_slug": kit.slug, "secret_token": "jeton-tres-secret"},
            )
        )
    answers = [kit["admin"].get("/interop/connectors"), kit["admin"].get("/interop/connectors/pastell")]
    for response in answers:
        assert response.status_code in (200, 201)
        assert "tres-secret" not in response.text and "secret_" not in response.text
    assert kit["admin"].get("/interop/connectors/pastell").json()["config"] == {"path": "p", "tenant_slug": kit.slug}


def test_connection_test(kit: Kit) -> None:
    assert create_connector(kit, "depot", "sae").status_code == 201
    result = kit["admin"].post("/interop/connectors/depot/test")
    assert result.status_code == 200, result.text
    assert result.json()["ok"] is True and result.json()["message"].endswith(": sae")  # no server path shown
    assert folder(kit).is_dir() and list(folder(kit).iterdir()) == []  # the probe file is gone
    assert_problem(kit["agent"].post("/interop/connectors/depot/test"), 403)
    assert_problem(kit["admin"].post("/interop/connectors/absent/test"), 404)

    # A folder that cannot be created is reported, not raised.
    assert create_connector(kit, "bloque", "bloque").status_code == 201
    folder(kit, "bloque").write_bytes(b"un fichier, pas un dossier")
    blocked = kit["admin"].post("/interop/connectors/bloque/test")
    assert blocked.status_code == 200 and blocked.json()["ok"] is False
    assert blocked.json()["message"].startswith("échec")


# --------------------------------------------------------------------------------------------------------
# Deposits


def test_deposit_writes_the_file_and_its_receipt_atomically(kit: Kit) -> None:
    assert create_connector(kit).status_code == 201
    content = os.urandom(4096)
    obj = store(content)
    transfer_id = sending_transfer(kit)
    ask_delivery(kit, obj, "paquet-sip.zip", f"essai:{transfer_id}", transfer_id)
    run_jobs()

    target = folder(kit) / "paquet-sip.zip"
    assert target.read_bytes() == content
    receipt = json.loads((folder(kit) / "paquet-sip.zip.receipt.json").read_text())
    assert receipt["name"] == "paquet-sip.zip" and receipt["path"] == "sae/paquet-sip.zip"  # no server path
    assert receipt["size"] == len(content) and receipt["sha256"] == hashlib.sha256(content).hexdigest()
    assert receipt["connector"] == "depot"
    assert datetime.fromisoformat(receipt["deposited_at"]).tzinfo is not None
    assert sorted(path.name for path in folder(kit).iterdir()) == ["paquet-sip.zip", "paquet-sip.zip.receipt.json"]
    assert hidden_files(folder(kit)) == []

    transfer = transfer_row(transfer_id)
    assert transfer.status == "delivered" and transfer.receipt == receipt  # the success reply reached the archive
    listed = kit["archiviste"].get("/interop/deliveries").json()
    assert len(listed) == 1
    assert listed[0]["status"] == "done" and listed[0]["connector"] == "depot"
    assert listed[0]["filename"] == "paquet-sip.zip" and listed[0]["size"] == len(content)
    assert listed[0]["sha256"] == obj.key and listed[0]["receipt"] == receipt and listed[0]["delivered_at"]


def test_delivering_twice_with_the_same_key_deposits_once(kit: Kit) -> None:
    assert create_connector(kit).status_code == 201
    content = os.urandom(2048)
    obj = store(content)
    transfer_id = sending_transfer(kit)
    ask_delivery(kit, obj, "double.zip", "cle-unique", transfer_id)
    run_jobs()
    first_receipt = (folder(kit) / "double.zip.receipt.json").read_bytes()
    ask_delivery(kit, obj, "double.zip", "cle-unique", transfer_id)
    ask_delivery(kit, obj, "double.zip", "cle-unique", transfer_id)
    run_jobs()

    assert sorted(path.name for path in folder(kit).iterdir()) == ["double.zip", "double.zip.receipt.json"]
    assert (folder(kit) / "double.zip.receipt.json").read_bytes() == first_receipt  # not rewritten
    rows = deliveries(kit.tenant_id)
    assert len(rows) == 1 and rows[0].status == "done"
    assert len(kit["admin"].get("/interop/deliveries").json()) == 1
    with new_session() as session:  # one success reply, however often the delivery ran
        replies = session.execute(
            select(func.count()).select_from(Job).where(Job.key == f"reply:{rows[0].id}")
        ).scalar_one()
    assert replies == 1


def test_same_bytes_under_another_key_reuse_the_deposit(kit: Kit) -> None:
    assert create_connector(kit).status_code == 201
    obj = store(os.urandom(1024))
    transfer_id = sending_transfer(kit)
    ask_delivery(kit, obj, "meme.zip", "premier-envoi", transfer_id)
    ask_delivery(kit, obj, "meme.zip", "second-envoi", transfer_id)
    run_jobs()
    rows = deliveries(kit.tenant_id)
    assert len(rows) == 2 and {row.status for row in rows} == {"done"}
    assert rows[0].receipt == rows[1].receipt  # the earlier deposit is recognised
    assert sorted(path.name for path in folder(kit).iterdir()) == ["meme.zip", "meme.zip.receipt.json"]


def test_a_different_file_under_the_same_name_is_a_conflict(kit: Kit) -> None:
    assert create_connector(kit).status_code == 201
    folder(kit).mkdir(parents=True)
    existing = folder(kit) / "paquet.zip"
    existing.write_bytes(b"un autre paquet, deja depose")
    obj = store(os.urandom(1024))
    transfer_id = sending_transfer(kit)
    ask_delivery(kit, obj, "paquet.zip", "conflit", transfer_id)
    run_jobs()

    transfer = transfer_row(transfer_id)
    assert transfer.status == "delivery_failed"
    assert transfer.error is not None and "un autre fichier porte déjà le nom paquet.zip" in transfer.error
    assert existing.read_bytes() == b"un autre paquet, deja depose"
    assert sorted(path.name for path in folder(kit).iterdir()) == ["paquet.zip"]  # no receipt, no temp file
    [row] = deliveries(kit.tenant_id)
    assert row.status == "failed" and "paquet.zip" in (row.error or "")
    listed = kit["admin"].get("/interop/deliveries").json()
    assert listed[0]["status"] == "failed" and listed[0]["receipt"] is None


def test_a_corrupted_stored_object_is_not_deposited(kit: Kit) -> None:
    assert create_connector(kit).status_code == 201
    obj = store(os.urandom(1024))
    path = OBJECTS / obj.key[:2] / obj.key[2:4] / obj.key
    path.chmod(0o640)
    path.write_bytes(os.urandom(1024))  # the bytes no longer match their key
    transfer_id = sending_transfer(kit)
    ask_delivery(kit, obj, "abime.zip", "abime", transfer_id)
    run_jobs()
    transfer = transfer_row(transfer_id)
    assert transfer.status == "delivery_failed" and "empreinte" in (transfer.error or "")
    assert list(folder(kit).iterdir()) == []  # neither the file nor its partial copy


def test_filename_cannot_leave_the_deposit_folder(kit: Kit) -> None:
    assert create_connector(kit).status_code == 201
    obj = store(os.urandom(512))
    transfer_id = sending_transfer(kit)
    ask_delivery(kit, obj, "../../../evasion.zip", "evasion", transfer_id)
    run_jobs()
    assert (folder(kit) / "evasion.zip").is_file()
    assert not (get_settings().effective_deposit_root / "evasion.zip").exists()
    assert not (get_settings().effective_deposit_root.parent / "evasion.zip").exists()

    receipt_like = sending_transfer(kit)
    ask_delivery(kit, store(os.urandom(512)), "faux.receipt.json", "recu", receipt_like)
    run_jobs()
    assert transfer_row(receipt_like).status == "delivery_failed"
    assert not (folder(kit) / "faux.receipt.json").exists()


def test_replies_must_be_documented_messages(kit: Kit) -> None:
    assert create_connector(kit).status_code == 201
    transfer_id = sending_transfer(kit)
    job_id = ask_delivery(kit, store(os.urandom(256)), "x.zip", "piege", transfer_id, success="socle.cli.main")
    run_jobs()
    with new_session() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "failed"
    assert deliveries(kit.tenant_id) == []
    assert not folder(kit).exists() or list(folder(kit).iterdir()) == []
    # The refused delivery is reported through the (valid, same-tenant) failure reply: not stuck in "sending".
    assert transfer_row(transfer_id).status == "delivery_failed"


# --------------------------------------------------------------------------------------------------------
# Tenants


def test_each_tenant_deposits_in_its_own_folder_and_sees_its_own_deliveries(make_kit: Callable[..., Kit]) -> None:
    first, second = make_kit(with_identity=False), make_kit(with_identity=False)
    contents = {}
    for kit in (first, second):
        assert create_connector(kit, "depot", "sae").status_code == 201
        contents[kit.slug] = os.urandom(1024)
        transfer_id = sending_transfer(kit)
        ask_delivery(kit, store(contents[kit.slug]), "versement.zip", "meme-cle", transfer_id)
    run_jobs()

    root = get_settings().effective_deposit_root
    for kit in (first, second):
        deposited = root / kit.slug / "sae" / "versement.zip"
        assert deposited.read_bytes() == contents[kit.slug]
        [listed] = kit["admin"].get("/interop/deliveries").json()
        assert listed["sha256"] == hashlib.sha256(contents[kit.slug]).hexdigest()
        assert root / kit.slug / listed["receipt"]["path"] == deposited
    assert [c["name"] for c in first["admin"].get("/interop/connectors").json()] == ["depot"]


def test_a_tenant_cannot_deliver_through_another_tenants_connector(make_kit: Callable[..., Kit]) -> None:
    owner, intruder = make_kit(with_identity=False), make_kit(with_identity=False)
    assert create_connector(owner, "partage", "sae").status_code == 201
    transfer_id = sending_transfer(intruder)
    ask_delivery(intruder, store(os.urandom(256)), "intrus.zip", "intrus", transfer_id, connector="partage")
    run_jobs()
    transfer = transfer_row(transfer_id)
    assert transfer.status == "delivery_failed" and "introuvable" in (transfer.error or "")
    assert not folder(owner).exists() or list(folder(owner).iterdir()) == []
    assert intruder["admin"].get("/interop/deliveries").json() == []
    assert_problem(intruder["admin"].get("/interop/connectors/partage"), 404)


def test_a_reply_cannot_reach_another_tenants_transfer(make_kit: Callable[..., Kit]) -> None:
    mine, theirs = make_kit(with_identity=False), make_kit(with_identity=False)
    assert create_connector(mine).status_code == 201
    their_transfer = sending_transfer(theirs)
    with transaction() as session:
        job = enqueue(
            session,
            messages.INTEROP_DELIVER,
            tenant_id=mine.tenant_id,
            connector="depot",
            object_key=store(os.urandom(128)).key,
            size=128,
            filename="x.zip",
            idempotency_key="vers-les-voisins",
            reply={
                "success": messages.ARCHIVE_RECORD_DELIVERY.function,
                "failure": messages.ARCHIVE_DELIVERY_FAILED.function,
                "arguments": {"tenant_id": theirs.tenant_id, "transfer_id": their_transfer},
            },
        )
    run_jobs()

    with new_session() as session:
        assert session.get(Job, job.id).status == "failed"
    assert deliveries(mine.tenant_id) == []
    # Neither the success nor the failure reply reached the other collectivité's transfer.
    assert transfer_row(their_transfer).status == "sending"
