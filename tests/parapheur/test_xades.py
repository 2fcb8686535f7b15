"""XAdES-EPES signatures of PES Aller bordereaux (Hélios), cross-checked with xmlsec1, and their validation."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, pkcs12
from cryptography.x509.oid import NameOID
from lxml import etree
from pes import make_pes_aller
from softhsm import softhsm
from testpki import PKCS12_PASSPHRASE, TestPki

from parapheur.pades import SigningError, SigningIdentity, make_self_signed_identity
from parapheur.tokens import open_pkcs11_identity
from parapheur.xades import (
    HELIOS_POLICY_DIGEST,
    HELIOS_POLICY_ID,
    PesError,
    sign_pes,
    unsigned_bordereaux,
    validate_pes,
)

from conftest import missing, socle_command

DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"ds": DS, "xades": "http://uri.etsi.org/01903/v1.3.2#"}
FIRST, SECOND = "BORD-2026-0001", "BORD-2026-0002"
SIGNATURE_BLOCK = re.compile(rb"<ds:Signature .*?</ds:Signature>", re.DOTALL)


def xmlsec_verify(path: Path, bordereau_id: str, root_pem: Path) -> subprocess.CompletedProcess[str]:
    """xmlsec1's independent verdict on the signature of one bordereau."""
    if shutil.which("xmlsec1") is None:
        missing("xmlsec1 n'est pas installé : lancez « make test », qui l'installe")
    command = [
        "xmlsec1",
        "--verify",
        "--id-attr:Id",
        "Bordereau",
        "--id-attr:Id",
        f"{DS}:Signature",
        "--node-id",
        f"SIG-{bordereau_id}",
        "--trusted-pem",
        str(root_pem),
        str(path),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def signer(pki: TestPki) -> SigningIdentity:
    return SigningIdentity.from_pkcs12(pki.pkcs12("signer"), PKCS12_PASSPHRASE)


@pytest.fixture(scope="module")
def root_pem(pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "racine.pem"
    path.write_bytes(x509.load_der_x509_certificate(pki.root_der).public_bytes(Encoding.PEM))
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "PESALR2_depenses.xml"
    path.write_bytes(make_pes_aller(2))
    return path


@pytest.fixture
def signed(source: Path, signer: SigningIdentity) -> Path:
    destination = source.with_name("PESALR2_depenses-signe.xml")
    # "’" is not in ISO-8859-1: it must travel as a character reference.
    assert sign_pes(source, destination, signer, role="Ordonnateur", city="Saint-Jean-d’Angély") == 2
    return destination


# --------------------------------------------------------------------------- signing


def test_each_bordereau_is_signed_and_xmlsec1_verifies_it(signed: Path, root_pem: Path) -> None:
    for bordereau_id in (FIRST, SECOND):
        result = xmlsec_verify(signed, bordereau_id, root_pem)
        assert result.returncode == 0, result.stderr
        assert "OK" in result.stdout + result.stderr


def test_signature_sits_in_its_bordereau_and_references_its_id(signed: Path) -> None:
    root = etree.parse(str(signed)).getroot()
    for bordereau in root.iter("Bordereau"):
        [signature] = bordereau.findall("ds:Signature", NS)
        assert bordereau[-1] is signature
        uris = [ref.get("URI") for ref in signature.iterfind("ds:SignedInfo/ds:Reference", NS)]
        assert uris[0] == f"#{bordereau.get('Id')}"


def test_rest_of_the_file_is_byte_for_byte_unchanged(source: Path, signed: Path) -> None:
    original, result = source.read_bytes(), signed.read_bytes()
    assert len(SIGNATURE_BLOCK.findall(result)) == 2
    assert SIGNATURE_BLOCK.sub(b"", result) == original
    assert result.startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>')
    assert "Saint-Étienne-lès-Orgues".encode("iso-8859-1") in result


def test_signed_properties_carry_the_helios_policy_role_and_place(signed: Path, signer: SigningIdentity) -> None:
    signature = etree.parse(str(signed)).getroot().find(".//ds:Signature", NS)
    assert signature is not None
    properties = signature.find(".//xades:SignedSignatureProperties", NS)
    assert properties is not None

    def text(path: str) -> str:
        node = properties.find(path, NS)
        assert node is not None, path
        return node.text or ""

    assert text("xades:SignaturePolicyIdentifier//xades:Identifier") == HELIOS_POLICY_ID
    assert text("xades:SignaturePolicyIdentifier//xades:SigPolicyHash/ds:DigestValue") == HELIOS_POLICY_DIGEST
    assert HELIOS_POLICY_DIGEST == "Jkdb+aba0Hz6+ZPKmKNhPByzQ+Q="  # the SHA-1 published for PS_Helios_DGFiP
    policy_method = properties.find("xades:SignaturePolicyIdentifier//xades:SigPolicyHash/ds:DigestMethod", NS)
    assert policy_method is not None and policy_method.get("Algorithm") == f"{DS}sha1"
    assert text("xades:SignaturePolicyIdentifier//xades:SPURI").endswith("PS_Helios_DGFiP.pdf")
    assert text("xades:SignerRole/xades:ClaimedRoles/xades:ClaimedRole") == "Ordonnateur"
    assert text("xades:SignatureProductionPlace/xades:City") == "Saint-Jean-d’Angély"
    digest = base64.b64encode(hashlib.sha256(signer.certificate_der).digest()).decode()
    assert text("xades:SigningCertificate/xades:Cert/xades:CertDigest/ds:DigestValue") == digest
    signing_time = datetime.fromisoformat(text("xades:SigningTime"))
    assert abs(datetime.now(UTC) - signing_time) < timedelta(minutes=5)


def test_without_role_and_city_there_is_no_signer_role_nor_place(source: Path, signer: SigningIdentity) -> None:
    destination = source.with_name("sans-role.xml")
    sign_pes(source, destination, signer)
    properties = etree.parse(str(destination)).getroot().find(".//xades:SignedSignatureProperties", NS)
    assert properties is not None
    assert properties.find("xades:SignerRole", NS) is None
    assert properties.find("xades:SignatureProductionPlace", NS) is None
    assert properties.find("xades:SignaturePolicyIdentifier", NS) is not None


def test_signs_in_place_and_keeps_other_encodings_verifiable(
    tmp_path: Path, signer: SigningIdentity, root_pem: Path
) -> None:
    # Windows-1252 cannot be spliced byte for byte: the document is then re-serialised, signatures still valid.
    text = make_pes_aller(3).decode("iso-8859-1").replace('encoding="ISO-8859-1"', 'encoding="windows-1252"')
    path = tmp_path / "pes-cp1252.xml"
    path.write_bytes(text.encode("cp1252"))
    assert sign_pes(path, path, signer, city="Orléans") == 3
    assert path.read_bytes().startswith(b"<?xml version='1.0' encoding='windows-1252'?>")
    assert xmlsec_verify(path, "BORD-2026-0003", root_pem).returncode == 0
    reports = validate_pes(path, [])  # no trust roots given
    assert [(report.intact, report.chain_trusted) for report in reports] == [(True, False)] * 3


def test_ecdsa_key_signs_through_the_identity(tmp_path: Path, source: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Régie ECDSA")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    identity = SigningIdentity.from_pkcs12(
        pkcs12.serialize_key_and_certificates(b"ec", key, certificate, None, BestAvailableEncryption(b"x")), b"x"
    )
    trusted = tmp_path / "ec.pem"
    trusted.write_bytes(certificate.public_bytes(Encoding.PEM))
    sign_pes(source, source, identity)

    assert xmlsec_verify(source, FIRST, trusted).returncode == 0
    reports = validate_pes(source, [certificate.public_bytes(Encoding.DER)])
    assert [report.valid for report in reports] == [True, True]
    assert "ecdsa-sha256" in source.read_text("iso-8859-1")


# --------------------------------------------------------------------------- validation


def test_validate_pes_reports_each_signature(signed: Path, pki: TestPki) -> None:
    reports = validate_pes(signed, [pki.root_der])
    assert [report.field_name for report in reports] == [f"Bordereau {FIRST}", f"Bordereau {SECOND}"]
    for report in reports:
        assert report.valid and report.intact and report.chain_trusted
        assert report.signer_name == "Camille Martin"
        assert report.level == "B-B" and report.timestamp_time is None
        assert report.revocation == "unknown"  # offline: nothing in the file says more
        assert report.signing_time is not None
    assert unsigned_bordereaux(signed) == []


def test_online_validation_checks_revocation(signed: Path, pki: TestPki) -> None:
    reports = validate_pes(signed, [pki.root_der], allow_fetching=True)
    assert [report.revocation for report in reports] == ["good", "good"]


def test_tampered_amount_fails_both_xmlsec1_and_validate_pes(signed: Path, root_pem: Path, pki: TestPki) -> None:
    data = signed.read_bytes()
    assert data.count(b'<MtBordHT V="1250.00"/>') == 1
    signed.write_bytes(data.replace(b'<MtBordHT V="1250.00"/>', b'<MtBordHT V="9250.00"/>'))

    assert xmlsec_verify(signed, FIRST, root_pem).returncode != 0
    assert xmlsec_verify(signed, SECOND, root_pem).returncode == 0
    first, second = validate_pes(signed, [pki.root_der])
    assert not first.intact and not first.valid and first.level is None
    assert "ALTÉRÉ" in first.summary
    assert second.valid


def test_signature_moved_to_another_bordereau_is_not_intact(signed: Path, pki: TestPki) -> None:
    tree = etree.parse(str(signed))
    first, second = tree.getroot().iter("Bordereau")
    second.remove(second[-1])
    second.append(first[-1])  # the first bordereau's signature, now claimed by the second one
    tree.write(str(signed), encoding="ISO-8859-1", xml_declaration=True)
    [report] = validate_pes(signed, [pki.root_der])
    assert report.field_name == f"Bordereau {SECOND}" and not report.intact
    assert unsigned_bordereaux(signed) == [FIRST]


def test_untrusted_signer_is_reported(signed: Path) -> None:
    other_root = SigningIdentity.from_pkcs12(make_self_signed_identity("Autre", "Ailleurs", b"x"), b"x")
    reports = validate_pes(signed, [other_root.certificate_der])
    assert [report.field_name for report in reports] == [f"Bordereau {FIRST}", f"Bordereau {SECOND}"]
    for report in reports:
        assert report.intact and not report.chain_trusted and not report.valid


def test_revoked_signer_is_reported_online(source: Path, pki: TestPki) -> None:
    revoked = SigningIdentity.from_pkcs12(pki.pkcs12("revoked"), PKCS12_PASSPHRASE)
    destination = source.with_name("revoque.xml")
    assert sign_pes(source, destination, revoked) == 2
    reports = validate_pes(destination, [pki.root_der], allow_fetching=True)
    assert [report.field_name for report in reports] == [f"Bordereau {FIRST}", f"Bordereau {SECOND}"]
    for report in reports:
        assert report.intact and report.revocation == "revoked" and not report.valid
        assert report.revocation_date is not None


def test_cli_verifies_a_signed_pes(signed: Path, root_pem: Path, source: Path) -> None:
    result = socle_command("parapheur", "verify", str(signed), "--trust", str(root_pem))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Signature « Bordereau {FIRST} » de Camille Martin : valide" in result.stdout

    result = socle_command("parapheur", "verify", str(source), "--trust", str(root_pem))
    assert result.returncode == 1
    assert f"Bordereau « {FIRST} » : NON SIGNÉ." in result.stdout


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"<PES_Aller><PES_DepenseAller><Bordereau Id='B1'>", "n'est pas un XML bien formé"),
        (b"", "n'est pas un XML bien formé"),
        (b"<Facture><Bordereau Id='B1'/></Facture>", "n'est pas un flux PES Aller"),
        (b"<PES_Aller><EnTetePES/></PES_Aller>", "aucun bordereau"),
        (b"<PES_Aller><PES_DepenseAller><Bordereau><Piece/></Bordereau></PES_DepenseAller></PES_Aller>", "Id"),
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE PES_Aller [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
            b"<PES_Aller><PES_DepenseAller><Bordereau Id='B1'>&x;</Bordereau></PES_DepenseAller></PES_Aller>",
            "DOCTYPE",
        ),
        (
            b'<!DOCTYPE a [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><PES_Aller>&c;</PES_Aller>',
            "DOCTYPE",
        ),
    ],
)
def test_bad_input_gets_a_french_error_and_nothing_written(
    tmp_path: Path, signer: SigningIdentity, content: bytes, message: str
) -> None:
    source = tmp_path / "pes.xml"
    source.write_bytes(content)
    destination = tmp_path / "signe.xml"
    with pytest.raises(PesError, match=message):
        sign_pes(source, destination, signer)
    assert list(tmp_path.iterdir()) == [source]
    if message not in ("aucun bordereau", "Id"):  # the others are not even readable as a PES
        with pytest.raises(PesError, match=message):
            validate_pes(source, [])


