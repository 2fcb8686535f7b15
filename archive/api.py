"""Archive HTTP API: versements, their SEDA packages and their sending; inspection of any SEDA package."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO, Annotated, Any

from fastapi import APIRouter, Body, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from archive import inspection, mapping, profiles, referential, service
from archive.schemas import (
    AbandonIn,
    FolderTransferIn,
    InspectionOut,
    MappingIn,
    MappingOut,
    ProfileOut,
    ReferentialIn,
    ReferentialOut,
    SendIn,
    TransferIn,
    TransferOut,
)
from socle.auth import Role
from socle.errors import InvalidInput, NotFound, PayloadTooLarge, UnsupportedMediaType, message
from socle.settings import get_settings
from socle.web import PrincipalDep, SessionDep, create_service_app, file_responses, object_response

router = APIRouter(prefix="/transfers", tags=["versements"])
inspections = APIRouter(prefix="/inspections", tags=["inspection"])
profile_routes = APIRouter(prefix="/profiles", tags=["profils d'archivage"])
referential_routes = APIRouter(prefix="/referential", tags=["référentiel"])
mapping_routes = APIRouter(prefix="/mappings", tags=["correspondances GED → SEDA"])


@router.post("", status_code=202, response_model=TransferOut, summary="Demander un versement de documents de la GED")
def request_transfer(principal: PrincipalDep, session: SessionDep, body: TransferIn) -> TransferOut:
    return TransferOut.of(service.request_transfer(session, principal, body))


@router.get("", response_model=list[TransferOut], summary="Lister les versements")
def list_transfers(
    principal: PrincipalDep,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,
) -> list[TransferOut]:
    # The archivist's work, as the pages: a transfer names documents, their SAE answers and its package's key.
    principal.require(Role.ARCHIVISTE)
    return [TransferOut.of(t) for t in service.list_transfers(session, principal.tenant_id, limit, offset)]


@router.get("/{transfer_id}", response_model=TransferOut, summary="Consulter un versement et son rapport de validation")
def get_transfer(principal: PrincipalDep, session: SessionDep, transfer_id: str) -> TransferOut:
    principal.require(Role.ARCHIVISTE)
    return TransferOut.of(service.get_transfer(session, principal.tenant_id, transfer_id))


@router.get(
    "/{transfer_id}/sip",
    summary="Télécharger le paquet SEDA (zip)",
    response_class=Response,
    responses=file_responses("application/zip", description="Le paquet SEDA : bordereau et documents"),
)
def download_sip(principal: PrincipalDep, session: SessionDep, transfer_id: str) -> Response:
    principal.require(Role.ARCHIVISTE)  # the package holds the documents' bytes: for archivists, as its creation
    transfer = service.get_transfer(session, principal.tenant_id, transfer_id)
    if transfer.sip_key is None:
        raise NotFound("le paquet de ce versement n'est pas encore construit")
    return object_response(transfer.sip_key, f"{transfer.message_identifier}.zip", "application/zip")


@router.post(
    "/{transfer_id}/send",
    status_code=202,
    response_model=TransferOut,
    summary="Envoyer par un connecteur",
    description="Le connecteur doit être l'un des connecteurs actifs du système d'archivage que l'interopérabilité "
    "a fait connaître au service d'archives : sinon 422, dont le détail et `usable_connectors` nomment ceux-ci. "
    "Tant qu'elle n'en a fait connaître aucun, le nom est transmis tel quel et l'interopérabilité en juge.",
)
def send(principal: PrincipalDep, session: SessionDep, transfer_id: str, body: SendIn) -> TransferOut:
    return TransferOut.of(service.send(session, principal, transfer_id, body))


@router.post(
    "/{transfer_id}/validate",
    response_model=TransferOut,
    summary="Revalider le paquet construit (schémas installés, référentiel ou profil corrigés)",
)
def validate(principal: PrincipalDep, session: SessionDep, transfer_id: str) -> TransferOut:
    return TransferOut.of(service.revalidate(session, principal, transfer_id))


@router.post(
    "/{transfer_id}/abandon",
    response_model=TransferOut,
    summary="Abandonner un versement non reçu par le système d'archivage : ses documents sont rendus à la GED",
)
def abandon(principal: PrincipalDep, session: SessionDep, transfer_id: str, body: AbandonIn) -> TransferOut:
    return TransferOut.of(service.abandon(session, principal, transfer_id, body.reason))


# --- inspection of an uploaded package ----------------------------------------------------------------


class _UploadReceiver:
    """Multipart callbacks that stream the `file` field into a temporary file, counting its bytes.

    Starlette's own form parsing would first spool the whole body, whatever its size when no
    Content-Length announces it; here the limit stops the upload as soon as it is crossed.
    """

    FIELD = b"file"

    def __init__(self, folder: Path, limit: int, noun: str = "paquet") -> None:
        self.folder, self.limit, self.noun = folder, limit, noun
        self.received = 0
        self.path: Path | None = None
        self.filename = "paquet.zip"
        self._out: IO[bytes] | None = None
        self._headers: dict[bytes, bytes] = {}
        self._field = self._value = b""
        self._in_file = False

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._append("_field", data[start:end]),
            "on_header_value": lambda data, start, end: self._append("_value", data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _append(self, name: str, data: bytes) -> None:
        value = getattr(self, name) + data
        if len(value) > 8192:
            raise InvalidInput("en-tête multipart trop long")
        setattr(self, name, value)

    def _part_begin(self) -> None:
        self._headers, self._in_file = {}, False

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") != self.FIELD:
            return
        if self.path is not None:
            raise InvalidInput(f"un seul {self.noun} à la fois (champ « file » en double)")
        name = options.get(b"filename", b"").decode("utf-8", "replace").replace("\\", "/")
        self.filename = PurePosixPath(name).name[:200] or self.filename
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=self.folder, prefix=".inspection-", suffix=".zip")
        self.path, self._out, self._in_file = Path(name), os.fdopen(handle, "wb"), True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        # Every part counts: a flood of other fields is bounded as well.
        self.received += end - start
        if self.received > self.limit:
            raise PayloadTooLarge(
                f"le {self.noun} dépasse la taille maximale de {self.limit} octets", max_size=self.limit
            )
        if self._in_file and self._out is not None:
            self._out.write(data[start:end])

    def _part_end(self) -> None:
        if self._in_file and self._out is not None:
            self._out.close()
        self._in_file = False

    def discard(self) -> None:
        if self._out is not None:
            self._out.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)


async def _receive_package(request: Request, noun: str = "paquet", limit: int | None = None) -> tuple[Path, str]:
    settings = get_settings()
    receiver = _UploadReceiver(
        settings.data_dir / "tmp", min(limit or settings.max_upload_bytes, settings.max_upload_bytes), noun
    )
    await _receive(request, receiver, noun)
    assert receiver.path is not None
    return receiver.path, receiver.filename


async def _receive(request: Request, receiver: _UploadReceiver, noun: str) -> None:
    """Stream the multipart body through ``receiver``; its temporary files are removed if anything fails."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise UnsupportedMediaType(f"envoyez le {noun} en multipart/form-data, dans le champ « file »")
    parser = MultipartParser(options[b"boundary"], receiver.callbacks())  # type: ignore[arg-type]
    try:
        # Chunks are small (the server's reads): writing them from the event loop is a short block.
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
        if receiver.path is None:
            raise InvalidInput(f"aucun {noun} reçu : joignez le fichier dans le champ « file »")
    except MultipartParseError as exc:
        receiver.discard()
        raise InvalidInput(f"envoi multipart mal formé : {exc}") from None
    except BaseException:
        receiver.discard()
        raise


