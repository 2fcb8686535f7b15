"""Mails that tell people what the prefecture and the trésorerie did, so that nothing goes unnoticed.

Four notices, each a ``interop.jobs.send_notice`` job keyed by the event and the recipient (asked twice: one job)
and sent once (:func:`send_notice` writes an :class:`InteropNotice` row in the transaction that sends it):

- ``refused``: an act refused by the prefecture's platform, a PES refused by the accountant — to who started the
  flow (to the administrators when they have no address);
- ``error``: a flow stopped in error — to who started it and to the collectivité's administrators;
- ``letter``: a new letter of the prefecture about an act — to who started its flow (the administrators for an act
  sent by another tool);
- ``foreign``: a document of another collectivité that S²LOW handed to this one's connector, refused — to the
  administrators.

Each mail names the act (number and subject) or the PES, says what happened in French, with French dates, and links
to the flow's page of the web interface, ``/flux/{id}`` (the connector's page for ``foreign``).
The addresses are read when the mail leaves. Like the parapheur's notices (parapheur.notify), never imported.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from interop.models import Flow, InteropNotice
from socle import messages
from socle.dates import spelled_date, spelled_datetime
from socle.db import utcnow
from socle.mail import Mail
from socle.models import User
from socle.queue import enqueue
from socle.settings import get_settings

log = logging.getLogger("interop.notices")

SUBJECT_PREFIX = "[Préfecture et trésorerie] "
FOOTER = "Ce message est envoyé automatiquement par socle ; merci de ne pas y répondre."
# The flow's page in the web interface, for everyone who may read the flow (and the connector's, administrators').
FLOW_PAGE = "/flux/{flow_id}"
CONNECTOR_PAGE = "/admin/connecteurs/{name}"
# The prefecture's letters waiting on the TdT (interop.ui_letters): where a letter about an act sent outside socle,
# which has no flow, is read and answered.
LETTERS_PAGE = "/flux/courriers"
# The API's hint at the end of a flow's error (interop.flows._fail): a mail's reader resumes from the page.
_API_HINT = re.compile(r"\s*Reprendre : POST /interop/\S+\s*$")
# What a letter's text is, by its type (2 courrier simple has none).
_LETTER_TEXT = {"3": "Pièces demandées", "4": "Observations", "5": "Nature de l'illégalité"}


# ---------------------------------------------------------------------------------------------------------
# Asking (in the caller's transaction)


def flow_stopped(session: Session, flow: Flow, reason: str, *, refused: bool) -> None:
    """The flow stopped in error: its starter hears it (``refused``: the platform refused the act or the PES), and the
    administrators for any other error. Once per stop (the flow's step number)."""
    about = describe(session, flow)
    reason = _API_HINT.sub("", reason).rstrip(". ")
    key = f"{'refused' if refused else 'error'}:{flow.id}:{flow.steps}"
    data = about | {"kind": "refused" if refused else "error", "reason": reason[:1500], "state": flow.state}
    starter = _starter(session, flow)
    if refused:
        _deliver(session, flow.tenant_id, starter or _admins(session, flow.tenant_id), data, key)
        return
    _deliver(session, flow.tenant_id, list(dict.fromkeys([*starter, *_admins(session, flow.tenant_id)])), data, key)


def letter_received(
    session: Session, tenant_id: str, flow: Flow | None, connector_id: str, letter: dict[str, Any], actor: str
) -> None:
    """A new letter of the prefecture: who started the act's flow hears it, unless they fetched it themselves; the
    administrators, for an act no flow of the collectivité sent. Once per letter."""
    data: dict[str, Any] = {
        "kind": "letter",
        "letter_label": str(letter.get("label") or "courrier"),
        "letter_type": str(letter.get("type") or ""),
        "letter_date": str(letter.get("date") or ""),
        "letter_text": str(letter.get("text") or "")[:1500],
        "act_id": str(letter.get("act_id") or ""),
    }
    if flow is not None:
        if actor == flow.created_by:
            return  # they read it as they fetched it
        data |= describe(session, flow)
        recipients = _starter(session, flow) or _admins(session, tenant_id)
    else:
        recipients = _admins(session, tenant_id)
    _deliver(session, tenant_id, recipients, data, f"letter:{connector_id}:{letter.get('id')}")


def foreign_refused(
    session: Session,
    tenant_id: str,
    connector_name: str,
    connector_id: str,
    what: str,
    remote_id: str,
    siren: str,
    expected: str,
) -> None:
    """A document of another collectivité was refused (not filed, not marked read): the administrators hear it, once
    per document (:param what: its French name, « courrier de la préfecture », « PES Retour »…)."""
    data = {
        "kind": "foreign",
        "connector": connector_name,
        "what": what,
        "remote_id": remote_id,
        "siren": siren,
        "expected": expected,
        "link": _link(CONNECTOR_PAGE.format(name=connector_name)),
    }
    key = f"foreign:{connector_id}:{what}:{remote_id}"
    _deliver(session, tenant_id, _admins(session, tenant_id), data, key)


def describe(session: Session, flow: Flow) -> dict[str, Any]:
    """What a mail says of a flow: what it carries (« l'acte n° … « … » », « le PES « … » »), a short title for
    the subject, who started it and when, and the link to its page."""
    metadata, first = flow.flow_metadata or {}, (flow.documents or [{}])[0]
    filename = _one_line(str(first.get("filename") or "document"))
    if flow.kind == "actes":
        number, subject = str(metadata.get("numero") or "?"), _one_line(str(metadata.get("objet") or ""))
        what = f"l'acte n° {number} « {subject} »" if subject else f"l'acte n° {number}"
        title = f"acte n° {number} — {subject}" if subject else f"acte n° {number}"
    elif flow.kind == "helios":
        what, title = f"le PES « {filename} »", f"PES {filename}"
    elif flow.kind == "signature":
        what, title = f"le document à signer « {filename} »", f"document à signer {filename}"
    else:
        what, title = f"l'envoi de « {filename} »", f"envoi de {filename}"
    return {
        "flow_id": flow.id,
        "flow_kind": flow.kind,
        "what": what,
        "title": title[:200],
        "started_by": _display_name(session, flow.tenant_id, _username(flow.created_by)) or "le système",
        "started_at": (flow.created_at or utcnow()).isoformat(),
        "link": _link(FLOW_PAGE.format(flow_id=flow.id)),
    }


def _deliver(session: Session, tenant_id: str, usernames: list[str], data: dict[str, Any], key: str) -> None:
    for username in usernames:
        notice = {**data, "key": f"{key}:{username}"}
        enqueue(
            session,
            messages.INTEROP_SEND_NOTICE,
            key=f"interop.notice:{key}:{username}"[:300],
            tenant_id=tenant_id,
            recipient=username,
            notice=notice,
        )


def _username(actor: str) -> str | None:
    return actor.removeprefix("user:") if actor.startswith("user:") else None


def _starter(session: Session, flow: Flow) -> list[str]:
    """Who started the flow, if a user still active with an address (else nobody would read the mail)."""
    username = _username(flow.created_by)
    if username is None or _address(session, flow.tenant_id, username) is None:
        return []
    return [username]


def _admins(session: Session, tenant_id: str) -> list[str]:
    rows = session.execute(
        select(User.username, User.roles).where(User.tenant_id == tenant_id, User.active.is_(True))
    ).all()
    return sorted(username for username, roles in rows if "admin" in (roles or []))


def _address(session: Session, tenant_id: str, username: str) -> str | None:
    return session.execute(
        select(User.email).where(User.tenant_id == tenant_id, User.username == username, User.active.is_(True))
    ).scalar_one_or_none()


def _display_name(session: Session, tenant_id: str, username: str | None) -> str | None:
    if username is None:
        return None
    return session.execute(
        select(User.display_name).where(User.tenant_id == tenant_id, User.username == username)
    ).scalar_one_or_none()


def _link(path: str) -> str:
    base = (get_settings().public_url or "").rstrip("/")
    return f"{base}{path}" if base else path


# ---------------------------------------------------------------------------------------------------------
# Sending (the job)


def send_notice(tenant_id: str, recipient: str, notice: dict[str, Any]) -> None:
    """Mail one notice to one user, once: the row that says so is written in the transaction that sends it, so that
    the job run again (its worker died after the mail left) finds it and sends nothing.

    :raises MailError: from socle.mail; retryable ones make the kernel retry the job.
    """
    from socle import mail
    from socle.db import transaction

    key = str(notice["key"])[:300]
    with transaction() as session:
        if session.execute(select(InteropNotice.id).where(InteropNotice.key == key)).first() is not None:
            return
        address = _address(session, tenant_id, recipient)
        if address is None:
            log.info("no e-mail address for %s: notice %s not sent", recipient, notice.get("kind"))
            return
        session.add(
            InteropNotice(
                tenant_id=tenant_id,
                key=key,
                kind=str(notice.get("kind") or "")[:30],
                recipient=recipient[:254],
                flow_id=notice.get("flow_id"),
            )
        )
        session.flush()
        # Written at the commit, after the mail went: no write lock held while the SMTP server answers.
        mail.send(notice_mail((address,), notice))


def notice_mail(to: tuple[str, ...], notice: dict[str, Any]) -> Mail:
    """The mail of one notice, in French.

    :raises ValueError: an unknown kind of notice.
    """
    kind = notice.get("kind")
    started = _when(notice.get("started_at"))
    what = str(notice.get("what") or "le flux")
    title = _one_line(str(notice.get("title") or ""))
    link_label = "Le flux et son historique"
    if kind == "refused":
        subject = f"Refusé : {title}"
        paragraphs = [
            f"{_capital(what)}, transmis le {started} par {notice.get('started_by')}, a été refusé : "
            f"{notice.get('reason')}.",
            "Corrigez ce qui est en cause, puis transmettez-le de nouveau.",
        ]
    elif kind == "error":
        subject = f"Flux en erreur : {title}"
        paragraphs = [
            f"Le flux de {what}, démarré le {started} par {notice.get('started_by')}, s'est arrêté en erreur à "
            f"l'étape « {notice.get('state')} » : {notice.get('reason')}.",
            "Rien n'est perdu : une fois la cause corrigée, un administrateur le reprend depuis sa page.",
        ]
    elif kind == "letter":
        label = str(notice.get("letter_label") or "Courrier")
        dated = _day(notice.get("letter_date"))
        about = what if notice.get("flow_id") else f"l'acte {notice.get('act_id') or '?'} (transmis hors de socle)"
        subject = f"{label} de la préfecture : {title or notice.get('act_id') or 'acte'}"
        paragraphs = [f"La préfecture a écrit au sujet de {about} : {label.lower()}{f' du {dated}' if dated else ''}."]
        text = _one_line(str(notice.get("letter_text") or ""))
        if text:
            paragraphs.append(f"{_LETTER_TEXT.get(str(notice.get('letter_type')), 'Texte')} : {text}")
        if notice.get("letter_type") == "5":
            paragraphs.append(
                "L'acte est déféré au tribunal administratif : prévenez sans tarder l'autorité territoriale."
            )
        if notice.get("flow_id"):
            paragraphs.append(
                "Le courrier et ses pièces sont classés dans la GED ; vous pouvez y répondre depuis la page du flux."
            )
        else:  # no flow to answer from: the letters' page lists it, with its answer
            paragraphs.append(
                "Le courrier et ses pièces sont classés dans la GED ; vous pouvez y répondre depuis la page des "
                "courriers de la préfecture."
            )
            link_label = "Les courriers de la préfecture"
    elif kind == "foreign":
        subject = f"Document d'une autre collectivité refusé (connecteur « {notice.get('connector')} »)"
        paragraphs = [
            f"S²LOW a présenté au connecteur « {notice.get('connector')} » un {notice.get('what')} "
            f"(n° {notice.get('remote_id')}) d'une autre collectivité : SIREN {notice.get('siren')}, alors que "
            f"celui de la collectivité est {notice.get('expected')}.",
            "Il n'a été ni classé dans la GED ni marqué lu chez S²LOW : la collectivité à qui il appartient le "
            "trouvera toujours.",
            "Le compte S²LOW de ce connecteur sert sans doute à plusieurs collectivités (certificat partagé ou "
            "copié) : demandez à l'opérateur de la plateforme un compte propre à la collectivité, puis changez le "
            "certificat du connecteur.",
        ]
        link_label = "Le connecteur"
    else:
        raise ValueError(f"avis inconnu : {kind}")
    link = str(notice.get("link") or "")
    if kind == "letter" and not notice.get("flow_id"):
        link = _link(LETTERS_PAGE)  # at sending: a notice queued before this version carried no link
    parts = ["Bonjour,", *paragraphs]
    if link:
        parts.append(f"{link_label} : {link}")
    text = "\n\n".join([*parts, "—", FOOTER]) + "\n"
    return Mail(to=to, subject=_one_line(SUBJECT_PREFIX + subject)[:250], text=text)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _one_line(value: str) -> str:
    """Titles on one line: a line break in a subject would make the mail unsendable."""
    return " ".join(value.split())


def _when(value: Any) -> str:
    try:
        moment = datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return "?"
    return spelled_datetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def _day(value: Any) -> str:
    """A date of the platform (``2026-12-03``) in French; as it is when it is not one."""
    text = str(value or "").strip()
    try:
        return spelled_date(date.fromisoformat(text[:10]))
    except ValueError:
        return text
