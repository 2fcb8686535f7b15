"""Turning a folder tree, with an optional ReSIP-style metadata CSV, into a SEDA TransferSpec.

Domain code: reads the folder and the CSV, describes each file (digest, size, format), returns a
TransferSpec; writes nothing. Every problem found is collected, so that the archivist sees them all at
once, then raised together as a SourceError (messages in French).

Without CSV, the folder itself is the root unit; each sub-folder becomes a unit (RecordGrp when it has
sub-folders, File otherwise) and each file an Item unit holding the file as its BinaryMaster_1 object.

With a CSV (ReSIP's layout: `;` separated, UTF-8, columns ID, ParentID, File, then dotted SEDA paths,
repeatable elements numbered as in Content.Keyword.0.KeywordContent), the CSV gives the tree: rows with an
empty ParentID are roots, File names a file (its object) or a folder (no object) relative to the folder,
with `\\` or `/`. Every file of the folder must be described by a row, so that nothing is left out silently.
"""

from __future__ import annotations

import csv
import os
import re
import stat
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath

from archive import packaging
from archive.seda import DESCRIPTION_LEVELS, FINAL_ACTIONS, Agency, ArchiveUnitSpec, DescribedFile, TransferSpec

__all__ = ["KNOWN_COLUMNS", "FolderPlan", "SourceError", "folder_transfer", "iter_units", "transfer_from_folder"]

USAGE = "BinaryMaster_1"
MAX_DEPTH = 100  # deeper trees are refused: a generous bound that keeps recursion safe
DESCRIBE_THREADS = 2  # the machines this runs on have few cores; siegfried itself uses one thread
DESCRIBE_WINDOW = 16
# Columns that name a SEDA element this builder writes; anything else is refused, never silently dropped.
KNOWN_COLUMNS = frozenset(
    {
        "ID",
        "ParentID",
        "File",
        "DescriptionLevel",
        "Content.DescriptionLevel",  # the spelling of Vitam's collect module
        "Content.Title",
        "Content.Description",
        "Content.DocumentType",
        "Content.OriginatingAgencyArchiveUnitIdentifier",
        "Content.StartDate",
        "Content.EndDate",
        "Content.Keyword.KeywordContent",
        "Management.AppraisalRule.Rule",
        "Management.AppraisalRule.StartDate",
        "Management.AppraisalRule.FinalAction",
        "Management.AccessRule.Rule",
        "Management.AccessRule.StartDate",
    }
)
_NUMBERED_KEYWORD = re.compile(r"Content\.Keyword\.[0-9]+\.KeywordContent")
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


def _scan(root: Path, describe: Describer) -> _Scan:
    scan = _Scan(_Folder("", root.name), {}, {""}, [])
    _scan_folder(root.resolve(), root, scan.root, scan, depth=0)
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
        scan.problems.append(f"Dossier illisible « {folder.relative or path} » : {error.strerror}.")
        return
    for entry in entries:
        relative = f"{folder.relative}/{entry.name}" if folder.relative else entry.name
        if not _valid_utf8(entry.name):
            scan.problems.append(_bad_name(entry.path))
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

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.problems: list[str] = []
        self.files = 0

    def __iter__(self) -> Iterator[packaging.UnitStart | packaging.UnitEnd]:
        self.problems, self.files = [], 0
        yield from self._walk(self.folder.resolve(), self.folder, "", self.folder.name, depth=0)
        if self.files == 0 and not self.problems:
            self.problems.append(f"Le dossier « {self.folder} » ne contient aucun fichier à verser.")

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
            self.problems.append(f"Dossier illisible « {relative or path} » : {error.strerror}.")
            return folders, files
        for entry in entries:
            child = _child(relative, entry.name)
            if not _valid_utf8(entry.name):
                self.problems.append(_bad_name(entry.path))
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
    line: int
    values: dict[str, str]

    def get(self, column: str) -> str:
        return (self.values.get(column) or "").strip()


def _read_csv(path: Path, problems: list[str]) -> list[_Row]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        problems.append(f"Le CSV {path.name} n'est pas en UTF-8 (octet {error.start}).")
        return []
    except OSError as error:
        problems.append(f"CSV illisible {path} : {error.strerror or error}.")
        return []
    lines = text.splitlines()
    if not lines:
        problems.append(f"Le CSV {path.name} est vide.")
        return []
    # ReSIP writes `;`; a spreadsheet saved "CSV (virgule)" writes `,`: the header says which.
    delimiter = ";" if lines[0].count(";") >= lines[0].count(",") else ","
    reader = csv.DictReader(lines, delimiter=delimiter)
    header = [name.strip() for name in reader.fieldnames or []]
    if not _check_header(header, path.name, problems):
        return []
    reader.fieldnames = header
    rows = []
    for number, values in enumerate(reader, start=2):
        if None in values:  # more cells than columns
            problems.append(f"CSV ligne {number} : plus de valeurs que de colonnes.")
        rows.append(_Row(number, {key: value or "" for key, value in values.items() if key is not None}))
    return rows


