"""GED rights: groups × rights (read, write, delete, manage) on folders and document types.

A folder's permissions apply to its whole subtree, until a subfolder with permissions of its own: the nearest
folder of the ancestry that has permissions decides. Where no folder of the ancestry has any permission
(resp. the type has none), everything is open to every user of the tenant. A document needs the right on
both its folder and its type. The role admin has every right. Another tenant's objects are never found.
« manage » on a folder lets one reshape it and set its permissions; on a type, change the type and set its
permissions (only where it is given explicitly, see ``require_type_manage``).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session, selectinload

from ged.models import Document, DocumentType, Folder, Group, GroupMember, Permission
from socle.auth import Principal, Role
from socle.errors import Forbidden, NotFound, message

RIGHTS: tuple[str, ...] = ("read", "write", "delete", "manage")
ALL = frozenset(RIGHTS)
# Messages, so that a refusal names the right in the reader's language.
LABELS = {
    "read": message("lecture"),
    "write": message("écriture"),
    "delete": message("suppression"),
    "manage": message("gestion"),
}
FOLDER, TYPE = "folder", "type"


def is_admin(principal: Principal) -> bool:
    return Role.ADMIN in principal.roles


def my_groups(session: Session, principal: Principal) -> set[str]:
    """The ids of the tenant's groups the user belongs to."""
    rows = session.execute(
        select(GroupMember.group_id)
        .join(Group, Group.id == GroupMember.group_id)
        .where(Group.tenant_id == principal.tenant_id, GroupMember.username == principal.username)
    )
    return set(rows.scalars())


def _permissions(
    session: Session, tenant_id: str, kind: str, targets: Iterable[str] | None = None
) -> dict[str, list[Permission]]:
    query = select(Permission).where(Permission.tenant_id == tenant_id, Permission.target_kind == kind)
    if targets is not None:
        query = query.where(Permission.target_id.in_(list(targets)))
    found: dict[str, list[Permission]] = {}
    for permission in session.execute(query).scalars():
        found.setdefault(permission.target_id, []).append(permission)
    return found


def _granted(permissions: list[Permission], groups: set[str]) -> frozenset[str]:
    return frozenset(right for p in permissions if p.group_id in groups for right in p.rights)


def folder_rights(session: Session, principal: Principal, folder_id: str | None) -> frozenset[str]:
    """The user's rights in a folder (None: outside the plan): from the nearest folder with permissions.

    :raises NotFound: for an unknown folder or one of another tenant.
    """
    if folder_id is None:
        return ALL
    folder = session.get(Folder, folder_id)
    if folder is None or folder.tenant_id != principal.tenant_id:
        raise NotFound(message("dossier %(folder_id)s introuvable", folder_id=folder_id))
    if is_admin(principal):
        return ALL
    ancestry = folder.path.split("/")
    found = _permissions(session, principal.tenant_id, FOLDER, ancestry)
    for ancestor in reversed(ancestry):
        if ancestor in found:
            return _granted(found[ancestor], my_groups(session, principal))
    return ALL


def type_rights(session: Session, principal: Principal, type_id: str | None) -> frozenset[str]:
    """The user's rights on documents of a type (None: untyped)."""
    if type_id is None or is_admin(principal):
        return ALL
    found = _permissions(session, principal.tenant_id, TYPE, [type_id])
    if type_id not in found:
        return ALL
    return _granted(found[type_id], my_groups(session, principal))


def rights_on(session: Session, principal: Principal, document: Document) -> frozenset[str]:
    """What the user may do with a document: the rights given by both its folder and its type."""
    if document.tenant_id != principal.tenant_id:
        return frozenset()
    return folder_rights(session, principal, document.folder_id) & type_rights(session, principal, document.type_id)


def require(session: Session, principal: Principal, document: Document, right: str) -> None:
    """Check the user's ``right`` on a document.

    :raises NotFound: when the user may not even read it (its existence is not revealed).
    :raises Forbidden: when the user may read it but lacks ``right``.
    """
    rights = rights_on(session, principal, document)
    if "read" not in rights:
        raise NotFound(message("document %(document_id)s introuvable", document_id=document.id))
    if right not in rights:
        raise Forbidden(message("droit de %(right)s manquant sur ce document", right=LABELS.get(right, right)))


def require_folder(session: Session, principal: Principal, folder_id: str | None, right: str) -> None:
    """Check the user's ``right`` in a folder (None: outside the plan, open).

    :raises NotFound: unknown folder, another tenant's, or one the user may not read.
    :raises Forbidden: readable but without ``right``.
    """
    rights = folder_rights(session, principal, folder_id)
    if "read" not in rights:
        raise NotFound(message("dossier %(folder_id)s introuvable", folder_id=folder_id))
    if right not in rights:
        raise Forbidden(message("droit de %(right)s manquant sur ce dossier", right=LABELS.get(right, right)))


def require_type(session: Session, principal: Principal, type_id: str | None, right: str) -> None:
    """Check the user's ``right`` on a document type (None: untyped, open).

    :raises NotFound: unknown type or another tenant's.
    :raises Forbidden: without ``right`` on this type.
    """
    if type_id is not None:
        document_type = session.get(DocumentType, type_id)
        if document_type is None or document_type.tenant_id != principal.tenant_id:
            raise NotFound(message("type de document %(type_id)s introuvable", type_id=type_id))
    if right not in type_rights(session, principal, type_id):
        raise Forbidden(message("droit de %(right)s manquant sur ce type de document", right=LABELS.get(right, right)))


