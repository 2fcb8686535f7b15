"""``socle demo``: one document through the four services, over their real HTTP APIs.

GED upload → parapheur circuit (visa, then a PAdES signature) → the signed PDF back in the GED as a new
version → a SEDA 2.2 package built and validated by the archive service → deposited by the interop
« dépôt » connector with its receipt. Embedded mode runs the jobs in this process; with ``SOCLE_REDIS_URL``
one worker process per service is started, as in production.
"""

from __future__ import annotations

import os
import secrets as random_secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pikepdf
import uvicorn

from socle import audit, queue
from socle.auth import create_tenant, create_user, get_tenant, get_user, issue_token, revoke_tokens, set_password
from socle.db import new_session, transaction
from socle.errors import NotFound, SocleError
from socle.migrating import upgrade_all
from socle.settings import SERVICES, get_settings, reset_settings

TENANT = "commune-demo"
USERS = {
    "agent": ("Camille Martin", ["agent", "secretariat"]),
    "maire": ("Dominique Dupont", ["agent"]),
    "archiviste": ("Alix Bernard", ["archiviste"]),
    "admin": ("Sacha Petit", ["admin"]),
}


_FOLDER_STATES = {"completed": "terminé", "in_progress": "en cours", "rejected": "rejeté", "error": "en erreur"}


def say(step: str, text: str) -> None:
    print(f"[{step:>9}] {text}", flush=True)


DEMO_PASSWORD_FILE = "interface.txt"


def run_demo(output: str | None) -> None:
    settings = get_settings()
    mode = "embarqué (SQLite, fichiers, file en mémoire)" if settings.embedded_queue else "production (Redis)"
    say("socle", f"démonstration — mode {mode}")
    _ensure_schemas()
    upgrade_all()
    out = Path(output or settings.data_dir / "demo").resolve()
    out.mkdir(parents=True, exist_ok=True)
    tokens = _prepare_tenant(out)
    with _api_server() as base_url, _workers():
        clients = {name: _client(base_url, token) for name, token in tokens.items()}
        try:
            _chain(clients, out)
        finally:
            for client in clients.values():
                client.close()


def _ensure_schemas() -> None:
    """The archive validates against the official XSDs: fetch them once if they are not configured."""
    settings = get_settings()
    if settings.seda_schemas is not None:
        return
    from archive.xsd_install import SchemaInstallError, check_schemas, install_schemas

    folder = (settings.data_dir / "seda").resolve()
    try:
        if check_schemas(folder):
            say("archives", "téléchargement des schémas SEDA officiels…")
            install_schemas(folder)
    except SchemaInstallError as exc:
        say("archives", f"schémas SEDA indisponibles ({exc}) : la validation XSD sera signalée comme non faite")
        return
    os.environ["SOCLE_SEDA_SCHEMAS"] = str(folder)
    reset_settings()


