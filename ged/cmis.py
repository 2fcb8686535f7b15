"""CMIS 1.1 Browser Binding (a subset), mounted under /ged/cmis: one repository per collectivité.

Read with GET and ``cmisselector``, write with POST and ``cmisaction`` (HTML form or multipart), answers in
JSON (OASIS CMIS 1.1, part 5). What a CMIS client sees:

- the repository is the tenant (its id is the tenant's slug); the root folder (id ``root``) holds the top of
  the classification plan and the documents filed in no folder;
- ``cmis:document`` has one subtype per document type of the tenant (``ged:<code>``) whose typed fields are
  properties ``ged:<field>``; ``cmis:name`` is the title, the content stream the current version;
- a document's versions are read as ``<id>;<number>``; check-out marks ``Document.checked_out_by``: while it
  is set only its holder may write, and check-in adds the new version (the private working copy is the
  document itself: same id);
- query: ``SELECT … FROM cmis:document|ged:<code> [WHERE …] [ORDER BY …]`` with ``cmis:name``-like property
  comparisons (=, <>, LIKE), ``IN_FOLDER``, ``IN_TREE`` and ``CONTAINS`` (the GED's French full-text search).

Authentication: the kit's API tokens, as ``Authorization: Bearer <token>`` or HTTP Basic with the user name
and the token as password (what CMIS clients such as cmislib send). Rights are the GED's (``ged.access``);
every write goes through ``ged.service`` / ``ged.plan`` (audited, indexed).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload
from starlette.datastructures import FormData, UploadFile

from ged import access, ingest, plan, service, types
from ged.models import Document, DocumentType, Folder, Version
from ged.schemas import FolderIn, FolderPatch, MetadataPatch
from socle import audit
from socle.auth import Principal, authenticate
from socle.db import new_session, utcnow
from socle.errors import Conflict, NotFound, SocleError, Unauthenticated, message
from socle.validation_messages import french_message
from socle.web import ANY_FILE, PROBLEM_CONTENT, file_responses, object_response

ROOT_ID = "root"
DOCUMENT = "cmis:document"
FOLDER = "cmis:folder"
TYPE_PREFIX = "ged:"
FIELD_PREFIX = "ged:"
MAX_ITEMS = 1000
ELIMINATED = "eliminated"


# ---------------------------------------------------------------------------------------------------------
# Errors: CMIS exceptions as JSON, with the binding's HTTP statuses


class CmisError(Exception):
    def __init__(self, exception: str, status: int, message: str) -> None:
        super().__init__(message)
        self.exception, self.status, self.message = exception, status, message


def not_supported(message: str) -> CmisError:
    return CmisError("notSupported", 405, message)


def invalid(message: str) -> CmisError:
    return CmisError("invalidArgument", 400, message)


# The kit's statuses mapped to the CMIS exceptions of the Browser Binding (spec 5.2.9.1)
_BY_STATUS: dict[int, tuple[str, int]] = {
    400: ("invalidArgument", 400),
    401: ("permissionDenied", 401),
    403: ("permissionDenied", 403),
    404: ("objectNotFound", 404),
    405: ("notSupported", 405),
    409: ("constraint", 409),
    410: ("constraint", 409),
    413: ("constraint", 409),
    415: ("constraint", 409),
    422: ("invalidArgument", 400),
    423: ("updateConflict", 409),
}


def _cmis_response(error: CmisError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="socle CMIS", charset="UTF-8"'} if error.status == 401 else None
    return JSONResponse({"exception": error.exception, "message": error.message}, error.status, headers=headers)


def _as_cmis(exc: Exception) -> CmisError:
    if isinstance(exc, CmisError):
        return exc
    if isinstance(exc, SocleError):
        exception, status = _BY_STATUS.get(exc.status, ("runtime", 500))
        if isinstance(exc, Conflict) and "extrait" in exc.detail:
            exception = "updateConflict"
        return CmisError(exception, status, exc.detail)
    if isinstance(exc, RequestValidationError | ValidationError):
        errors = exc.errors()
        return invalid("; ".join(f"{'.'.join(str(p) for p in e['loc'])} : {french_message(e)}" for e in errors))
    raise exc


class CmisRoute(APIRoute):
    """Every error of a CMIS route answers in the binding's JSON form, not the kit's problem+json."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def cmis_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                return _cmis_response(_as_cmis(exc))

        return cmis_handler


# The errors as CMIS answers them (CmisRoute), documented in the OpenAPI document instead of the kit's problem+json
# (which only the kit's guards, answering before the route, still send: a body too large, a cross-site request).
CMIS_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["exception", "message"],
    "properties": {
        "exception": {
            "type": "string",
            "description": "Exception CMIS (Browser Binding, 5.2.9.1)",
            "enum": sorted({name for name, _ in _BY_STATUS.values()} | {"runtime"}),
        },
        "message": {"type": "string", "description": "Le motif, en français"},
    },
}
_CMIS_ERRORS: dict[int | str, dict[str, Any]] = {
    "default": {
        "description": "Erreur CMIS (400, 401, 403, 404, 405, 409, 500) ; une requête refusée avant la route (corps "
        "trop gros, requête d'un autre site) reçoit un problem+json (RFC 9457)",
        "content": {"application/json": {"schema": CMIS_ERROR_SCHEMA}, **PROBLEM_CONTENT},
    }
}

router = APIRouter(prefix="/cmis", tags=["cmis"], route_class=CmisRoute, responses=_CMIS_ERRORS)


# ---------------------------------------------------------------------------------------------------------
# Authentication: Bearer token, or Basic with the token as password


