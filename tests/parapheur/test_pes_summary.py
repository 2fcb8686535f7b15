"""An elected official reads what a PES Aller says before signing it: its collectivité and budget, each bordereau
(date, pièces, amount) and the totals, on the folder page; a DOCTYPE (entities) or a file that is not a PES Aller
gets no summary, only the usual « no preview » sentence."""

from __future__ import annotations

import io
from html import unescape
from typing import Any

import pytest
from parapheur_kit import Standard, sent_folder, typology
from pes import PES_NAMESPACE, make_pes_aller
from ui_kit import sign_in

from parapheur import pes_summary
from parapheur.pes_summary import RECETTES, NotSummarised, read_summary

from conftest import Kit

NO_PREVIEW = "Pas d'aperçu en images pour ce format : téléchargez le fichier."
SUMMARY_SENTENCE = "la signature porte sur le fichier entier"

# A PES Aller in shape, whose collectivité's name comes from an internal entity: read with lxml alone, the
# name would be expanded into the attribute (resolve_entities=False does not cover attribute values).
ENTITY_PES = f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE n:PES_Aller [
  <!ENTITY nom "Commune piégée">
]>
<n:PES_Aller xmlns:n="{PES_NAMESPACE}">
  <EnTetePES><IdColl V="21340172200017"/><CodBud V="00"/><LibelleColBud V="&nom;"/></EnTetePES>
  <PES_DepenseAller>
    <Bordereau Id="B1"><BlocBordereau><IdBord V="1"/><DteBordEm V="2026-11-30"/><NbrPce V="1"/>
      <MtBordHT V="10.00"/></BlocBordereau></Bordereau>
  </PES_DepenseAller>
</n:PES_Aller>
""".encode()

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE PES_Aller [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<PES_Aller><EnTetePES><LibelleColBud V="&lol9;"/></EnTetePES><PES_DepenseAller>&lol9;</PES_DepenseAller></PES_Aller>
"""

NOT_PES = "<?xml version='1.0' encoding='UTF-8'?><deliberation><titre>Tarifs de la cantine</titre></deliberation>"


def page_text(html: str) -> str:
    """The page's text as read: entities decoded, the no-break spaces of French numbers as plain spaces."""
    return unescape(html).replace("\u202f", " ").replace("\u00a0", " ")


def documents_section(html: str) -> str:
    return html.split('id="documents-titre"')[1].split("</section>")[0]


def test_the_folder_page_summarises_a_pes_aller_with_its_totals(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    subtype = typology(kit, [{"kind": "signature", "desk_ids": [setup.maire]}], signature_format="xades")
    folder = sent_folder(kit, subtype, files=[("PESALR2.xml", make_pes_aller(2), "application/xml")])
    page = sign_in(app, kit, "maire").get(f"/dossiers/{folder['id']}")
    assert page.status_code == 200, page.text
    html = documents_section(page.text)
    text = page_text(html)
    assert NO_PREVIEW not in text
    assert SUMMARY_SENTENCE in text
    assert "Commune de Saint-Étienne-lès-Orgues" in text and "21340172200017" in text
    assert 'class="table-scroll" role="region" aria-labelledby="pes-' in html
    assert "Dépenses : bordereaux de mandats</caption>" in text
    rows = [row.split("</tr>")[0] for row in text.split("<tr>")[2:]]  # after the header row
    cells = [[cell.split(">", 1)[1].split("<")[0] for cell in row.split("<t")[1:]] for row in rows]
    assert cells == [
        ["n° 1", "30 novembre 2026", "1", "1 250,00 €"],
        ["n° 2", "30 novembre 2026", "1", "487,35 €"],
        ["Total", "", "2", "1 737,35 €"],
    ]


def test_a_doctype_or_a_file_that_is_not_a_pes_keeps_the_usual_message(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    # CAdES takes any file, so these reach the page; the PES beside them is summarised.
    subtype = typology(kit, [{"kind": "signature", "desk_ids": [setup.maire]}], signature_format="cades")
    files = [
        ("entites.xml", ENTITY_PES, "application/xml"),
        ("deliberation.xml", NOT_PES.encode(), "text/xml"),
        ("PESALR2.xml", make_pes_aller(3), "application/xml"),
    ]
    folder = sent_folder(kit, subtype, files=files)
    page = sign_in(app, kit, "maire").get(f"/dossiers/{folder['id']}")
    assert page.status_code == 200, page.text
    text = page_text(documents_section(page.text))
    parts = {name: text.split(f"<h3>{name}</h3>")[1].split("<h3>")[0] for name, _, _ in files}
    assert NO_PREVIEW in parts["entites.xml"] and SUMMARY_SENTENCE not in parts["entites.xml"]
    assert "Commune piégée" not in text and "&nom;" not in text
    assert NO_PREVIEW in parts["deliberation.xml"] and SUMMARY_SENTENCE not in parts["deliberation.xml"]
    assert NO_PREVIEW not in parts["PESALR2.xml"] and "1 829,45 €" in parts["PESALR2.xml"]


def test_a_doctype_is_refused_before_any_entity_is_read() -> None:
    for content in (BILLION_LAUGHS, ENTITY_PES):
        with pytest.raises(NotSummarised, match="DOCTYPE"):
            read_summary(io.BytesIO(content))


def test_recettes_signed_bordereaux_and_the_size_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    text = make_pes_aller(2).decode("iso-8859-1")
    recettes = (
        text.replace("PES_DepenseAller", "PES_RecetteAller")
        .replace("EnTeteDepense", "EnTeteRecette")
        .replace("MtBordHT", "MtBordHt")  # so named in the recettes
        .replace(
            "</Bordereau>",  # as the parapheur's XAdES signature leaves it
            '<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature></Bordereau>',
        )
    )
    summary = read_summary(io.BytesIO(recettes.encode("iso-8859-1")))
    (block,) = summary.blocks
    assert block.kind == RECETTES and block.count == 2 and block.pieces == 2
    assert str(block.amount) == "1737.35" and [line.number for line in block.bordereaux] == ["1", "2"]
    assert summary.budget_label == "Commune de Saint-Étienne-lès-Orgues" and summary.budget_code == "00"

    monkeypatch.setattr(pes_summary, "MAX_BYTES", 1000)
    with pytest.raises(NotSummarised, match="volumineux"):
        read_summary(io.BytesIO(make_pes_aller(3)))
