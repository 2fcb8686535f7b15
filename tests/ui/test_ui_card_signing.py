"""Signing with a smart card from the folder page, end to end, with nothing to guess.

The agent (a signer with no key on the server) opens the folder page of the kit served for real (uvicorn on
127.0.0.1), prepares the card signature, copies the command the page shows and runs it as is: the real
``socle`` command, in its own process, with a SoftHSM2 token as the only card inserted. Then the page shows
the folder signed, and the signed PDF passes poppler's pdfsig and pyHanko's validation.

The token the page gives is personal, expires, and serves only the two card-signing calls of its folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from fastapi.testclient import TestClient
from live_server import served as serve_kit
from parapheur_kit import Standard, desk, folder_of, sent_folder, typology
from sqlalchemy import select, update
from testpki import PKCS12_PASSPHRASE, TestPki
from ui_kit import csrf_of, sign_in

from parapheur import cli, pades
from parapheur.card_client import MODULE_PATTERNS, CardSigningError, find_card, find_module
from socle.auth import authenticate, get_tenant, get_user, issue_token
from socle.db import transaction, utcnow
from socle.errors import Forbidden, Unauthenticated
from socle.models import ApiToken, AuditEntry

from conftest import ROOT, UI_PASSWORD, Kit, make_pdf, missing, pdfsig

sys.path.insert(0, str(ROOT / "tests" / "parapheur"))  # the SoftHSM2 helpers, beside the parapheur's tests
from softhsm import KEY_LABEL, MODULE_CANDIDATES, PIN, SIGNER_TOKEN, SO_PIN, softhsm

VALID = "Signature is Valid"
OPENSC = "/usr/lib/{arch}/opensc-pkcs11.so"
_COMMAND = re.compile(r"<pre><code>(SOCLE_API_TOKEN=[^<]+)</code></pre>")


# ---------------------------------------------------------------------------------------------------------
# The kit served for real, an agent's browser, a card


@pytest.fixture(scope="module")
def served(app: Any) -> Iterator[str]:
    """The whole kit (pages and APIs) served by uvicorn in a thread on 127.0.0.1: its base URL."""
    with serve_kit(app, "card-live-server") as url:
        yield url


class Browser:
    """An agent's browser on the served kit. It keeps the cookies itself: they are Secure, and a browser sends
    them to 127.0.0.1 over plain HTTP, which httpx's cookie jar does not."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=120, follow_redirects=False)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Cookie": "; ".join(f"{name}={value}" for name, value in self.cookies.items())}
        response = self.http.request(method, path, headers=headers, **kwargs)
        self.http.cookies.clear()
        for cookie in response.headers.get_list("set-cookie"):
            name, _, rest = cookie.partition("=")
            value = rest.split(";")[0]
            if value and "max-age=0" not in cookie.lower():
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return response

    def sign_in(self, kit: Kit, username: str) -> None:
        form = {"tenant": kit.slug, "username": username, "password": UI_PASSWORD}
        answer = self.post_form("/connexion", "/connexion", form)
        assert answer.status_code == 303, answer.text

    def post_form(self, page: str, action: str, data: dict[str, str]) -> httpx.Response:
        """Submit a form as a browser does: the page's CSRF token with it."""
        return self.request("POST", action, data={"csrf": csrf_of(self.request("GET", page).text), **data})

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def browser(served: str) -> Iterator[Browser]:
    opened = Browser(served)
    yield opened
    opened.close()


def _module() -> str:
    found = next((path for path in MODULE_CANDIDATES if Path(path).is_file()), None)
    if found is None or shutil.which("softhsm2-util") is None or shutil.which("pkcs11-tool") is None:
        missing("SoftHSM2 ou OpenSC absent (paquets Debian softhsm2, opensc) : lancez « make system-deps »")
    assert found is not None
    return found


