"""Transport of the SAE connectors: TLS with a client certificate (as Vitam requires), and the simulate command."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sae_helpers import Simulator, add_connector, ask_delivery, delivery_of, running, store_sip

from interop.simulators import vitam
from interop.simulators.common import PlatformState

from conftest import ROOT, Kit, run_jobs


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if subject == "127.0.0.1" else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if subject == "127.0.0.1":
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small CA, the simulator's server certificate and a client certificate (the application's)."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("AC de test socle", ca_key, None, ca_key)
    files = {
        "ca": (ca.public_bytes(serialization.Encoding.PEM)),
        "server": _certificate("127.0.0.1", server_key, ca, ca_key).public_bytes(serialization.Encoding.PEM),
        "server_key": _pem(server_key),
        "client": _certificate("application-socle", client_key, ca, ca_key).public_bytes(serialization.Encoding.PEM),
        "client_key": _pem(client_key),
        "ca_key": _pem(ca_key),
    }
    paths = {}
    for name, data in files.items():
        paths[name] = folder / f"{name}.pem"
        paths[name].write_bytes(data)
    return paths


@pytest.fixture
def vitam_tls(tls_files: dict[str, Path]) -> Iterator[Simulator]:
    state = PlatformState()
    tls = {
        "certfile": str(tls_files["server"]),
        "keyfile": str(tls_files["server_key"]),
        "ca_certs": str(tls_files["ca"]),
    }
    yield from running(vitam.create_app(state), state, **tls)


def test_vitam_over_tls_with_a_client_certificate(kit: Kit, vitam_tls: Simulator, tls_files: dict[str, Path]) -> None:
    assert vitam_tls.url.startswith("https://")
    config = {
        "url": vitam_tls.url,
        "tenant": 2,
        "timeout": 5,
        "ca_file": str(tls_files["ca"]),
        "client_certificate": tls_files["client"].read_text(),
        "client_key": tls_files["client_key"].read_text(),
    }
    add_connector(kit, "vitam", "vitam", config)
    result = kit["admin"].post("/interop/connectors/vitam/test").json()
    assert result["ok"], result

    identifier = f"{kit.slug}-tls"
    ask_delivery(kit, store_sip(identifier), "vitam", "k1", None)
    run_jobs()
    assert delivery_of(kit.tenant_id, "k1").status == "done" and vitam_tls.sends(identifier) == 1

    # Without the client certificate the platform closes the handshake; without the CA, the server is not trusted.
    add_connector(kit, "sans-certificat", "vitam", {k: v for k, v in config.items() if not k.startswith("client")})
    anonymous = kit["admin"].post("/interop/connectors/sans-certificat/test").json()
    assert not anonymous["ok"] and "injoignable" in anonymous["message"], anonymous
    add_connector(kit, "sans-ac", "vitam", {k: v for k, v in config.items() if k != "ca_file"})
    untrusted = kit["admin"].post("/interop/connectors/sans-ac/test").json()
    assert not untrusted["ok"] and "certificat de la plateforme refusé" in untrusted["message"], untrusted
    assert "self-signed certificate" in untrusted["message"], untrusted


@pytest.fixture
def vitam_other_host(tls_files: dict[str, Path], tmp_path: Path) -> Iterator[Simulator]:
    """The simulator presenting a certificate the connector's CA signed, but issued for « autre.example »."""
    ca = x509.load_pem_x509_certificate(tls_files["ca"].read_bytes())
    ca_key = serialization.load_pem_private_key(tls_files["ca_key"].read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "autre.example")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("autre.example")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    (tmp_path / "autre.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "autre.key").write_bytes(_pem(key))
    state = PlatformState()
    tls = {"certfile": str(tmp_path / "autre.pem"), "keyfile": str(tmp_path / "autre.key")}
    yield from running(vitam.create_app(state), state, **tls)


def test_a_certificate_for_another_host_is_never_sent_to_and_stated(
    kit: Kit, vitam_other_host: Simulator, tls_files: dict[str, Path]
) -> None:
    config = {
        "url": vitam_other_host.url,  # https://127.0.0.1:…, while the certificate names autre.example
        "tenant": 2,
        "timeout": 5,
        "ca_file": str(tls_files["ca"]),
        "client_certificate": tls_files["client"].read_text(),
        "client_key": tls_files["client_key"].read_text(),
        "send_retry_policy": "1s X 1",
    }
    add_connector(kit, "vitam", "vitam", config)
    identifier = f"{kit.slug}-autre-hote"
    ask_delivery(kit, store_sip(identifier), "vitam", "k1", None)
    run_jobs()
    delivery = delivery_of(kit.tenant_id, "k1")
    # Refused at once (retrying would not change the certificate), the TLS verdict kept in French and in full.
    assert delivery.status == "failed", (delivery.status, delivery.error)
    error = delivery.error or ""
    assert "certificat de la plateforme refusé" in error and "vérifier ca_file ou l'adresse" in error, error
    assert "127.0.0.1" in error and "mismatch" in error, error  # the name the certificate does not carry
    assert vitam_other_host.sends(identifier) == 0 and vitam_other_host.state.requests == []
    shown = kit["agent"].get(f"/interop/deliveries/{delivery.id}").json()
    assert shown["status"] == delivery.status and "mismatch" in shown["error"], shown


def test_an_unreadable_client_key_is_reported(kit: Kit, vitam_tls: Simulator, tls_files: dict[str, Path]) -> None:
    config = {
        "url": vitam_tls.url,
        "tenant": 2,
        "ca_file": str(tls_files["ca"]),
        "client_certificate": tls_files["client"].read_text(),
        "client_key": "pas une clé",
    }
    add_connector(kit, "vitam", "vitam", config)
    result = kit["admin"].post("/interop/connectors/vitam/test").json()
    assert not result["ok"] and "certificat client ou clé illisible" in result["message"], result


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("platform", ["vitam", "asalae"])
def test_the_simulate_command_serves_the_platform_with_its_knobs(platform: str) -> None:
    port = _free_port()
    command = [str(Path(sys.executable).with_name("socle")), "interop", "simulate", platform, "--port", str(port)]
    process = subprocess.Popen([*command, "--fault", "send=500"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                state = httpx.get(f"{base}/_simulateur", timeout=1).json()
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "le simulateur n'a pas démarré"
                time.sleep(0.1)
        assert state["scenario"]["faults"] == {"send": ["500"]}
        if platform == "vitam":
            answer = httpx.post(
                f"{base}/ingest-external/v1/ingests",
                content=b"x",
                headers={"X-Tenant-Id": "0", "X-Context-Id": "DEFAULT_WORKFLOW", "X-Action": "RESUME"},
            )
        else:
            files = {"seda_message": ("m.xml", b"<x/>"), "attachments": ("p.zip", b"x")}
            answer = httpx.post(f"{base}/sedaMessages", files=files, auth=("socle", "socle"))
        assert answer.status_code == 500  # the knob given on the command line
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=10)
    assert f"Simulateur {platform} sur http://127.0.0.1:{port}" in output and "jamais de production" in output


def test_the_simulate_command_refuses_an_unknown_fault() -> None:
    command = [str(Path(sys.executable).with_name("socle")), "interop", "simulate", "vitam", "--fault", "send=panne"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "panne inconnue : panne" in result.stderr


def test_the_simulate_command_serves_https_and_requires_a_client_certificate(tls_files: dict[str, Path]) -> None:
    port = _free_port()
    command = [str(Path(sys.executable).with_name("socle")), "interop", "simulate", "vitam", "--port", str(port)]
    tls = ["--tls-cert", str(tls_files["server"]), "--tls-key", str(tls_files["server_key"])]
    process = subprocess.Popen([*command, *tls, "--client-ca", str(tls_files["ca"])], cwd=ROOT, stdout=subprocess.PIPE)
    trust = ssl.create_default_context(cafile=tls_files["ca"])
    mutual = ssl.create_default_context(cafile=tls_files["ca"])
    mutual.load_cert_chain(tls_files["client"], tls_files["client_key"])
    client = httpx.Client(verify=mutual)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status = client.get(f"https://127.0.0.1:{port}/ingest-external/v1/status", timeout=1)
                break
            except httpx.TransportError:  # not listening yet, or dropped while starting
                assert process.poll() is None and time.monotonic() < deadline, "le simulateur n'a pas démarré"
                time.sleep(0.1)
        assert status.status_code == 204
        with pytest.raises(httpx.TransportError):  # no client certificate: the handshake is refused
            httpx.get(f"https://127.0.0.1:{port}/ingest-external/v1/status", verify=trust, timeout=5)
    finally:
        client.close()
        process.terminate()
        process.communicate(timeout=10)
