"""Turning a folder tree, with an optional ReSIP-style metadata CSV, into a SEDA TransferSpec.

Domain code: reads the folder and the CSV, describes each file (digest, size, format), returns a
TransferSpec; writes nothing. Every problem found is collected, so that the archivist sees them all at
once, then raised together as a SourceError (messages in French).

Without CSV, the folder itself is the root unit; each sub-folder becomes a unit (RecordGrp when it has
sub-folders, File otherwise) and each file an Item unit holding the file as its BinaryMaster_1 object.

With a CSV (ReSIP's layout: `;` separated, UTF-8, columns ID, ParentID, File, then dotted SEDA paths,
repeatable elements numbered as in Content.Keyword.0.KeywordContent), the CSV gives the tree: rows with an
empty ParentID are roots, File names a file (its object) or a folder (no object) relative to the folder,
with `\\` or `/` (or, for the whole CSV, relative to the folder's parent, as ReSIP writes it: see
_paths_from_parent). Every file of the folder must be described by a row, so that nothing is left out silently.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import unicodedata
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath

from archive import packaging
from archive.seda import (
    DESCRIPTION_LEVELS,
    FINAL_ACTIONS,
    Agency,
    AgentSpec,
    ArchiveUnitSpec,
    DescribedFile,
    TransferSpec,
)

__all__ = ["KNOWN_COLUMNS", "FolderPlan", "SourceError", "folder_transfer", "iter_units", "transfer_from_folder"]

USAGE = "BinaryMaster_1"
MAX_DEPTH = 100  # deeper trees are refused: a generous bound that keeps recursion safe
DESCRIBE_THREADS = 2  # the machines this runs on have few cores; siegfried itself uses one thread
DESCRIBE_WINDOW = 16
MAX_CELL_CHARS = 1_000_000  # a longer CSV value is a mistake (a whole file pasted in a cell), not a description
# csv's own bound (131,072 by default), set past ours so that a long value is named with its line and column.
_CSV_FIELD_LIMIT = 64 * 1024 * 1024
# Columns that name a SEDA element this builder writes; anything else is refused, never silently dropped. As in
# ReSIP, `.N` is where an element SEDA repeats takes its rank (Content.Language.1, Content.Writer.0.FullName,
# Management.AppraisalRule.Rule.1 with Management.AppraisalRule.StartDate.1); without a rank it is the first one:
# Content.Language and Content.Language.0 name the same element. By group, for the refusal's list.
DATES = ("CreatedDate", "TransactedDate", "AcquiredDate", "SentDate", "ReceivedDate", "RegisteredDate")
COLUMN_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("arborescence", ("ID", "ParentID", "File")),
    (
        "description",
        (
            "DescriptionLevel",
            "Content.DescriptionLevel",  # the spelling of Vitam's collect module
            "Content.Title",
            "Content.Description",
            "Content.CustodialHistory.CustodialHistoryItem.N",
            "Content.DocumentType",
            "Content.Language.N",
            "Content.DescriptionLanguage",
            "Content.Keyword.N.KeywordContent",
        ),
    ),
    (
        "identifiants",
        (
            "Content.FilePlanPosition.N",
            "Content.OriginatingSystemId.N",
            "Content.ArchivalAgencyArchiveUnitIdentifier.N",
            "Content.OriginatingAgencyArchiveUnitIdentifier",
            "Content.TransferringAgencyArchiveUnitIdentifier.N",
        ),
    ),
    ("dates", (*(f"Content.{name}" for name in DATES), "Content.StartDate", "Content.EndDate")),
    (
        "règles de gestion",
        (
            "Management.AppraisalRule.Rule.N",
            "Management.AppraisalRule.StartDate.N",
            "Management.AppraisalRule.FinalAction",
            "Management.AccessRule.Rule.N",
            "Management.AccessRule.StartDate.N",
        ),
    ),
)
# Agents: Content.<role>.N.<field>, e.g. Content.Writer.0.FullName, Content.Addressee.1.Identifier.0. The roles
# whose element is an AgentType at a fixed place of Content in 2.1, 2.2 and 2.3 (the generic Agent is not in 2.1).
AGENT_ROLES = ("AuthorizedAgent", "Writer", "Addressee", "Recipient", "Transmitter", "Sender")
AGENT_NAMES = ("FirstName", "BirthName", "FullName", "GivenName", "Corpname")
AGENT_LISTS = ("Identifier", "Function", "Activity", "Position", "Role")


def _templates() -> dict[str, str]:
    """Each accepted column without rank → its element with a `{}` where a rank goes."""
    templates = {
        column.replace(".N", ""): column.replace(".N", ".{}") for _, group in COLUMN_GROUPS for column in group
    }
    for role in AGENT_ROLES:
        templates |= {f"Content.{role}.{name}": f"Content.{role}.{{}}.{name}" for name in AGENT_NAMES}
        templates |= {f"Content.{role}.{name}": f"Content.{role}.{{}}.{name}.{{}}" for name in AGENT_LISTS}
    return templates


_TEMPLATES = _templates()
KNOWN_COLUMNS = frozenset(_TEMPLATES)  # as written without rank
_RANK = re.compile(r"[0-9]{1,6}")
_AGENT_KEY = re.compile(rf"Content\.({'|'.join(AGENT_ROLES)})\.([0-9]+)\.([A-Za-z]+)(?:\.([0-9]+))?")
_KEYWORD_KEY = re.compile(r"Content\.Keyword\.([0-9]+)\.KeywordContent")
_LANGUAGE = re.compile(r"[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*")  # xsd:language
_REQUIRED_COLUMNS = ("ID", "ParentID", "File")

# Describes one file; a parameter so that tests can simulate what root cannot (an unreadable file).
Describer = Callable[[Path, str], DescribedFile]


class SourceError(ValueError):
    """The folder or the CSV cannot make a transfer; `problems` lists every reason, in French."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- the folder ------------------------------------------------------------------------------------


