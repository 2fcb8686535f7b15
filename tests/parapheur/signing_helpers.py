"""Helpers of the signing tests: signing identities, the TSA in use, the folder's documents and history."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from testpki import PKCS12_PASSPHRASE, TestPki

from parapheur import identities
from parapheur.models import FolderEvent, SigningIdentity
from socle.db import new_session, transaction, utcnow
from socle.models import Job, Tenant, User
from socle.storage.api import nested_name

from conftest import Kit

OBJECTS = Path(os.environ["SOCLE_DATA_DIR"]) / "objects"


def import_pki_identity(kit: Kit, username: str, pki: TestPki, label: str = "signer") -> None:
    """Give ``username`` the test PKI's certificate ``label`` (signer, revoked, expired) as signing identity."""
    with transaction() as session:
        tenant = session.get(Tenant, kit.tenant_id)
        assert tenant is not None
        identities.import_identity(session, tenant, username, pki.pkcs12(label), PKCS12_PASSPHRASE)


def import_seal(kit: Kit, pki: TestPki, label: str = "Cachet de la mairie") -> str:
    with transaction() as session:
        tenant = session.get(Tenant, kit.tenant_id)
        assert tenant is not None
        return identities.import_seal_pkcs12(session, tenant, label, pki.pkcs12("signer"), PKCS12_PASSPHRASE).id


def set_email(kit: Kit, username: str, email: str) -> None:
    with transaction() as session:
        session.execute(
            update(User).where(User.tenant_id == kit.tenant_id, User.username == username).values(email=email)
        )


def history(folder_id: str) -> list[FolderEvent]:
    with new_session() as session:
        return list(
            session.execute(
                select(FolderEvent).where(FolderEvent.folder_id == folder_id).order_by(FolderEvent.id)
            ).scalars()
        )


def actions(folder_id: str) -> list[str]:
    return [event.action for event in history(folder_id)]


def object_path(key: str) -> Path:
    """Where the local store keeps an object (to hand it to pdfsig, openssl, pyHanko)."""
    path = OBJECTS / nested_name(key)
    assert path.is_file(), key
    return path


def save(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def jobs_of(function: str, folder_id: str) -> list[Job]:
    with new_session() as session:
        rows = session.execute(select(Job).where(Job.function == function)).scalars().all()
        return [job for job in rows if job.arguments.get("folder_id") == folder_id]


def make_due(function: str, folder_id: str) -> None:
    """Time passes: the job waiting for its backoff is due now."""
    with transaction() as session:
        for job in session.execute(select(Job).where(Job.function == function)).scalars():
            if job.arguments.get("folder_id") == folder_id:
                job.next_run_at = utcnow()


def seal_row(identity_id: str) -> SigningIdentity:
    with new_session() as session:
        row = session.get(SigningIdentity, identity_id)
        assert row is not None
        session.expunge(row)
        return row


@pytest.fixture
def use_tsa(use_env: Callable[..., None]) -> Callable[[str | None], None]:
    """The parapheur's timestamp authority for this test (setting ``tsa_url``)."""

    def use(url: str | None) -> None:
        use_env(SOCLE_TSA_URL=url)

    return use


def problem_detail(response: Any) -> str:
    return str(response.json()["detail"])


_SHOWN = re.compile(rb"<([0-9a-fA-F]+)>\s*Tj")


def stamp_lines(path: Path) -> list[str]:
    """The text lines of every visible signature stamp in the PDF (hex strings of Tj, WinAnsi-encoded)."""
    import pikepdf

    lines: list[str] = []
    with pikepdf.open(path) as pdf:
        for obj in pdf.objects:
            if isinstance(obj, pikepdf.Stream) and b"/Tx BMC" in (data := _bytes(obj)):
                lines += [bytes.fromhex(match.decode()).decode("cp1252") for match in _SHOWN.findall(data)]
    return lines


def _bytes(stream: Any) -> bytes:
    try:
        return bytes(stream.read_bytes())
    except Exception:  # an image or a stream pikepdf cannot decode: no text there
        return b""
