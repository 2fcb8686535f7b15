"""A CMIS 1.1 Browser Binding simulator (a subset), written from the OASIS specification, part 5.

What it answers, under ``/cmis``:

- ``GET /cmis``: the repositories (one, ``simulateur``) and their info (``rootFolderUrl``, ``repositoryUrl``…);
- ``GET /cmis/{repo}?cmisselector=repositoryInfo`` and ``…=query&q=SELECT … FROM cmis:document WHERE …``
  (conditions joined by AND: ``prop = 'value'``, ``IN_FOLDER('id')``);
- ``GET /cmis/{repo}/root/a/b?cmisselector=object|content|children`` (objects by path; ``objectId=`` too);
- ``POST /cmis/{repo}/root/a`` with ``cmisaction=createFolder|createDocument``, ``propertyId[i]``,
  ``propertyValue[i]`` and a ``content`` part; a name taken in the folder is ``409 nameConstraintViolation``;
  a property that is not ``cmis:name``, ``cmis:objectTypeId``, ``cmis:description`` is ``409 constraint``.

Answers are JSON, succinct (``succinctProperties``) when asked with ``succinct=true``; errors are the binding's
``{"exception", "message"}`` with its HTTP statuses. Basic authentication when credentials are given.
Scenario knobs (:class:`~interop.simulators.common.Scenario`), per endpoint ``repository``, ``object``,
``create``, ``query``: ``500``, ``html``, ``timeout``, ``malformed``, and ``accept_then_timeout`` (create
only: the document is created, the answer never comes). ``GET /_simulateur`` lists what it holds.
"""

from __future__ import annotations

import asyncio
import base64
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from interop.simulators.common import PlatformState, apply_fault, control

REPOSITORY_ID = "simulateur"
ROOT_ID = "racine"
ALLOWED_PROPERTIES = {"cmis:name", "cmis:objectTypeId", "cmis:description"}
_CONDITION = re.compile(r"^\s*([\w:.-]+)\s*=\s*'((?:[^']|'')*)'\s*$")
_IN_FOLDER = re.compile(r"^\s*IN_FOLDER\s*\(\s*'((?:[^']|'')*)'\s*\)\s*$", re.IGNORECASE)
_QUERY = re.compile(r"^\s*SELECT\s+(.+?)\s+FROM\s+([\w:.-]+)(?:\s+WHERE\s+(.+?))?\s*$", re.IGNORECASE | re.DOTALL)


@dataclass
class CmisObject:
    id: str
    name: str
    base_type: str  # cmis:folder or cmis:document
    parent_id: str | None
    created: datetime
    description: str | None = None
    content: bytes | None = None
    media_type: str | None = None

    def properties(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "cmis:objectId": self.id,
            "cmis:name": self.name,
            "cmis:baseTypeId": self.base_type,
            "cmis:objectTypeId": self.base_type,
            "cmis:createdBy": "simulateur",
            "cmis:creationDate": int(self.created.timestamp() * 1000),
            "cmis:lastModificationDate": int(self.created.timestamp() * 1000),
            "cmis:description": self.description,
        }
        if self.base_type == "cmis:folder":
            values["cmis:parentId"] = self.parent_id
        else:
            values |= {
                "cmis:contentStreamLength": len(self.content or b""),
                "cmis:contentStreamMimeType": self.media_type,
                "cmis:contentStreamFileName": self.name,
                "cmis:versionSeriesId": self.id,
                "cmis:isLatestVersion": True,
            }
        return values


@dataclass
class CmisRepository:
    """What the simulated repository holds; ``requests`` counts calls per endpoint (for tests)."""

    state: PlatformState = field(default_factory=PlatformState)
    objects: dict[str, CmisObject] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    credentials: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        root = CmisObject(ROOT_ID, "", "cmis:folder", None, datetime.now(UTC))
        self.objects[ROOT_ID] = root

    def child(self, parent_id: str, name: str) -> CmisObject | None:
        return next((o for o in self.objects.values() if o.parent_id == parent_id and o.name == name), None)

    def by_path(self, path: str) -> CmisObject | None:
        current = self.objects[ROOT_ID]
        for part in [part for part in path.split("/") if part]:
            found = self.child(current.id, part)
            if found is None:
                return None
            current = found
        return current

    def path_of(self, obj: CmisObject) -> str:
        parts: list[str] = []
        while obj.parent_id is not None:
            parts.append(obj.name)
            obj = self.objects[obj.parent_id]
        return "/" + "/".join(reversed(parts))

    def summary(self) -> dict[str, Any]:
        return {
            "objets": {
                self.path_of(o): {"id": o.id, "type": o.base_type, "taille": len(o.content or b"")}
                for o in self.objects.values()
            },
            "requetes": dict(self.requests),
        }


