"""What a partner's technician copies from the documentation works as written: commands, options, settings."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from socle.cli import cli
from socle.errors import SettingsError
from socle.settings import _NOT_SETTINGS, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", ROOT / "deploy" / "README.md", *sorted(DOCS.glob("*.md"))]
SOCLE = Path(sys.executable).parent / "socle"
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_INLINE = re.compile(r"`([^`\n]+)`")
_INVOCATION = re.compile(r"(?:^|[\s(])(?:\.venv/bin/|/opt/socle/bin/)?socle((?: +[^\s|;&)<>#]+)+)")
_VARIABLE = re.compile(r"\bSOCLE_[A-Z0-9_]*[A-Z0-9]\b")


def _code(text: str) -> Iterator[str]:
    """The code a reader copies: fenced blocks (continued lines joined) and inline spans."""
    for block in _FENCE.findall(text):
        yield from re.sub(r"\\\n\s*", " ", block).splitlines()
    yield from _INLINE.findall(_FENCE.sub("", text))


def _invocations() -> list[tuple[str, list[str]]]:
    found = []
    for page in PAGES:
        for line in _code(page.read_text(encoding="utf-8")):
            for match in _INVOCATION.finditer(line):
                found.append((f"{page.relative_to(ROOT)}: {line.strip()}", match.group(1).split()))
    return found


def _resolve(words: list[str]) -> tuple[click.Command, list[str], list[str]]:
    """The command the words name, its path, and the words left after it."""
    command: click.Command = cli
    context = click.Context(cli, info_name="socle")
    path: list[str] = []
    while isinstance(command, click.Group) and words and re.fullmatch(r"[a-z][a-z0-9-]*", words[0]):
        sub = command.get_command(context, words[0])
        if sub is None:
            break
        path.append(words.pop(0))
        command, context = sub, click.Context(sub, parent=context, info_name=path[-1])
    return command, path, words


def test_documented_commands_exist() -> None:
    wrong = []
    for where, words in _invocations():
        command, path, rest = _resolve(list(words))
        if isinstance(command, click.Group) and rest and re.fullmatch(r"[a-z][a-z0-9-]*", rest[0]):
            wrong.append(f"{where}\n    « socle {' '.join(path + rest[:1])} » : commande inconnue")
            continue
        known = {"--help"} | {name for param in command.params for name in (*param.opts, *param.secondary_opts)}
        for word in rest:
            option = word.split("=")[0]
            if re.fullmatch(r"--[a-z][a-z0-9-]*", option) and option not in known:
                wrong.append(f"{where}\n    « socle {' '.join(path)} » n'a pas d'option {option}")
    assert len(_invocations()) > 50, "les commandes documentées n'ont pas été trouvées"
    assert not wrong, "\n".join(wrong)


def test_documented_variables_are_settings_or_declared() -> None:
    settings = {f"SOCLE_{name.upper()}" for name in Settings.model_fields}
    unknown = set()
    for page in PAGES:
        for line in page.read_text(encoding="utf-8").splitlines():
            if "réglage inconnu" in line:  # the doc shows how a mistyped name is refused
                continue
            for name in _VARIABLE.findall(line):
                if name not in settings and not name.startswith(_NOT_SETTINGS):
                    unknown.add(f"{page.relative_to(ROOT)}: {name}")
    assert not unknown, "variables documentées mais inconnues du programme :\n" + "\n".join(sorted(unknown))


@pytest.mark.parametrize("name", [name for name in _NOT_SETTINGS if not name.endswith("_")])
def test_configuration_lists_variables_read_outside_settings(name: str) -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert f"`{name}`" in text, f"{name} est lue par socle mais absente de docs/configuration.md"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("SOCLE_") and not name.startswith("SOCLE_TEST_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_configuration_toml_example_loads(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    example = re.search(r"^```toml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert example is not None
    tomllib.loads(example.group(1))
    config = tmp_path / "socle.toml"
    config.write_text(example.group(1), encoding="utf-8")
    clean_env.setenv("SOCLE_CONFIG", str(config))
    # The secrets the example says to keep in the environment, and nothing else.
    secrets = re.findall(r"^#\s+(SOCLE_[A-Z0-9_, ]+)$", example.group(1), re.MULTILINE)
    assert secrets, "l'exemple ne dit plus quels secrets vont dans l'environnement"
    for name in re.findall(r"SOCLE_[A-Z0-9_]+", secrets[0]):
        clean_env.setenv(name, "une-valeur-secrete-assez-longue-pour-la-production")
    settings = load_settings()
    assert settings.environment == "production"
    assert settings.smtp_host == "smtp.interne"


def test_configuration_error_example_is_the_program_s(clean_env: pytest.MonkeyPatch) -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    example = re.search(r"^```text\n(Réglage invalide :\n.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert example is not None
    clean_env.setenv("SOCLE_STORAGE_BACKEND", "s3")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.detail == example.group(1).rstrip("\n")


def test_installation_local_steps_run_on_a_fresh_data_dir(tmp_path: Path) -> None:
    """The laptop block of docs/installation.md, line by line, on an empty SOCLE_DATA_DIR (serve left out)."""
    text = (DOCS / "installation.md").read_text(encoding="utf-8")
    section = text.split("Pour servir l'API en local", 1)[1]
    block = _FENCE.search(section)
    assert block is not None
    env = {name: value for name, value in os.environ.items() if not name.startswith("SOCLE_")}
    env["SOCLE_DATA_DIR"] = str(tmp_path / "data")
    ran = []
    for line in block.group(1).splitlines():
        words = shlex.split(line, comments=True)
        if not words or words[:2] == [".venv/bin/socle", "serve"]:
            continue
        assert words[0] == ".venv/bin/socle", line
        result = subprocess.run(
            [str(SOCLE), *words[1:]], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"
        ran.append(words[1:3])
    assert [w for w in ran if w[0] == "tenant"] == [["tenant", "create"], ["tenant", "add-user"], ["tenant", "token"]]
    assert result.stdout.startswith("socle_"), "le jeton d'accès n'a pas été affiché"
