"""``socle interop`` with bad input: an unknown collectivité, a TLS certificate or key that cannot be read, a
key without its certificate. A French line and a non-zero status before anything starts, never OpenSSL's trace."""

from __future__ import annotations

import os
from pathlib import Path

from conftest import socle_command


def test_flows_of_an_unknown_tenant_is_a_plain_refusal() -> None:
    run = socle_command("interop", "flows", "--tenant", "commune-inconnue")
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip() == "Erreur : collectivité « commune-inconnue » inconnue"


def test_simulator_refuses_unreadable_tls_files_before_listening(tmp_path: Path) -> None:
    junk = tmp_path / "certificat.pem"
    junk.write_bytes(os.urandom(500))
    run = socle_command("interop", "simulate", "vitam", "--port", "1", "--tls-cert", str(junk), timeout=60)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and "Simulateur vitam" not in run.stdout
    assert f"Erreur : certificat « {junk} » ou clé illisible : PEM attendu" in run.stderr

    alone = socle_command("interop", "simulate", "vitam", "--port", "1", "--tls-key", str(junk), timeout=60)
    assert alone.returncode == 2 and "Erreur : --tls-key va avec --tls-cert" in alone.stderr
