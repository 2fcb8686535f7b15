"""Encryption of secrets kept in the database (private keys, PINs, connector credentials).

The key comes from ``SOCLE_SECRET_KEY``; on a laptop, one is generated once in ``data_dir/secret.key``
(readable by its owner only). Losing that key makes the stored secrets unreadable: back it up.
"""

from __future__ import annotations

import base64
import hashlib
import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from socle.errors import SettingsError, message
from socle.settings import get_settings


@lru_cache(maxsize=1)
def _fernet() -> Fernet:
    settings = get_settings()
    secret = settings.secret_key or _local_key(settings.data_dir / "secret.key")
    # Any passphrase works: it is stretched to the 32 bytes Fernet expects.
    key = base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest())
    return Fernet(key)


def _local_key(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.urlsafe_b64encode(os.urandom(32)).decode())
        try:
            os.link(fresh, path)  # atomic and never overwrites: two processes starting together agree on one key
        except FileExistsError:
            pass
        finally:
            fresh.unlink()
    return path.read_text().strip()


def encrypt(data: bytes) -> bytes:
    return _fernet().encrypt(data)


def decrypt(token: bytes) -> bytes:
    try:
        return _fernet().decrypt(token)
    except InvalidToken:
        raise SettingsError(message("secret illisible : SOCLE_SECRET_KEY a-t-elle changé ?")) from None


def reset() -> None:
    _fernet.cache_clear()
