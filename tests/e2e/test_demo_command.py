"""`socle demo` on embedded defaults, from an empty data folder, as `make demo` runs it."""

from __future__ import annotations

import re
import sqlite3
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
    # The demo users can sign in to the web interface with the passwords it wrote for their owner only.
    passwords = tmp_path / "data" / "demo" / "interface.txt"
    assert passwords.stat().st_mode & 0o777 == 0o600
    lines = dict(line.split(" : ", 1) for line in passwords.read_text(encoding="utf-8").splitlines())
    assert lines["Collectivité"] == "commune-demo" and len(lines["agent"]) >= 12
    from socle.ui.passwords import verify_password

    with sqlite3.connect(tmp_path / "data" / "socle.db") as db:
        stored = db.execute("SELECT password_hash FROM users WHERE username = 'agent'").fetchone()[0]
    assert verify_password(lines["agent"], stored)

    # A second run reuses the collectivité and works again.
    again = socle_command("demo", env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
