"""Signing identities kept by the parapheur: users' PKCS#12 files and the tenant's server seals (cachets).

Secrets (PKCS#12 file, passphrase, PIN) are stored encrypted with :mod:`socle.secrets` and decrypted only
to load the key; a loaded identity is kept per process (loading a key costs far more than signing with it).
Nothing secret is ever logged, audited or returned.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from threading import Lock

from sqlalchemy import select
from sqlalchemy.orm import Session

from parapheur import pades
from parapheur.models import Folder, SigningIdentity, Step, Subtype
from socle import audit, secrets
from socle.errors import Conflict, InvalidInput, NotFound, message
from socle.models import Tenant, User
from socle.text import check_text

USER, SEAL = "user", "seal"
_CACHE_SIZE = 64
_LOADED: OrderedDict[tuple[str, str], pades.SigningIdentity] = OrderedDict()
_LOADED_LOCK = Lock()


# ---------------------------------------------------------------------------------------------------------
# Importing


def import_identity(
    session: Session,
    tenant: Tenant,
    username: str,
    pkcs12: bytes,
    passphrase: bytes,
    *,
    stamp_image: bytes | None = None,
    actor: str = "system",
) -> SigningIdentity:
    """Keep a user's PKCS#12 and its passphrase, encrypted, so that the server can sign on the user's act.

    :param stamp_image: optional PNG/JPEG drawn in the user's visible stamps.
    :param actor: who imports it, for the audit log (the CLI: "system").
    :raises NotFound: unknown user. :raises InvalidInput: unreadable PKCS#12, wrong passphrase, bad image.
    """
    user = session.execute(
        select(User).where(User.tenant_id == tenant.id, User.username == username)
    ).scalar_one_or_none()
    if user is None:
        raise NotFound(message("utilisateur « %(username)s » inconnu", username=username))
    loaded = _open_pkcs12(pkcs12, passphrase)
    _check_image(stamp_image)
    row = session.execute(
        select(SigningIdentity).where(SigningIdentity.tenant_id == tenant.id, SigningIdentity.username == username)
    ).scalar_one_or_none()
    if row is None:
        row = SigningIdentity(tenant_id=tenant.id, username=username, purpose=USER)
        session.add(row)
    _fill_pkcs12(row, loaded, pkcs12, passphrase, stamp_image)
    session.flush()
    _audit(session, tenant.id, "parapheur.identity.imported", "user", user.id, loaded.subject_name, actor)
    return row


def import_seal_pkcs12(
    session: Session,
    tenant: Tenant,
    label: str,
    pkcs12: bytes,
    passphrase: bytes,
    *,
    stamp_image: bytes | None = None,
    actor: str = "system",
) -> SigningIdentity:
    """Keep (or replace) the tenant's seal identity named ``label`` from a PKCS#12 file.

    :raises InvalidInput: unreadable PKCS#12, wrong passphrase, bad image, empty label.
    """
    loaded = _open_pkcs12(pkcs12, passphrase)
    _check_image(stamp_image)
    row = _seal_row(session, tenant.id, label)
    _fill_pkcs12(row, loaded, pkcs12, passphrase, stamp_image)
    session.flush()
    _audit(session, tenant.id, "parapheur.seal.imported", "seal", row.id, loaded.subject_name, actor)
    return row


def import_seal_pkcs11(
    session: Session,
    tenant: Tenant,
    label: str,
    *,
    module_path: str,
    token_label: str,
    pin: str,
    key_label: str | None = None,
    stamp_image: bytes | None = None,
) -> SigningIdentity:
    """Keep (or replace) the tenant's seal identity ``label`` held by a PKCS#11 token (HSM, card).

    The token is opened once now, to check the PIN and read the certificate; the PIN is kept encrypted.
    :raises InvalidInput: module, token or key not found, wrong PIN, bad image.
    """
    from parapheur import tokens

    _check_image(stamp_image)
    try:
        with tokens.open_pkcs11_identity(module_path, token_label, pin, key_label) as loaded:
            subject, certificate = loaded.subject_name, loaded.certificate_der
    except pades.IdentityError as exc:
        raise InvalidInput(str(exc)) from None
    row = _seal_row(session, tenant.id, label)
    row.kind, row.subject, row.certificate_der, row.stamp_image = "pkcs11", subject, certificate, stamp_image
    row.pkcs12_encrypted = row.passphrase_encrypted = None
    row.pkcs11_module, row.pkcs11_token, row.pkcs11_key = module_path, token_label, key_label
    row.pin_encrypted = secrets.encrypt(pin.encode())
    session.flush()
    _audit(session, tenant.id, "parapheur.seal.imported", "seal", row.id, subject)
    return row


def _seal_row(session: Session, tenant_id: str, label: str) -> SigningIdentity:
    label = label.strip()
    if not label:
        raise InvalidInput(message("le nom du cachet est obligatoire"))
    check_text(label, message("nom du cachet"))  # shown in stamps; PostgreSQL refuses a NUL
    row = session.execute(
        select(SigningIdentity).where(
            SigningIdentity.tenant_id == tenant_id, SigningIdentity.purpose == SEAL, SigningIdentity.label == label
        )
    ).scalar_one_or_none()
    if row is None:
        row = SigningIdentity(tenant_id=tenant_id, purpose=SEAL, label=label)
        session.add(row)
    return row


def _open_pkcs12(pkcs12: bytes, passphrase: bytes) -> pades.SigningIdentity:
    try:
        return pades.SigningIdentity.from_pkcs12(pkcs12, passphrase)
    except pades.IdentityError as exc:
        raise InvalidInput(str(exc)) from None


def _fill_pkcs12(
    row: SigningIdentity, loaded: pades.SigningIdentity, pkcs12: bytes, passphrase: bytes, image: bytes | None
) -> None:
    row.kind, row.subject, row.certificate_der, row.stamp_image = (
        "pkcs12",
        loaded.subject_name,
        loaded.certificate_der,
        image,
    )
    row.pkcs12_encrypted, row.passphrase_encrypted = secrets.encrypt(pkcs12), secrets.encrypt(passphrase)
    row.pkcs11_module = row.pkcs11_token = row.pkcs11_key = None
    row.pin_encrypted = None


def _check_image(image: bytes | None) -> None:
    if image is None:
        return
    try:
        pades.check_stamp_image(image)  # the very check the stamp will make: refuse now, not at signing time
    except pades.PdfError as exc:
        raise InvalidInput(str(exc)) from None


def _audit(
    session: Session,
    tenant_id: str,
    action: str,
    object_type: str,
    object_id: str,
    subject: str,
    actor: str = "system",
) -> None:
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details={"subject": subject},
    )


# ---------------------------------------------------------------------------------------------------------
# Listing and removing


def list_rows(session: Session, tenant_id: str, purpose: str | None = None) -> list[SigningIdentity]:
    """The tenant's identities (users' then seals', by name), or those of one ``purpose`` (user, seal)."""
    query = select(SigningIdentity).where(SigningIdentity.tenant_id == tenant_id)
    if purpose is not None:
        query = query.where(SigningIdentity.purpose == purpose)
    rows = session.execute(query).scalars()
    return sorted(rows, key=lambda row: (row.purpose != USER, row.username or row.label or "", row.id))


