"""A folder the user may not read cannot be probed: moving a folder under it, naming one of its subfolders,
answers as for an unknown folder (not « name taken »), and an import that meets it does not tell its id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ga_helpers import make_folder

from conftest import Kit, make_pdf, socle_command

MISSING = "00000000-0000-0000-0000-000000000000"


def _hidden_folder(kit: Kit, name: str = "Ressources humaines") -> str:
    """A folder at the top of the plan only the group « rh » (the maire) may read."""
    folder = make_folder(kit, name)
    group = kit["admin"].post("/ged/groups", json={"name": "rh"}).json()
    assert kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": "maire"}).status_code == 200
    rights = [{"group_id": group["id"], "rights": ["read", "write", "delete", "manage"]}]
    assert kit["admin"].put(f"/ged/plan/{folder['id']}/permissions", json=rights).status_code == 200
    return str(folder["id"])


def test_moving_a_folder_under_a_hidden_one_does_not_tell_its_subfolders_names(kit: Kit) -> None:
    hidden = _hidden_folder(kit)
    make_folder(kit, "Dossiers disciplinaires", hidden)
    mine = make_folder(kit, "Brouillons")  # no permissions: open, « manage » included
    agent = kit["agent"]

    def move(parent_id: str) -> Any:
        return agent.patch(f"/ged/plan/{mine['id']}", json={"parent_id": parent_id, "name": "Dossiers disciplinaires"})

    probe, missing = move(hidden), move(MISSING)
    assert probe.status_code == missing.status_code == 404, probe.text
    assert probe.json()["detail"].replace(hidden, MISSING) == missing.json()["detail"]

    # The same through CMIS (a rename and a move in one update is not CMIS: move, then see the answer).
    cmis = f"/ged/cmis/{kit.slug}/root"
    form = {"cmisaction": "move", "objectId": mine["id"], "targetFolderId": hidden}
    answer = agent.post(cmis, data=form)
    assert answer.status_code == 404 and answer.json()["exception"] == "objectNotFound"
    assert agent.get(f"/ged/plan/{mine['id']}").json()["folder"]["parent_id"] is None


def test_an_import_meeting_a_hidden_folder_does_not_tell_its_id(kit: Kit, tmp_path: Path) -> None:
    hidden = _hidden_folder(kit)
    root = tmp_path / "versement"
    (root / "Ressources humaines").mkdir(parents=True)
    (root / "Ressources humaines" / "contrat.pdf").write_bytes(make_pdf("contrat"))
    result = socle_command("ged", "import", "--tenant", kit.slug, "--user", "archiviste", str(root))
    assert result.returncode == 1
    assert hidden not in result.stdout + result.stderr
    assert "un dossier « Ressources humaines » existe déjà à cet endroit" in result.stderr
