"""Who hears about a folder, and how: per-person preference (immediate, digest, none), then mail jobs.

Low level like parapheur.events (never imports the engine): it decides the recipients and either enqueues a
``parapheur.jobs.send_notice`` job (immediate) or keeps a PendingNotice row for the next digest. The mails
themselves are built by parapheur.notifications and sent by socle.mail, in the jobs.

A notice travels as a JSON dict (see :func:`payload`). The one-time link of an external signer is a secret:
it travels encrypted (socle.secrets) in ``sealed_link`` and is decrypted only to write the mail.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from parapheur import circuits
from parapheur.models import (
    Delegation,
    Desk,
    DeskMember,
    Folder,
    NotificationPreference,
    PendingNotice,
    Step,
    insert_once,
)
from socle import messages, secrets
from socle.dates import french_date, french_today
from socle.db import utcnow
from socle.errors import InvalidInput, message
from socle.queue import enqueue
from socle.settings import get_settings

if TYPE_CHECKING:
    from parapheur.notifications import Notice

log = logging.getLogger("parapheur.notify")

Mode = Literal["immediate", "digest", "none"]
IMMEDIATE: Mode = "immediate"
DIGEST: Mode = "digest"
NONE: Mode = "none"
MODES: tuple[Mode, ...] = (IMMEDIATE, DIGEST, NONE)


# ---------------------------------------------------------------------------------------------------------
# Preferences


def get_preference(session: Session, tenant_id: str, username: str) -> Mode:
    """The person's mode; immediate when never chosen."""
    row = _preference_row(session, tenant_id, username)
    return next((mode for mode in MODES if row is not None and row.mode == mode), IMMEDIATE)


def set_preference(session: Session, tenant_id: str, username: str, mode: str) -> Mode:
    """Choose immediate, digest or none. :raises InvalidInput: another mode."""
    chosen = next((known for known in MODES if known == mode), None)
    if chosen is None:
        raise InvalidInput(
            message("mode de notification inconnu : %(mode)s (attendu : %(modes)s)", mode=mode, modes=", ".join(MODES))
        )
    row = _preference_row(session, tenant_id, username)
    if row is None:
        values = {"tenant_id": tenant_id, "username": username, "mode": chosen}
        if insert_once(session, NotificationPreference, values, ("tenant_id", "username")):
            return chosen
        row = _preference_row(session, tenant_id, username)  # written meanwhile by the same choice sent twice
        assert row is not None
    row.mode = chosen
    session.flush()
    return chosen


def _preference_row(session: Session, tenant_id: str, username: str) -> NotificationPreference | None:
    return session.execute(
        select(NotificationPreference).where(
            NotificationPreference.tenant_id == tenant_id, NotificationPreference.username == username
        )
    ).scalar_one_or_none()


# ---------------------------------------------------------------------------------------------------------
# Building notices


def payload(
    kind: str,
    folder: Folder,
    *,
    actor_name: str | None = None,
    on_behalf_of: str | None = None,
    desk_name: str | None = None,
    comment: str | None = None,
    link: str | None = None,
    secret_link: str | None = None,
    at: datetime | None = None,
    delegated: bool = False,
    tenant_name: str | None = None,
    link_expires_at: datetime | None = None,
    step_kind: str | None = None,
) -> dict[str, Any]:
    """A notice as JSON (job argument, PendingNotice.payload); ``secret_link`` is stored encrypted.

    The last four are written only when given: a payload queued before they existed reads the same.
    """
    data: dict[str, Any] = {
        "kind": kind,
        "folder_id": folder.id,
        "folder_title": folder.title,
        "at": (at or utcnow()).isoformat(),
        "actor_name": actor_name,
        "on_behalf_of": on_behalf_of,
        "desk_name": desk_name,
        "comment": comment,
        "due_date": folder.due_date.isoformat() if folder.due_date else None,
        "link": link or folder_link(folder.id),
    }
    if delegated:
        data["delegated"] = True
    if tenant_name is not None:
        data["tenant_name"] = tenant_name
    if link_expires_at is not None:
        data["link_expires_at"] = link_expires_at.isoformat()
    if step_kind is not None:
        data["step_kind"] = step_kind
    if secret_link is not None:
        data["link"] = None
        data["sealed_link"] = secrets.encrypt(secret_link.encode()).decode("ascii")
    return data


