"""Parapheur configuration use cases: desks (bureaux) and their members, delegations, types and sous-types.

Configuration is the administrator's (role admin), except a delegation from a desk, which that desk's own
members may also set. Every id is looked up within the caller's tenant: another tenant's id is unknown (404).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from parapheur import circuits, verification
from parapheur.models import (
    Delegation,
    Desk,
    DeskMember,
    Folder,
    OpinionRequest,
    SignatureType,
    SigningIdentity,
    Step,
    StepAct,
    Subtype,
    TrustAnchor,
    insert_once,
)
from socle import audit
from socle.auth import Principal, Role
from socle.db import is_unique_violation, utcnow
from socle.errors import Conflict, Forbidden, InvalidInput, Message, NotFound, message
from socle.models import User
from socle.text import check_text

FORMATS = ("pades", "cades", "xades")
LEVELS = ("B-B", "B-T", "B-LT", "B-LTA")
MAX_STAMP_PAGE = 100_000  # a stamp page beyond it is a typing error (and beyond 2**31, a database error)
MAX_POINTS = 14_400.0  # the largest page side a PDF may have (200 inches): farther, a stamp is off every page


def _require_admin(principal: Principal) -> None:
    if Role.ADMIN not in principal.roles:
        raise Forbidden(message("la configuration du parapheur est réservée aux administrateurs"))


def _without_nulls(changes: dict[str, Any], nullable: tuple[str, ...]) -> dict[str, Any]:
    """A patch's null values only clear the fields that may be empty; elsewhere they mean "unchanged"."""
    return {name: value for name, value in changes.items() if value is not None or name in nullable}


def _merged(row: Any, fields: tuple[str, ...], changes: dict[str, Any]) -> dict[str, Any]:
    """The row's editable fields with a patch's changes laid over them: what the row would become."""
    return {name: getattr(row, name) for name in fields} | changes


def _flush_unique(session: Session, refusal: Message) -> None:
    """Flush a row whose name must be unique, refused with ``refusal`` (Conflict) when it is not.

    The name is checked before; two requests at once (a double click on « Créer ») both pass that check, and
    PostgreSQL then refuses the second at the unique constraint: it gets the answer the check would have given.
    """
    try:
        session.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):  # any other integrity error is a real fault
            raise
        session.rollback()
        raise Conflict(refusal) from None


def _save_changes(
    session: Session,
    principal: Principal,
    row: Any,
    kind: str,
    fields: tuple[str, ...],
    changes: dict[str, Any],
    merged: dict[str, Any],
    refusal: Message,
) -> None:
    """Write the changed fields (their checked value, taken from ``merged``), audit the update and commit;
    ``refusal`` is the Conflict of a name taken meanwhile (:func:`_flush_unique`)."""
    for name in fields:
        if name in changes:
            setattr(row, name, merged[name])
    _flush_unique(session, refusal)
    _audit(session, principal, f"parapheur.{kind}.updated", kind, row.id, changes=sorted(changes))
    session.commit()


def _audit(session: Session, principal: Principal, action: str, kind: str, object_id: str, **details: Any) -> None:
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action=action,
        object_type=kind,
        object_id=object_id,
        details=details,
    )


# ---------------------------------------------------------------------------------------------------------
# Desks and members


def get_desk(session: Session, tenant_id: str, desk_id: str) -> Desk:
    """The tenant's desk; raises NotFound for an unknown id or another tenant's."""
    desk = session.execute(select(Desk).where(Desk.id == desk_id, Desk.tenant_id == tenant_id)).scalar_one_or_none()
    if desk is None:
        raise NotFound(message("bureau %(desk_id)s introuvable", desk_id=desk_id))
    return desk


def list_desks(session: Session, tenant_id: str) -> list[Desk]:
    """The tenant's desks, by name."""
    return list(session.execute(select(Desk).where(Desk.tenant_id == tenant_id).order_by(Desk.name)).scalars())


