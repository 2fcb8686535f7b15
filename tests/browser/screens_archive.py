"""The archivist's screens for the browser run: home, transfers in their main states, forms and tools."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from screens import Screen

from conftest import Kit, make_pdf, run_jobs, upload_document


def _sae_messages() -> ModuleType:
    """The SAE message builders of the archive tests (tests/archive/sae_messages.py)."""
    found = sys.modules.get("sae_messages")
    if found is None:
        spec = importlib.util.spec_from_file_location(
            "sae_messages", Path(__file__).parents[1] / "archive" / "sae_messages.py"
        )
        assert spec is not None and spec.loader is not None
        found = importlib.util.module_from_spec(spec)
        sys.modules["sae_messages"] = found
        spec.loader.exec_module(found)
    return found


def _transfer(kit: Kit, **selection: object) -> str:
    body = {"archival_agency": "AD037", "comment": "Conseil municipal", **selection}
    response = kit["archiviste"].post("/archive/transfers", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _documents(kit: Kit, title: str) -> list[str]:
    return [upload_document(kit["agent"], make_pdf(title), title=title)["id"]]


def _referential(kit: Kit, algorithms: list[str]) -> None:
    rules = [
        {"id": "APP-10", "category": "AppraisalRule", "duration": "P10Y", "description": "Dix ans"},
        {"id": "ACC-25", "category": "AccessRule", "duration": "P25Y", "description": "Vingt-cinq ans"},
    ]
    response = kit["archiviste"].put("/archive/referential", json={"rules": rules, "digest_algorithms": algorithms})
    assert response.status_code == 200, response.text


def screens(kit: Kit) -> list[Screen]:
    _referential(kit, ["SHA-256"])  # this one is refused by the business checks: a report with problems
    invalid = _transfer(kit, document_ids=_documents(kit, "Arrêté n° 1"))
    run_jobs()
    _referential(kit, ["SHA-512"])
    built = _transfer(kit, document_ids=_documents(kit, "Délibération n° 2"))
    failed = _transfer(kit, dua_reached=True)  # nothing reached its DUA: in error, with the GED's reason
    accepted = _transfer(kit, document_ids=_documents(kit, "Délibération n° 3"))
    run_jobs()
    connector = kit["admin"].post("/interop/connectors", json={"name": "sae", "kind": "depot", "config": {"path": "s"}})
    assert connector.status_code == 201, connector.text
    assert kit["archiviste"].post(f"/archive/transfers/{accepted}/send", json={"connector": "sae"}).status_code == 202
    run_jobs()
    request = kit["archiviste"].get(f"/archive/transfers/{accepted}").json()["message_identifier"]
    builders = _sae_messages()
    _sae_messages().sae_sends(
        kit.tenant_id, accepted, "acknowledgement", builders.acknowledgement("2.2", request, "ACK-1")
    )
    _sae_messages().sae_sends(
        kit.tenant_id, accepted, "reply", builders.transfer_reply("2.2", request, "OK", "ATR-1", units={"AU1": "aeaq1"})
    )
    mapping = kit["archiviste"].put("/archive/mappings/deliberation", json={"appraisal_rule": "APP-10"})
    assert mapping.status_code == 200, mapping.text
    return [
        Screen("archives-accueil", "archiviste", "/archives"),
        Screen("archives-versements", "archiviste", "/archives/transferts"),
        Screen("archives-versements-filtre-vide", "archiviste", "/archives/transferts?etat=rejected"),
        Screen("archives-versement-nouveau", "archiviste", "/archives/transferts/nouveau"),
        Screen("archives-versement-pret", "archiviste", f"/archives/transferts/{built}"),
        Screen("archives-versement-non-conforme", "archiviste", f"/archives/transferts/{invalid}"),
        Screen("archives-versement-en-erreur", "archiviste", f"/archives/transferts/{failed}"),
        Screen("archives-versement-accepte", "archiviste", f"/archives/transferts/{accepted}"),
        Screen("archives-inspection", "archiviste", "/archives/inspection"),
        Screen("archives-correspondances", "archiviste", "/archives/correspondances"),
        Screen("archives-correspondance", "archiviste", "/archives/correspondances/deliberation"),
        Screen("archives-correspondance-par-defaut", "archiviste", "/archives/correspondances/arrete"),
    ]