def notice_of(data: dict[str, Any]) -> Notice:
    """The notifications.Notice of a payload (the sealed link decrypted)."""
    from parapheur.notifications import Notice

    link = data.get("link")
    if data.get("sealed_link"):
        link = secrets.decrypt(data["sealed_link"].encode("ascii")).decode()
    return Notice(
        kind=data["kind"],
        folder_id=data["folder_id"],
        folder_title=data["folder_title"],
        at=datetime.fromisoformat(data["at"]),
        actor_name=data.get("actor_name"),
        on_behalf_of=data.get("on_behalf_of"),
        desk_name=data.get("desk_name"),
        comment=data.get("comment"),
        due_date=date.fromisoformat(data["due_date"]) if data.get("due_date") else None,
        link=link,
        delegated=bool(data.get("delegated")),
        tenant_name=data.get("tenant_name"),
        link_expires_at=datetime.fromisoformat(data["link_expires_at"]) if data.get("link_expires_at") else None,
        step_kind=data.get("step_kind"),
    )


def public_url() -> str:
    """The address people reach the kit at (setting ``public_url``), without a trailing slash; may be empty."""
    return (get_settings().public_url or "").rstrip("/")


def folder_link(folder_id: str) -> str | None:
    base = public_url()
    return f"{base}/dossiers/{folder_id}" if base else None  # the folder's page, not the API's JSON


# ---------------------------------------------------------------------------------------------------------
# Recipients


def desk_names(session: Session, desk_ids: list[str]) -> dict[str, str]:
    if not desk_ids:
        return {}
    rows = session.execute(select(Desk.id, Desk.name).where(Desk.id.in_(desk_ids))).all()
    return {row.id: row.name for row in rows}


def members(session: Session, desk_ids: list[str]) -> list[str]:
    if not desk_ids:
        return []
    return sorted(set(session.execute(select(DeskMember.username).where(DeskMember.desk_id.in_(desk_ids))).scalars()))


def delegate_desks(session: Session, folder: Folder, desk_ids: list[str], at: datetime | None = None) -> list[str]:
    """Desks holding, right now, a delegation from one of ``desk_ids`` that covers this folder's sous-type."""
    if not desk_ids:
        return []
    now = at or utcnow()
    rows = session.execute(
        select(Delegation).where(
            Delegation.tenant_id == folder.tenant_id,
            Delegation.from_desk_id.in_(desk_ids),
            Delegation.starts_at <= now,
            Delegation.ends_at > now,
        )
    ).scalars()
    return sorted(
        {row.to_desk_id for row in rows if not row.subtype_ids or (folder.subtype_id in (row.subtype_ids or []))}
    )


# ---------------------------------------------------------------------------------------------------------
# Sending (through jobs) or keeping for the digest


def deliver(session: Session, tenant_id: str, usernames: list[str], data: dict[str, Any], key: str) -> None:
    """Give ``data`` to each person by their preference. ``key`` makes it once each (a job run twice)."""
    for username in usernames:
        mode = get_preference(session, tenant_id, username)
        if mode == IMMEDIATE:
            enqueue(
                session,
                messages.PARAPHEUR_SEND_NOTICE,
                key=f"notice:{key}:{username}",
                tenant_id=tenant_id,
                recipient=username,
                notice=data,
            )
        elif mode == DIGEST and not _already_pending(session, tenant_id, username, data, key):
            session.add(
                PendingNotice(
                    tenant_id=tenant_id,
                    username=username,
                    folder_id=data["folder_id"],
                    kind=data["kind"],
                    payload={**data, "key": key},
                )
            )


def _already_pending(session: Session, tenant_id: str, username: str, data: dict[str, Any], key: str) -> bool:
    rows = session.execute(
        select(PendingNotice.payload).where(
            PendingNotice.tenant_id == tenant_id,
            PendingNotice.username == username,
            PendingNotice.folder_id == data["folder_id"],
            PendingNotice.kind == data["kind"],
        )
    ).scalars()
    return any(row.get("key") == key for row in rows)


def to_act(session: Session, folder: Folder, step: Step) -> None:
    """ "À traiter" notices for the members of the step's desks, and of the desks replacing them today."""
    names = desk_names(session, step.desk_ids)
    started = (step.started_at or utcnow()).isoformat()
    for desk_id in step.desk_ids:
        data = payload("to_act", folder, desk_name=names.get(desk_id), step_kind=step.kind)
        key = f"to_act:{step.id}:{started}:{desk_id}"
        deliver(session, folder.tenant_id, members(session, [desk_id]), data, key)
        substitutes = delegate_desks(session, folder, [desk_id])
        if substitutes:
            # The delegate hears it too, told whom it replaces (a sentence of its own, not a quoted comment).
            data = payload("to_act", folder, desk_name=names.get(desk_id), delegated=True, step_kind=step.kind)
            deliver(session, folder.tenant_id, members(session, substitutes), data, f"{key}:delegation")


