"""The visible signature stamp: wording (role, delegation, accents), image, placement; checked with pikepdf, and
with poppler's pdftoppm (rendered ink), pdftotext (text as a reader sees it) and pdfsig (validity)."""

from __future__ import annotations

import math
import shutil
import subprocess
from io import BytesIO
from pathlib import Path
from typing import cast

import pikepdf
import pytest
from PIL import Image, ImageDraw

from parapheur.pades import (
    PdfError,
    SignatureRequest,
    SigningIdentity,
    StampPlacement,
    make_self_signed_identity,
    sign_pdf,
    validation_report,
)

from conftest import missing, pdfsig

VALID = "Signature is Valid"
PAGE_WIDTH, PAGE_HEIGHT = 595, 842
RED = (200, 0, 0)


# --------------------------------------------------------------------------- helpers


def write_pdf(path: Path, pages: int) -> Path:
    pdf = pikepdf.new()
    for _ in range(pages):
        pdf.add_blank_page(page_size=(PAGE_WIDTH, PAGE_HEIGHT))
    pdf.save(path)
    return path


def image_bytes(kind: str) -> bytes:
    """A red disc: on a transparent background for PNG, on white for JPEG."""
    mode, background = ("RGBA", (0, 0, 0, 0)) if kind == "PNG" else ("RGB", (255, 255, 255))
    image = Image.new(mode, (300, 100), background)
    ImageDraw.Draw(image).ellipse((10, 10, 290, 90), fill=RED)
    buffer = BytesIO()
    image.save(buffer, kind)
    return buffer.getvalue()


def poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        missing(f"poppler-utils ({tool}) n'est pas installé : lancez « make test », qui l'installe")
    assert path is not None
    return path


def render(path: Path, page: int) -> Image.Image:
    """The page as poppler draws it, at 72 dpi: one pixel per PDF point."""
    prefix = path.with_name(f"rendu-{page}")
    subprocess.run(
        [poppler("pdftoppm"), "-r", "72", "-f", str(page), "-l", str(page), "-singlefile", "-png", path, prefix],
        check=True,
        timeout=60,
    )
    return Image.open(prefix.with_suffix(".png")).convert("RGB")


