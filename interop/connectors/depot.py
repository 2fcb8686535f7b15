"""The « dépôt » connector: deposits objects into a local folder, laid out as configured (see layout.py).

By default each file gets a JSON receipt beside it. A deposit is atomic and happens once: the file is
checked against its digest, written under a temporary name, then linked to its final name (a link never
overwrites). If the same bytes are already there, the earlier deposit is recognised and its receipt
returned; a different file under that name is refused (or suffixed, or replaced, as configured).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from interop.connectors.layout import RECEIPT_SUFFIX, Layout, LocalTarget, deposit, probe, safe_filename
from socle.errors import InvalidInput, message
from socle.storage import ObjectStore
from socle.text import text_fault

__all__ = ["RECEIPT_SUFFIX", "DepotConnector", "folder_for", "safe_filename"]


def folder_for(root: Path, tenant_slug: str, relative: str) -> Path:
    """Each tenant deposits only below ``root/<tenant>/``: a configured path cannot climb out of it."""
    fault = text_fault(relative, required=False)  # a NUL would stop the system's calls (ValueError), not refuse
    if fault is not None:
        raise InvalidInput(message("chemin du dépôt : %(fault)s", fault=fault))
    path = PurePosixPath(relative.strip() or ".")
    if path.is_absolute() or ".." in path.parts:
        raise InvalidInput(message("le chemin du dépôt doit être relatif, sans « .. »"))
    tenant_root = (root / tenant_slug).resolve()
    folder = (tenant_root / path).resolve()  # a symbolic link inside the tree must not lead out of it either
    if not folder.is_relative_to(tenant_root):
        raise InvalidInput(message("le chemin du dépôt sort du dossier de la collectivité"))
    return folder


class DepotConnector:
    def __init__(self, folder: Path, name: str, tenant_root: Path, layout: Layout | None = None) -> None:
        self.folder = folder
        self.name = name
        self.tenant_root = tenant_root.resolve()
        self.layout = layout or Layout()

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        self.folder.mkdir(parents=True, exist_ok=True)
        # Relative to the collectivité's deposit folder: server paths are not shown to API clients.
        shown = self.folder.relative_to(self.tenant_root).as_posix()
        target = LocalTarget(self.folder)
        return deposit(target, self.layout, store, object_key, filename, size, connector=self.name, shown_folder=shown)

    def test(self) -> str:
        probe(LocalTarget(self.folder))
        return f"dossier de dépôt accessible en écriture : {self.folder.relative_to(self.tenant_root).as_posix()}"
