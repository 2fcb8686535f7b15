"""the kernel's registry of held objects learns the parapheur's documents

Interop hands a flow only the objects its tenant holds (``tenant_objects``, kernel revision 0005, which runs
before the services' migrations): every folder document's original, signed copy and detached signature
already kept is recorded for its folder's tenant, once (a pair already there is left as it is).

Revision ID: par0006
Revises: par0005
Create Date: 2026-12-02 14:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "par0006"
down_revision: str | None = "par0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One statement, run by the database (UNION drops the repeats): no row goes through Python.
_BACKFILL = sa.text(
    "INSERT INTO tenant_objects (tenant_id, object_key, created_at) "
    "SELECT held.tenant_id, held.object_key, :now FROM ("
    " SELECT f.tenant_id AS tenant_id, d.key AS object_key FROM parapheur_documents d"
    " JOIN parapheur_folders f ON f.id = d.folder_id"
    " UNION SELECT f.tenant_id, d.signed_key FROM parapheur_documents d"
    " JOIN parapheur_folders f ON f.id = d.folder_id WHERE d.signed_key IS NOT NULL"
    " UNION SELECT f.tenant_id, d.signature_key FROM parapheur_documents d"
    " JOIN parapheur_folders f ON f.id = d.folder_id WHERE d.signature_key IS NOT NULL"
    ") held WHERE NOT EXISTS (SELECT 1 FROM tenant_objects t"
    " WHERE t.tenant_id = held.tenant_id AND t.object_key = held.object_key)"
).bindparams(sa.bindparam("now", type_=sa.DateTime(timezone=True)))


def upgrade() -> None:
    op.get_bind().execute(_BACKFILL, {"now": datetime.now(UTC)})


def downgrade() -> None:
    # The rows are the kernel's, and true whatever the parapheur's revision: they stay.
    pass
