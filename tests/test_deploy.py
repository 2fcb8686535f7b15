"""The Docker Compose deployment stays consistent with the code: services, commands and settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from socle.errors import SettingsError
from socle.settings import SERVICES, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
WORKERS = tuple(f"worker-{service}" for service in SERVICES)
# What a production deployment cannot do without (the rest has safe defaults).
REQUIRED_IN_PRODUCTION = (
    "database_url",
    "redis_url",
    "storage_backend",
    "s3_endpoint",
    "s3_access_key",
    "s3_secret_key",
    "secret_key",
    "environment",
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate((DEPLOY / ".env.example").read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f".env.example, ligne {number} : « NOM=valeur » attendu"
        assert name not in values, f".env.example : {name} défini deux fois"
        values[name.strip()] = value.strip()
    return values


def _socle_settings(env: dict[str, str]) -> dict[str, str]:
    return {name.removeprefix("SOCLE_").lower(): value for name, value in env.items() if name.startswith("SOCLE_")}


def test_compose_has_every_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "redis", "minio", "migrate", "web", *SERVICES, *WORKERS):
        assert name in services, f"service {name} absent de docker-compose.yml"
    # The web interface is the whole kit's app (pages at "/", APIs under their prefixes).
    assert services["web"]["command"][:2] == ["socle", "serve"] and services["web"]["command"][2] == "--host"


def test_compose_commands_match_the_cli(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["command"] == ["socle", "migrate"]
    for name in SERVICES:
        api = services[name]
        assert api["command"][:3] == ["socle", "serve", name]
        assert "--host" in api["command"] and "0.0.0.0" in api["command"]
        assert "/readyz" in " ".join(api["healthcheck"]["test"])
        assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        worker = services[f"worker-{name}"]
        assert worker["command"][:3] == ["socle", "worker", name]
        assert set(worker["command"][3:]) <= {"--no-fork"}  # the archive's pygfried needs its fork
        assert worker["deploy"]["replicas"] >= 1
    for name in ("migrate", *SERVICES, *WORKERS):
        service = services[name]
        assert service["env_file"] == ".env"
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == (
            DEPLOY / "Dockerfile"
        )


def test_env_example_names_only_real_settings(env_example: dict[str, str]) -> None:
    unknown = sorted(set(_socle_settings(env_example)) - set(Settings.model_fields))
    assert not unknown, "réglages inconnus dans .env.example : " + ", ".join(f"SOCLE_{n.upper()}" for n in unknown)


def test_env_example_has_what_production_requires(env_example: dict[str, str]) -> None:
    settings = _socle_settings(env_example)
    missing = [f"SOCLE_{name.upper()}" for name in REQUIRED_IN_PRODUCTION if not settings.get(name)]
    assert not missing, "absents de .env.example : " + ", ".join(missing)
    assert settings["environment"] == "production"
    assert settings["storage_backend"] == "s3"


def test_env_example_is_valid_and_consistent(env_example: dict[str, str]) -> None:
    values = _socle_settings(env_example)
    # The example's placeholder secrets must be refused in production, so nobody deploys them by mistake…
    with pytest.raises(SettingsError, match="SOCLE_S3_SECRET_KEY"):
        load_settings(**values)
    with pytest.raises(SettingsError, match="SOCLE_SECRET_KEY"):
        load_settings(**{**values, "s3_secret_key": "s" * 40})
    # …and everything else is valid once real secrets are set.
    settings = load_settings(**{**values, "secret_key": "k" * 44, "s3_secret_key": "s" * 40})
    assert settings.environment == "production"
    database = urlsplit(env_example["SOCLE_DATABASE_URL"])
    assert database.hostname == "postgres"
    assert database.username == env_example["POSTGRES_USER"]
    assert database.password == env_example["POSTGRES_PASSWORD"]
    assert database.path == "/" + env_example["POSTGRES_DB"]
    assert env_example["SOCLE_S3_ENDPOINT"].split(":")[0] == "minio"
    assert env_example["SOCLE_S3_ACCESS_KEY"] == env_example["MINIO_ROOT_USER"]
    assert env_example["SOCLE_S3_SECRET_KEY"] == env_example["MINIO_ROOT_PASSWORD"]


def test_compose_variables_are_in_env_example(env_example: dict[str, str]) -> None:
    text = (DEPLOY / "docker-compose.yml").read_text(encoding="utf-8")
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    assert used, "docker-compose.yml devrait lire ses mots de passe dans .env"
    assert not sorted(used - set(env_example))


def test_volumes_match_the_settings(compose: dict[str, Any], env_example: dict[str, str]) -> None:
    services = compose["services"]
    for name, volume, setting in (
        ("interop", "depots", "SOCLE_DEPOSIT_ROOT"),
        ("worker-interop", "depots", "SOCLE_DEPOSIT_ROOT"),
        ("archive", "seda", "SOCLE_SEDA_SCHEMAS"),
        ("worker-archive", "seda", "SOCLE_SEDA_SCHEMAS"),
    ):
        assert f"{volume}:{env_example[setting]}" in services[name]["volumes"], f"{name} : volume {volume}"
    for volume in ("postgres", "minio", "depots", "seda"):
        assert volume in compose["volumes"]


def test_dockerfile_installs_every_package() -> None:
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    assert re.search(r"^RUN pip install \.", text, re.MULTILINE)
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0"), "l'image doit tourner sans privilèges"
    for package in ("socle", "ged", "parapheur", "archive", "interop"):
        assert re.search(rf"^COPY {package} ", text, re.MULTILINE), f"{package} n'est pas copié dans l'image"
    assert re.search(r"^COPY pyproject\.toml README\.md ", text, re.MULTILINE)


def test_dockerfile_installs_the_tools_the_ged_calls() -> None:
    """The GED's renditions call these programs (ged/renditions.py): without them, every document would fail."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    installed = " ".join(re.findall(r"apt-get install ([^\n&]+)", text))
    for package in ("poppler-utils", "ocrmypdf", "tesseract-ocr-fra"):
        assert package in installed, f"{package} manque à l'image"