def cmis_principal(request: Request, session: Session) -> Principal:
    """Who calls. :raises Unauthenticated: no credentials, a bad token, or a Basic user name not the token's."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    username: str | None = None
    token: str | None = None
    if scheme.lower() == "bearer":
        token = value.strip()
    elif scheme.lower() == "basic":
        try:
            username, _, token = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthenticated(message("identifiants Basic illisibles")) from None
    principal = authenticate(session, token or None)
    if username and username != principal.username:
        raise Unauthenticated(message("le jeton ne correspond pas à cet utilisateur"))
    session.rollback()
    return principal


# ---------------------------------------------------------------------------------------------------------
# Repository info and types


def _urls(request: Request, slug: str) -> tuple[str, str]:
    # The scope's root_path is every prefix in front of the GED's routes: the proxy's (`socle serve --root-path`)
    # followed by the mount's (/ged, when the four services run together). base_url would repeat the first.
    base = f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"
    repository = f"{base}/cmis/{slug}"
    return repository, f"{repository}/root"


def repository_info(request: Request, principal: Principal) -> dict[str, Any]:
    repository_url, root_url = _urls(request, principal.tenant_slug)
    return {
        "repositoryId": principal.tenant_slug,
        "repositoryName": principal.tenant_name,
        "repositoryDescription": f"GED de {principal.tenant_name}",
        "vendorName": "socle",
        "productName": "socle GED",
        "productVersion": "0.1.0",
        "rootFolderId": ROOT_ID,
        "repositoryUrl": repository_url,
        "rootFolderUrl": root_url,
        "capabilities": {
            "capabilityContentStreamUpdatability": "anytime",
            "capabilityChanges": "none",
            "capabilityRenditions": "none",
            "capabilityGetDescendants": False,
            "capabilityGetFolderTree": False,
            "capabilityMultifiling": False,
            "capabilityUnfiling": False,
            "capabilityVersionSpecificFiling": False,
            "capabilityPWCSearchable": False,
            "capabilityPWCUpdatable": False,
            "capabilityAllVersionsSearchable": False,
            "capabilityOrderBy": "common",
            "capabilityQuery": "bothcombined",
            "capabilityJoin": "none",
            "capabilityACL": "none",
        },
        "latestChangeLogToken": None,
        "cmisVersionSupported": "1.1",
        "changesIncomplete": True,
        "changesOnType": [],
        "principalIdAnonymous": "anonymous",
        "principalIdAnyone": "anyone",
        "extendedFeatures": [],
    }


@dataclass(frozen=True)
class PropDef:
    id: str
    name: str
    kind: str  # CMIS property type: string, id, integer, decimal, boolean, datetime
    multi: bool = False
    updatable: str = "readonly"  # readonly, readwrite, oncreate
    required: bool = False
    choices: tuple[str, ...] = ()

    def definition(self, inherited: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "localName": self.id.split(":", 1)[-1],
            "localNamespace": "socle",
            "displayName": self.name,
            "queryName": self.id,
            "description": self.name,
            "propertyType": self.kind,
            "cardinality": "multi" if self.multi else "single",
            "updatability": self.updatable,
            "inherited": inherited,
            "required": self.required,
            "queryable": self.id in QUERYABLE,
            "orderable": self.id in ORDERABLE,
            "openChoice": not self.choices,
        }
        if self.choices:
            body["choice"] = [{"displayName": choice, "value": [choice]} for choice in self.choices]
        return body


_COMMON = [
    PropDef("cmis:objectId", "Identifiant", "id"),
    PropDef("cmis:baseTypeId", "Type de base", "id"),
    PropDef("cmis:objectTypeId", "Type", "id", updatable="oncreate", required=True),
    PropDef("cmis:name", "Nom", "string", updatable="readwrite", required=True),
    PropDef("cmis:description", "Description", "string"),
    PropDef("cmis:createdBy", "Créé par", "string"),
    PropDef("cmis:creationDate", "Créé le", "datetime"),
    PropDef("cmis:lastModifiedBy", "Modifié par", "string"),
    PropDef("cmis:lastModificationDate", "Modifié le", "datetime"),
    PropDef("cmis:changeToken", "Jeton de modification", "string"),
    PropDef("cmis:secondaryObjectTypeIds", "Types secondaires", "id", multi=True),
]
_DOCUMENT_PROPS = [
    PropDef("cmis:isImmutable", "Immuable", "boolean"),
    PropDef("cmis:isLatestVersion", "Dernière version", "boolean"),
    PropDef("cmis:isMajorVersion", "Version majeure", "boolean"),
    PropDef("cmis:isLatestMajorVersion", "Dernière version majeure", "boolean"),
    PropDef("cmis:isPrivateWorkingCopy", "Copie de travail", "boolean"),
    PropDef("cmis:versionLabel", "Version", "string"),
    PropDef("cmis:versionSeriesId", "Série de versions", "id"),
    PropDef("cmis:isVersionSeriesCheckedOut", "Extrait", "boolean"),
    PropDef("cmis:versionSeriesCheckedOutBy", "Extrait par", "string"),
    PropDef("cmis:versionSeriesCheckedOutId", "Copie de travail (id)", "id"),
    PropDef("cmis:checkinComment", "Commentaire de version", "string"),
    PropDef("cmis:contentStreamLength", "Taille", "integer"),
    PropDef("cmis:contentStreamMimeType", "Type du contenu", "string"),
    PropDef("cmis:contentStreamFileName", "Nom du fichier", "string"),
    PropDef("cmis:contentStreamId", "Empreinte SHA-256", "id"),
    PropDef("socle:documentType", "Libellé du type", "string", updatable="readwrite"),
    PropDef("socle:documentDate", "Date du document", "datetime", updatable="readwrite"),
    PropDef("socle:tags", "Mots-clés", "string", multi=True, updatable="readwrite"),
]
_FOLDER_PROPS = [
    PropDef("cmis:parentId", "Dossier parent", "id"),
    PropDef("cmis:path", "Chemin", "string"),
    PropDef("cmis:allowedChildObjectTypeIds", "Types admis", "id", multi=True),
    PropDef("socle:code", "Cote", "string", updatable="readwrite"),
]
QUERYABLE = {
    "cmis:objectId",
    "cmis:name",
    "cmis:objectTypeId",
    "cmis:createdBy",
    "cmis:contentStreamMimeType",
    "cmis:contentStreamFileName",
    "socle:documentType",
}
ORDERABLE = {"cmis:name", "cmis:creationDate", "cmis:lastModificationDate"}
_FIELD_KINDS = {
    "text": "string",
    "integer": "integer",
    "decimal": "decimal",
    "date": "datetime",
    "boolean": "boolean",
    "choice": "string",
    "reference": "id",
}


def _field_props(document_type: DocumentType) -> list[PropDef]:
    return [
        PropDef(
            FIELD_PREFIX + spec["name"],
            spec.get("label") or spec["name"],
            _FIELD_KINDS.get(spec.get("kind", "text"), "string"),
            updatable="readonly" if spec.get("retired") else "readwrite",
            required=bool(spec.get("required")) and not spec.get("retired"),
            choices=tuple(spec.get("choices") or ()),
        )
        for spec in document_type.fields or []
    ]


def _type_body(
    type_id: str, name: str, base: str, parent: str | None, props: list[tuple[PropDef, bool]]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": type_id,
        "localName": type_id.split(":", 1)[-1],
        "localNamespace": "socle",
        "displayName": name,
        "queryName": type_id,
        "description": name,
        "baseId": base,
        "creatable": True,
        "fileable": True,
        "queryable": base == DOCUMENT,
        "fulltextIndexed": base == DOCUMENT,
        "includedInSupertypeQuery": True,
        "controllablePolicy": False,
        "controllableACL": False,
        "typeMutability": {"create": False, "update": False, "delete": False},
        "propertyDefinitions": {prop.id: prop.definition(inherited) for prop, inherited in props},
    }
    if parent is not None:
        body["parentId"] = parent
    if base == DOCUMENT:
        body["versionable"] = True
        body["contentStreamAllowed"] = "required"
    return body


def type_definition(session: Session, principal: Principal, type_id: str) -> dict[str, Any]:
    """:raises CmisError objectNotFound: an unknown type id."""
    if type_id == DOCUMENT:
        return _type_body(DOCUMENT, "Document", DOCUMENT, None, [(p, False) for p in _COMMON + _DOCUMENT_PROPS])
    if type_id == FOLDER:
        return _type_body(FOLDER, "Dossier", FOLDER, None, [(p, False) for p in _COMMON + _FOLDER_PROPS])
    document_type = _document_type(session, principal, type_id)
    inherited = [(p, True) for p in _COMMON + _DOCUMENT_PROPS]
    own = [(p, False) for p in _field_props(document_type)]
    return _type_body(type_id, document_type.name, DOCUMENT, DOCUMENT, inherited + own)


def _document_type(session: Session, principal: Principal, type_id: str) -> DocumentType:
    code = type_id[len(TYPE_PREFIX) :] if type_id.startswith(TYPE_PREFIX) else None
    found = types.find_by_code(session, principal.tenant_id, code) if code else None
    if found is None:
        raise CmisError("objectNotFound", 404, f"type {type_id} inconnu")
    return found


def _subtypes(session: Session, principal: Principal, type_id: str | None) -> list[str]:
    if type_id is None:
        return [DOCUMENT, FOLDER]
    if type_id == DOCUMENT:
        return [TYPE_PREFIX + row.code for row in types.list_types(session, principal.tenant_id)]
    type_definition(session, principal, type_id)  # objectNotFound for an unknown one
    return []


def _type_tree(session: Session, principal: Principal, type_id: str | None, depth: int) -> list[dict[str, Any]]:
    nodes = []
    for child in _subtypes(session, principal, type_id):
        node: dict[str, Any] = {"type": type_definition(session, principal, child)}
        if depth != 1:
            node["children"] = _type_tree(session, principal, child, depth - 1)
        nodes.append(node)
    return nodes


# ---------------------------------------------------------------------------------------------------------
# Objects


def _ms(moment: datetime | date | None) -> int | None:
    if moment is None:
        return None
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _field_value(spec: dict[str, Any], value: Any) -> Any:
    if value is None:
        return None
    if spec.get("kind") == "date":
        return _ms(date.fromisoformat(str(value)))
    if spec.get("kind") == "decimal":
        return float(value)
    return value


@dataclass
class Rendering:
    """How to render objects in one answer: properties in full or succinct, allowable actions or not."""

    succinct: bool = False
    actions: bool = False
    # The folders the caller may not read, worked out once per answer (a page of children shares it).
    hidden: set[str] | None = None

    def hidden_folders(self, session: Session, principal: Principal) -> set[str]:
        if self.hidden is None:
            self.hidden = access.hidden_folder_ids(session, principal)
        return self.hidden

    def props(self, values: list[tuple[PropDef, Any]]) -> dict[str, Any]:
        if self.succinct:
            return {"succinctProperties": {prop.id: value for prop, value in values}}
        return {
            "properties": {
                prop.id: {
                    "id": prop.id,
                    "localName": prop.id.split(":", 1)[-1],
                    "displayName": prop.name,
                    "queryName": prop.id,
                    "type": prop.kind,
                    "cardinality": "multi" if prop.multi else "single",
                    "value": value,
                }
                for prop, value in values
            }
        }


_PROP = {prop.id: prop for prop in _COMMON + _DOCUMENT_PROPS + _FOLDER_PROPS}


def document_values(
    session: Session,
    document: Document,
    version: Version | None = None,
    types_by_id: dict[str, DocumentType] | None = None,
) -> list[tuple[PropDef, Any]]:
    """A document's (or one of its versions') properties, typed fields included."""
    current = document.current
    shown = version or current
    latest = shown.number == current.number
    object_id = document.id if latest else f"{document.id};{shown.number}"
    document_type = None
    if document.type_id:
        document_type = (types_by_id or {}).get(document.type_id) or session.get(DocumentType, document.type_id)
    checked_out = document.checked_out_by is not None
    values: dict[str, Any] = {
        "cmis:objectId": object_id,
        "cmis:baseTypeId": DOCUMENT,
        "cmis:objectTypeId": TYPE_PREFIX + document_type.code if document_type else DOCUMENT,
        "cmis:name": shown.title,
        "cmis:description": shown.comment,
        "cmis:createdBy": document.created_by,
        "cmis:creationDate": _ms(document.created_at),
        "cmis:lastModifiedBy": shown.author,
        "cmis:lastModificationDate": _ms(shown.created_at),
        "cmis:changeToken": str(current.number),
        "cmis:secondaryObjectTypeIds": [],
        "cmis:isImmutable": not latest or document.disposal is not None,
        "cmis:isLatestVersion": latest,
        "cmis:isMajorVersion": True,
        "cmis:isLatestMajorVersion": latest,
        "cmis:isPrivateWorkingCopy": False,
        "cmis:versionLabel": f"{shown.number}.0",
        "cmis:versionSeriesId": document.id,
        "cmis:isVersionSeriesCheckedOut": checked_out,
        "cmis:versionSeriesCheckedOutBy": document.checked_out_by,
        "cmis:versionSeriesCheckedOutId": document.id if checked_out else None,
        "cmis:checkinComment": shown.comment,
        "cmis:contentStreamLength": shown.size,
        "cmis:contentStreamMimeType": shown.media_type,
        "cmis:contentStreamFileName": shown.filename,
        "cmis:contentStreamId": shown.object_key,
        "socle:documentType": shown.document_type,
        "socle:documentDate": _ms(shown.document_date),
        "socle:tags": list(shown.tags or []),
    }
    result = [(_PROP[name], value) for name, value in values.items()]
    if document_type is not None:
        specs = {spec["name"]: spec for spec in document_type.fields or []}
        for prop in _field_props(document_type):
            spec = specs[prop.id[len(FIELD_PREFIX) :]]
            result.append((prop, _field_value(spec, (shown.field_values or {}).get(spec["name"]))))
    return result


def folder_values(session: Session, folder: Folder | None, hidden: set[str] | None = None) -> list[tuple[PropDef, Any]]:
    """A folder's properties; ``None`` is the root folder.

    ``hidden``: the folders the reader may not read. None of them is disclosed, by name or id: a folder under
    one has no parent id when its parent is hidden, and a path that starts at the placeholder (``_path``).
    """
    hidden = hidden or set()
    if folder is None:
        values: dict[str, Any] = {
            "cmis:objectId": ROOT_ID,
            "cmis:name": "",
            "cmis:parentId": None,
            "cmis:path": "/",
            "cmis:createdBy": "system",
            "cmis:creationDate": None,
            "socle:code": None,
        }
    else:
        values = {
            "cmis:objectId": folder.id,
            "cmis:name": folder.name,
            "cmis:parentId": None if folder.parent_id in hidden else folder.parent_id or ROOT_ID,
            "cmis:path": _path(session, folder, hidden),
            "cmis:createdBy": folder.created_by,
            "cmis:creationDate": _ms(folder.created_at),
            "socle:code": folder.code,
        }
    values.update(
        {
            "cmis:baseTypeId": FOLDER,
            "cmis:objectTypeId": FOLDER,
            "cmis:description": None,
            "cmis:lastModifiedBy": values["cmis:createdBy"],
            "cmis:lastModificationDate": values["cmis:creationDate"],
            "cmis:changeToken": None,
            "cmis:secondaryObjectTypeIds": [],
            "cmis:allowedChildObjectTypeIds": [],
        }
    )
    return [(_PROP[name], value) for name, value in values.items()]


def _path(session: Session, folder: Folder, hidden: set[str]) -> str:
    """A folder's ``cmis:path``: the names from the root, or, under a folder the reader may not read, the
    placeholder segment then the names below the deepest such folder (« /…/Ressources humaines »).

    CMIS requires a path on every folder (null breaks clients, cmislib included), and the placeholder says
    no more than the parent id left null already does: one segment whatever the depth, no name, no id. No
    folder is named so at the top of the plan (``plan.HIDDEN_SEGMENT``) and a path starting with it is
    answered as an absent one: such a path never leads to another folder.
    """
    trail = plan.ancestors(session, folder)
    shown = set(access.visible_path(folder.path, hidden))
    names = [item.name for item in trail if item.id in shown]
    start = f"/{plan.HIDDEN_SEGMENT}/" if len(names) < len(trail) else "/"
    return start + "/".join(names)


def _document_actions(rights: frozenset[str], document: Document, username: str, latest: bool) -> dict[str, bool]:
    live = document.disposal is None and latest
    holder = document.checked_out_by in (None, username)
    write = "write" in rights and live and holder
    mine = document.checked_out_by == username
    return {
        "canGetProperties": True,
        "canGetContentStream": document.disposal != ELIMINATED,
        "canGetObjectParents": True,
        "canGetAllVersions": True,
        "canUpdateProperties": write,
        "canSetContentStream": write,
        "canDeleteObject": "delete" in rights and live and holder,
        "canMoveObject": write,
        "canCheckOut": write and document.checked_out_by is None,
        "canCancelCheckOut": mine,
        "canCheckIn": mine,
        "canDeleteContentStream": False,
        "canGetChildren": False,
        "canCreateDocument": False,
        "canCreateFolder": False,
        "canGetFolderParent": False,
        "canGetDescendants": False,
        "canGetFolderTree": False,
        "canApplyACL": False,
        "canGetACL": False,
        "canApplyPolicy": False,
        "canCreateRelationship": False,
        "canGetRenditions": False,
    }


def _folder_actions(
    rights: frozenset[str], folder: Folder | None, principal: Principal, hidden: set[str]
) -> dict[str, bool]:
    manage = "manage" in rights if folder is not None else bool(principal.roles & {"admin", "archiviste"})
    has_parent = folder is not None and folder.parent_id not in hidden
    return {
        "canGetProperties": True,
        "canGetChildren": True,
        "canGetObjectParents": has_parent,
        "canGetFolderParent": has_parent,
        "canCreateDocument": "write" in rights,
        "canCreateFolder": manage,
        "canUpdateProperties": manage and folder is not None,
        "canDeleteObject": manage and folder is not None,
        "canDeleteTree": False,
        "canGetDescendants": False,
        "canGetFolderTree": False,
        "canMoveObject": manage and folder is not None,
        "canGetContentStream": False,
        "canSetContentStream": False,
        "canCheckOut": False,
        "canCheckIn": False,
        "canCancelCheckOut": False,
        "canGetAllVersions": False,
        "canApplyACL": False,
        "canGetACL": False,
        "canApplyPolicy": False,
        "canCreateRelationship": False,
        "canGetRenditions": False,
    }


@dataclass
class Target:
    """What an object id or a path points at: a document (at a version), a folder, or the root."""

    document: Document | None = None
    version: Version | None = None
    folder: Folder | None = None

    @property
    def is_document(self) -> bool:
        return self.document is not None


def render(session: Session, principal: Principal, target: Target, how: Rendering) -> dict[str, Any]:
    if target.document is not None:
        body = how.props(document_values(session, target.document, target.version))
        if how.actions:
            rights = access.rights_on(session, principal, target.document)
            latest = target.version is None or target.version.number == target.document.current_version
            body["allowableActions"] = _document_actions(rights, target.document, principal.username, latest)
        return body
    # Only a folder with ancestors can be under a hidden one: the top of the plan costs no rights query.
    nested = target.folder is not None and target.folder.parent_id is not None
    hidden = how.hidden_folders(session, principal) if nested else set()
    body = how.props(folder_values(session, target.folder, hidden))
    if how.actions:
        rights = access.folder_rights(session, principal, target.folder.id if target.folder else None)
        body["allowableActions"] = _folder_actions(rights, target.folder, principal, hidden)
    return body


def find(session: Session, principal: Principal, object_id: str) -> Target:
    """The object an id names, if the user may read it.

    :raises NotFound: the same answer for an unknown id, another tenant's object and one the user may not read
        (whether a document or a folder, in the trash or not): an id reveals nothing it does not show.
    """
    if object_id == ROOT_ID:
        return Target()
    unknown = NotFound(message("objet %(object_id)s introuvable", object_id=object_id))
    document_id, _, number = object_id.partition(";")
    document = session.execute(
        select(Document)
        .where(Document.id == document_id, Document.tenant_id == principal.tenant_id)
        .options(selectinload(Document.versions))
    ).scalar_one_or_none()
    if document is not None:
        if "read" not in access.rights_on(session, principal, document):
            raise unknown
        if document.deleted_at is not None:  # only a reader may learn it is in the trash
            raise NotFound(message("objet %(object_id)s introuvable (il est dans la corbeille)", object_id=object_id))
        version = None
        if number:
            if not re.fullmatch(r"[0-9]{1,9}", number):  # not isdigit(): « ² » is a digit to it, not to int()
                raise unknown
            version = service.get_version(document, int(number))
        return Target(document=document, version=version)
    folder = session.execute(
        select(Folder).where(Folder.id == object_id, Folder.tenant_id == principal.tenant_id)
    ).scalar_one_or_none()
    if folder is None or "read" not in access.folder_rights(session, principal, folder.id):
        raise unknown
    return Target(folder=folder)


def find_by_path(session: Session, principal: Principal, path: str) -> Target:
    """Walk the classification plan by names; the last name may be a document's title. :raises NotFound."""
    names = [name for name in path.split("/") if name]
    if names and names[0] == plan.HIDDEN_SEGMENT:  # a path under a hidden folder (``_path``): not a walk
        raise NotFound(message("chemin « /%(path)s » introuvable", path=names[0]))
    folder: Folder | None = None
    for index, name in enumerate(names):
        parent_id = folder.id if folder else None
        found = session.execute(
            select(Folder).where(
                Folder.tenant_id == principal.tenant_id,
                Folder.parent_id.is_(None) if parent_id is None else Folder.parent_id == parent_id,
                Folder.name == name,
            )
        ).scalar_one_or_none()
        # A folder the user may not read is answered as an absent one: the same message, naming no id.
        if found is not None and "read" in access.folder_rights(session, principal, found.id):
            folder = found
            continue
        if index == len(names) - 1:
            documents = _documents_in(session, principal, parent_id).where(Version.title == name).limit(1)
            document = session.execute(documents).scalar_one_or_none()
            if document is not None:
                return Target(document=document)
        raise NotFound(message("chemin « /%(path)s » introuvable", path="/".join(names[: index + 1])))
    return Target(folder=folder)


