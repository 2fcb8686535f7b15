"""The screens every browser run visits: each service declares its own in ``screens_<service>.py``.

A module ``screens_<service>.py`` defines ``screens(kit) -> list[Screen]``: it prepares what its screens
show (through the kit's API clients, as a user would have) and returns the screens in their main states.
The browser run signs in as ``username``, opens ``path``, runs axe-core, records page weight and requests,
and keeps a screenshot named ``name``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Screen:
    name: str  # file-name safe, unique: "parapheur-bureau", "ged-document-versions"…
    username: str  # a kit user: agent, maire, archiviste, admin
    path: str  # the page to open, e.g. "/bureau" or f"/dossiers/{folder_id}"
