"""Real PKCS#11 tokens for the tests: SoftHSM2 (Debian package softhsm2) in a temporary folder.

A PKCS#11 module reads its configuration once per process, when it is first initialised, and does not see
tokens created afterwards. So every token the tests need is created together, on first use, in one
process-wide folder (SOFTHSM2_CONF points to its configuration), before anything loads the module.

The "agent" token holds the test PKI's signer key (RSA) and certificate, as a smart card would, with the
intermediate and root certificates of its chain; the "EC" token two ECDSA P-256 keys, « signature » and
« authentification », each with its own self-signed certificate, as an agent's card holds a signature key and
an authentication key (SoftHSM, like many cards, only signs ECDSA over a digest computed by the caller): it is
opened with a key label; the "vide" token holds nothing.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from testpki import PKCS12_PASSPHRASE, TestPki

from conftest import missing

MODULE_CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so", "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so")
SIGNER_TOKEN = "Carte agent"
EC_TOKEN = "Carte EC"
EMPTY_TOKEN = "Carte vide"
KEY_LABEL = "signature"
AUTHENTICATION_KEY_LABEL = "authentification"
PIN = "pin-9F3c"
SO_PIN = "87654321"


@dataclass(frozen=True)
class SoftToken:
    """What a test needs to open a token: the module, the token's label, its PIN and the key's label."""

    module_path: str
    label: str
    pin: str
    key_label: str | None


@dataclass(frozen=True)
class SoftHsm:
    signer: SoftToken
    ec: SoftToken
    ec_certificate: bytes  # self-signed: its own trust root
    ec_authentication: SoftToken  # the same token, its other key
    ec_authentication_certificate: bytes  # self-signed too, another key and subject
    empty: SoftToken


_HSM: SoftHsm | None = None


def softhsm(pki: TestPki) -> SoftHsm:
    """The process's SoftHSM2 tokens, created on first call (skipped, or failed under CI, if not installed)."""
    global _HSM
    if _HSM is None:
        _HSM = _create(pki)
    return _HSM


def _module_path() -> str:
    for candidate in MODULE_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    missing("SoftHSM2 n'est pas installé (paquet Debian softhsm2) : lancez « make system-deps »")
    raise AssertionError("unreachable")


def _create(pki: TestPki) -> SoftHsm:
    module = _module_path()
    if shutil.which("softhsm2-util") is None or shutil.which("pkcs11-tool") is None:
        missing("softhsm2-util ou pkcs11-tool absent (paquets Debian softhsm2, opensc) : lancez « make system-deps »")
    folder = Path(tempfile.mkdtemp(prefix="socle-softhsm-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "tokens").mkdir()
    config = folder / "softhsm2.conf"
    config.write_text(
        f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    os.environ["SOFTHSM2_CONF"] = str(config)
    for label in (SIGNER_TOKEN, EC_TOKEN, EMPTY_TOKEN):
        _run("softhsm2-util", "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN)
    key, certificate, chain = pkcs12.load_key_and_certificates(pki.pkcs12("signer"), PKCS12_PASSPHRASE)
    assert key is not None and certificate is not None
    _import_identity(module, folder, SIGNER_TOKEN, key, [certificate, *chain])
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_certificate = _self_signed(ec_key, "Dominique Dupont")
    _import_identity(module, folder, EC_TOKEN, ec_key, [ec_certificate])
    authentication_key = ec.generate_private_key(ec.SECP256R1())
    authentication_certificate = _self_signed(authentication_key, "Dominique Dupont (authentification)")
    _import_identity(
        module, folder, EC_TOKEN, authentication_key, [authentication_certificate], AUTHENTICATION_KEY_LABEL, "02"
    )
    return SoftHsm(
        signer=SoftToken(module, SIGNER_TOKEN, PIN, KEY_LABEL),
        ec=SoftToken(module, EC_TOKEN, PIN, KEY_LABEL),
        ec_certificate=ec_certificate.public_bytes(serialization.Encoding.DER),
        ec_authentication=SoftToken(module, EC_TOKEN, PIN, AUTHENTICATION_KEY_LABEL),
        ec_authentication_certificate=authentication_certificate.public_bytes(serialization.Encoding.DER),
        empty=SoftToken(module, EMPTY_TOKEN, PIN, None),
    )


def _import_identity(
    module: str,
    folder: Path,
    token: str,
    key: PrivateKeyTypes,
    certificates: list[x509.Certificate],
    key_label: str = KEY_LABEL,
    key_id: str = "01",
) -> None:
    """The key, its certificate (same CKA_ID and label) and the CA certificates that follow, written on the token."""
    key_file = folder / "key.pem"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    _run(
        "softhsm2-util", "--import", str(key_file), "--token", token, "--label", key_label, "--id", key_id,
        "--pin", PIN,
    )  # fmt: skip
    key_file.unlink()  # the token holds the key now, as a card would
    labels = [(key_label, key_id), *((f"ac-{n}", f"1{n}") for n in range(len(certificates) - 1))]
    for (label, object_id), cert in zip(labels, certificates, strict=True):
        der = folder / f"{object_id}.der"
        der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        _run(
            "pkcs11-tool", "--module", module, "--token-label", token, "--login", "--pin", PIN,
            "--write-object", str(der), "--type", "cert", "--id", object_id, "--label", label,
        )  # fmt: skip


def _self_signed(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _run(*command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=os.environ.copy())
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} a échoué : {result.stdout}{result.stderr}")