def folder_ended(session: Session, folder: Folder, actor_name: str | None, on_behalf_of: str | None) -> None:
    """ "Terminé" or "rejeté" notice to the folder's creator."""
    if folder.status == "completed":
        data = payload("completed", folder, actor_name=actor_name, on_behalf_of=on_behalf_of)
    elif folder.status == "rejected":
        data = payload(
            "rejected", folder, actor_name=actor_name, on_behalf_of=on_behalf_of, comment=folder.rejection_reason
        )
    else:
        return  # withdrawn: its creator did it, nobody else waits for it
    deliver(session, folder.tenant_id, [folder.created_by], data, f"{data['kind']}:{folder.id}")


def external_signature(session: Session, folder: Folder, step: Step, link: str) -> None:
    """The mail with the one-time link, to the external signer (always immediate: no preference)."""
    if not step.external_email:
        log.warning("external step %s of folder %s has no e-mail address", step.id, folder.id)
        return
    # Named in full: the signer does not know the kit, and a mail that names nobody looks like phishing.
    data = payload(
        "external_signature",
        folder,
        actor_name=_display_name(session, folder.tenant_id, folder.created_by),
        desk_name=step.external_name,
        secret_link=link,
        tenant_name=_tenant_name(session, folder.tenant_id),
        link_expires_at=step.token_expires_at,
    )
    enqueue(
        session,
        messages.PARAPHEUR_SEND_NOTICE,
        key=f"notice:external:{step.id}:{step.token_hash}",
        tenant_id=folder.tenant_id,
        recipient=step.external_email,
        notice=data,
    )


# ---------------------------------------------------------------------------------------------------------
# Late folders and digests


def late_folders(session: Session, tenant_id: str, today: date) -> list[Folder]:
    return list(
        session.execute(
            select(Folder).where(Folder.tenant_id == tenant_id, Folder.status == "in_progress", Folder.due_date < today)
        ).scalars()
    )


def notice_late(session: Session, tenant_id: str, today: date) -> int:
    """ "En retard" notices (once a day per folder and person) to whoever the current step waits for.

    A step no desk acts on (an external signature, a seal the server failed to apply) reminds the folder's
    creator, as its end does: they are the one who can remind the signer, or warn an administrator.
    """
    count = 0
    for folder in late_folders(session, tenant_id, today):
        step = next((s for s in folder.steps if s.position == folder.current_step), None)
        if step is None:
            continue
        key = f"late:{folder.id}:{today.isoformat()}"
        if not step.desk_ids:
            data = payload("late", folder, comment=_deskless_wait(folder, step))
            deliver(session, tenant_id, [folder.created_by], data, key)
            count += 1
            continue
        # Only the desks still awaited, as in their "late" box: one that already acted has nothing left to do.
        acted = {
            act.on_behalf_of_desk_id or act.desk_id
            for act in step.acts
            if act.undone_at is None and act.action in circuits.COMPLETING_ACTS
        }
        waiting = [desk_id for desk_id in step.desk_ids if desk_id not in acted]
        desks = waiting + delegate_desks(session, folder, waiting)
        usernames = members(session, desks)
        if not usernames:
            # A desk left without active members: nobody would know the folder waits, so its creator is told.
            data = payload("late", folder, comment=_EMPTY_DESK)
            deliver(session, tenant_id, [folder.created_by], data, key)
            count += 1
            continue
        deliver(session, tenant_id, usernames, payload("late", folder), key)
        count += len(usernames)
    return count


_EMPTY_DESK = (
    "Le bureau qui doit agir n'a plus aucun membre actif : demandez à l'administrateur d'y affecter quelqu'un, "
    "ou retirez le dossier."
)


def _deskless_wait(folder: Folder, step: Step) -> str:
    """What a late folder waits for when no desk can act on it, told to its creator."""
    if step.kind == "external_signature":
        who = step.external_name or step.external_email or ""
        if step.token_expires_at is not None and step.token_expires_at <= utcnow():
            # Reminding the signer would be useless: their link no longer opens.
            expired = french_date(step.token_expires_at).strftime("%d/%m/%Y")
            return (
                f"Il attend la signature externe de {who} ({step.external_email or '?'}), dont le lien a expiré "
                f"le {expired} : renvoyez-lui un lien depuis la page du dossier, ou retirez le dossier."
            )
        return (
            f"Il attend la signature externe de {who} ({step.external_email or '?'}) : relancez le signataire "
            "(ou renvoyez-lui le lien depuis la page du dossier), ou retirez le dossier."
        )
    if folder.error:
        return f"Il attend le cachet serveur, qui a échoué ({folder.error}) : prévenez l'administrateur."
    return "Il attend le cachet serveur : prévenez l'administrateur s'il n'est pas apposé sous peu."


def pending_usernames(session: Session, tenant_id: str) -> list[str]:
    return sorted(
        set(
            session.execute(
                select(PendingNotice.username).where(
                    PendingNotice.tenant_id == tenant_id, PendingNotice.sent_at.is_(None)
                )
            ).scalars()
        )
    )


