"""A job that fails for good tells the object waiting for it, once, instead of leaving it stuck."""

from __future__ import annotations

from datetime import timedelta

from parapheur_kit import Standard
from sqlalchemy import select

from socle import messages, queue
from socle.db import transaction, utcnow
from socle.models import Job
from socle.settings import get_settings
from socle.storage import get_store

from conftest import Kit, make_pdf, run_jobs, upload_document


def _transfer(kit: Kit) -> dict:
    document = upload_document(kit["agent"], make_pdf("À verser"))
    transfer = (
        kit["archiviste"]
        .post("/archive/transfers", json={"document_ids": [document["id"]], "archival_agency": "AD037"})
        .json()
    )
    run_jobs()
    return kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()


def test_a_delivery_failing_for_good_marks_the_transfer_failed(kit: Kit) -> None:
    transfer = _transfer(kit)
    assert transfer["status"] == "built", transfer
    kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "sae"}})
    # The deposit folder is a file: every attempt fails with an OSError, a technical (retried) failure.
    tenant_root = get_settings().effective_deposit_root / kit.slug
    tenant_root.mkdir(parents=True, exist_ok=True)
    (tenant_root / "sae").write_bytes(b"pas un dossier")

    assert (
        kit["archiviste"].post(f"/archive/transfers/{transfer['id']}/send", json={"connector": "sae"}).status_code
        == 202
    )
    run_jobs()

    after = kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()
    assert after["status"] == "delivery_failed", after
    assert "échec définitif" in after["error"] and "socle jobs show" in after["error"]
    assert str(tenant_root) not in after["error"]  # no server path for the user
    with transaction() as session:
        delivery = session.execute(
            select(Job).where(Job.function == messages.INTEROP_DELIVER.function, Job.tenant_id == kit.tenant_id)
        ).scalar_one()
        assert delivery.status == queue.FAILED and delivery.attempts == get_settings().job_max_attempts
        assert "FileExistsError" in (delivery.last_error or "")  # the operator's detail stays in socle jobs


def test_a_package_that_cannot_be_built_ends_in_error_not_requested(kit: Kit) -> None:
    document = upload_document(kit["agent"], make_pdf("Objet perdu"))
    key = document["current"]["content"]["sha256"]
    with get_store().local_path(key) as path:
        path.chmod(0o640)
        path.unlink()  # the object disappears from the store before the package is built
    transfer = (
        kit["archiviste"]
        .post("/archive/transfers", json={"document_ids": [document["id"]], "archival_agency": "AD037"})
        .json()
    )
    run_jobs()

    after = kit["archiviste"].get(f"/archive/transfers/{transfer['id']}").json()
    assert after["status"] == "error", after
    assert "introuvable" in after["error"]


def test_a_job_whose_worker_died_on_its_last_attempt_tells_the_folder(kit: Kit) -> None:
    document = upload_document(kit["agent"], make_pdf("Dernier essai"))
    folder = (
        kit["agent"]
        .post(
            "/parapheur/folders",
            json={
                "title": "Dernier essai",
                "ged_document_id": document["id"],
                "subtype_id": Standard(kit).sign_only,
            },
        )
        .json()
    )
    with transaction() as session:  # its worker died during the last allowed attempt, two hours ago
        job = session.execute(
            select(Job).where(Job.function == messages.GED_SEND_TO_PARAPHEUR.function, Job.tenant_id == kit.tenant_id)
        ).scalar_one()
        job.status, job.attempts, job.started_at = queue.RUNNING, job.max_attempts, utcnow() - timedelta(hours=2)

    run_jobs()

    after = kit["agent"].get(f"/parapheur/folders/{folder['id']}").json()
    assert after["status"] == "error" and "échec définitif" in after["error"], after