def _check_header(header: list[str], name: str, problems: list[str]) -> bool:
    missing = [column for column in _REQUIRED_COLUMNS if column not in header]
    unknown = [column for column in header if column not in KNOWN_COLUMNS and not _NUMBERED_KEYWORD.fullmatch(column)]
    duplicated = sorted({column for column in header if header.count(column) > 1})
    if missing:
        problems.append(f"Le CSV {name} n'a pas les colonnes obligatoires : {', '.join(missing)}.")
    if unknown:
        accepted = ", ".join(sorted(KNOWN_COLUMNS)) + ", Content.Keyword.N.KeywordContent"
        problems.append(
            f"Colonnes inconnues ou non prises en charge dans {name} : {', '.join(unknown)} (acceptées : {accepted})."
        )
    if duplicated:
        problems.append(f"Colonnes en double dans {name} : {', '.join(duplicated)}.")
    return not (missing or unknown or duplicated)


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
    used = {_normalised(row.get("File")) for row in by_id.values()}
    problems.extend(
        f"Le fichier « {relative} » est dans le dossier mais aucune ligne du CSV ne le décrit."
        for relative in sorted(set(scan.files) - used)
    )
    if not roots and by_id:
        problems.append("Le CSV ne décrit aucune unité racine (ParentID vide).")
    # Built even when problems were found, to report every row's own problems at once (rows in a cycle or
    # under an unknown parent are unreachable from the roots, so the walk terminates).
    return tuple(_row_unit(row, children, scan, problems, depth=0) for row in roots)


def _check_cycles(by_id: dict[str, _Row], problems: list[str]) -> None:
    for identifier, row in by_id.items():
        seen = {identifier}
        parent = row.get("ParentID")
        while parent in by_id:
            if parent in seen:
                problems.append(f"CSV ligne {row.line} : la chaîne des ParentID de « {identifier} » forme une boucle.")
                break
            seen.add(parent)
            parent = by_id[parent].get("ParentID")


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
        appraisal_rule=_appraisal_rule(row, problems),
        access_rule=_access_rule(row, problems),
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
    relative = _normalised(raw)
    if relative in scan.files:
        return scan.files[relative]
    if relative not in scan.folders:
        problems.append(f"CSV ligne {row.line} : File « {raw} » n'existe pas dans le dossier (ou a été refusé).")
    return None


def _normalised(raw: str) -> str:
    return "/".join(part for part in PurePosixPath(raw.replace("\\", "/")).parts if part not in (".", "/"))


def _row_date(row: _Row, column: str, problems: list[str]) -> date | None:
    value = row.get(column)
    if not value:
        return None
    try:
        # ReSIP writes dates, or dateTimes such as 1888-12-30T00:00:00: the day is what SEDA dates keep.
        return date.fromisoformat(value[:10]) if len(value) == 10 else datetime.fromisoformat(value).date()
    except ValueError:
        problems.append(f"CSV ligne {row.line}, {column} : date invalide « {value} » (attendu AAAA-MM-JJ).")
        return None


def _row_keywords(row: _Row) -> tuple[str, ...]:
    numbered = sorted(
        (int(column.split(".")[2]), value.strip())
        for column, value in row.values.items()
        if _NUMBERED_KEYWORD.fullmatch(column) and value.strip()
    )
    single = row.get("Content.Keyword.KeywordContent")
    return tuple(([single] if single else []) + [value for _, value in numbered])


def _appraisal_rule(row: _Row, problems: list[str]) -> tuple[str, date | None, str] | None:
    rule = row.get("Management.AppraisalRule.Rule")
    start = _row_date(row, "Management.AppraisalRule.StartDate", problems)
    action = row.get("Management.AppraisalRule.FinalAction")
    if not (rule or start or action):
        return None
    if not rule or action not in FINAL_ACTIONS:
        problems.append(
            f"CSV ligne {row.line} : une règle de sort final demande Management.AppraisalRule.Rule et "
            f"Management.AppraisalRule.FinalAction (Keep ou Destroy), reçu « {rule} » et « {action} »."
        )
        return None
    return rule, start, action


def _access_rule(row: _Row, problems: list[str]) -> tuple[str, date | None] | None:
    rule = row.get("Management.AccessRule.Rule")
    start = _row_date(row, "Management.AccessRule.StartDate", problems)
    if not rule:
        if start:
            problems.append(f"CSV ligne {row.line} : Management.AccessRule.StartDate sans Management.AccessRule.Rule.")
        return None
    return rule, start


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
) -> TransferSpec:
    """Describe `folder` (and `csv_path`) as a transfer. Raises SourceError listing every problem.

    The transferring agency is also the originating and submission agency, as for GED transfers.
    """
    if not folder.is_dir():
        raise SourceError([f"« {folder} » n'est pas un dossier."])
    scan = _scan(folder, describe)
    problems = list(scan.problems)
    if csv_path is None:
        units: tuple[ArchiveUnitSpec, ...] = (_folder_unit(scan.root),)
    else:
        units = _csv_units(_read_csv(csv_path, problems), scan, problems)
    if not scan.files and not problems:
        problems.append(f"Le dossier « {folder} » ne contient aucun fichier à verser.")
    if problems:
        raise SourceError(problems)
    return _transfer(folder, units, archival_agency, transferring_agency, message_identifier, comment, now)


def folder_transfer(
    folder: Path,
    *,
    archival_agency: str,
    transferring_agency: str,
    csv_path: Path | None = None,
    message_identifier: str | None = None,
    comment: str | None = None,
    now: datetime | None = None,
) -> tuple[TransferSpec, packaging.Plan]:
    """The transfer of `folder` for packaging.build_sip: its header (units left empty) and its plan.

    Without CSV the plan walks the folder while the package is built; a first walk finds the problems, so
    that a faulty tree is refused at once (SourceError listing them all) instead of after reading it. With a
    CSV the units are built in memory, as transfer_from_folder does, from files not read yet.
    """
    if not folder.is_dir():
        raise SourceError([f"« {folder} » n'est pas un dossier."])
    if csv_path is not None:
        spec = transfer_from_folder(
            folder, archival_agency=archival_agency, transferring_agency=transferring_agency, csv_path=csv_path,
            message_identifier=message_identifier, comment=comment, now=now, describe=packaging.undescribed,
        )  # fmt: skip
        return replace(spec, units=()), packaging.UnitsPlan(spec.units, folder.resolve())
    plan = FolderPlan(folder)
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
