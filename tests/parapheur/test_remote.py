"""Client-side signing: prepare on the server, sign on a real PKCS#11 token (SoftHSM2), finish on the server.

Results are checked by poppler's pdfsig and by pyHanko (validation_report, verify_pdf). The agent's client
(card_client and the `sign-with-card` command) signs real folders of the kit served for real (uvicorn on
127.0.0.1): the parapheur's own prepare / finish endpoints, its database and its stored documents. Only the
hostile server, which asks the card to sign something else, is a stand-in.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from live_server import served
from parapheur_kit import desk, folder_of, ok, sent_folder
from softhsm import SoftHsm, SoftToken, softhsm
from sqlalchemy import select
from testpki import PKCS12_PASSPHRASE, TestPki, closed_port_url

from parapheur import cli, remote
from parapheur.card_client import CardSigningError, sign_folder_with_card
from parapheur.models import PreparedSignature
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
from socle.db import new_session

from conftest import Kit, make_pdf, pdfsig

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
    token = hsm.ec  # it holds two keys: the label names the signature one
    value, certificate = remote.sign_with_token(
        prepared.data_to_sign, token.module_path, token.label, token.pin, token.key_label
    )
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

TITLE = "Délibération n° 12"


@pytest.fixture(scope="module")
def parapheur_url(app: Any) -> Iterator[str]:
    """The whole kit served for real (uvicorn on 127.0.0.1): the parapheur API's URL, as the agent is given it."""
    with served(app, "remote-card-server") as url:
        yield f"{url}/parapheur"


@dataclass(frozen=True)
class CardFolder:
    """A real folder of the kit at its signature step, the maire's, at level B-T: the maire signs it with the card."""

    kit: Kit
    api_url: str
    id: str

    def state(self) -> dict[str, Any]:
        """The folder as the server holds it now."""
        state: dict[str, Any] = folder_of(self.kit, self.id)
        return state

    def preparations(self) -> int:
        """The card preparations the server recorded for this folder."""
        with new_session() as session:
            rows = session.execute(select(PreparedSignature).where(PreparedSignature.folder_id == self.id)).scalars()
            return len(list(rows))

    def document(self, tmp_path: Path) -> Path:
        """The folder's document, downloaded from the server in its current state."""
        response = self.kit["agent"].get(f"/parapheur/folders/{self.id}/document")
        assert response.status_code == 200, response.text
        path = tmp_path / "telecharge.pdf"
        path.write_bytes(response.content)
        return path


@pytest.fixture
def card_folder(kit: Kit, parapheur_url: str, pki: TestPki, use_env: Callable[..., None]) -> CardFolder:
    use_env(SOCLE_TSA_URL=pki.tsa_url)  # the server timestamps the card's B-T signature when it finishes it
    desk(kit, "Secrétariat", ["agent"])  # the agent deposits the folder
    maire = desk(kit, "Maire", ["maire"], "Maire")
    kind = {"name": "Délibérations", "signature_format": "pades", "level": "B-T"}
    type_id = ok(kit["admin"].post("/parapheur/types", json=kind), 201)["id"]
    subtype = {"name": "Délibération", "circuit": [{"kind": "signature", "desk_ids": [maire]}]}
    subtype_id = ok(kit["admin"].post(f"/parapheur/types/{type_id}/subtypes", json=subtype), 201)["id"]
    folder = sent_folder(kit, subtype_id, title=TITLE)
    assert (folder["current_step"], folder["signature_level"]) == (0, "B-T")
    return CardFolder(kit, parapheur_url, folder["id"])


def assert_signed_with_the_card(folder: CardFolder, pki: TestPki, tmp_path: Path) -> None:
    """The server holds the folder signed, once, by the maire, and serves a PDF signed with the card's key."""
    state = folder.state()
    assert (state["status"], state["current_step"], state["title"]) == ("completed", None, TITLE)
    [act] = [act for act in state["steps"][0]["acts"] if act["action"] == "signature"]
    assert (act["username"], act["comment"]) == ("maire", "Signature par carte (poste de l'agent)")
    assert folder.preparations() == 1
    signed = folder.document(tmp_path)
    assert_valid(signed, pki, "B-T")
    # The card's certificate (the test PKI's, trusted), not the maire's self-signed key kept by the server.
    [report] = validation_report(signed, [pki.root_der])
    assert report.signer_name == "Camille Martin" and report.timestamp_time is not None


def assert_untouched(folder: CardFolder) -> None:
    state = folder.state()
    assert (state["status"], state["current_step"]) == ("in_progress", 0)
    assert [act for act in state["steps"][0]["acts"] if act["action"] == "signature"] == []


def test_client_signs_a_folder_with_the_card(
    hsm: SoftHsm, card_folder: CardFolder, pki: TestPki, tmp_path: Path
) -> None:
    token = hsm.signer
    folder = sign_folder_with_card(
        card_folder.api_url, card_folder.kit.tokens["maire"], card_folder.id, token.module_path, token.label, token.pin
    )

    assert (folder["id"], folder["status"], folder["title"]) == (card_folder.id, "completed", TITLE)
    assert_signed_with_the_card(card_folder, pki, tmp_path)


