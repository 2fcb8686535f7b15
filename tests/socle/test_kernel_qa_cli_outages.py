"""The real ``socle`` command when what it needs is missing: the database out of reach or not migrated, Redis out
of reach, a wrong value given to an operator command. A plain French line, a non-zero status, never a trace,
and nothing written."""

from __future__ import annotations

import socket
from pathlib import Path

from sqlalchemy import select

from socle.db import transaction
from socle.models import Tenant

from conftest import socle_command


def closed_port() -> int:
    """A port nothing listens on: taken from the system, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def assert_plain_failure(run: object, expected: str, status: int = 1) -> None:
    stderr = run.stderr  # type: ignore[attr-defined]
    assert run.returncode == status, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr and "sqlalche.me" not in stderr, stderr
    assert expected in stderr, stderr


def test_database_out_of_reach_is_one_french_line_without_the_password() -> None:
    url = f"postgresql://socle:motdepasse-secret@127.0.0.1:{closed_port()}/socle"
    for args in (["migrate"], ["jobs"], ["tenant", "create", "ville", "Ville"], ["ged", "purge"], ["audit", "verify"]):
        run = socle_command(*args, env={"SOCLE_DATABASE_URL": url})
        assert_plain_failure(
            run, "Erreur : base de données injoignable (postgresql+psycopg://socle:********@127.0.0.1:"
        )
        assert "réglage SOCLE_DATABASE_URL" in run.stderr and "motdepasse-secret" not in run.stderr


def test_a_database_never_migrated_asks_for_socle_migrate(tmp_path: Path) -> None:
    run = socle_command("tenant", "create", "ville", "Ville", env={"SOCLE_DATA_DIR": str(tmp_path)})
    assert_plain_failure(
        run, "Erreur : la base de données n'a pas les tables du kit : lancez d'abord « socle migrate »."
    )


def test_redis_out_of_reach_stops_the_worker_in_french() -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    run = socle_command("worker", "ged", "--burst", env={"SOCLE_REDIS_URL": url}, timeout=120)
    assert_plain_failure(run, f"Erreur : Redis injoignable ({url}, réglage SOCLE_REDIS_URL)")


def test_the_seal_pin_variable_the_seal_import_reads_is_not_taken_for_a_mistyped_setting() -> None:
    # `socle parapheur seal-import` reads the PIN from SOCLE_SEAL_PIN by default: every command refused to start.
    run = socle_command("parapheur", "seal-list", "--tenant", "aucune", env={"SOCLE_SEAL_PIN": "123456"})
    assert_plain_failure(run, "Erreur : collectivité « aucune » inconnue")
    assert "Réglage invalide" not in run.stderr


def test_a_tenant_name_blank_with_controls_or_too_long_is_refused_and_nothing_created() -> None:
    for name, expected in [
        ("   ", "nom de la collectivité : ne peut pas être vide"),
        ("Ville\x1b[31m", "nom de la collectivité : caractère de contrôle interdit (U+001B)"),
        ("V" * 201, "nom de la collectivité : 200 caractères au plus"),
    ]:
        run = socle_command("tenant", "create", "qa-cli-nom", name)
        assert_plain_failure(run, f"Erreur : {expected}")
    with transaction() as session:
        assert session.execute(select(Tenant).where(Tenant.slug == "qa-cli-nom")).scalar_one_or_none() is None
