"""The « dépôt » connector: deposits objects into a folder, each with a JSON receipt beside it.

A deposit is atomic and happens once: the file is written under a temporary name, checked against its
digest, then linked to its final name (a link never overwrites). If the same bytes are already there, the
earlier deposit is recognised and its receipt returned; a different file under that name is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from socle.errors import Conflict, DigestMismatch, InvalidInput
from socle.files import fsync_dir, write_atomically
from socle.storage import ObjectStore, sha256_of_file
from socle.storage.api import iter_chunks

RECEIPT_SUFFIX = ".receipt.json"
_UNSAFE = re.compile(r"[^\w.\- ]", re.UNICODE)


def folder_for(root: Path, tenant_slug: str, relative: str) -> Path:
    """Each tenant deposits only below ``root/<tenant>/``: a configured path cannot climb out of it."""
    path = PurePosixPath(relative.strip() or ".")
    if path.is_absolute() or ".." in path.parts:
        raise InvalidInput("le chemin du dépôt doit être relatif, sans « .. »")
    tenant_root = (root / tenant_slug).resolve()
    folder = (tenant_root / path).resolve()  # a symbolic link inside the tree must not lead out of it either
    if not folder.is_relative_to(tenant_root):
        raise InvalidInput("le chemin du dépôt sort du dossier de la collectivité")
    return folder


def safe_filename(filename: str) -> str:
    name = _UNSAFE.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip(". ")
    if not name or name.endswith(RECEIPT_SUFFIX):
        raise InvalidInput(f"nom de fichier refusé pour un dépôt : {filename!r}")
    return name[:200]


class DepotConnector:
    def __init__(self, folder: Path, name: str, tenant_root: Path) -> None:
        self.folder = folder
        self.name = name
        self.tenant_root = tenant_root.resolve()

    def deliver(self, store: ObjectStore, object_key: str, filename: str, size: int) -> dict[str, Any]:
        target = self.folder / safe_filename(filename)
        receipt_path = target.with_name(target.name + RECEIPT_SUFFIX)
        self.folder.mkdir(parents=True, exist_ok=True)
        if target.exists():
            if sha256_of_file(target) != object_key:
                raise Conflict(f"un autre fichier porte déjà le nom {target.name} dans le dépôt")
        else:
            self._copy(store, object_key, size, target)
        if receipt_path.exists():
            return dict(json.loads(receipt_path.read_text()))
        receipt = {
            "connector": self.name,
            "name": target.name,
            # Relative to the collectivité's deposit folder: server paths are not shown to API clients.
            "path": target.relative_to(self.tenant_root).as_posix(),
            "size": target.stat().st_size,
            "sha256": object_key,
            "deposited_at": datetime.now(UTC).isoformat(),
        }
        write_atomically(receipt_path, json.dumps(receipt, ensure_ascii=False, indent=2).encode())
        return receipt

    def _copy(self, store: ObjectStore, object_key: str, size: int, target: Path) -> None:
        handle, name = tempfile.mkstemp(dir=self.folder, prefix=f".{target.name}.")
        partial = Path(name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(handle, "wb") as out, store.open(object_key) as stream:
                for chunk in iter_chunks(stream):
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != object_key or partial.stat().st_size != size:
                raise DigestMismatch(f"l'objet {object_key} lu dans le stockage ne correspond pas à son empreinte")
            os.chmod(partial, 0o644)
            try:
                os.link(partial, target)  # atomic, and never replaces a file deposited meanwhile
            except FileExistsError:
                if sha256_of_file(target) != object_key:
                    raise Conflict(f"un autre fichier porte déjà le nom {target.name} dans le dépôt") from None
            fsync_dir(self.folder)
        finally:
            partial.unlink(missing_ok=True)

    def test(self) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".test-"):
            pass
        return f"dossier de dépôt accessible en écriture : {self.folder.relative_to(self.tenant_root).as_posix()}"
