"""PKCS#11 identities on a real token (SoftHSM2): PAdES signatures checked by pdfsig and pyHanko, bad input."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from pkcs11.exceptions import PinIncorrect
from pyhanko.pdf_utils.reader import PdfFileReader
from softhsm import SoftHsm, SoftToken, softhsm
from testpki import TestPki

from parapheur import identities
from parapheur.pades import (
    IdentityError,
    SignatureRequest,
    SigningError,
    TrustServices,
    sign_pdf,
    validation_report,
    verify_pdf,
)
from parapheur.tokens import TokenIdentity, open_pkcs11_identity
from socle.auth import get_tenant
from socle.db import transaction

from conftest import Kit, make_pdf, pdfsig

VALID = "Signature is Valid"


@pytest.fixture(scope="module")
def hsm(pki: TestPki) -> SoftHsm:
    return softhsm(pki)


@pytest.fixture
def card(hsm: SoftHsm) -> Iterator[TokenIdentity]:
    token = hsm.signer
    with open_pkcs11_identity(token.module_path, token.label, token.pin) as identity:
        yield identity


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "acte.pdf"
    path.write_bytes(make_pdf())
    return path


def test_identity_is_the_cards_certificate_and_chain(card: TokenIdentity, pki: TestPki) -> None:
    assert card.subject_name == "Camille Martin"
    assert card.certificate_der == pki.certificate_der("signer")
    assert sorted(card.chain_der) == sorted([pki.certificate_der("interm"), pki.root_der])


@pytest.mark.parametrize("level", ["B-B", "B-T"])
def test_pades_signature_with_the_token_is_valid(level: str, card: TokenIdentity, pki: TestPki, source: Path) -> None:
    signed = source.with_name("signe.pdf")
    request = SignatureRequest("Camille Martin", "Délibération n° 12", level=level, role="Maire")  # type: ignore[arg-type]
    sign_pdf(source, signed, card, request, TrustServices(tsa_url=pki.tsa_url))

    assert VALID in pdfsig(signed)
    [report] = validation_report(signed, [pki.root_der])
    assert report.valid and report.chain_trusted and report.covers_whole_document
    assert (report.level, report.signer_name) == (level, "Camille Martin")
    [check] = verify_pdf(signed, [pki.root_der])
    assert check.valid


def test_ecdsa_key_signs_over_a_digest_computed_here(hsm: SoftHsm, source: Path) -> None:
    # SoftHSM, like many cards, has CKM_ECDSA but no CKM_ECDSA_SHA256: the raw mechanism must be chosen.
    token = hsm.ec
    signed = source.with_name("signe.pdf")
    with open_pkcs11_identity(token.module_path, token.label, token.pin, key_label=token.key_label) as identity:
        sign_pdf(source, signed, identity, SignatureRequest("Dominique Dupont", "Visa"))

    assert VALID in pdfsig(signed)
    [report] = validation_report(signed, [hsm.ec_certificate])
    assert report.valid and report.signer_name == "Dominique Dupont"


def signing_certificate(path: Path) -> bytes:
    """The certificate the PDF's only signature names as its signer's (pyHanko's reading of the CMS)."""
    return carried_certificates(path)[0]


def carried_certificates(path: Path) -> list[bytes]:
    """The signer's certificate, then every other certificate the PDF's only signature carries."""
    with path.open("rb") as stream:
        [signature] = PdfFileReader(stream).embedded_signatures
        signer = bytes(signature.signer_cert.dump())
        carried = [bytes(choice.chosen.dump()) for choice in signature.signed_data["certificates"]]
        return [signer, *(cert for cert in carried if cert != signer)]


def test_key_label_selects_the_key(hsm: SoftHsm, source: Path) -> None:
    # The EC card holds two signing keys, each with its own certificate: the label alone says which one signs.
    expected = {
        hsm.ec.key_label: hsm.ec_certificate,
        hsm.ec_authentication.key_label: hsm.ec_authentication_certificate,
    }
    assert len(set(expected.values())) == 2 and hsm.ec.label == hsm.ec_authentication.label
    signed_with: dict[str | None, bytes] = {}
    for token in (hsm.ec, hsm.ec_authentication):
        signed = source.with_name(f"signe-{token.key_label}.pdf")
        with open_pkcs11_identity(token.module_path, token.label, token.pin, key_label=token.key_label) as identity:
            assert identity.certificate_der == expected[token.key_label]
            sign_pdf(source, signed, identity, SignatureRequest("Dominique Dupont", "Visa", visible=False))
        assert VALID in pdfsig(signed)
        signed_with[token.key_label] = signing_certificate(signed)
        # Only the signer's certificate travels: not the one of the card's other key.
        assert carried_certificates(signed) == [expected[token.key_label]]
        # Made by the key of that certificate: it verifies with that certificate as the only trust root.
        [report] = validation_report(signed, [expected[token.key_label]])
        assert report.valid and report.chain_trusted
    assert signed_with == expected


def test_a_token_with_several_keys_asks_for_the_key_label(hsm: SoftHsm) -> None:
    token = hsm.ec
    with pytest.raises(
        IdentityError,
        match=f"^Le jeton « {token.label} » contient plusieurs clés de signature : précisez le libellé de la clé\\.$",
    ):
        open_pkcs11_identity(token.module_path, token.label, token.pin)
    # The refused opening logged out: the token opens next, its key named.
    open_pkcs11_identity(token.module_path, token.label, token.pin, key_label=token.key_label).close()
    assert isinstance(_wrong_pin_cause(token), PinIncorrect)


def test_wrong_pin_is_refused_clearly(hsm: SoftHsm) -> None:
    token = hsm.signer
    with pytest.raises(IdentityError, match=f"^Code PIN incorrect pour le jeton « {token.label} »") as caught:
        open_pkcs11_identity(token.module_path, token.label, "pin-faux")
    assert "pin-faux" not in str(caught.value)
    # The card itself said no: no login lingers from the other tests' identities, all closed.
    assert isinstance(caught.value.__cause__, PinIncorrect)
    # One mistake neither locks the card nor leaves a session behind: the right PIN works next.
    open_pkcs11_identity(token.module_path, token.label, token.pin).close()


def test_empty_pin_is_refused(hsm: SoftHsm) -> None:
    with pytest.raises(IdentityError, match="PIN ne peut pas être vide"):
        open_pkcs11_identity(hsm.signer.module_path, hsm.signer.label, "")


def test_unknown_token_label(hsm: SoftHsm) -> None:
    with pytest.raises(IdentityError, match=r"^Jeton « Carte inconnue » introuvable"):
        open_pkcs11_identity(hsm.signer.module_path, "Carte inconnue", hsm.signer.pin)


def test_token_without_key(hsm: SoftHsm) -> None:
    token = hsm.empty
    with pytest.raises(IdentityError, match=f"^Aucune clé de signature sur le jeton « {token.label} »"):
        open_pkcs11_identity(token.module_path, token.label, token.pin)


def test_unknown_key_label(hsm: SoftHsm) -> None:
    token = hsm.signer
    with pytest.raises(IdentityError, match=r"^Aucune clé de signature « autre » sur le jeton"):
        open_pkcs11_identity(token.module_path, token.label, token.pin, key_label="autre")
    open_pkcs11_identity(token.module_path, token.label, token.pin).close()  # the failed opening logged out


def test_missing_module(hsm: SoftHsm) -> None:
    with pytest.raises(IdentityError, match=r"module PKCS#11 « /nulle/part/pkcs11\.so » est introuvable"):
        open_pkcs11_identity("/nulle/part/pkcs11.so", hsm.signer.label, hsm.signer.pin)


def test_identities_on_one_token_share_its_login(card: TokenIdentity, hsm: SoftHsm, source: Path, pki: TestPki) -> None:
    # PKCS#11 logs in per process and token (an HSM holding several tenants' seals): a second opening joins
    # the login, and must still be refused with a wrong PIN, which the token itself can no longer check.
    token = hsm.signer
    with pytest.raises(IdentityError, match="Code PIN incorrect"):
        open_pkcs11_identity(token.module_path, token.label, "pin-faux")
    second = open_pkcs11_identity(token.module_path, token.label, token.pin, key_label=token.key_label)
    second.close()  # logs nobody out: the first identity still signs
    sign_pdf(source, source, card, SignatureRequest("Camille Martin", "Visa"))
    assert verify_pdf(source, [pki.root_der])[0].valid


def test_closed_identity_no_longer_signs(hsm: SoftHsm, source: Path) -> None:
    token = hsm.signer
    identity = open_pkcs11_identity(token.module_path, token.label, token.pin)
    identity.close()
    identity.close()  # idempotent
    with pytest.raises(SigningError, match="a refusé de signer"):
        identity.sign_raw(b"donnees")


def test_pin_never_in_repr_nor_logs(hsm: SoftHsm, source: Path, caplog: pytest.LogCaptureFixture) -> None:
    token = hsm.signer
    with caplog.at_level(logging.DEBUG):
        with open_pkcs11_identity(token.module_path, token.label, token.pin) as identity:
            sign_pdf(source, source.with_name("signe.pdf"), identity, SignatureRequest("Camille Martin", "Visa"))
            shown = f"{identity!r} {identity} {vars(identity)} {vars(identity._signer)}"
        with pytest.raises(IdentityError) as caught:
            open_pkcs11_identity(token.module_path, token.label, "pin-faux")
    assert "Carte agent" in shown
    assert token.pin not in shown and token.pin not in caplog.text
    assert "pin-faux" not in caplog.text and "pin-faux" not in repr(caught.value)


def _wrong_pin_cause(token: SoftToken) -> BaseException | None:
    """Who refused a wrong PIN: the card itself (PinIncorrect) only when no login of this process lingers."""
    with pytest.raises(IdentityError) as caught:
        open_pkcs11_identity(token.module_path, token.label, "pin-faux")
    return caught.value.__cause__


def test_the_identity_cache_logs_out_what_it_drops(hsm: SoftHsm, kit: Kit) -> None:
    token = hsm.signer
    with transaction() as session:
        tenant = get_tenant(session, kit.slug)
        row = identities.import_seal_pkcs11(
            session, tenant, "HSM", module_path=token.module_path, token_label=token.label, pin=token.pin
        )
        first = identities.load_row(row)
        assert identities.load_row(row) is first  # cached: one login for every signature
        # Imported again (a new PIN, another key…): the next load opens it again and closes the stale one.
        row = identities.import_seal_pkcs11(
            session, tenant, "HSM", module_path=token.module_path, token_label=token.label, pin=token.pin
        )
        second = identities.load_row(row)
        assert second is not first
        with pytest.raises(SigningError):
            first.sign_raw(b"donnees")
        identities.forget(row)
    with pytest.raises(SigningError):
        second.sign_raw(b"donnees")
    assert isinstance(_wrong_pin_cause(token), PinIncorrect)