@dataclass
class _Folder:
    relative: str  # POSIX path relative to the root, "" for the root itself
    name: str
    folders: list[_Folder] = field(default_factory=list)
    files: list[tuple[str, DescribedFile]] = field(default_factory=list)  # (relative path, description)


@dataclass
class _Pending:
    """A regular file found by the walk, described afterwards (several at a time)."""

    folder: _Folder
    target: Path
    name: str
    relative: str


@dataclass
class _Scan:
    root: _Folder
    files: dict[str, DescribedFile]
    folders: set[str]
    problems: list[str]
    pending: list[_Pending] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # see index_names
    shown: str = ""  # the root as messages name it (see transfer_from_folder)
    top: str = ""  # the root folder's own name
    from_parent: bool = False  # the CSV's File paths start with `top` (see _paths_from_parent)

    def index_names(self) -> None:
        """Files and folders by their NFC name, to their name on disk: a Mac writes NFD, Windows NFC."""
        for relative in (*sorted(self.folders), *self.files):
            self.names.setdefault(unicodedata.normalize("NFC", relative), relative)

    def find(self, raw: str) -> str | None:
        """The file or folder a File cell names (its path from the root), None if there is none."""
        key: str | None = _key(raw)
        if self.from_parent and key is not None:
            key = _below(key, self.top)
        return None if key is None else self.names.get(key)


def _scan(root: Path, describe: Describer, skip: str | None = None, shown: str | None = None) -> _Scan:
    """The folder's tree and files; `skip` (a relative path) is left out: the CSV kept among the documents."""
    scan = _Scan(_Folder("", root.name), {}, {""}, [], shown=str(root) if shown is None else shown)
    scan.top = unicodedata.normalize("NFC", root.resolve().name)
    _scan_folder(root.resolve(), root, scan.root, scan, depth=0)
    scan.pending = [item for item in scan.pending if item.relative != skip]
    _describe_all(scan, describe)
    return scan


def _describe_all(scan: _Scan, describe: Describer) -> None:
    """Describe the files found, in walk order, DESCRIBE_THREADS at a time.

    Reading and hashing release the GIL: while one thread waits for the format identification, another
    reads and hashes the next file. At most DESCRIBE_WINDOW descriptions are in flight, so memory does
    not grow with the number of files.
    """
    with ThreadPoolExecutor(DESCRIBE_THREADS, thread_name_prefix="describe") as pool:
        window: deque[tuple[_Pending, Future[DescribedFile]]] = deque()
        for item in scan.pending:
            window.append((item, pool.submit(describe, item.target, item.name)))
            if len(window) >= DESCRIBE_WINDOW:
                _collect(*window.popleft(), scan)
        while window:
            _collect(*window.popleft(), scan)
    scan.pending.clear()


def _collect(item: _Pending, future: Future[DescribedFile], scan: _Scan) -> None:
    described = _described(future, item.relative, scan.problems)
    if described is not None:
        item.folder.files.append((item.relative, described))
        scan.files[item.relative] = described


def _scan_folder(real_root: Path, path: Path, folder: _Folder, scan: _Scan, depth: int) -> None:
    if depth > MAX_DEPTH:
        scan.problems.append(f"« {folder.relative} » : arborescence trop profonde (plus de {MAX_DEPTH} niveaux).")
        return
    try:
        entries = sorted(os.scandir(path), key=lambda entry: entry.name)
    except OSError as error:
        scan.problems.append(f"Dossier illisible « {folder.relative or scan.shown} » : {error.strerror}.")
        return
    for entry in entries:
        relative = f"{folder.relative}/{entry.name}" if folder.relative else entry.name
        if not _valid_utf8(entry.name):
            scan.problems.append(_bad_name(_child(scan.shown, relative)))
            continue
        target = _resolve_entry(real_root, Path(entry.path), relative, scan.problems)
        if target is None:
            continue
        try:
            mode = target.stat().st_mode
        except OSError as error:
            scan.problems.append(f"« {relative} » est inaccessible : {error.strerror}.")
            continue
        if stat.S_ISDIR(mode):
            child = _Folder(relative, entry.name)
            folder.folders.append(child)
            scan.folders.add(relative)
            _scan_folder(real_root, Path(entry.path), child, scan, depth + 1)
        elif stat.S_ISREG(mode):
            scan.pending.append(_Pending(folder, target, entry.name, relative))
        else:  # FIFO, socket, device: opening some of them blocks forever
            scan.problems.append(f"« {relative} » n'est ni un fichier ni un dossier : ignoré, versement refusé.")


def _bad_name(path: str) -> str:
    return f"Nom non valide en UTF-8 : {os.fsencode(path)!r} (renommez le fichier ou le dossier)."


