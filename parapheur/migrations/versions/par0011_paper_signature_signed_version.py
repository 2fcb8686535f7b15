"""a paper signature's scan becomes the signed version of the document; paper as an alternative to signing

Until now the scan of a handwritten signature joined the folder beside its document: the document shown,
downloaded and sent to the GED stayed the unsigned original, and an uploaded folder asked to be filed waited for
a signed version that never came. The scan of a PDF main document now becomes that document's signed version
(``parapheur_documents.paper_scan_id`` names the scan), and a paper signature may be recorded for its
signatory by someone else (``parapheur_step_acts.signatory_name``, ``signatory_username``, ``signed_on``). A
sous-type may let its signature steps be signed on paper (``paper_allowed``, copied to each folder's steps).

The folders signed on paper before this revision get the same: the scan of a PAdES folder's only main document,
not signed electronically since, becomes its signed version (the last one's, in the order of the acts, when it
was signed on paper several times), and the act that added it restores on a droit de remords what it had before
(unsigned, or the previous act's scan). Their page then offers to send the signed document to the GED, which nothing had asked.

Revision ID: par0011
Revises: par0010
Create Date: 2026-12-06 09:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "par0011"
down_revision: str | None = "par0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables as this revision reads them: written here, not imported from the models.
_folders = sa.table("parapheur_folders", sa.column("id", sa.String), sa.column("signature_format", sa.String))
_documents = sa.table(
    "parapheur_documents",
    sa.column("id", sa.String),
    sa.column("folder_id", sa.String),
    sa.column("role", sa.String),
    sa.column("key", sa.String),
    sa.column("size", sa.BigInteger),
    sa.column("signed_key", sa.String),
    sa.column("signed_size", sa.BigInteger),
    sa.column("paper_scan_id", sa.String),
)
_acts = sa.table(
    "parapheur_step_acts",
    sa.column("id", sa.String),
    sa.column("folder_id", sa.String),
    sa.column("action", sa.String),
    sa.column("at", sa.DateTime),
    sa.column("undone_at", sa.DateTime),
    sa.column("previous_keys", sa.JSON),
)


def upgrade() -> None:
    with op.batch_alter_table("parapheur_documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paper_scan_id", sa.String(length=36), nullable=True))
    with op.batch_alter_table("parapheur_step_acts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signatory_name", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("signatory_username", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("signed_on", sa.Date(), nullable=True))
    # Existing sous-types and steps keep their behaviour: no paper alternative (server default false).
    with op.batch_alter_table("parapheur_subtypes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paper_allowed", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("parapheur_steps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paper_allowed", sa.Boolean(), server_default=sa.false(), nullable=False))
    _scans_become_signed_versions(op.get_bind())


def _scans_become_signed_versions(connection: Any) -> None:
    """The live paper signatures of PAdES folders: each scan becomes the signed version of the folder's only
    main document when nothing signed that document electronically (its signed key is still empty, or is the scan
    of an earlier paper signature this revision made its signed version).

    A folder signed on paper several times (a step of several desks, or several paper steps) is read in the order
    the acts were made: the last scan is the signed version, and each act restores on a droit de remords what the
    act before it gave (the previous scan), as a paper signature recorded now does (parapheur.signature_acts)."""
    acts = connection.execute(
        sa.select(_acts.c.id, _acts.c.folder_id, _acts.c.previous_keys)
        .join(_folders, _folders.c.id == _acts.c.folder_id)
        .where(_acts.c.action == "paper_signature", _acts.c.undone_at.is_(None), _folders.c.signature_format == "pades")
        .order_by(_acts.c.folder_id, _acts.c.at, _acts.c.id)
    ).all()
    for act_id, folder_id, previous in acts:
        previous = dict(previous or {})
        documents = (
            connection.execute(sa.select(_documents).where(_documents.c.folder_id == folder_id)).mappings().all()
        )
        mains = [document for document in documents if document["role"] == "main"]
        scans = [document for document in documents if document["role"] == "scan" and document["id"] in previous]
        if len(mains) != 1 or len(scans) != 1:
            continue
        main, scan = mains[0], scans[0]
        if main["signed_key"] is not None and main["paper_scan_id"] is None:
            continue  # signed electronically: the scan stays beside it
        connection.execute(
            _documents.update()
            .where(_documents.c.id == main["id"])
            .values(signed_key=scan["key"], signed_size=scan["size"], paper_scan_id=scan["id"])
        )
        # Undoing the act puts the document back as it was: unsigned, or the earlier act's scan
        # (service.PAPER_SCAN_BEFORE, written here as this revision knows it).
        before = {main["id"]: main["signed_key"], f"paper_scan:{main['id']}": main["paper_scan_id"]}
        connection.execute(_acts.update().where(_acts.c.id == act_id).values(previous_keys={**previous, **before}))


def downgrade() -> None:
    # A document whose signed version is still the scan alone is unsigned again: the scan row stays, as before.
    connection = op.get_bind()
    scans = _documents.alias("scans")
    paper_signed = (
        connection.execute(
            sa.select(_documents.c.id)
            .join(scans, scans.c.id == _documents.c.paper_scan_id)
            .where(_documents.c.signed_key == scans.c.key)
        )
        .scalars()
        .all()
    )
    for document_id in paper_signed:
        connection.execute(
            _documents.update().where(_documents.c.id == document_id).values(signed_key=None, signed_size=None)
        )
    with op.batch_alter_table("parapheur_steps", schema=None) as batch_op:
        batch_op.drop_column("paper_allowed")
    with op.batch_alter_table("parapheur_subtypes", schema=None) as batch_op:
        batch_op.drop_column("paper_allowed")
    with op.batch_alter_table("parapheur_step_acts", schema=None) as batch_op:
        batch_op.drop_column("signed_on")
        batch_op.drop_column("signatory_username")
        batch_op.drop_column("signatory_name")
    with op.batch_alter_table("parapheur_documents", schema=None) as batch_op:
        batch_op.drop_column("paper_scan_id")
