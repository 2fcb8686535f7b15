"""The folder's "bordereau": an A4 PDF, in French, that tells a folder's life for the record.

It shows the collectivité, the folder (title, typology, status, author), its documents with their SHA-256
and the whole history (date, time, actor, action, "en l'absence de", comment), over as many pages as it
takes, each page numbered "page N sur M". Built with ReportLab's page layout engine (platypus); the Bitstream
Vera fonts shipped with ReportLab are embedded, so the PDF reads the same everywhere and years from now.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO
from xml.sax.saxutils import escape

import reportlab
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from parapheur.notifications import DEFAULT_TIMEZONE, local_time, zone_or_utc
from socle.files import atomic_output

_FONT, _BOLD = "SocleVera", "SocleVera-Bold"
_MARGIN = 15 * mm
_WIDTH = A4[0] - 2 * _MARGIN
_GRID = colors.HexColor("#9aa0a6")
_HEADER_BG = colors.HexColor("#e8eaed")
_STRIPE = colors.HexColor("#f6f7f8")


@dataclass(frozen=True)
class HistoryLine:
    """One act in the folder's history."""

    at: datetime
    actor: str
    action: str  # French label: "Visa", "Signature", "Rejet", "Annotation", …
    on_behalf_of: str | None = None
    comment: str | None = None


@dataclass(frozen=True)
class BordereauData:
    """Everything the bordereau prints; the history in the order it happened."""

    tenant_name: str
    folder_id: str
    title: str
    typology: str | None
    status: str  # French label
    created_by: str
    created_at: datetime
    documents: list[tuple[str, str]]  # (file name, sha256)
    history: list[HistoryLine]


def render_bordereau(
    data: BordereauData,
    destination: Path,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    generated_at: datetime | None = None,
) -> None:
    """Write the bordereau of ``data`` as a PDF at ``destination``, atomically (all of it or nothing).

    Times are shown in ``timezone`` (naive datetimes are taken as UTC). ``generated_at`` (default: now) is
    printed as the edition date.

    Raises:
        FileNotFoundError: the destination's folder does not exist.
    """
    if not destination.parent.is_dir():
        raise FileNotFoundError(f"dossier de destination introuvable : {destination.parent}")
    zone = zone_or_utc(timezone)
    edited = generated_at or datetime.now(UTC)
    # Two passes: the first counts the pages, so that every footer can say "page N sur M".
    probe = io.BytesIO()
    pages = _build(probe, data, zone, edited, total=None)
    with atomic_output(destination) as out:
        _build(out, data, zone, edited, total=pages)


def _build(out: BinaryIO | io.BytesIO, data: BordereauData, zone: tzinfo, edited: datetime, total: int | None) -> int:
    _register_fonts()
    document = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=_MARGIN,
        rightMargin=_MARGIN,
        topMargin=_MARGIN,
        bottomMargin=_MARGIN + 6 * mm,
        title=f"Bordereau — {_plain(data.title)}",
        author=_plain(data.tenant_name),
        subject=f"Historique du dossier {data.folder_id}",
        creator="socle (parapheur)",
        lang="fr-FR",
        initialFontName=_FONT,  # otherwise an unused, non-embedded Helvetica is declared
    )

    def footer(canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        canvas.setFont(_FONT, 7.5)
        canvas.setFillColor(colors.HexColor("#444444"))
        y = _MARGIN - 2 * mm
        canvas.drawString(_MARGIN, y, _fit(f"{_plain(data.tenant_name)} — bordereau du dossier {data.folder_id}"))
        page = f"Page {doc.page} sur {total}" if total else f"Page {doc.page}"
        canvas.drawRightString(A4[0] - _MARGIN, y, page)
        canvas.restoreState()

    document.build(_story(data, zone, edited), onFirstPage=footer, onLaterPages=footer)
    return int(document.page)


def _story(data: BordereauData, zone: tzinfo, edited: datetime) -> list[Flowable]:
    styles = _styles()
    story: list[Flowable] = [
        Paragraph(_markup(data.tenant_name), styles["tenant"]),
        Paragraph("Bordereau de dossier", styles["title"]),
        Paragraph(_markup(data.title), styles["subtitle"]),
        Spacer(1, 3 * mm),
        _facts(data, zone, edited, styles),
        Paragraph(f"Documents ({len(data.documents)})", styles["heading"]),
        _documents(data.documents, styles),
        Paragraph(f"Historique ({len(data.history)} action{'s' if len(data.history) > 1 else ''})", styles["heading"]),
    ]
    if data.history:
        story.append(Paragraph(f"Heures locales ({zone}), dans l'ordre des actions.", styles["note"]))
        story.append(_history(data.history, zone, styles))
    else:
        story.append(Paragraph("Aucune action enregistrée.", styles["cell"]))
    return story


def _facts(data: BordereauData, zone: tzinfo, edited: datetime, styles: dict[str, ParagraphStyle]) -> Table:
    rows = [
        ("Collectivité", data.tenant_name),
        ("Dossier", data.title),
        ("Identifiant", data.folder_id),
        ("Typologie", data.typology or "—"),
        ("État", data.status),
        ("Créé par", data.created_by),
        ("Créé le", _when(data.created_at, zone)),
        ("Bordereau édité le", _when(edited, zone)),
    ]
    table = Table(
        [[Paragraph(label, styles["label"]), Paragraph(_markup(value), styles["cell"])] for label, value in rows],
        colWidths=[38 * mm, _WIDTH - 38 * mm],
    )
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), _FONT, 8),  # else Table declares a non-embedded Helvetica
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, _GRID),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def _documents(documents: list[tuple[str, str]], styles: dict[str, ParagraphStyle]) -> Flowable:
    if not documents:
        return Paragraph("Aucun document.", styles["cell"])
    header = [Paragraph("Fichier", styles["head"]), Paragraph("Empreinte SHA-256", styles["head"])]
    rows = [
        [Paragraph(_markup(name), styles["cell"]), Paragraph(_markup(digest), styles["digest"])]
        for name, digest in documents
    ]
    return _grid([header, *rows], [_WIDTH - 104 * mm, 104 * mm])


