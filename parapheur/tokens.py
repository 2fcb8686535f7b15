"""PKCS#11 tokens (smart cards, USB keys, HSMs) as signing identities.

``open_pkcs11_identity`` logs in to a token and returns a ``pades.SigningIdentity`` whose signer is
pyHanko's PKCS#11 signer: the key never leaves the token, and ``pades.sign_pdf`` uses it unchanged.

PKCS#11 logs in per process and per token, not per session: several identities on one token (an HSM holding
each tenant's seal key) share one login, kept while any of them is open. A later opening is checked against
the PIN that logged in (an HMAC with a per-process key, never the PIN itself), since the token cannot check it
again. The PIN is never stored, logged, or put in a message or a repr.
A PKCS#11 module reads its configuration and lists its tokens once per process, when first loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import pkcs11
from asn1crypto import x509 as asn1_x509
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import exceptions as p11_errors
from pyhanko.sign.pkcs11 import PKCS11Signer

from parapheur.pades import IdentityError, SigningError, SigningIdentity

DIGEST_ALGORITHM = "sha256"
# Hash-and-sign mechanisms; without them, the digest is computed here and the token signs it "raw".
_HASH_AND_SIGN = {"rsa": Mechanism.SHA256_RSA_PKCS, "ec": Mechanism.ECDSA_SHA256}


@dataclass
class _Login:
    """The session that logged in to a token (closing it logs every session out) and who relies on it."""

    session: pkcs11.Session
    pin_check: bytes
    users: int = 0


_LOGINS: dict[tuple[str, str], _Login] = {}
_LOGINS_LOCK = threading.Lock()
_PIN_KEY = os.urandom(32)


class TokenIdentity(SigningIdentity):
    """A signing identity whose key stays on a PKCS#11 token; close it (or use ``with``) to log out."""

    def __init__(
        self,
        signer: PKCS11Signer,
        subject_name: str,
        certificate_der: bytes,
        session: pkcs11.Session,
        login_key: tuple[str, str],
    ) -> None:
        super().__init__(signer, subject_name, certificate_der)  # type: ignore[arg-type]
        self._session: pkcs11.Session | None = session
        self._login_key = login_key
        self.token_label = login_key[1]

    @property
    def chain_der(self) -> list[bytes]:
        """The other certificates found on the token (usually the signer's CA chain), DER."""
        return [der for der in (cert.dump() for cert in self._signer.cert_registry) if der != self.certificate_der]

    def sign_raw(self, data: bytes) -> bytes:
        """Sign ``data`` (hashed with SHA-256 by the token) with the token's key; the raw signature value.

        :raises SigningError: the token refused or was removed.
        """
        try:
            return asyncio.run(self._signer.async_sign_raw(data, DIGEST_ALGORITHM))
        except p11_errors.PKCS11Error as exc:
            raise SigningError(
                f"Le jeton « {self.token_label} » a refusé de signer ({type(exc).__name__}) : est-il toujours inséré ?"
            ) from exc

    def close(self) -> None:
        """Close the session (and log out if no other identity uses the token); it can no longer sign. Idempotent."""
        session, self._session = self._session, None
        if session is not None:
            # A token already removed has nothing left to close.
            with contextlib.suppress(p11_errors.PKCS11Error):
                session.close()
            _release(self._login_key)

    def __enter__(self) -> TokenIdentity:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TokenIdentity(subject_name={self.subject_name!r}, token_label={self.token_label!r})"


