"""The bordereau through the API: the folder's history as a PDF, delegated acts said "en l'absence de"."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

from parapheur_kit import Standard, act, ok, sent_folder
from signing_helpers import object_path, save, stamp_lines

from socle.db import utcnow

from conftest import Kit, assert_problem, missing


def pdf_text(path: Path) -> str:
    try:
        result = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        missing("poppler-utils (pdftotext) n'est pas installé : lancez « make system-deps »")
    assert result.returncode == 0, result.stderr
    return " ".join(result.stdout.split())


def test_the_bordereau_lists_every_act_with_its_delegation(kit: Kit, tmp_path: Path) -> None:
    setup = Standard(kit)
    now = utcnow()
    delegation = {
        "from_desk_id": setup.maire,
        "to_desk_id": setup.secretariat,
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(days=1)).isoformat(),
    }
    ok(kit["admin"].post("/parapheur/delegations", json=delegation), 201)
    folder = sent_folder(kit, setup.visa_then_sign, title="Délibération budgétaire")
    ok(act(kit, "agent", folder["id"], "visa", {"comment": "Conforme"}))
    _give_identity(kit, "agent")
    signed = ok(act(kit, "agent", folder["id"], "sign"))  # in the maire's absence
    assert signed["status"] == "completed"
    document = save(tmp_path, "acte.pdf", object_path(signed["documents"][0]["current_sha256"]).read_bytes())
    # The signer's own quality, then the replaced desk: the adjoint is not presented as the maire.
    assert stamp_lines(document)[:3] == [
        "Signé par Camille Martin",
        "Secrétaire de mairie",
        "Pour : Maire, par délégation",
    ]

    response = kit["agent"].get(f"/parapheur/folders/{folder['id']}/bordereau")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    text = pdf_text(save(tmp_path, "bordereau.pdf", response.content))
    assert "Délibération budgétaire" in text and "Visa" in text and "Conforme" in text
    assert "Signature" in text and "Camille Martin" in text
    # A table: the column "En l'absence de" names the replaced desk on the signature's row.
    assert "En l'absence de" in text and "Camille Martin Signature Maire" in text, text


def _give_identity(kit: Kit, username: str) -> None:
    from parapheur import identities
    from socle.db import transaction
    from socle.models import Tenant

    from conftest import signing_identity

    with transaction() as session:
        tenant = session.get(Tenant, kit.tenant_id)
        assert tenant is not None
        identities.import_identity(session, tenant, username, *signing_identity())


def test_the_bordereau_of_an_unknown_folder_is_404(kit: Kit) -> None:
    assert_problem(kit["agent"].get("/parapheur/folders/inconnu/bordereau"), 404)