@dataclass
class HostileParapheur:
    """A server that asks the card to sign something else than a document's signed attributes.

    The one stand-in of this file, on purpose: the real parapheur never does this, and the point is that the
    agent's client refuses it whatever the server says."""

    finished: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/folders/{folder_id}/signature/prepare")
        def prepare_endpoint(folder_id: str, body: dict[str, Any]) -> dict[str, Any]:
            data = base64.b64encode(b"virement de 10 000 euros").decode()
            return {"id": "p-1", "data_to_sign": data, "digest_algorithm": "sha256"}

        @app.post("/folders/{folder_id}/signature/finish")
        def finish_endpoint(folder_id: str, body: dict[str, Any]) -> dict[str, Any]:
            self.finished.append(body)
            return {"id": folder_id, "status": "signed"}

        return app


def test_client_refuses_to_sign_other_data(hsm: SoftHsm) -> None:
    hostile = HostileParapheur()
    token = hsm.signer
    refused = pytest.raises(CardSigningError, match="pas une signature de document : refusé")
    with served(hostile.app(), "hostile-parapheur") as url, refused:
        sign_folder_with_card(url, "jeton-api", "d-1", token.module_path, token.label, token.pin)
    assert hostile.finished == []  # no signature value ever left the card


def test_client_reports_the_servers_refusal(hsm: SoftHsm, card_folder: CardFolder) -> None:
    token = hsm.signer
    kit = card_folder.kit
    unknown = "00000000-0000-0000-0000-000000000000"
    refused = "^Le parapheur a refusé la préparation de la signature : "
    with pytest.raises(CardSigningError, match=rf"{refused}dossier {unknown} introuvable \(404\)$"):
        sign_folder_with_card(
            card_folder.api_url, kit.tokens["maire"], unknown, token.module_path, token.label, token.pin
        )
    # The agent sees the folder but holds no desk of its signature step: the real server says no.
    with pytest.raises(CardSigningError, match=rf"{refused}vous n'êtes membre d'aucun bureau attendu .* \(403\)$"):
        sign_folder_with_card(
            card_folder.api_url, kit.tokens["agent"], card_folder.id, token.module_path, token.label, token.pin
        )
    assert card_folder.preparations() == 0
    assert_untouched(card_folder)


def test_client_with_a_wrong_pin_calls_nobody(hsm: SoftHsm, card_folder: CardFolder) -> None:
    token = hsm.signer
    with pytest.raises(CardSigningError, match="Code PIN incorrect"):
        sign_folder_with_card(
            card_folder.api_url, card_folder.kit.tokens["maire"], card_folder.id, token.module_path, token.label,
            "pin-faux",
        )  # fmt: skip
    assert card_folder.preparations() == 0  # the server was never asked to prepare
    assert_untouched(card_folder)


def test_client_with_an_injected_http_client(
    hsm: SoftHsm, card_folder: CardFolder, pki: TestPki, tmp_path: Path
) -> None:
    token = hsm.signer
    with httpx.Client(timeout=30) as client:
        sign_folder_with_card(
            card_folder.api_url, card_folder.kit.tokens["maire"], card_folder.id, token.module_path, token.label,
            token.pin, client=client,
        )  # fmt: skip
        assert not client.is_closed  # the caller's client stays the caller's
    assert_signed_with_the_card(card_folder, pki, tmp_path)


# --------------------------------------------------------------------------- the command


def sign_with_card(token: SoftToken, url: str, folder_id: str, env: dict[str, str | None]) -> Any:
    args = ["sign-with-card", "--api", url, "--folder", folder_id, "--module", token.module_path]
    return CliRunner().invoke(cli.group, [*args, "--token-label", token.label], env=env)


def test_command_signs_the_folder(hsm: SoftHsm, card_folder: CardFolder, pki: TestPki, tmp_path: Path) -> None:
    env = {"SOCLE_API_TOKEN": card_folder.kit.tokens["maire"], "SOCLE_CARD_PIN": hsm.signer.pin}
    result = sign_with_card(hsm.signer, card_folder.api_url, card_folder.id, env)

    assert result.exit_code == 0, result.output
    assert f"Dossier « {TITLE} » signé avec la carte « Carte agent » (état : completed)" in result.output
    assert hsm.signer.pin not in result.output
    assert_signed_with_the_card(card_folder, pki, tmp_path)


def test_command_errors_are_plain_french(hsm: SoftHsm, card_folder: CardFolder) -> None:
    token, url, folder_id = hsm.signer, card_folder.api_url, card_folder.id
    maire = card_folder.kit.tokens["maire"]
    wrong_pin = sign_with_card(token, url, folder_id, {"SOCLE_API_TOKEN": maire, "SOCLE_CARD_PIN": "pin-faux"})
    assert wrong_pin.exit_code == 1 and "Erreur : Code PIN incorrect" in wrong_pin.output
    assert "Traceback" not in wrong_pin.output and "pin-faux" not in wrong_pin.output

    no_token = sign_with_card(token, url, folder_id, {"SOCLE_API_TOKEN": None, "SOCLE_CARD_PIN": token.pin})
    assert no_token.exit_code == 1 and "SOCLE_API_TOKEN" in no_token.output

    bad_token = sign_with_card(token, url, folder_id, {"SOCLE_API_TOKEN": "jeton-faux", "SOCLE_CARD_PIN": token.pin})
    assert bad_token.exit_code == 1 and "jeton-faux" not in bad_token.output
    assert (
        "Erreur : Le parapheur a refusé la préparation de la signature : jeton d'accès invalide ou révoqué (401)"
    ) in bad_token.output

    env = {"SOCLE_API_TOKEN": maire, "SOCLE_CARD_PIN": token.pin}
    down = sign_with_card(token, closed_port_url(), folder_id, env)
    assert down.exit_code == 1 and "Le parapheur est injoignable" in down.output
    assert card_folder.preparations() == 0
    assert_untouched(card_folder)