def remove_user_identity(session: Session, tenant_id: str, username: str, *, actor: str) -> None:
    """Remove a user's identity (the user can then no longer sign on the server); its cached key is closed.

    :raises NotFound: the user has none.
    """
    row = session.execute(
        select(SigningIdentity).where(
            SigningIdentity.tenant_id == tenant_id,
            SigningIdentity.purpose == USER,
            SigningIdentity.username == username,
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(message("aucune identité de signature enregistrée pour « %(username)s »", username=username))
    _remove(session, row, "parapheur.identity.removed", "user", actor)


def remove_seal(session: Session, tenant_id: str, identity_id: str, *, actor: str) -> None:
    """Remove one of the tenant's seals, unless a sous-type, or a folder on its way, still uses it.

    :raises NotFound: unknown id, or another tenant's.
    :raises Conflict: a sous-type names it, or a folder in progress still has a seal step it would sign.
    """
    row = session.get(SigningIdentity, identity_id)
    if row is None or row.tenant_id != tenant_id or row.purpose != SEAL:
        raise NotFound(message("cachet %(identity_id)s introuvable", identity_id=identity_id))
    users = session.execute(
        select(Subtype.name).where(Subtype.tenant_id == tenant_id, Subtype.seal_identity_id == row.id)
    ).scalars()
    names = sorted(users)
    if names:
        raise Conflict(
            message(
                "le cachet « %(row_label)s » est utilisé par le(s) sous-type(s) : %(names)s",
                row_label=row.label,
                names=", ".join(names),
            )
        )
    waiting = folders_awaiting_seal(session, row)
    if waiting:
        raise Conflict(
            message(
                "le cachet « %(row_label)s » doit encore sceller %(count)s dossier(s) en cours : %(titles)s ; "
                "attendez la fin de leur circuit, ou désignez un autre cachet dans leur sous-type (importez-le "
                "d'abord au besoin) : leur étape de cachet prendra celui-là",
                row_label=row.label,
                count=len(waiting),
                titles=", ".join(f"« {title} »" for title in waiting[:10]) + (" …" if len(waiting) > 10 else ""),
            ),
            folders=len(waiting),
        )
    _remove(session, row, "parapheur.seal.removed", "seal", actor)


def folders_awaiting_seal(session: Session, row: SigningIdentity) -> list[str]:
    """Titles of the folders in progress whose seal step, not yet done, this seal would sign.

    A folder keeps its own copy of the circuit, but its seal step signs with the identity its sous-type names
    *when the step starts* (parapheur.seal.seal_identity): the sous-type's seal, else the tenant's only one.
    A sous-type that dropped its seal step no longer names the seal, yet its folders sent before still need it.
    """
    rows = session.execute(
        select(Folder.id, Folder.title, Subtype.seal_identity_id)
        .join(Step, Step.folder_id == Folder.id)
        .outerjoin(Subtype, Subtype.id == Folder.subtype_id)
        .where(
            Folder.tenant_id == row.tenant_id,
            Folder.status == "in_progress",
            Step.kind == "seal",
            Step.status.in_(("pending", "current")),
        )
        .distinct()
        .order_by(Folder.title)
    ).all()
    only_seal = len(seal_rows(session, row.tenant_id)) == 1
    return [title for _id, title, named in rows if named == row.id or (named is None and only_seal)]


def _remove(session: Session, row: SigningIdentity, action: str, object_type: str, actor: str) -> None:
    object_id = row.id
    if row.purpose == USER:
        user = session.execute(
            select(User.id).where(User.tenant_id == row.tenant_id, User.username == row.username)
        ).scalar_one_or_none()
        object_id = user or row.id
    _audit(session, row.tenant_id, action, object_type, object_id, row.subject, actor)
    forget(row)
    session.delete(row)
    session.flush()


# ---------------------------------------------------------------------------------------------------------
# Loading


def user_identity_row(session: Session, tenant_id: str, username: str) -> SigningIdentity:
    """The user's identity row. :raises Conflict: none registered."""
    row = session.execute(
        select(SigningIdentity).where(SigningIdentity.tenant_id == tenant_id, SigningIdentity.username == username)
    ).scalar_one_or_none()
    if row is None:
        raise Conflict(message("aucune identité de signature n'est enregistrée pour vous"))
    return row


def identity_row(session: Session, tenant_id: str, identity_id: str) -> SigningIdentity:
    """An identity of this tenant by id. :raises Conflict: unknown (a sous-type naming a removed seal)."""
    row = session.get(SigningIdentity, identity_id)
    if row is None or row.tenant_id != tenant_id:
        raise Conflict(message("l'identité de signature (cachet) configurée est introuvable"))
    return row


def seal_rows(session: Session, tenant_id: str) -> list[SigningIdentity]:
    return list(
        session.execute(
            select(SigningIdentity)
            .where(SigningIdentity.tenant_id == tenant_id, SigningIdentity.purpose == SEAL)
            .order_by(SigningIdentity.label)
        ).scalars()
    )


def load_row(row: SigningIdentity) -> pades.SigningIdentity:
    """The loaded key of an identity row, cached per process and keyed by its certificate and secrets.

    A stale entry of the same row (imported again since) and the entries pushed out of the cache are closed:
    a token identity keeps its login open until then.
    :raises InvalidInput: the stored key cannot be opened any more (token missing, PIN changed…).
    """
    cache_key = (row.id, _fingerprint(row))
    with _LOADED_LOCK:
        if cache_key in _LOADED:
            _LOADED.move_to_end(cache_key)
            return _LOADED[cache_key]
        stale = [_LOADED.pop(key) for key in [key for key in _LOADED if key[0] == row.id]]
    # Closed before opening: a token keeps one login per process, checked against the PIN that opened it.
    for identity in stale:
        _close(identity)
    opened = _open(row)
    with _LOADED_LOCK:
        identity = _LOADED.setdefault(cache_key, opened)  # another thread may have opened it meanwhile
        _LOADED.move_to_end(cache_key)
        dropped = [_LOADED.popitem(last=False)[1] for _ in range(len(_LOADED) - _CACHE_SIZE)]
    for unused in ([opened] if identity is not opened else []) + dropped:
        _close(unused)
    return identity


def forget(row: SigningIdentity) -> None:
    """Drop and close the cached keys of ``row`` (a token identity logs out); the next use opens it again."""
    with _LOADED_LOCK:
        dropped = [_LOADED.pop(key) for key in [key for key in _LOADED if key[0] == row.id]]
    for identity in dropped:
        _close(identity)


def _close(identity: pades.SigningIdentity) -> None:
    close = getattr(identity, "close", None)  # only token identities hold a session (tokens is imported lazily)
    if close is not None:
        close()


def _fingerprint(row: SigningIdentity) -> str:
    parts = [
        row.certificate_der,
        row.pkcs12_encrypted or b"",
        row.pin_encrypted or b"",
        (row.pkcs11_token or "").encode(),
    ]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def _open(row: SigningIdentity) -> pades.SigningIdentity:
    try:
        if row.kind == "pkcs11":
            from parapheur import tokens

            if not (row.pkcs11_module and row.pkcs11_token and row.pin_encrypted):
                raise InvalidInput(message("l'identité PKCS#11 enregistrée est incomplète"))
            return tokens.open_pkcs11_identity(
                row.pkcs11_module, row.pkcs11_token, secrets.decrypt(row.pin_encrypted).decode(), row.pkcs11_key
            )
        if row.pkcs12_encrypted is None or row.passphrase_encrypted is None:
            raise InvalidInput(message("l'identité PKCS#12 enregistrée est incomplète"))
        return pades.SigningIdentity.from_pkcs12(
            secrets.decrypt(row.pkcs12_encrypted), secrets.decrypt(row.passphrase_encrypted)
        )
    except pades.IdentityError as exc:
        raise InvalidInput(message("identité de signature inutilisable : %(exc)s", exc=exc)) from None
