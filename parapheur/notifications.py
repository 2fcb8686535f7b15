"""The parapheur's notification mails, in plain French: one per act (:func:`notice_mail`) or a digest.

Pure functions: they build :class:`socle.mail.Mail` values and send nothing (the workflow queues the sending).
Each mail says which folder, what is expected of the reader and by when, and gives the link. An act done
under delegation says so: "par Camille Martin, en l'absence de Dominique Dupont".
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from socle.dates import spelled_date
from socle.mail import Mail

NoticeKind = Literal["to_act", "acted", "rejected", "completed", "late", "external_signature", "opinion_requested"]

# Times are stored in UTC and read by people in the collectivité's time.
DEFAULT_TIMEZONE = "Europe/Paris"
SUBJECT_PREFIX = "[Parapheur] "
_FOOTER = "Ce message est envoyé automatiquement par le parapheur électronique ; merci de ne pas y répondre."
# Digest sections: what needs the reader first; (heading, noun for one, noun for several).
_SECTIONS: dict[str, tuple[str, str, str]] = {
    "late": ("Dossiers en retard", "dossier en retard", "dossiers en retard"),
    "to_act": ("Dossiers à traiter", "dossier à traiter", "dossiers à traiter"),
    "external_signature": ("Signatures demandées", "signature demandée", "signatures demandées"),
    "opinion_requested": ("Avis demandés", "avis demandé", "avis demandés"),
    "rejected": ("Dossiers rejetés", "dossier rejeté", "dossiers rejetés"),
    "acted": ("Dossiers qui ont avancé", "dossier avancé", "dossiers avancés"),
    "completed": ("Dossiers terminés", "dossier terminé", "dossiers terminés"),
}

# In a digest line, the due date matters only while something is awaited.
_DUE_LABELS = {
    "late": "échéance dépassée : ",
    "to_act": "à traiter au plus tard le ",
    "external_signature": "à signer au plus tard le ",
    "opinion_requested": "réponse attendue au plus tard le ",
}


# What a « à traiter » notice says the folder waits for, by the step's kind (a notice queued before the kind was
# carried says « votre visa ou votre signature »).
_AWAITED = {
    "visa": "votre visa",
    "signature": "votre signature",
    "seal": "le cachet de la collectivité",
    "reading": "votre lecture",
    "paper_signature": "votre signature sur papier",
}


@dataclass(frozen=True)
class Notice:
    """Something that happened to a folder and that a person should hear about."""

    kind: NoticeKind
    folder_id: str
    folder_title: str
    at: datetime
    actor_name: str | None = None  # who acted
    on_behalf_of: str | None = None  # "en l'absence de …" when acted under delegation
    desk_name: str | None = None  # the desk concerned
    comment: str | None = None
    due_date: date | None = None
    link: str | None = None
    delegated: bool = False  # sent to a delegate desk, in the absence of the desk ``desk_name``
    tenant_name: str | None = None  # the collectivité, named to an external signer who does not know the kit
    link_expires_at: datetime | None = None  # until when an external signer's one-time link opens
    step_kind: str | None = None  # the awaited step's kind (visa, signature…), for « à traiter »


@dataclass(frozen=True)
class _Body:
    """A mail's content before rendering: paragraphs, then an optional link with its label."""

    paragraphs: list[str]
    link: str | None = None
    link_label: str = "Ouvrir le dossier"


def notice_mail(to: tuple[str, ...], notice: Notice, *, timezone: str = DEFAULT_TIMEZONE) -> Mail:
    """The mail telling ``to`` about one notice (text and HTML).

    Raises:
        ValueError: unknown notice kind.
    """
    subject, body = _compose(notice, zone_or_utc(timezone))
    return Mail(to=to, subject=SUBJECT_PREFIX + subject, text=_text(body), html=_html(subject, [body]))


def digest_mail(to: tuple[str, ...], notices: list[Notice], *, timezone: str = DEFAULT_TIMEZONE) -> Mail:
    """One mail listing several notices, grouped by kind (late folders first), each with its link.

    Raises:
        ValueError: no notice, or an unknown notice kind.
    """
    if not notices:
        raise ValueError("récapitulatif vide : aucune notification à envoyer")
    zone = zone_or_utc(timezone)
    groups = {kind: [n for n in notices if n.kind == kind] for kind in _SECTIONS}
    for notice in notices:
        _check_kind(notice.kind)
    counts = [_count(len(group), kind) for kind, group in groups.items() if group]
    subject = "Récapitulatif : " + ", ".join(counts)
    text_parts = ["Bonjour,", "Voici ce qui s'est passé dans le parapheur depuis le dernier récapitulatif."]
    html_parts = [f"<p>{_e(text_parts[0])}</p>", f"<p>{_e(text_parts[1])}</p>"]
    for kind, group in groups.items():
        if not group:
            continue
        heading = f"{_SECTIONS[kind][0]} ({len(group)})"
        lines = [_digest_line(notice, zone) for notice in sorted(group, key=_urgency)]
        text_parts.append(
            heading + "\n" + "\n".join(f"- {line}" + (f"\n  {link}" if link else "") for line, link in lines)
        )
        items = "".join(f"<li>{_e(line)}{_html_link(link, 'ouvrir')}</li>" for line, link in lines)
        html_parts.append(f"<h2>{_e(heading)}</h2><ul>{items}</ul>")
    text = "\n\n".join([*text_parts, _FOOTER]) + "\n"
    page = _page(subject, "".join(html_parts))
    return Mail(to=to, subject=SUBJECT_PREFIX + subject, text=text, html=page)


