"""Agents' identities and the tenant's seals through the admin API: import (PKCS#12 + passphrase), list,
remove. The passphrase and the key never come back: not in an answer (errors included), a log record, an audit
entry, nor in clear in the database.
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

import pytest
from parapheur_kit import Standard, act, ok, sent_folder, typology
from sqlalchemy import select

from parapheur.models import SigningIdentity
from parapheur.pades import make_self_signed_identity
from socle.db import new_session
from socle.models import AuditEntry

from conftest import Kit, assert_problem

PASSPHRASE = "Phrase-très-secrète-7731"
_FIELDS = {
    "id",
    "purpose",
    "username",
    "label",
    "kind",
    "subject",
    "issuer",
    "serial_number",
    "not_before",
    "not_after",
    "valid_now",
    "stamp_image",
    "created_at",
}


@pytest.fixture(scope="module")
def pkcs12() -> bytes:
    return make_self_signed_identity("Camille Martin", "Commune de test", PASSPHRASE.encode())


class Watch:
    """Every answer the test received, to search them all for a secret afterwards."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, response: Any) -> Any:
        self.texts.append(response.text + json.dumps(dict(response.headers)))
        return response


def _upload(kit: Kit, user: str, path: str, p12: bytes, passphrase: str, **data: str) -> Any:
    files = {"file": ("identite.p12", p12, "application/x-pkcs12")}
    return kit[user].post(f"/parapheur/identities{path}", files=files, data={"passphrase": passphrase, **data})


def _assert_no_secret(kit: Kit, watch: Watch, caplog: pytest.LogCaptureFixture, p12: bytes) -> None:
    secrets = [PASSPHRASE, base64.b64encode(p12).decode()[:40], p12.hex()[:40]]
    for text in watch.texts:
        assert not any(secret in text for secret in secrets), text
    for record in caplog.records:
        logged = f"{record.getMessage()} {record.args} {record.exc_text or ''}"
        assert PASSPHRASE not in logged, logged
    with new_session() as session:
        entries = session.execute(select(AuditEntry).where(AuditEntry.tenant_id == kit.tenant_id)).scalars()
        audited = [json.dumps(entry.details, ensure_ascii=False) + entry.action for entry in entries]
        rows = session.execute(select(SigningIdentity).where(SigningIdentity.tenant_id == kit.tenant_id)).scalars()
        stored = [b"".join(value for value in vars(row).values() if isinstance(value, bytes)) for row in rows]
    assert audited and not any(PASSPHRASE in text for text in audited)
    assert stored and not any(PASSPHRASE.encode() in blob or p12 in blob for blob in stored)


