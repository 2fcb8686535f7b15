"""The documentation builds strictly, stays in step with the code, and makes no third-party request."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from socle.messages import ALL
from socle.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_EXTERNAL = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)""", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"""@import\s+['"]([^'"]+)['"]""", re.IGNORECASE)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("docs") / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"mkdocs build --strict a échoué :\n{result.stdout}\n{result.stderr}"
    return target


def test_mkdocs_builds_strictly(site: Path) -> None:
    pages = {path.relative_to(site).as_posix() for path in site.rglob("index.html")}
    for name in ("architecture", "installation", "configuration", "jobs", "api", "exploitation"):
        assert f"{name}/index.html" in pages
    assert 'lang="fr"' in (site / "index.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_configuration_documents_every_setting(field: str) -> None:
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert re.search(rf"\bSOCLE_{field.upper()}\b", text), f"SOCLE_{field.upper()} absent de docs/configuration.md"


@pytest.mark.parametrize("function", sorted(message.function for message in ALL))
def test_jobs_documents_every_message(function: str) -> None:
    text = (DOCS / "jobs.md").read_text(encoding="utf-8")
    assert f"`{function}`" in text, f"{function} absent de docs/jobs.md"


class _Resources(HTMLParser):
    """Collect what a browser would fetch by itself: script sources, linked files, inline CSS."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.css: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "img", "iframe", "source") and values.get("src"):
            self.urls.append(values["src"] or "")
        if tag == "link" and values.get("href"):
            self.urls.append(values["href"] or "")
        if values.get("style"):
            self.css.append(values["style"] or "")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.css.append(data)


def _css_urls(css: str) -> list[str]:
    return _CSS_URL.findall(css) + _CSS_IMPORT.findall(css)


def test_site_makes_no_third_party_request(site: Path) -> None:
    external: list[str] = []
    for page in site.rglob("*.html"):
        parser = _Resources()
        parser.feed(page.read_text(encoding="utf-8"))
        urls = parser.urls + [url for css in parser.css for url in _css_urls(css)]
        external += [f"{page.relative_to(site)}: {url}" for url in urls if _EXTERNAL.match(url)]
    for stylesheet in site.rglob("*.css"):
        css = stylesheet.read_text(encoding="utf-8", errors="replace")
        external += [f"{stylesheet.relative_to(site)}: {url}" for url in _css_urls(css) if _EXTERNAL.match(url)]
    assert not external, "ressources chargées depuis un tiers :\n" + "\n".join(sorted(set(external)))