def _run(env: dict[str, str], *command: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, f"{command[0]} : {result.stdout}{result.stderr}"


def card_reader(folder: Path, pki: TestPki | None) -> dict[str, str]:
    """A SoftHSM2 set-up holding one card, the agent's (the test PKI's signer key, its certificate and chain),
    or none without ``pki``: the environment a command run in its own process needs to see it."""
    module = _module()
    (folder / "tokens").mkdir(parents=True)
    config = folder / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {folder / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(config), "SOCLE_CARD_MODULE": module, "SOCLE_CARD_PIN": PIN}
    if pki is None:
        return env
    _run(env, "softhsm2-util", "--init-token", "--free", "--label", SIGNER_TOKEN, "--pin", PIN, "--so-pin", SO_PIN)
    key, certificate, chain = pkcs12.load_key_and_certificates(pki.pkcs12("signer"), PKCS12_PASSPHRASE)
    assert key is not None and certificate is not None
    pem = folder / "key.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    _run(env, "softhsm2-util", "--import", str(pem), "--token", SIGNER_TOKEN, "--label", KEY_LABEL, "--id", "01",
         "--pin", PIN)  # fmt: skip
    pem.unlink()
    for index, cert in enumerate([certificate, *chain]):
        der = folder / f"{index}.der"
        der.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        object_id, label = ("01", KEY_LABEL) if index == 0 else (f"1{index}", f"ac-{index}")
        _run(env, "pkcs11-tool", "--module", module, "--token-label", SIGNER_TOKEN, "--login", "--pin", PIN,
             "--write-object", str(der), "--type", "cert", "--id", object_id, "--label", label)  # fmt: skip
    return env


def run_as_copied(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the page's command as a shell would: its leading NAME=value words are the command's environment,
    and ``socle`` is the kit's command (this interpreter's ``python -m socle``)."""
    words = shlex.split(command)
    assignments = {}
    while "=" in words[0] and not words[0].startswith("-"):
        name, _, value = words.pop(0).partition("=")
        assignments[name] = value
    assert words[0] == "socle"
    return subprocess.run(
        [sys.executable, "-m", "socle", *words[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, **assignments},
        cwd=ROOT,
    )


def signer_folders(kit: Kit, *titles: str) -> list[str]:
    """PAdES folders waiting for the signature of « Élus », the agent's desk (the agent has no server key)."""
    elected = desk(kit, "Élus", ["agent"], "Adjointe au maire")
    subtype = typology(kit, [{"kind": "signature", "desk_ids": [elected]}], name="Arrêté signé par carte")
    return [str(sent_folder(kit, subtype, title=title)["id"]) for title in titles or ("Arrêté de voirie",)]


def prepare_from_page(browser: Browser | TestClient, folder_id: str) -> tuple[Any, str]:
    """Press « Préparer la signature par carte »: the answer and the command it shows."""
    page = f"/dossiers/{folder_id}"
    if isinstance(browser, Browser):
        answer: Any = browser.post_form(page, f"{page}/preparer-carte", {})
    else:
        token = csrf_of(browser.get(page).text)
        answer = browser.post(f"{page}/preparer-carte", data={"csrf": token})
    assert answer.status_code == 200, answer.text
    found = _COMMAND.search(answer.text)
    assert found, "la page ne montre pas la commande"
    return answer, unescape(found.group(1))


def token_of(command: str) -> str:
    return shlex.split(command)[0].partition("=")[2]


# ---------------------------------------------------------------------------------------------------------
# End to end


def test_the_agent_signs_with_the_card_from_the_folder_page(
    kit: Kit, pki: TestPki, browser: Browser, served: str, tmp_path: Path
) -> None:
    [folder_id] = signer_folders(kit)
    card = card_reader(tmp_path / "lecteur", pki)
    browser.sign_in(kit, "agent")
    page = browser.request("GET", f"/dossiers/{folder_id}").text
    assert "Préparer la signature par carte" in page and "socle_" not in page
    assert "Aucune clé de signature n'est enregistrée pour vous sur le serveur" in page  # no server key

    answer, command = prepare_from_page(browser, folder_id)

    assert answer.headers["cache-control"] == "no-store"
    assert command.startswith("SOCLE_API_TOKEN=socle_")
    assert command.endswith(f"socle parapheur sign-with-card --api {served}/parapheur --folder {folder_id}")
    token = token_of(command)
    with transaction() as session:
        row = session.execute(select(ApiToken).where(ApiToken.token_hash == hashlib.sha256(token.encode()).hexdigest()))
        stored = row.scalar_one()
        assert stored.expires_at is not None
        assert timedelta(minutes=29) < stored.expires_at - utcnow() <= timedelta(minutes=30)
        assert token not in f"{stored.label} {stored.scope}"  # only its hash is kept
        issued = session.execute(
            select(AuditEntry).where(AuditEntry.tenant_id == kit.tenant_id, AuditEntry.action == "token.issued")
        ).scalars()
        audited = [entry for entry in issued if entry.actor == "user:agent"]
        assert len(audited) == 1 and audited[0].details["scope"] == [
            f"POST /folders/{folder_id}/signature/prepare",  # paths within the parapheur's API
            f"POST /folders/{folder_id}/signature/finish",
        ]
        assert token not in str(audited[0].details)
    assert token not in browser.request("GET", f"/dossiers/{folder_id}").text  # shown once

    run = run_as_copied(command, card)

    assert run.returncode == 0, run.stdout + run.stderr
    assert f"Dossier « Arrêté de voirie » signé avec la carte « {SIGNER_TOKEN} » (état : completed)" in run.stdout
    assert PIN not in run.stdout + run.stderr and token not in run.stdout + run.stderr
    after = browser.request("GET", f"/dossiers/{folder_id}").text
    assert "Terminé" in after and "Préparer la signature par carte" not in after
    assert re.search(r"Signature par Camille Martin le", after), after
    document = folder_of(kit, folder_id)["documents"][0]
    signed = browser.request("GET", f"/dossiers/{folder_id}/documents/{document['id']}")
    assert signed.status_code == 200 and signed.content.startswith(b"%PDF")
    path = tmp_path / "signe.pdf"
    path.write_bytes(signed.content)
    assert VALID in pdfsig(path)
    checks = pades.verify_pdf(path, [pki.root_der])
    assert len(checks) == 1 and checks[0].intact and checks[0].valid and checks[0].covers_whole_document


