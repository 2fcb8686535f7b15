"""Interop HTTP API: the tenant's connectors and their deliveries."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from sqlalchemy.orm import Session

from interop import flows, service
from interop.models import Delivery, Flow, FlowEvent, TdtClassification
from interop.schemas import (
    ClassificationOut,
    ConnectorIn,
    ConnectorOut,
    ConnectorPatch,
    DeliveryOut,
    FlowIn,
    FlowOut,
    FlowResumeIn,
    PrefectureReplyIn,
    TestResult,
)
from socle.auth import Principal, Role
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


@connectors.patch("/{name}", response_model=ConnectorOut, summary="Modifier, activer ou désactiver un connecteur")
def patch_connector(principal: PrincipalDep, session: SessionDep, name: str, body: ConnectorPatch) -> ConnectorOut:
    connector = service.get_connector(session, principal.tenant_id, name)
    if body.config is not None:
        connector = service.update_connector(session, principal, name, body.config)
    if body.enabled is not None:
        connector = service.set_enabled(session, principal, name, body.enabled)
    return ConnectorOut.of(connector)


@connectors.delete("/{name}", status_code=204, summary="Supprimer un connecteur (refusé s'il sert encore)")
def delete_connector(principal: PrincipalDep, session: SessionDep, name: str) -> None:
    service.delete_connector(session, principal, name)


@connectors.post("/{name}/test", response_model=TestResult, summary="Tester la connexion")
def test_connector(principal: PrincipalDep, session: SessionDep, name: str) -> TestResult:
    principal.require(Role.ADMIN)
    ok, message = service.test_connector(session, principal, name)
    return TestResult(ok=ok, message=message)


@deliveries.get("", response_model=list[DeliveryOut], summary="Lister les envois")
def list_deliveries(
    principal: PrincipalDep, session: SessionDep, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[DeliveryOut]:
    return _deliveries_out(session, principal, service.list_deliveries(session, principal.tenant_id, limit))


@deliveries.get("/{delivery_id}", response_model=DeliveryOut, summary="Consulter un envoi et son suivi")
def get_delivery(principal: PrincipalDep, session: SessionDep, delivery_id: str) -> DeliveryOut:
    return _deliveries_out(session, principal, [service.get_delivery(session, principal.tenant_id, delivery_id)])[0]


@deliveries.post(
    "/{delivery_id}/resume", response_model=DeliveryOut, summary="Reprendre un envoi ou son suivi en erreur"
)
def resume_delivery(principal: PrincipalDep, session: SessionDep, delivery_id: str) -> DeliveryOut:
    delivery = service.resume_delivery(session, principal, delivery_id)
    return DeliveryOut.of(*service.get_delivery(session, principal.tenant_id, delivery.id))


def _deliveries_out(session: Session, principal: Principal, rows: list[tuple[Delivery, str]]) -> list[DeliveryOut]:
    """The deliveries as ``principal`` may read them: the object keys whole only where
    flows.deliveries_showing_keys says so (a key is as good as the document to start a flow), else cut."""
    shown = flows.deliveries_showing_keys(session, principal, [delivery for delivery, _ in rows])
    out = []
    for delivery, name in rows:
        full = DeliveryOut.of(delivery, name)
        out.append(full if delivery.id in shown else DeliveryOut.model_validate(flows.without_keys(full.model_dump())))
    return out


# --------------------------------------------------------------------------------------------------------
# Flows (interop.flows) and the @ctes classification kept per TdT connector

flows_router = APIRouter(prefix="/flows", tags=["flux"])
STATE_FILTER = "running, waiting, error, done, stuck (bloqués) ou le nom d'un état"


@flows_router.post("", status_code=201, response_model=FlowOut, summary="Démarrer un flux (actes, helios, dépôt, mail)")
def start_flow(principal: PrincipalDep, session: SessionDep, body: FlowIn) -> FlowOut:
    documents = [document.model_dump(exclude_none=True) for document in body.documents]
    flow = flows.start_flow(session, principal, body.kind, body.connector, documents, body.metadata)
    return _flow_out(principal, flow)


@flows_router.get("", response_model=list[FlowOut], summary="Lister les flux (state=error : ceux en erreur)")
def list_flows(
    principal: PrincipalDep,
    session: SessionDep,
    state: Annotated[str | None, Query(max_length=40, description=STATE_FILTER)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[FlowOut]:
    principal.require(*flows.FLOW_ROLES)
    return [_flow_out(principal, flow) for flow in flows.list_flows(session, principal.tenant_id, state, limit)]


@flows_router.get("/{flow_id}", response_model=FlowOut, summary="Consulter un flux et son historique")
def get_flow(principal: PrincipalDep, session: SessionDep, flow_id: str) -> FlowOut:
    principal.require(*flows.FLOW_ROLES)
    flow = flows.get_flow(session, principal.tenant_id, flow_id)
    return _flow_out(principal, flow, flows.history(session, flow))


@flows_router.post("/{flow_id}/resume", response_model=FlowOut, summary="Reprendre un flux en erreur")
def resume_flow(
    principal: PrincipalDep, session: SessionDep, flow_id: str, body: FlowResumeIn | None = None
) -> FlowOut:
    flow = flows.resume(session, principal, flow_id, body.transaction_id if body else None)
    return _flow_out(principal, flow, flows.history(session, flow))


@flows_router.post("/{flow_id}/cancel", response_model=FlowOut, summary="Demander l'annulation d'un acte transmis")
def cancel_flow(principal: PrincipalDep, session: SessionDep, flow_id: str) -> FlowOut:
    flow = flows.cancel_act(session, principal, flow_id)
    return _flow_out(principal, flow, flows.history(session, flow))


def _flow_out(principal: Principal, flow: Flow, events: list[FlowEvent] | None = None) -> FlowOut:
    """The flow as ``principal`` may read it: the object keys of its files whole only for its creator and
    administrators (flows.shows_keys), else cut."""
    out = FlowOut.of(flow, events)
    if flows.shows_keys(principal, flow):
        return out
    return FlowOut.model_validate(flows.without_keys(out.model_dump()))


@connectors.post("/{name}/pes-retours", status_code=202, summary="Relever les PES Retour du TdT vers la GED")
def collect_pes_retours(principal: PrincipalDep, session: SessionDep, name: str) -> dict[str, str]:
    return {"job_id": flows.request_pes_retours(session, principal, name)}


@connectors.get("/{name}/prefecture", summary="Courriers de la préfecture en attente chez le TdT")
def prefecture_letters(principal: PrincipalDep, session: SessionDep, name: str) -> list[dict[str, Any]]:
    return flows.prefecture_letters(session, principal, name)


@connectors.post(
    "/{name}/prefecture/{letter_id}/fetch", summary="Lire un courrier de la préfecture et le classer dans la GED"
)
def fetch_prefecture_letter(principal: PrincipalDep, session: SessionDep, name: str, letter_id: str) -> dict[str, Any]:
    return flows.fetch_prefecture_letter(session, principal, name, letter_id)


@connectors.post("/{name}/prefecture/{letter_id}/reply", summary="Répondre à un courrier de la préfecture")
def answer_prefecture(
    principal: PrincipalDep, session: SessionDep, name: str, letter_id: str, body: PrefectureReplyIn
) -> dict[str, str]:
    answer = flows.answer_prefecture(session, principal, name, letter_id, body.type, body.object_key, body.filename)
    return {"transaction_id": answer}


@connectors.post(
    "/{name}/classification", response_model=ClassificationOut, summary="Récupérer la classification @ctes du TdT"
)
def fetch_classification(principal: PrincipalDep, session: SessionDep, name: str) -> ClassificationOut:
    return _classification_out(name, flows.fetch_classification(session, principal, name))


@connectors.get("/{name}/classification", response_model=ClassificationOut, summary="Classification @ctes gardée")
def get_classification(principal: PrincipalDep, session: SessionDep, name: str) -> ClassificationOut:
    return _classification_out(name, flows.get_classification(session, principal.tenant_id, name))


def _classification_out(name: str, row: TdtClassification) -> ClassificationOut:
    return ClassificationOut(
        connector=name,
        classification_date=row.classification_date,
        fetched_at=row.fetched_at,
        platform_date=row.platform_date,
        natures=row.natures,
        matieres=row.matieres,
        sha256=row.object_key,
    )


def create_app() -> FastAPI:
    return create_service_app(
        "interop",
        "socle — interopérabilité",
        "Connecteurs vers les plateformes extérieures : dépôt dans un dossier, SAE Vitam et As@lae.",
        [connectors, deliveries, flows_router],
    )
