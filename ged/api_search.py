"""GED HTTP API for search: GET /search (the service is mounted under /ged).

Parameters are read as text and checked here, so that every refusal is a clear French 422.
Typed-field filters are open-ended, hence read from the query string: ``field.<name>=value`` (equal),
``field.<name>.from=value`` (≥) and ``field.<name>.to=value`` (≤).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from ged.search import SORTS, FieldFilter, SearchQuery, SearchResult, search
from ged.terms import syntax_in
from socle.errors import InvalidInput, message
from socle.web import PrincipalDep, SessionDep

router = APIRouter(prefix="/search", tags=["recherche"])

MAX_LIMIT = 100
MAX_OFFSET = 10_000  # deeper pages are a sign of a query to refine, and cost the database dearly
_FIELD_PARAM = re.compile(r"^field\.([a-z][a-z0-9_]{0,62})(?:\.(from|to))?$")


class HitOut(BaseModel):
    document_id: str
    version: int = Field(description="Numéro de la version courante")
    title: str
    document_type: str
    folder_id: str | None
    document_date: date | None
    tags: list[str]
    field_values: dict[str, Any]


class FacetValueOut(BaseModel):
    value: str
    count: int
    label: str | None = Field(None, description="Nom lisible (dossiers)")


class SearchOut(BaseModel):
    total: int = Field(description="Nombre de documents trouvés (estimé si total_exact est faux)")
    total_exact: bool = Field(
        description="Faux au-delà de quelques milliers de résultats : total est alors une estimation (« environ »)"
    )
    limit: int
    offset: int
    items: list[HitOut]
    facets: dict[str, list[FacetValueOut]] = Field(
        description="Sur l'ensemble des documents trouvés : type, folder, tag, year (les 20 plus fréquents)"
    )
    facets_exact: bool = Field(
        description="Faux quand les facettes sont estimées sur un échantillon uniforme des documents trouvés"
    )
    terms: list[list[str]] = Field(description="Les termes cherchés après normalisation (groupes = expressions)")

    @classmethod
    def of(cls, result: SearchResult, limit: int, offset: int) -> SearchOut:
        return cls(
            total=result.total,
            total_exact=result.total_exact,
            limit=limit,
            offset=offset,
            items=[HitOut.model_validate(hit, from_attributes=True) for hit in result.hits],
            facets={
                name: [FacetValueOut.model_validate(value, from_attributes=True) for value in values]
                for name, values in result.facets.items()
            },
            facets_exact=result.facets_exact,
            terms=result.terms,
        )


@router.get("", response_model=SearchOut, summary="Rechercher des documents")
def search_documents(
    request: Request,
    principal: PrincipalDep,
    session: SessionDep,
    q: Annotated[str, Query(description="Mots cherchés ; entre guillemets : une expression")] = "",
    type: Annotated[str | None, Query(description="Code du type de document")] = None,
    document_type: Annotated[str | None, Query(description="Libellé du type (facette type)")] = None,
    folder: Annotated[str | None, Query(description="Dossier du plan, sous-dossiers compris")] = None,
    tag: Annotated[list[str] | None, Query(description="Mot-clé (répétable : tous exigés)")] = None,
    date_from: Annotated[str | None, Query(description="Date du document, à partir de (AAAA-MM-JJ)")] = None,
    date_to: Annotated[str | None, Query(description="Date du document, jusqu'à (AAAA-MM-JJ)")] = None,
    sort: Annotated[str, Query(description="relevance (défaut), date ou title")] = "relevance",
    limit: Annotated[str, Query(description=f"Résultats par page (1 à {MAX_LIMIT})")] = "20",
    offset: Annotated[str, Query(description=f"Décalage (0 à {MAX_OFFSET})")] = "0",
    facets: Annotated[str, Query(description="Calculer les facettes (true/false)")] = "true",
) -> SearchOut:
    if sort not in SORTS:
        raise InvalidInput(f"tri inconnu « {sort} » (valeurs : {', '.join(SORTS)})")
    check_words(q)
    query = SearchQuery(
        q=q,
        type=type,
        document_type=document_type,
        folder_id=folder,
        tags=tag or [],
        date_from=_date(date_from, "date_from"),
        date_to=_date(date_to, "date_to"),
        fields=_field_filters(request),
        sort=cast(Literal["relevance", "date", "title"], sort),
        limit=_integer(limit, "limit", 1, MAX_LIMIT),
        offset=_integer(offset, "offset", 0, MAX_OFFSET),
        facets=_flag(facets, "facets"),
    )
    return SearchOut.of(search(session, principal, query), query.limit, query.offset)


def check_words(q: str) -> None:
    """Refuse a query written with operators or SQL: the search takes words and quoted phrases only.

    :raises InvalidInput: naming what is refused (``refused``: the characters and sequences).
    """
    refused = syntax_in(q)
    if refused:
        raise InvalidInput(
            message(
                "la recherche n'accepte pas %(refused)s : tapez des mots, et des expressions entre guillemets "
                'comme "conseil municipal"',
                refused=", ".join(f"« {item} »" for item in refused),
            ),
            refused=refused,
        )


def _date(value: str | None, name: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{name} : date attendue au format AAAA-MM-JJ, reçu « {value} »") from None


def _integer(value: str, name: str, low: int, high: int) -> int:
    text = value.strip()
    # At most 19 digits before int(): it refuses 4,300 (a 500), and more than 19 is beyond any bound here.
    if not re.fullmatch(r"[0-9]{1,19}", text) or not low <= int(text) <= high:
        raise InvalidInput(f"{name} : nombre entier de {low} à {high} attendu, reçu « {value} »")
    return int(text)


def _flag(value: str, name: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "1", "oui"):
        return True
    if text in ("false", "0", "non"):
        return False
    raise InvalidInput(f"{name} : true ou false attendu, reçu « {value} »")


def _field_filters(request: Request) -> list[FieldFilter]:
    filters: list[FieldFilter] = []
    for key, value in request.query_params.multi_items():
        if not key.startswith("field."):
            continue
        match = _FIELD_PARAM.match(key)
        if match is None:
            raise InvalidInput(f"filtre de champ mal formé : « {key} » (field.<nom>, field.<nom>.from, field.<nom>.to)")
        op = cast(Literal["eq", "from", "to"], match.group(2) or "eq")
        filters.append(FieldFilter(match.group(1), op, value))
    return filters
