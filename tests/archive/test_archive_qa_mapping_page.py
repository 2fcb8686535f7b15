"""QA of the mapping page (/archives/correspondances/<type>): two archivists editing at once, a rule the
referential lost since, a date taken from a text: refused, said next to the box, nothing silently changed."""

from __future__ import annotations

import re
from typing import Any

from test_archive_from_ged import put_mapping, set_referential
from ui_kit import csrf_of, sign_in

from conftest import Kit

URL = "/archives/correspondances/arrete"
API = "/archive/mappings/arrete"


def _form(page: str) -> dict[str, str]:
    """The form as a browser would send it back untouched: text inputs, hidden fields and selected options."""
    values = {name: value for name, value in re.findall(r'<input[^>]* name="([^"]+)"[^>]* value="([^"]*)"', page)}
    for name, body in re.findall(r'<select[^>]* name="([^"]+)"[^>]*>(.*?)</select>', page, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', body)
        values[name] = chosen.group(1) if chosen else ""
    return values


def test_the_second_of_two_archivists_saving_the_same_form_is_refused_not_overwriting(app: Any, kit: Kit) -> None:
    first, second = sign_in(app, kit, "archiviste"), sign_in(app, kit, "admin")
    first_page, second_page = first.get(URL).text, second.get(URL).text

    saved = first.post(URL, data={**_form(first_page), "title": "field:objet"})
    assert saved.status_code == 303, saved.text

    answer = second.post(URL, data={**_form(second_page), "description_level": "File"})
    assert answer.status_code == 409, answer.text
    assert "modifiée entre-temps par archiviste" in answer.text
    assert '<option value="File" selected>' in answer.text  # what they typed is still there to compare
    kept = kit["archiviste"].get(API).json()
    assert (kept["title"], kept["description_level"]) == ("field:objet", "Item")

    # Read again, their change goes through, on top of the first one's.
    page = second.get(URL).text
    again = second.post(URL, data={**_form(page), "csrf": csrf_of(page), "description_level": "File"})
    assert again.status_code == 303, again.text
    kept = kit["archiviste"].get(API).json()
    assert (kept["title"], kept["description_level"]) == ("field:objet", "File")


def test_a_rule_gone_from_the_referential_is_shown_not_silently_dropped(app: Any, kit: Kit) -> None:
    set_referential(kit, [{"id": "APP-10", "category": "AppraisalRule", "duration": "P10Y"}])
    put_mapping(kit, "arrete", appraisal_rule="APP-10")
    set_referential(kit, [{"id": "APP-20", "category": "AppraisalRule", "duration": "P20Y"}])
    client = sign_in(app, kit, "archiviste")

    page = client.get(URL).text
    assert '<option value="APP-10" selected>APP-10 — absente du référentiel</option>' in page
    assert "La règle « APP-10 » n&#39;est plus dans le référentiel" in page

    answer = client.post(URL, data=_form(page))  # saved again untouched: refused, not turned into « no rule »
    assert answer.status_code == 422, answer.text
    assert 'id="appraisal_rule-erreur"' in answer.text
    assert kit["archiviste"].get(API).json()["appraisal_rule"] == "APP-10"


def test_a_date_taken_from_a_text_is_refused_next_to_its_box(app: Any, kit: Kit) -> None:
    client = sign_in(app, kit, "archiviste")
    page = client.get(URL).text

    answer = client.post(URL, data={**_form(page), "start_date": "title"})

    assert answer.status_code == 422, answer.text
    assert 'id="start_date-erreur"' in answer.text and "n&#39;est pas une date" in answer.text
    assert kit["archiviste"].get(API).json()["default"] is True
