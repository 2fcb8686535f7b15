"""The CMIS Browser Binding read as raw HTTP, per the spec: JSON shapes, CMIS exceptions with their statuses,
authentication (Bearer, Basic with the token), tenant isolation, the GED's rights, refused input."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from socle.db import transaction
from socle.models import AuditEntry

from conftest import Kit, make_pdf

OBJECTS = Path(os.environ["SOCLE_DATA_DIR"]) / "objects"


def repo_url(kit: Kit) -> str:
    return f"/ged/cmis/{kit.slug}"


def assert_cmis_error(response: Any, status: int, exception: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["exception"] == exception, body
    assert body["message"] and "Traceback" not in response.text
    return str(body["message"])


def create_folder(client: TestClient, kit: Kit, name: str, parent: str = "root") -> str:
    form = {
        "cmisaction": "createFolder",
        "objectId": parent,
        "propertyId[0]": "cmis:name",
        "propertyValue[0]": name,
        "propertyId[1]": "cmis:objectTypeId",
        "propertyValue[1]": "cmis:folder",
    }
    response = client.post(f"{repo_url(kit)}/root", data=form)
    assert response.status_code == 201, response.text
    return str(response.json()["properties"]["cmis:objectId"]["value"])


def create_document(
    client: TestClient,
    kit: Kit,
    folder: str,
    name: str,
    content: bytes,
    media_type: str = "application/pdf",
    **extra: str,
) -> Any:
    form = {
        "cmisaction": "createDocument",
        "objectId": folder,
        "propertyId[0]": "cmis:name",
        "propertyValue[0]": name,
        "succinct": "true",
        **extra,
    }
    return client.post(f"{repo_url(kit)}/root", data=form, files={"content": (f"{name}.pdf", content, media_type)})


def test_repository_info_and_object_shapes_follow_the_binding(kit: Kit) -> None:
    client = kit["archiviste"]
    repositories = client.get("/ged/cmis").json()
    info = repositories[kit.slug]
    assert info["repositoryId"] == kit.slug and info["cmisVersionSupported"] == "1.1"
    assert info["rootFolderUrl"].endswith(f"/ged/cmis/{kit.slug}/root")
    assert info["repositoryUrl"].endswith(f"/ged/cmis/{kit.slug}")
    assert client.get(repo_url(kit), params={"cmisselector": "repositoryInfo"}).json() == repositories

    folder = create_folder(client, kit, "Courrier")
    created = create_document(client, kit, folder, "Lettre", make_pdf("lettre"))
    assert created.status_code == 201 and created.headers["location"].endswith(
        f"?objectId={created.json()['succinctProperties']['cmis:objectId']}"
    )
    doc_id = created.json()["succinctProperties"]["cmis:objectId"]

    full = client.get(f"{repo_url(kit)}/root", params={"objectId": doc_id, "cmisselector": "object"}).json()
    name = full["properties"]["cmis:name"]
    assert name["value"] == "Lettre" and name["type"] == "string" and name["cardinality"] == "single"
    assert isinstance(full["properties"]["cmis:creationDate"]["value"], int)  # milliseconds since the epoch
    assert "allowableActions" not in full
    succinct = client.get(
        f"{repo_url(kit)}/root",
        params={"objectId": doc_id, "cmisselector": "object", "succinct": "true", "includeAllowableActions": "true"},
    ).json()
    assert succinct["succinctProperties"]["cmis:name"] == "Lettre" and "properties" not in succinct
    assert succinct["allowableActions"]["canCheckOut"] is True
    assert succinct["allowableActions"]["canGetContentStream"] is True

    by_path = client.get(f"{repo_url(kit)}/root/Courrier/Lettre", params={"cmisselector": "object"}).json()
    assert by_path["properties"]["cmis:objectId"]["value"] == doc_id
    listing = client.get(f"{repo_url(kit)}/root/Courrier", params={"cmisselector": "children"}).json()
    assert listing["numItems"] == 1 and listing["hasMoreItems"] is False
    assert listing["objects"][0]["object"]["properties"]["cmis:objectId"]["value"] == doc_id
    parents = client.get(f"{repo_url(kit)}/root", params={"objectId": doc_id, "cmisselector": "parents"}).json()
    assert parents[0]["relativePathSegment"] == "Lettre"
    assert parents[0]["object"]["properties"]["cmis:path"]["value"] == "/Courrier"

    tree = client.get(repo_url(kit), params={"cmisselector": "typeDescendants"}).json()
    assert {node["type"]["id"] for node in tree} == {"cmis:document", "cmis:folder"}
    assert_cmis_error(
        client.get(repo_url(kit), params={"cmisselector": "typeDefinition", "typeId": "x"}), 404, "objectNotFound"
    )
    assert_cmis_error(client.get(repo_url(kit), params={"cmisselector": "contentChanges"}), 405, "notSupported")


def test_authentication_bearer_or_basic_with_the_token(kit: Kit, app: Any) -> None:
    anonymous = TestClient(app)
    response = anonymous.get("/ged/cmis")
    assert_cmis_error(response, 401, "permissionDenied")
    assert response.headers["www-authenticate"].startswith("Basic")

    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    token = kit.tokens["agent"]
    assert anonymous.get("/ged/cmis", headers=basic("agent", token)).status_code == 200
    assert anonymous.get("/ged/cmis", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert_cmis_error(anonymous.get("/ged/cmis", headers=basic("maire", token)), 401, "permissionDenied")
    assert_cmis_error(anonymous.get("/ged/cmis", headers=basic("agent", "mauvais")), 401, "permissionDenied")
    bad = {"Authorization": "Basic !!!"}
    assert_cmis_error(anonymous.get("/ged/cmis", headers=bad), 401, "permissionDenied")
    anonymous.close()


def test_another_tenant_sees_neither_the_repository_nor_the_objects(kit: Kit, make_kit: Any) -> None:
    folder = create_folder(kit["archiviste"], kit, "Privé")
    doc_id = create_document(kit["archiviste"], kit, folder, "Secret", make_pdf("secret")).json()["succinctProperties"][
        "cmis:objectId"
    ]
    other = make_kit(with_identity=False)
    client = other["admin"]
    assert_cmis_error(client.get(repo_url(kit)), 404, "objectNotFound")
    for object_id in (doc_id, folder):
        response = client.get(f"{repo_url(other)}/root", params={"objectId": object_id, "cmisselector": "object"})
        assert_cmis_error(response, 404, "objectNotFound")
    assert client.get(f"{repo_url(other)}/root", params={"cmisselector": "children"}).json()["numItems"] == 0
    query = client.post(repo_url(other), data={"cmisaction": "query", "q": "SELECT * FROM cmis:document"})
    assert query.json()["numItems"] == 0


def test_rights_of_the_ged_apply_to_cmis(kit: Kit) -> None:
    archivist, agent = kit["archiviste"], kit["agent"]
    closed = create_folder(archivist, kit, "Ressources humaines")
    doc_id = create_document(archivist, kit, closed, "Dossier agent", make_pdf("rh")).json()["succinctProperties"][
        "cmis:objectId"
    ]
    created = kit["admin"].post("/ged/groups", json={"name": "RH"})
    assert created.status_code == 201, created.text
    group = created.json()
    member = kit["admin"].post(f"/ged/groups/{group['id']}/members", json={"username": "archiviste"})
    assert member.status_code == 200, member.text
    rights = [{"group_id": group["id"], "rights": ["read", "write", "delete", "manage"]}]
    granted = kit["admin"].put(f"/ged/plan/{closed}/permissions", json=rights)
    assert granted.status_code == 200, granted.text

    url = f"{repo_url(kit)}/root"
    assert_cmis_error(agent.get(url, params={"objectId": doc_id, "cmisselector": "object"}), 404, "objectNotFound")
    assert_cmis_error(agent.get(url, params={"objectId": closed, "cmisselector": "children"}), 404, "objectNotFound")
    assert agent.get(url, params={"cmisselector": "children"}).json()["numItems"] == 0
    assert (
        agent.post(kit_repo := repo_url(kit), data={"cmisaction": "query", "q": "SELECT * FROM cmis:document"}).json()[
            "numItems"
        ]
        == 0
    )
    refused = create_document(agent, kit, closed, "Intrus", make_pdf("intrus"))
    assert_cmis_error(refused, 404, "objectNotFound")
    assert (
        archivist.post(kit_repo, data={"cmisaction": "query", "q": "SELECT * FROM cmis:document"}).json()["numItems"]
        == 1
    )


def test_bad_input_gets_a_cmis_exception_and_nothing_is_stored(kit: Kit) -> None:
    client = kit["archiviste"]
    url = f"{repo_url(kit)}/root"
    text = b"du texte qui se dit PDF\n" * 10
    message = assert_cmis_error(create_document(client, kit, "root", "Faux", text), 409, "constraint")
    assert "type déclaré" in message
    sha = hashlib.sha256(text).hexdigest()
    assert not (OBJECTS / sha[:2] / sha[2:4] / sha).exists()

    empty = create_document(client, kit, "root", "Vide", b"", media_type="application/octet-stream")
    assert_cmis_error(empty, 400, "invalidArgument")
    form = {"cmisaction": "createDocument", "objectId": "root", "propertyId[0]": "cmis:name", "propertyValue[0]": "X"}
    separator = client.post(url, data=form, files={"content": ("../x.pdf", make_pdf("x"), "application/pdf")})
    assert separator.status_code in (400, 201)  # multipart parsers may strip the directory: never a path used
    if separator.status_code == 201:
        assert separator.json()["properties"]["cmis:contentStreamFileName"]["value"] == "x.pdf"
    unknown = create_document(
        client, kit, "root", "Y", make_pdf("y"), **{"propertyId[1]": "cmis:bidule", "propertyValue[1]": "1"}
    )
    assert_cmis_error(unknown, 409, "constraint")
    assert_cmis_error(client.post(url, data={"cmisaction": "explode", "objectId": "root"}), 405, "notSupported")
    assert_cmis_error(client.get(url, params={"objectId": "inconnu", "cmisselector": "object"}), 404, "objectNotFound")

    repo = repo_url(kit)
    for statement, words in [
        ("DROP TABLE ged_documents", "illisible"),
        ("SELECT * FROM cmis:document WHERE cmis:name = 'a' OR 1=1", "OR"),
        ("SELECT * FROM cmis:document WHERE cmis:description = 'a'", "interrogeable"),
        ("SELECT * FROM cmis:document ORDER BY cmis:contentStreamLength", "tri"),
        ("SELECT * FROM cmis:document WHERE cmis:name = 'a'; DELETE FROM x", "condition"),
    ]:
        message = assert_cmis_error(
            client.post(repo, data={"cmisaction": "query", "q": statement}), 400, "invalidArgument"
        )
        assert words in message, (statement, message)
    tricky = client.post(
        repo, data={"cmisaction": "query", "q": "SELECT * FROM cmis:document WHERE cmis:name = 'l''acte'"}
    )
    assert tricky.status_code == 200 and tricky.json()["numItems"] == 0
    assert client.get(url, params={"cmisselector": "children"}).json()["numItems"] == 0  # nothing was created

    # A version number is ASCII digits: « ² » is one to str.isdigit(), not to int(); int() refuses 4,300 of them.
    created = create_document(client, kit, "root", "Versionné", make_pdf("versionné"))
    assert created.status_code == 201, created.text
    document = created.json()["succinctProperties"]["cmis:objectId"].split(";")[0]
    assert client.get(url, params={"objectId": f"{document};1", "cmisselector": "object"}).status_code == 200
    for number in ("²", "٣", "1" * 5000, "-1"):
        answer = client.get(url, params={"objectId": f"{document};{number}", "cmisselector": "object"})
        assert_cmis_error(answer, 404, "objectNotFound")


def test_check_out_reserves_the_document_and_cancel_releases_it(kit: Kit) -> None:
    archivist = kit["archiviste"]
    url = f"{repo_url(kit)}/root"
    doc_id = create_document(archivist, kit, "root", "Arrêté", make_pdf("arrêté")).json()["succinctProperties"][
        "cmis:objectId"
    ]
    out = archivist.post(url, data={"cmisaction": "checkOut", "objectId": doc_id})
    assert out.status_code == 200
    assert out.json()["properties"]["cmis:versionSeriesCheckedOutBy"]["value"] == "archiviste"
    assert_cmis_error(archivist.post(url, data={"cmisaction": "checkOut", "objectId": doc_id}), 409, "versioning")
    agent = kit["agent"]
    for action in ("cancelCheckOut", "checkIn", "delete"):
        assert_cmis_error(agent.post(url, data={"cmisaction": action, "objectId": doc_id}), 409, "updateConflict")
    assert agent.delete(f"/ged/documents/{doc_id}").status_code == 409
    assert archivist.post(url, data={"cmisaction": "cancelCheckOut", "objectId": doc_id}).status_code == 200
    state = archivist.get(url, params={"objectId": doc_id, "cmisselector": "object", "succinct": "true"}).json()
    assert state["succinctProperties"]["cmis:isVersionSeriesCheckedOut"] is False
    assert state["succinctProperties"]["cmis:versionLabel"] == "1.0"  # cancel adds no version
    with transaction() as session:
        actions = session.execute(select(AuditEntry.action).where(AuditEntry.object_id == doc_id)).scalars().all()
    assert "ged.document.checked_out" in actions and "ged.document.checkout_cancelled" in actions


def object_stored(content: bytes) -> bool:
    sha = hashlib.sha256(content).hexdigest()
    return (OBJECTS / sha[:2] / sha[2:4] / sha).exists()


def test_a_refused_check_in_stores_nothing_and_keeps_the_document_checked_out(kit: Kit) -> None:
    fields = [{"name": "numero", "label": "Numéro", "kind": "integer"}]
    made = kit["admin"].post("/ged/types", json={"code": "arrete", "name": "Arrêté", "fields": fields})
    assert made.status_code == 201, made.text
    archivist = kit["archiviste"]
    url = f"{repo_url(kit)}/root"
    typed = {"propertyId[1]": "cmis:objectTypeId", "propertyValue[1]": "ged:arrete"}
    typed |= {"propertyId[2]": "ged:numero", "propertyValue[2]": "12"}
    created = create_document(archivist, kit, "root", "Arrêté", make_pdf("arrêté"), **typed)
    assert created.status_code == 201, created.text
    doc_id = created.json()["succinctProperties"]["cmis:objectId"]
    assert archivist.post(url, data={"cmisaction": "checkOut", "objectId": doc_id}).status_code == 200

    def check_in(content: bytes, *properties: tuple[str, str]) -> Any:
        form = {"cmisaction": "checkIn", "objectId": doc_id, "checkinComment": "corrigé"}
        for index, (name, value) in enumerate(properties):
            form |= {f"propertyId[{index}]": name, f"propertyValue[{index}]": value}
        return archivist.post(url, data=form, files={"content": ("v2.pdf", content, "application/pdf")})

    def state() -> dict[str, Any]:
        params = {"objectId": doc_id, "cmisselector": "object", "succinct": "true"}
        return dict(archivist.get(url, params=params).json()["succinctProperties"])

    refused = [
        (("cmis:bidule", "1"), 409, "constraint", "cmis:bidule"),
        (("ged:numero", "douze"), 400, "invalidArgument", "numero"),
        (("socle:documentDate", "hier"), 400, "invalidArgument", "date invalide"),
        (("socle:documentDate", "99999999999999999"), 400, "invalidArgument", "date invalide"),  # after year 9999
        (("socle:documentDate", "-62135596800001"), 400, "invalidArgument", "date invalide"),  # before year 1
        (("cmis:name", ""), 400, "invalidArgument", "title"),
    ]
    for index, (prop, status, exception, words) in enumerate(refused):
        content = make_pdf(f"version refusée {index}")
        message = assert_cmis_error(check_in(content, ("cmis:name", "Arrêté corrigé"), prop), status, exception)
        assert words in message, (prop, message)
        assert not object_stored(content), prop  # the new content was never stored
        after = state()
        assert after["cmis:versionLabel"] == "1.0" and after["cmis:name"] == "Arrêté", (prop, after)
        assert after["cmis:isVersionSeriesCheckedOut"] is True  # still the holder's, to try again

    # Corrected, the same check-in goes through: the content, then the properties, and the document is free.
    content = make_pdf("version acceptée")
    accepted = check_in(
        content, ("cmis:name", "Arrêté corrigé"), ("ged:numero", "13"), ("cmis:objectTypeId", "ged:arrete")
    )
    assert accepted.status_code == 200, accepted.text
    after = state()
    assert after["cmis:versionLabel"] == "3.0" and after["cmis:name"] == "Arrêté corrigé"
    assert after["ged:numero"] == 13 and after["cmis:isVersionSeriesCheckedOut"] is False
    assert object_stored(content)
    # A check-in with no property to change (only the type's id) adds the content alone.
    assert archivist.post(url, data={"cmisaction": "checkOut", "objectId": doc_id}).status_code == 200
    alone = check_in(make_pdf("contenu seul"), ("cmis:objectTypeId", "ged:arrete"))
    assert alone.status_code == 200, alone.text
    assert state()["cmis:versionLabel"] == "4.0" and state()["cmis:isVersionSeriesCheckedOut"] is False