# ---------------------------------------------------------------------------------------------------------
# The token: short-lived, personal, for one folder's card signature only


def card_calls(client: TestClient, token: str, folder_id: str, certificate: bytes) -> Any:
    import base64

    body = {"certificate": base64.b64encode(certificate).decode()}
    auth = {"Authorization": f"Bearer {token}"}
    return client.post(f"/parapheur/folders/{folder_id}/signature/prepare", json=body, headers=auth)


def test_the_card_token_serves_only_its_folders_card_signature(app: Any, kit: Kit, pki: TestPki) -> None:
    folder_id, other_id = signer_folders(kit, "Arrêté de voirie", "Autre arrêté")
    _, command = prepare_from_page(sign_in(app, kit, "agent"), folder_id)
    token = token_of(command)
    api = TestClient(app, raise_server_exceptions=False)
    certificate = pki.certificate_der("signer")

    other = card_calls(api, token, other_id, certificate)
    assert other.status_code == 403, other.text
    assert other.json()["detail"] == (
        f"ce jeton d'accès ne sert qu'à « signature par carte du dossier {folder_id} » : il ne permet pas cette requête"
    )
    auth = {"Authorization": f"Bearer {token}"}
    for method, path in [
        ("GET", f"/parapheur/folders/{folder_id}"),  # the folder itself, read
        ("GET", "/parapheur/folders"),
        ("POST", f"/parapheur/folders/{folder_id}/sign"),  # signing with a server key
        ("GET", "/ged/documents"),
        ("GET", "/ged/cmis"),  # CMIS authenticates without the request: every scoped token refused
    ]:
        refused = api.request(method, path, headers=auth)
        assert refused.status_code == 403 and "ne permet pas cette requête" in refused.text, (method, path)
    # Its own call works.
    prepared = card_calls(api, token, folder_id, certificate)
    assert prepared.status_code == 200, prepared.text
    assert folder_of(kit, other_id)["status"] == "in_progress"


def test_an_expired_card_token_is_refused_with_a_clear_message(app: Any, kit: Kit, pki: TestPki) -> None:
    [folder_id] = signer_folders(kit)
    _, command = prepare_from_page(sign_in(app, kit, "agent"), folder_id)
    token = token_of(command)
    digest = hashlib.sha256(token.encode()).hexdigest()
    with transaction() as session:
        session.execute(
            update(ApiToken).where(ApiToken.token_hash == digest).values(expires_at=utcnow() - timedelta(seconds=1))
        )

    answer = card_calls(TestClient(app, raise_server_exceptions=False), token, folder_id, pki.certificate_der("signer"))

    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
    assert re.fullmatch(
        r"jeton d'accès expiré depuis le \d\d/\d\d/\d{4} à \d\d:\d\d \(UTC\) : demandez-en un nouveau",
        answer.json()["detail"],
    )
    with transaction() as session, pytest.raises(Unauthenticated, match="expiré"):
        authenticate(session, token, ("POST", f"/folders/{folder_id}/signature/prepare"))

    # The next preparation takes the expired token away (they would pile up, one per card signature).
    _, again = prepare_from_page(sign_in(app, kit, "agent"), folder_id)
    with transaction() as session:
        kept = session.execute(select(ApiToken.token_hash).where(ApiToken.expires_at.is_not(None))).scalars().all()
    assert digest not in kept and hashlib.sha256(token_of(again).encode()).hexdigest() in kept
    assert kit["agent"].get("/parapheur/folders").status_code == 200  # lasting tokens are not touched


