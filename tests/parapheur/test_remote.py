"""Client-side signing: prepare on the server, sign on a real PKCS#11 token (SoftHSM2), finish on the server.

Results are checked by poppler's pdfsig and by pyHanko (validation_report, verify_pdf). The agent's client
(card_client and the `sign-with-card` command) is run over real HTTP against a small server that implements
the contract's two endpoints with remote.prepare / remote.finish, until the parapheur's API wires them.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from fastapi import FastAPI, HTTPException
from softhsm import SoftHsm, SoftToken, softhsm
from testpki import PKCS12_PASSPHRASE, TestPki, closed_port_url

from parapheur import cli, remote
from parapheur.card_client import CardSigningError, sign_folder_with_card
from parapheur.pades import (
    IdentityError,
    PdfError,
    SignatureLevel,
    SignatureRequest,
    SigningError,
    SigningIdentity,
    TrustServices,
    upgrade_pdf,
    validation_report,
    verify_pdf,
)

from conftest import make_pdf, pdfsig

VALID = "Signature is Valid"


@pytest.fixture(scope="module")
def hsm(pki: TestPki) -> SoftHsm:
    return softhsm(pki)


@pytest.fixture(scope="module")
def card_certificates(hsm: SoftHsm) -> tuple[bytes, list[bytes]]:
    """What the client reads from the card and sends to prepare: its certificate and CA chain."""
    from parapheur.tokens import open_pkcs11_identity

    token = hsm.signer
    with open_pkcs11_identity(token.module_path, token.label, token.pin) as identity:
        return identity.certificate_der, identity.chain_der


@pytest.fixture(scope="module")
def services(pki: TestPki) -> TrustServices:
    return TrustServices(tsa_url=pki.tsa_url, trust_roots=(pki.root_der,), timeout=5)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "acte.pdf"
    path.write_bytes(make_pdf())
    return path


def request(level: SignatureLevel = "B-B") -> SignatureRequest:
    return SignatureRequest("Camille Martin", "Délibération n° 12", location="Mairie", level=level, role="Maire")


def prepare(
    source: Path, certificates: tuple[bytes, list[bytes]], level: SignatureLevel = "B-B"
) -> remote.PreparedSignature:
    return remote.prepare(source, source.with_name("prepare.pdf"), *certificates, request(level))


def card_signature(token: SoftToken, data: bytes) -> bytes:
    value, _ = remote.sign_with_token(data, token.module_path, token.label, token.pin)
    return value


def assert_valid(signed: Path, pki: TestPki, level: SignatureLevel, count: int = 1) -> None:
    blocks = pdfsig(signed).split("Signature #")[1:]
    assert len(blocks) == count and all(VALID in block for block in blocks)
    reports = validation_report(signed, [pki.root_der])
    assert [r.level for r in reports][-1] == level
    assert all(r.valid and r.intact and r.chain_trusted and r.covers_whole_document for r in reports)
    assert all(check.valid for check in verify_pdf(signed, [pki.root_der]))


# --------------------------------------------------------------------------- prepare / card / finish


def test_prepare_sign_with_token_finish_is_valid(
    hsm: SoftHsm, card_certificates: tuple[bytes, list[bytes]], pki: TestPki, source: Path
) -> None:
    prepared = prepare(source, card_certificates)
    assert (prepared.digest_algorithm, prepared.level) == ("sha256", "B-B")
    value, certificate = remote.sign_with_token(
        prepared.data_to_sign, hsm.signer.module_path, hsm.signer.label, hsm.signer.pin
    )
    assert certificate == pki.certificate_der("signer")
    signed = source.with_name("signe.pdf")
    remote.finish(source.with_name("prepare.pdf"), prepared.state, value, signed)

    assert_valid(signed, pki, "B-B")
    [report] = validation_report(signed, [pki.root_der])
    assert report.signer_name == "Camille Martin" and report.timestamp_time is None


def test_b_t_is_timestamped_client_side(
    hsm: SoftHsm, card_certificates: tuple[bytes, list[bytes]], pki: TestPki, services: TrustServices, source: Path
) -> None:
    prepared = prepare(source, card_certificates, "B-T")
    signed = source.with_name("signe.pdf")
    remote.finish(
        source.with_name("prepare.pdf"),
        prepared.state,
        card_signature(hsm.signer, prepared.data_to_sign),
        signed,
        services,
    )

    assert_valid(signed, pki, "B-T")
    [report] = validation_report(signed, [pki.root_der])
    assert report.timestamp_time is not None


def test_ecdsa_card(hsm: SoftHsm, source: Path) -> None:
    prepared = remote.prepare(source, source.with_name("prepare.pdf"), hsm.ec_certificate, [], request())
    value, certificate = remote.sign_with_token(prepared.data_to_sign, hsm.ec.module_path, hsm.ec.label, hsm.ec.pin)
    signed = source.with_name("signe.pdf")
    remote.finish(source.with_name("prepare.pdf"), prepared.state, value, signed)

    assert certificate == hsm.ec_certificate
    assert VALID in pdfsig(signed)
    [report] = validation_report(signed, [hsm.ec_certificate])
    assert report.valid and report.signer_name == "Dominique Dupont"


def test_long_term_levels_are_prepared_as_b_t(card_certificates: tuple[bytes, list[bytes]], source: Path) -> None:
    # B-LT and B-LTA are reached afterwards by the server (pades.upgrade_pdf): pyHanko cannot gather
    # validation data in interrupted mode.
    assert prepare(source, card_certificates, "B-LTA").level == "B-T"
    assert prepare(source, card_certificates, "B-LT").level == "B-T"


def test_b_lta_is_reached_afterwards_by_the_servers_upgrade(
    hsm: SoftHsm, card_certificates: tuple[bytes, list[bytes]], pki: TestPki, services: TrustServices, source: Path
) -> None:
    prepared = prepare(source, card_certificates, "B-LTA")
    signed = source.with_name("signe.pdf")
    value = card_signature(hsm.signer, prepared.data_to_sign)
    remote.finish(source.with_name("prepare.pdf"), prepared.state, value, signed, services)

    assert upgrade_pdf(signed, signed, "B-LTA", services) == "B-LTA"
    [report] = validation_report(signed, [pki.root_der])
    assert (report.level, report.revocation, report.valid) == ("B-LTA", "good", True)
    assert VALID in pdfsig(signed).split("Signature #")[1]


def test_a_second_client_side_signature_keeps_the_first_valid(
    hsm: SoftHsm, card_certificates: tuple[bytes, list[bytes]], pki: TestPki, source: Path
) -> None:
    signed = source.with_name("signe.pdf")
    for _ in range(2):
        prepared = prepare(source, card_certificates)
        remote.finish(
            source.with_name("prepare.pdf"), prepared.state, card_signature(hsm.signer, prepared.data_to_sign), signed
        )
        source = signed
    assert_valid(signed, pki, "B-B", count=2)
    assert [r.field_name for r in validation_report(signed, [pki.root_der])] == ["Signature1", "Signature2"]


def test_signature_value_from_another_key_is_refused(
    card_certificates: tuple[bytes, list[bytes]], pki: TestPki, source: Path
) -> None:
    prepared = prepare(source, card_certificates)
    other = SigningIdentity.from_pkcs12(pki.pkcs12("revoked"), PKCS12_PASSPHRASE)
    value = asyncio.run(other._signer.async_sign_raw(prepared.data_to_sign, "sha256"))
    signed = source.with_name("signe.pdf")

    with pytest.raises(SigningError, match="ne correspond pas au certificat du signataire"):
        remote.finish(source.with_name("prepare.pdf"), prepared.state, value, signed)
    assert not signed.exists()


def test_card_signature_over_other_data_is_refused(
    hsm: SoftHsm, card_certificates: tuple[bytes, list[bytes]], source: Path
) -> None:
    prepared = prepare(source, card_certificates)
    value = card_signature(hsm.signer, prepared.data_to_sign + b"\x00")
    with pytest.raises(SigningError, match="ne correspond pas"):
        remote.finish(source.with_name("prepare.pdf"), prepared.state, value, source.with_name("signe.pdf"))


def test_tampered_prepared_pdf_is_refused(
    hsm: SoftHsm, card_certificates: tuple[bytes, list[bytes]], source: Path
) -> None:
    prepared = prepare(source, card_certificates)
    value = card_signature(hsm.signer, prepared.data_to_sign)
    prepared_pdf = source.with_name("prepare.pdf")
    data = prepared_pdf.read_bytes()
    title = data.index(b"/Title")  # in the signed byte range: the document's own metadata
    prepared_pdf.write_bytes(data[:title] + b"/Titlf" + data[title + 6 :])
    signed = source.with_name("signe.pdf")

    with pytest.raises(SigningError, match="Le PDF préparé a été modifié"):
        remote.finish(prepared_pdf, prepared.state, value, signed)
    assert not signed.exists()


def test_prepared_pdf_of_another_preparation_is_refused(
    hsm: SoftHsm, card_certificates: tuple[bytes, list[bytes]], source: Path
) -> None:
    first = prepare(source, card_certificates)
    other_source = source.with_name("autre.pdf")
    other_source.write_bytes(make_pdf("Un autre acte"))
    prepare(other_source, card_certificates)  # overwrites prepare.pdf with the other document

    value = card_signature(hsm.signer, first.data_to_sign)
    with pytest.raises(SigningError, match="modifié"):
        remote.finish(source.with_name("prepare.pdf"), first.state, value, source.with_name("signe.pdf"))


def test_unreadable_state_is_refused(hsm: SoftHsm, card_certificates: tuple[bytes, list[bytes]], source: Path) -> None:
    prepared = prepare(source, card_certificates)
    value = card_signature(hsm.signer, prepared.data_to_sign)
    with pytest.raises(SigningError, match="illisible"):
        remote.finish(source.with_name("prepare.pdf"), b"{pas du json", value, source.with_name("signe.pdf"))


def test_b_t_with_the_timestamp_authority_down_is_retryable(
    hsm: SoftHsm, card_certificates: tuple[bytes, list[bytes]], source: Path
) -> None:
    prepared = prepare(source, card_certificates, "B-T")
    value = card_signature(hsm.signer, prepared.data_to_sign)
    signed = source.with_name("signe.pdf")

    with pytest.raises(SigningError) as caught:
        remote.finish(source.with_name("prepare.pdf"), prepared.state, value, signed, TrustServices(closed_port_url()))
    assert caught.value.retryable and "horodatage ne répond pas" in str(caught.value)
    with pytest.raises(SigningError, match="Aucune autorité d'horodatage"):
        remote.finish(source.with_name("prepare.pdf"), prepared.state, value, signed)
    assert not signed.exists()


def test_prepare_refuses_bad_certificates(pki: TestPki, source: Path) -> None:
    with pytest.raises(IdentityError, match=r"pas un certificat X\.509"):
        remote.prepare(source, source.with_name("prepare.pdf"), b"pas un certificat", [], request())
    with pytest.raises(SigningError, match="a expiré le"):
        remote.prepare(source, source.with_name("prepare.pdf"), pki.certificate_der("expired"), [], request())
    assert not source.with_name("prepare.pdf").exists()


def test_prepare_refuses_a_bad_pdf(card_certificates: tuple[bytes, list[bytes]], tmp_path: Path) -> None:
    bad = tmp_path / "acte.pdf"
    bad.write_bytes(b"ceci n'est pas un PDF")
    with pytest.raises(PdfError, match="n'est pas un PDF"):
        remote.prepare(bad, tmp_path / "prepare.pdf", *card_certificates, request())


def test_sign_with_token_wrong_pin(hsm: SoftHsm) -> None:
    with pytest.raises(IdentityError, match="Code PIN incorrect"):
        remote.sign_with_token(b"donnees", hsm.signer.module_path, hsm.signer.label, "pin-faux")


# --------------------------------------------------------------------------- the agent's client, over HTTP


@dataclass
class FakeParapheur:
    """The contract's two endpoints over real HTTP, backed by remote.prepare / remote.finish."""

    url: str
    folder: Path
    services: TrustServices
    prepared: dict[str, bytes] = field(default_factory=dict)
    tamper: bool = False  # ask the card to sign something else than signed attributes

    @property
    def signed(self) -> Path:
        return self.folder / "signe.pdf"


