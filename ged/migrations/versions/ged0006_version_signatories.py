"""a version signed in the parapheur keeps its signatories as data

``ged_versions.signatories``: the usernames of who signed it in the parapheur, which the archive's SEDA agents
read; until now they were parsed back from the comment « Signé par a, b », which a user may write alike. The
versions the parapheur signed before (origin « parapheur:… ») get theirs from that comment, once, here.

Revision ID: ged0006
Revises: ged0005
Create Date: 2026-12-02 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ged0006"
down_revision: str | None = "ged0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 500
# What record_signed_version and file_signed_document wrote before this revision (usernames hold no comma);
# file_signed_document cut the comment at COMMENT_CUT characters, so its last name may be cut there.
SIGNED_BY = "Signé par "
COMMENT_CUT = 2000

_SIGNED = sa.text(
    "SELECT id, comment FROM ged_versions WHERE origin LIKE 'parapheur:%' AND comment LIKE :signed "
    "AND id > :after ORDER BY id LIMIT :limit"
)
_SET = sa.text("UPDATE ged_versions SET signatories = :signatories WHERE id = :id").bindparams(
    sa.bindparam("signatories", type_=sa.JSON())
)


def upgrade() -> None:
    # Nullable: a version the parapheur did not sign has no signatories.
    with op.batch_alter_table("ged_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signatories", sa.JSON(), nullable=True))
    _fill_signatories()


def downgrade() -> None:
    # The comments still name the signatories: nothing to write back.
    with op.batch_alter_table("ged_versions", schema=None) as batch_op:
        batch_op.drop_column("signatories")


def _fill_signatories() -> None:
    """The signatories of the versions the parapheur signed, from their comment, in batches (bounded memory)."""
    bind = op.get_bind()
    after = ""
    # LIKE is case-insensitive on SQLite and « _ » matches any character: startswith below decides.
    while rows := bind.execute(_SIGNED, {"signed": SIGNED_BY + "%", "after": after, "limit": BATCH}).all():
        found = [
            {"id": row.id, "signatories": _parse(row.comment)} for row in rows if row.comment.startswith(SIGNED_BY)
        ]
        if found:
            bind.execute(_SET, found)
        after = rows[-1].id


def _parse(comment: str) -> list[str]:
    usernames = [name for name in comment.removeprefix(SIGNED_BY).split(", ") if name]
    return usernames[:-1] if len(comment) >= COMMENT_CUT else usernames