def _error(status: int, exception: str, message: str) -> JSONResponse:
    return JSONResponse({"exception": exception, "message": message}, status_code=status)


def _render(obj: CmisObject, succinct: bool) -> dict[str, Any]:
    values = obj.properties()
    if succinct:
        return {"succinctProperties": values}
    return {"properties": {name: {"id": name, "value": value} for name, value in values.items()}}


def create_app(repository: CmisRepository | None = None) -> Starlette:
    """The simulator as an ASGI app (``repository`` shared with the caller, for tests)."""
    repo = repository or CmisRepository()
    lock = repo.state.lock

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/cmis"

    def info(request: Request) -> dict[str, Any]:
        return {
            "repositoryId": REPOSITORY_ID,
            "repositoryName": "GED simulée",
            "repositoryDescription": "Simulateur CMIS de socle (répétition, jamais en production)",
            "vendorName": "socle",
            "productName": "simulateur CMIS",
            "productVersion": "1",
            "rootFolderId": ROOT_ID,
            "repositoryUrl": f"{base(request)}/{REPOSITORY_ID}",
            "rootFolderUrl": f"{base(request)}/{REPOSITORY_ID}/root",
            "cmisVersionSupported": "1.1",
            "capabilities": {"capabilityQuery": "metadataonly", "capabilityMultifiling": False},
        }

    def refused(request: Request) -> Response | None:
        if repo.credentials is None:
            return None
        expected = "Basic " + base64.b64encode(":".join(repo.credentials).encode()).decode()
        if request.headers.get("authorization") != expected:
            return _error(401, "permissionDenied", "authentification requise")
        return None

    def count(endpoint: str) -> None:
        with lock:
            repo.requests[endpoint] = repo.requests.get(endpoint, 0) + 1

    async def guarded(request: Request, endpoint: str) -> Response | None:
        count(endpoint)
        return refused(request) or await _fault(repo, endpoint)

    async def repositories(request: Request) -> Response:
        if (stop := await guarded(request, "repository")) is not None:
            return stop
        return JSONResponse({REPOSITORY_ID: info(request)})

    async def repository_get(request: Request) -> Response:
        if request.path_params["repository"] != REPOSITORY_ID:
            return _error(404, "objectNotFound", "dépôt inconnu")
        selector = request.query_params.get("cmisselector", "repositoryInfo")
        if selector == "query":
            if (stop := await guarded(request, "query")) is not None:
                return stop
            return _query(repo, request.query_params.get("q", ""), _succinct(request))
        if (stop := await guarded(request, "repository")) is not None:
            return stop
        if selector == "repositoryInfo":
            return JSONResponse({REPOSITORY_ID: info(request)})
        return _error(405, "notSupported", f"cmisselector {selector} non simulé")

    async def object_get(request: Request) -> Response:
        if (stop := await guarded(request, "object")) is not None:
            return stop
        with lock:
            obj = _target(repo, request)
            if obj is None:
                return _error(404, "objectNotFound", f"aucun objet à {request.path_params.get('path', '/')}")
            selector = request.query_params.get("cmisselector", "content" if obj.content is not None else "children")
            if selector in ("object", "properties"):
                return JSONResponse(_render(obj, _succinct(request)))
            if selector == "content":
                if obj.content is None:
                    return _error(409, "constraint", "un dossier n'a pas de contenu")
                return Response(obj.content, media_type=obj.media_type or "application/octet-stream")
            if selector == "children":
                kids = [_render(o, _succinct(request)) for o in repo.objects.values() if o.parent_id == obj.id]
                objects = [{"object": kid} for kid in kids]
                return JSONResponse({"objects": objects, "hasMoreItems": False, "numItems": len(kids)})
        return _error(405, "notSupported", f"cmisselector {selector} non simulé")

    async def object_post(request: Request) -> Response:
        if (stop := refused(request)) is not None:
            count("create")
            return stop
        form = await request.form()
        action = str(form.get("cmisaction") or "")
        count("create")
        fault = await _fault(repo, "create", accept=True)
        if fault is not None and fault.status_code != 599:
            return fault
        properties = _properties(form)
        unknown = set(properties) - ALLOWED_PROPERTIES
        if unknown:
            return _error(409, "constraint", f"propriété(s) inconnue(s) : {', '.join(sorted(unknown))}")
        name = str(properties.get("cmis:name") or "").strip()
        if not name or "/" in name:
            return _error(400, "invalidArgument", "cmis:name manquant ou invalide")
        content = form.get("content")
        with lock:
            parent = _target(repo, request)
            if parent is None or parent.base_type != "cmis:folder":
                return _error(404, "objectNotFound", "dossier parent introuvable")
            if repo.child(parent.id, name) is not None:
                return _error(409, "nameConstraintViolation", f"le nom « {name} » existe déjà dans ce dossier")
            if action == "createFolder":
                obj = CmisObject(uuid.uuid4().hex, name, "cmis:folder", parent.id, datetime.now(UTC))
            elif action == "createDocument":
                if not isinstance(content, UploadFile):
                    return _error(409, "constraint", "contenu manquant (partie « content »)")
                data = await content.read()
                obj = CmisObject(
                    uuid.uuid4().hex,
                    name,
                    "cmis:document",
                    parent.id,
                    datetime.now(UTC),
                    description=properties.get("cmis:description"),
                    content=data,
                    media_type=content.content_type,
                )
            else:
                return _error(405, "notSupported", f"cmisaction {action or '(aucune)'} non simulée")
            repo.objects[obj.id] = obj
        if fault is not None:  # accept_then_timeout: created, but the client never hears about it
            await asyncio.sleep(repo.state.scenario.hang_seconds)
            return Response(b"", status_code=504)
        return JSONResponse(_render(obj, _succinct(request)), status_code=201)

    async def simulator(request: Request) -> Response:
        if request.method == "PUT":
            return await control(request, repo.state)
        with lock:
            return JSONResponse(repo.summary() | {"scenario": repo.state.scenario.__dict__})

    return Starlette(
        routes=[
            Route("/cmis", repositories, methods=["GET"]),
            Route("/cmis/{repository}", repository_get, methods=["GET"]),
            Route("/cmis/{repository}/root", object_get, methods=["GET"]),
            Route("/cmis/{repository}/root/{path:path}", object_get, methods=["GET"]),
            Route("/cmis/{repository}/root", object_post, methods=["POST"]),
            Route("/cmis/{repository}/root/{path:path}", object_post, methods=["POST"]),
            Route("/_simulateur", simulator, methods=["GET"]),
            Route("/_simulateur/scenario", simulator, methods=["PUT"]),
        ]
    )


