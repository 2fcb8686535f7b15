"""Installing the official SEDA XSDs from their public source, each checked against a pinned SHA-256.

The schemas are not shipped with socle: ``socle archive schemas install`` fetches them from the public
repository ProgrammeVitam/sedatools (CeCILL 2.1) at fixed commits. A file whose digest differs from the
pinned one is refused before it is placed, so a tampered or changed source can never be used to validate.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import httpx  # imported when schemas are installed: every `socle` command loads this module, and httpx
    # (with the rich and pygments it pulls in) weighs 18 MB of memory

DEFAULT_BASE_URL = "https://raw.githubusercontent.com/ProgrammeVitam/sedatools/{commit}/{path}"
_RESOURCES = "sedalib/src/main/resources"
_COMMIT_2_2 = "ee8609093d38bdb92ea7c7f78c77468a9e2d2ab9"
_COMMIT = "953e4ef71a966794fe3ef94cdb3a4fe6da2125a1"

# Local folder → (folder in the repository, commit).
_SOURCES = {
    "2.1": (f"{_RESOURCES}/seda2_1", _COMMIT),
    "2.2": (_RESOURCES, _COMMIT_2_2),
    "2.3": (f"{_RESOURCES}/seda2_3", _COMMIT),
    "vitam-2.2": (f"{_RESOURCES}/seda2_2", _COMMIT),
    "w3c": (f"{_RESOURCES}/w3c", _COMMIT),
}

_PINNED = {
    "2.1/seda-vitam-2.1-descriptive.xsd": "38c404e847c933d2977af7522efabd517b2a572e5095b56c797d73f72d763727",
    "2.1/seda-vitam-2.1-main.xsd": "a48bd8859221f5b4e0c6113fc3bde0d4b3365055d83c68b1355ec8c515c65533",
    "2.1/seda-vitam-2.1-management.xsd": "641440ac01b0e9f3d35c525bd9185eff2fd4e902c61101953728c890bed369f0",
    "2.1/seda-vitam-2.1-ontology.xsd": "12b20806d0a3d66df67750340b5c6568c1def3b6f0150858786e55ad996a598e",
    "2.1/seda-vitam-2.1-technical.xsd": "f9fc8468ed65ae2fd993e16291b47429d3acc4f5e9c702538a2f340349e55ef6",
    "2.1/seda-vitam-2.1-types.xsd": "116fdc587ac731527bc06b0930f9c397b96fdab9684601c4596a9ff80c9f8f98",
    "2.2/seda-2.2-descriptive.xsd": "b0da3aa101feb95248ec25b5b616f9aba3f1d35a0b2bcd111cf6db5ac59a7227",
    "2.2/seda-2.2-main.xsd": "af0135f0ec8bc1324b9cd920c9f905dace593432a4118b4c495b9858ca126cce",
    "2.2/seda-2.2-management.xsd": "4d625dde398533c464114b6ba5ab1f1cac7d0cf46ecff2ebb16f2e96767e17ef",
    "2.2/seda-2.2-ontology.xsd": "5c906b4a494a9f80689a603cb4a50329eb0ce69920315eaecf19b15874c7ed30",
    "2.2/seda-2.2-technical.xsd": "aaa0da363b163aa131312366b067d31baa551cbc7e70c051af04cfc16d74d8fd",
    "2.2/seda-2.2-types.xsd": "648e51a3b4187ca5177abd01f75eecb9787ba3d8a720350c7c7ae724472ac384",
    "2.3/seda-2.3-descriptive.xsd": "f3cc1ade7afc767383847a88612e5a4c5a28b59a4d96ce78eb5eac15250635e8",
    "2.3/seda-2.3-main.xsd": "6544a4c95024fe13cc6191ef2b3a0579eeab6ed01b690d84acbcd1575f6f3790",
    "2.3/seda-2.3-management.xsd": "ddc5e26f0dda0cf6ccb7cc27bb6995aa54f7b524a0489e74aac0febd9fbe7ce7",
    "2.3/seda-2.3-ontology.xsd": "b2121452721ed8b72c6ec3748a5361c8d6b3dad5e1ffc46695ef34089fb2fb67",
    "2.3/seda-2.3-technical.xsd": "98bdf56dc9b58cded4d9990e3d6e1e59e4a7f32bbe871abde901b42df88ab29c",
    "2.3/seda-2.3-types.xsd": "3004167e57a2e27623268aa54763ef3291523b07ee4b7c9e98638df4c397991c",
    "vitam-2.2/seda-vitam-2.2-descriptive.xsd": "0bd68c031483399bb87b371698fe150a677885eb521657ccdde2e5876090a6a1",
    "vitam-2.2/seda-vitam-2.2-main.xsd": "11cb83ec4e0f4789788cf6132ba92c2558d7fee533ad7173f90e2f41c76de9bb",
    "vitam-2.2/seda-vitam-2.2-management.xsd": "dd966eec296659081c7aca4543183dfa956601031d264a4c844fef3f8b21f8e6",
    "vitam-2.2/seda-vitam-2.2-ontology.xsd": "8301b673d8dd7760e3a8c674671accb0b86b02e7c86d03c320cf560489be4303",
    "vitam-2.2/seda-vitam-2.2-technical.xsd": "01db92bd23251467abaa558cc479bb1c51e73fdb1854aaf0df8bee127eb68385",
    "vitam-2.2/seda-vitam-2.2-types.xsd": "399da8354e23bc00cc5b5457a610eb67dbd5b7290033c5ebb45ff3f3e2816148",
    "w3c/xlink.xsd": "4f4ff6a0d61d7b9b7d4d50a1693ebb5532e0a5bcd63bcc00a1b18798d8a1d083",
    "w3c/xml.xsd": "61960fb3131e38022caad5360e2f33a3382578ab3c80cd58bd74320ede61b20c",
}


class SchemaFile(NamedTuple):
    destination: str
    source: str
    commit: str
    sha256: str


def _table() -> tuple[SchemaFile, ...]:
    files = []
    for destination, sha256 in _PINNED.items():
        folder, name = destination.split("/")
        source_folder, commit = _SOURCES[folder]
        files.append(SchemaFile(destination, f"{source_folder}/{name}", commit, sha256))
    return tuple(files)


SCHEMA_FILES = _table()


class SchemaInstallError(RuntimeError):
    pass


class SchemaDigestMismatch(SchemaInstallError):
    def __init__(self, destination: str, expected: str, received: str) -> None:
        super().__init__(
            f"Empreinte incorrecte pour {destination} : attendue {expected}, reçue {received}. "
            "Fichier refusé : la source a changé ou a été altérée."
        )
        self.expected = expected
        self.received = received


def install_schemas(
    destination: Path, *, base_url: str = DEFAULT_BASE_URL, client: httpx.Client | None = None
) -> list[Path]:
    """Download the missing or altered files; return the paths written by this call."""
    import httpx

    written: list[Path] = []
    own_client = client is None
    http = client or httpx.Client(timeout=30, follow_redirects=True)
    try:
        for schema in SCHEMA_FILES:
            target = destination / schema.destination
            if target.is_file() and _sha256(target) == schema.sha256:
                continue
            url = base_url.format(commit=schema.commit, path=schema.source)
            _download(http, url, schema, target)
            written.append(target)
    finally:
        if own_client:
            http.close()
    return written


def _download(http: httpx.Client, url: str, schema: SchemaFile, target: Path) -> None:
    import httpx

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    partial = Path(name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out:
            try:
                with http.stream("GET", url) as response:
                    response.raise_for_status()
                    for chunk in response.iter_bytes():
                        digest.update(chunk)
                        out.write(chunk)
            except httpx.HTTPError as exc:
                raise SchemaInstallError(f"Téléchargement impossible de {schema.destination} ({url}) : {exc}") from None
        if digest.hexdigest() != schema.sha256:
            raise SchemaDigestMismatch(schema.destination, schema.sha256, digest.hexdigest())
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def check_schemas(folder: Path) -> list[str]:
    """Problems with an installed folder, in French; an empty list means complete and intact."""
    problems = []
    for schema in SCHEMA_FILES:
        path = folder / schema.destination
        if not path.is_file():
            problems.append(f"Fichier manquant : {path}")
        elif _sha256(path) != schema.sha256:
            problems.append(f"Empreinte incorrecte : {path} (attendue {schema.sha256})")
    return problems


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