_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": "Le paquet (zip)"}},
                }
            }
        },
    }
}


@inspections.post(
    "",
    response_model=InspectionOut,
    summary="Inspecter un paquet SEDA 2.x : arborescence, empreintes et tailles recalculées",
    openapi_extra=_UPLOAD_SCHEMA,
)
async def inspect_package(principal: PrincipalDep, request: Request) -> InspectionOut:
    # Any authenticated user: the package is only read, nothing is kept.
    path, filename = await _receive_package(request)
    try:
        report = await run_in_threadpool(inspection.inspect_sip, path, None, filename=filename)
    finally:
        path.unlink(missing_ok=True)
    return InspectionOut.of(report)


# --- a folder tree sent to be transferred ---------------------------------------------------------------


class _FolderReceiver(_UploadReceiver):
    """« file »: the folder tree (zip or tar) and « csv »: its metadata (optional), each streamed to a temporary
    file; any other part is one of the transfer's fields, as text, bounded."""

    CSV = b"csv"
    MAX_FIELD_BYTES = 4096
    MAX_FIELDS = 20

    def __init__(self, folder: Path, limit: int) -> None:
        super().__init__(folder, limit, "dossier")
        self.filename = "dossier.zip"
        self.csv_path: Path | None = None
        self.csv_filename = ""
        self.fields: dict[str, str] = {}
        self._csv_out: IO[bytes] | None = None
        self._text_name: str | None = None
        self._text = b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name", b"")
        if name == self.FIELD:
            super()._headers_finished()
        elif name == self.CSV:
            if self.csv_path is not None:
                raise InvalidInput(message("un seul CSV à la fois (champ « csv » en double)"))
            sent = options.get(b"filename", b"").decode("utf-8", "replace").replace("\\", "/")
            self.csv_filename = PurePosixPath(sent).name[:200]
            self.folder.mkdir(parents=True, exist_ok=True)
            handle, path = tempfile.mkstemp(dir=self.folder, prefix=".folder-", suffix=".csv")
            self.csv_path, self._csv_out = Path(path), os.fdopen(handle, "wb")
        else:
            field = name.decode("utf-8", "replace")[:100]
            if field in self.fields:
                raise InvalidInput(message("champ « %(field)s » en double", field=field))
            if len(self.fields) >= self.MAX_FIELDS:
                raise InvalidInput(message("trop de champs dans le formulaire"))
            self._text_name, self._text = field, b""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        super()._part_data(data, start, end)  # counts every part against the limit; writes the tree's
        if self._csv_out is not None:  # its size is the service's to check (request_folder_transfer)
            self._csv_out.write(data[start:end])
        elif self._text_name is not None:
            if len(self._text) + end - start > self.MAX_FIELD_BYTES:
                raise InvalidInput(message("champ « %(field)s » trop long", field=self._text_name))
            self._text += data[start:end]

    def _part_end(self) -> None:
        super()._part_end()
        if self._csv_out is not None:
            self._csv_out.close()
            self._csv_out = None
        if self._text_name is not None:
            try:
                self.fields[self._text_name] = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(message("champ « %(field)s » : texte non UTF-8", field=self._text_name)) from None
            self._text_name = None

    def discard(self) -> None:
        super().discard()
        if self._csv_out is not None:
            self._csv_out.close()
        if self.csv_path is not None:
            self.csv_path.unlink(missing_ok=True)


