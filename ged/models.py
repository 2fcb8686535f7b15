"""GED tables: documents and their versions, document types with typed metadata and retention (DUA), the
classification plan, groups and rights, legal holds, the search index, resumable uploads, imports and
elimination proposals. Content lives in the object store, referenced by digest (stored once).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from socle.db import UTCDateTime, new_id, utcnow


class GedBase(DeclarativeBase):
    pass


class Document(GedBase):
    """A document: its versions, where it is filed, and its life (trash, retention, archiving).

    ``folder_id`` files it in the classification plan. ``deleted_at`` puts it in the trash (restorable until
    the window closes, purged after, unless held or under retention). ``dua_ends_on`` is when its DUA ends
    (computed from its type's rule); ``disposal`` says what happened at the end: null while active,
    ``transferred`` (sent to the archive service), ``archived`` (accepted by the SAE: ``sae_identifier``),
    ``eliminated``. ``checked_out_by`` is the CMIS check-out lock.
    """

    __tablename__ = "ged_documents"
    __table_args__ = (
        Index("ix_ged_documents_tenant_updated", "tenant_id", "updated_at"),
        Index("ix_ged_documents_tenant_dua", "tenant_id", "dua_ends_on"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    folder_id: Mapped[str | None] = mapped_column(ForeignKey("ged_folders.id"), index=True)
    type_id: Mapped[str | None] = mapped_column(ForeignKey("ged_document_types.id"), index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_by: Mapped[str | None] = mapped_column(String(200))
    dua_ends_on: Mapped[date | None] = mapped_column(Date)
    disposal: Mapped[str | None] = mapped_column(String(20))
    disposal_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    archive_transfer_id: Mapped[str | None] = mapped_column(String(36))
    sae_identifier: Mapped[str | None] = mapped_column(String(200))
    checked_out_by: Mapped[str | None] = mapped_column(String(200))
    checked_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    versions: Mapped[list[Version]] = relationship(
        back_populates="document", order_by="Version.number", cascade="all, delete-orphan"
    )

    @property
    def current(self) -> Version:
        return next(version for version in self.versions if version.number == self.current_version)


class Version(GedBase):
    """A version is immutable: every change (content or metadata) adds one, earlier ones stay readable."""

    __tablename__ = "ged_versions"
    __table_args__ = (UniqueConstraint("document_id", "number"), UniqueConstraint("document_id", "origin"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(ForeignKey("ged_documents.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    # Indexed, as the renditions' keys: before deleting an object the GED asks whether any version still needs
    # it, once per object of each purge and elimination (at a million versions, a scan each time).
    object_key: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    media_type: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500))
    document_type: Mapped[str] = mapped_column(String(100))
    document_date: Mapped[date | None] = mapped_column(Date)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Where the version comes from when a job made it (e.g. "parapheur:<folder id>"): makes the job idempotent.
    origin: Mapped[str | None] = mapped_column(String(100))
    comment: Mapped[str | None] = mapped_column(Text)
    # The usernames of who signed it in the parapheur (origin « parapheur:… »), as data: the comment « Signé par
    # … » says it to people, is cut at 2000 characters and a user's own comment may read the same. None: not signed.
    signatories: Mapped[list[str] | None] = mapped_column(JSON)
    # Typed metadata of the document type (``DocumentType.fields``), by field name, JSON-typed values.
    field_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Renditions made by background jobs, in the object store: extracted text (UTF-8), first-page preview
    # (PNG) and thumbnail (PNG), PDF/A-2b copy. ``text_status``: pending, done, ocr_unavailable, failed, none.
    text_key: Mapped[str | None] = mapped_column(String(64), index=True)
    text_status: Mapped[str] = mapped_column(String(20), default="pending")
    preview_key: Mapped[str | None] = mapped_column(String(64), index=True)
    thumbnail_key: Mapped[str | None] = mapped_column(String(64), index=True)
    pdfa_key: Mapped[str | None] = mapped_column(String(64), index=True)

    document: Mapped[Document] = relationship(back_populates="versions")

    @property
    def sha256(self) -> str:
        return self.object_key  # content-addressed: the key is the digest

    @property
    def content(self) -> Version:
        """The stored bytes' description (key, digest, size, type, name), which the API groups apart."""
        return self


# ---------------------------------------------------------------------------------------------------------
# Document types, classification plan


class DocumentType(GedBase):
    """A document type: its typed metadata and its retention rule.

    ``fields`` is a list of ``{"name", "label", "kind", "required", "choices", "retired"}`` with kind text,
    integer, decimal, date, boolean, choice or reference (to another document). A field is never deleted,
    only ``retired``: existing values stay readable when the schema evolves. ``schema_version`` counts
    changes. DUA: ``dua_months`` from ``dua_event`` (``creation``, ``document_date`` or the name of a date
    field), then ``final_action``: keep (conserver), destroy (détruire) or sort (trier).
    """

    __tablename__ = "ged_document_types"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    code: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    schema_version: Mapped[int] = mapped_column(Integer, default=1)
    dua_months: Mapped[int | None] = mapped_column(Integer)
    dua_event: Mapped[str] = mapped_column(String(100), default="creation")
    final_action: Mapped[str] = mapped_column(String(10), default="keep")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Folder(GedBase):
    """A folder of the classification plan (plan de classement). ``path`` is the ids from the root,
    slash-separated and ending with this folder's own id: a subtree is a prefix query."""

    __tablename__ = "ged_folders"
    __table_args__ = (UniqueConstraint("tenant_id", "parent_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("ged_folders.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str | None] = mapped_column(String(50))
    path: Mapped[str] = mapped_column(String(2000), index=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---------------------------------------------------------------------------------------------------------
# Groups and rights


class Group(GedBase):
    __tablename__ = "ged_groups"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list[GroupMember]] = relationship(cascade="all, delete-orphan", order_by="GroupMember.username")


class GroupMember(GedBase):
    __tablename__ = "ged_group_members"
    __table_args__ = (UniqueConstraint("group_id", "username"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    group_id: Mapped[str] = mapped_column(ForeignKey("ged_groups.id"), index=True)
    username: Mapped[str] = mapped_column(String(100), index=True)


class Permission(GedBase):
    """A group's rights (read, write, delete, manage) on a folder (and its subtree) or a document type."""

    __tablename__ = "ged_permissions"
    __table_args__ = (UniqueConstraint("group_id", "target_kind", "target_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("ged_groups.id"), index=True)
    target_kind: Mapped[str] = mapped_column(String(10))  # folder or type
    target_id: Mapped[str] = mapped_column(String(36), index=True)
    rights: Mapped[list[str]] = mapped_column(JSON, default=list)


# ---------------------------------------------------------------------------------------------------------
# Legal holds, eliminations


class Hold(GedBase):
    """A legal hold (gel): while it is active, its documents cannot be changed, deleted or eliminated."""

    __tablename__ = "ged_holds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    name: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    released_by: Mapped[str | None] = mapped_column(String(200))
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    release_reason: Mapped[str | None] = mapped_column(Text)  # why it was lifted (a judgment, a settlement…)


class HeldDocument(GedBase):
    __tablename__ = "ged_held_documents"
    __table_args__ = (UniqueConstraint("hold_id", "document_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    hold_id: Mapped[str] = mapped_column(ForeignKey("ged_holds.id"), index=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("ged_documents.id"), index=True)
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Elimination(GedBase):
    """An elimination proposal for documents whose DUA ended with final action destroy: proposed, then
    approved (or refused) by an archivist, then carried out; the proof stays in the audit log."""

    __tablename__ = "ged_eliminations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(20), default="proposed")  # proposed, approved, refused, done
    document_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    comment: Mapped[str | None] = mapped_column(Text)
    proposed_by: Mapped[str] = mapped_column(String(200))
    proposed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# ---------------------------------------------------------------------------------------------------------
# Search index


class SearchEntry(GedBase):
    """What search reads for a live document: its current metadata, ``terms`` and ``keys``.

    ``terms`` are the normalised words of its title, metadata and extracted text (French stems, accents
    folded, stop words out). ``keys`` are tokens for what is filtered, faceted and ranked in the full-text
    index itself rather than row by row: tenant, type, folder, tags, year and month, the head terms (title,
    tags, type, values: relevance) and sample marks (a uniform sample of any match set); see
    ``ged.indexing.search_keys``. PostgreSQL indexes both in ``vector`` (a stored ``tsvector`` with a GIN
    index, filled by a trigger), SQLite in an FTS5 table with two columns (both made by the migrations).
    """

    __tablename__ = "ged_search"
    __table_args__ = (
        Index("ix_ged_search_tenant_date", "tenant_id", "document_date"),
        Index("ix_ged_search_tenant_folder", "tenant_id", "folder_id"),
        # GIN on PostgreSQL; on SQLite a plain index of a column that stays null (alembic compares indexes
        # the same way on both).
        Index("ix_ged_search_vector", "vector", postgresql_using="gin"),
    )

    document_id: Mapped[str] = mapped_column(ForeignKey("ged_documents.id"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(36))
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(500))
    document_type: Mapped[str] = mapped_column(String(100))
    folder_id: Mapped[str | None] = mapped_column(String(36))
    type_id: Mapped[str | None] = mapped_column(String(36))  # the document's, for the rights on types
    document_date: Mapped[date | None] = mapped_column(Date)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    field_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Deferred: only the index reads them; loading an entry must not drag kilobytes of text along.
    terms: Mapped[str] = mapped_column(Text, default="", deferred=True)
    keys: Mapped[str] = mapped_column(Text, default="", server_default="")
    # PostgreSQL: to_tsvector('simple', terms) and the keys (prefixed with « ~ », which no term has), kept by
    # the trigger of migration ged0004. SQLite: always null (its FTS5 table indexes terms and keys).
    vector: Mapped[str | None] = mapped_column(TSVECTOR().with_variant(Text(), "sqlite"), deferred=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReindexRun(GedBase):
    """A full reindex, resumable: ``last_document_id`` is where it stopped (documents go in id order)."""

    __tablename__ = "ged_reindex_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(20), default="running")  # running, interrupted, done
    last_document_id: Mapped[str | None] = mapped_column(String(36))
    done_count: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# ---------------------------------------------------------------------------------------------------------
# Ingestion: resumable uploads, imports


class UploadSession(GedBase):
    """A resumable upload: the client sends the file in pieces (``received`` bytes so far, of ``size``)."""

    __tablename__ = "ged_uploads"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    username: Mapped[str] = mapped_column(String(100))
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    received: Mapped[int] = mapped_column(BigInteger, default=0)
    expected_sha256: Mapped[str | None] = mapped_column(String(64))
    metadata_json: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open, complete, expired, cancelled
    document_id: Mapped[str | None] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ImportRun(GedBase):
    """A bulk import (a folder tree with a CSV of metadata, or the drop folder's files): each file once."""

    __tablename__ = "ged_imports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36), index=True)
    source: Mapped[str] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(20), default="running")  # running, done, failed
    imported: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ImportedFile(GedBase):
    """One file of an import, by its path and digest: importing the same tree again skips it."""

    __tablename__ = "ged_imported_files"
    __table_args__ = (UniqueConstraint("tenant_id", "source_path", "sha256"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(36))
    run_id: Mapped[str] = mapped_column(ForeignKey("ged_imports.id"), index=True)
    source_path: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64))
    document_id: Mapped[str] = mapped_column(String(36))