def check_desks(session: Session, tenant_id: str, desk_ids: Iterable[str]) -> None:
    """Raise NotFound naming the ids that are not desks of this tenant."""
    wanted = set(desk_ids)
    if not wanted:
        return
    known = set(session.execute(select(Desk.id).where(Desk.tenant_id == tenant_id, Desk.id.in_(wanted))).scalars())
    unknown = sorted(wanted - known)
    if unknown:
        raise NotFound(message("bureau(x) introuvable(s) : %(unknown)s", unknown=", ".join(unknown)))


def desk_names(session: Session, tenant_id: str) -> dict[str, str]:
    """{desk id: name} for the tenant's desks."""
    return dict(session.execute(select(Desk.id, Desk.name).where(Desk.tenant_id == tenant_id)).all())


def user_desk_ids(session: Session, tenant_id: str, username: str) -> set[str]:
    """The desks this user holds."""
    return set(
        session.execute(
            select(Desk.id)
            .join(DeskMember, DeskMember.desk_id == Desk.id)
            .where(Desk.tenant_id == tenant_id, DeskMember.username == username)
        ).scalars()
    )


def _check_desk_texts(values: dict[str, Any]) -> None:
    """A desk's name and stamp role are one line, its description several; none holds a control character."""
    for field, label, multiline in (
        ("name", message("nom du bureau"), False),
        ("stamp_role", message("qualité"), False),
        ("description", message("description"), True),
    ):
        if values.get(field) is not None:
            check_text(values[field], label, multiline=multiline, required=field == "name")


def _check_users(session: Session, tenant_id: str, usernames: Iterable[str]) -> list[str]:
    wanted = sorted(set(usernames))
    for username in wanted:
        check_text(username, message("identifiant"))  # before the query: PostgreSQL refuses a NUL
    if not wanted:
        return []
    known = set(
        session.execute(
            select(User.username).where(User.tenant_id == tenant_id, User.username.in_(wanted), User.active)
        ).scalars()
    )
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise InvalidInput(message("utilisateur(s) inconnu(s) ou inactif(s) : %(unknown)s", unknown=", ".join(unknown)))
    return wanted


def _check_desk_name(session: Session, tenant_id: str, name: str, desk_id: str | None = None) -> None:
    query = select(Desk.id).where(Desk.tenant_id == tenant_id, Desk.name == name)
    if desk_id is not None:
        query = query.where(Desk.id != desk_id)
    if session.execute(query).first() is not None:
        raise Conflict(message("un bureau « %(name)s » existe déjà", name=name))


def create_desk(
    session: Session,
    principal: Principal,
    name: str,
    description: str | None = None,
    stamp_role: str | None = None,
    members: list[str] | None = None,
) -> Desk:
    """Create a desk with its members (active users of the tenant). Raises Forbidden, Conflict, InvalidInput."""
    _require_admin(principal)
    _check_desk_texts({"name": name, "description": description, "stamp_role": stamp_role})
    _check_desk_name(session, principal.tenant_id, name)
    usernames = _check_users(session, principal.tenant_id, members or [])
    desk = Desk(tenant_id=principal.tenant_id, name=name, description=description, stamp_role=stamp_role)
    desk.members = [DeskMember(username=username) for username in usernames]
    session.add(desk)
    _flush_unique(session, message("un bureau « %(name)s » existe déjà", name=name))
    _audit(session, principal, "parapheur.desk.created", "desk", desk.id, name=name, members=usernames)
    session.commit()
    return desk


def update_desk(session: Session, principal: Principal, desk_id: str, changes: dict[str, Any]) -> Desk:
    """Change a desk's name, description, stamp role, or replace its members (``members``)."""
    _require_admin(principal)
    desk = get_desk(session, principal.tenant_id, desk_id)
    changes = _without_nulls(changes, ("description", "stamp_role"))
    _check_desk_texts(changes)
    if "name" in changes:
        _check_desk_name(session, principal.tenant_id, changes["name"], desk.id)
        desk.name = changes["name"]
    for field in ("description", "stamp_role"):
        if field in changes:
            setattr(desk, field, changes[field])
    if changes.get("members") is not None:
        usernames = _check_users(session, principal.tenant_id, changes["members"])
        kept = {member.username: member for member in desk.members}
        desk.members = [kept.get(username) or DeskMember(username=username) for username in usernames]
    # Taken meanwhile: its new name, or a member another request added at the same time.
    _flush_unique(
        session,
        message(
            "le bureau « %(desk_name)s » vient d'être modifié par une autre requête, ou ce nom vient d'être pris "
            "par un autre bureau : rechargez la page et recommencez",
            desk_name=desk.name,
        ),
    )
    _audit(session, principal, "parapheur.desk.updated", "desk", desk.id, changes=sorted(changes))
    session.commit()
    return desk