def _valid_utf8(name: str) -> bool:
    # Undecodable bytes reach Python as lone surrogates (surrogateescape): they cannot be encoded back.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _resolve_entry(real_root: Path, path: Path, relative: str, problems: list[str]) -> Path | None:
    """The path to read, or None after reporting why not: symlinks are followed only inside the root."""
    if not path.is_symlink():
        return path
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        problems.append(f"Lien symbolique cassé ou en boucle : « {relative} ».")
        return None
    if not target.is_relative_to(real_root):
        problems.append(f"Lien symbolique « {relative} » vers l'extérieur du dossier ({target}) : refusé.")
        return None
    if target.is_dir():
        # A link to a folder of the tree would version it twice, or loop forever on an ancestor.
        problems.append(f"Lien symbolique « {relative} » vers un dossier : non pris en charge, refusé.")
        return None
    return target


def _described(future: Future[DescribedFile], relative: str, problems: list[str]) -> DescribedFile | None:
    try:
        described = future.result()
    except OSError as error:
        problems.append(f"Fichier illisible « {relative} » : {error.strerror or error}.")
        return None
    if described.size == 0:
        problems.append(f"Fichier vide « {relative} » : le SEDA impose une taille d'au moins 1 octet (Size ≥ 1).")
        return None
    return described


# --- the folder as a plan for packaging.build_sip ------------------------------------------------------


class FolderPlan:
    """The units of a folder tree without CSV, walked while packaging.build_sip reads the files.

    The same tree as transfer_from_folder: the folder is the root unit; each sub-folder a unit (RecordGrp when
    it has sub-folders, File otherwise), before the folder's files; each file an Item unit with its
    BinaryMaster_1 object. Only the listings of the folders on the current path are held: memory does not grow
    with the number of files. Each walk starts afresh (problems included), so a first one can check the tree
    before the build walks it again.
    """

    def __init__(self, folder: Path, shown: str | None = None) -> None:
        self.folder = folder
        self.shown = str(folder) if shown is None else shown  # the folder as messages name it
        self.problems: list[str] = []
        self.files = 0

    def __iter__(self) -> Iterator[packaging.UnitStart | packaging.UnitEnd]:
        self.problems, self.files = [], 0
        if not _valid_utf8(self.folder.name):  # the root unit's title: refused as its files would be
            self.problems.append(_bad_name(self.shown))
        yield from self._walk(self.folder.resolve(), self.folder, "", self.folder.name, depth=0)
        if self.files == 0 and not self.problems:
            self.problems.append(f"Le dossier « {self.shown} » ne contient aucun fichier à verser.")

    def _walk(
        self, real_root: Path, path: Path, relative: str, name: str, depth: int
    ) -> Iterator[packaging.UnitStart | packaging.UnitEnd]:
        folders, files = self._list(real_root, path, relative, depth)
        level = "RecordGrp" if folders else "File"
        yield packaging.UnitStart(ArchiveUnitSpec(title=name, description_level=level))
        for child in folders:
            yield from self._walk(real_root, path / child, _child(relative, child), child, depth + 1)
        for child, target in files:
            self.files += 1
            source = packaging.SourceFile(target or path / child, child, USAGE, _child(relative, child))
            yield packaging.UnitStart(ArchiveUnitSpec(title=child), (source,))
            yield packaging.UnitEnd()
        yield packaging.UnitEnd()

    def _list(
        self, real_root: Path, path: Path, relative: str, depth: int
    ) -> tuple[list[str], list[tuple[str, Path | None]]]:
        """Sub-folder names, and file names with their target when a symlink; problems noted on the way."""
        folders: list[str] = []
        files: list[tuple[str, Path | None]] = []
        if depth > MAX_DEPTH:
            self.problems.append(f"« {relative} » : arborescence trop profonde (plus de {MAX_DEPTH} niveaux).")
            return folders, files
        try:
            entries = sorted(os.scandir(path), key=lambda entry: entry.name)
        except OSError as error:
            self.problems.append(f"Dossier illisible « {relative or self.shown} » : {error.strerror}.")
            return folders, files
        for entry in entries:
            child = _child(relative, entry.name)
            if not _valid_utf8(entry.name):
                self.problems.append(_bad_name(_child(self.shown, child)))
                continue
            target = None
            if entry.is_symlink():  # from the directory entry itself: no system call for the others
                target = _resolve_entry(real_root, Path(entry.path), child, self.problems)
                if target is None:
                    continue
            try:
                info = target.stat() if target is not None else entry.stat()
            except OSError as error:
                self.problems.append(f"« {child} » est inaccessible : {error.strerror}.")
                continue
            if stat.S_ISDIR(info.st_mode):
                folders.append(entry.name)
            elif not stat.S_ISREG(info.st_mode):  # FIFO, socket, device: opening some of them blocks forever
                self.problems.append(f"« {child} » n'est ni un fichier ni un dossier : ignoré, versement refusé.")
            elif info.st_size == 0:
                self.problems.append(f"Fichier vide « {child} » : {packaging.EMPTY_FILE}.")
            elif packaging.file_date(info.st_mtime) is None:  # said before the build, with the others
                self.problems.append(f"« {child} » : {packaging.UNREADABLE_DATE}.")
            else:
                files.append((entry.name, target))
        return folders, files


def _child(relative: str, name: str) -> str:
    return f"{relative}/{name}" if relative else name


# --- units from the folder alone ---------------------------------------------------------------------


