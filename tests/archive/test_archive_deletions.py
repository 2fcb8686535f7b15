"""A profile or the referential is removed through the API as through the pages: archivists only, audited."""

from __future__ import annotations

from test_archive_profiles import PROFILE, upload

from conftest import Kit


def test_a_profile_and_the_referential_are_deleted_by_archivists(kit: Kit) -> None:
    assert upload(kit, "deliberations", PROFILE).status_code == 200
    referential = {"rules": [{"id": "AR038", "category": "AccessRule", "duration": "P25Y"}]}
    assert kit["archiviste"].put("/archive/referential", json=referential).status_code == 200

    assert kit["agent"].delete("/archive/profiles/deliberations").status_code == 403
    assert kit["agent"].delete("/archive/referential").status_code == 403
    assert kit["archiviste"].delete("/archive/profiles/deliberations").status_code == 204
    assert kit["archiviste"].get("/archive/profiles").json() == []
    missing = kit["archiviste"].delete("/archive/profiles/deliberations")
    assert missing.status_code == 404 and "profil d'archivage « deliberations » introuvable" in missing.json()["detail"]
    assert kit["archiviste"].delete("/archive/referential").status_code == 204
    assert kit["archiviste"].get("/archive/referential").json()["rules"] == []
    assert kit["archiviste"].delete("/archive/referential").status_code == 404