def add_member(session: Session, principal: Principal, desk_id: str, username: str) -> Desk:
    """Add an active user of the tenant to a desk (nothing changes if already a member)."""
    _require_admin(principal)
    desk = get_desk(session, principal.tenant_id, desk_id)
    _check_users(session, principal.tenant_id, [username])
    if username not in {member.username for member in desk.members}:
        # The same request sent twice at once: the second finds the member added, as if sent after the first.
        added = insert_once(session, DeskMember, {"desk_id": desk.id, "username": username}, ("desk_id", "username"))
        session.expire(desk, ["members"])  # read again, with the new member
        if added:
            _audit(session, principal, "parapheur.desk.member_added", "desk", desk.id, username=username)
    session.commit()
    return desk


def remove_member(session: Session, principal: Principal, desk_id: str, username: str) -> Desk:
    """Remove a member from a desk; raises NotFound when the user is not one."""
    _require_admin(principal)
    desk = get_desk(session, principal.tenant_id, desk_id)
    member = next((member for member in desk.members if member.username == username), None)
    if member is None:
        raise NotFound(
            message(
                "« %(username)s » n'est pas membre du bureau « %(desk_name)s »", username=username, desk_name=desk.name
            )
        )
    desk.members.remove(member)
    session.flush()
    _audit(session, principal, "parapheur.desk.member_removed", "desk", desk.id, username=username)
    session.commit()
    return desk


def delete_desk(session: Session, principal: Principal, desk_id: str) -> None:
    """Delete a desk no sous-type, folder step nor delegation refers to (Conflict otherwise)."""
    _require_admin(principal)
    desk = get_desk(session, principal.tenant_id, desk_id)
    subtypes = session.execute(select(Subtype).where(Subtype.tenant_id == principal.tenant_id)).scalars()
    used_by = [
        subtype.name
        for subtype in subtypes
        if desk.id in circuits.circuit_desk_ids(subtype.circuit) or desk.id in (subtype.creator_desk_ids or [])
    ]
    if used_by:
        raise Conflict(
            message(
                "le bureau « %(desk_name)s » est utilisé par le(s) sous-type(s) : %(used_by)s",
                desk_name=desk.name,
                used_by=", ".join(used_by),
            )
        )
    steps = session.execute(
        select(Step.desk_ids).join(Folder, Folder.id == Step.folder_id).where(Folder.tenant_id == principal.tenant_id)
    ).scalars()
    if any(desk.id in (desk_ids or []) for desk_ids in steps):
        raise Conflict(message("le bureau « %(desk_name)s » figure dans le circuit de dossiers", desk_name=desk.name))
    # A desk that acted (then transferred the step away) or was asked for an opinion stays in those folders: its
    # acts name it in the history, and a pending opinion could no longer be answered by anyone.
    acted = select(StepAct.id).where((StepAct.desk_id == desk.id) | (StepAct.on_behalf_of_desk_id == desk.id))
    asked = select(OpinionRequest.id).where(OpinionRequest.desk_id == desk.id)
    if session.execute(acted.limit(1)).first() is not None or session.execute(asked.limit(1)).first() is not None:
        raise Conflict(
            message(
                "le bureau « %(desk_name)s » a agi sur des dossiers ou a été consulté pour avis : "
                "il reste dans leur historique",
                desk_name=desk.name,
            )
        )
    delegations = session.execute(
        select(func.count())
        .select_from(Delegation)
        .where((Delegation.from_desk_id == desk.id) | (Delegation.to_desk_id == desk.id))
    ).scalar_one()
    if delegations:
        raise Conflict(
            message("le bureau « %(desk_name)s » a des délégations : supprimez-les d'abord", desk_name=desk.name)
        )
    _audit(session, principal, "parapheur.desk.deleted", "desk", desk.id, name=desk.name)
    session.delete(desk)
    session.commit()


