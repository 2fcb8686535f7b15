"""State changes the parapheur made without a line in the tenant's audit log: a failed server seal (the folder's
error), a degraded signature (the level it owes) and its later upgrade. Each is now audited, like the acts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import signing_helpers
from parapheur_kit import Standard, act, desk, folder_of, ok, sent_folder, typology
from signing_helpers import import_pki_identity, import_seal, make_due
from sqlalchemy import update
from testpki import TestPki, closed_port_url

from parapheur.models import SigningIdentity
from socle import audit, secrets
from socle.db import transaction

from conftest import Kit, run_jobs

use_tsa = signing_helpers.use_tsa  # the fixture, shared with the other signing tests


def _entries(kit: Kit, folder_id: str, action: str) -> list[tuple[str, dict[str, Any]]]:
    """(actor, details) of the folder's audit entries named ``action``, oldest first; the chain checked."""
    with transaction() as session:
        assert audit.verify(session, kit.tenant_id).problems == ()
        found = audit.entries_about(session, kit.tenant_id, "folder", folder_id)
        return [(entry.actor, dict(entry.details)) for entry in reversed(found) if entry.action == action]


def test_a_failed_server_seal_is_in_the_audit_log(kit: Kit, pki: TestPki) -> None:
    secretariat = desk(kit, "Secrétariat", ["agent"])
    seal_id = import_seal(kit, pki)
    subtype = typology(kit, [{"kind": "visa", "desk_ids": [secretariat]}, {"kind": "seal"}], seal_identity_id=seal_id)
    # The seal's passphrase no longer opens its key (changed since): the seal job is refused, not retried.
    with transaction() as session:
        session.execute(
            update(SigningIdentity)
            .where(SigningIdentity.id == seal_id)
            .values(passphrase_encrypted=secrets.encrypt(b"plus la bonne"))
        )
    folder = sent_folder(kit, subtype)
    ok(act(kit, "agent", folder["id"], "visa"))
    run_jobs()
    waiting = folder_of(kit, folder["id"])
    assert waiting["status"] == "in_progress" and waiting["current_step"] == 1
    assert (waiting["error"] or "").startswith("cachet serveur impossible")

    ((actor, details),) = _entries(kit, folder["id"], "parapheur.seal_failed")
    assert actor == "service:parapheur"
    assert details["step"] == 1 and details["title"] == folder["title"]
    assert waiting["error"] == f"cachet serveur impossible : {details['reason']}"
    assert "plus la bonne" not in str(details)


def test_a_degraded_signature_and_its_upgrade_are_in_the_audit_log(
    kit: Kit, pki: TestPki, use_tsa: Callable[[str | None], None], use_env: Callable[..., None]
) -> None:
    use_env(SOCLE_JOB_BACKOFF="3600")  # a failed upgrade waits for its next attempt
    setup = Standard(kit)
    import_pki_identity(kit, "maire", pki)
    type_id = ok(kit["admin"].post("/parapheur/types", json={"name": "Horodatés", "level": "B-T"}), 201)["id"]
    circuit = [{"kind": "signature", "desk_ids": [setup.maire]}]
    body = {"name": "Arrêté horodaté", "circuit": circuit}
    subtype = ok(kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json=body), 201)["id"]
    folder = sent_folder(kit, subtype)

    use_tsa(closed_port_url())
    assert ok(act(kit, "maire", folder["id"], "sign"))["pending_level"] == "B-T"
    degraded = _entries(kit, folder["id"], "parapheur.signature_degraded")
    assert degraded == [("user:maire", {"title": folder["title"], "reached": "B-B", "pending": "B-T"})]
    run_jobs()  # the TSA is still down: the upgrade fails, nothing changed, nothing audited
    assert _entries(kit, folder["id"], "parapheur.signature_upgraded") == []

    use_tsa(pki.tsa_url)
    make_due("parapheur.jobs.upgrade_signature", folder["id"])
    run_jobs()
    assert folder_of(kit, folder["id"])["pending_level"] is None
    upgraded = _entries(kit, folder["id"], "parapheur.signature_upgraded")
    assert upgraded == [("service:parapheur", {"title": folder["title"], "reached": "B-T", "pending": None})]
