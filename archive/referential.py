"""The tenant's referential, as its archival system knows it: management rules and accepted digest algorithms.

Packages are checked against it before they leave (archive.checks): a rule the SAE does not know, or a
digest it does not recompute, is a refusal found here rather than at ingest. Without a referential, rule
identifiers are not checked and SHA-512 (Vitam's algorithm) is the only digest accepted.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from archive.checks import DEFAULT_DIGEST_ALGORITHMS, BusinessRules
from archive.models import Referential
from archive.schemas import ReferentialIn
from socle import audit
from socle.auth import Principal, Role
from socle.db import utcnow
from socle.errors import InvalidInput, NotFound, message

__all__ = ["business_rules", "delete_referential", "get_referential", "set_referential"]


def get_referential(session: Session, tenant_id: str) -> Referential | None:
    """The tenant's referential, None when none was ever set."""
    return session.get(Referential, tenant_id)


def set_referential(session: Session, principal: Principal, body: ReferentialIn) -> Referential:
    """Replace the tenant's referential (archiviste). Raises InvalidInput for a rule id given twice."""
    principal.require(Role.ARCHIVISTE)
    seen: set[str] = set()
    for rule in body.rules:
        if rule.id in seen:
            raise InvalidInput(
                message("la règle « %(rule_id)s » figure deux fois dans le référentiel", rule_id=rule.id)
            )
        seen.add(rule.id)
    referential = session.get(Referential, principal.tenant_id, with_for_update=True)
    if referential is None:
        referential = Referential(tenant_id=principal.tenant_id)
        session.add(referential)
    referential.rules = [rule.model_dump() for rule in body.rules]
    referential.digest_algorithms = list(dict.fromkeys(body.digest_algorithms))
    referential.updated_by, referential.updated_at = principal.username, utcnow()
    session.flush()
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="archive.referential.updated",
        object_type="referential",
        object_id=principal.tenant_id,
        details={"rules": sorted(seen), "digest_algorithms": referential.digest_algorithms},
    )
    session.commit()
    return referential


def delete_referential(session: Session, principal: Principal) -> None:
    """Remove the tenant's referential (archiviste): rules are no longer checked, SHA-512 alone is accepted.
    Raises NotFound when there is none."""
    principal.require(Role.ARCHIVISTE)
    referential = session.get(Referential, principal.tenant_id, with_for_update=True)
    if referential is None:
        raise NotFound(message("aucun référentiel n'est chargé pour cette collectivité"))
    details = {
        "rules": sorted(rule["id"] for rule in referential.rules),
        "digest_algorithms": list(referential.digest_algorithms),
    }
    session.delete(referential)
    session.flush()
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="archive.referential.deleted",
        object_type="referential",
        object_id=principal.tenant_id,
        details=details,
    )
    session.commit()


def business_rules(session: Session, tenant_id: str) -> BusinessRules:
    """What the business checks need from the tenant's referential."""
    referential = get_referential(session, tenant_id)
    if referential is None:
        return BusinessRules(frozenset(DEFAULT_DIGEST_ALGORITHMS), None)
    return BusinessRules(
        frozenset(referential.digest_algorithms),
        {rule["id"]: rule["category"] for rule in referential.rules},
    )