def test_authenticate_keeps_unscoped_tokens_as_they_were_and_refuses_scoped_ones_without_the_request(
    kit: Kit,
) -> None:
    with transaction() as session:
        assert authenticate(session, kit.tokens["agent"]).username == "agent"  # no request given: still fine
        assert authenticate(session, kit.tokens["agent"], ("DELETE", "/anything")).username == "agent"
    folder_id = "dossier-x"
    with transaction() as session:
        user = get_user(session, get_tenant(session, kit.slug), "agent")
        scoped = issue_token(session, user, "essai", scope=[f"post /folders/{folder_id}/signature/prepare"])
    with transaction() as session:
        assert authenticate(session, scoped, ("POST", f"/folders/{folder_id}/signature/prepare")).username == "agent"
        with pytest.raises(Forbidden):
            authenticate(session, scoped)
        for method, path in [
            ("GET", f"/folders/{folder_id}/signature/prepare"),
            ("POST", f"/folders/{folder_id}/signature/prepare/x"),
            ("POST", f"/ged/folders/{folder_id}/signature/prepare"),  # the same words in another service
            ("POST", f"/folders/{folder_id}/signature/prepare/"),
        ]:
            with pytest.raises(Forbidden):
                authenticate(session, scoped, (method, path))


@pytest.mark.parametrize(
    ("root_path", "path", "within"),
    [
        ("", "/folders/x/signature/prepare", "/folders/x/signature/prepare"),  # the service alone
        ("/parapheur", "/parapheur/folders/x/signature/prepare", "/folders/x/signature/prepare"),  # in the kit
        ("/socle/parapheur", "/socle/parapheur/folders/x", "/folders/x"),  # behind a proxy's prefix
    ],
)
def test_a_scoped_call_is_matched_on_its_path_within_the_service(root_path: str, path: str, within: str) -> None:
    from starlette.requests import Request

    from socle.web import service_path

    assert service_path(Request({"type": "http", "path": path, "root_path": root_path, "headers": []})) == within


def test_only_the_signer_may_prepare_and_with_the_pages_csrf_token(app: Any, kit: Kit) -> None:
    setup = Standard(kit)
    folder = sent_folder(kit, setup.visa_then_sign)  # at its visa step: nobody signs yet
    agent = sign_in(app, kit, "agent")
    page = f"/dossiers/{folder['id']}"
    assert "Préparer la signature par carte" not in agent.get(page).text
    refused = agent.post(f"{page}/preparer-carte", data={"csrf": csrf_of(agent.get(page).text)})
    assert refused.status_code == 409 and "attend pas votre signature par carte" in refused.text
    assert "SOCLE_API_TOKEN=" not in refused.text
    forged = agent.post(f"{page}/preparer-carte", data={"csrf": "faux"})
    assert forged.status_code in (400, 403) and "SOCLE_API_TOKEN=" not in forged.text
    with transaction() as session:
        scoped = session.execute(
            select(ApiToken).where(ApiToken.tenant_id == kit.tenant_id, ApiToken.scope.is_not(None))
        ).all()
    assert scoped == []


# ---------------------------------------------------------------------------------------------------------
# The command finds the card's library and the card


def test_the_library_is_found_among_the_usual_places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOCLE_CARD_MODULE", raising=False)
    patterns = (str(tmp_path / "usr/lib/*/opensc-pkcs11.so"), str(tmp_path / "usr/lib/opensc-pkcs11.so"))
    with pytest.raises(CardSigningError, match=r"introuvable \(OpenSC cherché dans : .*usr/lib/\*/opensc-pkcs11.so"):
        find_module(patterns)
    (tmp_path / "usr/lib").mkdir(parents=True)
    (tmp_path / "usr/lib/opensc-pkcs11.so").write_bytes(b"")
    assert find_module(patterns) == str(tmp_path / "usr/lib/opensc-pkcs11.so")
    (tmp_path / "usr/lib/aarch64-linux-gnu").mkdir()
    (tmp_path / "usr/lib/aarch64-linux-gnu/opensc-pkcs11.so").write_bytes(b"")
    assert find_module(patterns) == str(tmp_path / "usr/lib/aarch64-linux-gnu/opensc-pkcs11.so")
    monkeypatch.setenv("SOCLE_CARD_MODULE", "/opt/carte/libcarte.so")  # the card vendor's library, chosen
    assert find_module(patterns) == "/opt/carte/libcarte.so"
    # This machine's own architecture comes first: a library of another one could not be loaded.
    assert MODULE_PATTERNS[0] == OPENSC.format(arch=sysconfig.get_config_var("MULTIARCH"))
    assert "/usr/lib/*/opensc-pkcs11.so" in MODULE_PATTERNS and "/usr/local/lib/opensc-pkcs11.so" in MODULE_PATTERNS


