"""`socle demo` on embedded defaults, from an empty data folder, as `make demo` runs it."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

from conftest import pdfsig, socle_command


def test_demo_on_embedded_defaults(tmp_path: Path) -> None:
    env = {"SOCLE_DATA_DIR": str(tmp_path / "data")}

    result = socle_command("demo", env=env, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "mode embarqué" in result.stdout
    paths = dict(re.findall(r"^(PDF signé|Paquet SEDA|Accusé de dépôt) : (.+)$", result.stdout, re.MULTILINE))
    assert set(paths) == {"PDF signé", "Paquet SEDA", "Accusé de dépôt"}
    assert "Signature is Valid" in pdfsig(Path(paths["PDF signé"]))
    with zipfile.ZipFile(paths["Paquet SEDA"]) as sip:
        assert sip.namelist()[0] == "manifest.xml"
    assert (tmp_path / "data" / "socle.db").is_file()

    # A second run reuses the collectivité and works again.
    again = socle_command("demo", env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
