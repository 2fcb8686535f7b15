"""The build's requirements match what pyproject.toml uses: an older setuptools refuses the file."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement

from conftest import ROOT


def test_setuptools_is_recent_enough_for_the_license_expression() -> None:
    """`license = "EUPL-1.2"` is a PEP 639 expression: setuptools reads it from 77.0 on; 76.1 stops with
    « invalid pyproject.toml config: `project.license` » (checked by hand with both versions)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert isinstance(pyproject["project"]["license"], str)
    (setuptools,) = [Requirement(r) for r in pyproject["build-system"]["requires"] if r.startswith("setuptools")]
    assert not setuptools.specifier.contains("76.1.0") and setuptools.specifier.contains("77.0.0")
