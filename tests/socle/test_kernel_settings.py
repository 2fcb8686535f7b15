"""Kernel settings: environment and TOML parsing, validation naming the setting, the ``socle settings`` command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import socle.db
import socle.secrets
import socle.settings
import socle.storage
from socle.errors import SettingsError
from socle.settings import load_settings

from conftest import socle_command


def _error(use_env: Callable[..., None], **values: str | None) -> str:
    use_env(**values)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return caught.value.detail


def test_environment_is_parsed(use_env: Callable[..., None]) -> None:
    use_env(
        SOCLE_JOB_BACKOFF="10,60",
        SOCLE_JOB_TIMEOUT="42",
        SOCLE_S3_SECURE="false",
        SOCLE_DATABASE_URL="postgres://u@db/socle",
    )
    settings = load_settings()
    assert settings.job_backoff == (10.0, 60.0)
    assert settings.job_timeout == 42
    assert settings.s3_secure is False
    assert settings.database_url == "postgresql+psycopg://u@db/socle"


def test_defaults_derive_from_the_data_dir(use_env: Callable[..., None], tmp_path: Path) -> None:
    use_env(SOCLE_DATA_DIR=str(tmp_path), SOCLE_JOB_BACKOFF=None, SOCLE_JOB_MAX_ATTEMPTS=None)
    settings = load_settings()
    assert settings.job_backoff == (10, 60, 300, 1800)
    assert settings.job_max_attempts == 5
    assert settings.effective_storage_path == (tmp_path / "objects").resolve()
    assert settings.effective_database_url == f"sqlite:///{(tmp_path / 'socle.db').resolve()}"
    assert settings.embedded_queue


def test_get_settings_reads_once_until_reset(use_env: Callable[..., None]) -> None:
    use_env(SOCLE_JOB_TIMEOUT="11")
    assert socle.settings.get_settings().job_timeout == 11
    use_env(SOCLE_JOB_TIMEOUT="12")
    assert socle.settings.get_settings().job_timeout == 12


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SOCLE_STORAGE_BACKEND", "ftp"),
        ("SOCLE_JOB_TIMEOUT", "-1"),
        ("SOCLE_JOB_TIMEOUT", "dix"),
        ("SOCLE_JOB_MAX_ATTEMPTS", "0"),
        ("SOCLE_MAX_UPLOAD_BYTES", "0"),
        ("SOCLE_DATABASE_URL", "mysql://x"),
        ("SOCLE_ENVIRONMENT", "staging"),
        ("SOCLE_S3_SECURE", "peut-être"),
        ("SOCLE_JOB_BACKOFF", "10,abc"),
        ("SOCLE_JOB_BACKOFF", ""),
        ("SOCLE_JOB_BACKOFF", "10,-5"),
    ],
)
def test_a_wrong_value_names_the_setting(use_env: Callable[..., None], name: str, value: str) -> None:
    detail = _error(use_env, **{name: value})
    assert detail.startswith("Réglage invalide")
    assert name in detail, detail


def test_every_wrong_setting_is_named_at_once(use_env: Callable[..., None]) -> None:
    detail = _error(use_env, SOCLE_JOB_TIMEOUT="0", SOCLE_STORAGE_BACKEND="ftp")
    assert "SOCLE_JOB_TIMEOUT" in detail and "SOCLE_STORAGE_BACKEND" in detail


def test_s3_backend_without_its_settings_names_what_is_missing(use_env: Callable[..., None]) -> None:
    detail = _error(use_env, SOCLE_STORAGE_BACKEND="s3", SOCLE_S3_ENDPOINT="minio:9000")
    assert "SOCLE_S3_ACCESS_KEY" in detail and "SOCLE_S3_SECRET_KEY" in detail
    assert "SOCLE_S3_ENDPOINT" not in detail

    use_env(SOCLE_S3_ACCESS_KEY="a", SOCLE_S3_SECRET_KEY="b")
    assert load_settings().storage_backend == "s3"


def test_production_refuses_the_risky_defaults(use_env: Callable[..., None]) -> None:
    detail = _error(use_env, SOCLE_ENVIRONMENT="production", SOCLE_REDIS_URL="redis://redis:6379/0")
    assert "SOCLE_DATABASE_URL" in detail  # SQLite is for trying the kit, not for production

    detail = _error(use_env, SOCLE_DATABASE_URL="postgresql://socle@db/socle")
    assert "SOCLE_SECRET_KEY" in detail

    for placeholder in ("trop-courte", "change-me-" * 4):
        assert "SOCLE_SECRET_KEY" in _error(use_env, SOCLE_SECRET_KEY=placeholder)

    detail = _error(use_env, SOCLE_SECRET_KEY="k" * 40, SOCLE_REDIS_URL=None)
    assert "SOCLE_REDIS_URL" in detail

    use_env(SOCLE_REDIS_URL="redis://redis:6379/0")
    settings = load_settings()
    assert settings.environment == "production" and not settings.embedded_queue


# What production asks for, all set: each test below changes one value.
PRODUCTION = {
    "SOCLE_ENVIRONMENT": "production",
    "SOCLE_DATA_DIR": "/var/lib/socle",
    "SOCLE_DATABASE_URL": "postgresql://socle:Xq7-vrai-mot-de-passe@db:5432/socle",
    "SOCLE_SECRET_KEY": "k" * 44,
    "SOCLE_REDIS_URL": "redis://redis:6379/0",
}


def test_production_as_documented_is_accepted(use_env: Callable[..., None]) -> None:
    use_env(**PRODUCTION)
    settings = load_settings()
    assert settings.environment == "production" and settings.data_dir == Path("/var/lib/socle")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SOCLE_DATA_DIR", "var"),  # under systemd, started in /: /var, whose spool the clean-up would read
        ("SOCLE_DATA_DIR", "./donnees"),
        ("SOCLE_STORAGE_PATH", "objets"),
        ("SOCLE_DEPOSIT_ROOT", "depots"),
    ],
)
def test_production_refuses_a_relative_folder(use_env: Callable[..., None], name: str, value: str) -> None:
    detail = _error(use_env, **{**PRODUCTION, name: value})
    assert f"{name} doit être un chemin absolu en production" in detail, detail
    use_env(**{name: "/srv/socle/" + value.removeprefix("./")})
    assert load_settings().environment == "production"


def test_production_refuses_the_default_data_folder(
    use_env: Callable[..., None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No SOCLE_DATA_DIR at all: the default « var » is relative too."""
    monkeypatch.chdir(tmp_path)
    detail = _error(use_env, **{**PRODUCTION, "SOCLE_DATA_DIR": None})
    assert "SOCLE_DATA_DIR doit être un chemin absolu" in detail and "« var »" in detail, detail


