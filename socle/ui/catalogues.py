"""Keep each package's English catalogues in step with its French pages.

Messages are extracted from the package's templates (``{{ _("…") }}``, ``{% trans %}``) and from its Python
UI code (``t(request, "…")``, ``Section("…")``); a catalogue gains the new ones (empty, to translate) and
keeps the translations it has. ``missing()`` lists what is not translated yet: the tests call it.

Administration pages (templates ``admin*.html``, modules ``admin.py`` and ``ui_admin*.py``) have their own
catalogue, ``admin.po``, beside ``messages.po``: the two can be edited apart. Pages read both.

The domain's error messages (``message("…")`` of ``socle.errors``, in any module of the service: the API
sends them in French, the pages show them in the user's language) have a third one, ``errors.po``: they are
written by other hands than the pages', and a page's catalogue stays the size of its pages. The kernel's
(every module of ``socle``, the error titles included) go to ``socle/ui``'s ``errors.po``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po

_KEYWORDS = {"_": None, "gettext": None, "t": (2,), "Section": (1,), "_error_page": (3, 4)}


def _package_dir(package: str) -> Path:
    return Path(str(resources.files(package)))


def catalogue_path(package: str, locale: str = "en", domain: str = "messages") -> Path:
    return _package_dir(package) / "locale" / locale / "LC_MESSAGES" / f"{domain}.po"


def domain_of(path: Path) -> str:
    return "admin" if path.name.startswith(("admin", "ui_admin")) else "messages"


def _error_sources(package: str) -> Iterator[Path]:
    """Every module of the service (``socle.ui``'s catalogue serves the whole kernel), migrations apart."""
    root = _package_dir(package.split(".")[0])
    for module in sorted(root.rglob("*.py")):
        if "migrations" not in module.relative_to(root).parts:
            yield module


def _sources(package: str) -> Iterator[tuple[str, Path]]:
    root = _package_dir(package)
    for template in sorted((root / "templates").rglob("*.html")):
        yield "jinja2.ext:babel_extract", template
    for name in ("ui.py", "admin.py", "shell.py", "web.py", "app.py", "oidc.py"):
        if (root / name).is_file():
            yield "python", root / name
    for module in sorted(root.glob("ui_*.py")):
        yield "python", module


def _error_templates(module: Path) -> Iterator[str]:
    """The templates of ``message("…", **values)`` calls. Read from the syntax tree, not Babel's tokenizer: a
    variable named ``message`` (an ASGI message, a mail) would otherwise be taken for a call."""
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"), str(module))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "message"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def extract(package: str, domain: str | None = None) -> set[str]:
    messages: set[str] = set()
    if domain in (None, "errors"):
        for module in _error_sources(package):
            messages.update(_error_templates(module))
        if domain == "errors":
            return messages
    for method, path in _sources(package):
        if domain is not None and domain_of(path) != domain:
            continue
        options = {"extensions": "jinja2.ext.i18n", "trimmed": "false"} if method.startswith("jinja2") else {}
        for _lineno, message, _comments, _context in extract_from_file(
            method, str(path), keywords=_KEYWORDS, options=options
        ):
            texts = message if isinstance(message, tuple) else (message,)
            messages.update(text for text in texts if text)
    return messages


DOMAINS = ("messages", "admin", "errors")


def _read(package: str, locale: str, domain: str = "messages") -> Catalog:
    path = catalogue_path(package, locale, domain)
    if not path.is_file():
        return Catalog(locale=locale, project="socle")
    with path.open("rb") as source:
        return read_po(source, locale=locale)


def update(package: str, locale: str = "en") -> int:
    """Add the new French messages to each catalogue (messages, admin, errors); return how many are still
    untranslated."""
    for domain in DOMAINS:
        wanted = extract(package, domain)
        path = catalogue_path(package, locale, domain)
        if not wanted and not path.is_file():
            continue  # no administration page in this package: no empty admin.po
        catalog = _read(package, locale, domain)
        for message in sorted(wanted - _translated_apart(package, locale)):
            if message not in catalog:
                catalog.add(message, "")
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as target:
            write_po(target, catalog, width=120, sort_output=True, omit_header=False)
        temporary.replace(path)
    return len(missing(package, locale))


def missing(package: str, locale: str = "en") -> list[str]:
    """French messages of the package's pages and errors that have no translation in their catalogue."""
    untranslated: set[str] = set()
    for domain in DOMAINS:
        catalog = _read(package, locale, domain)
        untranslated.update(
            message for message in extract(package, domain) if message not in catalog or not catalog[message].string
        )
    return sorted(untranslated - _translated_apart(package, locale))


def _translated_apart(package: str, locale: str) -> set[str]:
    """Messages translated by the folder's other catalogues (e.g. ``retention.po``, written by hand for pages
    kept apart): the pages read every ``.po`` of the folder, so these need no entry in messages or admin."""
    folder = catalogue_path(package, locale).parent
    found: set[str] = set()
    for path in sorted(folder.glob("*.po")) if folder.is_dir() else []:
        if path.stem in DOMAINS:
            continue
        with path.open("rb") as source:
            found.update(str(message.id) for message in read_po(source, locale=locale) if message.id and message.string)
    return found
