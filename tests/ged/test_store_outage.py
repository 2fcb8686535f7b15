"""The object store unreachable: « a document never loses a version » — the API answers 503 (problem+json,
Retry-After) with nothing half-written, and a rendition job is retried, then, failing for good, reported as
failed with its reason instead of staying « en cours » forever.

Real servers only: the local moto S3 server (or CI's MinIO), a port where nothing listens, a small HTTP server
that answers 503 or 403 like a failing S3. The tests through the API lower SOCLE_S3_RETRIES to 1 (an
immediate retry, no backoff wait), so that each request to an S3 that does not answer fails at once instead of
after the default's backoff: still retried, still a 503.
"""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import urllib3
from minio import Minio
from minio.error import S3Error
from sqlalchemy import func, select
from ui_kit import sign_in

from ged import renditions
from ged.models import Document, UploadSession, Version
from socle.db import transaction
from socle.errors import ServiceUnavailable
from socle.models import AuditEntry, Job
from socle.settings import Settings, get_settings
from socle.storage import store_for
from socle.storage.api import nested_name
from socle.storage.local import LocalStore
from socle.storage.s3 import S3Store

from conftest import Kit, S3Server, assert_problem, make_pdf, run_jobs, socle_command

UNREACHABLE = "stockage des documents injoignable, réessayez dans un instant"
PDF = "application/pdf"


@contextmanager
def nobody_listens() -> Iterator[str]:
    """An address on 127.0.0.1 where no server listens, for as long as the block lasts."""
    import socket

    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused at once
        yield f"127.0.0.1:{bound.getsockname()[1]}"


def quick_client(endpoint: str, **pool: Any) -> Minio:
    """A client without the default retries, so that a store-level test does not wait for them."""
    http = urllib3.PoolManager(retries=pool.pop("retries", urllib3.Retry(total=0)), timeout=5, **pool)
    return Minio(endpoint, access_key="x", secret_key="y", secure=False, region="us-east-1", http_client=http)


# For the tests through the API: one retry (immediate, urllib3 waits only before the second) and a short
# connect timeout, so that an outage answers at once while the retry path is still taken.
QUICK_S3 = {"SOCLE_S3_RETRIES": "1", "SOCLE_S3_CONNECT_TIMEOUT": "2"}


def assert_unavailable(action: Callable[[], Any]) -> None:
    with pytest.raises(ServiceUnavailable) as raised:
        action()
    assert raised.value.status == 503 and raised.value.detail == UNREACHABLE


