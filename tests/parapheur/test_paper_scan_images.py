"""Paper signature from a phone: JPEG and PNG photos of the signed pages become the scan, a PDF of one page per
image (the JPEG embedded as it is, its EXIF orientation applied, the page sized from its pixels and resolution);
other files are refused with a clear sentence."""

from __future__ import annotations

import io
import re
import subprocess
from pathlib import Path
from typing import Any

import pikepdf
import pytest
from parapheur_kit import Standard, desk, folder_of, sent_folder, typology
from PIL import Image, ImageOps
from ui_kit import csrf_of, sign_in

from parapheur import service
from socle.errors import InvalidInput

from conftest import Kit, make_pdf


def _photo(size: tuple[int, int] = (300, 200), orientation: int = 1, dpi: int | None = None) -> bytes:
    """A white JPEG with a red block in its top-left corner (as stored), and an EXIF orientation."""
    image = Image.new("RGB", size, "white")
    image.paste((255, 0, 0), (0, 0, size[0] // 3, size[1] // 3))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90, exif=exif.tobytes(), **({"dpi": (dpi, dpi)} if dpi else {}))
    return out.getvalue()


def _converted(tmp_path: Path, *files: tuple[str, bytes]) -> tuple[pikepdf.Pdf, bytes, str]:
    uploads = [service.Upload(io.BytesIO(data), name, "") for name, data in files]
    with service.paper_scan(uploads) as (stream, name):
        data = stream.read()
    path = tmp_path / "scan.pdf"
    path.write_bytes(data)
    return pikepdf.open(path), data, name


def _red_corner(image: Image.Image) -> tuple[bool, bool, bool]:
    """(left, top, wide): where the red block lies in an upright image, and whether it is wider than tall."""
    rgb = image.convert("RGB")
    width, height = rgb.size
    reds = [(x, y) for x in range(width) for y in range(height) if (p := rgb.getpixel((x, y)))[0] > 180 and p[1] < 90]
    assert reds
    cx, cy = sum(x for x, _ in reds) / len(reds), sum(y for _, y in reds) / len(reds)
    spread_x = max(x for x, _ in reds) - min(x for x, _ in reds)
    spread_y = max(y for _, y in reds) - min(y for _, y in reds)
    return cx < width / 2, cy < height / 2, spread_x > spread_y


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_is_embedded_as_it_is_and_shown_upright(tmp_path: Path, orientation: int) -> None:
    photo = _photo(orientation=orientation)
    pdf, _, name = _converted(tmp_path, ("IMG_0001.jpg", photo))
    assert name == "IMG_0001.pdf" and len(pdf.pages) == 1
    (image,) = pdf.pages[0].get_images().values()
    assert image.Filter == pikepdf.Name.DCTDecode and image.read_raw_bytes() == photo  # not encoded again
    width, height = (float(value) for value in pdf.pages[0].mediabox[2:])
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(photo)))
    assert (width > height) == (expected.width > expected.height)
    rendered = tmp_path / "page"
    subprocess.run(
        ["pdftoppm", "-png", "-r", "20", "-singlefile", str(tmp_path / "scan.pdf"), str(rendered)], check=True
    )
    shown = Image.open(rendered.with_suffix(".png"))
    assert _red_corner(shown) == _red_corner(expected)


def test_the_page_size_comes_from_the_pixels_and_the_resolution(tmp_path: Path) -> None:
    a4_at_300 = _photo(size=(2480, 3508))  # no resolution stated: 300 dpi
    stated_150 = _photo(size=(1240, 1754), dpi=150)
    camera_72 = _photo(size=(2480, 3508), dpi=72)  # a camera's default, not a scan's: 300 dpi
    pdf, _, _ = _converted(tmp_path, ("a.jpg", a4_at_300), ("b.jpg", stated_150), ("c.jpg", camera_72))
    sizes = [tuple(round(float(value)) for value in page.mediabox[2:]) for page in pdf.pages]
    assert sizes == [(595, 842), (595, 842), (595, 842)]