def _documents_in(session: Session, principal: Principal, folder_id: str | None) -> Any:
    """Live readable documents filed in a folder (None: in no folder, the root), current version joined."""
    return (
        select(Document)
        .join(Version, (Version.document_id == Document.id) & (Version.number == Document.current_version))
        .where(
            access.readable(session, principal),
            Document.deleted_at.is_(None),
            or_(Document.disposal.is_(None), Document.disposal != ELIMINATED),
            Document.folder_id.is_(None) if folder_id is None else Document.folder_id == folder_id,
        )
        .options(selectinload(Document.versions))
    )


def children(
    session: Session, principal: Principal, target: Target, how: Rendering, max_items: int, skip: int
) -> dict[str, Any]:
    if target.is_document:
        raise invalid("un document n'a pas d'enfants")
    folder_id = target.folder.id if target.folder else None
    folders = plan.children(session, principal, folder_id)
    documents_query = _documents_in(session, principal, folder_id)
    document_total = session.execute(select(func.count()).select_from(documents_query.subquery())).scalar_one()
    total = len(folders) + document_total
    objects = [render(session, principal, Target(folder=folder), how) for folder in folders[skip : skip + max_items]]
    room = max_items - len(objects)
    if room > 0:
        start = max(0, skip - len(folders))
        page = session.execute(documents_query.order_by(Version.title, Document.id).offset(start).limit(room))
        objects += [render(session, principal, Target(document=document), how) for document in page.scalars()]
    return {
        "objects": [{"object": body} for body in objects],
        "hasMoreItems": skip + len(objects) < total,
        "numItems": total,
    }