def acted_by(notice: Notice) -> str | None:
    """Who acted, as a reader sees it: "Camille Martin (en l'absence de Dominique Dupont)", or just the name.

    None when nobody is named.
    """
    if notice.on_behalf_of:
        return f"{notice.actor_name or 'un suppléant'} (en l'absence de {notice.on_behalf_of})"
    return notice.actor_name


def french_date(day: date) -> str:
    """``date(2026, 12, 1)`` → "1er décembre 2026" (socle.dates.spelled_date)."""
    return spelled_date(day)


def zone_or_utc(name: str) -> tzinfo:
    """The named time zone, or UTC on a slim system without tzdata (a mail must go out rather than crash)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def local_time(at: datetime, zone: tzinfo) -> datetime:
    """``at`` in the reader's time zone (a naive datetime is taken as UTC, as the kit stores them)."""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(zone)


def french_datetime(at: datetime, zone: tzinfo) -> str:
    """ "1er décembre 2026 à 9 h 05", in the reader's time zone."""
    local = local_time(at, zone)
    return f"{french_date(local.date())} à {local.hour} h {local.minute:02d}"


def _compose(notice: Notice, zone: tzinfo) -> tuple[str, _Body]:
    """Subject (without prefix) and body for one notice."""
    _check_kind(notice.kind)
    title = _one_line(notice.folder_title)
    quoted = f"« {title} »"
    when = french_datetime(notice.at, zone)
    desk = f" sur le bureau « {notice.desk_name} »" if notice.desk_name else ""
    by = acted_by(notice)
    due = f"le {french_date(notice.due_date)}" if notice.due_date else None
    comment = _one_line(notice.comment) if notice.comment else None
    paragraphs: list[str]
    match notice.kind:
        case "to_act":
            subject = f"Dossier à traiter : {title}"
            awaited = _AWAITED.get(notice.step_kind or "", "votre visa ou votre signature")
            paragraphs = [f"Le dossier {quoted} attend {awaited}{desk}."]
            if notice.delegated:
                absent = f"du bureau « {notice.desk_name} »" if notice.desk_name else "d'un autre bureau"
                paragraphs.append(f"Vous le recevez par délégation, en l'absence {absent}.")
            if by:
                paragraphs.append(f"Il vous a été transmis le {when} par {by}.")
            paragraphs.append(f"Merci de le traiter au plus tard {due}." if due else "Merci de le traiter.")
            paragraphs.append("Vous pouvez le lire, puis le viser ou le signer selon l'étape, ou le rejeter.")
            if comment:
                paragraphs.append(f"Commentaire : « {comment} »")
        case "acted":
            subject = f"Le dossier a avancé : {title}"
            paragraphs = [f"Le dossier {quoted} a été traité{desk} le {when}" + (f" par {by}." if by else ".")]
            if comment:
                paragraphs.append(f"Commentaire : « {comment} »")
            paragraphs.append("Il poursuit son circuit ; aucune action n'est attendue de votre part.")
        case "rejected":
            subject = f"Dossier rejeté : {title}"
            paragraphs = [f"Le dossier {quoted} a été rejeté{desk} le {when}" + (f" par {by}." if by else ".")]
            paragraphs.append(f"Motif : « {comment} »" if comment else "Aucun motif n'a été donné.")
            paragraphs.append(
                "Son circuit est arrêté. Sur sa page, « Reprendre dans un nouveau dossier » crée un brouillon avec "
                "les mêmes documents et métadonnées : corrigez-le, puis envoyez-le."
            )
        case "completed":
            subject = f"Dossier terminé : {title}"
            paragraphs = [f"Le circuit du dossier {quoted} s'est terminé le {when} : toutes les étapes sont faites."]
            if by:
                paragraphs.append(f"Dernière action : {by}.")
            paragraphs.append("Les documents signés sont disponibles dans le parapheur.")
        case "late":
            subject = f"Dossier en retard : {title}"
            waited = f"devait être traité au plus tard {due}" if due else "attend depuis longtemps"
            paragraphs = [f"Le dossier {quoted}{desk} {waited} et attend toujours."]
            if comment:  # no desk acts on its step (external signature, seal): its creator is told what it waits for
                paragraphs.append(comment)
            else:
                paragraphs.append(
                    "Merci de le traiter dès que possible, ou de prévenir son auteur en cas d'empêchement."
                )
        case "external_signature":
            subject = f"Signature demandée : {title}"
            paragraphs = [_invitation(notice, by, quoted)]
            if due:
                paragraphs.append(f"Merci de le signer au plus tard {due}.")
            paragraphs.append("Le lien ci-dessous vous est personnel et ne sert qu'une fois : ne le transférez pas.")
            if notice.link_expires_at:
                until = french_datetime(notice.link_expires_at, zone)
                paragraphs.append(
                    f"Il fonctionne jusqu'au {until} ({_zone_label(zone)}) ; après, il faudra en demander un nouveau."
                )
            paragraphs.append(
                "Pour signer, il suffit d'ouvrir ce lien, de lire le document et de saisir votre nom : aucun mot de "
                f"passe n'est demandé. {notice.tenant_name or 'La collectivité'} ne vous demandera jamais de mot de "
                "passe par courriel."
            )
            if comment:
                paragraphs.append(f"Message : « {comment} »")
            return subject, _Body(["Bonjour,", *paragraphs], notice.link, "Lire et signer le document")
        case "opinion_requested":
            subject = f"Avis demandé : {title}"
            paragraphs = [f"{by or 'Un agent'} vous demande votre avis sur le dossier {quoted}{desk}."]
            if comment:
                paragraphs.append(f"Question : « {comment} »")
            if due:
                paragraphs.append(f"Merci de répondre au plus tard {due}.")
            paragraphs.append("Votre avis sera joint au dossier ; le dossier poursuit son circuit sans l'attendre.")
    return subject, _Body(["Bonjour,", *paragraphs], notice.link)


