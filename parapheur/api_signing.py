"""Parapheur HTTP API, the routes around the engine: client-side signing (smart card), paper signature,
bordereau, bulk actions, notification preferences, and the public routes of external signature links.

Registered by parapheur.api.create_app, after the engine's routes.
"""

from __future__ import annotations

import base64
from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Form, Response, UploadFile

from parapheur import bulk_actions, external, external_reading, notify, report, service, signature_acts, signing
from parapheur.schemas import (
    BulkIn,
    BulkOut,
    ExternalOut,
    ExternalSignedOut,
    ExternalSignIn,
    FinishIn,
    FolderOut,
    PreferenceIn,
    PreferenceOut,
    PreparedOut,
    PrepareIn,
)
from socle.errors import NotFound
from socle.files import display_name
from socle.web import ANY_FILE, PrincipalDep, SessionDep, content_disposition, file_responses, object_response

# Every route needs an API token except the external ones, public on purpose: the one-time secret in the
# path is the external signer's only credential (its SHA-256 is what the database holds).

signatures = APIRouter(prefix="/folders", tags=["signature"])
bulk_router = APIRouter(tags=["actions groupées"])
notification_router = APIRouter(prefix="/notifications", tags=["notifications"])
external_router = APIRouter(prefix="/external", tags=["signature externe"])


@signatures.post("/{folder_id}/signature/prepare", response_model=PreparedOut, summary="Signature par carte : préparer")
def prepare_signature(principal: PrincipalDep, session: SessionDep, folder_id: str, body: PrepareIn) -> PreparedOut:
    certificate = signature_acts.decode_b64(body.certificate, "certificat")
    chain = [signature_acts.decode_b64(der, "chaîne de certificats") for der in body.chain]
    row, prepared = signature_acts.prepare(session, principal, folder_id, certificate, chain, body.desk_id)
    return PreparedOut(
        id=row.id,
        data_to_sign=base64.b64encode(prepared.data_to_sign).decode("ascii"),
        digest_algorithm=prepared.digest_algorithm,
        expires_at=row.expires_at,
    )


@signatures.post("/{folder_id}/signature/finish", response_model=FolderOut, summary="Signature par carte : terminer")
def finish_signature(principal: PrincipalDep, session: SessionDep, folder_id: str, body: FinishIn) -> FolderOut:
    value = signature_acts.decode_b64(body.signature, "signature")
    return FolderOut.of(signature_acts.finish(session, principal, folder_id, body.id, value))


@signatures.post(
    "/{folder_id}/paper-signature", response_model=FolderOut, summary="Signature papier (scan PDF ou photos)"
)
def paper_signature(
    principal: PrincipalDep,
    session: SessionDep,
    folder_id: str,
    file: Annotated[
        list[UploadFile],
        File(description="Le scan du document signé à la main (un PDF), ou les photos de ses pages (JPEG, PNG)"),
    ],
    comment: Annotated[str | None, Form(max_length=2000)] = None,
    desk_id: Annotated[str | None, Form(max_length=36)] = None,
    signatory: Annotated[
        str | None,
        Form(
            max_length=100,
            description="Qui a signé à la main, quand ce n'est pas vous : l'identifiant d'un membre d'un bureau de "
            "l'étape (vous l'enregistrez pour lui)",
        ),
    ] = None,
    signatory_name: Annotated[
        str | None,
        Form(
            max_length=200,
            description="Ou son nom et prénom, pour une personne sans compte (le maire qui n'utilise pas l'outil)",
        ),
    ] = None,
    signed_on: Annotated[
        date | None, Form(description="Jour de la signature à la main (AAAA-MM-JJ) ; par défaut aujourd'hui")
    ] = None,
    document_id: Annotated[
        str | None,
        Form(
            max_length=36,
            description="Le document principal dont c'est le scan, si le dossier en a plusieurs (PAdES)",
        ),
    ] = None,
) -> FolderOut:
    uploads = [
        service.Upload(part.file, display_name(part.filename or "", "signature-papier.pdf"), part.content_type or "")
        for part in file
    ]
    on_paper = signature_acts.PaperSignatory(username=signatory or None, name=signatory_name, signed_on=signed_on)
    # Refused before any image is decoded when the folder does not wait for this paper signature.
    signature_acts.paper_context(session, principal, folder_id, desk_id, on_paper)
    session.rollback()  # no lock held while the images are read
    with service.paper_scan(uploads) as (scan, name):
        folder = signature_acts.paper_signature(
            session, principal, folder_id, scan, name, comment, desk_id, on_paper, document_id
        )
    return FolderOut.of(folder)


