"""French normalisation of search terms: the same function for the index and the queries."""

from __future__ import annotations

import pytest

from ged.indexing import build_terms
from ged.terms import fold_accents, normalise, phrases, stop_words


@pytest.mark.parametrize(
    ("words", "term"),
    [
        ("délibérations", "deliber"),
        ("Délibération", "deliber"),
        ("DÉLIBÉRÉ", "deliber"),
        ("arrêtés", "arret"),
        ("Arrêté", "arret"),
        ("municipaux", "municipal"),
        ("conseils", "conseil"),
        ("Œuvres", "oeuvr"),
    ],
)
def test_inflections_and_accents_meet_on_one_term(words: str, term: str) -> None:
    assert normalise(words) == [term]


def test_stop_words_go_numbers_stay_order_is_kept() -> None:
    text = "L'arrêté n° 2024-118 du maire, relatif à la voirie et aux 3 écoles."
    assert normalise(text) == ["arret", "2024", "118", "mair", "relat", "voir", "3", "ecol"]


def test_stop_words_are_data_with_and_without_accents() -> None:
    words = stop_words()
    assert {"le", "la", "les", "de", "du", "et", "à", "a", "été", "ete", "l", "d", "qu"} <= words
    assert "budget" not in words and "conseil" not in words


def test_terms_are_plain_ascii_words() -> None:
    terms = normalise("Ελληνικά, русский, 東京, naïve façade, x²")
    assert all(term.isascii() and term.isalnum() and term == term.lower() for term in terms)
    assert "naiv" in terms and "facad" in terms


def test_noise_and_signs_give_no_term() -> None:
    assert normalise("*") == []
    assert normalise("' \" -- ( ) ; % _") == []
    assert normalise("le la les") == []
    assert normalise("a" * 41) == []  # longer than any word: a hash, base64


def test_quotes_make_phrases_and_nothing_else_is_syntax() -> None:
    assert phrases('"conseil municipal" délibérations') == [["conseil", "municipal"], ["deliber"]]
    assert phrases('" OR 1=1 --') == [["or", "1", "1"]]  # an unclosed quote runs to the end
    assert phrases("NEAR(budget, 2) AND -voirie*") == [["near"], ["budget"], ["2"], ["and"], ["voir"]]
    assert phrases('"le de la"') == []


def test_fold_accents() -> None:
    assert fold_accents("éèêëàâäîïôöùûüçœæ") == "eeeeaaaiioouuucoeae"


def test_indexed_terms_hold_every_part_of_the_document() -> None:
    terms = build_terms(
        "Délibération budgétaire",
        ["Finances publiques"],
        "délibération",
        {"montant": "1250.50", "urgent": True, "service": "Culture", "numero": 42},
        "Le conseil municipal approuve.",
    ).split()
    assert terms[:2] == ["deliber", "budgetair"]  # the title first
    for expected in ("financ", "publiqu", "1250", "50", "cultur", "42", "conseil", "approuv"):
        assert expected in terms
    assert "true" not in terms and "urgent" not in terms  # a yes/no value is not a word of the document
