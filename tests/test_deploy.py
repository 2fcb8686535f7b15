"""The Docker Compose deployment stays consistent with the code: services, commands and settings."""

from __future__ import annotations

import re
import typing
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from socle.cli import cli
from socle.errors import SettingsError
from socle.queue import MAIN, lanes
from socle.settings import SERVICES, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCS = ROOT / "docs"
WORKERS = tuple(f"worker-{service}" for service in SERVICES)
# Settings that name a folder: a container that runs socle's code needs each of them on a volume.
PATH_SETTINGS = tuple(
    name
    for name, field in Settings.model_fields.items()
    if field.annotation is Path or Path in typing.get_args(field.annotation)
)
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


def _socle_containers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run socle's image (every one that has the shared block)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if service.get("build", {}).get("dockerfile") == "deploy/Dockerfile"
    }


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Target path -> (volume name, read-only) for a service's short-syntax volumes."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        mounts[target] = (source, mode == ["ro"])
    return mounts


def _parsed(command: list[str]) -> tuple[str, dict[str, Any]]:
    """Parse ``socle <command> …`` with the real CLI: unknown options or bad values fail here."""
    assert command[0] == "socle", command
    root = click.Context(cli, info_name="socle")
    sub = cli.get_command(root, command[1])
    assert sub is not None, f"socle {command[1]} : commande inconnue"
    return command[1], sub.make_context(command[1], list(command[2:]), parent=root).params


