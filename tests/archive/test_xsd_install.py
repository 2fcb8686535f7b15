"""Installing the SEDA XSDs from a local HTTP server laid out like the public repository."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from archive.validation import load_schema
from archive.xsd_install import (
    SCHEMA_FILES,
    SchemaDigestMismatch,
    SchemaInstallError,
    check_schemas,
    install_schemas,
)

from conftest import SHARED_SEDA, missing


@pytest.fixture(scope="module")
def seda_dir() -> Path:
    if not (SHARED_SEDA / "SHA256SUMS").is_file():
        missing(f"schémas SEDA officiels absents de {SHARED_SEDA} (variable SOCLE_TEST_SEDA_SCHEMAS)")
    return SHARED_SEDA


@dataclass
class Mirror:
    root: Path
    base_url: str
    requests: list[str] = field(default_factory=list)

    def file(self, destination: str) -> Path:
        schema = next(schema for schema in SCHEMA_FILES if schema.destination == destination)
        return self.root / schema.commit / schema.source


@pytest.fixture
def mirror(seda_dir: Path, tmp_path: Path) -> Iterator[Mirror]:
    """Serves copies of the shared XSDs under {commit}/{path}, as raw.githubusercontent.com does."""
    root = tmp_path / "mirror"
    for schema in SCHEMA_FILES:
        target = root / schema.commit / schema.source
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(seda_dir / schema.destination, target)
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Mirror(root, f"http://127.0.0.1:{server.server_port}/{{commit}}/{{path}}", requests)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_table_covers_every_shared_file(seda_dir: Path) -> None:
    lines = (seda_dir / "SHA256SUMS").read_text().split("\n")
    pinned = dict(reversed(line.split()) for line in lines if line.strip())
    assert {schema.destination: schema.sha256 for schema in SCHEMA_FILES} == pinned


def test_install_then_skip_already_installed(mirror: Mirror, tmp_path: Path) -> None:
    destination = tmp_path / "schemas"

    installed = install_schemas(destination, base_url=mirror.base_url)

    assert sorted(installed) == sorted(destination / schema.destination for schema in SCHEMA_FILES)
    assert check_schemas(destination) == []
    assert len(mirror.requests) == len(SCHEMA_FILES)
    assert load_schema(destination) is not None  # the installed layout is the one validation reads

    assert install_schemas(destination, base_url=mirror.base_url) == []
    assert len(mirror.requests) == len(SCHEMA_FILES)


def test_only_missing_files_are_downloaded(mirror: Mirror, tmp_path: Path) -> None:
    destination = tmp_path / "schemas"
    install_schemas(destination, base_url=mirror.base_url)
    (destination / "2.2" / "seda-2.2-types.xsd").unlink()
    (destination / "w3c" / "xml.xsd").write_text("pas un schéma")
    mirror.requests.clear()

    installed = install_schemas(destination, base_url=mirror.base_url)

    assert sorted(path.relative_to(destination).as_posix() for path in installed) == [
        "2.2/seda-2.2-types.xsd",
        "w3c/xml.xsd",
    ]
    assert len(mirror.requests) == 2
    assert check_schemas(destination) == []


def test_tampered_download_is_refused(mirror: Mirror, tmp_path: Path) -> None:
    tampered = "2.2/seda-2.2-main.xsd"
    with mirror.file(tampered).open("ab") as stream:
        stream.write(b"<!-- modifie -->\n")
    destination = tmp_path / "schemas"

    with pytest.raises(SchemaDigestMismatch) as raised:
        install_schemas(destination, base_url=mirror.base_url)

    expected = next(schema.sha256 for schema in SCHEMA_FILES if schema.destination == tampered)
    message = str(raised.value)
    assert tampered in message and expected in message and raised.value.received in message
    assert raised.value.received != expected
    assert not (destination / tampered).exists()
    assert [path.name for path in (destination / "2.2").iterdir() if path.name.startswith(".")] == []


def test_http_error_is_reported_in_french(mirror: Mirror, tmp_path: Path) -> None:
    mirror.file("w3c/xlink.xsd").unlink()

    with pytest.raises(SchemaInstallError, match=r"Téléchargement impossible de w3c/xlink\.xsd"):
        install_schemas(tmp_path / "schemas", base_url=mirror.base_url)
    assert not (tmp_path / "schemas" / "w3c" / "xlink.xsd").exists()


def test_check_schemas_reports_missing_and_modified_files(mirror: Mirror, tmp_path: Path) -> None:
    destination = tmp_path / "schemas"
    assert len(check_schemas(destination)) == len(SCHEMA_FILES)

    install_schemas(destination, base_url=mirror.base_url)
    (destination / "2.3" / "seda-2.3-main.xsd").write_text("modifié")
    (destination / "w3c" / "xml.xsd").unlink()

    problems = check_schemas(destination)
    assert len(problems) == 2
    assert any("Empreinte incorrecte" in problem and "seda-2.3-main.xsd" in problem for problem in problems)
    assert any("Fichier manquant" in problem and "xml.xsd" in problem for problem in problems)