def _folder_unit(folder: _Folder) -> ArchiveUnitSpec:
    children = [_folder_unit(child) for child in folder.folders]
    children += [ArchiveUnitSpec(title=file.filename, files=((file, USAGE),)) for _, file in folder.files]
    return ArchiveUnitSpec(
        title=folder.name,
        description_level="RecordGrp" if folder.folders else "File",
        children=tuple(children),
    )


# --- units from the CSV ------------------------------------------------------------------------------


@dataclass
class _Row:
    """A CSV line, its values by element (the column with its ranks: Content.Language.0); `columns` gives back
    the column as written in the header, for the messages."""

    line: int
    values: dict[str, str]
    columns: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str:
        return (self.values.get(key) or "").strip()

    def column(self, key: str) -> str:
        return self.columns.get(key, key)

    def ranked(self, key: str) -> list[tuple[int, str]]:
        """The non-empty values of a repeated element (Content.Language), by rank."""
        prefix = f"{key}."
        found = [
            (int(name[len(prefix) :]), value.strip())
            for name, value in self.values.items()
            if name.startswith(prefix) and _RANK.fullmatch(name[len(prefix) :]) and value and value.strip()
        ]
        return sorted(found)

    def repeated(self, key: str) -> tuple[str, ...]:
        return tuple(value for _, value in self.ranked(key))


def _read_csv(path: Path, problems: list[str]) -> list[_Row] | None:
    """The CSV's rows, or None after noting why the CSV itself is refused (then nothing else is checked
    against it: each file would only be reported as undescribed)."""
    text = _csv_text(path, problems)
    records = None if text is None else _records(text, path.name, problems)
    if records is None:
        return None
    if not records:
        problems.append(f"Le CSV {path.name} est vide.")
        return None
    (_, cells), *body = records
    header = [name.strip() for name in cells]
    keys = _check_header(header, path.name, problems)
    if keys is None:
        return None
    if not body:
        problems.append(f"Le CSV {path.name} n'a aucune ligne sous son en-tête : aucune unité à verser.")
        return None
    columns = dict(zip(keys, header, strict=True))
    return [_row(number, cells, keys, columns, problems) for number, cells in body]


def _csv_text(path: Path, problems: list[str]) -> str | None:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        problems.append(
            f"Le CSV {path.name} n'est pas en UTF-8 (octet {error.start}) : enregistrez-le en « CSV UTF-8 »."
        )
    except OSError as error:
        problems.append(f"CSV illisible {path.name} : {error.strerror or error}.")
    return None


class _Lines:
    """The physical lines csv.reader reads; `ended` tells that it asked for one past the last."""

    def __init__(self, source: io.StringIO) -> None:
        self._lines = iter(source)
        self.ended = False

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._lines, None)
        if line is None:
            self.ended = True
            raise StopIteration
        return line


def _records(text: str, name: str, problems: list[str]) -> list[tuple[int, list[str]]] | None:
    """The non-blank records, each with the physical line it starts on; None after noting a broken quote.

    Read by the csv module from the text itself (newline=""): a quoted cell keeps its line breaks, and
    U+2028 or U+0085 are characters, not line ends as for str.splitlines.
    """
    source = io.StringIO(text, newline="")
    delimiter, offset = _delimiter(source)
    end = offset
    csv.field_size_limit(max(csv.field_size_limit(), _CSV_FIELD_LIMIT))
    lines = _Lines(source)
    reader = csv.reader(lines, delimiter=delimiter)
    records = []
    try:
        for cells in reader:
            start, end = end + 1, offset + reader.line_num
            if lines.ended:  # non-strict csv ends a quoted cell at the end of the file: say so instead
                problems.append(f"CSV {name} ligne {start} : guillemet ouvert jamais refermé (la suite du fichier "
                                "serait lue comme une seule valeur).")  # fmt: skip
                return None
            if cells:
                records.append((start, cells))
    except csv.Error as error:  # a value past _CSV_FIELD_LIMIT
        where = f"CSV {name} ligne {offset + reader.line_num}"
        too_long = f"une valeur dépasse {_CSV_FIELD_LIMIT} caractères" if "field limit" in str(error) else ""
        problems.append(f"{where} illisible : {too_long or error}.")
        return None
    return records


def _delimiter(source: io.StringIO) -> tuple[str, int]:
    """The separator, and the lines read before the header: Excel's `sep=;` line, which names it, or none."""
    first = source.readline()
    declared = re.fullmatch(r"sep=(.)\r?\n?", first)
    if declared:
        return declared.group(1), 1
    source.seek(0)
    # ReSIP writes `;`; a spreadsheet saved "CSV (virgule)" writes `,`: the header says which.
    return (";" if first.count(";") >= first.count(",") else ","), 0


def _row(number: int, cells: list[str], keys: list[str], columns: dict[str, str], problems: list[str]) -> _Row:
    if len(cells) > len(keys):
        problems.append(f"CSV ligne {number} : plus de valeurs que de colonnes.")
    # Missing cells at the end of a line are empty; a line break in a cell is a line feed, as XML reads it.
    values = {key: cell.replace("\r\n", "\n").replace("\r", "\n") for key, cell in zip(keys, cells, strict=False)}
    for key, value in values.items():
        if len(value) > MAX_CELL_CHARS:
            problems.append(
                f"CSV ligne {number}, colonne {columns[key]} : valeur de {len(value)} caractères, "
                f"au-delà des {MAX_CELL_CHARS} acceptés."
            )
    return _Row(number, values, columns)