def page_text(path: Path, page: int) -> str:
    result = subprocess.run(
        [poppler("pdftotext"), "-f", str(page), "-l", str(page), str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def pixels_in(image: Image.Image, rect: list[float], inset: int = 3) -> list[tuple[int, int, int]]:
    """Pixels inside a PDF rectangle (y upwards), its border left out."""
    x1, y1, x2, y2 = rect
    left, top = math.ceil(x1) + inset, PAGE_HEIGHT - math.floor(y2) + inset
    right, bottom = math.floor(x2) - inset, PAGE_HEIGHT - math.ceil(y1) - inset
    return [cast(tuple[int, int, int], pixel) for pixel in image.crop((left, top, right, bottom)).get_flattened_data()]


def is_dark(pixel: tuple[int, int, int]) -> bool:
    return max(pixel) < 100


def is_inked(pixel: tuple[int, int, int]) -> bool:
    # Text alone at 72 dpi is anti-aliased grey: how dark it gets depends on where the glyphs fall on the
    # pixel grid (a stamp 42 points higher drew 48 "dark" pixels and 317 inked ones).
    return max(pixel) < 140


def is_reddish(pixel: tuple[int, int, int]) -> bool:
    red, green, blue = pixel
    return red > 180 and green < 170 and blue < 170 and red - green > 60


def widgets(path: Path) -> dict[str, tuple[list[float], int]]:
    """Signature field name → (its widget's /Rect, the 1-based number of the page that shows it)."""
    found: dict[str, tuple[list[float], int]] = {}
    with pikepdf.open(path) as pdf:
        for number, page in enumerate(pdf.pages, start=1):
            for annot in page.obj.get("/Annots", []):
                if annot.get("/FT") == pikepdf.Name.Sig:
                    assert annot.P.objgen == page.obj.objgen  # the widget knows its page too
                    found[str(annot.T)] = ([float(v) for v in annot.Rect], number)
    return found


def leftovers(folder: Path, expected: set[str]) -> set[str]:
    return {p.name for p in folder.iterdir()} - expected


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def identity() -> SigningIdentity:
    return SigningIdentity.from_pkcs12(make_self_signed_identity("Zoé Lefèvre", "Commune", b"x"), b"x")


@pytest.fixture(scope="module")
def deputy() -> SigningIdentity:
    return SigningIdentity.from_pkcs12(make_self_signed_identity("Jean Dupré", "Commune", b"y"), b"y")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_pdf(tmp_path / "acte.pdf", pages=3)


def stamped(placement: StampPlacement, image: bytes | None = None, **fields: str) -> SignatureRequest:
    return SignatureRequest(
        "Zoé Lefèvre",
        "Délibération « budget » n° 12",
        role=fields.get("role", "Maire"),
        on_behalf_of=fields.get("on_behalf_of"),
        stamp_image=image,
        placement=placement,
    )


# --------------------------------------------------------------------------- placement and wording


@pytest.mark.parametrize("kind", ["PNG", "JPEG"])
def test_stamp_at_the_given_place_shows_its_wording_and_image(
    kind: str, source: Path, identity: SigningIdentity
) -> None:
    destination = source.with_name("signe.pdf")
    placement = StampPlacement(page=2, x=50, y=100, width=220, height=80)
    request = stamped(placement, image_bytes(kind), on_behalf_of="Jean Dupré")
    sign_pdf(source, destination, identity, request)

    assert widgets(destination) == {"Signature1": ([50.0, 100.0, 270.0, 180.0], 2)}
    inside = pixels_in(render(destination, 2), [50, 100, 270, 180])
    assert sum(map(is_dark, inside)) > 100  # the text
    assert sum(map(is_reddish, inside)) > 500  # the image, faded behind the text
    outside = pixels_in(render(destination, 2), [300, 300, 500, 500])
    assert not any(map(is_dark, outside)) and not any(map(is_reddish, outside))
    text = " ".join(page_text(destination, 2).split())
    assert "Signé par Zoé Lefèvre Maire Pour : Jean Dupré, par délégation Délibération « budget » n° 12 le " in text
    assert page_text(destination, 3).strip() == ""  # nothing on the last page

    assert VALID in pdfsig(destination)
    [report] = validation_report(destination, [identity.certificate_der])
    assert report.valid


def test_default_stamp_is_bottom_right_of_the_last_page(source: Path, identity: SigningIdentity) -> None:
    destination = source.with_name("signe.pdf")
    sign_pdf(source, destination, identity, SignatureRequest("Zoé Lefèvre", "Visa"))

    [(rect, page)] = widgets(destination).values()
    assert page == 3
    assert rect == [PAGE_WIDTH - 36 - 200, 36, PAGE_WIDTH - 36, 36 + 60]
    text = page_text(destination, 3)
    assert "Signé par Zoé Lefèvre" in text and "délégation" not in text


def test_given_height_keeps_automatic_horizontal_position(source: Path, identity: SigningIdentity) -> None:
    destination = source.with_name("signe.pdf")
    sign_pdf(source, destination, identity, stamped(StampPlacement(page=1, y=700, width=150, height=50)))

    assert widgets(destination)["Signature1"] == ([PAGE_WIDTH - 36 - 150, 700, PAGE_WIDTH - 36, 750], 1)


def test_user_text_is_never_read_as_a_template(source: Path, identity: SigningIdentity) -> None:
    destination = source.with_name("signe.pdf")
    request = stamped(StampPlacement(), role="Adjointe %(ts)s à 100 %")
    sign_pdf(source, destination, identity, request)

    assert "Adjointe %(ts)s à 100 %" in page_text(destination, 3)


def test_successive_stamped_signatures_all_stay_valid(
    source: Path, identity: SigningIdentity, deputy: SigningIdentity
) -> None:
    first = source.with_name("premiere.pdf")
    sign_pdf(source, first, identity, stamped(StampPlacement(page=1, x=60, y=60), image_bytes("PNG")))
    second = source.with_name("seconde.pdf")
    request = SignatureRequest("Jean Dupré", "Visa", role="DGS", on_behalf_of="Zoé Lefèvre")
    sign_pdf(first, second, deputy, request)
    sign_pdf(second, second, identity, stamped(StampPlacement(page=-1, x=60, y=60)))

    assert widgets(second) == {
        "Signature1": ([60, 60, 260, 120], 1),
        # Automatic: bottom-right, one row up since the document already had one signature.
        "Signature2": ([PAGE_WIDTH - 236, 36 + 66, PAGE_WIDTH - 36, 96 + 66], 3),
        "Signature3": ([60, 60, 260, 120], 3),
    }
    for rect, page in widgets(second).values():
        assert sum(map(is_inked, pixels_in(render(second, page), rect))) > 100
    assert pdfsig(second).count(VALID) == 3
    reports = validation_report(second, [identity.certificate_der, deputy.certificate_der])
    assert [(r.field_name, r.signer_name) for r in reports] == [
        ("Signature1", "Zoé Lefèvre"),
        ("Signature2", "Jean Dupré"),
        ("Signature3", "Zoé Lefèvre"),
    ]
    assert all(r.valid and r.covers_whole_document for r in reports)


# --------------------------------------------------------------------------- refused requests


@pytest.mark.parametrize(
    ("placement", "message"),
    [
        (StampPlacement(page=4), "ne peut pas aller en page 4 : le document compte 3 page"),
        (StampPlacement(page=0), "en page 0"),
        (StampPlacement(page=-2), "en page -2"),
        (StampPlacement(x=500, y=100), "sort de la page, qui mesure 595 × 842 points"),
        (StampPlacement(x=-1, y=100), "x = -1, y = 100"),
        (StampPlacement(x=10, y=800), "sort de la page"),
        (StampPlacement(y=10.5, height=900), "sort de la page"),
        (StampPlacement(width=0), "dimensions"),
        (StampPlacement(height=float("nan")), "dimensions"),
        (StampPlacement(x=float("inf"), y=10), "sort de la page"),
    ],
)
def test_stamp_outside_the_document_is_refused(
    placement: StampPlacement, message: str, source: Path, identity: SigningIdentity
) -> None:
    with pytest.raises(PdfError, match=message):
        sign_pdf(source, source.with_name("signe.pdf"), identity, stamped(placement))
    assert leftovers(source.parent, {source.name}) == set()


def _gif() -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (10, 10), RED).save(buffer, "GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (b"pas une image", "illisible : fournissez un fichier PNG ou JPEG"),
        (_gif(), "doit être au format PNG ou JPEG"),
        (image_bytes("PNG")[:200], "illisible"),
        (b"\x89PNG" + b"\x00" * 6_000_000, "trop volumineuse"),
    ],
)
def test_unusable_stamp_image_is_refused(image: bytes, message: str, source: Path, identity: SigningIdentity) -> None:
    with pytest.raises(PdfError, match=message):
        sign_pdf(source, source.with_name("signe.pdf"), identity, stamped(StampPlacement(), image))
    assert leftovers(source.parent, {source.name}) == set()


def test_invisible_signature_ignores_the_placement(source: Path, identity: SigningIdentity) -> None:
    destination = source.with_name("signe.pdf")
    request = SignatureRequest("Zoé Lefèvre", "Visa", visible=False, placement=StampPlacement(page=9))
    sign_pdf(source, destination, identity, request)

    assert widgets(destination) == {"Signature1": ([0, 0, 0, 0], 1)}  # an empty rectangle: nothing drawn
    assert VALID in pdfsig(destination)
