"""Managing GED groups, their members and their permissions on folders and document types.

Groups are the admin's; the permissions of a folder or a type are set by the admin or by whoever has
« manage » on it (on a type, only when given explicitly: see ``access.require_type_manage``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ged import access
from ged.models import Folder, Group, GroupMember, Permission
from ged.schemas import PermissionIn
from socle import audit
from socle.auth import Principal, Role
from socle.errors import Conflict, InvalidInput, NotFound, message
from socle.models import User


def create_group(session: Session, principal: Principal, name: str) -> Group:
    """:raises Conflict: the name exists in the tenant."""
    principal.require(Role.ADMIN)
    name = name.strip()
    exists = session.execute(select(Group.id).where(Group.tenant_id == principal.tenant_id, Group.name == name))
    if exists.first() is not None:
        raise Conflict(message("le groupe « %(name)s » existe déjà", name=name))
    group = Group(tenant_id=principal.tenant_id, name=name)
    session.add(group)
    session.flush()
    _audit(session, principal, "ged.group.created", "group", group.id, name=name)
    session.commit()
    return group


def get_group(session: Session, tenant_id: str, group_id: str) -> Group:
    group = session.get(Group, group_id)
    if group is None or group.tenant_id != tenant_id:
        raise NotFound(message("groupe %(group_id)s introuvable", group_id=group_id))
    return group


def list_groups(session: Session, tenant_id: str) -> list[Group]:
    return list(session.execute(select(Group).where(Group.tenant_id == tenant_id).order_by(Group.name)).scalars())


def delete_group(session: Session, principal: Principal, group_id: str) -> None:
    """Delete a group with its memberships and permissions."""
    principal.require(Role.ADMIN)
    group = get_group(session, principal.tenant_id, group_id)
    for permission in session.execute(select(Permission).where(Permission.group_id == group.id)).scalars():
        session.delete(permission)
    _audit(session, principal, "ged.group.deleted", "group", group.id, name=group.name)
    session.delete(group)
    session.commit()


def add_member(session: Session, principal: Principal, group_id: str, username: str) -> Group:
    """:raises InvalidInput: no such user in the tenant."""
    principal.require(Role.ADMIN)
    group = get_group(session, principal.tenant_id, group_id)
    user = session.execute(
        select(User.id).where(User.tenant_id == principal.tenant_id, User.username == username)
    ).first()
    if user is None:
        raise InvalidInput(
            message("username : utilisateur « %(username)s » inconnu dans la collectivité", username=username)
        )
    if all(member.username != username for member in group.members):
        group.members.append(GroupMember(username=username))
        _audit(session, principal, "ged.group.member_added", "group", group.id, username=username)
    session.commit()
    return group


def remove_member(session: Session, principal: Principal, group_id: str, username: str) -> Group:
    principal.require(Role.ADMIN)
    group = get_group(session, principal.tenant_id, group_id)
    member = next((m for m in group.members if m.username == username), None)
    if member is None:
        raise NotFound(
            message(
                "« %(username)s » n'est pas membre du groupe « %(group_name)s »",
                username=username,
                group_name=group.name,
            )
        )
    group.members.remove(member)
    _audit(session, principal, "ged.group.member_removed", "group", group.id, username=username)
    session.commit()
    return group


def permissions(session: Session, tenant_id: str, kind: str, target_id: str) -> list[Permission]:
    query = select(Permission).where(
        Permission.tenant_id == tenant_id, Permission.target_kind == kind, Permission.target_id == target_id
    )
    return list(session.execute(query.order_by(Permission.group_id)).scalars())


def set_permissions(
    session: Session, principal: Principal, kind: str, target_id: str, wanted: list[PermissionIn]
) -> list[Permission]:
    """Replace the permissions of a folder (``kind`` folder) or a type (``kind`` type); [] opens it again.

    :raises NotFound: unknown target or group; Forbidden: not allowed to manage it.
    """
    _check_target(session, principal, kind, target_id)
    groups = {p.group_id for p in wanted}
    if len(groups) != len(wanted):
        raise InvalidInput(message("un groupe figure deux fois dans les permissions"))
    for group_id in groups:
        get_group(session, principal.tenant_id, group_id)
    for permission in permissions(session, principal.tenant_id, kind, target_id):
        session.delete(permission)
    session.flush()
    for p in wanted:
        rights = [right for right in access.RIGHTS if right in p.rights]
        session.add(
            Permission(
                tenant_id=principal.tenant_id, group_id=p.group_id, target_kind=kind, target_id=target_id, rights=rights
            )
        )
    session.flush()
    shown = {p.group_id: sorted(p.rights) for p in wanted}
    _audit(session, principal, "ged.permissions.set", kind, target_id, permissions=shown)
    session.commit()
    return permissions(session, principal.tenant_id, kind, target_id)


def _check_target(session: Session, principal: Principal, kind: str, target_id: str) -> None:
    if kind == access.FOLDER:
        folder = session.get(Folder, target_id)
        if folder is None or folder.tenant_id != principal.tenant_id:
            raise NotFound(message("dossier %(target_id)s introuvable", target_id=target_id))
        access.require_folder(session, principal, target_id, "manage")
        return
    access.require_type_manage(session, principal, target_id)


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