def every_operation(store: Any, key: str) -> list[Callable[[], Any]]:
    def read() -> None:
        with store.open(key) as stream:
            stream.read()

    def copy() -> None:
        with store.local_path(key) as path:
            path.read_bytes()

    return [
        lambda: store.put(io.BytesIO(b"acte")),
        read,
        copy,
        lambda: store.size(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
        store.check,
    ]


# ---------------------------------------------------------------------------------------------------------
# The stores themselves


def test_s3_that_does_not_answer_is_unavailable_for_every_operation(tmp_path: Path) -> None:
    key = "a" * 64
    with nobody_listens() as dead:
        store = S3Store(quick_client(dead), "socle", tmp_path / "spool")
        for operation in every_operation(store, key):
            assert_unavailable(operation)
    assert list((tmp_path / "spool").iterdir()) == []  # the spooled upload is gone too


class _FailingS3(BaseHTTPRequestHandler):
    """Answers every request with the server's ``status`` (HTML for a 5xx, as a proxy would; S3 XML for a 4xx)."""

    def _answer(self) -> None:
        server: Any = self.server
        server.requests += 1
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if server.status >= 500:
            body, kind = b"<html><body>503 Service Unavailable</body></html>", "text/html"
        else:
            body = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
            kind = "application/xml"
        self.send_response(server.status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def failing_s3(status: int) -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _FailingS3)
    server.status, server.requests = status, 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("client_retries", [0, 2], ids=["as-answered", "after-the-client-retries"])
def test_s3_server_errors_are_unavailable_but_its_refusals_stay_refusals(tmp_path: Path, client_retries: int) -> None:
    key = "b" * 64
    retries = urllib3.Retry(total=client_retries, backoff_factor=0, status_forcelist=[500, 502, 503, 504])
    with failing_s3(503) as server:
        store = S3Store(quick_client(f"127.0.0.1:{server.server_port}", retries=retries), "socle", tmp_path / "s")
        for operation in every_operation(store, key):
            server.requests = 0
            assert_unavailable(operation)
            assert server.requests == 1 + client_retries  # the client's own retries were spent first
    with failing_s3(403) as server:  # a refusal is no outage: it stays the client's error, never a 503
        store = S3Store(quick_client(f"127.0.0.1:{server.server_port}"), "socle", tmp_path / "s")
        with pytest.raises(S3Error) as refused:
            store.size(key)
        assert refused.value.code == "AccessDenied"


def s3_settings(tmp_path: Path, endpoint: str, **values: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        storage_backend="s3",
        s3_endpoint=endpoint,
        s3_access_key="x",
        s3_secret_key="y",
        s3_secure=False,
        s3_region="us-east-1",
        **values,
    )


def test_the_retries_and_connect_timeout_settings_reach_the_client(tmp_path: Path) -> None:
    key = "d" * 64
    with failing_s3(503) as server:
        endpoint = f"127.0.0.1:{server.server_port}"
        for retries in (0, 1):
            store: Any = store_for(s3_settings(tmp_path, endpoint, s3_retries=retries, s3_connect_timeout=1.5))
            server.requests = 0
            assert_unavailable(partial(store.size, key))
            assert server.requests == 1 + retries  # the client retried exactly as many times as set
    # minio offers no accessor for its pool: the timeouts are read where urllib3 keeps them.
    timeout = store.client._http.connection_pool_kw["timeout"]
    assert (timeout.connect_timeout, timeout.read_timeout) == (1.5, 60)  # per socket read, not per transfer
    default: Any = store_for(s3_settings(tmp_path, endpoint))
    pool = default.client._http.connection_pool_kw
    assert pool["retries"].total == 3 and pool["timeout"].connect_timeout == 5
    assert set(pool["retries"].status_forcelist) == {500, 502, 503, 504}


def test_local_store_folder_unusable_is_unavailable_but_a_missing_object_is_not_found(tmp_path: Path) -> None:
    from socle.errors import NotFound

    key = "c" * 64
    healthy = LocalStore(tmp_path / "objects")
    with pytest.raises(NotFound):
        healthy.size(key)
    with pytest.raises(NotFound), healthy.local_path(key):
        pass
    # A file where the folder should be (ENOTDIR), as a network share gone bad gives EIO or ESTALE.
    (tmp_path / "share").write_bytes(b"")
    broken = LocalStore(tmp_path / "share" / "objects")
    # exists() answers False and check() raises what it meets (the readiness probe names it): the others 503.
    put, read, copy, size, _exists, delete, _check = every_operation(broken, key)
    for operation in (put, read, copy, size, delete):
        assert_unavailable(operation)


# ---------------------------------------------------------------------------------------------------------
# Through the API


def documents_of(tenant_id: str) -> list[str]:
    with transaction() as session:
        query = select(Document.id).where(Document.tenant_id == tenant_id).order_by(Document.created_at)
        return list(session.execute(query).scalars())


def version_count(document_id: str) -> int:
    with transaction() as session:
        query = select(func.count()).select_from(Version).where(Version.document_id == document_id)
        return int(session.execute(query).scalar_one())


def audit_actions(tenant_id: str) -> list[str]:
    with transaction() as session:
        query = select(AuditEntry.action).where(AuditEntry.tenant_id == tenant_id).order_by(AuditEntry.seq)
        return list(session.execute(query).scalars())


def post_document(client: Any, text: str) -> Any:
    files = {"file": ("acte.pdf", make_pdf(text), PDF)}
    return client.post("/ged/documents", files=files, data={"title": "Arrêté", "document_type": "arrete"})


def spooled() -> list[Path]:
    return [path for path in (get_settings().data_dir.resolve() / "spool").glob(".upload-*")]


def test_upload_while_s3_is_down_answers_503_and_writes_nothing(
    kit: Kit, s3_server: S3Server, use_env: Callable[..., None]
) -> None:
    env = s3_server.env(f"t{uuid.uuid4().hex[:12]}") | QUICK_S3
    use_env(**env)
    client = kit["agent"]
    response = post_document(client, "avant la panne")
    assert response.status_code == 201, response.text
    first = response.json()["id"]
    actions = audit_actions(kit.tenant_id)

    with nobody_listens() as dead:
        use_env(SOCLE_S3_ENDPOINT=dead)
        refused = post_document(client, "pendant la panne")
        version = client.post(
            f"/ged/documents/{first}/versions", files={"file": ("v2.pdf", make_pdf("v2 pendant la panne"), PDF)}
        )
    for answer in (refused, version):
        problem = assert_problem(answer, 503)
        assert problem["detail"] == UNREACHABLE and problem["type"] == "urn:socle:problem:unavailable"
        assert answer.headers["retry-after"].isdigit()
    # Nothing half-written: no document, no version, no audit line, no job, no spooled copy.
    assert documents_of(kit.tenant_id) == [first] and version_count(first) == 1
    assert audit_actions(kit.tenant_id) == actions
    assert spooled() == []

    use_env(**env)  # back: the same request works
    assert post_document(client, "pendant la panne").status_code == 201


def test_resumable_upload_finished_while_s3_is_down_stays_open_for_a_retry(
    kit: Kit, s3_server: S3Server, use_env: Callable[..., None]
) -> None:
    env = s3_server.env(f"t{uuid.uuid4().hex[:12]}") | QUICK_S3
    use_env(**env)
    client = kit["agent"]
    content = make_pdf("reçu en morceaux")
    metadata = {"title": "Arrêté", "document_type": "arrete"}
    opened = client.post("/ged/uploads", json={"filename": "acte.pdf", "size": len(content), "metadata": metadata})
    assert opened.status_code == 201, opened.text
    upload = opened.json()
    headers = {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream", "Tus-Resumable": "1.0.0"}
    assert client.patch(f"/ged/uploads/{upload['id']}", content=content, headers=headers).status_code == 204

    with nobody_listens() as dead:
        use_env(SOCLE_S3_ENDPOINT=dead)
        assert_problem(client.post(f"/ged/uploads/{upload['id']}/finish"), 503)
    with transaction() as session:
        state = session.get(UploadSession, upload["id"])
        assert state is not None and (state.status, state.received, state.document_id) == ("open", len(content), None)
    assert documents_of(kit.tenant_id) == []
    assert "ged.upload.completed" not in audit_actions(kit.tenant_id)

    use_env(**env)
    finished = client.post(f"/ged/uploads/{upload['id']}/finish")
    assert finished.status_code == 201, finished.text
    assert client.get(f"/ged/documents/{finished.json()['id']}/content").content == content


# ---------------------------------------------------------------------------------------------------------
# Rendition jobs: retried, then reported


def rendition_jobs(document_id: str) -> dict[str, Job]:
    with transaction() as session:
        version_ids = session.execute(select(Version.id).where(Version.document_id == document_id)).scalars().all()
        keys = [f"ged.{kind}:{vid}" for vid in version_ids for kind in ("text", "preview", "pdfa")]
        jobs = {job.function: job for job in session.execute(select(Job).where(Job.key.in_(keys))).scalars()}
        session.expunge_all()
        return jobs


def renditions_state(client: Any, document_id: str) -> dict[str, Any]:
    response = client.get(f"/ged/documents/{document_id}/renditions")
    assert response.status_code == 200, response.text
    return dict(response.json())


def failures(tenant_id: str, document_id: str) -> list[dict[str, Any]]:
    with transaction() as session:
        query = select(AuditEntry.details).where(
            AuditEntry.tenant_id == tenant_id,
            AuditEntry.object_id == document_id,
            AuditEntry.action == "ged.rendition.failed",
        )
        return list(session.execute(query.order_by(AuditEntry.seq)).scalars())


def reason(function: str, attempts: int, detail: str = UNREACHABLE) -> str:
    return f"échec définitif de la tâche ged.jobs.{function} après {attempts} essai(s) : {detail}"


def test_renditions_failing_for_good_are_reported_failed_then_redone(
    app: Any, kit: Kit, use_env: Callable[..., None], tmp_path: Path
) -> None:
    client = kit["agent"]
    response = post_document(client, "délibération budgétaire")
    assert response.status_code == 201, response.text
    document_id = response.json()["id"]

    # The store's folder unusable for longer than the retries (SOCLE_JOB_MAX_ATTEMPTS=3 in the tests).
    (tmp_path / "share").write_bytes(b"")
    use_env(SOCLE_STORAGE_PATH=str(tmp_path / "share" / "objects"))
    run_jobs()
    jobs = rendition_jobs(document_id)
    assert {(f, job.status, job.attempts) for f, job in jobs.items()} == {
        (f"ged.jobs.{name}", "failed", 3) for name in ("extract_text", "make_preview", "make_pdfa")
    }
    assert all(UNREACHABLE in (job.last_error or "") for job in jobs.values())

    result = renditions_state(client, document_id)
    assert result["text_status"] == "failed" and result["text_message"] == "le texte n'a pas pu être extrait"
    assert result["text_reason"] == reason("extract_text", 3)
    assert result["preview_reason"] == reason("make_preview", 3)
    assert result["pdfa_reason"] == reason("make_pdfa", 3)
    page = sign_in(app, kit, "agent").get(f"/documents/{document_id}")
    assert page.status_code == 200, page.text
    text = page.text.replace("&#39;", "'")
    text = text[text.index('<section aria-labelledby="apercu"') :]
    text = text[: text.index("</section>")]
    assert "Le texte n'a pas pu être extrait." in text and "L'aperçu n'a pas pu être fait" in text
    assert "en cours" not in text and "en préparation" not in text
    assert reason("make_preview", 3) in text and reason("make_pdfa", 3) in text

    # Reported once, whatever the repeats.
    reported = failures(kit.tenant_id, document_id)
    assert sorted((d["rendu"], d["raison"]) for d in reported) == [
        ("PDF/A", reason("make_pdfa", 3)),
        ("aperçu", reason("make_preview", 3)),
        ("texte", reason("extract_text", 3)),
    ]
    renditions.rendition_failed(kit.tenant_id, document_id, 1, reason("make_preview", 3))
    renditions.rendition_failed(kit.tenant_id, document_id, 1, reason("extract_text", 3))
    assert failures(kit.tenant_id, document_id) == reported

    # The store back, the text is redone by the existing path; a late report does not undo the new run.
    use_env(SOCLE_STORAGE_PATH=None)
    redo = socle_command("ged", "redo-text", "--tenant", kit.slug, "--failed")
    assert redo.returncode == 0 and "1 version(s)" in redo.stdout, redo.stdout + redo.stderr
    renditions.rendition_failed(kit.tenant_id, document_id, 1, reason("extract_text", 3))
    assert renditions_state(client, document_id)["text_status"] == "pending"
    run_jobs()
    result = renditions_state(client, document_id)
    assert result["text_status"] == "done" and result["text_reason"] is None and result["text"]


def test_s3_unreachable_beyond_the_retries_reports_the_renditions(
    kit: Kit, s3_server: S3Server, use_env: Callable[..., None]
) -> None:
    use_env(**s3_server.env(f"t{uuid.uuid4().hex[:12]}"), **QUICK_S3, SOCLE_JOB_MAX_ATTEMPTS="1")  # one attempt
    client = kit["agent"]
    image = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (40, 20), "white").save(image, "PNG")
    files = {"file": ("scan.png", image.getvalue(), "image/png")}
    response = client.post("/ged/documents", files=files, data={"title": "Courrier", "document_type": "courrier"})
    assert response.status_code == 201, response.text
    document_id = response.json()["id"]

    with nobody_listens() as dead:
        use_env(SOCLE_S3_ENDPOINT=dead)
        run_jobs()
    result = renditions_state(client, document_id)
    assert result["text_status"] == "failed", result
    assert result["text_reason"] == reason("extract_text", 1)
    assert result["preview_reason"] == reason("make_preview", 1)
    assert not result["preview"] and result["pdfa_reason"] is None  # no PDF/A for an image: nothing to report


def test_damaged_object_in_s3_is_reported_at_once(kit: Kit, s3_server: S3Server, use_env: Callable[..., None]) -> None:
    bucket = f"t{uuid.uuid4().hex[:12]}"
    use_env(**s3_server.env(bucket))
    client = kit["agent"]
    response = post_document(client, "acte altéré")
    assert response.status_code == 201, response.text
    document = response.json()
    key = document["current"]["content"]["sha256"]
    other = make_pdf("autre contenu")
    raw = Minio(
        s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=s3_server.secure, region="us-east-1"
    )
    raw.put_object(bucket, f"objects/{nested_name(key)}", io.BytesIO(other), len(other))

    run_jobs()
    jobs = rendition_jobs(document["id"])
    # A refusal, not an outage: failed at the first attempt, not retried for hours.
    assert {(job.status, job.attempts) for job in jobs.values()} == {("failed", 1)}
    altered = f"l'objet {key} est altéré dans le stockage S3"
    result = renditions_state(client, document["id"])
    assert result["text_status"] == "failed" and result["text_reason"] == reason("extract_text", 1, altered)
    assert result["preview_reason"] == reason("make_preview", 1, altered)
    assert result["pdfa_reason"] == reason("make_pdfa", 1, altered)