def parents(session: Session, principal: Principal, target: Target, how: Rendering) -> list[dict[str, Any]]:
    """The object's parent folder, if the user may read it: none listed otherwise (a folder readable under one
    that is not, by permissions of its own), as an unfiled object has none."""
    if target.document is not None:
        parent_id, segment = target.document.folder_id, target.document.current.title
    elif target.folder is not None:
        parent_id, segment = target.folder.parent_id, target.folder.name
    else:
        raise invalid("le dossier racine n'a pas de parent")
    if parent_id is not None and parent_id in how.hidden_folders(session, principal):
        return []
    parent = Target(folder=plan.get_folder(session, principal.tenant_id, parent_id) if parent_id else None)
    return [{"object": render(session, principal, parent, how), "relativePathSegment": segment}]


# ---------------------------------------------------------------------------------------------------------
# Writes


def _properties(form: FormData) -> dict[str, Any]:
    """``propertyId[i]`` / ``propertyValue[i]`` (or ``propertyValue[i][j]`` for a list) as a dict."""
    ids: dict[str, str] = {}
    values: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            continue
        if match := re.fullmatch(r"propertyId\[(\d+)\]", key):
            ids[match.group(1)] = value
        elif match := re.fullmatch(r"propertyValue\[(\d+)\]", key):
            values[match.group(1)] = value
        elif match := re.fullmatch(r"propertyValue\[(\d+)\]\[(\d+)\]", key):
            current = values.setdefault(match.group(1), [])
            if isinstance(current, list):
                current.append(value)
    return {name: values.get(index) for index, name in ids.items()}