# ---------------------------------------------------------------------------------------------------------
# Delegations


def _utc(value: datetime, field: str) -> datetime:
    """``value`` (starts_at or ends_at; without zone: UTC already) in UTC. :raises InvalidInput: an instant UTC
    cannot hold (an hour of year 1 or 9999 in another zone), which the database would fail to store."""
    try:
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except OverflowError:
        which = message("début") if field == "starts_at" else message("fin")
        raise InvalidInput(
            message("date de %(which)s de la délégation hors des dates possibles", which=which), field=field
        ) from None


def may_delegate(principal: Principal, desk: Desk) -> bool:
    """Whether ``principal`` may set and end the delegations from ``desk``: its members and the administrators."""
    return Role.ADMIN in principal.roles or principal.username in {member.username for member in desk.members}


def delegating_desks(session: Session, principal: Principal) -> list[Desk]:
    """The desks whose delegations ``principal`` may set and end (every desk for an administrator), by name."""
    return [desk for desk in list_desks(session, principal.tenant_id) if may_delegate(principal, desk)]


def create_delegation(
    session: Session,
    principal: Principal,
    from_desk_id: str,
    to_desk_id: str,
    starts_at: datetime,
    ends_at: datetime,
    subtype_ids: list[str] | None = None,
) -> Delegation:
    """Let ``to_desk``'s members act for ``from_desk`` between two instants, maybe for some sous-types only.

    Allowed to administrators and to the members of ``from_desk``. Raises NotFound (unknown desk or
    sous-type), InvalidInput (a desk to itself, an empty or reversed range), Forbidden.
    """
    from_desk = get_desk(session, principal.tenant_id, from_desk_id)
    to_desk = get_desk(session, principal.tenant_id, to_desk_id)
    if not may_delegate(principal, from_desk):
        raise Forbidden(
            message(
                "seuls les membres du bureau « %(from_desk_name)s » ou un administrateur peuvent le déléguer",
                from_desk_name=from_desk.name,
            )
        )
    if from_desk.id == to_desk.id:
        raise InvalidInput(message("un bureau ne peut pas se déléguer à lui-même"))
    starts_at, ends_at = _utc(starts_at, "starts_at"), _utc(ends_at, "ends_at")
    if ends_at <= starts_at:
        raise InvalidInput(message("la fin de la délégation doit suivre son début"))
    if subtype_ids is not None:
        for subtype_id in subtype_ids:
            get_subtype(session, principal.tenant_id, subtype_id)
    delegation = Delegation(
        tenant_id=principal.tenant_id,
        from_desk_id=from_desk.id,
        to_desk_id=to_desk.id,
        starts_at=starts_at,
        ends_at=ends_at,
        subtype_ids=sorted(set(subtype_ids)) if subtype_ids else None,
        created_by=principal.username,
    )
    session.add(delegation)
    session.flush()
    _audit(
        session,
        principal,
        "parapheur.delegation.created",
        "delegation",
        delegation.id,
        from_desk=from_desk.name,
        to_desk=to_desk.name,
        starts_at=starts_at.isoformat(),
        ends_at=ends_at.isoformat(),
        subtype_ids=delegation.subtype_ids,
    )
    session.commit()
    return delegation


def list_delegations(session: Session, tenant_id: str, desk_id: str | None = None) -> list[Delegation]:
    """The tenant's delegations, from or to ``desk_id`` when given, by start date."""
    query = select(Delegation).where(Delegation.tenant_id == tenant_id)
    if desk_id is not None:
        query = query.where((Delegation.from_desk_id == desk_id) | (Delegation.to_desk_id == desk_id))
    return list(session.execute(query.order_by(Delegation.starts_at, Delegation.id)).scalars())


def overlapping(delegation: Delegation, others: Iterable[Delegation]) -> list[str]:
    """Ids of the other delegations from the same desk whose range meets this one's (allowed, but shown)."""
    return [
        other.id
        for other in others
        if other.id != delegation.id
        and other.from_desk_id == delegation.from_desk_id
        and other.starts_at < delegation.ends_at
        and delegation.starts_at < other.ends_at
    ]