def _history(history: list[HistoryLine], zone: tzinfo, styles: dict[str, ParagraphStyle]) -> Table:
    titles = ("Date", "Heure", "Acteur", "Action", "En l'absence de", "Commentaire")
    header = [Paragraph(title, styles["head"]) for title in titles]
    rows = []
    for line in history:
        local = local_time(line.at, zone)
        cells = (
            f"{local:%d/%m/%Y}",
            f"{local:%H:%M}",
            line.actor,
            line.action,
            line.on_behalf_of or "",
            line.comment or "",
        )
        rows.append([Paragraph(_markup(cell), styles["cell"]) for cell in cells])
    widths = [20 * mm, 12 * mm, 33 * mm, 22 * mm, 30 * mm]
    return _grid([header, *rows], [*widths, _WIDTH - sum(widths)])


def _grid(rows: list[list[Any]], widths: list[float]) -> Table:
    # repeatRows: the header again on each page; splitInRow: a very long comment may go on to the next page.
    table = Table(rows, colWidths=widths, repeatRows=1, splitInRow=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), _FONT, 8),  # else Table declares a non-embedded Helvetica
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("GRID", (0, 0), (-1, -1), 0.4, _GRID),
                ("BACKGROUND", (0, 0), (-1, 0), _HEADER_BG),
                ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, _STRIPE]),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
                ("LEFTPADDING", (0, 0), (-1, -1), 3),
                ("RIGHTPADDING", (0, 0), (-1, -1), 3),
            ]
        )
    )
    return table


def _when(at: datetime, zone: tzinfo) -> str:
    return f"{local_time(at, zone):%d/%m/%Y à %H:%M}"


@lru_cache(maxsize=1)
def _styles() -> dict[str, ParagraphStyle]:
    body = ParagraphStyle("cell", fontName=_FONT, bulletFontName=_FONT, fontSize=8, leading=10)
    return {
        "tenant": ParagraphStyle("tenant", parent=body, fontSize=10, leading=13, textColor=colors.HexColor("#444444")),
        "title": ParagraphStyle("title", parent=body, fontName=_BOLD, fontSize=17, leading=22, spaceBefore=2),
        "subtitle": ParagraphStyle("subtitle", parent=body, fontSize=12, leading=15),
        "heading": ParagraphStyle(
            "heading", parent=body, fontName=_BOLD, fontSize=11, leading=14, spaceBefore=12, spaceAfter=4
        ),
        "label": ParagraphStyle("label", parent=body, fontName=_BOLD, textColor=colors.HexColor("#333333")),
        "head": ParagraphStyle("head", parent=body, fontName=_BOLD),
        "note": ParagraphStyle("note", parent=body, fontSize=7.5, spaceAfter=3, textColor=colors.HexColor("#444444")),
        "cell": body,
        "digest": ParagraphStyle("digest", parent=body, fontSize=6.5, leading=9),
    }


@lru_cache(maxsize=1)
def _register_fonts() -> frozenset[int]:
    """Embed ReportLab's own Vera fonts (no system font needed); returns the characters they can draw."""
    folder = Path(reportlab.__file__).parent / "fonts"
    regular = TTFont(_FONT, str(folder / "Vera.ttf"))
    pdfmetrics.registerFont(regular)
    pdfmetrics.registerFont(TTFont(_BOLD, str(folder / "VeraBd.ttf")))
    pdfmetrics.registerFontFamily(_FONT, normal=_FONT, bold=_BOLD, italic=_FONT, boldItalic=_BOLD)
    return frozenset(regular.face.charToGlyph)


def _plain(text: str) -> str:
    """``text`` with only characters the font has: the rest approached (Ł → L) or shown as "?"."""
    drawable = _register_fonts()
    text = unicodedata.normalize("NFC", text.replace("\u202f", "\u00a0"))
    if all(ord(char) in drawable or char in "\n\t" for char in text):
        return text
    out = []
    for char in text:
        if ord(char) in drawable or char in "\n\t":
            out.append(char)
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
        out.append(base if base and all(ord(c) in drawable for c in base) else "?")
    return "".join(out)


def _markup(text: str) -> str:
    """User text made safe for a Paragraph (its mini-markup), line breaks kept."""
    return escape(_plain(text)).replace("\n", "<br/>")


def _fit(text: str, width: float = _WIDTH - 30 * mm, size: float = 7.5) -> str:
    """Shorten a footer line that would run into the page number."""
    if pdfmetrics.stringWidth(text, _FONT, size) <= width:
        return text
    while text and pdfmetrics.stringWidth(text + "…", _FONT, size) > width:
        text = text[:-1]
    return text + "…"
