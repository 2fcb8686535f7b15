"""French normalisation of text into search terms, the same for what is indexed and for what is asked.

A word becomes a term in four steps: split on anything that is not a letter or a digit, case folded,
dropped if it is a French stop word, reduced to its stem by the Snowball French stemmer, then accents
folded. So « Délibérations » and « délibération » both give ``deliber``. Numbers are kept as they are.
Terms are plain ``[a-z0-9]`` words separated by spaces: no character of a query can reach a full-text
engine as syntax. The API and the search page still refuse a query written with such syntax
(``syntax_in``): the user is told that it does not do what it seems to, rather than getting other results.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from importlib import resources

import snowballstemmer

# Letters and digits of any script; the apostrophe, hyphen and every punctuation mark separate words.
_WORD = re.compile(r"[^\W_]+")
# Longer "words" are hashes, base64 or noise: they would bloat the index and never be typed.
MAX_WORD_LENGTH = 40
_local = threading.local()


@lru_cache(maxsize=1)
def stop_words() -> frozenset[str]:
    """The French stop words (``ged/data/stopwords-fr.txt``), lower case, with and without accents."""
    text = (resources.files("ged") / "data" / "stopwords-fr.txt").read_text(encoding="utf-8")
    words: set[str] = set()
    for line in text.splitlines():
        for word in line.split("#", 1)[0].split():
            words.add(word.lower())
            words.add(fold_accents(word.lower()))
    return frozenset(words)


def fold_accents(word: str) -> str:
    """« é » → « e », « œ » → « oe », « ç » → « c »: decomposed, combining marks dropped."""
    word = word.replace("œ", "oe").replace("æ", "ae").replace("ß", "ss")
    return "".join(char for char in unicodedata.normalize("NFKD", word) if not unicodedata.combining(char))


def _stemmer() -> snowballstemmer.stemmer:
    # A Snowball stemmer keeps state between calls: one per thread (the API serves from a thread pool).
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = snowballstemmer.stemmer("french")
    return stemmer


@lru_cache(maxsize=100_000)
def term_of(word: str) -> str | None:
    """The term for one lower-case word, or None for a stop word or a word too long to be useful."""
    if len(word) > MAX_WORD_LENGTH or word in stop_words():
        return None
    if word.isascii() and word.isdigit():
        return word
    # The stemmer knows French accents (it needs « é » to find suffixes): stem first, then fold.
    term = fold_accents(_stemmer().stemWord(word))
    return term if term.isascii() and term.isalnum() else _ascii_only(term)


def _ascii_only(term: str) -> str | None:
    # Letters that no decomposition brings to ASCII (Greek, Cyrillic…) are kept out: terms stay [a-z0-9].
    kept = "".join(char for char in term if char.isascii() and char.isalnum())
    return kept or None


def normalise(text: str) -> list[str]:
    """The terms of a text, in order (for phrases), stop words left out.

    :param text: any text: a title, a query, extracted content.
    :returns: terms made of ``[a-z0-9]`` only; empty if the text has no word worth searching.
    """
    terms: list[str] = []
    # Composed first: « école » typed on a Mac (or pasted from some PDFs) comes decomposed, « e » then a
    # combining accent, which the word pattern would split into « e » and « cole ».
    for match in _WORD.finditer(unicodedata.normalize("NFC", text).casefold()):
        word = match.group()
        # Numbers are kept as they are, and kept out of the cache: amounts and dates would fill it.
        term = word if word.isascii() and word.isdigit() and len(word) <= MAX_WORD_LENGTH else term_of(word)
        if term is not None:
            terms.append(term)
    return terms


def phrases(query: str) -> list[list[str]]:
    """Split a query into groups of terms: each quoted part is a phrase, every other word is its own group.

    Quotes are the only syntax: an unbalanced quote runs to the end of the query. Operators (OR, NEAR, *,
    -) are ordinary characters, so they are either dropped as separators or searched as words.

    :returns: the groups, each non-empty; a group of several terms must match as a phrase.
    """
    groups: list[list[str]] = []
    for position, part in enumerate(query.split('"')):
        terms = normalise(part)
        if position % 2 == 1:
            if terms:
                groups.append(terms)
        else:
            groups.extend([term] for term in terms)
    return groups


# What full-text engines (PostgreSQL tsquery, SQLite FTS5) and SQL read as syntax. The words AND, OR, NOT and
# NEAR are not here: terms are always quoted for the engine, so they are only words (or stop words).
SYNTAX_SEQUENCES = ("--", "/*", "*/")
SYNTAX_CHARACTERS = "&|!()<>:*^~{}[]\\;="
# French typography puts a space before « : », « ! » and « ; » (« Délibération n° 42 : budget ») : standing
# alone between spaces, they are punctuation, never an engine's operator (which is glued to a word: « titre:x »).
_FRENCH_PUNCTUATION = re.compile(r"(?:(?<=\s)|^)[:!;](?=\s|$)")


def syntax_in(query: str) -> list[str]:
    """The operators and SQL fragments of a query, each once (sequences, then characters); empty for words.

    Apostrophes (' and ’), hyphens, dots, commas, « n° », accents, digits and quotes (phrases) are words'
    punctuation, never syntax here, nor « : », « ! » and « ; » standing alone. A sequence is reported whole
    (« /* », not « / » and « * »).
    """
    found: list[str] = []
    rest = _FRENCH_PUNCTUATION.sub(" ", query)
    for sequence in SYNTAX_SEQUENCES:
        if sequence in rest:
            found.append(sequence)
            rest = rest.replace(sequence, " ")
    found.extend(dict.fromkeys(char for char in rest if char in SYNTAX_CHARACTERS))
    return found
