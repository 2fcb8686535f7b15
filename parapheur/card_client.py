"""The agent's side of client-side signing: the smart card signs, the parapheur's API does the rest.

``sign_folder_with_card`` reads the certificate from the card, asks the API to prepare the signature, has the
card sign what the API returned, and sends the signature value back. The PIN and the key stay on this machine.
``find_card`` spares the agent the technical names: OpenSC's PKCS#11 library is looked for where systems install
it, and the card is the one inserted, when there is only one.
"""

from __future__ import annotations

import base64
import binascii
import glob
import hashlib
import os
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pkcs11
from asn1crypto import cms
from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11_errors

from parapheur.pades import IdentityError, SigningError
from parapheur.tokens import DIGEST_ALGORITHM, TokenIdentity, open_pkcs11_identity
from socle.errors import SocleError, message

HTTP_TIMEOUT_SECONDS = 60.0
MODULE_ENV = "SOCLE_CARD_MODULE"  # the card's PKCS#11 library, when it is not OpenSC's

# Where OpenSC's PKCS#11 library is installed, most likely first: this machine's multiarch folder (Debian,
# Ubuntu), any other one, then Fedora/openSUSE, hand-built, macOS (OpenSC installer, Homebrew) and Windows.
_MULTIARCH = sysconfig.get_config_var("MULTIARCH") or ""
MODULE_PATTERNS: tuple[str, ...] = (
    *(
        (f"/usr/lib/{_MULTIARCH}/opensc-pkcs11.so", f"/usr/lib/{_MULTIARCH}/pkcs11/opensc-pkcs11.so")
        if _MULTIARCH
        else ()
    ),
    "/usr/lib/*/opensc-pkcs11.so",
    "/usr/lib/*/pkcs11/opensc-pkcs11.so",
    "/usr/lib/opensc-pkcs11.so",
    "/usr/lib/pkcs11/opensc-pkcs11.so",
    "/usr/lib64/opensc-pkcs11.so",
    "/usr/lib64/pkcs11/opensc-pkcs11.so",
    "/usr/local/lib/opensc-pkcs11.so",
    "/usr/local/lib/pkcs11/opensc-pkcs11.so",
    "/Library/OpenSC/lib/opensc-pkcs11.so",
    "/opt/homebrew/lib/opensc-pkcs11.so",
    "C:/Windows/System32/opensc-pkcs11.dll",
    "C:/Program Files/OpenSC Project/OpenSC/pkcs11/opensc-pkcs11.dll",
)


class CardSigningError(SocleError):
    """Client-side signing failed; ``detail`` (French) says why and can be shown as is."""

    title = "Signature par carte impossible"
    slug = "card-signing"


def find_module(patterns: Sequence[str] = MODULE_PATTERNS) -> str:
    """The card's PKCS#11 library: ``$SOCLE_CARD_MODULE`` if set, else the first OpenSC library found.

    :raises CardSigningError: none found (the message names where it was looked for).
    """
    chosen = os.environ.get(MODULE_ENV)
    if chosen:
        return chosen
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            if Path(path).is_file():
                return path
    raise CardSigningError(
        message(
            "Bibliothèque PKCS#11 de la carte introuvable (OpenSC cherché dans : %(places)s) : installez OpenSC, "
            "ou indiquez la bibliothèque de votre carte avec --module.",
            places=", ".join(patterns),
        )
    )


def card_labels(module_path: str) -> list[str]:
    """The labels of the cards (initialised tokens) the PKCS#11 library sees now, sorted.

    :raises CardSigningError: the library cannot be loaded or cannot list its tokens.
    """
    try:
        library = pkcs11.lib(module_path)
    except p11_errors.PKCS11Error as exc:
        raise CardSigningError(
            message(
                "La bibliothèque PKCS#11 « %(module)s » est introuvable ou ne peut pas être chargée.",
                module=module_path,
            )
        ) from exc
    try:
        # An empty slot of a token-emulating module (SoftHSM's spare one) is present but not initialised.
        return sorted(token.label for token in library.get_tokens(token_flags=TokenFlag.TOKEN_INITIALIZED))
    except p11_errors.PKCS11Error as exc:
        raise CardSigningError(
            message("La bibliothèque PKCS#11 ne peut pas lister les cartes (%(error)s).", error=type(exc).__name__)
        ) from exc


def find_card(module_path: str | None = None, token_label: str | None = None) -> tuple[str, str]:
    """The PKCS#11 library and the card's label to use: those given, else found (see ``find_module``), the
    card being the only one inserted.

    :raises CardSigningError: no library, no card, or several cards (their labels are listed) and none chosen.
    """
    module = module_path or find_module()
    if token_label:
        return module, token_label
    labels = card_labels(module)
    if len(labels) == 1:
        return module, labels[0]
    if not labels:
        raise CardSigningError(
            message(
                "Aucune carte trouvée (bibliothèque « %(module)s ») : insérez la carte dans le lecteur et réessayez.",
                module=module,
            )
        )
    listed = ", ".join(f"« {label} »" for label in labels)
    raise CardSigningError(
        message("Plusieurs cartes sont présentes (%(cards)s) : choisissez-en une avec --token-label.", cards=listed)
    )


