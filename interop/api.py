"""Interop HTTP API: the tenant's connectors and their deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Query

from interop import service
from interop.schemas import ConnectorIn, ConnectorOut, ConnectorPatch, DeliveryOut, TestResult
from socle.auth import Role
from socle.web import PrincipalDep, SessionDep, create_service_app

connectors = APIRouter(prefix="/connectors", tags=["connecteurs"])
deliveries = APIRouter(prefix="/deliveries", tags=["envois"])


@connectors.post("", status_code=201, response_model=ConnectorOut, summary="Configurer un connecteur")
def create_connector(principal: PrincipalDep, session: SessionDep, body: ConnectorIn) -> ConnectorOut:
    return ConnectorOut.of(service.create_connector(session, principal, body))


@connectors.get("", response_model=list[ConnectorOut], summary="Lister les connecteurs")
def list_connectors(principal: PrincipalDep, session: SessionDep) -> list[ConnectorOut]:
    return [ConnectorOut.of(connector) for connector in service.list_connectors(session, principal.tenant_id)]


@connectors.get("/{name}", response_model=ConnectorOut, summary="Consulter un connecteur")
def get_connector(principal: PrincipalDep, session: SessionDep, name: str) -> ConnectorOut:
    return ConnectorOut.of(service.get_connector(session, principal.tenant_id, name))


@connectors.patch("/{name}", response_model=ConnectorOut, summary="Activer ou désactiver un connecteur")
def patch_connector(principal: PrincipalDep, session: SessionDep, name: str, body: ConnectorPatch) -> ConnectorOut:
    return ConnectorOut.of(service.set_enabled(session, principal, name, body.enabled))


@connectors.post("/{name}/test", response_model=TestResult, summary="Tester la connexion")
def test_connector(principal: PrincipalDep, session: SessionDep, name: str) -> TestResult:
    principal.require(Role.ADMIN)
    ok, message = service.test_connector(session, principal, name)
    return TestResult(ok=ok, message=message)


@deliveries.get("", response_model=list[DeliveryOut], summary="Lister les envois")
def list_deliveries(
    principal: PrincipalDep, session: SessionDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[DeliveryOut]:
    return [
        DeliveryOut.of(delivery, name)
        for delivery, name in service.list_deliveries(session, principal.tenant_id, limit)
    ]


@deliveries.get("/{delivery_id}", response_model=DeliveryOut, summary="Consulter un envoi et son suivi")
def get_delivery(principal: PrincipalDep, session: SessionDep, delivery_id: str) -> DeliveryOut:
    return DeliveryOut.of(*service.get_delivery(session, principal.tenant_id, delivery_id))


@deliveries.post("/{delivery_id}/resume", response_model=DeliveryOut, summary="Reprendre le suivi d'un envoi en erreur")
def resume_delivery(principal: PrincipalDep, session: SessionDep, delivery_id: str) -> DeliveryOut:
    delivery = service.resume_follow(session, principal, delivery_id)
    return DeliveryOut.of(*service.get_delivery(session, principal.tenant_id, delivery.id))


def create_app() -> FastAPI:
    return create_service_app(
        "interop",
        "socle — interopérabilité",
        "Connecteurs vers les plateformes extérieures : dépôt dans un dossier, SAE Vitam et As@lae.",
        [connectors, deliveries],
    )