def _content(form: FormData) -> UploadFile | None:
    content = form.get("content")
    return content if isinstance(content, UploadFile) else None


def _ms_or_iso_date(value: Any) -> str | None:
    if value in (None, ""):
        return None
    text = str(value)
    try:
        if text.lstrip("-").isdigit():  # milliseconds since 1970, as cmislib sends them
            from datetime import UTC

            return datetime.fromtimestamp(int(text) / 1000, UTC).date().isoformat()
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except (ValueError, OverflowError, OSError):  # a date beyond year 1 to 9999
        raise invalid(f"date invalide : « {text} »") from None


def _typed_input(spec: dict[str, Any], value: Any) -> Any:
    if value in (None, ""):
        return None
    if spec.get("kind") == "date":
        return _ms_or_iso_date(value)
    return value


def _split_properties(
    session: Session, principal: Principal, properties: dict[str, Any], type_code: str | None
) -> dict[str, Any]:
    """CMIS properties as GED metadata (title, label, date, tags, field values); unknown ones refused."""
    values: dict[str, Any] = {}
    fields: dict[str, Any] = {}
    document_type = types.find_by_code(session, principal.tenant_id, type_code) if type_code else None
    specs = {spec["name"]: spec for spec in (document_type.fields if document_type else [])}
    for name, value in properties.items():
        if name in {"cmis:objectTypeId", "cmis:secondaryObjectTypeIds"}:
            continue
        if name == "cmis:name":
            values["title"] = value
        elif name == "socle:documentType":
            values["document_type"] = value
        elif name == "socle:documentDate":
            values["date"] = _ms_or_iso_date(value)
        elif name == "socle:tags":
            values["tags"] = [value] if isinstance(value, str) else list(value or [])
        elif name.startswith(FIELD_PREFIX) and name[len(FIELD_PREFIX) :] in specs:
            field_name = name[len(FIELD_PREFIX) :]
            fields[field_name] = _typed_input(specs[field_name], value)
        else:
            raise CmisError("constraint", 409, f"propriété {name} inconnue ou non modifiable")
    if fields:
        values["field_values"] = fields
    return values


def _parent_id(target: Target) -> str | None:
    if target.is_document:
        raise invalid("un document ne peut pas contenir d'objets")
    return target.folder.id if target.folder else None


def create_folder(session: Session, principal: Principal, parent: Target, properties: dict[str, Any]) -> Target:
    type_id = properties.get("cmis:objectTypeId") or FOLDER
    if type_id != FOLDER:
        raise CmisError("constraint", 409, f"type de dossier {type_id} non pris en charge (seul cmis:folder)")
    unknown = set(properties) - {"cmis:name", "cmis:objectTypeId", "socle:code"}
    if unknown:
        raise CmisError("constraint", 409, f"propriété(s) inconnue(s) : {', '.join(sorted(unknown))}")
    name = properties.get("cmis:name") or ""
    if isinstance(name, str) and "/" in name:  # a CMIS path joins names with "/": it could never be found
        raise CmisError("nameConstraintViolation", 409, "le nom d'un dossier ne peut pas contenir « / »")
    body = FolderIn.model_validate(
        {
            "name": name,
            "code": properties.get("socle:code"),
            "parent_id": _parent_id(parent),
        }
    )
    return Target(folder=plan.create_folder(session, principal, body))


def create_document(
    session: Session, principal: Principal, parent: Target, properties: dict[str, Any], content: UploadFile | None
) -> Target:
    """A document from a CMIS form: content required, media type checked on the bytes, metadata typed."""
    if content is None:
        raise CmisError("constraint", 409, "un document demande un contenu (partie « content »)")
    type_id = properties.get("cmis:objectTypeId") or DOCUMENT
    type_code = None
    if type_id != DOCUMENT:
        type_code = _document_type(session, principal, type_id).code
    values = _split_properties(session, principal, properties, type_code)
    values.setdefault("document_type", type_code or "document")
    if type_code:
        values["type"] = type_code
    folder_id = _parent_id(parent)
    if folder_id:
        values["folder_id"] = folder_id
    metadata = ingest.parse_metadata(values)
    service.check_can_create(session, principal, metadata)  # before any byte is stored
    filename = ingest.check_filename(content.filename or values.get("title") or "document")
    head = content.file.read(4096)
    content.file.seek(0)
    media_type = ingest.checked_media_type(head, content.content_type, filename)
    stored = service.store_upload(content.file)  # size limit, empty file refused
    return Target(document=service.create_document(session, principal, stored, filename, media_type, metadata))


def update_properties(session: Session, principal: Principal, target: Target, properties: dict[str, Any]) -> Target:
    if target.document is not None:
        _latest(target)
        document = target.document
        code = None
        if document.type_id:
            found = session.get(DocumentType, document.type_id)
            code = found.code if found else None
        values = _split_properties(session, principal, properties, code)
        patch = MetadataPatch.model_validate(values)
        return Target(document=service.update_metadata(session, principal, document.id, patch))
    if target.folder is None:
        raise CmisError("constraint", 409, "le dossier racine ne se modifie pas")
    unknown = set(properties) - {"cmis:name", "socle:code"}
    if unknown:
        raise CmisError("constraint", 409, f"propriété(s) non modifiable(s) : {', '.join(sorted(unknown))}")
    patch_folder = FolderPatch.model_validate(
        {{"cmis:name": "name", "socle:code": "code"}[key]: value for key, value in properties.items()}
    )
    return Target(folder=plan.update_folder(session, principal, target.folder.id, patch_folder))


def _latest(target: Target) -> Document:
    assert target.document is not None
    if target.version is not None and target.version.number != target.document.current_version:
        raise CmisError("versioning", 409, "une version ancienne ne se modifie pas")
    return target.document


def delete(session: Session, principal: Principal, target: Target) -> None:
    """A document goes to the trash (restorable); a folder is deleted only when empty."""
    if target.document is not None:
        service.trash_document(session, principal, _latest(target).id)
    elif target.folder is not None:
        plan.delete_folder(session, principal, target.folder.id)
    else:
        raise CmisError("constraint", 409, "le dossier racine ne se supprime pas")