def _lanes_covered(workers: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Service -> the queues (MAIN and slow lanes) some worker serves."""
    covered: dict[str, set[str]] = {service: set() for service in SERVICES}
    for params in workers:
        for service in params["services"]:
            covered[service] |= set(params["lanes"]) or {MAIN, *lanes(service)}
    return covered


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
        assert worker["deploy"]["replicas"] >= 1
    for name in ("migrate", *SERVICES, *WORKERS):
        service = services[name]
        assert service["env_file"] == ".env"
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == (
            DEPLOY / "Dockerfile"
        )


def test_compose_workers_serve_every_queue_and_keep_slow_lanes_apart(compose: dict[str, Any]) -> None:
    workers = {}
    for name, service in _socle_containers(compose).items():
        command, params = _parsed(service["command"])
        if command == "worker":
            workers[name] = params
            assert service["deploy"]["replicas"] >= 1, name
            if "archive" in params["services"]:
                assert not params["no_fork"], f"{name} : l'identification des formats (pygfried) demande le fork"
    covered = _lanes_covered(list(workers.values()))
    for service in SERVICES:
        missing = {MAIN, *lanes(service)} - covered[service]
        assert not missing, f"aucun worker ne sert {service} : {', '.join(sorted(missing))}"
    # A slow lane (the GED's renditions) has its own worker: the worker of the main queues never takes it.
    for name, params in workers.items():
        served = set(params["lanes"])
        slow = {lane for service in params["services"] for lane in lanes(service)}
        if slow:
            assert served and not (MAIN in served and served & slow), f"{name} mêle files principales et rendus lents"


def test_every_container_mounts_the_folders_it_may_use(compose: dict[str, Any], env_example: dict[str, str]) -> None:
    """Each container may run any part of the code (the web one validates transfers, tests deposit connectors):
    every folder setting of .env.example is a named volume in each, shared, and writable where it must be."""
    folders = {f"SOCLE_{name.upper()}": env_example[f"SOCLE_{name.upper()}"] for name in PATH_SETTINGS
               if f"SOCLE_{name.upper()}" in env_example}  # fmt: skip
    assert {"SOCLE_DATA_DIR", "SOCLE_SEDA_SCHEMAS", "SOCLE_ACTES_SCHEMAS", "SOCLE_DEPOSIT_ROOT"} <= set(folders)
    containers = _socle_containers(compose)
    assert {"web", "migrate", *SERVICES, *WORKERS} <= set(containers)
    writable_somewhere = dict.fromkeys(folders.values(), False)
    for setting, path in folders.items():
        assert PurePosixPath(path).is_absolute(), f"{setting} : chemin absolu attendu"
        volumes = set()
        for name, service in containers.items():
            mounts = _mounts(service)
            assert path in mounts, f"{name} : {setting} ({path}) n'est pas monté"
            volume, read_only = mounts[path]
            volumes.add(volume)
            assert volume in compose["volumes"], f"{name} : {volume} n'est pas un volume nommé"
            if setting in ("SOCLE_DATA_DIR", "SOCLE_DEPOSIT_ROOT"):
                assert not read_only, f"{name} : {setting} doit être accessible en écriture"
            if not read_only and "serve" in service["command"]:
                writable_somewhere[path] = True  # where `docker compose exec` installs the schemas
        assert len(volumes) == 1, f"{setting} : un seul volume, partagé par tous les conteneurs ({volumes})"
    assert all(writable_somewhere.values()), f"dossier jamais accessible en écriture : {writable_somewhere}"


def test_dockerfile_prepares_every_mount_point(compose: dict[str, Any], env_example: dict[str, str]) -> None:
    """A new named volume takes the ownership of its mount point in the image: each is made for uid 10001."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    data_dir = re.search(r"^ENV .*?\bSOCLE_DATA_DIR=(\S+)", text, re.MULTILINE | re.DOTALL)
    assert data_dir is not None and data_dir.group(1) == env_example["SOCLE_DATA_DIR"]
    assert re.search(r"useradd .*--uid 10001\b", text)
    made = set(re.findall(r"mkdir -p ((?:/\S+ ?)+)", text)[0].split())
    owned = set(re.findall(r"chown -R socle:socle ((?:/\S+ ?)+)", text)[0].split())
    for name, service in _socle_containers(compose).items():
        for target in _mounts(service):
            assert target in made and target in owned, f"{name} : {target} n'est ni créé ni donné à socle"


def test_env_example_names_only_real_settings(env_example: dict[str, str]) -> None:
    unknown = sorted(set(_socle_settings(env_example)) - set(Settings.model_fields))
    assert not unknown, "réglages inconnus dans .env.example : " + ", ".join(f"SOCLE_{n.upper()}" for n in unknown)


def test_env_example_has_what_production_requires(env_example: dict[str, str]) -> None:
    settings = _socle_settings(env_example)
    missing = [f"SOCLE_{name.upper()}" for name in REQUIRED_IN_PRODUCTION if not settings.get(name)]
    assert not missing, "absents de .env.example : " + ", ".join(missing)
    assert settings["environment"] == "production"
    assert settings["storage_backend"] == "s3"
    # Not required by the program, but a deployment without them is broken: mails with relative links, every
    # @ctes flow refused (« réglage actes_schemas absent »).
    assert urlsplit(settings.get("public_url", "")).scheme == "https", "SOCLE_PUBLIC_URL absent de .env.example"
    assert settings.get("actes_schemas"), "SOCLE_ACTES_SCHEMAS absent de .env.example"


def test_env_example_is_valid_and_consistent(env_example: dict[str, str]) -> None:
    values = _socle_settings(env_example)
    # The example's placeholder secrets must be refused in production, so nobody deploys them by mistake…
    with pytest.raises(SettingsError, match="SOCLE_S3_SECRET_KEY"):
        load_settings(**values)
    with pytest.raises(SettingsError, match="SOCLE_SECRET_KEY"):
        load_settings(**{**values, "s3_secret_key": "s" * 40})
    real = {"secret_key": "k" * 44, "s3_secret_key": "s" * 40}
    with pytest.raises(SettingsError, match="SOCLE_DATABASE_URL"):  # the database's example password too
        load_settings(**{**values, **real})
    # …and everything else is valid once real secrets are set.
    real["database_url"] = values["database_url"].replace(env_example["POSTGRES_PASSWORD"], "p" * 40)
    settings = load_settings(**{**values, **real})
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
        ("web", "data", "SOCLE_DATA_DIR"),
        ("ged", "data", "SOCLE_DATA_DIR"),
        ("worker-ged", "data", "SOCLE_DATA_DIR"),
        ("interop", "depots", "SOCLE_DEPOSIT_ROOT"),
        ("worker-interop", "depots", "SOCLE_DEPOSIT_ROOT"),
        ("web", "depots", "SOCLE_DEPOSIT_ROOT"),  # the connector test writes there
        ("archive", "seda", "SOCLE_SEDA_SCHEMAS"),  # writable: `schemas install` runs there
        ("interop", "actes", "SOCLE_ACTES_SCHEMAS"),  # writable: the @ctes XSD is copied there
    ):
        assert f"{volume}:{env_example[setting]}" in services[name]["volumes"], f"{name} : volume {volume}"
    for name, volume, setting in (
        ("web", "seda", "SOCLE_SEDA_SCHEMAS"),  # the interface's « valider » of a transfer
        ("worker-archive", "seda", "SOCLE_SEDA_SCHEMAS"),
        ("worker-interop", "actes", "SOCLE_ACTES_SCHEMAS"),  # the actes flow validates its messages
    ):
        assert f"{volume}:{env_example[setting]}:ro" in services[name]["volumes"], f"{name} : volume {volume}"
    for volume in ("postgres", "minio", "data", "depots", "seda", "actes"):
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
    for package in ("poppler-utils", "ghostscript", "ocrmypdf", "tesseract-ocr-fra"):
        assert package in installed, f"{package} manque à l'image"