def _element(column: str) -> str | None:
    """The element a column names, its ranks written out (Content.Writer.FullName → Content.Writer.0.FullName);
    None for a column this builder does not know (or a rank where SEDA does not repeat the element)."""
    parts = column.split(".")
    template = _TEMPLATES.get(".".join(part for part in parts if not _RANK.fullmatch(part)))
    if template is None:
        return None
    element, at = [], 0
    for slot in template.split("."):
        if slot == "{}":
            rank = parts[at] if at < len(parts) and _RANK.fullmatch(parts[at]) else None
            element.append(str(int(rank)) if rank is not None else "0")
            at += rank is not None
        elif at < len(parts) and parts[at] == slot:
            element.append(slot)
            at += 1
        else:
            return None
    return ".".join(element) if at == len(parts) else None


def _check_header(header: list[str], name: str, problems: list[str]) -> list[str] | None:
    """The header's elements (see _element), or None after noting why the header is refused."""
    missing = [column for column in _REQUIRED_COLUMNS if column not in header]
    elements = [_element(column) for column in header]
    unknown = [column for column, element in zip(header, elements, strict=True) if element is None]
    same: dict[str, list[str]] = {}
    for column, element in zip(header, elements, strict=True):
        if element is not None:
            same.setdefault(element, []).append(column)
    duplicated = [" = ".join(dict.fromkeys(columns)) for columns in same.values() if len(columns) > 1]
    if missing:
        problems.append(f"Le CSV {name} n'a pas les colonnes obligatoires : {', '.join(missing)}.")
    if unknown:
        problems.append(
            f"Colonnes inconnues ou non prises en charge dans {name} : {', '.join(unknown)}. {accepted_columns()}"
        )
    if duplicated:
        problems.append(f"Colonnes en double dans {name} (le même élément) : {', '.join(duplicated)}.")
    if missing or unknown or duplicated:
        return None
    return [element for element in elements if element is not None]


def accepted_columns() -> str:
    """The accepted columns in words, by group (French)."""
    groups = [f"{label} : {', '.join(columns)}" for label, columns in COLUMN_GROUPS]
    groups.append(
        f"agents : Content.<rôle>.N.<champ>, rôles {', '.join(AGENT_ROLES)}, champs {', '.join(AGENT_NAMES)}, "
        + ", ".join(f"{name}.N" for name in AGENT_LISTS)
    )
    return f"Colonnes acceptées (.N : rang d'un élément répété, 0 si absent) — {' ; '.join(groups)}."


def _csv_units(rows: list[_Row], scan: _Scan, problems: list[str]) -> tuple[ArchiveUnitSpec, ...]:
    by_id: dict[str, _Row] = {}
    for row in rows:
        identifier = row.get("ID")
        if not identifier:
            problems.append(f"CSV ligne {row.line} : ID vide.")
        elif identifier in by_id:
            problems.append(f"CSV ligne {row.line} : ID « {identifier} » déjà utilisé ligne {by_id[identifier].line}.")
        else:
            by_id[identifier] = row
    children: dict[str, list[_Row]] = {identifier: [] for identifier in by_id}
    roots: list[_Row] = []
    for row in by_id.values():
        parent = row.get("ParentID")
        if not parent:
            roots.append(row)
        elif parent not in by_id:
            problems.append(f"CSV ligne {row.line} : ParentID « {parent} » ne désigne aucun ID du fichier.")
        else:
            children[parent].append(row)
    _check_cycles(by_id, problems)
    scan.index_names()
    scan.from_parent = _paths_from_parent(by_id.values(), scan)
    _check_same_files(by_id.values(), scan, problems)
    used = {scan.find(row.get("File")) for row in by_id.values()}
    problems.extend(
        f"Le fichier « {relative} » est dans le dossier mais aucune ligne du CSV ne le décrit."
        for relative in sorted(set(scan.files) - used)
    )
    if not roots and by_id:
        problems.append("Le CSV ne décrit aucune unité racine (ParentID vide).")
    # Built even when problems were found, to report every row's own problems at once (rows in a cycle or
    # under an unknown parent are unreachable from the roots, so the walk terminates).
    return tuple(_row_unit(row, children, scan, problems, depth=0) for row in roots)


def _paths_from_parent(rows: Iterable[_Row], scan: _Scan) -> bool:
    """Whether the CSV names its files from the folder's parent (« Courrier/lettre.pdf » for the folder
    « Courrier »), as ReSIP writes it next to the folder it describes.

    File is relative to the folder first (`socle archive build DOSSIER`). Only when some File is not found that
    way, and every File starts with the folder's own name and is found once that name is removed, the whole CSV
    is read from the parent: one reading for all the rows, never a mix. The same CSV thus goes with the folder
    given to the command and with a zip of that folder sent to the API (which removes the zip's single folder).
    """
    keys = [_key(row.get("File")) for row in rows if row.get("File")]
    if not scan.top or all(key in scan.names for key in keys):
        return False
    return all((below := _below(key, scan.top)) is not None and below in scan.names for key in keys)