def check_out(session: Session, principal: Principal, target: Target) -> Target:
    """Reserve the document for this user: until check-in or cancel, only they may write it."""
    if target.document is None:
        raise invalid("seul un document peut être extrait")
    document = service.get_document(session, principal.tenant_id, _latest(target).id, for_update=True)
    service.check_writable(session, principal, document)
    if document.checked_out_by is not None:
        raise CmisError("versioning", 409, f"document déjà extrait par {document.checked_out_by}")
    document.checked_out_by, document.checked_out_at = principal.username, utcnow()
    _audit_checkout(session, principal, document, "ged.document.checked_out")
    session.commit()
    return Target(document=document)


def cancel_check_out(session: Session, principal: Principal, target: Target) -> None:
    document = _held(session, principal, target)
    document.checked_out_by, document.checked_out_at = None, None
    _audit_checkout(session, principal, document, "ged.document.checkout_cancelled")
    session.commit()


def check_in(
    session: Session,
    principal: Principal,
    target: Target,
    properties: dict[str, Any],
    content: UploadFile | None,
    comment: str | None,
) -> Target:
    """The holder's changes become new versions (content, then properties), and the reservation ends.

    The properties are checked before the content is stored: a refused check-in adds no version and leaves
    the document checked out, for the holder to try again.
    """
    document = _held(session, principal, target)
    document_id = document.id
    patch = _check_in_patch(session, principal, document, properties, comment)
    session.commit()
    if content is not None:
        _set_content(session, principal, document_id, content)
    if patch is not None:
        service.update_metadata(session, principal, document_id, patch)
    document = _held(
        session, principal, Target(document=service.get_document(session, principal.tenant_id, document_id))
    )
    document.checked_out_by, document.checked_out_at = None, None
    _audit_checkout(session, principal, document, "ged.document.checked_in", comment=comment)
    session.commit()
    return Target(document=service.get_document(session, principal.tenant_id, document_id))


def _check_in_patch(
    session: Session, principal: Principal, document: Document, properties: dict[str, Any], comment: str | None
) -> MetadataPatch | None:
    """The metadata change a check-in asks, every value checked as ``update_metadata`` will; None: none asked.

    :raises CmisError: an unknown or read-only property; ValidationError, InvalidInput: a wrong value.
    """
    values = _split_properties(session, principal, properties, _code(session, document))
    if not values:  # only cmis:objectTypeId and the like: the content alone (or nothing) changes
        return None
    patch = MetadataPatch.model_validate({**values, "comment": comment})
    if patch.field_values:
        document_type = session.get(DocumentType, document.type_id) if document.type_id else None
        types.validate_values(session, principal, document_type, patch.field_values, document.current.field_values)
    return patch


def _code(session: Session, document: Document) -> str | None:
    found = session.get(DocumentType, document.type_id) if document.type_id else None
    return found.code if found else None


def _held(session: Session, principal: Principal, target: Target) -> Document:
    if target.document is None:
        raise invalid("seul un document peut être extrait")
    document = service.get_document(session, principal.tenant_id, _latest(target).id, for_update=True)
    access.require(session, principal, document, "write")
    if document.checked_out_by is None:
        raise CmisError("versioning", 409, "le document n'est pas extrait")
    if document.checked_out_by != principal.username:
        raise CmisError(
            "updateConflict", 409, f"document extrait par {document.checked_out_by} : lui seul peut le rendre"
        )
    return document


def _set_content(session: Session, principal: Principal, document_id: str, content: UploadFile) -> Document:
    document = service.get_document(session, principal.tenant_id, document_id)
    service.check_writable(session, principal, document)  # before any byte is stored
    session.rollback()
    filename = ingest.check_filename(content.filename or document.current.filename)
    head = content.file.read(4096)
    content.file.seek(0)
    media_type = ingest.checked_media_type(head, content.content_type, filename)
    stored = service.store_upload(content.file)  # size limit, empty file refused
    return service.add_content_version(session, principal, document_id, stored, filename, media_type)


def _audit_checkout(session: Session, principal: Principal, document: Document, action: str, **details: Any) -> None:
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action=action,
        object_type="document",
        object_id=document.id,
        details={"version": document.current_version, **details},
    )


# ---------------------------------------------------------------------------------------------------------
# Query


_QUERY = re.compile(
    r"^\s*SELECT\s+(?P<select>.+?)\s+FROM\s+(?P<type>[\w:.-]+)(?:\s+(?:AS\s+)?\w+)?"
    r"(?:\s+WHERE\s+(?P<where>.+?))?(?:\s+ORDER\s+BY\s+(?P<order>.+?))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_STRING = r"'((?:[^'\\]|\\.|'')*)'"
_COMPARISON = re.compile(r"^([\w:.-]+)\s*(=|<>|!=|\s+LIKE\s+|\s+NOT\s+LIKE\s+)\s*" + _STRING + r"$", re.I | re.S)
_FUNCTION = re.compile(r"^(IN_FOLDER|IN_TREE|CONTAINS)\s*\(\s*" + _STRING + r"\s*\)$", re.IGNORECASE | re.DOTALL)
_COLUMNS: dict[str, Any] = {
    "cmis:objectId": Document.id,
    "cmis:name": Version.title,
    "cmis:createdBy": Document.created_by,
    "cmis:contentStreamMimeType": Version.media_type,
    "cmis:contentStreamFileName": Version.filename,
    "socle:documentType": Version.document_type,
}
_ORDER: dict[str, Any] = {
    "cmis:name": Version.title,
    "cmis:creationDate": Document.created_at,
    "cmis:lastModificationDate": Document.updated_at,
}


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text.replace("''", "'"))


def _split_and(where: str) -> list[str]:
    """The WHERE clause's conjuncts, split on AND outside quotes; OR and NOT are refused."""
    parts, current, quoted, index = [], "", False, 0
    while index < len(where):
        char = where[index]
        if char == "\\" and quoted:
            current += where[index : index + 2]
            index += 2
            continue
        if char == "'":
            quoted = not quoted
        if not quoted and re.match(r"\s+AND\s+", where[index:], re.IGNORECASE):
            match = re.match(r"\s+AND\s+", where[index:], re.IGNORECASE)
            assert match is not None
            parts.append(current.strip())
            current, index = "", index + match.end()
            continue
        current += char
        index += 1
    parts.append(current.strip())
    for part in parts:
        if not quoted and re.search(r"\s(OR)\s", _without_strings(part), re.IGNORECASE):
            raise invalid("requête CMIS : OR n'est pas pris en charge (conditions reliées par AND seulement)")
    return [part for part in parts if part]


def _without_strings(text: str) -> str:
    return re.sub(_STRING, "''", text)


def _like_pattern(text: str) -> str:
    return text  # CMIS LIKE uses SQL's % and _, with \ as escape: passed through as written


