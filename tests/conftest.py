"""Shared fixtures: an embedded kit (SQLite migrated once, local storage, inline queue) and real servers.

Each test gets its own collectivité (tenant), so tests share one migrated database without seeing each
other's data: tenant isolation is what the kit promises anyway. Integration fixtures use the project
machines' PostgreSQL and Redis and a local S3 server; without them a test skips with the reason, except
under CI=true where a missing server is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pikepdf
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_SEDA = Path(os.environ.get("SOCLE_TEST_SEDA_SCHEMAS") or ROOT.parent / "shared" / "seda")
_BASE_DIR = Path(tempfile.mkdtemp(prefix="socle-tests-"))

# Before any socle module reads its settings: the whole session runs on embedded defaults in a temp folder.
for _name in list(os.environ):
    if _name.startswith("SOCLE_") and not _name.startswith("SOCLE_TEST_"):
        del os.environ[_name]
os.environ.update(
    {
        "SOCLE_DATA_DIR": str(_BASE_DIR / "data"),
        "SOCLE_SEDA_SCHEMAS": str(SHARED_SEDA),
        "SOCLE_JOB_BACKOFF": "0",
        "SOCLE_JOB_MAX_ATTEMPTS": "3",
        "SOCLE_MAX_UPLOAD_BYTES": str(5 * 1024 * 1024),
    }
)

from fastapi.testclient import TestClient  # noqa: E402

from socle import queue  # noqa: E402
from socle.auth import create_tenant, create_user, issue_token  # noqa: E402
from socle.db import transaction  # noqa: E402
from socle.migrating import upgrade_all  # noqa: E402


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test` runs two workers), a file's tests stay on one worker, so its module
    fixtures are made once, and the browser's files share one: one browser, one live server, one report."""
    for item in items:
        in_browser = item.path.parent.name == "browser"
        item.add_marker(pytest.mark.xdist_group("browser" if in_browser else str(item.path)))


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def missing(reason: str) -> None:
    """A server or tool the test needs is absent: skip with the reason, or fail under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true : un serveur ou un outil manquant est une erreur)")
    pytest.skip(reason)


@pytest.fixture(scope="session", autouse=True)
def migrated_database() -> Iterator[None]:
    if not (SHARED_SEDA / "2.2" / "seda-2.2-main.xsd").is_file():
        missing(f"schémas SEDA officiels absents de {SHARED_SEDA}")
    upgrade_all()
    yield
    shutil.rmtree(_BASE_DIR, ignore_errors=True)


_SQLITE_TEMPLATE = _BASE_DIR / "migrated.db"


def migrate(url: str | None = None) -> None:
    """``upgrade_all``, except that a new SQLite database is a copy of one migrated once per test process:
    migrating takes half a second to a second, copying a few milliseconds. Tests of the migrations themselves
    call ``upgrade_all``."""
    from socle.settings import get_settings

    target = url or get_settings().effective_database_url
    path = Path(target.removeprefix("sqlite:///")) if target.startswith("sqlite:///") else None
    if path is None or (path.exists() and path.stat().st_size > 0):
        upgrade_all(url)
        return
    if not _SQLITE_TEMPLATE.exists():
        built = _BASE_DIR / "migrating.db"
        upgrade_all(f"sqlite:///{built}")
        _copy_sqlite(built, _SQLITE_TEMPLATE)
    path.parent.mkdir(parents=True, exist_ok=True)
    _copy_sqlite(_SQLITE_TEMPLATE, path)


def _copy_sqlite(source: Path, target: Path) -> None:
    # SQLite's backup reads through the write-ahead log the kit's connections use: a consistent copy.
    with closing(sqlite3.connect(source)) as origin, closing(sqlite3.connect(target)) as copy:
        origin.backup(copy)


def reset_caches() -> None:
    """Forget everything derived from the settings: the next use reads the environment again."""
    import socle.secrets
    import socle.settings
    import socle.storage
    from socle.db import reset_engines

    socle.settings.reset_settings()
    reset_engines()
    socle.storage.get_store.cache_clear()
    socle.secrets.reset()


@pytest.fixture
def use_env() -> Iterator[Callable[..., None]]:
    """Set (or, with None, remove) SOCLE_* variables for one test; every cache is reset before and after."""
    with pytest.MonkeyPatch.context() as patch:

        def apply(**values: str | None) -> None:
            for name, value in values.items():
                if value is None:
                    patch.delenv(name, raising=False)
                else:
                    patch.setenv(name, value)
            reset_caches()

        yield apply
    reset_caches()


def run_jobs(timeout: float = 60) -> None:
    """Run every due job in this thread, until the queue is idle (embedded mode)."""
    queue.wait_until_idle(timeout, work_inline=True)


@dataclass
class Kit:
    """A fresh collectivité with its users, each with an API client bound to their token."""

    slug: str
    tenant_id: str
    clients: dict[str, TestClient] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, username: str) -> TestClient:
        return self.clients[username]


USERS: dict[str, tuple[str, list[str]]] = {
    "agent": ("Camille Martin", ["agent"]),
    "maire": ("Dominique Dupont", ["agent"]),
    "archiviste": ("Alix Bernard", ["archiviste"]),
    "admin": ("Sacha Petit", ["admin"]),
}


UI_PASSWORD = "mot de passe de test"  # every kit user's password for the web interface
_UI_PASSWORD_HASH: str | None = None


def ui_password_hash() -> str:
    """Hashed once per run: scrypt is slow on purpose."""
    global _UI_PASSWORD_HASH
    if _UI_PASSWORD_HASH is None:
        from socle.ui.passwords import hash_password

        _UI_PASSWORD_HASH = hash_password(UI_PASSWORD)
    return _UI_PASSWORD_HASH


@pytest.fixture(scope="session")
def app() -> Any:
    from socle.app import create_app

    return create_app()


@pytest.fixture
def make_kit(app: Any) -> Iterator[Callable[..., Kit]]:
    opened: list[TestClient] = []

    def make(with_identity: bool = True) -> Kit:
        slug = f"t-{uuid.uuid4().hex[:10]}"
        with transaction() as session:
            tenant = create_tenant(session, slug, f"Commune {slug}", "213700000")
            kit = Kit(slug, tenant.id)
            for username, (display_name, roles) in USERS.items():
                user = create_user(session, tenant, username, display_name, roles)
                user.password_hash = ui_password_hash()
                kit.tokens[username] = issue_token(session, user, "tests")
            if with_identity:
                from parapheur.identities import import_identity

                import_identity(session, tenant, "maire", *signing_identity())
        for username, token in kit.tokens.items():
            client = TestClient(app, headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=False)
            opened.append(client)
            kit.clients[username] = client
        return kit

    yield make
    for client in opened:
        client.close()


@pytest.fixture
def kit(make_kit: Callable[..., Kit]) -> Kit:
    return make_kit()


_IDENTITY: tuple[bytes, bytes] | None = None


def signing_identity() -> tuple[bytes, bytes]:
    """One PKCS#12 for the whole session (key generation is the slow part)."""
    global _IDENTITY
    if _IDENTITY is None:
        from parapheur.pades import make_self_signed_identity

        passphrase = b"test-passphrase"
        _IDENTITY = (make_self_signed_identity("Dominique Dupont", "Commune de test", passphrase), passphrase)
    return _IDENTITY