@pytest.mark.parametrize(
    "url",
    ["sqlite:////var/lib/socle/socle.db", "sqlite:///socle.db", "sqlite+pysqlite:////srv/socle.db"],
)
def test_production_refuses_sqlite(use_env: Callable[..., None], url: str) -> None:
    detail = _error(use_env, **{**PRODUCTION, "SOCLE_DATABASE_URL": url})
    assert "SOCLE_DATABASE_URL : SQLite est réservée aux essais, la production demande PostgreSQL" in detail, detail


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://socle:change-me-postgres@postgres:5432/socle",  # deploy/.env.example's
        "postgres://socle:CHANGE-ME@db/socle",
        "postgresql://socle:change_me@db/socle",
        "postgresql://socle:change%2Dme%40x@db/socle",  # encoded
    ],
)
def test_production_refuses_the_example_database_password(use_env: Callable[..., None], url: str) -> None:
    detail = _error(use_env, **{**PRODUCTION, "SOCLE_DATABASE_URL": url})
    assert "SOCLE_DATABASE_URL : remplacez le mot de passe d'exemple" in detail, detail
    assert "postgres:5432" not in detail and "@db" not in detail  # the URL is not repeated


def test_development_keeps_its_embedded_defaults(
    use_env: Callable[..., None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The laptop mode (make demo, the tests) stays as it was: relative folder, SQLite, any password."""
    monkeypatch.chdir(tmp_path)
    use_env(SOCLE_DATA_DIR=None, SOCLE_ENVIRONMENT=None, SOCLE_DATABASE_URL=None)
    settings = load_settings()
    assert settings.data_dir == Path("var") and settings.effective_database_url.startswith("sqlite:///")
    use_env(SOCLE_DATABASE_URL="postgresql://socle:change-me-postgres@127.0.0.1:5432/socle")
    assert load_settings().environment == "development"


def test_a_mistyped_variable_is_refused_with_a_suggestion(use_env: Callable[..., None]) -> None:
    detail = _error(use_env, SOCLE_DATABSE_URL="postgresql://socle@db/socle")
    assert "SOCLE_DATABSE_URL : réglage inconnu" in detail and "SOCLE_DATABASE_URL" in detail


def test_toml_file_is_read_and_the_environment_wins(use_env: Callable[..., None], tmp_path: Path) -> None:
    config = tmp_path / "socle.toml"
    config.write_text('job_timeout = 77\njob_max_attempts = 9\njob_backoff = [1, 2.5]\ns3_bucket = "depuis-toml"\n')
    use_env(SOCLE_CONFIG=str(config), SOCLE_JOB_MAX_ATTEMPTS="4", SOCLE_JOB_BACKOFF=None)
    settings = load_settings()
    assert settings.job_timeout == 77
    assert settings.s3_bucket == "depuis-toml"
    assert settings.job_backoff == (1.0, 2.5)
    assert settings.job_max_attempts == 4  # the environment wins over the file


def test_a_wrong_value_in_the_toml_file_names_the_setting(use_env: Callable[..., None], tmp_path: Path) -> None:
    config = tmp_path / "socle.toml"
    config.write_text('storage_backend = "ftp"\n')
    detail = _error(use_env, SOCLE_CONFIG=str(config))
    assert "SOCLE_STORAGE_BACKEND" in detail

    config.write_text("job_timout = 5\n")  # a typo must not pass silently
    assert "SOCLE_JOB_TIMOUT" in _error(use_env, SOCLE_CONFIG=str(config))


@pytest.mark.parametrize("content", [None, "job_timeout = = 3\n"])
def test_a_missing_or_malformed_toml_file_is_refused(
    use_env: Callable[..., None], tmp_path: Path, content: str | None
) -> None:
    config = tmp_path / "socle.toml"
    if content is not None:
        config.write_text(content)
    detail = _error(use_env, SOCLE_CONFIG=str(config))
    assert "SOCLE_CONFIG" in detail


def test_cli_stops_on_a_wrong_setting_with_a_french_message() -> None:
    result = socle_command("settings", env={"SOCLE_JOB_TIMEOUT": "-1"}, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Réglage invalide" in result.stderr and "SOCLE_JOB_TIMEOUT" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_cli_refuses_a_wrong_setting_for_any_command() -> None:
    result = socle_command("jobs", env={"SOCLE_STORAGE_BACKEND": "ftp"}, timeout=120)
    assert result.returncode == 2
    assert "SOCLE_STORAGE_BACKEND" in result.stderr and "Traceback" not in result.stderr


def test_cli_settings_shows_the_settings_and_masks_secrets() -> None:
    hidden = {
        "SOCLE_SECRET_KEY": "cle-fernet-tres-secrete",
        "SOCLE_S3_ACCESS_KEY": "acces-tres-secret",
        "SOCLE_S3_SECRET_KEY": "s3-tres-secret",
        "SOCLE_DATABASE_URL": "postgresql://socle:mot-de-passe-bd@db.example:5432/socle",
        "SOCLE_REDIS_URL": "redis://:mot-de-passe-redis@redis.example:6379/0",
    }
    result = socle_command(
        "settings",
        env={**hidden, "SOCLE_STORAGE_BACKEND": "s3", "SOCLE_S3_ENDPOINT": "minio:9000", "SOCLE_JOB_TIMEOUT": "123"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    for value in (*list(hidden.values())[:3], "mot-de-passe-bd", "mot-de-passe-redis"):
        assert value not in result.stdout, f"{value} visible:\n{result.stdout}"
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("SOCLE_")}
    assert "********" in lines["SOCLE_SECRET_KEY"] and "********" in lines["SOCLE_S3_SECRET_KEY"]
    assert "123" in lines["SOCLE_JOB_TIMEOUT"]
    assert "minio:9000" in lines["SOCLE_S3_ENDPOINT"]
    assert "db.example:5432/socle" in lines["SOCLE_DATABASE_URL"]  # the address stays readable
    assert "redis.example:6379" in lines["SOCLE_REDIS_URL"]
