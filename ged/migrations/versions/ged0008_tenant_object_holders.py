"""the GED claims, in the kernel's registry, the objects it holds: the rows of unknown holder its documents need

Kernel revision 0006 (run before the services' migrations) gave every row already there the holder "". The GED
claims those its documents still need (a version's content, for its document's tenant, unless the document was
eliminated), and adds its own row where another holder has the pair already (the parapheur claimed it first,
par0007: the two revisions may run in either order). Rows no service claims stay unknown: their objects are
never deleted. A row already the GED's is left as it is, so the revision may run again after a downgrade.

Revision ID: ged0008
Revises: ged0007
Create Date: 2026-12-02 18:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "ged0008"
down_revision: str | None = "ged0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The (tenant, key) pairs the GED needs, as a subquery's condition on ``t`` (a tenant_objects row).
_NEEDED = (
    "SELECT 1 FROM ged_versions v JOIN ged_documents d ON d.id = v.document_id"
    " WHERE d.tenant_id = {t}.tenant_id AND v.object_key = {t}.object_key"
    " AND (d.disposal IS NULL OR d.disposal <> 'eliminated')"
)
_OWN = "SELECT 1 FROM tenant_objects o WHERE o.tenant_id = {t}.tenant_id AND o.object_key = {t}.object_key"

# One statement each, run by the database: no row goes through Python.
_CLAIM = sa.text(
    "UPDATE tenant_objects SET holder = 'ged' WHERE holder = ''"
    f" AND EXISTS ({_NEEDED.format(t='tenant_objects')})"
    f" AND NOT EXISTS ({_OWN.format(t='tenant_objects')} AND o.holder = 'ged')"
)
_ADD = sa.text(
    "INSERT INTO tenant_objects (tenant_id, object_key, holder, created_at)"
    " SELECT DISTINCT t.tenant_id, t.object_key, 'ged', :now FROM tenant_objects t"
    f" WHERE t.holder <> 'ged' AND EXISTS ({_NEEDED.format(t='t')})"
    f" AND NOT EXISTS ({_OWN.format(t='t')} AND o.holder = 'ged')"
).bindparams(sa.bindparam("now", type_=sa.DateTime(timezone=True)))


def upgrade() -> None:
    connection = op.get_bind()
    connection.execute(_CLAIM)
    connection.execute(_ADD, {"now": datetime.now(UTC)})


def downgrade() -> None:
    # The rows are the kernel's, and true whatever the GED's revision: they stay.
    pass
