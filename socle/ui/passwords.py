"""Local account passwords, hashed with scrypt (standard library, memory-hard).

Stored as ``scrypt$n$r$p$salt$hash`` (base64) so the cost can be raised later without breaking old hashes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from socle.errors import InvalidInput, message

_N, _R, _P = 2**14, 8, 1  # about 16 MiB and 50 ms per check: slow for a guesser, fine for a sign-in
MIN_LENGTH = 12


def hash_password(password: str) -> str:
    check_strength(password)
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return "$".join(["scrypt", str(_N), str(_R), str(_P), _b64(salt), _b64(digest)])


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        # Same work as a real check, so an unknown account cannot be told apart by timing.
        hashlib.scrypt(password.encode(), salt=b"0" * 16, n=_N, r=_R, p=_P, dklen=32)
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        computed = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 1024 * 1024,
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed, expected)


def check_strength(password: str) -> None:
    # ANSSI's guidance favours length over composition rules: a long passphrase is accepted as is.
    if len(password) < MIN_LENGTH:
        raise InvalidInput(
            message("le mot de passe doit compter au moins %(min_length)s caractères", min_length=MIN_LENGTH)
        )
    if len(password) > 1024:
        raise InvalidInput(message("le mot de passe est trop long (1 024 caractères au plus)"))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