def identity_certificate() -> bytes:
    from parapheur.pades import SigningIdentity

    return SigningIdentity.from_pkcs12(*signing_identity()).certificate_der


@pytest.fixture(scope="session")
def seda_schema() -> Any:
    """The official SEDA 2.2 XSD read by xmlschema: a validator independent of the kit's own (lxml), that
    fetches nothing from the network."""
    import xmlschema

    return xmlschema.XMLSchema(
        str(SHARED_SEDA / "2.2" / "seda-2.2-main.xsd"),
        locations=[
            ("http://www.w3.org/XML/1998/namespace", str(SHARED_SEDA / "w3c" / "xml.xsd")),
            ("http://www.w3.org/1999/xlink", str(SHARED_SEDA / "w3c" / "xlink.xsd")),
        ],
        allow="local",
    )


def make_pdf(text: str = "Délibération de test", pages: int = 1) -> bytes:
    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page(page_size=(595, 842))
    pdf.docinfo["/Title"] = text
    path = _BASE_DIR / f"{uuid.uuid4().hex}.pdf"
    pdf.save(path, deterministic_id=True)  # else qpdf seeds /ID with the clock: the same text, other bytes a second on
    data = path.read_bytes()
    path.unlink()
    return data


@pytest.fixture
def pdf_bytes() -> bytes:
    return make_pdf()