# ---------------------------------------------------------------------------------------------------------
# What the documentation tells an operator to type matches the Compose file and the CLI.

_FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_COMPOSE_COMMAND = re.compile(r"docker compose (?:--env-file \S+ )?(exec|run|stop|start|restart|logs|up)\b([^#\n]*)")
_TAKES_A_VALUE = {"-v", "-e", "-u", "-w", "--user", "--env-file", "--entrypoint", "--scale", "--workdir"}
_OPERATOR_PAGES = (DEPLOY / "README.md", DOCS / "installation.md", DOCS / "exploitation.md")


def _code_lines(text: str) -> list[str]:
    lines = []
    for _language, block in _FENCE.findall(text):
        lines += re.sub(r"\\\n\s*", " ", block).splitlines()
    lines += re.findall(r"`([^`\n]+)`", _FENCE.sub("", text))
    return lines


def _compose_targets(arguments: str, verb: str) -> list[str]:
    """The services a `docker compose <verb> …` names (one for exec and run, every one otherwise)."""
    words, names = arguments.split(), []
    skip = False
    for word in words:
        if skip:
            skip = False
            if word.startswith("worker-") or "=" in word:  # --scale worker-archive=3
                names.append(word.split("=")[0])
            continue
        if word in _TAKES_A_VALUE:
            skip = True
            continue
        if word.startswith("-"):
            continue
        if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
            break
        names.append(word)
        if verb in ("exec", "run"):
            break
    return names


def test_documented_compose_commands_name_real_services(compose: dict[str, Any]) -> None:
    wrong = []
    found = 0
    for page in _OPERATOR_PAGES:
        for line in _code_lines(page.read_text(encoding="utf-8")):
            for verb, arguments in _COMPOSE_COMMAND.findall(line):
                for name in _compose_targets(arguments, verb):
                    found += 1
                    if name not in compose["services"]:
                        wrong.append(f"{page.relative_to(ROOT)}: {line.strip()}\n    service inconnu : {name}")
    assert found > 20, "les commandes docker compose documentées n'ont pas été trouvées"
    assert not wrong, "\n".join(wrong)


