"""GET /ged/search through the real API: documents uploaded by users are found by their French words,
only within the tenant, with facets and paging; every bad parameter is a French 422 (or 404)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from ui_kit import sign_in

from conftest import Kit, assert_problem, make_pdf, upload_document


@pytest.fixture
def documents(kit: Kit) -> dict[str, str]:
    agent = kit["agent"]
    made = {
        "budget": upload_document(
            agent, make_pdf(), title="Délibérations du conseil municipal : budget 2025", date="2025-01-20",
            tags=["budget", "finances"],
        ),
        "voirie": upload_document(
            agent, make_pdf(), title="Arrêté de circulation, travaux de voirie", document_type="arrete",
            date="2024-06-03", tags=["voirie"],
        ),
        "eau": upload_document(
            agent, make_pdf(), title="Délibération sur le prix de l'eau", date="2024-12-10", tags=["finances"],
        ),
    }  # fmt: skip
    return {name: document["id"] for name, document in made.items()}


def test_uploaded_documents_are_found_by_their_french_words(kit: Kit, documents: dict[str, str]) -> None:
    response = kit["agent"].get("/ged/search", params={"q": "délibération"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2
    assert body["total_exact"] is True and body["facets_exact"] is True  # a few matches: all read
    assert {item["document_id"] for item in body["items"]} == {documents["budget"], documents["eau"]}
    assert body["terms"] == [["deliber"]]
    assert set(body["facets"]) == {"type", "folder", "tag", "year"}
    assert {(value["value"], value["count"]) for value in body["facets"]["tag"]} == {("finances", 2), ("budget", 1)}
    assert {(value["value"], value["count"]) for value in body["facets"]["year"]} == {("2025", 1), ("2024", 1)}
    item = next(item for item in body["items"] if item["document_id"] == documents["budget"])
    assert item["title"] == "Délibérations du conseil municipal : budget 2025"
    assert item["document_date"] == "2025-01-20"
    assert item["version"] == 1


def test_filters_sort_and_pages_through_the_query_string(kit: Kit, documents: dict[str, str]) -> None:
    def ids(**params: object) -> list[str]:
        response = kit["agent"].get("/ged/search", params=params)
        assert response.status_code == 200, response.text
        return [item["document_id"] for item in response.json()["items"]]

    assert ids(q="finances", tag="finances", sort="date") == [documents["budget"], documents["eau"]]
    assert ids(tag=["finances", "budget"]) == [documents["budget"]]
    assert ids(document_type="arrete") == [documents["voirie"]]
    assert ids(date_from="2024-07-01", date_to="2024-12-31") == [documents["eau"]]
    # The last and first days a date holds: no next (or previous) day to compute (was a 500).
    assert set(ids(date_to="9999-12-31")) == set(documents.values())
    assert ids(date_from="2025-01-01", date_to="9999-12-31") == [documents["budget"]]
    assert set(ids(date_from="0001-01-01", date_to="2024-12-31")) == {documents["voirie"], documents["eau"]}
    assert ids(date_from="9999-12-31") == []
    assert ids(sort="date", limit="1", offset="1") == [documents["eau"]]
    assert ids(sort="title") == [documents["voirie"], documents["eau"], documents["budget"]]
    assert kit["agent"].get("/ged/search", params={"facets": "false"}).json()["facets"] == {}


def test_other_tenants_never_see_the_documents(
    make_kit: Callable[..., Kit], kit: Kit, documents: dict[str, str]
) -> None:
    other = make_kit(with_identity=False)
    upload_document(other["agent"], make_pdf(), title="Délibération d'une autre commune")
    body = other["agent"].get("/ged/search", params={"q": "délibération"}).json()
    assert body["total"] == 1
    assert documents["budget"] not in {item["document_id"] for item in body["items"]}
    assert kit["agent"].get("/ged/search", params={"q": "délibération"}).json()["total"] == 2


@pytest.mark.parametrize(
    ("query", "refused"),
    [
        ('" OR 1=1 --', ["« -- »", "« = »"]),
        ("délibération OR 1=1", ["« = »"]),
        ("NEAR(budget, 2)", ["« ( »", "« ) »"]),
        ("budget*", ["« * »"]),
        ("*", ["« * »"]),
        ("budget & voirie | eau", ["« & »", "« | »"]),
        ("!voirie", ["« ! »"]),
        ("<-> budget", ["« < »", "« > »"]),
        ("titre:budget", ["« : »"]),
        ("budget^2 ~eau", ["« ^ »", "« ~ »"]),
        ("{budget} [eau]", ["« { »", "« } »", "« [ »", "« ] »"]),
        ("budget\\eau", ["« \\ »"]),
        ("budget; DROP TABLE ged_documents", ["« ; »"]),
        ("budget -- commentaire", ["« -- »"]),
        ("budget /* commentaire */", ["« /* »", "« */ »"]),
    ],
)
def test_operators_and_sql_are_refused_with_what_to_type(
    kit: Kit, documents: dict[str, str], query: str, refused: list[str]
) -> None:
    problem = assert_problem(kit["agent"].get("/ged/search", params={"q": query}), 422)
    detail = problem["detail"]
    assert detail.startswith("la recherche n'accepte pas ") and "tapez des mots" in detail and "guillemets" in detail
    for item in refused:
        assert item in detail, (query, detail)
    assert problem["refused"] == [item[2:-2] for item in refused]


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("prix de l'eau", {"eau"}),
        ("prix de l’eau", {"eau"}),
        ("l'école", set()),
        ("arrêté n° 2024-12", set()),
        ("12,50 €", set()),
        ("Délibération.", {"budget", "eau"}),
        ("conseil municipal, budget 2025", {"budget"}),
        ('"conseil municipal"', {"budget"}),
        ('"conseil municipal', {"budget"}),  # an unclosed quote runs to the end
        ("travaux de voirie - circulation", {"voirie"}),
        ("voirie OR eau", set()),  # OR is a word here (every word is required), not an operator
        ("budget AND NOT NEAR", set()),
        ("taux de 5 % ?", set()),
        ("Délibération : budget", {"budget"}),  # French typography: « : », « ! », « ; » after a space
        ("budget ; eau !", set()),
        ("'", set()),
    ],
)
def test_ordinary_french_is_never_refused(kit: Kit, documents: dict[str, str], query: str, found: set[str]) -> None:
    response = kit["agent"].get("/ged/search", params={"q": query})
    assert response.status_code == 200, response.text
    assert {item["document_id"] for item in response.json()["items"]} == {documents[name] for name in found}


def test_the_search_page_says_why_a_query_is_refused(app: object, kit: Kit, documents: dict[str, str]) -> None:
    client = sign_in(app, kit, "agent")
    page = client.get("/documents", params={"q": "budget OR 1=1 --"})
    assert page.status_code == 422
    assert 'id="q-erreur"' in page.text and 'aria-describedby="q-aide q-erreur"' in page.text
    assert "la recherche n&#39;accepte pas « -- », « = »" in page.text and "tapez des mots" in page.text
    assert 'value="budget OR 1=1 --"' in page.text  # the query stays in the field, to correct it
    assert documents["budget"] not in page.text  # nothing was searched
    french = client.get("/documents", params={"q": "arrêté n° 2024-12 l'école"})
    assert french.status_code == 200 and 'id="q-erreur"' not in french.text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "0"}, "limit : nombre entier de 1 à 100"),
        ({"limit": "beaucoup"}, "limit : nombre entier"),
        ({"offset": "-1"}, "offset : nombre entier de 0 à 10000"),
        ({"offset": "99999"}, "offset"),
        # int() refuses more than 4,300 digits, and « ² » that str.isdigit() takes: both were a 500.
        ({"limit": "9" * 4301}, "limit : nombre entier de 1 à 100"),
        ({"offset": "1" * 5000}, "offset : nombre entier de 0 à 10000"),
        ({"limit": "²"}, "limit : nombre entier"),
        ({"offset": "٣"}, "offset : nombre entier"),
        ({"date_from": "12/03/2024"}, "date_from : date attendue au format AAAA-MM-JJ"),
        ({"date_from": "2024-05-01", "date_to": "2024-04-01"}, "postérieure"),
        ({"sort": "pertinence"}, "tri inconnu"),
        ({"facets": "peut-être"}, "facets : true ou false"),
        ({"field.Montant": "1"}, "filtre de champ mal formé"),
        ({"field.montant.entre": "1"}, "filtre de champ mal formé"),
        ({"field.montant": "1"}, "champ inconnu"),
        ({"type": "inexistant"}, "type de document inconnu"),
        ({"q": "x" * 501}, "trop longue"),
    ],
)
def test_bad_parameters_get_a_french_422(kit: Kit, params: dict[str, str], message: str) -> None:
    problem = assert_problem(kit["agent"].get("/ged/search", params=params), 422)
    assert message in problem["detail"]


def test_an_unknown_folder_is_not_found(kit: Kit) -> None:
    problem = assert_problem(kit["agent"].get("/ged/search", params={"folder": str(uuid.uuid4())}), 404)
    assert "introuvable" in problem["detail"]


def test_search_needs_a_user(app: object) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as anonymous:  # type: ignore[arg-type]
        assert_problem(anonymous.get("/ged/search", params={"q": "budget"}), 401)


def test_an_estimated_total_is_said(kit: Kit, documents: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    # Past the exact reading (here: past none), the total and the facets come from a sample, and say so.
    monkeypatch.setattr("ged.search.SAMPLE_CAP", 0)
    body = kit["agent"].get("/ged/search", params={"date_from": "2024-01-02"}).json()
    assert body["total_exact"] is False and body["facets_exact"] is False
    assert {item["document_id"] for item in body["items"]} == set(documents.values())  # the page stays exact
