"""a folder keeps why the GED could not file its signed document

Until now the failure was only a line of the folder's history, and its page said the filing was still under
way. Folders that failed before this revision get the cause from that line (the GED's reason, without the
kernel's « échec définitif de la tâche … après n essai(s) : » before it), so that their page offers the retry.

Revision ID: par0009
Revises: par0008
Create Date: 2026-12-04 09:00:00.000000
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "par0009"
down_revision: str | None = "par0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The kernel's failure reason (socle.queue._compensate) at this revision: written here, not imported.
_KERNEL_REASON = re.compile(r"échec définitif de la tâche [\w.]+ après \d+ essai\(s\) : (?P<detail>.*)", re.DOTALL)

# Folders asked to be filed, not filed, whose history says the GED failed: the last such line of each.
_FAILED = sa.text(
    "SELECT e.folder_id, e.comment FROM parapheur_events e"
    " JOIN parapheur_folders f ON f.id = e.folder_id"
    " WHERE e.action = 'ged_filing_failed' AND f.ged_filing AND f.ged_document_id IS NULL"
    " ORDER BY e.id"
)
_SET = sa.text("UPDATE parapheur_folders SET ged_filing_error = :reason WHERE id = :folder_id")


def upgrade() -> None:
    with op.batch_alter_table("parapheur_folders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ged_filing_error", sa.Text(), nullable=True))
    connection = op.get_bind()
    reasons: dict[str, str] = {}
    for folder_id, comment in connection.execute(_FAILED):
        found = _KERNEL_REASON.fullmatch(comment or "")
        reasons[folder_id] = (found.group("detail") if found else comment) or "raison inconnue"
    for folder_id, reason in reasons.items():
        connection.execute(_SET, {"reason": reason, "folder_id": folder_id})


def downgrade() -> None:
    with op.batch_alter_table("parapheur_folders", schema=None) as batch_op:
        batch_op.drop_column("ged_filing_error")