def upload_document(client: TestClient, content: bytes, filename: str = "acte.pdf", **metadata: Any) -> Any:
    data = {"title": "Délibération n° 1", "document_type": "deliberation", "date": "2026-11-02", "tags": ["test"]}
    data.update(metadata)
    response = client.post("/ged/documents", files={"file": (filename, content, "application/pdf")}, data=data)
    assert response.status_code == 201, response.text
    return response.json()


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """An error answer is RFC 9457 problem+json with the expected status and a detail for the user."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    assert "Traceback" not in response.text
    return body


def pdfsig(path: Path) -> str:
    """poppler's independent verdict on a signed PDF."""
    if shutil.which("pdfsig") is None:
        missing("poppler-utils (pdfsig) n'est pas installé : lancez « make test », qui l'installe")
    result = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------------------
# Real servers for the integration tests


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def _postgres_schema() -> Iterator[str]:
    """A private schema in the machine's PostgreSQL (database test), dropped at the end."""
    base = os.environ.get("SOCLE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import psycopg

        connection = psycopg.connect(
            base.replace("postgresql+psycopg", "postgresql"), autocommit=True, connect_timeout=3
        )
    except Exception as exc:
        missing(f"PostgreSQL injoignable ({base}) : {exc}")
    schema = f"socle_test_{uuid.uuid4().hex[:8]}"
    connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
        connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private schema shared by the session's PostgreSQL tests."""
    with _postgres_schema() as url:
        yield url


@pytest.fixture
def own_postgres_url() -> Iterator[str]:
    """A schema of its own, for a test whose workers would otherwise run the jobs other tests left pending."""
    with _postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def old_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own, on each backend, for a migration test to fill at an older revision."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        yield request.getfixturevalue("own_postgres_url").replace("postgresql://", "postgresql+psycopg://")
    from socle.db import reset_engines

    reset_engines()


@pytest.fixture
def actes_schemas(use_env: Callable[..., None]) -> None:
    """SOCLE_ACTES_SCHEMAS on the official @ctes XSDs, for the interop files that say
    ``pytestmark = pytest.mark.usefixtures("actes_schemas")`` (the others keep the kit's default)."""
    from s2low_helpers import ACTES_SCHEMAS  # tests/interop, on the path once one of its files is collected

    use_env(SOCLE_ACTES_SCHEMAS=str(ACTES_SCHEMAS))


@pytest.fixture
def sim() -> Iterator[Any]:
    """A S²LOW simulator on 127.0.0.1 for the interop tests, stopped after the test (s2low_helpers.S2low)."""
    from s2low_helpers import running_s2low

    yield from running_s2low()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("SOCLE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        from redis import Redis

        Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:
        missing(f"Redis injoignable ({url}) : {exc}")
    return url


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    secure: bool

    def env(self, bucket: str) -> dict[str, str]:
        return {
            "SOCLE_STORAGE_BACKEND": "s3",
            "SOCLE_S3_ENDPOINT": self.endpoint,
            "SOCLE_S3_ACCESS_KEY": self.access_key,
            "SOCLE_S3_SECRET_KEY": self.secret_key,
            "SOCLE_S3_SECURE": str(self.secure).lower(),
            "SOCLE_S3_REGION": "us-east-1",
            "SOCLE_S3_BUCKET": bucket,
        }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A MinIO named by SOCLE_TEST_S3_URL (http://key:secret@host:port), or a local moto server."""
    configured = os.environ.get("SOCLE_TEST_S3_URL")
    if configured:
        from urllib.parse import urlparse

        url = urlparse(configured)
        yield S3Server(f"{url.hostname}:{url.port}", url.username or "", url.password or "", url.scheme == "https")
        return
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        missing(f"moto[server] n'est pas installé : {exc}")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield S3Server(f"127.0.0.1:{port}", "testing", "testing-secret", False)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pki() -> Iterator[Any]:
    """The parapheur's test PKI (tests/parapheur/pki): CA, signers, OCSP, CRL and timestamps on 127.0.0.1."""
    try:
        from testpki import running_pki
    except ImportError as exc:
        missing(f"certomancer[web-api] n'est pas installé : {exc}")
    with running_pki() as pki:
        yield pki


def socle_command(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real ``socle`` command, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "socle", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
    )
