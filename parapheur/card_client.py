"""The agent's side of client-side signing: the smart card signs, the parapheur's API does the rest.

``sign_folder_with_card`` reads the certificate from the card, asks the API to prepare the signature, has the
card sign what the API returned, and sends the signature value back. The PIN and the key stay on this machine.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import httpx
from asn1crypto import cms

from parapheur.pades import IdentityError, SigningError
from parapheur.tokens import DIGEST_ALGORITHM, TokenIdentity, open_pkcs11_identity
from socle.errors import SocleError

HTTP_TIMEOUT_SECONDS = 60.0


class CardSigningError(SocleError):
    """Client-side signing failed; ``detail`` (French) says why and can be shown as is."""

    title = "Signature par carte impossible"
    slug = "card-signing"


def sign_folder_with_card(
    api_url: str,
    api_token: str,
    folder_id: str,
    module_path: str,
    token_label: str,
    pin: str,
    key_label: str | None = None,
    *,
    client: httpx.Client | None = None,
) -> dict[str, Any]:
    """Sign the folder ``folder_id`` with the key of a PKCS#11 token, through the parapheur's API.

    :param api_url: the parapheur API's URL (e.g. https://socle.example.fr/parapheur).
    :param api_token: the agent's API token (sent as a Bearer token).
    :param client: an HTTP client to use (tests pass one bound to the app); by default a new one.
    :returns: the folder as the API returns it once signed.
    :raises CardSigningError: the card cannot be used (wrong PIN, unknown token…), the API refused or cannot
        be reached, or it asked to sign something that is not a signature of this certificate.
    """
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
        raise CardSigningError(f"Le parapheur est injoignable ({step} de la signature) : {exc}") from exc
    if response.status_code >= 400:
        raise CardSigningError(f"Le parapheur a refusé la {step} de la signature : {_problem(response)}")
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CardSigningError(f"Réponse inattendue du parapheur à la {step} de la signature.")
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
        raise CardSigningError("Réponse inattendue du parapheur à la préparation de la signature.")
    try:
        data = base64.b64decode(str(prepared.get("data_to_sign", "")), validate=True)
        attributes = {attr["type"].native: attr["values"] for attr in cms.CMSAttributes.load(data)}
        digest = attributes["message_digest"][0].native
        certificate_hashes = [ref["cert_hash"].native for ref in attributes["signing_certificate_v2"][0]["certs"]]
    except (binascii.Error, ValueError, TypeError, KeyError, IndexError) as exc:
        raise CardSigningError(
            "Le parapheur demande de signer des données qui ne sont pas une signature de document : refusé."
        ) from exc
    if (
        len(digest) != hashlib.sha256().digest_size
        or hashlib.sha256(certificate_der).digest() not in certificate_hashes
    ):
        raise CardSigningError(
            "Le parapheur demande de signer des données qui ne correspondent pas au certificat de la carte : refusé."
        )
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


__all__ = ["CardSigningError", "sign_folder_with_card"]