_FOLDER_FIELDS = FolderTransferIn.model_json_schema()
_FOLDER_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", *_FOLDER_FIELDS["required"]],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "L'arborescence : zip, ou tar (tar.gz, tar.bz2, tar.xz)",
                        },
                        "csv": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV de métadonnées au format de ReSIP (facultatif)",
                        },
                        **_FOLDER_FIELDS["properties"],
                    },
                }
            }
        },
    }
}


@router.post(
    "/folder",
    status_code=202,
    response_model=TransferOut,
    summary="Verser une arborescence de dossiers (zip ou tar), avec un CSV de métadonnées facultatif",
    openapi_extra=_FOLDER_SCHEMA,
)
async def request_folder_transfer(principal: PrincipalDep, session: SessionDep, request: Request) -> TransferOut:
    principal.require(Role.ARCHIVISTE)  # before reading any byte
    settings = get_settings()
    receiver = _FolderReceiver(settings.data_dir / "tmp", settings.max_upload_bytes)
    await _receive(request, receiver, "dossier")
    assert receiver.path is not None  # _receive refuses a request without it
    try:
        try:
            body = FolderTransferIn.model_validate(receiver.fields)
        except ValidationError as exc:  # answered like a JSON body's errors
            raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None
        # A browser's file field left empty still sends a part: no name, no byte.
        sent = receiver.csv_path is not None and (receiver.csv_filename or receiver.csv_path.stat().st_size)
        csv = receiver.csv_path if sent else None
        transfer = await run_in_threadpool(
            service.request_folder_transfer,
            session,
            principal,
            body,
            receiver.path,
            receiver.filename,
            csv,
            receiver.csv_filename or None,
        )
    finally:
        receiver.discard()
    return TransferOut.of(transfer)


# --- archival profiles and referential -----------------------------------------------------------------


@profile_routes.get("", response_model=list[ProfileOut], summary="Lister les profils d'archivage de la collectivité")
def list_profiles(principal: PrincipalDep, session: SessionDep) -> list[ProfileOut]:
    return [ProfileOut.of(profile) for profile in profiles.list_profiles(session, principal.tenant_id)]


