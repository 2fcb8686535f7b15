"""Who sees which folder, as SQL clauses (lists are filtered in the database, never in Python).

Like i-Parapheur, a folder is visible only to: its creator; the members of the desks of its steps (past,
current, future: also a desk that acted then transferred the step away), and of the desks holding an active
delegation from one of those (for the sous-types it covers); the desks asked for an opinion (and their
delegates); administrators. A draft that was never sent is its creator's (and administrators') only.
Everyone else is told the folder does not exist (404): its existence is not revealed.

A step's desks are a JSON list of desk ids. The test "this list names that desk" is a LIKE on the list's JSON
text for the quoted id, which SQLite and PostgreSQL (JSON and JSONB alike) both answer the same: desk ids are
UUIDs, so a quoted id cannot match inside another value.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ColumnElement, String, and_, cast, exists, false, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from parapheur import config
from parapheur.models import Delegation, Folder, OpinionRequest, Step, StepAct
from socle.auth import Principal, Role

_Column = ColumnElement[Any] | InstrumentedAttribute[Any]


def names_desk(column: _Column, desk_id: str) -> ColumnElement[bool]:
    """SQL: the JSON list of desk ids in ``column`` contains ``desk_id`` (portable: SQLite and PostgreSQL)."""
    quoted = '"' + desk_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + '"'
    return cast(column, String).like(f"%{quoted}%", escape="\\")


def names_any_desk(column: _Column, desk_ids: Iterable[str]) -> ColumnElement[bool]:
    """SQL: the JSON list in ``column`` contains at least one of ``desk_ids`` (false for none)."""
    clauses = [names_desk(column, desk_id) for desk_id in sorted(set(desk_ids))]
    return or_(*clauses) if clauses else false()


def involves_desks(desk_ids: Iterable[str]) -> ColumnElement[bool]:
    """SQL on Folder: one of these desks is named by a step, acted on a step, or was asked for an opinion."""
    wanted = sorted(set(desk_ids))
    if not wanted:
        return false()
    in_steps = exists().where(Step.folder_id == Folder.id, names_any_desk(Step.desk_ids, wanted))
    acted = exists().where(
        StepAct.folder_id == Folder.id, or_(StepAct.desk_id.in_(wanted), StepAct.on_behalf_of_desk_id.in_(wanted))
    )
    asked = exists().where(OpinionRequest.folder_id == Folder.id, OpinionRequest.desk_id.in_(wanted))
    return or_(in_steps, acted, asked)


def delegations_to(session: Session, tenant_id: str, desk_ids: Iterable[str]) -> list[Delegation]:
    """The delegations running now towards one of ``desk_ids``."""
    held = set(desk_ids)
    return [d for d in config.active_delegations(session, tenant_id) if d.to_desk_id in held]


def visible_clause(session: Session, principal: Principal) -> ColumnElement[bool]:
    """SQL on Folder: the folders of the principal's tenant this principal may see (see the module's rule).

    The caller adds ``Folder.tenant_id == principal.tenant_id``; this clause only narrows within a tenant.
    """
    if Role.ADMIN in principal.roles:
        return true()
    held = config.user_desk_ids(session, principal.tenant_id, principal.username)
    through: list[ColumnElement[bool]] = [involves_desks(held)] if held else []
    for delegation in delegations_to(session, principal.tenant_id, held):
        clause = involves_desks([delegation.from_desk_id])
        if delegation.subtype_ids:
            clause = and_(clause, Folder.subtype_id.in_(delegation.subtype_ids))
        through.append(clause)
    own = Folder.created_by == principal.username
    if not through:
        return own
    return or_(own, and_(Folder.sent_at.is_not(None), or_(*through)))


def can_see(session: Session, principal: Principal, folder: Folder) -> bool:
    """Whether this principal may see this folder (the same rule as :func:`visible_clause`, in one query)."""
    if folder.tenant_id != principal.tenant_id:
        return False
    if Role.ADMIN in principal.roles or folder.created_by == principal.username:
        return True
    query = select(Folder.id).where(Folder.id == folder.id, visible_clause(session, principal))
    return session.execute(query).first() is not None
