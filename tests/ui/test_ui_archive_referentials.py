"""The archivist's screens for what the archival system knows: its archival profiles and its referential of
rules, listed, uploaded, downloaded and deleted through the pages, with the API's checks, French errors and
audit."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from ui_kit import csrf_of, post_form, sign_in

from socle.db import new_session
from socle.models import AuditEntry

from conftest import Kit, make_pdf, upload_document

PROFILES = "/archives/profils"
REFERENTIAL = "/archives/referentiel"


def profile_text() -> bytes:
    """The SHERPA-like profile of the archive tests (tests/archive/test_archive_profiles.py)."""
    path = Path(__file__).parents[1] / "archive" / "test_archive_profiles.py"
    spec = importlib.util.spec_from_file_location("archive_profiles_sample", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return bytes(module.PROFILE)


def audit_actions(kit: Kit, prefix: str) -> list[tuple[str, str]]:
    with new_session() as db:
        rows = db.execute(
            select(AuditEntry.actor, AuditEntry.action)
            .where(AuditEntry.tenant_id == kit.tenant_id, AuditEntry.action.startswith(prefix))
            .order_by(AuditEntry.id)
        ).all()
        return [(str(row.actor), str(row.action)) for row in rows]


def send_file(client: TestClient, page: str, action: str, filename: str, data: bytes, **fields: str) -> Any:
    token = csrf_of(client.get(page).text)
    return client.post(action, data={"csrf": token, **fields}, files={"file": (filename, data, "application/xml")})


def test_the_tools_offer_the_referential_and_the_profiles(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    home = client.get("/archives").text.split(">Outils<")[1]
    assert f'href="{REFERENTIAL}"' in home and f'href="{PROFILES}"' in home
    assert "Aucun référentiel chargé" in client.get(REFERENTIAL).text
    assert "Aucun profil enregistré" in client.get(PROFILES).text


def test_a_profile_is_uploaded_listed_downloaded_and_deleted(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    profile = profile_text()
    saved = send_file(client, PROFILES, PROFILES, "deliberations.rng", profile, name="deliberations",
                      identifier="PR-000042")  # fmt: skip
    assert saved.status_code == 303, saved.text
    page = client.get(PROFILES).text
    assert "Profil « deliberations » enregistré." in page
    assert "PR-000042" in page and "Télécharger le profil deliberations" in page
    assert [p["identifier"] for p in kit["archiviste"].get("/archive/profiles").json()] == ["PR-000042"]
    downloaded = client.get(f"{PROFILES}/deliberations/fichier")
    assert downloaded.status_code == 200 and downloaded.content == profile
    assert "deliberations.rng" in downloaded.headers["content-disposition"]

    deleted = post_form(client, PROFILES, f"{PROFILES}/deliberations/supprimer", {})
    assert deleted.status_code == 303
    assert "Profil « deliberations » supprimé." in client.get(PROFILES).text
    assert kit["archiviste"].get("/archive/profiles").json() == []
    assert client.get(f"{PROFILES}/deliberations/fichier").status_code == 404
    actor = audit_actions(kit, "archive.profile.")
    assert [action for _actor, action in actor] == ["archive.profile.uploaded", "archive.profile.deleted"]
    assert actor[0][0] == actor[1][0] and actor[0][0].endswith("archiviste")


def test_a_profile_is_refused_with_the_api_s_french_errors_next_to_its_field(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    wrong = send_file(client, PROFILES, PROFILES, "faux.rng", b"<schema/>", name="faux")
    assert wrong.status_code == 422 and 'id="file-erreur"' in wrong.text
    assert "ce n&#39;est pas un schéma RelaxNG" in wrong.text
    hostile = b'<!DOCTYPE g [<!ENTITY x "y">]><grammar xmlns="http://relaxng.org/ns/structure/1.0"/>'
    refused = send_file(client, PROFILES, PROFILES, "dtd.rng", hostile, name="dtd")
    assert refused.status_code == 422 and "DTD" in refused.text
    named = send_file(client, PROFILES, PROFILES, "p.rng", profile_text(), name="../etc")
    assert named.status_code == 422 and 'id="name-erreur"' in named.text and "Nom de profil invalide" in named.text
    identified = send_file(client, PROFILES, PROFILES, "p.rng", profile_text(), name="p", identifier="P" * 150)
    assert identified.status_code == 422 and 'id="identifier-erreur"' in identified.text
    assert "Identifiant du profil invalide" in identified.text and 'id="name-erreur"' not in identified.text
    missing = client.post(PROFILES, data={"csrf": csrf_of(client.get(PROFILES).text), "name": "vide"})
    assert missing.status_code == 422 and 'id="file-erreur"' in missing.text
    assert kit["archiviste"].get("/archive/profiles").json() == []
    assert audit_actions(kit, "archive.profile.") == []


def test_a_profile_a_transfer_still_needs_is_not_deleted(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    assert send_file(client, PROFILES, PROFILES, "p.rng", profile_text(), name="deliberations").status_code == 303
    document = upload_document(kit["agent"], make_pdf("Délibération n° 1"), title="Délibération n° 1")
    body = {"document_ids": [document["id"]], "archival_agency": "AD037", "profile": "deliberations"}
    requested = kit["archiviste"].post("/archive/transfers", json=body)
    assert requested.status_code == 202, requested.text  # the GED's export not run: the build is to come
    refused = post_form(client, PROFILES, f"{PROFILES}/deliberations/supprimer", {})
    assert refused.status_code == 409
    assert "versements pas encore envoyés" in refused.text and requested.json()["message_identifier"] in refused.text
    assert len(kit["archiviste"].get("/archive/profiles").json()) == 1
    assert kit["archiviste"].delete("/archive/profiles/deliberations").status_code == 409  # the API says the same


def test_the_referential_is_uploaded_shown_downloaded_and_deleted(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    body = {
        "rules": [
            {"id": "APP-DELIB", "category": "AppraisalRule", "duration": "P10Y", "description": "Délibérations"},
            {"id": "ACC-00003", "category": "AccessRule", "duration": None, "description": None},
        ],
        "digest_algorithms": ["SHA-512", "SHA-256"],
    }
    data = json.dumps(body, ensure_ascii=False).encode()
    saved = send_file(client, REFERENTIAL, REFERENTIAL, "regles.json", data)
    assert saved.status_code == 303, saved.text
    page = client.get(REFERENTIAL).text
    assert "Référentiel enregistré : 2 règle(s)." in page and "APP-DELIB" in page and "Délibérations" in page
    assert "SHA-512, SHA-256" in page
    assert [rule["id"] for rule in kit["archiviste"].get("/archive/referential").json()["rules"]] == [
        "APP-DELIB",
        "ACC-00003",
    ]
    downloaded = client.get(f"{REFERENTIAL}/fichier")
    assert downloaded.status_code == 200 and "attachment" in downloaded.headers["content-disposition"]
    assert json.loads(downloaded.content) == body  # the API's format: uploaded again as it is
    json_type = {"content-type": "application/json"}
    assert (
        kit["archiviste"].put("/archive/referential", content=downloaded.content, headers=json_type).status_code == 200
    )

    deleted = post_form(client, REFERENTIAL, f"{REFERENTIAL}/supprimer", {})
    assert deleted.status_code == 303
    assert "Aucun référentiel chargé" in client.get(REFERENTIAL).text
    assert kit["archiviste"].get("/archive/referential").json()["rules"] == []
    assert [action for _actor, action in audit_actions(kit, "archive.referential.")] == [
        "archive.referential.updated",
        "archive.referential.updated",  # the API's upload of the downloaded file
        "archive.referential.deleted",
    ]
    again = post_form(client, REFERENTIAL, f"{REFERENTIAL}/supprimer", {})
    assert again.status_code == 404 and "aucun référentiel n&#39;est chargé" in again.text


def test_a_wrong_referential_is_refused_in_french_next_to_the_file(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    broken = send_file(client, REFERENTIAL, REFERENTIAL, "r.json", b'{"rules": [\n  {"id": "A",}\n]}')
    assert broken.status_code == 422 and 'id="file-erreur"' in broken.text
    assert "JSON invalide" in broken.text and "ligne 2" in broken.text
    twice = {"rules": [{"id": "A", "category": "AccessRule"}, {"id": "A", "category": "AccessRule"}]}
    duplicate = send_file(client, REFERENTIAL, REFERENTIAL, "r.json", json.dumps(twice).encode())
    assert duplicate.status_code == 422
    assert "La règle « A » figure deux fois dans le référentiel" in duplicate.text
    unknown = {"rules": [{"id": "A", "category": "Inventée"}], "digest_algorithms": ["CRC32"]}
    wrong = send_file(client, REFERENTIAL, REFERENTIAL, "r.json", json.dumps(unknown).encode())
    assert wrong.status_code == 422 and "rules.0.category" in wrong.text and "digest_algorithms.0" in wrong.text
    assert "Référentiel refusé" in wrong.text
    assert kit["archiviste"].get("/archive/referential").json()["rules"] == []
    assert audit_actions(kit, "archive.referential.") == []


def test_the_screens_are_the_archivists(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "agent")
    for url in (PROFILES, REFERENTIAL, f"{REFERENTIAL}/fichier", f"{PROFILES}/deliberations/fichier"):
        assert client.get(url).status_code == 403, url
    token = csrf_of(client.get("/").text)
    for url in (PROFILES, REFERENTIAL, f"{REFERENTIAL}/supprimer", f"{PROFILES}/deliberations/supprimer"):
        assert client.post(url, data={"csrf": token}).status_code == 403, url
