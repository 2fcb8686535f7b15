"""the parapheur claims, in the kernel's registry, the objects it holds: the rows of unknown holder of its folders

Kernel revision 0006 (run before the services' migrations) gave every row already there the holder "". The
parapheur claims those of its folder documents (original, signed copy, detached signature, for the folder's
tenant), and adds its own row where another holder has the pair already (a document the GED sent it: the GED
may have claimed it first, ged0008; the two revisions may run in either order). Rows no service claims stay
unknown: their objects are never deleted. A row already the parapheur's is left as it is, so the revision may
run again after a downgrade.

Revision ID: par0007
Revises: par0006
Create Date: 2026-12-02 18:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "par0007"
down_revision: str | None = "par0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The (tenant, key) pairs the parapheur holds, as a subquery's condition on ``t`` (a tenant_objects row).
_HELD = (
    "SELECT 1 FROM parapheur_documents d JOIN parapheur_folders f ON f.id = d.folder_id"
    " WHERE f.tenant_id = {t}.tenant_id"
    " AND (d.key = {t}.object_key OR d.signed_key = {t}.object_key OR d.signature_key = {t}.object_key)"
)
_OWN = "SELECT 1 FROM tenant_objects o WHERE o.tenant_id = {t}.tenant_id AND o.object_key = {t}.object_key"

# One statement each, run by the database: no row goes through Python.
_CLAIM = sa.text(
    "UPDATE tenant_objects SET holder = 'parapheur' WHERE holder = ''"
    f" AND EXISTS ({_HELD.format(t='tenant_objects')})"
    f" AND NOT EXISTS ({_OWN.format(t='tenant_objects')} AND o.holder = 'parapheur')"
)
_ADD = sa.text(
    "INSERT INTO tenant_objects (tenant_id, object_key, holder, created_at)"
    " SELECT DISTINCT t.tenant_id, t.object_key, 'parapheur', :now FROM tenant_objects t"
    f" WHERE t.holder <> 'parapheur' AND EXISTS ({_HELD.format(t='t')})"
    f" AND NOT EXISTS ({_OWN.format(t='t')} AND o.holder = 'parapheur')"
).bindparams(sa.bindparam("now", type_=sa.DateTime(timezone=True)))


def upgrade() -> None:
    connection = op.get_bind()
    connection.execute(_CLAIM)
    connection.execute(_ADD, {"now": datetime.now(UTC)})


def downgrade() -> None:
    # The rows are the kernel's, and true whatever the parapheur's revision: they stay.
    pass