def fake_app(fake: FakeParapheur) -> FastAPI:
    app = FastAPI()
    source, prepared_pdf = fake.folder / "acte.pdf", fake.folder / "prepare.pdf"

    @app.post("/folders/{folder_id}/signature/prepare")
    def prepare_endpoint(folder_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if folder_id != "d-1":
            raise HTTPException(404, "Dossier introuvable.")
        chain = [base64.b64decode(der) for der in body["chain"]]
        result = remote.prepare(source, prepared_pdf, base64.b64decode(body["certificate"]), chain, request("B-T"))
        fake.prepared["p-1"] = result.state
        data = b"virement de 10 000 euros" if fake.tamper else result.data_to_sign
        return {"id": "p-1", "data_to_sign": base64.b64encode(data).decode(), "digest_algorithm": "sha256"}

    @app.post("/folders/{folder_id}/signature/finish")
    def finish_endpoint(folder_id: str, body: dict[str, Any]) -> dict[str, Any]:
        state = fake.prepared.pop(body["id"])
        remote.finish(prepared_pdf, state, base64.b64decode(body["signature"]), fake.signed, fake.services)
        return {"id": folder_id, "title": "Délibération n° 12", "status": "signed"}

    return app


@pytest.fixture
def parapheur(services: TrustServices, tmp_path: Path) -> Iterator[FakeParapheur]:
    (tmp_path / "acte.pdf").write_bytes(make_pdf())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    fake = FakeParapheur(f"http://127.0.0.1:{sock.getsockname()[1]}", tmp_path, services)
    server = uvicorn.Server(uvicorn.Config(fake_app(fake), log_level="error", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield fake
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def test_client_signs_a_folder_with_the_card(hsm: SoftHsm, parapheur: FakeParapheur, pki: TestPki) -> None:
    token = hsm.signer
    folder = sign_folder_with_card(parapheur.url, "jeton-api", "d-1", token.module_path, token.label, token.pin)

    assert folder["status"] == "signed"
    assert_valid(parapheur.signed, pki, "B-T")


def test_client_refuses_to_sign_other_data(hsm: SoftHsm, parapheur: FakeParapheur) -> None:
    parapheur.tamper = True
    token = hsm.signer
    with pytest.raises(CardSigningError, match="pas une signature de document : refusé"):
        sign_folder_with_card(parapheur.url, "jeton-api", "d-1", token.module_path, token.label, token.pin)
    assert not parapheur.signed.exists()


def test_client_reports_the_servers_refusal(hsm: SoftHsm, parapheur: FakeParapheur) -> None:
    token = hsm.signer
    with pytest.raises(CardSigningError, match=r"refusé la préparation de la signature : Dossier introuvable. \(404\)"):
        sign_folder_with_card(parapheur.url, "jeton-api", "d-404", token.module_path, token.label, token.pin)


def test_client_with_a_wrong_pin_calls_nobody(hsm: SoftHsm, parapheur: FakeParapheur) -> None:
    token = hsm.signer
    with pytest.raises(CardSigningError, match="Code PIN incorrect"):
        sign_folder_with_card(parapheur.url, "jeton-api", "d-1", token.module_path, token.label, "pin-faux")
    assert not parapheur.prepared


def test_client_with_an_injected_http_client(hsm: SoftHsm, parapheur: FakeParapheur, pki: TestPki) -> None:
    token = hsm.signer
    with httpx.Client(timeout=30) as client:
        sign_folder_with_card(
            parapheur.url, "jeton-api", "d-1", token.module_path, token.label, token.pin, client=client
        )
        assert not client.is_closed  # the caller's client stays the caller's
    assert_valid(parapheur.signed, pki, "B-T")


# --------------------------------------------------------------------------- the command


def sign_with_card(token: SoftToken, url: str, env: dict[str, str | None]) -> Any:
    args = ["sign-with-card", "--api", url, "--folder", "d-1", "--module", token.module_path]
    return CliRunner().invoke(cli.group, [*args, "--token-label", token.label], env=env)


def test_command_signs_the_folder(hsm: SoftHsm, parapheur: FakeParapheur, pki: TestPki) -> None:
    env = {"SOCLE_API_TOKEN": "jeton-api", "SOCLE_CARD_PIN": hsm.signer.pin}
    result = sign_with_card(hsm.signer, parapheur.url, env)

    assert result.exit_code == 0, result.output
    assert "Dossier « Délibération n° 12 » signé avec la carte « Carte agent »" in result.output
    assert hsm.signer.pin not in result.output
    assert_valid(parapheur.signed, pki, "B-T")


def test_command_errors_are_plain_french(hsm: SoftHsm, parapheur: FakeParapheur) -> None:
    wrong_pin = sign_with_card(hsm.signer, parapheur.url, {"SOCLE_API_TOKEN": "t", "SOCLE_CARD_PIN": "pin-faux"})
    assert wrong_pin.exit_code == 1 and "Erreur : Code PIN incorrect" in wrong_pin.output
    assert "Traceback" not in wrong_pin.output and "pin-faux" not in wrong_pin.output

    no_token = sign_with_card(hsm.signer, parapheur.url, {"SOCLE_API_TOKEN": None, "SOCLE_CARD_PIN": hsm.signer.pin})
    assert no_token.exit_code == 1 and "SOCLE_API_TOKEN" in no_token.output

    down = sign_with_card(hsm.signer, closed_port_url(), {"SOCLE_API_TOKEN": "t", "SOCLE_CARD_PIN": hsm.signer.pin})
    assert down.exit_code == 1 and "Le parapheur est injoignable" in down.output
