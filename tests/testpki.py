"""A test PKI with timestamping, OCSP and CRL responders on 127.0.0.1, no network: certomancer's Animator.

The PKI is declared in tests/parapheur/pki/socle-test-pki.yml. Its keys are generated into a temporary
folder at start (RSA-2048, a fraction of a second each), so that no private key is kept in the repository.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from certomancer.integrations.animator import Animator, AnimatorArchStore
from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig, PKIArchitecture
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

CONFIG = Path(__file__).resolve().parent / "parapheur" / "pki" / "socle-test-pki.yml"
ARCH = ArchLabel("socle")
KEY_LABELS = ("root", "interm", "ocsp", "tsa", "signer", "revoked", "expired")
PKCS12_PASSPHRASE = b"pki-de-test"


@dataclass(frozen=True)
class TestPki:
    """The running PKI: its certificates, the signers' PKCS#12 files and the responders' base URL."""

    __test__ = False  # not a test class, despite its name

    base_url: str
    arch: PKIArchitecture

    @property
    def tsa_url(self) -> str:
        return f"{self.base_url}/{ARCH}/tsa/tsa"

    def certificate_der(self, label: str) -> bytes:
        return bytes(self.arch.get_cert(CertLabel(label)).dump())

    @property
    def root_der(self) -> bytes:
        return self.certificate_der("root")

    def pkcs12(self, label: str) -> bytes:
        """The signer's key, certificate and chain (intermediate and root CA), as a PKCS#12 file."""
        return bytes(self.arch.package_pkcs12(CertLabel(label), password=PKCS12_PASSPHRASE))


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a responder that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/tsa"


@contextlib.contextmanager
def running_pki() -> Iterator[TestPki]:
    with tempfile.TemporaryDirectory(prefix="socle-pki-") as key_dir:
        _generate_keys(Path(key_dir), KEY_LABELS)
        app = _LateApp()
        # Bound before the configuration is read: certificates carry the responders' URLs, port included.
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
        base_url = f"http://127.0.0.1:{server.server_port}"
        config = CertomancerConfig.from_file(str(CONFIG), key_search_dir=key_dir, external_url_prefix=base_url)
        app.target = Animator(AnimatorArchStore(config.pki_archs), with_web_ui=False)
        with _serving(server):
            yield TestPki(base_url=base_url, arch=config.get_pki_arch(ARCH))


def _generate_keys(folder: Path, labels: Iterable[str]) -> None:
    for label in labels:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        (folder / f"{label}.key.pem").write_bytes(pem)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line per OCSP or timestamp request would drown the test output


class _LateApp:
    """WSGI app whose target is set once the server's port, hence the PKI's URLs, are known."""

    target: Callable[..., Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        assert self.target is not None
        return self.target(environ, start_response)


@contextlib.contextmanager
def _serving(server: BaseWSGIServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, name="test-pki", daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
