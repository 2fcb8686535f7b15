"""The classification plan (plan de classement): a tree of folders per tenant.

``Folder.path`` is the ids from the root to the folder: a subtree is a prefix query, a move rewrites the
paths of the subtree, and a folder cannot move under itself. Creating, renaming, moving or deleting a folder
needs the right « manage » on the folder (on its parent to create); at the root, the role admin or archiviste.
A folder is renamed in place only by a user who may read its parent (names are unique among siblings: see
``_require_readable_parent``).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ged import access
from ged.models import Document, Folder, Permission
from ged.schemas import FolderIn, FolderPatch
from socle import audit
from socle.auth import Principal, Role
from socle.errors import Conflict, Forbidden, InvalidInput, NotFound, message

MAX_DEPTH = 40  # path is 2,000 characters: 40 levels of 36-character ids and their slashes
# The first segment of the CMIS path of a folder under one its reader may not read (ged.cmis._path): no folder
# at the top of the plan takes this name, so that such a path never names another folder.
HIDDEN_SEGMENT = "…"


def get_folder(session: Session, tenant_id: str, folder_id: str, *, for_update: bool = False) -> Folder:
    """:raises NotFound: unknown folder or another tenant's."""
    query = select(Folder).where(Folder.id == folder_id, Folder.tenant_id == tenant_id)
    if for_update:
        query = query.with_for_update()
    folder = session.execute(query).scalar_one_or_none()
    if folder is None:
        raise NotFound(message("dossier %(folder_id)s introuvable", folder_id=folder_id))
    return folder


def folder_at(session: Session, tenant_id: str, reference: str) -> Folder:
    """A folder named by another service: its id, or its path of names from the top (« Ressources humaines/
    Arrêtés »), as an administrator writes it in that service's settings. No right is checked: the service
    files there in the collectivité's name, and the folder's rights then say who reads what it files.

    :raises NotFound: no such folder in the collectivité.
    """
    found = session.execute(
        select(Folder).where(Folder.tenant_id == tenant_id, Folder.id == reference)
    ).scalar_one_or_none()
    if found is not None:
        return found
    folder: Folder | None = None
    for name in (part.strip() for part in reference.split("/") if part.strip()):
        parent = Folder.parent_id.is_(None) if folder is None else Folder.parent_id == folder.id
        folder = session.execute(
            select(Folder).where(Folder.tenant_id == tenant_id, parent, Folder.name == name)
        ).scalar_one_or_none()
        if folder is None:
            break
    if folder is None:
        raise NotFound(message("dossier « %(reference)s » introuvable dans le plan de classement", reference=reference))
    return folder


_YEAR = re.compile(r"(19|20|21)[0-9]{2}")


def year_folder_at(session: Session, tenant_id: str, reference: str, actor: str) -> Folder:
    """:func:`folder_at`, except that a missing last folder named by a year (« Actes/2027 ») under an existing one
    is created there, in the caller's transaction: a service's setting « Actes/{année} » then files the first
    document of each year without anyone making its folder on the 1st of January. It takes its rights from its
    parent, as any folder; its creation is audited for ``actor``. Two jobs creating it at once: one wins (the
    unique name among siblings), the other files into it.

    :raises NotFound: no such folder, and the reference does not end with a year under an existing folder.
    """
    try:
        return folder_at(session, tenant_id, reference)
    except NotFound:
        parent_path, _, last = reference.strip().rstrip("/").rpartition("/")
        if not parent_path.strip() or not _YEAR.fullmatch(last.strip()):
            raise
        try:
            parent = folder_at(session, tenant_id, parent_path)
        except NotFound:
            raise NotFound(
                message("dossier « %(reference)s » introuvable dans le plan de classement", reference=reference)
            ) from None
    if parent.path.count("/") + 1 >= MAX_DEPTH:
        raise InvalidInput(message("le plan de classement ne peut dépasser %(max_depth)s niveaux", max_depth=MAX_DEPTH))
    try:
        with session.begin_nested():
            folder = Folder(tenant_id=tenant_id, parent_id=parent.id, name=last.strip(), path="", created_by=actor)
            session.add(folder)
            session.flush()
            folder.path = f"{parent.path}/{folder.id}"
            session.flush()
    except IntegrityError:  # created meanwhile by another job: file into that one
        return folder_at(session, tenant_id, reference)
    audit.record(
        session,
        tenant_id=tenant_id,
        actor=actor,
        action="ged.folder.created",
        object_type="folder",
        object_id=folder.id,
        details={"name": folder.name, "parent_id": parent.id, "cause": "année"},
    )
    return folder


