"""Signature externe: a one-time link mailed to an outside signer, public routes, single use, expiry."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from parapheur_kit import act, desk, folder_of, ok, sent_folder, typology
from signing_helpers import actions, history, import_seal, object_path, save, stamp_lines
from smtp import SmtpServer, kit_mailbox
from sqlalchemy import select, update
from testpki import TestPki

from parapheur import pades
from parapheur.models import Step
from socle.db import new_session, transaction, utcnow

from conftest import Kit, assert_problem, pdfsig, run_jobs

SIGNER = {"name": "Claude Lefèvre", "email": "claude.lefevre@exemple.fr"}
LINK = re.compile(r"/signature-externe/([A-Za-z0-9_\-]{20,})")


@pytest.fixture
def mailbox(use_env: Callable[..., None]) -> Iterator[SmtpServer]:
    with kit_mailbox(use_env) as server:
        yield server


@pytest.fixture
def public(app: Any) -> Iterator[TestClient]:
    """A client without any API token: what the external signer has."""
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def external_folder(kit: Kit, pki: TestPki, *, reading_required: bool = False, **upload: Any) -> dict[str, Any]:
    """A folder visaed by the secretariat, now waiting for its external signer (the link is mailed)."""
    secretariat = desk(kit, "Secrétariat", ["agent"])
    seal_id = import_seal(kit, pki)
    circuit = [{"kind": "visa", "desk_ids": [secretariat]}, {"kind": "external_signature"}]
    subtype = typology(kit, circuit, name="Convention", seal_identity_id=seal_id, reading_required=reading_required)
    folder = sent_folder(kit, subtype, title="Convention de mise à disposition", external_signers=[SIGNER], **upload)
    ok(act(kit, "agent", folder["id"], "visa"))
    return folder


def mailed_secret(server: SmtpServer) -> str:
    run_jobs()
    mails = [m for m in server.messages if SIGNER["email"] in m.rcpt_tos]
    assert len(mails) == 1, [m.rcpt_tos for m in server.messages]
    body = mails[0].message.get_body(preferencelist=("plain",))
    assert body is not None
    found = LINK.search(body.get_content())
    assert found, body.get_content()
    return found.group(1)


def test_the_external_signer_signs_once_through_the_mailed_link(
    kit: Kit, pki: TestPki, mailbox: SmtpServer, public: TestClient, tmp_path: Path
) -> None:
    folder = external_folder(kit, pki)
    secret = mailed_secret(mailbox)
    # Only the secret's digest is kept, nowhere the secret itself (the job carried it encrypted).
    with new_session() as session:
        step = session.execute(select(Step).where(Step.folder_id == folder["id"], Step.position == 1)).scalar_one()
        assert step.token_hash and secret not in step.token_hash and step.token_expires_at is not None
        assert step.token_expires_at - utcnow() > timedelta(days=13)

    seen = ok(public.get(f"/parapheur/external/{secret}"))
    assert seen["title"] == "Convention de mise à disposition" and seen["signer_name"] == SIGNER["name"]
    (document,) = seen["documents"]
    pdf = public.get(f"/parapheur/external/{secret}/documents/{document['id']}")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert_problem(public.get(f"/parapheur/external/{secret}/documents/inconnu"), 404)

    assert_problem(public.post(f"/parapheur/external/{secret}/sign", json={"consent": False, "name": "C. L."}), 422)
    assert_problem(public.post(f"/parapheur/external/{secret}/sign", json={"consent": True, "name": "   "}), 422)
    signed = ok(public.post(f"/parapheur/external/{secret}/sign", json={"consent": True, "name": "Claude Lefèvre"}))
    assert signed["status"] == "completed"

    after = folder_of(kit, folder["id"])
    assert after["status"] == "completed"
    (event,) = [e for e in history(folder["id"]) if e.action == "external_signature"]
    assert event.actor == f"externe:{SIGNER['email']}" and "Claude Lefèvre" in event.actor_name
    path = save(tmp_path, "signe.pdf", object_path(after["documents"][0]["current_sha256"]).read_bytes())
    assert "Signature is Valid" in pdfsig(path)
    assert len(pades.verify_pdf(path, [pki.root_der])) == 1
    lines = stamp_lines(path)
    assert lines[0] == f"Signé par Claude Lefèvre ({SIGNER['email']}) — lien à usage unique", lines

    # Used: the link is dead, for reading as for signing.
    assert_problem(public.get(f"/parapheur/external/{secret}"), 404)
    assert_problem(public.post(f"/parapheur/external/{secret}/sign", json={"consent": True, "name": "X"}), 404)
    assert actions(folder["id"]).count("external_signature") == 1


def test_an_expired_or_unknown_link_is_404(kit: Kit, pki: TestPki, mailbox: SmtpServer, public: TestClient) -> None:
    folder = external_folder(kit, pki)
    secret = mailed_secret(mailbox)
    assert_problem(public.get("/parapheur/external/" + "x" * 43), 404)
    with transaction() as session:
        session.execute(
            update(Step)
            .where(Step.folder_id == folder["id"], Step.position == 1)
            .values(token_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert_problem(public.get(f"/parapheur/external/{secret}"), 404)
    assert_problem(public.post(f"/parapheur/external/{secret}/sign", json={"consent": True, "name": "C. L."}), 404)
    assert folder_of(kit, folder["id"])["status"] == "in_progress"


def test_the_folder_routes_still_need_a_token(public: TestClient) -> None:
    assert_problem(public.get("/parapheur/folders"), 401)
    assert_problem(public.post("/parapheur/folders/bulk", json={"action": "visa", "folder_ids": ["x"]}), 401)


def test_an_expired_link_is_sent_again_by_the_creator_and_the_old_one_dies(
    kit: Kit, pki: TestPki, mailbox: SmtpServer, public: TestClient
) -> None:
    folder = external_folder(kit, pki)
    first = mailed_secret(mailbox)
    with transaction() as session:  # the signer let the 14 days go by
        session.execute(
            update(Step)
            .where(Step.folder_id == folder["id"], Step.position == 1)
            .values(token_expires_at=utcnow() - timedelta(days=1))
        )
    assert_problem(kit["maire"].post(f"/parapheur/folders/{folder['id']}/external-link"), 404)  # not theirs
    mailbox.messages.clear()
    resent = ok(kit["agent"].post(f"/parapheur/folders/{folder['id']}/external-link"))
    assert resent["status"] == "in_progress"
    second = mailed_secret(mailbox)
    assert second != first
    assert_problem(public.get(f"/parapheur/external/{first}"), 404)
    assert ok(public.get(f"/parapheur/external/{second}"))["title"] == "Convention de mise à disposition"
    assert actions(folder["id"]).count("external_link_resent") == 1
    # An administrator may send it too; once signed, there is no link left to send.
    mailbox.messages.clear()
    ok(kit["admin"].post(f"/parapheur/folders/{folder['id']}/external-link"))
    third = mailed_secret(mailbox)
    assert_problem(public.get(f"/parapheur/external/{second}"), 404)
    ok(public.post(f"/parapheur/external/{third}/sign", json={"consent": True, "name": "Claude Lefèvre"}))
    refused = assert_problem(kit["agent"].post(f"/parapheur/folders/{folder['id']}/external-link"), 409)
    assert "aucun lien à renvoyer" in refused["detail"]


def test_through_the_api_too_the_external_signer_reads_before_signing(
    kit: Kit, pki: TestPki, mailbox: SmtpServer, public: TestClient
) -> None:
    """« Lecture obligatoire » binds the API as the page: a download is the reading, and signing waits for it."""
    folder = external_folder(kit, pki, reading_required=True)
    secret = mailed_secret(mailbox)
    (document,) = ok(public.get(f"/parapheur/external/{secret}"))["documents"]
    refused = public.post(f"/parapheur/external/{secret}/sign", json={"consent": True, "name": "Claude Lefèvre"})
    assert_problem(refused, 409)
    assert "lecture obligatoire" in refused.json()["detail"] and "document_read" not in actions(folder["id"])
    assert public.get(f"/parapheur/external/{secret}/documents/{document['id']}").status_code == 200
    ok(public.post(f"/parapheur/external/{secret}/sign", json={"consent": True, "name": "Claude Lefèvre"}))
    assert folder_of(kit, folder["id"])["status"] == "completed"
    assert actions(folder["id"]).count("document_read") == 1