@signatures.get(
    "/{folder_id}/documents/{document_id}/original",
    summary="Télécharger un document tel que reçu, avant toute signature",
    response_class=Response,
    responses=file_responses(ANY_FILE, description="Le document tel que déposé, non signé (ni sur papier ni en ligne)"),
)
def original_document(principal: PrincipalDep, session: SessionDep, folder_id: str, document_id: str) -> Response:
    # Not a reading of its current state (lecture obligatoire): the signed version is what is signed next.
    document = service.open_document(session, principal, folder_id, document_id, read=False)
    return object_response(document.key, document.filename, document.media_type)


@signatures.get(
    "/{folder_id}/documents/{document_id}/signature",
    summary="Télécharger la signature détachée (.p7s)",
    response_class=Response,
    responses=file_responses("application/pkcs7-signature", description="La signature CAdES détachée du document"),
)
def detached_signature(principal: PrincipalDep, session: SessionDep, folder_id: str, document_id: str) -> Response:
    folder = service.folder_for(session, principal, folder_id)
    document = next((doc for doc in folder.documents if doc.id == document_id), None)
    if document is None or document.signature_key is None:
        raise NotFound("ce document n'a pas de signature détachée")
    return object_response(document.signature_key, f"{document.filename}.p7s", "application/pkcs7-signature")


@signatures.get(
    "/{folder_id}/bordereau",
    summary="Bordereau de l'historique (PDF)",
    response_class=Response,
    responses=file_responses(
        "application/pdf", description="Le bordereau de l'historique du dossier, fait à la demande", stored=False
    ),
)
def bordereau(principal: PrincipalDep, session: SessionDep, folder_id: str) -> Response:
    folder = service.folder_for(session, principal, folder_id)
    with signing.scratch_dir() as scratch:
        path = scratch / "bordereau.pdf"
        report.write_bordereau(session, folder, path)
        content = path.read_bytes()
    headers = {"Content-Disposition": content_disposition(f"bordereau-{folder.id}.pdf")}
    return Response(content, media_type="application/pdf", headers=headers)


@bulk_router.post("/folders/bulk", status_code=202, response_model=BulkOut, summary="Viser ou signer une sélection")
def create_bulk(principal: PrincipalDep, session: SessionDep, body: BulkIn) -> BulkOut:
    return BulkOut.of(bulk_actions.create(session, principal, body.action, body.folder_ids, body.comment))


@bulk_router.get("/bulk/{operation_id}", response_model=BulkOut, summary="Avancement d'une action groupée")
def get_bulk(principal: PrincipalDep, session: SessionDep, operation_id: str) -> BulkOut:
    return BulkOut.of(bulk_actions.get(session, principal, operation_id))


@notification_router.get("/preferences", response_model=PreferenceOut, summary="Mes préférences de notification")
def get_preferences(principal: PrincipalDep, session: SessionDep) -> PreferenceOut:
    return PreferenceOut(mode=notify.get_preference(session, principal.tenant_id, principal.username))


@notification_router.put("/preferences", response_model=PreferenceOut, summary="Choisir mes notifications")
def put_preferences(principal: PrincipalDep, session: SessionDep, body: PreferenceIn) -> PreferenceOut:
    mode = notify.set_preference(session, principal.tenant_id, principal.username, body.mode)
    session.commit()
    return PreferenceOut(mode=mode)


@external_router.get("/{secret}", response_model=ExternalOut, summary="Dossier à signer (lien à usage unique)")
def external_view(session: SessionDep, secret: str) -> ExternalOut:
    return ExternalOut.of(external.view(session, secret))


@external_router.get(
    "/{secret}/documents/{document_id}",
    summary="Document à signer (lien à usage unique)",
    response_class=Response,
    responses=file_responses(ANY_FILE, description="Le document à signer, du type du fichier déposé"),
)
def external_document(session: SessionDep, secret: str, document_id: str) -> Response:
    folder, step = external.find(session, secret)
    key, document = external.document(session, secret, document_id)
    external_reading.record_read(session, folder, step, document)  # a download counts as reading, as on the page
    return object_response(key, document.filename, document.media_type)


@external_router.post("/{secret}/sign", response_model=ExternalSignedOut, summary="Signer (lien à usage unique)")
def external_sign(session: SessionDep, secret: str, body: ExternalSignIn) -> ExternalSignedOut:
    folder = external.sign(session, secret, body.consent, body.name)
    return ExternalSignedOut(title=folder.title, status=folder.status, message="Votre signature est enregistrée.")


ROUTERS = [signatures, bulk_router, notification_router, external_router]