async def _fault(repo: CmisRepository, endpoint: str, *, accept: bool = False) -> Response | None:
    response = await apply_fault(repo.state, endpoint)
    if response is not None and response.status_code == 599 and not accept:
        return None  # accept_then_timeout only means something for a creation
    if response is not None and response.status_code == 500:
        return _error(500, "runtime", "erreur interne simulée")
    if response is not None and response.media_type == "application/xml":
        return Response(b'{"exception": "runtime", "message": "JSON tronqu', media_type="application/json")
    return response


def _succinct(request: Request) -> bool:
    return request.query_params.get("succinct", "false").lower() == "true"


def _target(repo: CmisRepository, request: Request) -> CmisObject | None:
    object_id = request.query_params.get("objectId")
    if object_id:
        return repo.objects.get(object_id)
    return repo.by_path(request.path_params.get("path", ""))


def _properties(form: Any) -> dict[str, str]:
    ids: dict[str, str] = {}
    values: dict[str, str] = {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            continue
        if match := re.fullmatch(r"propertyId\[(\d+)\]", key):
            ids[match.group(1)] = str(value)
        elif match := re.fullmatch(r"propertyValue\[(\d+)\]", key):
            values[match.group(1)] = str(value)
    return {name: values.get(index, "") for index, name in ids.items()}


def _query(repo: CmisRepository, statement: str, succinct: bool) -> Response:
    parsed = _QUERY.match(statement)
    if parsed is None or parsed.group(2) != "cmis:document":
        return _error(400, "invalidArgument", "requête non prise en charge (SELECT … FROM cmis:document [WHERE …])")
    conditions: list[tuple[str, str]] = []
    for part in re.split(r"\s+AND\s+", parsed.group(3) or "", flags=re.IGNORECASE) if parsed.group(3) else []:
        if folder := _IN_FOLDER.match(part):
            conditions.append(("IN_FOLDER", folder.group(1).replace("''", "'")))
        elif condition := _CONDITION.match(part):
            conditions.append((condition.group(1), condition.group(2).replace("''", "'")))
        else:
            return _error(400, "invalidArgument", f"condition non prise en charge : {part.strip()}")
    with repo.state.lock:
        found = [
            obj
            for obj in repo.objects.values()
            if obj.base_type == "cmis:document" and all(_matches(obj, name, value) for name, value in conditions)
        ]
        results = [_render(obj, succinct) for obj in found]
    return JSONResponse({"results": results, "numItems": len(results), "hasMoreItems": False})


def _matches(obj: CmisObject, name: str, value: str) -> bool:
    if name == "IN_FOLDER":
        return obj.parent_id == value
    return str(obj.properties().get(name)) == value