def query(
    session: Session, principal: Principal, statement: str, how: Rendering, max_items: int, skip: int
) -> dict[str, Any]:
    """Run a CMIS query over documents. :raises CmisError invalidArgument: what this subset does not read."""
    match = _QUERY.match(statement or "")
    if match is None:
        raise invalid("requête CMIS illisible : SELECT … FROM cmis:document [WHERE …] [ORDER BY …] attendu")
    type_id = match.group("type")
    conditions: list[Any] = []
    if type_id.lower() == FOLDER:
        raise not_supported("requête CMIS : seuls les documents (cmis:document et ses sous-types) sont interrogeables")
    if type_id != DOCUMENT:
        conditions.append(Document.type_id == _document_type(session, principal, type_id).id)
    contains: str | None = None
    for part in _split_and(match.group("where") or ""):
        condition, words = _condition(session, principal, part)
        if words is not None:
            contains = words
        if condition is not None:
            conditions.append(condition)
    base = (
        select(Document)
        .join(Version, (Version.document_id == Document.id) & (Version.number == Document.current_version))
        .where(
            access.readable(session, principal),
            Document.deleted_at.is_(None),
            or_(Document.disposal.is_(None), Document.disposal != ELIMINATED),
            *conditions,
        )
    )
    if contains is not None:
        base = base.where(Document.id.in_(_full_text(session, principal, contains)))
    total = session.execute(select(func.count()).select_from(base.subquery())).scalar_one()
    ordered = base.options(selectinload(Document.versions)).order_by(*_order_by(match.group("order")), Document.id)
    documents = list(session.execute(ordered.offset(skip).limit(max_items)).scalars())
    selected = _selected(match.group("select"))
    results = []
    for document in documents:
        values = document_values(session, document)
        if selected is not None:
            values = [(prop, value) for prop, value in values if prop.id in selected]
        body = how.props(values)
        if how.actions:
            rights = access.rights_on(session, principal, document)
            body["allowableActions"] = _document_actions(rights, document, principal.username, True)
        results.append(body)
    return {"results": results, "hasMoreItems": skip + len(results) < total, "numItems": total}


def _selected(select_list: str) -> set[str] | None:
    columns = {column.strip() for column in select_list.split(",")}
    if "*" in columns:
        return None
    return columns | {"cmis:objectId", "cmis:baseTypeId", "cmis:objectTypeId"}


def _order_by(order: str | None) -> list[Any]:
    clauses: list[Any] = []
    for item in (order or "").split(","):
        words = item.split()
        if not words:
            continue
        column = _ORDER.get(words[0])
        if column is None or len(words) > 2 or (len(words) == 2 and words[1].upper() not in {"ASC", "DESC"}):
            raise invalid(f"requête CMIS : tri sur « {item.strip()} » non pris en charge")
        clauses.append(column.desc() if len(words) == 2 and words[1].upper() == "DESC" else column.asc())
    return clauses


def _condition(session: Session, principal: Principal, part: str) -> tuple[Any, str | None]:
    if match := _FUNCTION.match(part):
        name, value = match.group(1).upper(), _unquote(match.group(2))
        if name == "CONTAINS":
            return None, value
        folder = find(session, principal, value)
        if folder.is_document:
            raise invalid(f"requête CMIS : {value} n'est pas un dossier")
        if folder.folder is None:
            return (Document.folder_id.is_(None), None) if name == "IN_FOLDER" else (None, None)
        if name == "IN_FOLDER":
            return Document.folder_id == folder.folder.id, None
        subtree = select(Folder.id).where(
            Folder.tenant_id == principal.tenant_id,
            or_(Folder.id == folder.folder.id, Folder.path.like(folder.folder.path + "/%")),
        )
        return Document.folder_id.in_(subtree), None
    if match := _COMPARISON.match(part):
        name, operator, value = match.group(1), match.group(2).strip().upper(), _unquote(match.group(3))
        column = _COLUMNS.get(name)
        if name == "cmis:objectTypeId":
            if value == DOCUMENT:
                return None, None
            return Document.type_id == _document_type(session, principal, value).id, None
        if column is None:
            raise invalid(f"requête CMIS : la propriété {name} n'est pas interrogeable")
        if operator == "=":
            return column == value, None
        if operator in {"<>", "!="}:
            return column != value, None
        pattern = column.like(_like_pattern(value), escape="\\")
        return (pattern if operator == "LIKE" else ~pattern), None
    raise invalid(f"requête CMIS : condition non prise en charge « {part} »")


def _full_text(session: Session, principal: Principal, words: str) -> list[str]:
    """CONTAINS through the GED's French full-text search (ged.search), its best MAX_ITEMS matches."""
    try:
        from ged.search import SearchQuery, search
    except ImportError:
        raise not_supported("requête CMIS : CONTAINS demande la recherche plein texte de la GED") from None
    result = search(session, principal, SearchQuery(q=words, limit=MAX_ITEMS, facets=False))
    return [hit.document_id for hit in result.hits]


# ---------------------------------------------------------------------------------------------------------
# Routes


def _flag(value: str | None) -> bool:
    return (value or "").lower() == "true"


# The largest skipCount or maxItems taken: more than any repository holds, and within a 64-bit integer
# (SQLite and PostgreSQL refuse an OFFSET beyond it).
MAX_COUNT = 10**12


def _count(value: str | None, name: str, default: int) -> int:
    if value in (None, ""):
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 13 or int(value) > MAX_COUNT:
        raise invalid(f"le paramètre {name} doit être un entier positif (au plus {MAX_COUNT})")
    return int(value)


def _depth(value: str | None) -> int:
    """typeDescendants' depth: -1 (all levels, the default) or a number of levels from 1."""
    if value in (None, "", "-1"):
        return -1
    if not value.isascii() or not value.isdigit() or len(value) > 4 or int(value) == 0:
        raise invalid("le paramètre depth vaut -1 (tous les niveaux) ou un nombre de niveaux à partir de 1")
    return int(value)


def _rendering(params: Any) -> Rendering:
    return Rendering(succinct=_flag(params.get("succinct")), actions=_flag(params.get("includeAllowableActions")))


def _check_repository(principal: Principal, repository_id: str) -> None:
    if repository_id != principal.tenant_slug:
        raise CmisError("objectNotFound", 404, f"dépôt {repository_id} inconnu")


@router.get("", summary="CMIS : les dépôts (un par collectivité)")
def get_repositories(request: Request) -> JSONResponse:
    with new_session() as session:
        principal = cmis_principal(request, session)
        return JSONResponse({principal.tenant_slug: repository_info(request, principal)})


@router.get("/{repository_id}", summary="CMIS : services du dépôt (cmisselector)")
def get_repository(request: Request, repository_id: str) -> Response:
    params = request.query_params
    with new_session() as session:
        principal = cmis_principal(request, session)
        _check_repository(principal, repository_id)
        selector = (params.get("cmisselector") or "repositoryInfo").strip()
        how = _rendering(params)
        if selector == "repositoryInfo":
            return JSONResponse({principal.tenant_slug: repository_info(request, principal)})
        if selector == "typeChildren":
            type_id = params.get("typeId") or None
            children_types = [type_definition(session, principal, t) for t in _subtypes(session, principal, type_id)]
            skip = _count(params.get("skipCount"), "skipCount", 0)
            page = children_types[skip : skip + _count(params.get("maxItems"), "maxItems", MAX_ITEMS)]
            return JSONResponse(
                {"types": page, "hasMoreItems": skip + len(page) < len(children_types), "numItems": len(children_types)}
            )
        if selector == "typeDescendants":
            depth = _depth(params.get("depth"))
            return JSONResponse(_type_tree(session, principal, params.get("typeId") or None, depth))
        if selector == "typeDefinition":
            return JSONResponse(type_definition(session, principal, params.get("typeId") or ""))
        if selector == "query":
            return JSONResponse(_query_from(session, principal, params, how))
        if selector == "checkedOut":
            return JSONResponse(_checked_out(session, principal, how))
        raise not_supported(f"cmisselector « {selector} » non pris en charge")


def _query_from(session: Session, principal: Principal, params: Any, how: Rendering) -> dict[str, Any]:
    max_items = min(_count(params.get("maxItems"), "maxItems", 100), MAX_ITEMS)
    return query(
        session, principal, params.get("q") or "", how, max_items, _count(params.get("skipCount"), "skipCount", 0)
    )