def test_documented_compose_socle_commands_parse(compose: dict[str, Any]) -> None:
    """`docker compose exec|run … <service> socle <command> …`: the command and its options exist."""
    checked = 0
    containers = _socle_containers(compose)
    for page in _OPERATOR_PAGES:
        for line in _code_lines(page.read_text(encoding="utf-8")):
            match = re.search(r"docker compose (exec|run)\b(.*)", line)
            targets = _compose_targets(match.group(2), match.group(1)) if match else []
            if not targets or targets[0] not in containers:
                continue  # postgres, minio…
            match = re.match(rf".*? {targets[0]} socle ((?:[a-z][a-z-]* ?)+)(.*)", match.group(2) + " ")
            if match is None:
                continue  # sh -c, python -c, ls…
            words = match.group(1).split()
            command: click.Command = cli
            context = click.Context(cli, info_name="socle")
            while isinstance(command, click.Group) and words:
                sub = command.get_command(context, words[0])
                assert sub is not None, f"{page.relative_to(ROOT)}: {line.strip()}\n    commande inconnue {words[0]}"
                command, context = sub, click.Context(sub, parent=context, info_name=words.pop(0))
            known = {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
            for option in re.findall(r"(?:^|\s)(--[a-z][a-z0-9-]*)", match.group(2)):
                assert option in known, f"{page.relative_to(ROOT)}: {line.strip()}\n    option inconnue {option}"
            checked += 1
    assert checked > 15


def test_compose_upgrade_stops_every_worker_before_migrating(compose: dict[str, Any]) -> None:
    """Like docs/installation.md: workers stop first, then `up -d` runs migrate before starting them again."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    section = text.split("## Mettre à jour", 1)[1].split("\n## ", 1)[0]
    block = _FENCE.search(section)
    assert block is not None
    lines = [line.strip() for line in block.group(2).splitlines()]
    stops = [i for i, line in enumerate(lines) if line.startswith("docker compose stop ")]
    ups = [i for i, line in enumerate(lines) if re.match(r"docker compose (--env-file \S+ )?up -d\b", line)]
    assert stops and ups and stops[0] < ups[-1], "arrêter les workers avant `up -d` (qui relance migrate)"
    stopped = set(lines[stops[0]].split()[3:])
    workers = {name for name, service in _socle_containers(compose).items() if service["command"][1] == "worker"}
    assert workers <= stopped, "workers non arrêtés avant la migration : " + ", ".join(sorted(workers - stopped))
    assert any("pg_dump" in line for line in lines[: stops[0]]), "sauvegarder la base avant la mise à jour"


def _systemd_units() -> dict[str, dict[str, list[str]]]:
    """The unit files of docs/installation.md: name -> key -> values, from their [Service] section."""
    units = {}
    for language, block in _FENCE.findall((DOCS / "installation.md").read_text(encoding="utf-8")):
        name = re.match(r"# /etc/systemd/system/(\S+)", block)
        if language != "ini" or name is None:
            continue
        keys: dict[str, list[str]] = {}
        section = block.split("[Service]", 1)[1].split("\n[", 1)[0]
        for line in section.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                keys.setdefault(key.strip(), []).append(value.strip())
        units[name.group(1)] = keys
    return units


def test_systemd_units_run_real_commands_as_socle_from_the_data_dir() -> None:
    text = (DOCS / "installation.md").read_text(encoding="utf-8")
    env_file = next(block for _, block in _FENCE.findall(text) if block.startswith("# /etc/socle/socle.env"))
    values = dict(line.split("=", 1) for line in env_file.splitlines() if line and not line.startswith("#"))
    # Without an absolute SOCLE_DATA_DIR, a service started in / would keep its files in /var.
    assert PurePosixPath(values["SOCLE_DATA_DIR"]).is_absolute()
    real = {key: ("x" * 44 if value == "…" else value) for key, value in values.items()}
    load_settings(**_socle_settings(real))  # the example is a valid production configuration
    units = _systemd_units()
    assert len(units) >= 4, "les exemples d'unités systemd n'ont pas été trouvés"
    enabled = re.search(r"systemctl enable --now ([^\n]+)", re.sub(r"\\\n\s*", " ", text))
    assert enabled is not None
    instances = re.findall(r"socle-worker@([a-z]+)", enabled.group(1))
    workers = []
    for name, keys in units.items():
        assert keys["User"] == ["socle"], name
        assert keys["WorkingDirectory"] == [values["SOCLE_DATA_DIR"]], name
        assert keys["EnvironmentFile"] == ["/etc/socle/socle.env"], name
        executable, *arguments = keys["ExecStart"][0].split()
        assert executable == "/opt/socle/bin/socle", name
        for instance in instances if "%i" in keys["ExecStart"][0] else [None]:
            command, params = _parsed(["socle", *(a.replace("%i", instance or "") for a in arguments)])
            if command == "worker":
                assert keys.get("KillMode") == ["mixed"], f"{name} : SIGTERM au seul worker, qui finit sa tâche"
                workers.append(params)
    covered = _lanes_covered(workers)
    for service in SERVICES:
        missing = {MAIN, *lanes(service)} - covered[service]
        assert not missing, f"aucune unité systemd ne sert {service} : {', '.join(sorted(missing))}"
