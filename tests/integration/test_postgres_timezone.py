"""French servers often run PostgreSQL in Europe/Paris: times must come back in UTC, the audit chain intact."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import select

from socle import audit
from socle.auth import create_tenant
from socle.db import transaction
from socle.migrating import upgrade_all
from socle.models import AuditEntry

pytestmark = pytest.mark.integration


def test_audit_chain_is_intact_on_a_server_outside_utc(postgres_url: str, use_env: Callable[..., None]) -> None:
    use_env(SOCLE_DATABASE_URL=postgres_url.replace("options=", "options=-ctimezone%3DEurope/Paris%20"))
    upgrade_all()
    with transaction() as session:
        # A slug of its own: the schema is shared by the session's PostgreSQL tests (a repeat of this test included).
        tenant = create_tenant(session, f"fuseau-paris-{uuid.uuid4().hex[:10]}", "Commune à l'heure de Paris")
        audit.record(session, tenant_id=tenant.id, actor="system", action="test", object_type="t", object_id="1")

    with transaction() as session:
        times = session.execute(select(AuditEntry.at).where(AuditEntry.tenant_id == tenant.id)).scalars().all()
        assert len(times) == 2 and all(at.utcoffset().total_seconds() == 0 for at in times)
        result = audit.verify(session, tenant.id)
    assert result.intact, result.problems