def test_without_card_the_command_says_so_before_asking_the_pin(tmp_path: Path) -> None:
    empty = card_reader(tmp_path / "vide", None)
    args = ["parapheur", "sign-with-card", "--api", "http://127.0.0.1:9/parapheur", "--folder", "d-1"]
    env = {**empty, "SOCLE_API_TOKEN": "socle_essai"}
    del env["SOCLE_CARD_PIN"]
    run = subprocess.run([sys.executable, "-m", "socle", *args], capture_output=True, text=True, timeout=120,
                         env=env, cwd=ROOT, stdin=subprocess.DEVNULL)  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert (
        f"Erreur : Aucune carte trouvée (bibliothèque « {env['SOCLE_CARD_MODULE']} ») : insérez la carte" in run.stderr
    )
    assert "Code PIN" not in run.stdout + run.stderr and "Traceback" not in run.stderr

    # OpenSC's own library, found without --module (no reader on a test machine: no card either).
    opensc = OPENSC.format(arch=sysconfig.get_config_var("MULTIARCH"))
    if not Path(opensc).is_file():
        missing(f"OpenSC absent ({opensc}) : lancez « make system-deps »")
    del env["SOCLE_CARD_MODULE"]
    run = subprocess.run([sys.executable, "-m", "socle", *args], capture_output=True, text=True, timeout=120,
                         env=env, cwd=ROOT, stdin=subprocess.DEVNULL)  # fmt: skip
    assert run.returncode == 1 and f"Aucune carte trouvée (bibliothèque « {opensc} »)" in run.stderr, run.stderr


def test_with_several_cards_the_command_lists_them(pki: TestPki) -> None:
    hsm = softhsm(pki)  # three cards: the agent's, an ECDSA one and an empty one
    env = {"SOCLE_API_TOKEN": "socle_essai", "SOCLE_CARD_MODULE": hsm.signer.module_path, "SOCLE_CARD_PIN": PIN}
    args = ["sign-with-card", "--api", "http://127.0.0.1:9/parapheur", "--folder", "d-1"]
    result = CliRunner().invoke(cli.group, args, env=env)
    assert result.exit_code == 1
    assert (
        "Erreur : Plusieurs cartes sont présentes (« Carte EC », « Carte agent », « Carte vide ») : "
        "choisissez-en une avec --token-label."
    ) in result.output
    # Named, it is used: the server (none here) is what fails next.
    named = CliRunner().invoke(cli.group, [*args, "--token-label", hsm.signer.label], env=env)
    assert named.exit_code == 1 and "Le parapheur est injoignable (préparation de la signature)" in named.output
    assert find_card(hsm.signer.module_path, "Carte EC") == (hsm.signer.module_path, "Carte EC")


def test_no_card_preparation_for_a_format_the_card_cannot_sign(app: Any, kit: Kit) -> None:
    """The client-side flow makes PAdES signatures: a CAdES folder offers no card preparation."""
    elected = desk(kit, "Élus", ["agent"])
    subtype = typology(kit, [{"kind": "signature", "desk_ids": [elected]}], signature_format="cades", name="CAdES")
    folder = sent_folder(kit, subtype, files=[("acte.pdf", make_pdf(), "application/pdf")])
    page = sign_in(app, kit, "agent").get(f"/dossiers/{folder['id']}").text
    assert "Rejeter le dossier" in page  # the agent acts on this step…
    assert "Préparer la signature par carte" not in page  # …but not with a card


def test_the_card_part_of_the_page_in_english(app: Any, kit: Kit) -> None:
    [folder_id] = signer_folders(kit)
    agent = sign_in(app, kit, "agent")
    agent.cookies.set("__Host-socle_langue", "en")
    page = agent.get(f"/dossiers/{folder_id}").text
    assert "Prepare the card signature" in page and "for 30 minutes for this folder only" in page
    answer = agent.post(f"/dossiers/{folder_id}/preparer-carte", data={"csrf": csrf_of(page)})
    assert "shown this once only, which can only sign this folder" in answer.text