def _invitation(notice: Notice, by: str | None, quoted: str) -> str:
    """Who asks an external signer to sign what: the collectivité and its agent, as the signing page says."""
    collectivite = _one_line(notice.tenant_name) if notice.tenant_name else None
    inviter = f"{by} ({collectivite})" if by and collectivite else by or collectivite
    if inviter is None:
        return f"Vous êtes invité(e) à signer électroniquement le document {quoted}."
    return f"{inviter} vous invite à signer électroniquement le document {quoted}."


def _zone_label(zone: tzinfo) -> str:
    """ "heure de Paris" for Europe/Paris; the zone's name otherwise (UTC on a system without tzdata)."""
    name = str(zone)
    return "heure de Paris" if name == "Europe/Paris" else f"heure {name}"


def _digest_line(notice: Notice, zone: tzinfo) -> tuple[str, str | None]:
    parts = [f"« {_one_line(notice.folder_title)} »"]
    if notice.desk_name:
        parts.append(f"bureau « {notice.desk_name} »" + (" (par délégation)" if notice.delegated else ""))
    if notice.due_date and notice.kind in _DUE_LABELS:
        parts.append(_DUE_LABELS[notice.kind] + french_date(notice.due_date))
    by = acted_by(notice)
    if by:
        parts.append(f"par {by}")
    if notice.kind != "late":  # a late folder's line is about its due date, not when the reminder was made
        parts.append(f"le {french_datetime(notice.at, zone)}")
    if notice.comment:
        parts.append(f"« {_one_line(notice.comment)} »")
    return " — ".join(parts), notice.link


def _urgency(notice: Notice) -> tuple[date, datetime]:
    return notice.due_date or date.max, local_time(notice.at, UTC)


def _count(number: int, kind: str) -> str:
    _heading, one, several = _SECTIONS[kind]
    return f"{number} {one if number == 1 else several}"


def _check_kind(kind: str) -> None:
    if kind not in get_args(NoticeKind):
        raise ValueError(f"type de notification inconnu : {kind!r}")


def _one_line(value: str) -> str:
    """Titles and comments on one line (a line break in a subject would make the mail unsendable)."""
    return " ".join(value.split())


def _text(body: _Body) -> str:
    parts = list(body.paragraphs)
    if body.link:
        parts.append(f"{body.link_label} : {body.link}")
    return "\n\n".join([*parts, "—", _FOOTER]) + "\n"


def _html(subject: str, bodies: Sequence[_Body]) -> str:
    content = ""
    for body in bodies:
        content += "".join(f"<p>{_e(paragraph)}</p>" for paragraph in body.paragraphs)
        if body.link:
            content += f'<p><a href="{_e(body.link)}">{_e(body.link_label)}</a></p>'
    return _page(subject, content)


def _html_link(link: str | None, label: str) -> str:
    return f' — <a href="{_e(link)}">{_e(label)}</a>' if link else ""


def _page(subject: str, content: str) -> str:
    return (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
        f"<title>{_e(subject)}</title></head><body>{content}"
        f'<hr><p style="color:#555;font-size:small">{_e(_FOOTER)}</p></body></html>'
    )


def _e(value: str) -> str:
    return html.escape(value, quote=True)