def pending_for(session: Session, tenant_id: str, username: str) -> list[PendingNotice]:
    return list(
        session.execute(
            select(PendingNotice)
            .where(
                PendingNotice.tenant_id == tenant_id,
                PendingNotice.username == username,
                PendingNotice.sent_at.is_(None),
            )
            .order_by(PendingNotice.created_at)
            .with_for_update()
        ).scalars()
    )


# ---------------------------------------------------------------------------------------------------------
# Sending (in jobs)


def send_notice(tenant_id: str, recipient: str, data: dict[str, Any]) -> None:
    """Mail one notice, once. ``recipient``: a username (its current address is used) or an external address.

    The notice is noted as sent (a PendingNotice row already ``sent_at``, keyed by the notice's digest) in the
    transaction that sends it: a job run again after that commit (its worker died before the queue recorded it
    done) finds the note and sends nothing. A mail that fails rolls the note back, for the retry.

    :raises MailError: from socle.mail; retryable ones make the kernel retry the job.
    """
    from parapheur.notifications import notice_mail
    from socle import mail
    from socle.db import transaction

    key = _sent_key(tenant_id, recipient, data)
    with transaction() as session:
        if _already_sent(session, tenant_id, data, key):
            return
        address = recipient if "@" in recipient else _address(session, tenant_id, recipient)
        if address is None:
            log.info("no e-mail address for %s: notice %s not sent", recipient, data.get("kind"))
            return
        session.add(
            PendingNotice(
                tenant_id=tenant_id,
                username=recipient[:100],
                folder_id=data["folder_id"],
                kind=data["kind"],
                payload={"key": key},  # no notice content: the sealed link of an external signer stays in its job
                sent_at=utcnow(),
            )
        )
        # Written at the commit, after the mail went: no write lock held while the SMTP server answers.
        mail.send(notice_mail((address,), notice_of(data)))


def _sent_key(tenant_id: str, recipient: str, data: dict[str, Any]) -> str:
    """The identity of one notice to one recipient: the same job's arguments give the same key."""
    import hashlib
    import json

    canonical = json.dumps([tenant_id, recipient, data], sort_keys=True, ensure_ascii=False)
    return "sent:" + hashlib.sha256(canonical.encode()).hexdigest()


def _already_sent(session: Session, tenant_id: str, data: dict[str, Any], key: str) -> bool:
    rows = session.execute(
        select(PendingNotice.payload).where(
            PendingNotice.tenant_id == tenant_id,
            PendingNotice.folder_id == data["folder_id"],
            PendingNotice.kind == data["kind"],
            PendingNotice.sent_at.is_not(None),
        )
    ).scalars()
    return any((row or {}).get("key") == key for row in rows)


def _display_name(session: Session, tenant_id: str, username: str) -> str | None:
    """The person's name as others read it (None for an unknown account)."""
    from socle.models import User

    return session.execute(
        select(User.display_name).where(User.tenant_id == tenant_id, User.username == username)
    ).scalar_one_or_none()


def _tenant_name(session: Session, tenant_id: str) -> str | None:
    """The collectivité's name, as its users and the external signing page show it."""
    from socle.models import Tenant

    tenant = session.get(Tenant, tenant_id)
    return tenant.name if tenant is not None else None


def _address(session: Session, tenant_id: str, username: str) -> str | None:
    from socle.models import User

    return session.execute(
        select(User.email).where(User.tenant_id == tenant_id, User.username == username, User.active)
    ).scalar_one_or_none()


def send_late_and_digests(tenant_id: str, today: date | None = None) -> tuple[int, int]:
    """Late notices first (so that they are part of the digest), then one digest per person; once each.

    :returns: (late notices given, digest mails sent).
    """
    from socle.db import transaction

    with transaction() as session:
        late = notice_late(session, tenant_id, today or french_today())  # the Paris date, as the "late" boxes
    with transaction() as session:
        usernames = pending_usernames(session, tenant_id)
    sent = sum(1 for username in usernames if send_digest(tenant_id, username))
    return late, sent


def send_digest(tenant_id: str, username: str) -> bool:
    """One digest mail with the person's pending notices, marked sent in the same transaction.

    A mail failure leaves them pending (the transaction rolls back) for the next run.
    """
    from parapheur.notifications import digest_mail
    from socle import mail
    from socle.db import transaction

    with transaction() as session:
        rows = pending_for(session, tenant_id, username)
        if not rows:
            return False
        address = _address(session, tenant_id, username)
        if address is not None:
            mail.send(digest_mail((address,), [notice_of(row.payload) for row in rows]))
        now = utcnow()
        for row in rows:
            row.sent_at = now
        return address is not None