@profile_routes.put(
    "/{name}",
    response_model=ProfileOut,
    summary="Déposer ou remplacer un profil d'archivage (RelaxNG, SHERPA ou PASTIS)",
    openapi_extra=_UPLOAD_SCHEMA,
)
async def upload_profile(
    principal: PrincipalDep,
    session: SessionDep,
    name: str,
    request: Request,
    identifier: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Identifiant du profil dans le système d'archivage (PR-000001), écrit comme ArchivalProfile ;"
            " défaut : le nom, ou l'identifiant déjà donné au profil remplacé",
        ),
    ] = None,
) -> ProfileOut:
    principal.require(Role.ARCHIVISTE)  # before reading any byte
    if identifier is not None:
        profiles.sae_identifier(identifier)  # refused before the upload is read
    path, _ = await _receive_package(request, "profil", profiles.MAX_PROFILE_BYTES)
    try:
        data = path.read_bytes()
    finally:
        path.unlink(missing_ok=True)
    profile = await run_in_threadpool(profiles.upload_profile, session, principal, name, data, identifier)
    return ProfileOut.of(profile)


@profile_routes.get(
    "/{name}",
    summary="Télécharger un profil d'archivage",
    response_class=Response,
    responses=file_responses("application/xml", description="Le profil d'archivage (RelaxNG) tel que déposé"),
)
def download_profile(principal: PrincipalDep, session: SessionDep, name: str) -> Response:
    profile = profiles.get_profile(session, principal.tenant_id, name)
    return object_response(profile.object_key, f"{profile.name}.rng", "application/xml")


@profile_routes.delete("/{name}", status_code=204, summary="Supprimer un profil d'archivage (archiviste)")
def delete_profile(principal: PrincipalDep, session: SessionDep, name: str) -> Response:
    profiles.delete_profile(session, principal, name)
    return Response(status_code=204)


@referential_routes.get("", response_model=ReferentialOut, summary="Consulter le référentiel de la collectivité")
def get_referential(principal: PrincipalDep, session: SessionDep) -> ReferentialOut:
    found = referential.get_referential(session, principal.tenant_id)
    if found is None:
        return ReferentialOut(rules=[], digest_algorithms=["SHA-512"], updated_by=None, updated_at=None)
    return ReferentialOut.of(found)


@referential_routes.put(
    "", response_model=ReferentialOut, summary="Remplacer le référentiel : règles de gestion, algorithmes d'empreinte"
)
def set_referential(principal: PrincipalDep, session: SessionDep, body: ReferentialIn) -> ReferentialOut:
    return ReferentialOut.of(referential.set_referential(session, principal, body))


@referential_routes.delete(
    "", status_code=204, summary="Supprimer le référentiel : règles non contrôlées, SHA-512 seul accepté (archiviste)"
)
def delete_referential(principal: PrincipalDep, session: SessionDep) -> Response:
    referential.delete_referential(session, principal)
    return Response(status_code=204)


_MAPPING_SCHEMA = MappingIn.model_json_schema()


# --- mappings of GED document types to SEDA ----------------------------------------------------------------


@mapping_routes.get("", response_model=list[MappingOut], summary="Lister les correspondances enregistrées")
def list_mappings(principal: PrincipalDep, session: SessionDep) -> list[MappingOut]:
    return mapping.list_mappings(session, principal.tenant_id)


@mapping_routes.get(
    "/{type_code}", response_model=MappingOut, summary="Consulter la correspondance d'un type de document GED"
)
def get_mapping(principal: PrincipalDep, session: SessionDep, type_code: str, response: Response) -> MappingOut:
    found = mapping.get_mapping(session, principal.tenant_id, type_code)
    response.headers["ETag"] = f'"{mapping.mapping_version(found)}"'  # sent back in If-Match: no lost update
    return found


@mapping_routes.put(
    "/{type_code}",
    response_model=MappingOut,
    summary="Enregistrer la correspondance d'un type de document GED vers le SEDA (archiviste)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _MAPPING_SCHEMA}}}},
)
def set_mapping(
    principal: PrincipalDep,
    session: SessionDep,
    type_code: str,
    body: Annotated[Any, Body()],
    response: Response,
    if_match: Annotated[
        str | None,
        Header(
            description="L'ETag de la correspondance lue : refusée (409) si un autre archiviste l'a modifiée depuis"
        ),
    ] = None,
) -> MappingOut:
    # The body is checked by archive.mapping, whose messages are French and name each element.
    version = if_match.strip().removeprefix("W/").strip('"') if if_match and if_match.strip() != "*" else None
    saved = mapping.set_mapping(session, principal, type_code, body, version=version)
    response.headers["ETag"] = f'"{mapping.mapping_version(saved)}"'
    return saved


def create_app() -> FastAPI:
    return create_service_app(
        "archive",
        "socle — archives",
        "Versements SEDA : construction, validation et envoi des paquets d'archives ; inspection de paquets.",
        [router, inspections, profile_routes, referential_routes, mapping_routes],
    )