def test_a_png_with_transparency_becomes_a_page_and_other_files_are_refused(tmp_path: Path) -> None:
    image = Image.new("RGBA", (600, 400), (0, 0, 0, 0))
    image.paste((0, 0, 255, 255), (0, 0, 200, 200))
    out = io.BytesIO()
    image.save(out, "PNG")
    pdf, _, _ = _converted(tmp_path, ("page-1.png", out.getvalue()), ("page-2.jpg", _photo()))
    assert len(pdf.pages) == 2
    (png,) = pdf.pages[0].get_images().values()
    assert png.Filter == pikepdf.Name.FlateDecode and png.ColorSpace == pikepdf.Name.DeviceRGB
    with pytest.raises(InvalidInput) as refused:
        _converted(tmp_path, ("photo.heic", b"\x00\x00\x00\x18ftypheic"))
    assert refused.value.detail == (
        "« photo.heic » n'est ni un PDF ni une photo JPEG ou PNG : déposez le scan du document signé dans l'un de "
        "ces formats"
    )
    with pytest.raises(InvalidInput, match="sans les mélanger"):
        _converted(tmp_path, ("scan.pdf", make_pdf("Scan")), ("page.jpg", _photo()))
    with pytest.raises(InvalidInput, match="illisible"):
        _converted(tmp_path, ("coupee.jpg", _photo()[:200]))


def test_paper_signature_with_photos_from_the_folders_page(app: Any, kit: Kit) -> None:
    Standard(kit)
    secretariat = desk(kit, "Accueil", ["agent"])
    paper = typology(kit, [{"kind": "paper_signature", "desk_ids": [secretariat]}], name="Convention")
    folder = sent_folder(kit, paper)
    agent = sign_in(app, kit, "agent")
    page = agent.get(f"/dossiers/{folder['id']}").text
    main = folder["documents"][0]
    assert re.search(rf'<a href="/dossiers/{folder["id"]}/documents/{main["id"]}">Ouvrir « acte.pdf » pour', page)
    assert re.search(r'<input id="scan" name="scan" type="file"[^>]*image/jpeg[^>]* multiple>', page)
    token = csrf_of(page)
    wrong = agent.post(
        f"/dossiers/{folder['id']}/signature-papier",
        data={"csrf": token},
        files={"scan": ("scan.txt", b"texte", "text/plain")},
    )
    assert wrong.status_code == 422 and "n&#39;est ni un PDF ni une photo JPEG ou PNG" in wrong.text
    done = agent.post(
        f"/dossiers/{folder['id']}/signature-papier",
        data={"csrf": token},
        files=[
            ("scan", ("IMG_1.jpg", _photo(orientation=6), "image/jpeg")),
            ("scan", ("IMG_2.jpg", _photo(), "image/jpeg")),
        ],
    )
    assert done.status_code == 303, done.text
    signed = folder_of(kit, folder["id"])
    assert signed["status"] == "completed"
    scan = next(document for document in signed["documents"] if document["role"] == "scan")
    assert scan["filename"] == "IMG_1.pdf" and scan["media_type"] == "application/pdf"
    content = kit["agent"].get(f"/parapheur/folders/{folder['id']}/documents/{scan['id']}").content
    assert len(pikepdf.open(io.BytesIO(content)).pages) == 2


def test_paper_signature_with_photos_through_the_api(kit: Kit) -> None:
    """The API's paper signature takes the same photos as the page: one page per image, in the order sent."""
    Standard(kit)
    secretariat = desk(kit, "Accueil", ["agent"])
    paper = typology(kit, [{"kind": "paper_signature", "desk_ids": [secretariat]}], name="Convention")
    folder = sent_folder(kit, paper)
    url = f"/parapheur/folders/{folder['id']}/paper-signature"
    wrong = kit["agent"].post(url, files={"file": ("scan.txt", b"texte", "text/plain")})
    assert wrong.status_code == 422 and "n'est ni un PDF ni une photo JPEG ou PNG" in wrong.json()["detail"]
    photos = [
        ("file", ("IMG_1.jpg", _photo(orientation=6), "image/jpeg")),
        ("file", ("IMG_2.jpg", _photo(), "image/jpeg")),
    ]
    done = kit["agent"].post(url, files=photos)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    scan = next(document for document in done.json()["documents"] if document["role"] == "scan")
    content = kit["agent"].get(f"/parapheur/folders/{folder['id']}/documents/{scan['id']}").content
    assert len(pikepdf.open(io.BytesIO(content)).pages) == 2