def _below(key: str, top: str) -> str | None:
    """A File key read from the folder's parent, as a key from the folder (« » for the folder itself); None when
    it does not start with the folder's name."""
    if key == top:
        return ""
    return key[len(top) + 1 :] if key.startswith(f"{top}/") else None


def _check_cycles(by_id: dict[str, _Row], problems: list[str]) -> None:
    """Note each row whose ParentID chain loops, visiting each row once (a long chain stays linear)."""
    loops: dict[str, bool] = {}  # ID → whether its chain ends in a loop
    for identifier in by_id:
        path: list[str] = []
        on_path: set[str] = set()
        current = identifier
        while current in by_id and current not in loops and current not in on_path:
            path.append(current)
            on_path.add(current)
            current = by_id[current].get("ParentID")
        looping = current in on_path or loops.get(current, False)
        loops.update(dict.fromkeys(path, looping))
    problems.extend(
        f"CSV ligne {row.line} : la chaîne des ParentID de « {identifier} » forme une boucle."
        for identifier, row in by_id.items()
        if loops[identifier]
    )


def _check_same_files(rows: Iterable[_Row], scan: _Scan, problems: list[str]) -> None:
    """A file described by two rows would be packaged twice: refused, naming both lines."""
    first: dict[str, int] = {}
    for row in rows:
        relative = scan.find(row.get("File"))
        if relative not in scan.files:  # a folder, or a name reported by _row_file
            continue
        if relative in first:
            problems.append(
                f"CSV ligne {row.line} : File « {row.get('File')} » est déjà décrit ligne {first[relative]} "
                "(un fichier se verse une seule fois)."
            )
        else:
            first[relative] = row.line


def _row_unit(
    row: _Row, children: dict[str, list[_Row]], scan: _Scan, problems: list[str], depth: int
) -> ArchiveUnitSpec:
    if depth > MAX_DEPTH:
        problems.append(f"CSV ligne {row.line} : arborescence trop profonde (plus de {MAX_DEPTH} niveaux).")
        return ArchiveUnitSpec(title="?")
    file = _row_file(row, scan, problems)
    child_units = tuple(_row_unit(child, children, scan, problems, depth + 1) for child in children[row.get("ID")])
    level = row.get("DescriptionLevel") or row.get("Content.DescriptionLevel")
    level = level or ("Item" if file else "RecordGrp")
    if level not in DESCRIPTION_LEVELS:
        problems.append(
            f"CSV ligne {row.line} : niveau de description inconnu « {level} » "
            f"(valeurs possibles : {', '.join(sorted(DESCRIPTION_LEVELS))})."
        )
    title = row.get("Content.Title") or (PurePosixPath(row.get("File").replace("\\", "/")).name if file else "")
    if not title:
        problems.append(f"CSV ligne {row.line} : Content.Title est vide.")
    start, end = _row_date(row, "Content.StartDate", problems), _row_date(row, "Content.EndDate", problems)
    if start and end and start > end:
        problems.append(
            f"CSV ligne {row.line} : Content.StartDate ({start}) est postérieure à Content.EndDate ({end})."
        )
    dates = {name: _row_moment(row, f"Content.{name}", problems) for name in DATES}
    appraisal, more_appraisal = _appraisal_rules(row, problems)
    access, more_access = _access_rules(row, problems)
    return ArchiveUnitSpec(
        title=title or "?",
        description_level=level,
        description=row.get("Content.Description") or None,
        start_date=start,
        end_date=end,
        keywords=_row_keywords(row),
        document_type=row.get("Content.DocumentType") or None,
        originating_agency_archive_unit_identifier=row.get("Content.OriginatingAgencyArchiveUnitIdentifier") or None,
        files=((file, USAGE),) if file else (),
        children=child_units,
        appraisal_rule=appraisal,
        access_rule=access,
        more_appraisal_rules=more_appraisal,
        more_access_rules=more_access,
        file_plan_positions=row.repeated("Content.FilePlanPosition"),
        originating_system_ids=row.repeated("Content.OriginatingSystemId"),
        archival_agency_archive_unit_identifiers=row.repeated("Content.ArchivalAgencyArchiveUnitIdentifier"),
        transferring_agency_archive_unit_identifiers=row.repeated("Content.TransferringAgencyArchiveUnitIdentifier"),
        custodial_history=row.repeated("Content.CustodialHistory.CustodialHistoryItem"),
        languages=tuple(
            _row_language(row, f"Content.Language.{rank}", problems) for rank, _ in row.ranked("Content.Language")
        ),
        description_language=_row_language(row, "Content.DescriptionLanguage", problems) or None,
        agents=_row_agents(row, problems),
        created_date=dates["CreatedDate"],
        transacted_date=dates["TransactedDate"],
        acquired_date=dates["AcquiredDate"],
        sent_date=dates["SentDate"],
        received_date=dates["ReceivedDate"],
        registered_date=dates["RegisteredDate"],
    )


def _row_file(row: _Row, scan: _Scan, problems: list[str]) -> DescribedFile | None:
    raw = row.get("File")
    if not raw:
        return None
    relative = raw.replace("\\", "/")
    parts = PurePosixPath(relative).parts
    if relative.startswith("/") or re.match(r"[A-Za-z]:", relative) or ".." in parts:
        problems.append(f"CSV ligne {row.line} : File « {raw} » sort du dossier versé : refusé.")
        return None
    found = scan.find(raw)
    if found in scan.files:
        return scan.files[found]
    if found is None:
        problems.append(f"CSV ligne {row.line} : File « {raw} » n'existe pas dans le dossier (ou a été refusé).")
    return None