def _require_manage(session: Session, principal: Principal, folder_id: str | None) -> None:
    if folder_id is None:
        principal.require(Role.ARCHIVISTE)  # the plan's top level is the archivist's or the admin's
    else:
        access.require_folder(session, principal, folder_id, "manage")


def create_folder(session: Session, principal: Principal, body: FolderIn) -> Folder:
    """Create a folder under ``parent_id`` (or at the root).

    :raises NotFound: unknown parent; Forbidden: no right « manage »; Conflict: the name exists there.
    """
    _require_manage(session, principal, body.parent_id)
    parent = get_folder(session, principal.tenant_id, body.parent_id) if body.parent_id else None
    if parent is not None and parent.path.count("/") + 1 >= MAX_DEPTH:
        raise InvalidInput(message("le plan de classement ne peut dépasser %(max_depth)s niveaux", max_depth=MAX_DEPTH))
    _check_name_free(session, principal.tenant_id, body.parent_id, body.name)
    folder = Folder(
        tenant_id=principal.tenant_id,
        parent_id=body.parent_id,
        name=body.name.strip(),
        code=body.code,
        path="",
        created_by=principal.username,
    )
    session.add(folder)
    session.flush()
    folder.path = f"{parent.path}/{folder.id}" if parent else folder.id
    _audit(session, principal, "ged.folder.created", folder, name=folder.name, parent_id=folder.parent_id)
    _commit(session, folder.name)
    return folder


def update_folder(session: Session, principal: Principal, folder_id: str, patch: FolderPatch) -> Folder:
    """Rename and/or move a folder with its subtree.

    :raises InvalidInput: a move under itself or one of its subfolders; Conflict: the name exists there;
        Forbidden: no right « manage », or a rename in place under a parent the user may not read.
    """
    changes = patch.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidInput(message("aucune modification demandée"))
    folder = get_folder(session, principal.tenant_id, folder_id, for_update=True)
    _require_manage(session, principal, folder.id)
    if "name" in changes and changes["name"] is None:
        raise InvalidInput(message("name : ce champ ne peut pas être effacé"))
    name = (changes.get("name") or folder.name).strip()
    parent_id = changes.get("parent_id", folder.parent_id)
    if parent_id != folder.parent_id:
        # The destination's right first: a name taken in a folder the user may not read must answer as an
        # unknown folder does, not 409, which would tell its subfolders' names one guess at a time.
        _require_manage(session, principal, parent_id)
    elif name != folder.name:
        _require_readable_parent(session, principal, folder)  # the same guessing, in the folder's own parent
    if parent_id != folder.parent_id or name != folder.name:
        _check_name_free(session, principal.tenant_id, parent_id, name, exclude=folder.id)
    if parent_id != folder.parent_id:
        _move(session, principal, folder, parent_id)
    folder.name = name
    if "code" in changes:
        folder.code = changes["code"] or None
    _audit(session, principal, "ged.folder.updated", folder, name=name, parent_id=parent_id, changes=sorted(changes))
    _commit(session, name)
    return folder


def _require_readable_parent(session: Session, principal: Principal, folder: Folder) -> None:
    """Refuse a rename in place when the user may not read the folder's parent (the folder has permissions of
    its own under it): the name is checked against the parent's subfolders, and a 409 would tell, one guess at
    a time, the names of folders this user cannot see. Refused whatever the name, so the answer tells nothing.

    Not « manage » on the parent: a manager of the folder renames it under a parent they may read, as before.

    :raises Forbidden: the parent is hidden from the user.
    """
    if folder.parent_id is None or "read" in access.folder_rights(session, principal, folder.parent_id):
        return
    raise Forbidden(
        message(
            "renommage refusé : vous n'avez pas accès au dossier qui contient celui-ci ; demandez-le à une "
            "personne qui y a accès"
        )
    )