def delete_delegation(session: Session, principal: Principal, delegation_id: str) -> None:
    """End a delegation: administrators and the delegating desk's members; NotFound, Forbidden."""
    delegation = session.execute(
        select(Delegation).where(Delegation.id == delegation_id, Delegation.tenant_id == principal.tenant_id)
    ).scalar_one_or_none()
    if delegation is None:
        raise NotFound(message("délégation %(delegation_id)s introuvable", delegation_id=delegation_id))
    from_desk = get_desk(session, principal.tenant_id, delegation.from_desk_id)
    if not may_delegate(principal, from_desk):
        raise Forbidden(
            message(
                "seuls les membres du bureau « %(from_desk_name)s » ou un administrateur peuvent la supprimer",
                from_desk_name=from_desk.name,
            )
        )
    _audit(session, principal, "parapheur.delegation.deleted", "delegation", delegation.id)
    session.delete(delegation)
    session.commit()


def active_delegations(session: Session, tenant_id: str, at: datetime | None = None) -> list[Delegation]:
    """The delegations running at ``at`` (now by default)."""
    moment = at or utcnow()
    return list(
        session.execute(
            select(Delegation).where(
                Delegation.tenant_id == tenant_id, Delegation.starts_at <= moment, Delegation.ends_at > moment
            )
        ).scalars()
    )


def delegation_applies(delegation: Delegation, subtype_id: str | None) -> bool:
    """Whether a delegation covers folders of this sous-type (None in its list: all of them)."""
    return not delegation.subtype_ids or subtype_id in delegation.subtype_ids


# ---------------------------------------------------------------------------------------------------------
# Types