def _checked_out(session: Session, principal: Principal, how: Rendering) -> dict[str, Any]:
    documents = session.execute(
        select(Document)
        .where(
            access.readable(session, principal),
            Document.checked_out_by == principal.username,
            Document.deleted_at.is_(None),
        )
        .options(selectinload(Document.versions))
        .limit(MAX_ITEMS)
    ).scalars()
    objects = [{"object": render(session, principal, Target(document=d), how)} for d in documents]
    return {"objects": objects, "hasMoreItems": False, "numItems": len(objects)}


@router.post("/{repository_id}", summary="CMIS : actions au niveau du dépôt (query, createDocument…)")
async def post_repository(request: Request, repository_id: str) -> Response:
    form = await request.form()
    try:
        return await _run(request, repository_id, None, form)
    finally:
        await form.close()


# An object's JSON (cmisselector object, children, versions…), or a document's content (cmisselector content, a
# document's default) in its stored type.
_OBJECT_RESPONSES = file_responses(
    "application/json",
    ANY_FILE,
    description="L'objet en JSON (Browser Binding), ou le contenu du document (cmisselector=content, le défaut "
    "pour un document) du type du fichier déposé",
)


@router.get(
    "/{repository_id}/root",
    summary="CMIS : lire un objet par son id (cmisselector)",
    response_class=Response,
    responses=_OBJECT_RESPONSES,
)
@router.get(
    "/{repository_id}/root/{path:path}",
    summary="CMIS : lire un objet par son chemin",
    response_class=Response,
    responses=_OBJECT_RESPONSES,
)
def get_object(request: Request, repository_id: str, path: str = "") -> Response:
    params = request.query_params
    with new_session() as session:
        principal = cmis_principal(request, session)
        _check_repository(principal, repository_id)
        object_id = params.get("objectId")
        target = find(session, principal, object_id) if object_id else find_by_path(session, principal, path)
        selector = (params.get("cmisselector") or ("content" if target.is_document else "children")).strip()
        how = _rendering(params)
        if selector in {"object", "properties"}:
            body = render(session, principal, target, how)
            return JSONResponse(
                body if selector == "object" else body.get("properties", body.get("succinctProperties"))
            )
        if selector == "allowableActions":
            return JSONResponse(render(session, principal, target, Rendering(actions=True))["allowableActions"])
        if selector == "children":
            max_items = min(_count(params.get("maxItems"), "maxItems", 100), MAX_ITEMS)
            skip = _count(params.get("skipCount"), "skipCount", 0)
            return JSONResponse(children(session, principal, target, how, max_items, skip))
        if selector == "parents":
            return JSONResponse(parents(session, principal, target, how))
        if selector == "parent":
            if target.is_document:
                raise invalid("parent : réservé aux dossiers (utilisez parents)")
            found = parents(session, principal, target, how)
            if not found:  # the parent is a folder the user may not read: no more said of it than of none
                raise CmisError("objectNotFound", 404, "dossier parent introuvable")
            return JSONResponse(found[0]["object"])
        if selector == "versions":
            return JSONResponse(_versions(session, principal, target, how))
        if selector == "content":
            if target.document is None:
                raise CmisError("constraint", 409, "un dossier n'a pas de contenu")
            version = service.readable_content(target.document, target.version or target.document.current)
            return object_response(version.object_key, version.filename, version.media_type)
        raise not_supported(f"cmisselector « {selector} » non pris en charge")


def _versions(session: Session, principal: Principal, target: Target, how: Rendering) -> list[dict[str, Any]]:
    if target.document is None:
        raise invalid("seul un document a des versions")
    document = target.document
    return [render(session, principal, Target(document, version), how) for version in reversed(document.versions)]


@router.post("/{repository_id}/root", summary="CMIS : actions sur un objet (cmisaction)")
@router.post("/{repository_id}/root/{path:path}", summary="CMIS : actions sur un objet désigné par son chemin")
async def post_object(request: Request, repository_id: str, path: str = "") -> Response:
    form = await request.form()
    try:
        return await _run(request, repository_id, path, form)
    finally:
        await form.close()


async def _run(request: Request, repository_id: str, path: str | None, form: FormData) -> Response:
    from fastapi.concurrency import run_in_threadpool

    return await run_in_threadpool(_act, request, repository_id, path, form)


def _act(request: Request, repository_id: str, path: str | None, form: FormData) -> Response:
    """One cmisaction, in its own session (the services commit their own units of work)."""
    with new_session() as session:
        principal = cmis_principal(request, session)
        _check_repository(principal, repository_id)
        action = str(form.get("cmisaction") or "").strip().lower()  # cmislib sends « checkin »
        how = Rendering(succinct=_flag(_text(form, "succinct")), actions=True)
        if action == "query":
            max_items = min(_count(_text(form, "maxItems"), "maxItems", 100), MAX_ITEMS)
            skip = _count(_text(form, "skipCount"), "skipCount", 0)
            statement = _text(form, "q") or _text(form, "statement") or ""
            return JSONResponse(query(session, principal, statement, how, max_items, skip))
        object_id = _text(form, "objectId") or _text(form, "folderId")
        if object_id:
            target = find(session, principal, object_id)
        elif path is not None:
            target = find_by_path(session, principal, path)
        else:
            raise invalid("objectId ou folderId manquant")
        properties = _properties(form)
        result = _dispatch(session, principal, action, target, properties, form)
        if result is None:
            return Response(status_code=200)
        status = 201 if action in {"createdocument", "createfolder"} else 200
        body = render(session, principal, result, how)
        headers = {"Location": f"{_urls(request, principal.tenant_slug)[1]}?objectId={_object_id(result)}"}
        return JSONResponse(body, status, headers=headers if status == 201 else None)


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None


def _object_id(target: Target) -> str:
    if target.document is not None:
        return target.document.id
    return target.folder.id if target.folder else ROOT_ID


def _dispatch(
    session: Session, principal: Principal, action: str, target: Target, properties: dict[str, Any], form: FormData
) -> Target | None:
    if action == "createfolder":
        return create_folder(session, principal, target, properties)
    if action == "createdocument":
        return create_document(session, principal, target, properties, _content(form))
    if action == "update":
        return update_properties(session, principal, target, properties)
    if action == "delete":
        delete(session, principal, target)
        return None
    if action == "checkout":
        return check_out(session, principal, target)
    if action == "cancelcheckout":
        cancel_check_out(session, principal, target)
        return None
    if action == "checkin":
        return check_in(session, principal, target, properties, _content(form), _text(form, "checkinComment"))
    if action == "setcontent":
        content = _content(form)
        if target.document is None or content is None:
            raise invalid("setContent : un document et un contenu sont nécessaires")
        return Target(document=_set_content(session, principal, _latest(target).id, content))
    if action == "move":
        return move(session, principal, target, _text(form, "targetFolderId") or "")
    raise not_supported(f"cmisaction « {action} » non prise en charge")


def move(session: Session, principal: Principal, target: Target, target_folder_id: str) -> Target:
    """File a document in another folder (no new version), or move a folder with its subtree."""
    destination = find(session, principal, target_folder_id) if target_folder_id else None
    if destination is None or destination.is_document:
        raise invalid("move : targetFolderId doit désigner un dossier")
    folder_id = destination.folder.id if destination.folder else None
    if target.document is not None:
        return Target(document=service.file_document(session, principal, _latest(target).id, folder_id))
    if target.folder is None:
        raise CmisError("constraint", 409, "le dossier racine ne se déplace pas")
    patch = FolderPatch.model_validate({"parent_id": folder_id})
    return Target(folder=plan.update_folder(session, principal, target.folder.id, patch))
