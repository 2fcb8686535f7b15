"""The tenant's connectors to its archival system, as the interop service tells them (the archive cannot read them).

Interop sends the whole list through the queue (messages.ARCHIVE_RECORD_SAE_CONNECTORS) whenever one of them is
created, changed, enabled, disabled or deleted, and again on demand (``socle interop sae-connectors``). The
archive keeps the list with the greatest version it has received: the transfer page offers its enabled
connectors, and a transfer is not sent through a name the list does not have.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from archive.models import SaeConnectorList
from socle.db import utcnow
from socle.errors import InvalidInput, message

NAME_MAX = 100  # as interop's connector names, and the transfer's connector column


@dataclass(frozen=True)
class SaeConnector:
    name: str
    kind: str
    enabled: bool


def record(session: Session, tenant_id: str, version: int, connectors: list[dict[str, Any]]) -> None:
    """Keep this list, unless one of this version or a later one is kept already.

    One statement (an insert that updates only an older row): two jobs at once, or one run twice, leave the
    greatest version, whatever their order.

    :raises InvalidInput: not a list of connectors (name, kind, enabled).
    """
    rows = _checked(version, connectors)
    values = {"tenant_id": tenant_id, "version": version, "connectors": rows, "updated_at": utcnow()}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert(SaeConnectorList) if dialect == "postgresql" else sqlite.insert(SaeConnectorList)
    session.execute(
        insert.values(**values).on_conflict_do_update(
            index_elements=[SaeConnectorList.tenant_id],
            set_={name: insert.excluded[name] for name in ("version", "connectors", "updated_at")},
            where=SaeConnectorList.version < insert.excluded.version,
        )
    )


def _checked(version: Any, connectors: Any) -> list[dict[str, Any]]:
    unreadable = InvalidInput(message("liste de connecteurs du système d'archivage illisible"))
    if not isinstance(version, int) or isinstance(version, bool) or not isinstance(connectors, list):
        raise unreadable
    rows = []
    for item in connectors:
        item = item if isinstance(item, dict) else {}
        name, kind = item.get("name"), item.get("kind")
        if not (isinstance(name, str) and 0 < len(name) <= NAME_MAX and isinstance(kind, str)):
            raise unreadable
        rows.append({"name": name, "kind": kind[:30], "enabled": item.get("enabled") is True})
    return sorted(rows, key=lambda row: row["name"])


def known(session: Session, tenant_id: str) -> list[SaeConnector] | None:
    """The tenant's SAE connectors (enabled or not) by name, or None while the interop service has told none."""
    found = session.execute(
        select(SaeConnectorList.connectors).where(SaeConnectorList.tenant_id == tenant_id)
    ).scalar_one_or_none()
    if found is None:
        return None
    return [SaeConnector(str(row["name"]), str(row["kind"]), bool(row["enabled"])) for row in found]


def check(session: Session, tenant_id: str, name: str) -> None:
    """Refuse a connector the tenant's known list does not offer: unknown to it, or disabled. Nothing is refused
    while the list is not known, or known and empty: the interop service then has the last word.

    :raises InvalidInput: with the connectors that can be used, in French (``usable_connectors`` too).
    """
    connectors = known(session, tenant_id)
    if not connectors:
        return
    usable = [connector.name for connector in connectors if connector.enabled]
    if name in usable:
        return
    listed = ", ".join(usable)
    if not usable:
        detail = message(
            "aucun connecteur du système d'archivage de la collectivité n'est actif : le versement ne peut pas être "
            "envoyé par « %(connector)s » ; demandez à un administrateur d'en activer un",
            connector=name,
        )
    elif any(connector.name == name for connector in connectors):
        detail = message(
            "le connecteur « %(connector)s » est désactivé ; connecteurs du système d'archivage actifs : %(usable)s",
            connector=name,
            usable=listed,
        )
    else:
        detail = message(
            "le connecteur « %(connector)s » n'est pas un connecteur du système d'archivage de la collectivité ; "
            "connecteurs connus : %(usable)s",
            connector=name,
            usable=listed,
        )
    raise InvalidInput(detail, connector=name, usable_connectors=usable)