def get_type(session: Session, tenant_id: str, type_id: str) -> SignatureType:
    """The tenant's type; raises NotFound for an unknown id or another tenant's."""
    row = session.execute(
        select(SignatureType).where(SignatureType.id == type_id, SignatureType.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(message("type %(type_id)s introuvable", type_id=type_id))
    return row


def list_types(session: Session, tenant_id: str) -> list[SignatureType]:
    """The tenant's types, by name."""
    query = select(SignatureType).where(SignatureType.tenant_id == tenant_id).order_by(SignatureType.name)
    return list(session.execute(query).scalars())


def _check_type_values(values: dict[str, Any]) -> None:
    if values.get("name") is not None:
        check_text(values["name"], message("nom du type"))
    if values.get("signature_format", "pades") not in FORMATS:
        raise InvalidInput(message("format de signature inconnu : attendu pades, cades ou xades"))
    if values.get("level", "B-B") not in LEVELS:
        raise InvalidInput(message("niveau de signature inconnu : attendu B-B, B-T, B-LT ou B-LTA"))
    # Said now rather than lowered in silence at each signature: XAdES-EPES for Hélios carries no timestamp,
    # and a detached CAdES signature goes no further than B-T here.
    if values.get("signature_format") == "xades" and values.get("level", "B-B") != "B-B":
        raise InvalidInput(
            message("une signature XAdES de flux PES (Hélios) se fait au niveau B-B : choisissez ce niveau")
        )
    if values.get("signature_format") == "cades" and values.get("level", "B-B") not in ("B-B", "B-T"):
        raise InvalidInput(
            message("une signature CAdES détachée se fait au niveau B-B ou B-T : choisissez l'un des deux")
        )
    page = values.get("stamp_page", -1)
    if page != -1 and not 1 <= page <= MAX_STAMP_PAGE:
        raise InvalidInput(
            message(
                "page du cachet : un numéro de page de 1 à %(max_page)s, ou -1 pour la dernière",
                max_page=MAX_STAMP_PAGE,
            )
        )
    for name in ("stamp_x", "stamp_y"):
        value = values.get(name)
        if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_POINTS):
            raise InvalidInput(
                message(
                    "position du cachet : des coordonnées positives, en points (%(max_points)s au plus)",
                    max_points=int(MAX_POINTS),
                )
            )
    if (values.get("stamp_x") is None) != (values.get("stamp_y") is None):
        raise InvalidInput(
            message("position du cachet : donnez x et y ensemble, ou aucun des deux (placement automatique)")
        )
    for name in ("stamp_width", "stamp_height"):
        size = values.get(name, 1)
        if not (math.isfinite(size) and 0 < size <= MAX_POINTS):
            raise InvalidInput(
                message(
                    "taille du cachet : largeur et hauteur strictement positives, en points (%(max_points)s au plus)",
                    max_points=int(MAX_POINTS),
                )
            )


_TYPE_FIELDS = ("name", "signature_format", "level", "stamp_page", "stamp_x", "stamp_y", "stamp_width", "stamp_height")


def _check_type_name(session: Session, tenant_id: str, name: str, type_id: str | None = None) -> None:
    query = select(SignatureType.id).where(SignatureType.tenant_id == tenant_id, SignatureType.name == name)
    if type_id is not None:
        query = query.where(SignatureType.id != type_id)
    if session.execute(query).first() is not None:
        raise Conflict(message("un type « %(name)s » existe déjà", name=name))


def create_type(session: Session, principal: Principal, values: dict[str, Any]) -> SignatureType:
    """Create a type (format, level, stamp box). Raises Forbidden, Conflict (name taken), InvalidInput."""
    _require_admin(principal)
    _check_type_values(values)
    _check_type_name(session, principal.tenant_id, values["name"])
    row = SignatureType(tenant_id=principal.tenant_id, **{k: v for k, v in values.items() if k in _TYPE_FIELDS})
    session.add(row)
    _flush_unique(session, message("un type « %(name)s » existe déjà", name=values["name"]))
    _audit(session, principal, "parapheur.type.created", "type", row.id, name=row.name, format=row.signature_format)
    session.commit()
    return row


def update_type(session: Session, principal: Principal, type_id: str, changes: dict[str, Any]) -> SignatureType:
    """Change a type; folders already created keep the format and level they were given."""
    _require_admin(principal)
    row = get_type(session, principal.tenant_id, type_id)
    changes = _without_nulls(changes, ("stamp_x", "stamp_y"))
    merged = _merged(row, _TYPE_FIELDS, changes)
    _check_type_values(merged)
    if "name" in changes:
        _check_type_name(session, principal.tenant_id, changes["name"], row.id)
    if merged["signature_format"] != row.signature_format:
        # Their circuits must suit the new format; a rename or a level change leaves them as they were (a
        # sous-type saved before a rule stays editable through its type, it simply takes no new folder).
        for subtype in list_subtypes(session, principal.tenant_id, row.id):
            check_signature_count(subtype.circuit, merged["signature_format"], subtype.name)
    taken = message("un type « %(name)s » existe déjà", name=merged["name"])
    _save_changes(session, principal, row, "type", _TYPE_FIELDS, changes, merged, taken)
    return row


def delete_type(session: Session, principal: Principal, type_id: str) -> None:
    """Delete a type without sous-types (Conflict otherwise)."""
    _require_admin(principal)
    row = get_type(session, principal.tenant_id, type_id)
    if session.execute(select(Subtype.id).where(Subtype.type_id == row.id)).first() is not None:
        raise Conflict(message("le type « %(row_name)s » a des sous-types : supprimez-les d'abord", row_name=row.name))
    _audit(session, principal, "parapheur.type.deleted", "type", row.id, name=row.name)
    session.delete(row)
    session.commit()


# ---------------------------------------------------------------------------------------------------------
# Sous-types


def get_subtype(session: Session, tenant_id: str, subtype_id: str) -> Subtype:
    """The tenant's sous-type; raises NotFound for an unknown id or another tenant's."""
    row = session.execute(
        select(Subtype).where(Subtype.id == subtype_id, Subtype.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(message("sous-type %(subtype_id)s introuvable", subtype_id=subtype_id))
    return row


def list_subtypes(session: Session, tenant_id: str, type_id: str | None = None) -> list[Subtype]:
    """The tenant's sous-types (of one type when ``type_id`` is given), by name."""
    query = select(Subtype).where(Subtype.tenant_id == tenant_id)
    if type_id is not None:
        query = query.where(Subtype.type_id == type_id)
    return list(session.execute(query.order_by(Subtype.name)).scalars())


_SUBTYPE_FIELDS = (
    "name",
    "circuit",
    "seal_identity_id",
    "mandatory_metadata",
    "creator_desk_ids",
    "reading_required",
    "due_days",
    "ged_folder",
    "paper_allowed",
)


def _check_subtype_values(
    session: Session, tenant_id: str, values: dict[str, Any], signature_format: str
) -> dict[str, Any]:
    """Validate a sous-type's fields, for a type of ``signature_format``; returns them with the circuit normalised."""
    if values.get("name") is not None:
        check_text(values["name"], message("nom du sous-type"))
    for name in values.get("mandatory_metadata") or []:
        check_text(name, message("métadonnée obligatoire"))
    templates = circuits.validate_circuit(values.get("circuit"))
    check_signature_count(templates, signature_format, values.get("name"))
    if values.get("paper_allowed") and signature_format == "xades":
        # Hélios takes a PES bordereau signed in XAdES: a scan of a printed flux would leave it unsigned.
        raise InvalidInput(message("un flux PES (XAdES) ne se signe pas sur papier : décochez la signature papier"))
    check_desks(session, tenant_id, circuits.circuit_desk_ids(templates) | set(values.get("creator_desk_ids") or []))
    seal_id = values.get("seal_identity_id")
    if seal_id is not None:
        found = session.execute(
            select(SigningIdentity.id).where(
                SigningIdentity.id == seal_id, SigningIdentity.tenant_id == tenant_id, SigningIdentity.purpose == "seal"
            )
        ).first()
        if found is None:
            raise NotFound(message("identité de cachet serveur %(seal_id)s introuvable", seal_id=seal_id))
    elif any(template["kind"] == "seal" for template in templates):
        raise InvalidInput(
            message("un circuit avec une étape « cachet serveur » demande une identité de cachet (seal_identity_id)")
        )
    ged_folder = (values.get("ged_folder") or "").strip(" /") or None
    if ged_folder is not None:
        check_text(ged_folder, message("dossier de la GED"))
    due_days = values.get("due_days")
    if due_days is not None and not 0 <= due_days <= 3650:
        raise InvalidInput(message("le délai de traitement (due_days) doit être compris entre 0 et 3650 jours"))
    return values | {"circuit": templates} | ({"ged_folder": ged_folder} if "ged_folder" in values else {})


def check_signature_count(templates: list[dict[str, Any]], signature_format: str, subtype_name: str | None) -> None:
    """A PES bordereau carries one XAdES signature (xades.sign_pes refuses a signed one): a circuit signing it
    twice would leave every folder stuck at its second signature, so it is refused here, where it is made, and
    again when a folder is created or sent (a sous-type saved before this rule may still have one).

    :raises InvalidInput: a XAdES circuit with more than one signature.
    """
    count = circuits.signature_count(templates)
    if signature_format == "xades" and count > 1:
        raise InvalidInput(
            message(
                "sous-type « %(subtype_name)s » : un flux PES (XAdES) ne reçoit qu'une signature par bordereau, "
                "or son circuit en prévoit %(count)s (étapes de signature, cachet serveur, signature externe) : "
                "n'en gardez qu'une (une étape de signature à plusieurs bureaux en mode « any »)",
                subtype_name=subtype_name or "",
                count=count,
            )
        )


def create_subtype(session: Session, principal: Principal, type_id: str, values: dict[str, Any]) -> Subtype:
    """Create a sous-type of a type: its circuit (the tenant's desks only), seal identity, rules.

    Raises Forbidden, NotFound (type, desk, seal identity), InvalidInput (circuit), Conflict (name taken).
    """
    _require_admin(principal)
    parent = get_type(session, principal.tenant_id, type_id)
    values = _check_subtype_values(session, principal.tenant_id, values, parent.signature_format)
    _check_subtype_name(session, parent.id, values["name"])
    row = Subtype(
        tenant_id=principal.tenant_id, type_id=parent.id, **{k: v for k, v in values.items() if k in _SUBTYPE_FIELDS}
    )
    session.add(row)
    _flush_unique(session, message("un sous-type « %(name)s » existe déjà pour ce type", name=values["name"]))
    _audit(session, principal, "parapheur.subtype.created", "subtype", row.id, name=row.name, type=parent.name)
    session.commit()
    return row


def _check_subtype_name(session: Session, type_id: str, name: str, subtype_id: str | None = None) -> None:
    query = select(Subtype.id).where(Subtype.type_id == type_id, Subtype.name == name)
    if subtype_id is not None:
        query = query.where(Subtype.id != subtype_id)
    if session.execute(query).first() is not None:
        raise Conflict(message("un sous-type « %(name)s » existe déjà pour ce type", name=name))


def update_subtype(session: Session, principal: Principal, subtype_id: str, changes: dict[str, Any]) -> Subtype:
    """Change a sous-type; folders already sent keep the circuit they were given."""
    _require_admin(principal)
    row = get_subtype(session, principal.tenant_id, subtype_id)
    changes = _without_nulls(changes, ("seal_identity_id", "due_days", "ged_folder"))
    merged = _merged(row, _SUBTYPE_FIELDS, changes)
    merged = _check_subtype_values(session, principal.tenant_id, merged, row.type.signature_format)
    if "name" in changes:
        _check_subtype_name(session, row.type_id, changes["name"], row.id)
    taken = message("un sous-type « %(name)s » existe déjà pour ce type", name=merged["name"])
    _save_changes(session, principal, row, "subtype", _SUBTYPE_FIELDS, changes, merged, taken)
    return row


def delete_subtype(session: Session, principal: Principal, subtype_id: str) -> None:
    """Delete a sous-type no folder uses (Conflict otherwise)."""
    _require_admin(principal)
    row = get_subtype(session, principal.tenant_id, subtype_id)
    if session.execute(select(Folder.id).where(Folder.subtype_id == row.id)).first() is not None:
        raise Conflict(
            message("le sous-type « %(row_name)s » a des dossiers : il ne peut plus être supprimé", row_name=row.name)
        )
    _audit(session, principal, "parapheur.subtype.deleted", "subtype", row.id, name=row.name)
    session.delete(row)
    session.commit()


# ---------------------------------------------------------------------------------------------------------
# The trust list: certificates that signature chains must lead to


def add_trust_anchors(session: Session, principal: Principal, data: bytes, filename: str) -> list[TrustAnchor]:
    """Add the certificates of a PEM (one or several) or DER file to the tenant's trust list; known ones are
    kept as they are. Raises Forbidden, InvalidInput (not a certificate)."""
    _require_admin(principal)
    anchors = []
    for certificate in verification.load_certificates(data, filename):
        der = verification.der(certificate)
        digest = hashlib.sha256(der).hexdigest()
        known = select(TrustAnchor).where(TrustAnchor.tenant_id == principal.tenant_id, TrustAnchor.sha256 == digest)
        anchor = session.execute(known).scalar_one_or_none()
        if anchor is None:
            values = {
                "tenant_id": principal.tenant_id,
                "sha256": digest,
                "subject": certificate.subject.rfc4514_string()[:500],
                "not_after": certificate.not_valid_after_utc,
                "certificate_der": der,
                "added_by": principal.username,
            }
            # The same file sent twice at once: the second finds the first's certificate, as if sent after it.
            added = insert_once(session, TrustAnchor, values, ("tenant_id", "sha256"))
            anchor = session.execute(known).scalar_one()
            if added:
                _audit(session, principal, "parapheur.trust.added", "certificate", anchor.id, subject=anchor.subject)
        anchors.append(anchor)
    session.commit()
    return anchors


def trust_anchors(session: Session, tenant_id: str) -> list[TrustAnchor]:
    query = select(TrustAnchor).where(TrustAnchor.tenant_id == tenant_id).order_by(TrustAnchor.subject)
    return list(session.execute(query).scalars())


def remove_trust_anchor(session: Session, principal: Principal, anchor_id: str) -> None:
    _require_admin(principal)
    anchor = session.execute(
        select(TrustAnchor).where(TrustAnchor.tenant_id == principal.tenant_id, TrustAnchor.id == anchor_id)
    ).scalar_one_or_none()
    if anchor is None:
        raise NotFound(message("certificat de confiance %(anchor_id)s introuvable", anchor_id=anchor_id))
    session.delete(anchor)
    _audit(session, principal, "parapheur.trust.removed", "certificate", anchor.id, subject=anchor.subject)
    session.commit()
