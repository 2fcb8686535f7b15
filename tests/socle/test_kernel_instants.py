"""Instants that UTC, or some zone, cannot hold are refused by the kernel's column type (socle.db.UTCDateTime):
a clear 422 in French from every service, nothing written, on SQLite and PostgreSQL.

``0001-01-01T00:00:00+14:00`` is before year 1 in UTC: converting it raised OverflowError, which SQLAlchemy
wrapped in a StatementError, a 500. ``9999-12-31T12:00:00Z`` was stored, but is after year 9999 in Paris time:
PostgreSQL whose TimeZone is Europe/Paris could not send it back (every list showing it: a 500), nor could a page
write it in French local time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from parapheur_kit import Standard, ok
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from archive.models import Transfer
from ged.models import Hold
from interop.models import Delivery
from socle.auth import get_tenant, get_user, issue_token
from socle.db import EARLIEST, LATEST, InstantOutOfRange, transaction
from socle.errors import InvalidInput
from socle.migrating import upgrade_all
from socle.models import ApiToken
from socle.web import SessionDep, create_service_app

from conftest import Kit, assert_problem

OUT_OF_RANGE = [
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),  # before year 1 in UTC
    datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),  # after year 9999 in UTC
    datetime(9999, 12, 31, 12, tzinfo=UTC),  # after year 9999 in Paris time
    datetime(1, 1, 1, 12, tzinfo=UTC),  # before year 1 in New York time
]
IDS = ["an-1+14h", "9999-5h", "9999-utc", "an-1-utc"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def backend(request: pytest.FixtureRequest, use_env: Callable[..., None], make_kit: Callable[..., Kit]) -> Kit:
    """A collectivité on each backend; on PostgreSQL, sessions in Paris time, as a French server may be set."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        use_env(SOCLE_DATABASE_URL=f"{url}%20-ctimezone%3DEurope/Paris")
        upgrade_all()
    return make_kit()


def _refused(session_work: Callable[[Session], Any]) -> InvalidInput:
    with pytest.raises(InstantOutOfRange) as raised, transaction() as session:
        session_work(session)
    error = raised.value
    assert isinstance(error, InvalidInput) and error.status == 422
    assert "hors des limites" in error.detail and "30 décembre 9999" in error.detail
    return error


@pytest.mark.parametrize("instant", OUT_OF_RANGE, ids=IDS)
def test_every_service_table_refuses_an_instant_out_of_range_and_writes_nothing(
    backend: Kit, instant: datetime
) -> None:
    kit = backend
    hold = ok(kit["archiviste"].post("/ged/holds", json={"name": "Contentieux", "reason": "Requête au TA"}), 201)

    def release(session: Session) -> None:  # GED, through the ORM (the unit of work flushes at commit)
        row = session.get(Hold, hold["id"])
        assert row is not None
        row.released_by, row.released_at = "user:archiviste", instant

    error = _refused(release)
    assert instant.isoformat() in error.detail
    with transaction() as session:
        kept = session.get(Hold, hold["id"])
        assert kept is not None and kept.released_at is None and kept.released_by is None

    # Archive and interop, through Core statements: the column type refuses the value before any SQL is sent.
    transfers = update(Transfer).where(Transfer.tenant_id == kit.tenant_id)
    _refused(lambda s: s.execute(transfers.values(replied_at=instant)))
    _refused(lambda s: s.execute(select(Delivery).where(Delivery.next_check_at < instant)))

    # The kernel's own: a token's expiry.
    def token(session: Session) -> None:
        issue_token(session, get_user(session, get_tenant(session, kit.slug), "agent"), "borné", expires_at=instant)

    _refused(token)
    with transaction() as session:
        labels = session.execute(select(ApiToken.label).where(ApiToken.tenant_id == kit.tenant_id)).scalars()
        assert "borné" not in set(labels)


def test_the_bounds_themselves_are_stored_and_read_back(backend: Kit) -> None:
    kit = backend
    paris_morning = datetime(1, 1, 2, 1, tzinfo=timezone(timedelta(hours=1)))  # EARLIEST, written in Paris time
    # One user each: issuing a token purges its user's expired ones.
    for username, instant in (("agent", EARLIEST), ("maire", LATEST), ("archiviste", paris_morning)):
        with transaction() as session:
            user = get_user(session, get_tenant(session, kit.slug), username)
            issue_token(session, user, f"borne {instant.isoformat()}", expires_at=instant)
    with transaction() as session:
        query = select(ApiToken.expires_at).where(ApiToken.tenant_id == kit.tenant_id, ApiToken.label.like("borne %"))
        assert sorted(session.execute(query).scalars()) == [EARLIEST, EARLIEST, LATEST]


@pytest.fixture
def instants_api(backend: Kit) -> Iterator[tuple[TestClient, Kit]]:
    """A service app made the kernel's way, with one route that stores the instant it is given (a token's
    expiry): what any service's route does, the commit and its flush happening inside the route."""
    router = APIRouter()

    @router.post("/tokens", status_code=201)
    def create(session: SessionDep, expires_at: datetime) -> dict[str, str]:
        user = get_user(session, get_tenant(session, backend.slug), "agent")
        issue_token(session, user, "par l'API", expires_at=expires_at)
        session.commit()
        return {"status": "ok"}

    app = create_service_app("instants", "Instants", "", [router])
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, backend


@pytest.mark.parametrize("instant", OUT_OF_RANGE, ids=IDS)
def test_an_api_answers_422_in_french(instants_api: tuple[TestClient, Kit], instant: datetime) -> None:
    client, kit = instants_api
    problem = assert_problem(client.post("/tokens", params={"expires_at": instant.isoformat()}), 422)
    assert problem["type"] == "urn:socle:problem:invalid-input" and problem["title"] == "Données invalides"
    assert problem["detail"].startswith("date et heure hors des limites")
    with transaction() as session:
        query = select(func.count()).select_from(ApiToken).where(ApiToken.label == "par l'API")
        query = query.where(ApiToken.tenant_id == kit.tenant_id)
        assert session.execute(query).scalar_one() == 0
    assert ok(client.post("/tokens", params={"expires_at": "2030-01-01T00:00:00+01:00"}), 201) == {"status": "ok"}


def test_a_delegation_ending_in_the_last_hours_of_9999_is_refused_not_stored(backend: Kit) -> None:
    # UTC holds it (the parapheur's own check lets it through), Paris time does not: the kernel refuses it.
    kit = backend
    setup = Standard(kit)
    body = {
        "from_desk_id": setup.maire,
        "to_desk_id": setup.secretariat,
        "starts_at": "2027-01-01T00:00:00Z",
        "ends_at": "9999-12-31T12:00:00Z",
    }
    problem = assert_problem(kit["admin"].post("/parapheur/delegations", json=body), 422)
    assert "hors des limites" in problem["detail"]
    assert ok(kit["admin"].get("/parapheur/delegations")) == []
