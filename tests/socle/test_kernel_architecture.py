"""The architecture holds: services never import each other, and messages are their only contract."""

from __future__ import annotations

import importlib
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from socle import messages, queue
from socle.settings import SERVICES

from conftest import ROOT


def test_import_contracts_hold() -> None:
    command = Path(sys.executable).with_name("lint-imports")
    if not command.exists():
        found = shutil.which("lint-imports")
        if found is None:
            pytest.fail("import-linter (lint-imports) n'est pas installé : pip install -e '.[dev]'")
        command = Path(found)
    result = subprocess.run([str(command), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_message_list_is_complete_and_unique() -> None:
    assert len(messages.ALL) >= 10
    assert len({message.function for message in messages.ALL}) == len(messages.ALL)
    assert set(messages.BY_FUNCTION) == {message.function for message in messages.ALL}
    declared = {name for name, value in vars(messages).items() if isinstance(value, messages.Message)}
    assert len(declared) == len(messages.ALL)


@pytest.mark.parametrize("message", messages.ALL, ids=lambda message: message.function)
def test_each_message_names_a_job_taking_exactly_its_parameters(message: messages.Message) -> None:
    module_name, _, name = message.function.rpartition(".")
    assert message.service in SERVICES and module_name == f"{message.service}.jobs"
    function = getattr(importlib.import_module(module_name), name)
    assert inspect.isfunction(function) and function.__module__ == module_name
    assert queue._resolve(message.function) is function  # the queue accepts it

    parameters = inspect.signature(function).parameters.values()
    assert all(parameter.kind is inspect.Parameter.KEYWORD_ONLY for parameter in parameters), message.function
    assert all(parameter.default is inspect.Parameter.empty for parameter in parameters), message.function
    assert sorted(parameter.name for parameter in parameters) == sorted(message.parameters)
    assert len(set(message.parameters)) == len(message.parameters)
    assert message.description.strip()


def test_every_public_job_function_has_its_message() -> None:
    for service in SERVICES:
        module = importlib.import_module(f"{service}.jobs")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ == module.__name__ and not name.startswith("_"):
                assert f"{module.__name__}.{name}" in messages.BY_FUNCTION, f"{module.__name__}.{name}"