def require_type_manage(session: Session, principal: Principal, type_id: str) -> None:
    """Check that the user may change a document type (name, fields, DUA) and its permissions: the role admin,
    or « manage » given on this type to one of the user's groups, as « manage » on a folder lets one reshape
    the folder and set its permissions.

    Unlike its documents, a type without permissions is not open to everyone here: its schema and its DUA
    rule govern all its documents (retention, elimination), so they stay the admin's until a group is given
    « manage » on the type.

    :raises NotFound: unknown type or another tenant's.
    :raises Forbidden: neither admin nor « manage » on this type.
    """
    document_type = session.get(DocumentType, type_id)
    if document_type is None or document_type.tenant_id != principal.tenant_id:
        raise NotFound(message("type de document %(type_id)s introuvable", type_id=type_id))
    if is_admin(principal):
        return
    permissions = _permissions(session, principal.tenant_id, TYPE, [type_id]).get(type_id, [])
    if "manage" not in _granted(permissions, my_groups(session, principal)):
        raise Forbidden(message("droit de %(right)s manquant sur ce type de document", right=LABELS["manage"]))


def managed_type_ids(session: Session, principal: Principal) -> set[str] | None:
    """The ids of the types the user may change, by the rule of ``require_type_manage``; None: all (admin).

    Two small queries (the tenant's permissions on types, the user's groups): cheap enough for a menu.
    """
    if is_admin(principal):
        return None
    found = _permissions(session, principal.tenant_id, TYPE)
    if not found:
        return set()
    groups = my_groups(session, principal)
    return {type_id for type_id, permissions in found.items() if "manage" in _granted(permissions, groups)}


def readable(session: Session, principal: Principal) -> ColumnElement[bool]:
    """A WHERE clause on Document: the tenant's documents the user may read (lists, search).

    The denied folders and types are worked out here, once per call, from the tenant's permissions: the
    clause is then a plain NOT IN, cheap for the database whatever the number of documents.
    """
    tenant = Document.tenant_id == principal.tenant_id
    if is_admin(principal):
        return tenant
    groups = my_groups(session, principal)
    clauses: list[ColumnElement[bool]] = [tenant]
    denied_folders = _denied_folders(session, principal.tenant_id, groups)
    if denied_folders:
        clauses.append(or_(Document.folder_id.is_(None), Document.folder_id.not_in(denied_folders)))
    denied_types = [
        type_id
        for type_id, permissions in _permissions(session, principal.tenant_id, TYPE).items()
        if "read" not in _granted(permissions, groups)
    ]
    if denied_types:
        clauses.append(or_(Document.type_id.is_(None), Document.type_id.not_in(denied_types)))
    return and_(true(), *clauses)


def readable_documents(session: Session, principal: Principal, ids: Iterable[str]) -> dict[str, Document]:
    """Those of ``ids`` the user may read, by id, with their versions (one query): pages that list documents
    by id (a hold, an elimination) show the others by their id alone."""
    query = (
        select(Document)
        .where(Document.id.in_(list(ids)), readable(session, principal))
        .options(selectinload(Document.versions))
    )
    return {document.id: document for document in session.execute(query).scalars()}


def _denied_folders(session: Session, tenant_id: str, groups: set[str]) -> list[str]:
    governed = _permissions(session, tenant_id, FOLDER)
    if not governed:
        return []
    readable_at = {folder_id: "read" in _granted(perms, groups) for folder_id, perms in governed.items()}
    denied: list[str] = []
    for folder_id, path in session.execute(select(Folder.id, Folder.path).where(Folder.tenant_id == tenant_id)):
        for ancestor in reversed(path.split("/")):
            if ancestor in readable_at:
                if not readable_at[ancestor]:
                    denied.append(folder_id)
                break
    return denied


def hidden_folder_ids(session: Session, principal: Principal) -> set[str]:
    """The tenant's folders the user may not read (none for the role admin): what a trail or a path must not
    name. One pass over the tenant's folders: compute it once per answer, not once per folder shown."""
    if is_admin(principal):
        return set()
    return set(_denied_folders(session, principal.tenant_id, my_groups(session, principal)))


def visible_path(path: str, hidden: set[str]) -> list[str]:
    """The ids of a folder's ``path`` (root first) below its deepest ancestor in ``hidden``: a folder readable
    under an unreadable one (its own permissions) is shown without what lies above it."""
    ids = path.split("/")
    for index in range(len(ids) - 1, -1, -1):
        if ids[index] in hidden:
            return ids[index + 1 :]
    return ids


def readable_folder_ids(session: Session, principal: Principal, folder_ids: Iterable[str]) -> set[str]:
    """Those of ``folder_ids`` the user may read (listing a folder's children)."""
    ids = set(folder_ids)
    if is_admin(principal) or not ids:
        return ids
    return ids - set(_denied_folders(session, principal.tenant_id, my_groups(session, principal)))
