"""The administration page of the signing identities (/admin/parapheur/identites): the agents' identities and the
collectivité's seals, listed, imported from a PKCS#12 file and removed by an administrator, with the API's rules,
its refusals next to their fields and its audit entries; never a key nor a passphrase shown."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from io import BytesIO
from typing import Any

from parapheur_kit import desk, ok, typology
from PIL import Image
from sqlalchemy import select
from ui_kit import csrf_of, sign_in

from socle.db import new_session
from socle.models import AuditEntry

from conftest import Kit, signing_identity

URL = "/admin/parapheur/identites"
PKCS12, PASSPHRASE = signing_identity()  # the kit's own: « Dominique Dupont », passphrase « test-passphrase »


def _png() -> bytes:
    out = BytesIO()
    Image.new("RGB", (40, 20), "navy").save(out, format="PNG")
    return out.getvalue()


def _post(client: Any, action: str, data: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> Any:
    token = csrf_of(client.get(URL).text)
    return client.post(action, data={"csrf": token, **data}, files=files or None)


def _import_user(
    client: Any, username: str, pkcs12: bytes = PKCS12, passphrase: str = PASSPHRASE.decode(), **files: Any
) -> Any:
    parts = {"user_file": ("identite.p12", pkcs12, "application/x-pkcs12"), **files}
    return _post(client, f"{URL}/agents", {"user": username, "user_passphrase": passphrase}, parts)


def _import_seal(client: Any, label: str, pkcs12: bytes = PKCS12, passphrase: str = PASSPHRASE.decode()) -> Any:
    parts = {"seal_file": ("cachet.p12", pkcs12, "application/x-pkcs12")}
    return _post(client, f"{URL}/cachets", {"seal_label": label, "seal_passphrase": passphrase}, parts)


def _listed(kit: Kit, purpose: str) -> list[dict[str, Any]]:
    return list(ok(kit["admin"].get("/parapheur/identities", params={"purpose": purpose})))


def _audit(kit: Kit) -> list[tuple[str, str, dict[str, Any]]]:
    with new_session() as session:
        entries = session.execute(
            select(AuditEntry).where(AuditEntry.tenant_id == kit.tenant_id).order_by(AuditEntry.id)
        ).scalars()
        return [(entry.action, entry.actor, entry.details) for entry in entries]


def _assert_no_secret(*texts: str) -> None:
    secrets = [PASSPHRASE.decode(), base64.b64encode(PKCS12).decode()[:40], PKCS12.hex()[:40]]
    for text in texts:
        assert not any(secret in text for secret in secrets)


def test_the_administration_lists_the_page_which_shows_the_certificates_only(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    assert f'href="{URL}"' in admin.get("/admin").text
    page = admin.get(URL)
    assert page.status_code == 200
    assert "<h1>Identités de signature et cachets</h1>" in page.text
    # The kit's mayor has an identity: the agent by name, the certificate's holder, issuer, serial and validity.
    (row,) = _listed(kit, "user")
    assert "Dominique Dupont (maire)</th>" in page.text
    assert row["subject"] in page.text and row["issuer"] in page.text
    assert f"n° de série {row['serial_number']}" in page.text
    assert re.search(r"du \d{1,2} \w+ \d{4} au \d{1,2} \w+ \d{4}", page.text)
    assert f'action="{URL}/agents/maire/suppression"' in page.text
    assert "Aucun cachet serveur" in page.text
    assert 'enctype="multipart/form-data"' in page.text and 'type="password"' in page.text
    _assert_no_secret(page.text)


def test_an_agents_identity_is_imported_refused_with_reasons_then_removed(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    answers: list[str] = []

    # Refusals, each next to its field, the agent kept, the passphrase never shown again.
    wrong = _import_user(admin, "agent", passphrase="pas la bonne phrase")
    answers.append(wrong.text)
    assert (
        wrong.status_code == 422 and 'id="user_passphrase-erreur">Impossible d&#39;ouvrir le certificat' in wrong.text
    )
    assert '<option value="agent" selected>' in wrong.text and "pas la bonne phrase" not in wrong.text
    not_pkcs12 = _import_user(admin, "agent", pkcs12=b"pas un PKCS#12")
    answers.append(not_pkcs12.text)
    assert not_pkcs12.status_code == 422  # pades cannot tell a wrong passphrase from a file that is no PKCS#12
    assert "phrase de passe incorrecte ou fichier PKCS#12 invalide" in not_pkcs12.text
    bad_image = _import_user(admin, "agent", user_image=("tampon.png", b"pas une image", "image/png"))
    answers.append(bad_image.text)
    assert bad_image.status_code == 422 and 'id="user_image-erreur">L&#39;image du cachet' in bad_image.text
    empty = _post(admin, f"{URL}/agents", {"user": "", "user_passphrase": ""}, {})
    assert empty.status_code == 400
    for field, wording in (
        ("user", "Choisissez l&#39;agent."),
        ("user_file", "Choisissez le fichier PKCS#12 (.p12 ou .pfx)."),
        ("user_passphrase", "Saisissez la phrase de passe du fichier PKCS#12."),
    ):
        assert f'<p class="field-error" id="{field}-erreur">{wording}</p>' in empty.text, field
    assert 'role="alert"' in empty.text and '<a href="#user_file">' in empty.text
    too_big = _import_user(admin, "agent", pkcs12=b"0" * (1024 * 1024 + 1))
    assert too_big.status_code == 400 and 'id="user_file-erreur">Le fichier PKCS#12 dépasse 1 Mio.</p>' in too_big.text
    no_image = _import_user(admin, "agent", user_image=("tampon.png", b"", "image/png"))
    assert no_image.status_code == 400 and 'id="user_image-erreur">L&#39;image du cachet est vide.</p>' in no_image.text
    unknown = _import_user(admin, "personne")  # a choice the list never offered (the form was edited)
    answers.append(unknown.text)
    assert unknown.status_code == 422 and 'id="user-erreur">utilisateur « personne » inconnu' in unknown.text
    assert [row["username"] for row in _listed(kit, "user")] == ["maire"]

    imported = _import_user(admin, "agent", user_image=("tampon.png", _png(), "image/png"))
    assert imported.status_code == 303 and imported.headers["location"] == URL
    listed = {row["username"]: row for row in _listed(kit, "user")}
    assert sorted(listed) == ["agent", "maire"] and listed["agent"]["stamp_image"]
    page = admin.get(URL)
    answers.append(page.text)
    assert "Identité de signature de agent enregistrée" in page.text and "Camille Martin (agent)</th>" in page.text
    assert ("parapheur.identity.imported", "user:admin") in [(action, actor) for action, actor, _ in _audit(kit)]

    removed = _post(admin, f"{URL}/agents/agent/suppression", {}, {})
    assert removed.status_code == 303
    assert [row["username"] for row in _listed(kit, "user")] == ["maire"]
    assert "Identité de signature de agent retirée." in admin.get(URL).text
    assert ("parapheur.identity.removed", "user:admin") in [(action, actor) for action, actor, _ in _audit(kit)]
    again = _post(admin, f"{URL}/agents/agent/suppression", {}, {})  # removed meanwhile, in another tab
    assert again.status_code == 404 and "aucune identité de signature enregistrée pour « agent »" in again.text
    _assert_no_secret(*answers)
    assert not any(PASSPHRASE.decode() in json.dumps(details) for _, _, details in _audit(kit))


def test_a_seal_is_imported_kept_while_a_sous_type_uses_it_then_removed(app: Any, kit: Kit) -> None:
    admin = sign_in(app, kit, "admin")
    nameless = _import_seal(admin, "")
    assert nameless.status_code == 400 and 'id="seal_label-erreur">Saisissez le nom du cachet.</p>' in nameless.text
    control = _import_seal(admin, "Cachet\x07mairie")
    assert control.status_code == 422 and 'id="seal_label-erreur">nom du cachet : caractère de contrôle' in control.text
    assert 'value="Cachet' in control.text  # what was typed is shown again
    assert _listed(kit, "seal") == []

    assert _import_seal(admin, "Cachet Zqxw").status_code == 303
    (seal,) = _listed(kit, "seal")
    assert seal["label"] == "Cachet Zqxw" and seal["kind"] == "pkcs12"
    page = admin.get(URL)
    assert "Cachet « Cachet Zqxw » enregistré" in page.text and "fichier PKCS#12" in page.text
    secretariat = desk(kit, "Secrétariat", ["agent"])
    typology(
        kit,
        [{"kind": "visa", "desk_ids": [secretariat]}, {"kind": "seal"}],
        name="Attestation",
        seal_identity_id=seal["id"],
    )

    in_use = _post(admin, f"{URL}/cachets/{seal['id']}/suppression", {}, {})
    assert in_use.status_code == 409 and 'role="alert"' in in_use.text
    assert "le cachet « Cachet Zqxw » est utilisé par le(s) sous-type(s) : Attestation" in in_use.text
    assert [row["id"] for row in _listed(kit, "seal")] == [seal["id"]]

    assert _import_seal(admin, "Cachet de secours").status_code == 303
    spare = next(row for row in _listed(kit, "seal") if row["label"] == "Cachet de secours")
    assert _post(admin, f"{URL}/cachets/{spare['id']}/suppression", {}, {}).status_code == 303
    assert "Cachet « Cachet de secours » retiré." in admin.get(URL).text
    assert [row["label"] for row in _listed(kit, "seal")] == ["Cachet Zqxw"]
    actions = [(action, actor) for action, actor, _ in _audit(kit)]
    assert ("parapheur.seal.imported", "user:admin") in actions and ("parapheur.seal.removed", "user:admin") in actions


def test_only_an_administrator_of_the_collectivite_manages_them(
    app: Any, kit: Kit, make_kit: Callable[..., Kit]
) -> None:
    admin = sign_in(app, kit, "admin")
    assert _import_seal(admin, "Cachet Zqxw").status_code == 303
    (seal,) = _listed(kit, "seal")
    for username in ("agent", "archiviste"):
        client = sign_in(app, kit, username)
        token = csrf_of(client.get("/").text)
        assert client.get(URL).status_code == 403, username
        for action in (
            f"{URL}/agents",
            f"{URL}/cachets",
            f"{URL}/agents/maire/suppression",
            f"{URL}/cachets/{seal['id']}/suppression",
        ):
            assert client.post(action, data={"csrf": token, "user": "agent"}).status_code == 403, (username, action)
    assert [row["username"] for row in _listed(kit, "user")] == ["maire"] and len(_listed(kit, "seal")) == 1
    # Another collectivité's administrator sees none of them and cannot remove them.
    stranger = sign_in(app, make_kit(with_identity=False), "admin")
    page = stranger.get(URL)
    assert page.status_code == 200 and "Zqxw" not in page.text and "n° de série" not in page.text
    assert "Aucun agent n'a d'identité de signature enregistrée" in page.text and "Aucun cachet serveur" in page.text
    assert _post(stranger, f"{URL}/cachets/{seal['id']}/suppression", {}, {}).status_code == 404
    assert _post(stranger, f"{URL}/agents/maire/suppression", {}, {}).status_code == 404
    assert len(_listed(kit, "seal")) == 1 and [row["username"] for row in _listed(kit, "user")] == ["maire"]