def test_already_signed_bordereau_is_refused(signed: Path, signer: SigningIdentity) -> None:
    with pytest.raises(PesError, match=f"bordereau {FIRST} est déjà signé"):
        sign_pes(signed, signed.with_name("encore.xml"), signer)


def test_expired_certificate_cannot_sign(source: Path, pki: TestPki) -> None:
    expired = SigningIdentity.from_pkcs12(pki.pkcs12("expired"), PKCS12_PASSPHRASE)
    with pytest.raises(SigningError, match="a expiré"):
        sign_pes(source, source.with_name("expire.xml"), expired)
    assert not source.with_name("expire.xml").exists()


def test_cli_refuses_malformed_xml(tmp_path: Path) -> None:
    path = tmp_path / "pes.xml"
    path.write_bytes(b"<PES_Aller><Bordereau>")
    result = socle_command("parapheur", "verify", str(path))
    assert result.returncode == 1
    assert "n'est pas un XML bien formé" in result.stderr and "Traceback" not in result.stderr


# --------------------------------------------------------------------------- PKCS#11


def test_pkcs11_token_signs_every_bordereau(pki: TestPki, source: Path, root_pem: Path) -> None:
    token = softhsm(pki).signer
    with open_pkcs11_identity(token.module_path, token.label, token.pin) as card:
        assert sign_pes(source, source, card, role="Ordonnateur") == 2
    for bordereau_id in (FIRST, SECOND):
        assert xmlsec_verify(source, bordereau_id, root_pem).returncode == 0
    reports = validate_pes(source, [pki.root_der])
    assert [(report.field_name, report.valid) for report in reports] == [
        (f"Bordereau {FIRST}", True),
        (f"Bordereau {SECOND}", True),
    ]