def _key(raw: str) -> str:
    """A File cell as a key of _Scan.names: `/` separated, without `.` parts, in NFC."""
    parts = PurePosixPath(raw.replace("\\", "/")).parts
    return unicodedata.normalize("NFC", "/".join(part for part in parts if part not in (".", "/")))


def _row_date(row: _Row, key: str, problems: list[str]) -> date | None:
    value = row.get(key)
    if not value:
        return None
    try:
        # ReSIP writes dates, or dateTimes such as 1888-12-30T00:00:00: the day is what SEDA dates keep.
        return date.fromisoformat(value[:10]) if len(value) == 10 else datetime.fromisoformat(value).date()
    except ValueError:
        problems.append(f"CSV ligne {row.line}, {row.column(key)} : date invalide « {value} » (attendu AAAA-MM-JJ).")
        return None


def _row_moment(row: _Row, key: str, problems: list[str]) -> date | datetime | None:
    """A date, or a date-time whose time is kept (SEDA DateType takes both: a mail's SentDate has its time)."""
    value = row.get(key)
    if not value:
        return None
    try:
        return date.fromisoformat(value) if len(value) == 10 else datetime.fromisoformat(value)
    except ValueError:
        problems.append(
            f"CSV ligne {row.line}, {row.column(key)} : date invalide « {value} » "
            "(attendu AAAA-MM-JJ ou AAAA-MM-JJTHH:MM:SS)."
        )
        return None


def _row_language(row: _Row, key: str, problems: list[str]) -> str:
    value = row.get(key)
    if value and not _LANGUAGE.fullmatch(value):
        problems.append(
            f"CSV ligne {row.line}, {row.column(key)} : code de langue invalide « {value} » (attendu p. ex. fr, fr-FR)."
        )
    return value


def _row_keywords(row: _Row) -> tuple[str, ...]:
    ranked = sorted(
        (int(match.group(1)), value.strip())
        for key, value in row.values.items()
        if (match := _KEYWORD_KEY.fullmatch(key)) and value and value.strip()
    )
    return tuple(value for _, value in ranked)


def _row_agents(row: _Row, problems: list[str]) -> dict[str, tuple[AgentSpec, ...]]:
    """The agents of a row (Content.Writer.0.FullName…), by role, each role's agents by rank."""
    found: dict[tuple[str, int], dict[str, list[tuple[int, str]]]] = {}
    for key, value in row.values.items():
        match = _AGENT_KEY.fullmatch(key)
        if match and value and value.strip():
            role, rank, name, sub_rank = match.groups()
            found.setdefault((role, int(rank)), {}).setdefault(name, []).append((int(sub_rank or 0), value.strip()))
    agents: dict[str, list[AgentSpec]] = {}
    for (role, rank), fields in sorted(found.items()):
        agent = _agent(fields)
        where = f"CSV ligne {row.line}, Content.{role}.{rank}"
        names = (agent.full_name, agent.first_name, agent.birth_name, agent.given_name)
        if not (any(names) or agent.corpname or agent.identifiers):
            problems.append(f"{where} : un agent demande un nom (FullName, FirstName…), Corpname ou Identifier.")
        elif agent.corpname and any(names):
            problems.append(f"{where} : Corpname (une organisation) exclut les noms d'une personne (FullName…).")
        agents.setdefault(role, []).append(agent)
    return {role: tuple(role_agents) for role, role_agents in agents.items()}


def _agent(fields: dict[str, list[tuple[int, str]]]) -> AgentSpec:
    """An agent from its fields' (rank, value) pairs: one value for a name, every value by rank for a list."""

    def one(name: str) -> str | None:
        return fields[name][0][1] if name in fields else None

    def many(name: str) -> tuple[str, ...]:
        return tuple(value for _, value in sorted(fields.get(name, [])))

    return AgentSpec(
        full_name=one("FullName"),
        first_name=one("FirstName"),
        birth_name=one("BirthName"),
        given_name=one("GivenName"),
        corpname=one("Corpname"),
        identifiers=many("Identifier"),
        functions=many("Function"),
        activities=many("Activity"),
        positions=many("Position"),
        roles=many("Role"),
    )


def _rules(row: _Row, category: str, problems: list[str]) -> list[tuple[str, date | None]]:
    """The (Rule, StartDate) pairs of a rule block, by rank; a StartDate without its Rule is a problem."""
    rules = dict(row.ranked(f"Management.{category}.Rule"))
    pairs = []
    for rank, _ in row.ranked(f"Management.{category}.StartDate"):
        if rank not in rules:
            key = f"Management.{category}.StartDate.{rank}"
            problems.append(f"CSV ligne {row.line} : {row.column(key)} sans la règle de même rang (Rule).")
    for rank, rule in sorted(rules.items()):
        pairs.append((rule, _row_date(row, f"Management.{category}.StartDate.{rank}", problems)))
    return pairs


