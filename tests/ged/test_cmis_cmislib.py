"""The CMIS 1.1 Browser Binding driven by a real CMIS client (Apache Chemistry's cmislib, Browser Binding)
against a real uvicorn server on 127.0.0.1: folders, typed documents, content, path, parents, versions,
properties, check-out/check-in, query, move, delete."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import pytest
import uvicorn
from cmislib import CmisClient
from cmislib.browser.binding import BrowserBinding
from cmislib.exceptions import ObjectNotFoundException, UpdateConflictException

from conftest import Kit, make_pdf


@pytest.fixture
def server(app: Any) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert instance.started, "uvicorn n'a pas démarré"
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(10)


def repository(server: str, kit: Kit, username: str) -> Any:
    # cmislib sends HTTP Basic: the user name, and the API token as password.
    client = CmisClient(f"{server}/ged/cmis", username, kit.tokens[username], binding=BrowserBinding())
    return client.getDefaultRepository()


def make_type(kit: Kit) -> None:
    body = {
        "code": "deliberation",
        "name": "Délibération",
        "fields": [
            {"name": "numero", "label": "Numéro", "kind": "integer", "required": True},
            {"name": "seance", "label": "Date de séance", "kind": "date"},
            {"name": "vote", "label": "Vote", "kind": "choice", "choices": ["unanimité", "majorité"]},
        ],
    }
    response = kit["admin"].post("/ged/types", json=body)
    assert response.status_code == 201, response.text


def test_cmislib_browses_creates_versions_and_queries(kit: Kit, server: str) -> None:
    make_type(kit)
    repo = repository(server, kit, "archiviste")
    assert repo.getRepositoryId() == kit.slug
    info = repo.getRepositoryInfo()
    assert info["cmisVersionSupported"] == "1.1" and info["rootFolderId"] == "root"

    # Types: cmis:document and cmis:folder, the tenant's types as subtypes with their fields as properties.
    assert {t.getTypeId() for t in repo.getTypeDefinitions()} == {"cmis:document", "cmis:folder"}
    assert [t.getTypeId() for t in repo.getTypeChildren("cmis:document")] == ["ged:deliberation"]
    definition = repo.getTypeDefinition("ged:deliberation")
    props = definition.getProperties()
    assert props["ged:numero"].getPropertyType() == "integer" and props["ged:numero"].isRequired()
    assert props["ged:seance"].getPropertyType() == "datetime"
    assert definition.getBaseId() == "cmis:document"

    root = repo.getRootFolder()
    council = root.createFolder("Conseil municipal")
    session = council.createFolder("Séance du 12 mars")
    assert session.getProperties()["cmis:path"] == "/Conseil municipal/Séance du 12 mars"
    assert session.getProperties()["cmis:parentId"] == council.getObjectId()

    content = make_pdf("budget primitif")
    document = session.createDocument(
        "Budget primitif",
        properties={"cmis:objectTypeId": "ged:deliberation", "ged:numero": "42", "ged:vote": "majorité"},
        contentFile=BytesIO(content),
        contentType="application/pdf",
    )
    doc_id = document.getObjectId()
    properties = document.getProperties()
    assert properties["cmis:objectTypeId"] == "ged:deliberation"
    assert properties["ged:numero"] == 42 and properties["ged:vote"] == "majorité"
    assert properties["cmis:contentStreamMimeType"] == "application/pdf"
    assert properties["cmis:contentStreamLength"] == len(content)
    assert properties["cmis:versionLabel"] == "1.0"

    # Read back: by path, children, content, parents (the GED's own API sees the same document).
    by_path = repo.getObjectByPath("/Conseil municipal/Séance du 12 mars/Budget primitif")
    assert by_path.getObjectId() == doc_id
    assert [child.getObjectId() for child in session.getChildren()] == [doc_id]
    assert [child.getName() for child in root.getChildren()] == ["Conseil municipal"]
    assert repo.getObject(doc_id).getContentStream().read() == content
    assert [parent.getObjectId() for parent in repo.getObject(doc_id).getObjectParents()] == [session.getObjectId()]
    rest = kit["archiviste"].get(f"/ged/documents/{doc_id}").json()
    assert rest["folder_id"] == session.getObjectId() and rest["current"]["field_values"]["numero"] == 42

    # Properties change: a new version, the old one still readable.
    document = repo.getObject(doc_id)
    document.updateProperties({"cmis:name": "Budget primitif 2026"})
    document = repo.getObject(doc_id)
    assert document.getName() == "Budget primitif 2026"
    assert document.getProperties()["cmis:versionLabel"] == "2.0"
    versions = document.getAllVersions()
    assert [v.getProperties()["cmis:versionLabel"] for v in versions] == ["2.0", "1.0"]
    assert repo.getObject(f"{doc_id};1").getName() == "Budget primitif"

    # Check-out: while the archivist holds it, the agent cannot change it (CMIS nor REST API).
    working_copy = document.checkout()
    assert repo.getObject(doc_id).isCheckedOut()
    assert repo.getObject(doc_id).getCheckedOutBy() == "archiviste"
    other = repository(server, kit, "agent").getObject(doc_id)
    with pytest.raises(UpdateConflictException):
        other.updateProperties({"cmis:name": "Pas moi"})
    refused = kit["agent"].patch(f"/ged/documents/{doc_id}", json={"title": "Pas moi"})
    assert refused.status_code == 409, refused.text
    new_content = make_pdf("budget primitif corrigé")
    checked_in = working_copy.checkin(
        checkinComment="coquille corrigée", contentFile=BytesIO(new_content), contentType="application/pdf"
    )
    assert checked_in.getObjectId() == doc_id
    document = repo.getObject(doc_id)
    assert not document.isCheckedOut()
    assert document.getProperties()["cmis:versionLabel"] == "3.0"
    assert document.getContentStream().read() == new_content
    other = repository(server, kit, "agent").getObject(doc_id)
    other.updateProperties({"cmis:name": "Budget primitif 2026 (agent)"})  # free again
    assert repo.getObject(doc_id).getName() == "Budget primitif 2026 (agent)"

    # Query: LIKE on the name, IN_FOLDER, IN_TREE, the type as FROM, CONTAINS through the full-text search.
    other_doc = council.createDocument("Compte administratif", contentFile=BytesIO(make_pdf("ca")))
    names = {
        "SELECT * FROM cmis:document WHERE cmis:name LIKE 'Budget%'": {doc_id},
        f"SELECT * FROM cmis:document WHERE IN_FOLDER('{council.getObjectId()}')": {other_doc.getObjectId()},
        f"SELECT * FROM cmis:document WHERE IN_TREE('{council.getObjectId()}')": {doc_id, other_doc.getObjectId()},
        "SELECT cmis:objectId, cmis:name FROM ged:deliberation": {doc_id},
        "SELECT * FROM cmis:document WHERE CONTAINS('compte administratif')": {other_doc.getObjectId()},
        "SELECT * FROM cmis:document WHERE cmis:name = 'Inexistant'": set(),
    }
    for statement, expected in names.items():
        found = {result.getObjectId() for result in repo.query(statement)}
        assert found == expected, statement

    # Move: a document is filed elsewhere (no new version), a folder moves with its subtree.
    document = repo.getObject(doc_id)
    document.move(session, council)
    moved = repo.getObject(doc_id)
    assert [parent.getObjectId() for parent in moved.getObjectParents()] == [council.getObjectId()]
    assert moved.getProperties()["cmis:versionLabel"] == "4.0"
    session.move(council, root)
    assert repo.getObject(session.getObjectId()).getProperties()["cmis:path"] == "/Séance du 12 mars"

    # Delete: the document goes to the trash; a folder that is not empty stays.
    with pytest.raises(UpdateConflictException):
        council.delete()
    repo.getObject(doc_id).delete()
    with pytest.raises(ObjectNotFoundException):
        repo.getObject(doc_id)
    assert kit["archiviste"].get("/ged/trash").json()["total"] == 1
