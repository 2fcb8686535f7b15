"""Server-side rendering of the web interface: Jinja2 templates, French first, English from catalogues.

Each service registers its own templates folder (``<package>/templates``) and catalogues
(``<package>/locale/en/LC_MESSAGES/*.po``); templates are named ``<package>/<file>.html``.
Message ids are the French texts themselves, so French needs no catalogue and can never show a raw id.
Catalogues are read from their ``.po`` sources at start-up: no compiled file is kept in the repository.
"""

from __future__ import annotations

import hashlib
import io
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations
from markupsafe import Markup

from socle.dates import PARIS  # collectivités work in French local time; times are stored in UTC
from socle.errors import Message

LOCALES = ("fr", "en")
DEFAULT_LOCALE = "fr"
LOCALE_NAMES = {"fr": "Français", "en": "English"}


@dataclass(frozen=True)
class Section:
    """An entry of the main navigation, shown to users holding one of ``roles`` (empty: everyone)."""

    title: str  # French; translated through the catalogues
    url: str
    roles: frozenset[str] = field(default_factory=frozenset)
    order: int = 50


_packages: list[str] = ["socle.ui"]
_sections: list[Section] = []
_globals: dict[str, Any] = {}
# The page's database session while it is drawn, for the globals that read (a menu entry shown by right).
current_session: ContextVar[Any] = ContextVar("current_session", default=None)


def register(package: str, *sections: Section) -> None:
    """Declare a package's templates and catalogue, and its navigation entries. Call at import time."""
    if package not in _packages:
        _packages.append(package)
        _environment.cache_clear()
        translations.cache_clear()
    for section in sections:
        if section not in _sections:
            _sections.append(section)
    _sections.sort(key=lambda section: (section.order, section.title))


def register_global(name: str, value: Any) -> None:
    """Give every template a value or a function (a service's own navigation check). Call at import time."""
    _globals[name] = value
    _environment.cache_clear()


def sections_for(roles: frozenset[str]) -> list[Section]:
    return [s for s in _sections if not s.roles or roles & s.roles or "admin" in roles]


def _template_folder(package: str) -> Path:
    return Path(str(resources.files(package))) / "templates"


@cache
def translations(locale: str) -> NullTranslations:
    if locale == DEFAULT_LOCALE:
        return NullTranslations()
    merged = Translations()
    for package in _packages:
        folder = Path(str(resources.files(package))) / "locale" / locale / "LC_MESSAGES"
        for po in sorted(folder.glob("*.po")):
            with po.open("rb") as source:
                catalog = read_po(source, locale=locale)
            compiled = io.BytesIO()
            write_mo(compiled, catalog)
            compiled.seek(0)
            merged.merge(Translations(compiled))
    return merged


def gettext(locale: str, message: str, **values: Any) -> str:
    text = translations(locale).gettext(message)
    return text % values if values else text


def translate(locale: str, text: str) -> str:
    """A domain message (``socle.errors.Message``) in ``locale``: its template through the catalogues, then its
    values, themselves translated when they are messages (codes, names and numbers stay as they are).
    A plain string goes through the catalogues as it is (a literal message of the kit may be there)."""
    if not text:
        return text  # gettext("") is the catalogue's header
    if not isinstance(text, Message):
        return translations(locale).gettext(text)
    values = {
        name: translate(locale, value) if isinstance(value, Message) else value for name, value in text.values.items()
    }
    return gettext(locale, text.template, **values)


@cache
def _environment(locale: str) -> jinja2.Environment:
    loader = jinja2.PrefixLoader(
        {package.split(".")[0]: jinja2.FileSystemLoader(_template_folder(package)) for package in _packages}
    )
    env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,  # a missing value is a bug to see in the tests, not a blank
    )
    catalogue = translations(locale)

    # Jinja marks what gettext returns as safe HTML. A message may be a variable holding what a user typed
    # (a flash message naming a hold, an error detail): escape it first, so nothing a user typed is markup.
    def gettext(message: str) -> Markup:
        return _escape_text(catalogue.gettext(message))

    def ngettext(singular: str, plural: str, count: int) -> Markup:
        return _escape_text(catalogue.ngettext(singular, plural, count))

    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    env.filters["date"] = lambda value: _format_date(value, locale)
    env.filters["datetime"] = lambda value: _format_datetime(value, locale)
    env.filters["number"] = lambda value: format_number(value, locale)
    # Text already translated (an error, a flash message): escaped as the catalogue's texts are, apostrophe kept.
    env.filters["text"] = lambda value: _escape_text(str(value))
    env.filters["filesize"] = lambda value: _format_size(value, locale)
    env.globals["static"] = static_url
    env.globals["LOCALE_NAMES"] = LOCALE_NAMES
    env.globals.update(_globals)
    return env


def format_number(value: int | float | Decimal | str | None, locale: str) -> str:
    """A number in the locale's way (1 200,50 or 1,200.50). A decimal (a Decimal, or the text a decimal field
    keeps) shows every digit it has, trailing zeros included: an amount of 1200.50 is not 1 200,5."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = Decimal(value)
    if not isinstance(value, Decimal):
        return format_decimal(value, locale=locale)
    exponent = value.as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    pattern = "#,##0." + "0" * places if places else "#,##0"
    return format_decimal(value, format=pattern, locale=locale, decimal_quantization=False)


def _escape_text(text: str) -> Markup:
    """Escape for text and double-quoted attributes; the apostrophe, everywhere in French, is left as is."""
    return Markup(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&#34;"))


def render_template(locale: str, name: str, context: dict[str, Any]) -> str:
    return _environment(locale if locale in LOCALES else DEFAULT_LOCALE).get_template(name).render(context)


def _format_date(value: date | datetime | None, locale: str) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(PARIS).date() if value.tzinfo else value.date()
    return format_date(value, format="long", locale=locale)


def _format_datetime(value: datetime | None, locale: str) -> str:
    if value is None:
        return ""
    return format_datetime(value, format="medium", tzinfo=PARIS, locale=locale)


def _format_size(value: int | None, locale: str) -> str:
    if value is None:
        return ""
    for unit in ("o", "Kio", "Mio", "Gio"):
        if value < 1024 or unit == "Gio":
            shown = format_decimal(round(value, 1), locale=locale)
            return f"{shown}\u00a0{unit if locale == 'fr' else unit.replace('o', 'B')}"
        value /= 1024  # type: ignore[assignment]
    return str(value)


# ---------------------------------------------------------------------------------------------------------
# Static assets: served by the kit itself, with a digest in the URL so they can be cached for a year.

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PREFIX = "/static"


@cache
def _static_digest(name: str) -> str:
    return hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:12]


def static_url(name: str) -> str:
    return f"{STATIC_PREFIX}/{name}?v={_static_digest(name)}"