def open_pkcs11_identity(module_path: str, token_label: str, pin: str, key_label: str | None = None) -> TokenIdentity:
    """Log in to the token ``token_label`` of the PKCS#11 module and load its signing key and certificate.

    :param module_path: the PKCS#11 library (e.g. /usr/lib/softhsm/libsofthsm2.so, or the card vendor's one).
    :param token_label: the token's label (the card's name).
    :param pin: the user PIN; never kept nor shown.
    :param key_label: the private key's label; optional when the token holds a single signing key.
    :raises IdentityError: module not loadable, token not found, wrong or blocked PIN, no (or several) keys,
        no certificate for the key. The message is in French and never contains the PIN.
    """
    if not pin:
        raise IdentityError("Le code PIN ne peut pas être vide.")
    token = _find_token(module_path, token_label)
    login_key = (module_path, token_label)
    _acquire(login_key, token, pin)
    try:
        # The session shares the token's login; closing it does not log the others out.
        session = token.open()
    except p11_errors.PKCS11Error as exc:
        _release(login_key)
        raise IdentityError(f"Le jeton « {token_label} » ne peut pas être ouvert ({type(exc).__name__}).") from exc
    try:
        signer, certificate = _load_signer(session, token_label, key_label)
    except BaseException:
        session.close()
        _release(login_key)
        raise
    return TokenIdentity(signer, _subject_name(certificate), certificate.dump(), session, login_key)


def _acquire(login_key: tuple[str, str], token: pkcs11.Token, pin: str) -> None:
    """Log in to the token, or join the process's login to it if the PIN is the one that logged in."""
    check = hmac.new(_PIN_KEY, pin.encode("utf-8"), hashlib.sha256).digest()
    with _LOGINS_LOCK:
        login = _LOGINS.get(login_key)
        if login is None:
            login = _LOGINS[login_key] = _Login(_login(token, login_key[1], pin), check)
        elif not hmac.compare_digest(login.pin_check, check):
            raise IdentityError(f"Code PIN incorrect pour le jeton « {login_key[1]} ».")
        login.users += 1


def _release(login_key: tuple[str, str]) -> None:
    with _LOGINS_LOCK:
        login = _LOGINS.get(login_key)
        if login is None:
            return
        login.users -= 1
        if login.users <= 0:
            del _LOGINS[login_key]
            with contextlib.suppress(p11_errors.PKCS11Error):
                login.session.close()  # logs out


def _find_token(module_path: str, token_label: str) -> pkcs11.Token:
    try:
        library = pkcs11.lib(module_path)
    except p11_errors.PKCS11Error as exc:
        raise IdentityError(f"Le module PKCS#11 « {module_path} » est introuvable ou ne peut pas être chargé.") from exc
    try:
        return library.get_token(token_label=token_label)
    except p11_errors.NoSuchToken as exc:
        raise IdentityError(f"Jeton « {token_label} » introuvable : la carte est-elle insérée ?") from exc
    except p11_errors.MultipleTokensReturned as exc:
        raise IdentityError(f"Plusieurs jetons s'appellent « {token_label} » : n'en insérez qu'un.") from exc
    except p11_errors.PKCS11Error as exc:
        raise IdentityError(f"Le module PKCS#11 ne peut pas lister ses jetons ({type(exc).__name__}).") from exc


def _login(token: pkcs11.Token, token_label: str, pin: str) -> pkcs11.Session:
    # Only the exception's type is kept in messages: a module could echo its input in its own text.
    try:
        return token.open(user_pin=pin)
    except (p11_errors.PinIncorrect, p11_errors.PinInvalid, p11_errors.PinLenRange) as exc:
        raise IdentityError(f"Code PIN incorrect pour le jeton « {token_label} ».") from exc
    except p11_errors.PinLocked as exc:
        raise IdentityError(
            f"Le code PIN du jeton « {token_label} » est bloqué (trop d'essais) : faites-le débloquer."
        ) from exc
    except p11_errors.PinExpired as exc:
        raise IdentityError(f"Le code PIN du jeton « {token_label} » a expiré : changez-le.") from exc
    except p11_errors.UserAlreadyLoggedIn as exc:
        # Logged in by other code of this process: a login that cannot check the PIN it is given must not pass.
        raise IdentityError(
            f"Le jeton « {token_label} » est déjà ouvert par ce programme : fermez la session en cours d'abord."
        ) from exc
    except p11_errors.PKCS11Error as exc:
        raise IdentityError(f"Le jeton « {token_label} » ne peut pas être ouvert ({type(exc).__name__}).") from exc


