"""Archive API: validating a built package again (POST /archive/transfers/{id}/validate) against the schemas,
the profile and the referential as they are now; the package itself never changes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from socle.db import transaction
from socle.models import AuditEntry

from conftest import SHARED_SEDA, Kit, assert_problem, make_pdf, run_jobs, upload_document

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def set_algorithms(kit: Kit, algorithms: list[str]) -> None:
    response = kit["archiviste"].put("/archive/referential", json={"rules": [], "digest_algorithms": algorithms})
    assert response.status_code == 200, response.text


def built(kit: Kit, title: str = "Délibération à verser") -> dict[str, Any]:
    document = upload_document(kit["agent"], make_pdf(title), title=title)
    body = {"document_ids": [document["id"]], "archival_agency": "AD037", "archival_agreement": "IC-000001"}
    response = kit["archiviste"].post("/archive/transfers", json=body)
    assert response.status_code == 202, response.text
    run_jobs()
    return transfer_of(kit, response.json()["id"])


def transfer_of(kit: Kit, transfer_id: str) -> dict[str, Any]:
    response = kit["archiviste"].get(f"/archive/transfers/{transfer_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def validate(kit: Kit, transfer_id: str, user: str = "archiviste") -> Any:
    return kit[user].post(f"/archive/transfers/{transfer_id}/validate")


def revalidations(tenant_id: str, transfer_id: str) -> list[dict[str, Any]]:
    with transaction() as session:
        query = select(AuditEntry.actor, AuditEntry.details).where(
            AuditEntry.tenant_id == tenant_id,
            AuditEntry.object_id == transfer_id,
            AuditEntry.action == "archive.transfer.revalidated",
        )
        return [{"actor": actor, **details} for actor, details in session.execute(query.order_by(AuditEntry.seq))]


def test_the_same_package_follows_the_referential_as_it_is_now(kit: Kit) -> None:
    set_algorithms(kit, ["SHA-256"])  # the package's SHA-512 digests are refused by the business checks
    transfer = built(kit)
    assert transfer["status"] == "invalid" and transfer["validation"]["checks"]["business"] == "invalid"
    package = transfer["sip_sha256"]

    set_algorithms(kit, ["SHA-512"])
    response = validate(kit, transfer["id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "built" and body["validation"]["status"] == "valid"
    assert body["validation"]["checks"] == {"schema": "valid", "profile": None, "business": "valid"}
    assert body["sip_sha256"] == package  # validated again, not rebuilt

    set_algorithms(kit, ["SHA-256"])  # and back: a conforming package can become non-conforming
    again = validate(kit, transfer["id"]).json()
    assert again["status"] == "invalid"
    [issue] = again["validation"]["issues"]
    assert issue["check"] == "business" and "SHA-512" in issue["message"]
    assert transfer_of(kit, transfer["id"])["status"] == "invalid"
    assert [(entry["actor"], entry["validation"]) for entry in revalidations(kit.tenant_id, transfer["id"])] == [
        ("user:archiviste", "valid"),
        ("user:archiviste", "invalid"),
    ]


def test_an_unvalidated_package_is_validated_once_the_schemas_are_there(
    kit: Kit, use_env: Callable[..., None], tmp_path: Path
) -> None:
    use_env(SOCLE_SEDA_SCHEMAS=str(tmp_path / "absents"))
    transfer = built(kit)
    assert transfer["status"] == "unvalidated"
    still = validate(kit, transfer["id"]).json()  # still no schemas: said again, not called valid
    assert still["status"] == "unvalidated" and still["validation"]["status"] == "skipped"

    use_env(SOCLE_SEDA_SCHEMAS=str(SHARED_SEDA))
    response = validate(kit, transfer["id"])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "built" and response.json()["validation"]["schema"]


def test_only_a_built_package_not_yet_sent_is_validated_again(kit: Kit) -> None:
    failed = kit["archiviste"].post("/archive/transfers", json={"document_ids": [UNKNOWN], "archival_agency": "AD037"})
    run_jobs()
    assert transfer_of(kit, failed.json()["id"])["status"] == "error"
    body = assert_problem(validate(kit, failed.json()["id"]), 409)
    assert "pas de paquet à valider" in body["detail"] and "en erreur" in body["detail"]

    transfer = built(kit)
    connector = {"name": "sae", "kind": "depot", "config": {"path": "sae"}}
    assert kit["admin"].post("/interop/connectors", json=connector).status_code == 201
    sent = kit["archiviste"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "sae"})
    assert sent.status_code == 202, sent.text
    run_jobs()
    body = assert_problem(validate(kit, transfer["id"]), 409)
    assert "envoyé" in body["detail"]
    assert transfer_of(kit, transfer["id"])["status"] == "delivered"  # what happened stands
    assert revalidations(kit.tenant_id, transfer["id"]) == []


def test_rights_and_tenants(kit: Kit, make_kit: Callable[..., Kit]) -> None:
    transfer = built(kit)
    assert_problem(validate(kit, transfer["id"], "agent"), 403)
    other = make_kit(with_identity=False)
    assert_problem(validate(other, transfer["id"]), 404)
    assert_problem(validate(kit, UNKNOWN), 404)
    assert revalidations(kit.tenant_id, transfer["id"]) == []