def _prepare_tenant(out: Path) -> dict[str, str]:
    """The demo collectivité, its users and a self-signed signing identity for the mayor (kept across runs).

    Each user also gets a fresh password for the web interface, written to ``out/interface.txt``.
    """
    from parapheur.identities import import_identity
    from parapheur.pades import make_self_signed_identity

    tokens: dict[str, str] = {}
    passwords: dict[str, str] = {}
    with transaction() as session:
        try:
            tenant = get_tenant(session, TENANT)
        except NotFound:
            tenant = create_tenant(session, TENANT, "Commune de Démo-sur-Loire", "213700000")
            say("socle", f"collectivité « {tenant.name} » créée")
        for username, (display_name, roles) in USERS.items():
            try:
                user = get_user(session, tenant, username)
            except NotFound:
                user = create_user(session, tenant, username, display_name, roles)
            revoke_tokens(session, user)  # a rerun must not pile up live tokens
            tokens[username] = issue_token(session, user, "démonstration")
            passwords[username] = random_secrets.token_urlsafe(12)
            set_password(session, user, passwords[username])
        passphrase = random_secrets.token_urlsafe(16).encode()
        pkcs12 = make_self_signed_identity(USERS["maire"][0], tenant.name, passphrase)
        identity = import_identity(session, tenant, "maire", pkcs12, passphrase)
        say("parapheur", f"identité de signature auto-signée : {identity.subject}")
    lines = [f"Collectivité : {TENANT}"] + [f"{name} : {password}" for name, password in passwords.items()]
    write_private(out / DEMO_PASSWORD_FILE, "\n".join(lines) + "\n")
    return tokens


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (the demo's passwords)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(path)


def _chain(api: dict[str, httpx.Client], out: Path) -> None:
    pdf = _demo_pdf(out / "deliberation-2026-042.pdf")
    with pdf.open("rb") as handle:
        document = _ok(
            api["agent"].post(
                "/ged/documents",
                files={"file": (pdf.name, handle, "application/pdf")},
                data={
                    "title": "Délibération n° 2026-042 — Tarifs de la cantine scolaire",
                    "document_type": "deliberation",
                    "date": date.today().isoformat(),
                    "tags": ["cantine", "tarifs"],
                },
            )
        )
    doc_id = document["id"]
    say("GED", f"document déposé : {doc_id} (v1, sha256 {document['current']['content']['sha256'][:16]}…)")

    subtype_id = _typology(api["admin"])
    folder = _ok(
        api["agent"].post(
            "/parapheur/folders",
            json={
                "subtype_id": subtype_id,
                "title": "Délibération 2026-042",
                "ged_document_id": doc_id,
                "metadata": {"numero": "2026-042"},
                "send": True,
            },
        )
    )
    say("parapheur", f"dossier créé et envoyé : {folder['id']} — visa (Secrétariat) puis signature (Maire)")
    folder = _wait_for(api["agent"], f"/parapheur/folders/{folder['id']}", "status", ("in_progress", "error"))
    if folder["status"] != "in_progress":
        raise SocleError(f"le dossier n'a pas reçu son document : {folder['error']}")
    say("parapheur", "la GED a transmis le document par la file de tâches")

    _ok(api["agent"].post(f"/parapheur/folders/{folder['id']}/visa", json={"comment": "Vu, conforme."}))
    say("parapheur", "visa de Camille Martin enregistré")
    folder = _ok(api["maire"].post(f"/parapheur/folders/{folder['id']}/sign", json={}))
    say(
        "parapheur",
        f"signature PAdES de Dominique Dupont — dossier {_FOLDER_STATES.get(folder['status'], folder['status'])}",
    )

    document = _wait_for(api["agent"], f"/ged/documents/{doc_id}", "current_version", (2,))
    signed = out / document["current"]["content"]["filename"]
    _download(api["agent"], f"/ged/documents/{doc_id}/content", signed)
    say("GED", f"PDF signé enregistré comme version 2 (origine {document['current']['origin']})")
    _check_signature(signed)

    transfer = _ok(
        api["archiviste"].post(
            "/archive/transfers",
            json={"document_ids": [doc_id], "archival_agency": "AD037", "comment": "Délibérations 2026"},
        )
    )
    transfer = _wait_for(
        api["archiviste"],
        f"/archive/transfers/{transfer['id']}",
        "status",
        ("built", "invalid", "unvalidated", "error"),
    )
    report = transfer["validation"] or {}
    say(
        "archives",
        f"paquet SEDA 2.2 construit : {transfer['message_identifier']} — validation : {report.get('status')}",
    )
    if transfer["status"] not in ("built", "unvalidated"):
        raise SocleError(f"paquet refusé : {transfer['error'] or report.get('issues')}")
    if transfer["status"] == "unvalidated":
        say("archives", report.get("message", "validation non faite"))
    sip = out / f"{transfer['message_identifier']}.zip"
    _download(api["archiviste"], f"/archive/transfers/{transfer['id']}/sip", sip)

    if api["admin"].get("/interop/connectors/depot-sae").status_code == 404:
        _ok(
            api["admin"].post(
                "/interop/connectors", json={"name": "depot-sae", "kind": "depot", "config": {"path": "sae"}}
            )
        )
        say("interop", "connecteur « dépôt » configuré : depot-sae")
    _ok(
        api["archiviste"].post(
            f"/archive/transfers/{transfer['id']}/send",
            json={"connector": "depot-sae", "accept_unvalidated": transfer["status"] == "unvalidated"},
        )
    )
    transfer = _wait_for(
        api["archiviste"], f"/archive/transfers/{transfer['id']}", "status", ("delivered", "delivery_failed")
    )
    if transfer["status"] != "delivered":
        raise SocleError(f"dépôt impossible : {transfer['error']}")
    receipt = transfer["receipt"]
    say("interop", f"paquet déposé : {receipt['name']} ({receipt['size']} octets, sha256 {receipt['sha256'][:16]}…)")

    with new_session() as session:
        result = audit.verify(session, get_tenant(session, TENANT).id)
    say("audit", f"journal : {result.entries} entrées, chaîne {'intacte' if result.intact else 'ALTÉRÉE'}")
    print()
    print(f"PDF signé : {signed}")
    print(f"Paquet SEDA : {sip}")
    deposited = get_settings().effective_deposit_root / TENANT / receipt["path"]
    print(f"Accusé de dépôt : {deposited}.receipt.json")
    print()
    print("Interface web : lancer `.venv/bin/socle serve`, puis ouvrir http://127.0.0.1:8000/")
    print(f"  (identifiants et mots de passe des utilisateurs de démonstration : {out / DEMO_PASSWORD_FILE})")


def _typology(admin: httpx.Client) -> str:
    """Desks « Secrétariat » and « Maire », the type « Délibération » (PAdES) and its sous-type (kept across runs)."""
    desks = {desk["name"]: desk["id"] for desk in _ok_list(admin.get("/parapheur/desks"))}
    for name, members, role in (("Secrétariat", ["agent"], "Secrétaire de mairie"), ("Maire", ["maire"], "Maire")):
        if name not in desks:
            desk = {"name": name, "members": members, "stamp_role": role}
            desks[name] = _ok(admin.post("/parapheur/desks", json=desk))["id"]
            say("parapheur", f"bureau « {name} » créé ({', '.join(members)})")
    types = {row["name"]: row["id"] for row in _ok_list(admin.get("/parapheur/types"))}
    type_id = (
        types.get("Délibération")
        or _ok(
            admin.post("/parapheur/types", json={"name": "Délibération", "signature_format": "pades", "level": "B-B"})
        )["id"]
    )
    subtypes: dict[str, str] = {
        row["name"]: row["id"] for row in _ok_list(admin.get("/parapheur/subtypes", params={"type_id": type_id}))
    }
    if "Conseil municipal" in subtypes:
        return subtypes["Conseil municipal"]
    circuit = [
        {"kind": "visa", "desk_ids": [desks["Secrétariat"]]},
        {"kind": "signature", "desk_ids": [desks["Maire"]]},
    ]
    body: dict[str, Any] = {
        "name": "Conseil municipal",
        "circuit": circuit,
        "creator_desk_ids": [desks["Secrétariat"]],
        "due_days": 15,
    }
    subtype_id: str = _ok(admin.post(f"/parapheur/types/{type_id}/subtypes", json=body))["id"]
    say("parapheur", "typologie « Délibération / Conseil municipal » créée : visa (Secrétariat) puis signature (Maire)")
    return subtype_id


def _ok_list(response: httpx.Response) -> list[dict[str, Any]]:
    if response.status_code >= 400:
        _ok(response)
    body: list[dict[str, Any]] = response.json()
    return body


def _check_signature(path: Path) -> None:
    from parapheur.pades import verify_pdf

    with new_session() as session:
        from parapheur.models import SigningIdentity

        tenant = get_tenant(session, TENANT)
        identity = session.query(SigningIdentity).filter_by(tenant_id=tenant.id, username="maire").one()
        checks = verify_pdf(path, [identity.certificate_der])
    state = "valide" if checks and all(check.intact and check.valid for check in checks) else "INVALIDE"
    say("parapheur", f"signature vérifiée par pyHanko : {state} ({len(checks)} signature)")


def _demo_pdf(path: Path) -> Path:
    lines = [
        "Commune de Démo-sur-Loire",
        "Délibération n° 2026-042 du conseil municipal",
        "Objet : tarifs de la cantine scolaire",
        "Le conseil municipal, après en avoir délibéré, fixe les tarifs ci-annexés.",
    ]
    text = "BT /F1 12 Tf 72 760 Td 16 TL " + " ".join(f"({_pdf_escape(line)}) '" for line in lines) + " ET"
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    font = pdf.make_indirect(
        pikepdf.Dictionary(
            Type=pikepdf.Name.Font,
            Subtype=pikepdf.Name.Type1,
            BaseFont=pikepdf.Name.Helvetica,
            Encoding=pikepdf.Name.WinAnsiEncoding,
        )
    )
    page = pdf.pages[0]
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
    page.Contents = pdf.make_stream(text.encode("cp1252"))
    pdf.save(path)
    return path


def _pdf_escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


# ---------------------------------------------------------------------------------------------------------
# Plumbing: an API server in a thread, workers, HTTP helpers


@contextmanager
def _api_server() -> Iterator[str]:
    from socle.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="socle-demo-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise SocleError("le serveur d'API de démonstration n'a pas démarré")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def _workers() -> Iterator[None]:
    if get_settings().embedded_queue:
        worker = queue.EmbeddedWorker(poll_seconds=0.2)
        worker.start()
        try:
            yield
        finally:
            worker.stop()
        return
    # Production-like: one worker process per service, as a deployment would run them.
    log_path = get_settings().data_dir.resolve() / "demo-workers.log"
    with log_path.open("ab") as log:
        processes = [
            subprocess.Popen([sys.executable, "-m", "socle", "worker", service], stdout=log, stderr=log)
            for service in SERVICES
        ]
        say("socle", f"{len(processes)} workers démarrés, un processus par service (journal : {log_path})")
        try:
            yield
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=60)


def _client(base_url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        problem = response.json() if response.headers.get("content-type", "").endswith("json") else {}
        raise SocleError(
            f"{response.request.method} {response.request.url.path} : {problem.get('detail', response.text)}"
        )
    body: dict[str, Any] = response.json()
    return body


def _wait_for(
    client: httpx.Client, path: str, field: str, values: tuple[Any, ...], timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = _ok(client.get(path))
        if body[field] in values:
            return body
        if time.monotonic() > deadline:
            raise SocleError(f"délai dépassé en attendant {path} ({field} = {body[field]})")
        time.sleep(0.1)


def _download(client: httpx.Client, path: str, target: Path) -> None:
    with client.stream("GET", path) as response:
        if response.status_code >= 400:
            raise SocleError(f"téléchargement impossible : {path}")
        with target.open("wb") as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