def _appraisal_rules(
    row: _Row, problems: list[str]
) -> tuple[tuple[str, date | None, str] | None, tuple[tuple[str, date | None], ...]]:
    """The first AppraisalRule with its final action, and the further ones of the block."""
    rules = _rules(row, "AppraisalRule", problems)
    action = row.get("Management.AppraisalRule.FinalAction")
    if not (rules or action):
        return None, ()
    if not rules or action not in FINAL_ACTIONS:
        rule = rules[0][0] if rules else ""
        problems.append(
            f"CSV ligne {row.line} : une règle de sort final demande Management.AppraisalRule.Rule et "
            f"Management.AppraisalRule.FinalAction (Keep ou Destroy), reçu « {rule} » et « {action} »."
        )
        return None, ()
    (rule, start), *more = rules
    return (rule, start, action), tuple(more)


def _access_rules(
    row: _Row, problems: list[str]
) -> tuple[tuple[str, date | None] | None, tuple[tuple[str, date | None], ...]]:
    rules = _rules(row, "AccessRule", problems)
    if not rules:
        return None, ()
    first, *more = rules
    return first, tuple(more)


# --- entry point -----------------------------------------------------------------------------------


def _default_describer(path: Path, name: str) -> DescribedFile:
    return packaging.describe_file(path, name)


def transfer_from_folder(
    folder: Path,
    *,
    archival_agency: str,
    transferring_agency: str,
    csv_path: Path | None = None,
    message_identifier: str | None = None,
    comment: str | None = None,
    now: datetime | None = None,
    describe: Describer = _default_describer,
    shown: str | None = None,
) -> TransferSpec:
    """Describe `folder` (and `csv_path`) as a transfer. Raises SourceError listing every problem.

    The transferring agency is also the originating and submission agency, as for GED transfers. Messages
    name the folder `shown` (its path by default, as given on the command line), and what is inside it by
    their path from it: never the server's own folders for a tree sent from the web.
    """
    shown = str(folder) if shown is None else shown
    if not folder.is_dir():
        raise SourceError([f"« {shown} » n'est pas un dossier."])
    scan = _scan(folder, describe, skip=_inside(csv_path, folder), shown=shown)
    problems = list(scan.problems)
    if csv_path is None:
        if not _valid_utf8(folder.name):  # the root unit's title: refused as its files would be
            problems.insert(0, _bad_name(shown))
        units: tuple[ArchiveUnitSpec, ...] = (_folder_unit(scan.root),)
    else:
        rows = _read_csv(csv_path, problems)
        units = () if rows is None else _csv_units(rows, scan, problems)
    if not scan.files and not problems:
        problems.append(f"Le dossier « {shown} » ne contient aucun fichier à verser.")
    if problems:
        raise SourceError(problems)
    return _transfer(folder, units, archival_agency, transferring_agency, message_identifier, comment, now)


def _inside(path: Path | None, folder: Path) -> str | None:
    """`path` relative to `folder` when it lies inside (the CSV kept with the documents: metadata, not one)."""
    if path is None:
        return None
    try:
        return path.resolve().relative_to(folder.resolve()).as_posix()
    except ValueError:
        return None


def folder_transfer(
    folder: Path,
    *,
    archival_agency: str,
    transferring_agency: str,
    csv_path: Path | None = None,
    message_identifier: str | None = None,
    comment: str | None = None,
    now: datetime | None = None,
    shown: str | None = None,
) -> tuple[TransferSpec, packaging.Plan]:
    """The transfer of `folder` for packaging.build_sip: its header (units left empty) and its plan.

    Without CSV the plan walks the folder while the package is built; a first walk finds the problems, so
    that a faulty tree is refused at once (SourceError listing them all) instead of after reading it. With a
    CSV the units are built in memory, as transfer_from_folder does, from files not read yet. Messages name the
    folder `shown`, as transfer_from_folder's do.
    """
    if not folder.is_dir():
        raise SourceError([f"« {str(folder) if shown is None else shown} » n'est pas un dossier."])
    if csv_path is not None:
        spec = transfer_from_folder(
            folder, archival_agency=archival_agency, transferring_agency=transferring_agency, csv_path=csv_path,
            message_identifier=message_identifier, comment=comment, now=now, describe=packaging.undescribed,
            shown=shown,
        )  # fmt: skip
        return replace(spec, units=()), packaging.UnitsPlan(spec.units, folder.resolve())
    plan = FolderPlan(folder, shown)
    for _ in plan:
        pass
    if plan.problems:
        raise SourceError(plan.problems)
    spec = _transfer(folder, (), archival_agency, transferring_agency, message_identifier, comment, now)
    return spec, plan


def _transfer(
    folder: Path,
    units: tuple[ArchiveUnitSpec, ...],
    archival_agency: str,
    transferring_agency: str,
    message_identifier: str | None,
    comment: str | None,
    now: datetime | None,
) -> TransferSpec:
    # The transferring agency is also the originating and submission agency, as for GED transfers.
    agency = Agency(transferring_agency)
    when = now or datetime.now(UTC).replace(microsecond=0)
    return TransferSpec(
        message_identifier=message_identifier or f"SIP-{when:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:8]}",
        archival_agreement=None,
        archival_agency=Agency(archival_agency),
        transferring_agency=agency,
        originating_agency=agency,
        submission_agency=agency,
        comment=comment or f"Versement du dossier {folder.name}",
        units=units,
        date=when,
    )


def iter_units(units: tuple[ArchiveUnitSpec, ...]) -> Iterator[ArchiveUnitSpec]:
    """Every unit of the tree, parents first (for callers that summarise a spec)."""
    for unit in units:
        yield unit
        yield from iter_units(unit.children)
