"""The visible stamp of a signature by delegation (« Pour le Maire, par délégation ») and the stamp's time,
in Paris time while the signature's signing time stays UTC; read from the signed PDF's appearance streams."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pikepdf
import pytest
from parapheur_kit import Standard, act, ok, sent_folder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.layout import BoxConstraints
from signing_helpers import object_path, save, stamp_lines

from parapheur import identities
from parapheur.pades import (
    SignatureRequest,
    SigningIdentity,
    make_self_signed_identity,
    plan_signature,
    sign_pdf,
    validation_report,
)
from socle.db import transaction, utcnow
from socle.models import Tenant

from conftest import Kit, signing_identity

PARIS = ZoneInfo("Europe/Paris")
REASON = "Signature : Arrêté n° 12"
STAMP_TIME = re.compile(r"le (\d\d/\d\d/\d{4} à \d\d:\d\d) \(heure de Paris\)")


@pytest.fixture(scope="module")
def identity() -> SigningIdentity:
    return SigningIdentity.from_pkcs12(make_self_signed_identity("Paul Adjoint", "Commune", b"x"), b"x")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    pdf.save(tmp_path / "acte.pdf")
    return tmp_path / "acte.pdf"


def signed(source: Path, identity: SigningIdentity, **fields: str) -> Path:
    destination = source.with_name("signe.pdf")
    sign_pdf(source, destination, identity, SignatureRequest("Paul Adjoint", REASON, **fields))
    return destination


# --------------------------------------------------------------------------- wording


@pytest.mark.parametrize(
    ("replaced", "line"),
    [
        ("Le Maire", "Pour le Maire, par délégation"),
        ("le Maire", "Pour le Maire, par délégation"),
        ("La Présidente", "Pour la Présidente, par délégation"),
        ("L'adjoint délégué", "Pour l'adjoint délégué, par délégation"),
        ("Maire", "Pour : Maire, par délégation"),  # no article to lowercase: not « Pour Maire »
    ],
)
def test_a_delegated_stamp_gives_the_signer_s_quality_then_acts_for_the_replaced_one(
    source: Path, identity: SigningIdentity, replaced: str, line: str
) -> None:
    lines = stamp_lines(signed(source, identity, role="Premier adjoint", on_behalf_of=replaced))
    assert lines[:4] == ["Signé par Paul Adjoint", "Premier adjoint", line, REASON]
    assert sum("délégation" in text for text in lines) == 1


def test_a_normal_stamp_has_no_delegation_line(source: Path, identity: SigningIdentity) -> None:
    lines = stamp_lines(signed(source, identity, role="Le Maire"))
    assert lines[:3] == ["Signé par Paul Adjoint", "Le Maire", REASON]
    assert len(lines) == 4 and STAMP_TIME.fullmatch(lines[3]), lines


# --------------------------------------------------------------------------- time


def test_the_stamp_shows_the_signing_time_in_paris_time(source: Path, identity: SigningIdentity) -> None:
    destination = signed(source, identity, role="Le Maire")
    [report] = validation_report(destination, [identity.certificate_der])
    assert report.signing_time is not None and report.signing_time.utcoffset() == timedelta(0)  # stays UTC
    shown = STAMP_TIME.fullmatch(stamp_lines(destination)[-1])
    assert shown is not None
    assert shown[1] == report.signing_time.astimezone(PARIS).strftime("%d/%m/%Y à %H:%M")


@pytest.mark.parametrize(
    ("server_time", "shown"),
    [
        (datetime(2026, 12, 3, 16, 38, tzinfo=UTC), "03/12/2026 à 17:38 (heure de Paris)"),  # winter: UTC+1
        (datetime(2026, 7, 3, 16, 38, tzinfo=UTC), "03/07/2026 à 18:38 (heure de Paris)"),  # summer: UTC+2
        # Whatever the server's zone: 23:30 in New York on 2 March is 05:30 in Paris on 3 March.
        (datetime(2026, 3, 2, 23, 30, tzinfo=ZoneInfo("America/New_York")), "03/03/2026 à 05:30 (heure de Paris)"),
    ],
)
def test_the_stamp_time_is_paris_time_in_winter_and_in_summer(source: Path, server_time: datetime, shown: str) -> None:
    """pyHanko formats its signing time (in the server's zone) with the style's format, then creates the stamp."""
    style = plan_signature(source, SignatureRequest("Paul Adjoint", REASON)).stamp_style
    with source.open("rb") as stream:
        writer = IncrementalPdfFileWriter(stream)
        params = {"signer": "Paul Adjoint", "reason": REASON, "ts": server_time.strftime(style.timestamp_format)}
        stamp = style.create_stamp(writer, BoxConstraints(width=200, height=60), params)
    assert stamp.text_params == {**params, "ts": shown}


# --------------------------------------------------------------------------- through the parapheur


def _give_identity(kit: Kit, username: str) -> None:
    with transaction() as session:
        tenant = session.get(Tenant, kit.tenant_id)
        assert tenant is not None
        identities.import_identity(session, tenant, username, *signing_identity())


@pytest.mark.parametrize(
    ("maire_quality", "stamped"),
    [("Maire", "Pour : Maire, par délégation"), ("Le Maire", "Pour le Maire, par délégation")],
)
def test_the_adjoint_signing_for_the_maire_is_not_presented_as_the_maire(
    kit: Kit, tmp_path: Path, maire_quality: str, stamped: str
) -> None:
    setup = Standard(kit)  # « Secrétariat » (agent, « Secrétaire de mairie »), « Maire » (maire, « Maire »)
    ok(kit["admin"].patch(f"/parapheur/desks/{setup.maire}", json={"stamp_role": maire_quality}))
    now = utcnow()
    delegation = {
        "from_desk_id": setup.maire,
        "to_desk_id": setup.secretariat,
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
    }
    ok(kit["admin"].post("/parapheur/delegations", json=delegation), 201)
    folder = sent_folder(kit, setup.sign_only, title="Arrêté de voirie")
    _give_identity(kit, "agent")
    done = ok(act(kit, "agent", folder["id"], "sign"))  # in the maire's absence
    document = save(tmp_path, "acte.pdf", object_path(done["documents"][0]["current_sha256"]).read_bytes())
    # The signer's own quality, then the replaced desk's (its quality in the stamp, else its name).
    assert stamp_lines(document)[:3] == ["Signé par Camille Martin", "Secrétaire de mairie", stamped]
    history = ok(kit["agent"].get(f"/parapheur/folders/{folder['id']}/history"))
    [signature] = [event for event in history if event["action"] == "signature"]
    assert signature["actor_name"] == "Camille Martin" and signature["on_behalf_of_desk_id"] == setup.maire


def test_a_signature_without_delegation_shows_the_desk_s_quality(kit: Kit, tmp_path: Path) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.sign_only, title="Arrêté de voirie")
    done = ok(act(kit, "maire", folder["id"], "sign"))
    document = save(tmp_path, "acte.pdf", object_path(done["documents"][0]["current_sha256"]).read_bytes())
    lines = stamp_lines(document)
    assert lines[:2] == ["Signé par Dominique Dupont", "Maire"] and not any("délégation" in line for line in lines)
    assert STAMP_TIME.fullmatch(lines[-1]), lines
