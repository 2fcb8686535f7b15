"""the kernel's registry of held objects learns the GED's contents

Interop hands a flow only the objects its tenant holds (``tenant_objects``, kernel revision 0005, which runs
before the services' migrations): every version's content already in the GED is recorded for its document's
tenant, once (a pair already there is left as it is, so the revision may run again after a downgrade).

Revision ID: ged0007
Revises: ged0006
Create Date: 2026-12-02 14:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "ged0007"
down_revision: str | None = "ged0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One statement, run by the database: no row goes through Python, however many versions there are.
_BACKFILL = sa.text(
    "INSERT INTO tenant_objects (tenant_id, object_key, created_at) "
    "SELECT DISTINCT d.tenant_id, v.object_key, :now FROM ged_versions v "
    "JOIN ged_documents d ON d.id = v.document_id "
    "WHERE NOT EXISTS (SELECT 1 FROM tenant_objects t WHERE t.tenant_id = d.tenant_id AND t.object_key = v.object_key)"
).bindparams(sa.bindparam("now", type_=sa.DateTime(timezone=True)))


def upgrade() -> None:
    op.get_bind().execute(_BACKFILL, {"now": datetime.now(UTC)})


def downgrade() -> None:
    # The rows are the kernel's, and true whatever the GED's revision: they stay.
    pass