def _move(session: Session, principal: Principal, folder: Folder, parent_id: str | None) -> None:
    _require_manage(session, principal, parent_id)
    parent = get_folder(session, principal.tenant_id, parent_id) if parent_id else None
    if parent is not None and (parent.id == folder.id or parent.path.startswith(folder.path + "/")):
        raise InvalidInput(
            message("un dossier ne peut pas être déplacé dans lui-même ni dans l'un de ses sous-dossiers")
        )
    old_prefix = folder.path
    new_prefix = f"{parent.path}/{folder.id}" if parent else folder.id
    subtree = list(
        session.execute(
            select(Folder).where(Folder.tenant_id == folder.tenant_id, Folder.path.like(old_prefix + "/%"))
        ).scalars()
    )
    depth = max([f.path.count("/") for f in subtree] + [folder.path.count("/")]) - old_prefix.count("/")
    if new_prefix.count("/") + depth + 1 > MAX_DEPTH:
        raise InvalidInput(message("le plan de classement ne peut dépasser %(max_depth)s niveaux", max_depth=MAX_DEPTH))
    for child in subtree:
        child.path = new_prefix + child.path[len(old_prefix) :]
    folder.path, folder.parent_id = new_prefix, parent_id


def delete_folder(session: Session, principal: Principal, folder_id: str) -> None:
    """Delete an empty folder. :raises Conflict: it has subfolders or documents (even in the trash)."""
    folder = get_folder(session, principal.tenant_id, folder_id, for_update=True)
    _require_manage(session, principal, folder.id)
    child = session.execute(select(Folder.id).where(Folder.parent_id == folder.id).limit(1)).first()
    document = session.execute(select(Document.id).where(Document.folder_id == folder.id).limit(1)).first()
    if child is not None or document is not None:
        raise Conflict(
            message("le dossier « %(folder_name)s » n'est pas vide : il ne peut être supprimé", folder_name=folder.name)
        )
    for permission in session.execute(
        select(Permission).where(Permission.target_kind == "folder", Permission.target_id == folder.id)
    ).scalars():
        session.delete(permission)
    _audit(session, principal, "ged.folder.deleted", folder, name=folder.name, parent_id=folder.parent_id)
    session.delete(folder)
    session.commit()


def children(session: Session, principal: Principal, folder_id: str | None) -> list[Folder]:
    """The subfolders the user may read, by name."""
    query = select(Folder).where(Folder.tenant_id == principal.tenant_id, Folder.parent_id == folder_id)
    folders = list(session.execute(query.order_by(Folder.name, Folder.id)).scalars())
    visible = access.readable_folder_ids(session, principal, [folder.id for folder in folders])
    return [folder for folder in folders if folder.id in visible]


def ancestors(session: Session, folder: Folder) -> list[Folder]:
    """The folders from the root down to ``folder`` included, readable or not (what a user may be shown:
    ``visible_ancestors``)."""
    ids = folder.path.split("/")
    found = {f.id: f for f in session.execute(select(Folder).where(Folder.id.in_(ids))).scalars()}
    return [found[i] for i in ids if i in found]


def visible_ancestors(session: Session, principal: Principal, folder: Folder) -> tuple[list[Folder], bool]:
    """The folders from the root down to ``folder`` that the user may see, and whether that is all of them.

    A folder may be readable under one that is not (permissions of its own): the trail then starts below the
    deepest unreadable ancestor, whose name and id are never shown (its existence neither: no « … »).
    """
    hidden = access.hidden_folder_ids(session, principal)
    trail = ancestors(session, folder)
    shown = set(access.visible_path(folder.path, hidden))
    visible = [item for item in trail if item.id in shown]
    return visible, len(visible) == len(trail)


def _check_name_free(
    session: Session, tenant_id: str, parent_id: str | None, name: str, exclude: str | None = None
) -> None:
    if parent_id is None and name.strip() == HIDDEN_SEGMENT:
        raise InvalidInput(
            message("name : « %(name)s » est réservé en haut du plan de classement", name=HIDDEN_SEGMENT),
            field="name",
        )
    query = select(func.count()).where(
        Folder.tenant_id == tenant_id,
        Folder.parent_id.is_(None) if parent_id is None else Folder.parent_id == parent_id,
        Folder.name == name.strip(),
    )
    if exclude is not None:
        query = query.where(Folder.id != exclude)
    if session.execute(query).scalar_one():
        raise Conflict(message("un dossier « %(name)s » existe déjà à cet endroit", name=name.strip()))


def _commit(session: Session, name: str) -> None:
    try:
        session.commit()
    except IntegrityError:  # two requests creating the same name at once: the unique constraint decides
        session.rollback()
        raise Conflict(message("un dossier « %(name)s » existe déjà à cet endroit", name=name)) from None


def _audit(session: Session, principal: Principal, action: str, folder: Folder, **details: Any) -> None:
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action=action,
        object_type="folder",
        object_id=folder.id,
        details=details,
    )