def sign_folder_with_card(
    api_url: str,
    api_token: str,
    folder_id: str,
    module_path: str | None,
    token_label: str | None,
    pin: str,
    key_label: str | None = None,
    *,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    """Sign the folder ``folder_id`` with the key of a PKCS#11 token, through the parapheur's API.

    :param api_url: the parapheur API's URL (e.g. https://socle.example.fr/parapheur).
    :param api_token: the agent's API token (sent as a Bearer token).
    :param module_path: the card's PKCS#11 library; None: found (``find_card``).
    :param token_label: the card's label; None: the only card inserted.
    :param client: an HTTP client to use (tests pass one bound to the app); by default a new one.
    :returns: the folder as the API returns it once signed.
    :raises CardSigningError: the card cannot be used (wrong PIN, unknown token, none or several found…), the
        API refused or cannot be reached, or it asked to sign something that is not a signature of this certificate.
    """
    module_path, token_label = find_card(module_path, token_label)
    own_client = client is None
    http = client or httpx.Client(timeout=HTTP_TIMEOUT_SECONDS)
    base = api_url.rstrip("/")
    headers = {"Authorization": f"Bearer {api_token}"}
    try:
        with _open_card(module_path, token_label, pin, key_label) as identity:
            body = {"certificate": _b64(identity.certificate_der), "chain": [_b64(der) for der in identity.chain_der]}
            prepared = _post(http, f"{base}/folders/{folder_id}/signature/prepare", body, headers, "préparation")
            data_to_sign = _data_to_sign(prepared, identity.certificate_der)
            signature = _sign(identity, data_to_sign)
        body = {"id": prepared["id"], "signature": _b64(signature)}
        return _post(http, f"{base}/folders/{folder_id}/signature/finish", body, headers, "finalisation")
    finally:
        if own_client:
            http.close()


def _open_card(module_path: str, token_label: str, pin: str, key_label: str | None) -> TokenIdentity:
    try:
        return open_pkcs11_identity(module_path, token_label, pin, key_label)
    except IdentityError as exc:
        raise CardSigningError(str(exc)) from exc


def _sign(identity: TokenIdentity, data: bytes) -> bytes:
    try:
        return identity.sign_raw(data)
    except SigningError as exc:
        raise CardSigningError(str(exc)) from exc


def _post(http: httpx.Client, url: str, body: dict[str, Any], headers: dict[str, str], step: str) -> dict[str, Any]:
    try:
        response = http.post(url, json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise CardSigningError(
            message("Le parapheur est injoignable (%(step)s de la signature) : %(exc)s", step=step, exc=exc)
        ) from exc
    if response.status_code >= 400:
        raise CardSigningError(
            message(
                "Le parapheur a refusé la %(step)s de la signature : %(response)s",
                step=step,
                response=_problem(response),
            )
        )
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CardSigningError(message("Réponse inattendue du parapheur à la %(step)s de la signature.", step=step))
    return answer


def _problem(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    return f"{detail} ({response.status_code})" if detail else f"erreur HTTP {response.status_code}"


def _data_to_sign(prepared: dict[str, Any], certificate_der: bytes) -> bytes:
    """What the server asks the card to sign, checked to be PAdES signed attributes for this very certificate.

    The card signs whatever it is given: refusing anything else keeps a compromised or mistaken server from
    obtaining the agent's signature on other data.
    """
    if prepared.get("digest_algorithm") != DIGEST_ALGORITHM or "id" not in prepared:
        raise CardSigningError(message("Réponse inattendue du parapheur à la préparation de la signature."))
    try:
        data = base64.b64decode(str(prepared.get("data_to_sign", "")), validate=True)
        attributes = {attr["type"].native: attr["values"] for attr in cms.CMSAttributes.load(data)}
        digest = attributes["message_digest"][0].native
        certificate_hashes = [ref["cert_hash"].native for ref in attributes["signing_certificate_v2"][0]["certs"]]
    except (binascii.Error, ValueError, TypeError, KeyError, IndexError) as exc:
        raise CardSigningError(
            message("Le parapheur demande de signer des données qui ne sont pas une signature de document : refusé.")
        ) from exc
    if (
        len(digest) != hashlib.sha256().digest_size
        or hashlib.sha256(certificate_der).digest() not in certificate_hashes
    ):
        raise CardSigningError(
            message(
                "Le parapheur demande de signer des données qui ne correspondent pas au "
                "certificat de la carte : refusé."
            )
        )
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


__all__ = ["CardSigningError", "card_labels", "find_card", "find_module", "sign_folder_with_card"]