def _load_signer(
    session: pkcs11.Session, token_label: str, key_label: str | None
) -> tuple[PKCS11Signer, asn1_x509.Certificate]:
    try:
        key = _signing_key(session, token_label, key_label)
        key_id: bytes = key[Attribute.ID] or b""
        certificate = _certificate_for(session, key_id, key[Attribute.LABEL] or "", token_label)
        _check_pair(key, certificate, token_label)
        # The card's CA certificates travel with the signature (its chain); the certificate of another key of the
        # card (an agent card's authentication key) is not the signer's and stays out of the signature.
        chain = [cert for cert in _certificates(session) if cert.ca and cert.dump() != certificate.dump()]
        signer = PKCS11Signer(
            session,
            signing_cert=certificate,
            ca_chain=chain,
            key_id=key_id or None,
            key_label=None if key_id else key[Attribute.LABEL],
            use_raw_mechanism=_needs_raw_mechanism(session, certificate.public_key.algorithm),
        )
        # Find the key handle now: a failure belongs to the opening, not to the first signature.
        signer._load_objects()  # type: ignore[no-untyped-call]
    except p11_errors.PKCS11Error as exc:
        raise IdentityError(f"Le jeton « {token_label} » ne peut pas être lu ({type(exc).__name__}).") from exc
    return signer, certificate


def _signing_key(session: pkcs11.Session, token_label: str, key_label: str | None) -> Any:
    query: dict[Attribute, Any] = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.SIGN: True}
    if key_label is not None:
        query[Attribute.LABEL] = key_label
    keys = list(session.get_objects(query))
    if not keys:
        named = f" « {key_label} »" if key_label is not None else ""
        raise IdentityError(f"Aucune clé de signature{named} sur le jeton « {token_label} ».")
    if len(keys) > 1:
        raise IdentityError(
            f"Le jeton « {token_label} » contient plusieurs clés de signature : précisez le libellé de la clé."
        )
    return keys[0]


def _certificate_for(session: pkcs11.Session, key_id: bytes, key_label: str, token_label: str) -> asn1_x509.Certificate:
    # A card pairs a key and its certificate by CKA_ID; some tools only give them the same label.
    for attribute, value in ((Attribute.ID, key_id), (Attribute.LABEL, key_label)):
        if not value:
            continue
        query = {Attribute.CLASS: ObjectClass.CERTIFICATE, attribute: value}
        found = [asn1_x509.Certificate.load(obj[Attribute.VALUE]) for obj in session.get_objects(query)]
        if found:
            return found[0]
    raise IdentityError(f"Aucun certificat n'accompagne la clé de signature du jeton « {token_label} ».")


def _certificates(session: pkcs11.Session) -> list[asn1_x509.Certificate]:
    query = {Attribute.CLASS: ObjectClass.CERTIFICATE}
    return [asn1_x509.Certificate.load(obj[Attribute.VALUE]) for obj in session.get_objects(query)]


def _check_pair(key: Any, certificate: asn1_x509.Certificate, token_label: str) -> None:
    algorithm = certificate.public_key.algorithm
    if algorithm not in _HASH_AND_SIGN:
        raise IdentityError("Seules les clés RSA et ECDSA sont prises en charge pour signer.")
    if algorithm != "rsa":
        return
    try:
        modulus = int.from_bytes(key[Attribute.MODULUS], "big")
    except p11_errors.PKCS11Error:
        return  # the module does not expose it: the signature check will tell
    if modulus != certificate.public_key.native["public_key"]["modulus"]:
        raise IdentityError(f"Le certificat du jeton « {token_label} » ne correspond pas à sa clé de signature.")


def _needs_raw_mechanism(session: pkcs11.Session, algorithm: str) -> bool:
    # Many cards, and SoftHSM for ECDSA, only offer CKM_RSA_PKCS / CKM_ECDSA over a digest computed here.
    try:
        mechanisms = session.token.slot.get_mechanisms()
    except p11_errors.PKCS11Error:
        return False
    return _HASH_AND_SIGN[algorithm] not in mechanisms


def _subject_name(certificate: asn1_x509.Certificate) -> str:
    subject = certificate.subject.native
    return str(subject.get("common_name") or subject.get("organization_name") or certificate.subject.human_friendly)


__all__ = ["TokenIdentity", "open_pkcs11_identity"]