def test_an_admin_imports_lists_and_removes_an_agents_identity(
    kit: Kit, pkcs12: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    watch = Watch()
    setup = Standard(kit)
    own_sign = typology(kit, [{"kind": "signature", "desk_ids": [setup.secretariat]}], name="Attestation")
    before = sent_folder(kit, own_sign)
    assert "aucune identité" in assert_problem(watch(act(kit, "agent", before["id"], "sign")), 409)["detail"]

    imported = ok(watch(_upload(kit, "admin", "/users/agent", pkcs12, PASSPHRASE)), 201)
    assert set(imported) == _FIELDS
    assert imported["purpose"] == "user" and imported["username"] == "agent" and imported["kind"] == "pkcs12"
    assert "Camille Martin" in imported["subject"] and imported["valid_now"] and not imported["stamp_image"]
    listed = ok(watch(kit["admin"].get("/parapheur/identities", params={"purpose": "user"})))
    assert sorted(row["username"] for row in listed) == ["agent", "maire"]  # maire's comes with the kit
    assert all(set(row) == _FIELDS for row in listed)
    assert ok(watch(kit["admin"].get("/parapheur/identities", params={"purpose": "seal"}))) == []
    _assert_no_secret(kit, watch, caplog, pkcs12)  # here with the agent's row in the database
    # The imported key signs.
    assert ok(watch(act(kit, "agent", before["id"], "sign")))["status"] == "completed"

    # Refusals: wrong passphrase, not a PKCS#12, no file, unknown user, not an administrator. None echoes a secret.
    wrong = assert_problem(watch(_upload(kit, "admin", "/users/agent", pkcs12, PASSPHRASE + "x")), 422)
    assert "phrase de passe" in wrong["detail"].lower() or "pkcs" in wrong["detail"].lower()
    assert_problem(watch(_upload(kit, "admin", "/users/agent", b"pas un PKCS#12", PASSPHRASE)), 422)
    no_file = kit["admin"].post("/parapheur/identities/users/agent", data={"passphrase": PASSPHRASE})
    assert_problem(watch(no_file), 422)
    assert (
        "inconnu" in assert_problem(watch(_upload(kit, "admin", "/users/personne", pkcs12, PASSPHRASE)), 404)["detail"]
    )
    assert_problem(watch(_upload(kit, "agent", "/users/agent", pkcs12, PASSPHRASE)), 403)
    assert_problem(watch(kit["agent"].get("/parapheur/identities")), 403)
    assert_problem(watch(kit["maire"].delete("/parapheur/identities/users/agent")), 403)

    assert watch(kit["admin"].delete("/parapheur/identities/users/agent")).status_code == 204
    assert [row["username"] for row in ok(watch(kit["admin"].get("/parapheur/identities")))] == ["maire"]
    assert_problem(watch(kit["admin"].delete("/parapheur/identities/users/agent")), 404)
    after = sent_folder(kit, own_sign)
    assert "aucune identité" in assert_problem(watch(act(kit, "agent", after["id"], "sign")), 409)["detail"]

    with new_session() as session:
        entries = session.execute(select(AuditEntry).where(AuditEntry.tenant_id == kit.tenant_id)).scalars()
        done = [(entry.actor, entry.action) for entry in entries if entry.action.startswith("parapheur.identity")]
    assert ("user:admin", "parapheur.identity.imported") in done and (
        "user:admin",
        "parapheur.identity.removed",
    ) in done
    _assert_no_secret(kit, watch, caplog, pkcs12)


def test_seals_are_imported_replaced_listed_and_removed_when_unused(
    kit: Kit, pkcs12: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    watch = Watch()
    setup = Standard(kit)
    seal = ok(watch(_upload(kit, "admin", "/seals", pkcs12, PASSPHRASE, label="Cachet de la mairie")), 201)
    assert seal["purpose"] == "seal" and seal["label"] == "Cachet de la mairie" and seal["username"] is None
    again = ok(watch(_upload(kit, "admin", "/seals", pkcs12, PASSPHRASE, label="Cachet de la mairie")), 201)
    assert again["id"] == seal["id"]  # the same name replaces it
    assert [row["id"] for row in ok(watch(kit["admin"].get("/parapheur/identities", params={"purpose": "seal"})))] == [
        seal["id"]
    ]
    assert_problem(watch(_upload(kit, "admin", "/seals", pkcs12, PASSPHRASE, label="")), 422)
    assert_problem(watch(_upload(kit, "admin", "/seals", pkcs12, "mauvaise", label="Autre")), 422)

    subtype = typology(
        kit,
        [{"kind": "visa", "desk_ids": [setup.secretariat]}, {"kind": "seal"}],
        name="Certificat",
        seal_identity_id=seal["id"],
    )
    used = assert_problem(watch(kit["admin"].delete(f"/parapheur/identities/seals/{seal['id']}")), 409)
    assert "Certificat" in used["detail"]
    assert_problem(watch(kit["agent"].delete(f"/parapheur/identities/seals/{seal['id']}")), 403)
    assert watch(kit["admin"].delete(f"/parapheur/subtypes/{subtype}")).status_code == 204
    assert watch(kit["admin"].delete(f"/parapheur/identities/seals/{seal['id']}")).status_code == 204
    assert ok(watch(kit["admin"].get("/parapheur/identities", params={"purpose": "seal"}))) == []
    assert_problem(watch(kit["admin"].delete(f"/parapheur/identities/seals/{seal['id']}")), 404)
    with new_session() as session:
        entries = session.execute(select(AuditEntry).where(AuditEntry.tenant_id == kit.tenant_id)).scalars()
        done = [(entry.actor, entry.action) for entry in entries if entry.action.startswith("parapheur.seal")]
    assert done.count(("user:admin", "parapheur.seal.imported")) == 2
    assert ("user:admin", "parapheur.seal.removed") in done
    _assert_no_secret(kit, watch, caplog, pkcs12)
