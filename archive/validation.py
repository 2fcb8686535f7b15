"""Validating SEDA manifests against the official XSDs.

SEDA 2.2 and 2.3 are XSD 1.0: lxml validates them (fast enough for 50,000 objects). The Vitam edition of
SEDA 2.1 needs XSD 1.1, which libxml2 does not implement: xmlschema's XMLSchema11 validates it, much more
slowly (about 70 times), with the same report format.

The schemas are read from a folder laid out by archive.xsd_install.install_schemas (``2.2/…``, ``w3c/…``).
No network access, ever: the two W3C schemas the SEDA XSDs import by URL are resolved to local copies.
"""

from __future__ import annotations

import functools
import io
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import xmlschema
from lxml import etree

__all__ = [
    "MAIN_SCHEMAS",
    "SchemaUnavailable",
    "ValidationIssue",
    "ValidationReport",
    "element_path",
    "load_schema",
    "readable_path",
    "validate_manifest",
]

MAIN_SCHEMAS: dict[str, str] = {
    "2.1": "2.1/seda-vitam-2.1-main.xsd",
    "2.2": "2.2/seda-2.2-main.xsd",
    "2.3": "2.3/seda-2.3-main.xsd",
}
# Versions whose XSD uses XSD 1.1 features (xsd:any after elements in a sequence): xmlschema, not lxml.
XSD11_VERSIONS = frozenset({"2.1"})
W3C_SCHEMAS: dict[str, str] = {
    "http://www.w3.org/2001/xml.xsd": "w3c/xml.xsd",
    "http://www.w3.org/1999/xlink.xsd": "w3c/xlink.xsd",
}
# The same two files, keyed by namespace (xmlschema's `locations`).
W3C_NAMESPACES: dict[str, str] = {
    "http://www.w3.org/XML/1998/namespace": "w3c/xml.xsd",
    "http://www.w3.org/1999/xlink": "w3c/xlink.xsd",
}
# Elements whose text is an IDREF (SEDA types DataObjectRefIdType, GroupRefIdType, ArchiveUnitRefIdType).
REFERENCE_ELEMENTS = frozenset({"DataObjectReferenceId", "DataObjectGroupReferenceId", "ArchiveUnitRefId"})
_REFERENCE_TAGS = tuple(f"{{*}}{name}" for name in sorted(REFERENCE_ELEMENTS))
INSTALL_COMMAND = "socle archive schemas install"
_SEDA_NAMESPACE = re.compile(r"fr:gouv:culture:archivesdefrance:seda:v(2\.[0-9]+)")

# An XMLSchema object keeps its error log on itself: two threads validating at once would mix them.
_VALIDATION_LOCK = threading.Lock()


class SchemaUnavailable(RuntimeError):
    """The XSDs needed to validate are missing or unreadable (message in French)."""


@dataclass(frozen=True)
class ValidationIssue:
    line: int | None
    path: str | None
    message: str
    # Which check found it: "schema" (XSD), "profile" (archival profile) or "business" (an SAE's rules).
    check: str = "schema"


@dataclass(frozen=True)
class ValidationReport:
    valid: bool
    issues: tuple[ValidationIssue, ...]
    schema: str


# lxml ships no type information and its stubs (types-lxml) are not installed: etree.Resolver is Any here.
class _LocalW3CResolver(etree.Resolver):  # type: ignore[misc]
    """Serves the W3C schemas imported by URL from the local folder instead of the network."""

    def __init__(self, schemas_dir: Path) -> None:
        super().__init__()
        self.schemas_dir = schemas_dir

    def resolve(self, system_url: str, public_id: str | None, context: object) -> object:
        relative = W3C_SCHEMAS.get(system_url)
        if relative is None:
            return None  # relative includes (seda-2.2-types.xsd…) are plain local files
        return self.resolve_filename(str(self.schemas_dir / relative), context)


def _schema_path(schemas_dir: Path, version: str) -> Path:
    relative = MAIN_SCHEMAS.get(version)
    if relative is None:
        supported = ", ".join(sorted(MAIN_SCHEMAS))
        raise SchemaUnavailable(f"Version SEDA non prise en charge : {version} (disponibles : {supported}).")
    return schemas_dir / relative


def _unavailable(schemas_dir: Path, detail: str) -> SchemaUnavailable:
    return SchemaUnavailable(
        f"Schémas SEDA indisponibles dans le dossier {schemas_dir} : {detail}. "
        f"Installez-les avec la commande `{INSTALL_COMMAND}`."
    )


def load_schema(schemas_dir: Path, version: str = "2.2") -> etree.XMLSchema | xmlschema.XMLSchema11:
    """The compiled XSD of a SEDA version, cached per (folder, version). Raises SchemaUnavailable.

    An lxml XMLSchema for XSD 1.0 versions, an xmlschema XMLSchema11 for 2.1.
    """
    if version in XSD11_VERSIONS:
        return _load_schema11(schemas_dir.resolve(), version)
    return _load_schema(schemas_dir.resolve(), version)


def _check_files(schemas_dir: Path, main: Path) -> None:
    needed = (main, *(schemas_dir / relative for relative in W3C_SCHEMAS.values()))
    missing = [path for path in needed if not path.is_file()]
    if missing:
        raise _unavailable(schemas_dir, "fichiers manquants " + ", ".join(str(path) for path in missing))


@functools.lru_cache(maxsize=8)
def _load_schema(schemas_dir: Path, version: str) -> etree.XMLSchema:
    # lru_cache does not keep exceptions: schemas installed after a failure are picked up next call.
    main = _schema_path(schemas_dir, version)
    _check_files(schemas_dir, main)
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_LocalW3CResolver(schemas_dir))
    try:
        return etree.XMLSchema(etree.parse(str(main), parser))
    except (etree.XMLSyntaxError, etree.XMLSchemaParseError) as error:
        raise _unavailable(schemas_dir, f"{main.name} est illisible ({error})") from error


@functools.lru_cache(maxsize=4)
def _load_schema11(schemas_dir: Path, version: str) -> xmlschema.XMLSchema11:
    main = _schema_path(schemas_dir, version)
    _check_files(schemas_dir, main)
    locations = [(namespace, str(schemas_dir / relative)) for namespace, relative in W3C_NAMESPACES.items()]
    try:
        # validation="lax": xmlschema rejects one extension of a simple-content type in the Vitam 2.1 XSD
        # (TextType with a `when` attribute) that Vitam's own validator accepts; everything else is built.
        # allow="local" forbids any remote fetch, should a schema import something not mapped above.
        return xmlschema.XMLSchema11(str(main), locations=locations, allow="local", validation="lax")
    except (xmlschema.XMLSchemaException, OSError) as error:
        raise _unavailable(schemas_dir, f"{main.name} est illisible ({error})") from error


def validate_manifest(manifest: bytes | Path, schemas_dir: Path, version: str = "2.2") -> ValidationReport:
    """Validate a manifest (bytes or file) against the SEDA XSD of `version` found in `schemas_dir`.

    Raises SchemaUnavailable when the XSDs are missing: a manifest is never reported valid unchecked.
    """
    schema = load_schema(schemas_dir, version)
    schema_file = str(_schema_path(schemas_dir, version))
    if not isinstance(schema, xmlschema.XMLSchema11) and _valid_streamed(manifest, schema):
        return ValidationReport(True, (), schema_file)
    # Invalid (or XSD 1.1): the whole tree, to report every issue with its line and element path.
    parser = etree.XMLParser(no_network=True, resolve_entities=False, huge_tree=True)
    try:
        if isinstance(manifest, Path):
            tree = etree.parse(str(manifest), parser)
        else:
            tree = etree.ElementTree(etree.fromstring(manifest, parser))
    except etree.XMLSyntaxError as error:
        issue = ValidationIssue(error.lineno, None, f"Ligne {error.lineno} : XML mal formé ({error.msg}).")
        return ValidationReport(False, (issue,), schema_file)
    if isinstance(schema, xmlschema.XMLSchema11):
        schema_issues = _xsd11_issues(schema, tree, version)
    else:
        schema_issues = _lxml_issues(schema, tree, version)
    issues = (*schema_issues, *_dangling_references(tree))
    return ValidationReport(not issues, issues, schema_file)


# The blocks that hold almost everything in a large manifest: validated, checked and cleared one at a time.
_BLOCKS = frozenset({"ArchiveUnit", "DataObjectGroup"})
# Elements whose ids the streamed check notes (an id elsewhere, if referenced, sends the manifest to the
# complete check: never valid wrongly).
_ID_HOLDERS = frozenset({*_BLOCKS, "BinaryDataObject", "PhysicalDataObject"})
_STREAMED_TAGS = tuple(f"{{*}}{name}" for name in sorted({*_ID_HOLDERS, *REFERENCE_ELEMENTS, "Relationship"}))


def _valid_streamed(manifest: bytes | Path, schema: etree.XMLSchema) -> bool:
    """True when the manifest is valid and its references resolve, read as a stream in bounded memory.

    libxml2 validates while parsing. iterparse hands over only the elements that hold ids or references
    (filtered in C: a Python look at each block's descendants took 2 s of CPU for 100,000 objects), and each
    block is cleared once read, so a manifest of 100,000 objects never exists as a whole tree. False at the
    first problem of any kind, an id held twice among the blocks and objects included (libxml2 does not check
    ID uniqueness while streaming). The indentation of a pretty-printed manifest is not built into text nodes
    (remove_blank_text): libxml2 validates the same events either way (tests/archive/
    test_archive_streaming_build.py compares the verdicts), and building the tree is a quarter faster.
    """
    source: str | io.BytesIO = str(manifest) if isinstance(manifest, Path) else io.BytesIO(manifest)
    ids: set[str] = set()
    forward: list[str] = []  # references to an id not seen yet (groups come before the units that use them)
    with _VALIDATION_LOCK:
        try:
            context = etree.iterparse(
                source, events=("end",), tag=_STREAMED_TAGS, schema=schema, huge_tree=True, no_network=True,
                resolve_entities=False, remove_blank_text=True,
            )  # fmt: skip
            for _, element in context:
                name = element.tag.rpartition("}")[2]
                if name in _ID_HOLDERS:
                    if (value := element.get("id")) is not None:
                        if value in ids:
                            # libxml2 checks xsd:ID uniqueness on a whole tree only: a repeated id passes a
                            # streamed validation. The complete check reports it, with its line.
                            return False
                        ids.add(value)
                    if name in _BLOCKS:
                        element.clear(keep_tail=False)
                    continue
                target = element.get("target", "") if name == "Relationship" else (element.text or "").strip()
                if target not in ids:
                    forward.append(target)
        except (etree.XMLSyntaxError, OSError):
            return False
    return all(target and target in ids for target in forward)


def _lxml_issues(schema: etree.XMLSchema, tree: etree._ElementTree, version: str) -> list[ValidationIssue]:
    with _VALIDATION_LOCK:
        valid = schema.validate(tree)
        errors = [error for error in schema.error_log if error.level >= etree.ErrorLevels.ERROR]
    issues = [_issue(tree, error, version) for error in errors]
    if not valid and not issues:  # never call invalid what libxml2 refused without saying why
        issues.append(ValidationIssue(None, None, "Manifeste : non conforme au schéma."))
    return issues


def _xsd11_issues(schema: xmlschema.XMLSchema11, tree: etree._ElementTree, version: str) -> list[ValidationIssue]:
    """xmlschema's errors in the lxml report format: line, readable element path, French prefix."""
    root = tree.getroot()
    other = _other_version(etree.QName(root).namespace, version)
    if other is not None:  # xmlschema says « not an element of the schema »: every element of it, at once
        return [
            ValidationIssue(
                root.sourceline, element_path(root), f"Ligne {root.sourceline}, {element_path(root)} : {other}"
            )
        ]
    issues = []
    for error in schema.iter_errors(tree):
        element = error.elem if isinstance(error.elem, etree._Element) else None
        line = element.sourceline if element is not None else getattr(error, "sourceline", None)
        path = element_path(element) if element is not None else error.path
        where = f"Ligne {line}" if line else "Manifeste"
        if path:
            where += f", {path}"
        name = f"élément {etree.QName(element).localname} — " if element is not None else ""
        reason = re.sub(r"\{[^}]*\}", "", str(error.reason or error.message))
        issues.append(ValidationIssue(line, path, f"{where} : {name}non conforme au schéma ({reason})"))
    return issues


def _dangling_references(tree: etree._ElementTree) -> list[ValidationIssue]:
    """IDREFs pointing nowhere: libxml2's XSD validator checks ID uniqueness but not IDREF targets.

    tree.iter with tag names filters in C: a Python test on every element took 5 s for 100,000 objects.
    """
    ids = {value for element in tree.iter(etree.Element) if (value := element.get("id")) is not None}
    issues = []
    for element in tree.iter(*_REFERENCE_TAGS, "{*}Relationship"):
        if etree.QName(element).localname == "Relationship":
            target = element.get("target", "")
        else:
            target = (element.text or "").strip()
        if not target or target not in ids:
            line, path = element.sourceline, element_path(element)
            message = f"Ligne {line}, {path} : la référence « {target} » ne désigne aucun identifiant"
            issues.append(ValidationIssue(line, path, message))
    return issues


def _issue(tree: etree._ElementTree, error: etree._LogEntry, version: str) -> ValidationIssue:
    line = error.line or None
    path = readable_path(tree, error.path)
    where = f"Ligne {line}" if line else "Manifeste"
    if path:
        where += f", {path}"
    detail = None
    if error.message.endswith(_NO_ROOT):
        detail = _other_version(etree.QName(tree.getroot()).namespace, version)
    return ValidationIssue(line, path, f"{where} : {detail or _french(error.message)}")


def readable_path(tree: etree._ElementTree, path: str | None) -> str | None:
    """An error log's element path, readable: lxml gives '/*/*[4]/*[2]' for namespaced documents; turn it into
    local names with ids."""
    if not path:
        return None
    try:
        found = tree.xpath(path)
    except etree.XPathError:
        return path
    if isinstance(found, list) and found and isinstance(found[0], etree._Element):
        return element_path(found[0])
    return path


def element_path(element: etree._Element) -> str:
    """The element's path by local names, with ids where there are: /ArchiveTransfer/…/ArchiveUnit[ID4]/Content."""
    parts = []
    for node in (*reversed(list(element.iterancestors())), element):
        name = etree.QName(node).localname
        parts.append(f"{name}[{node.get('id')}]" if node.get("id") else name)
    return "/" + "/".join(parts)


# libxml2's most frequent messages, translated; anything else is kept as is after the French prefix.
_TRANSLATIONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (
            r"This element is not expected\. Expected is one of \( (.+) \)\.",
            r"élément inattendu ; attendu : l'un de \1",
        ),
        (r"This element is not expected\. Expected is \( (.+) \)\.", r"élément inattendu ; attendu : \1"),
        (r"This element is not expected\.", "élément inattendu"),
        (
            r"Missing child element\(s\)\. Expected is one of \( (.+) \)\.",
            r"élément(s) enfant(s) manquant(s) ; attendu : l'un de \1",
        ),
        (r"Missing child element\(s\)\. Expected is \( (.+) \)\.", r"élément(s) enfant(s) manquant(s) ; attendu : \1"),
        (r"The attribute '(.+)' is required but missing\.", r"attribut obligatoire absent : \1"),
        (
            r"'(.*)' is not a valid value of the (?:atomic|union|list) type '(.+)'\.",
            r"« \1 » n'est pas une valeur valide du type \2",
        ),
        (
            r"\[facet 'enumeration'\] The value '(.*)' is not an element of the set \{(.*)\}\.",
            r"valeur « \1 » hors de la liste admise (\2)",
        ),
        (
            r"\[facet 'minLength'\] The value has a length of '(\d+)'; this underruns the allowed minimum length "
            r"of '(\d+)'\.",
            r"valeur trop courte : \1 caractère(s), \2 au moins",
        ),
        (
            r"\[facet 'maxLength'\] The value has a length of '(\d+)'; this exceeds the allowed maximum length "
            r"of '(\d+)'\.",
            r"valeur trop longue : \1 caractère(s), \2 au plus",
        ),
        (
            r"\[facet 'pattern'\] The value '(.*)' is not accepted by the pattern '(.*)'\.",
            r"valeur « \1 » refusée par le motif \2",
        ),
        (r"\[facet '(.+)'\] (.+)", r"contrainte \1 non respectée (\2)"),
        (
            r"'(.*)' is not a valid value of the local (?:atomic|union|list) type\.",
            r"« \1 » n'est pas une valeur valide",
        ),
        (r"The attribute '(.+)' is not allowed\.", "attribut non autorisé à cet endroit"),
        (
            r"Character content other than whitespace is not allowed because the content type is 'element-only'\.",
            "texte non admis : cet élément ne contient que des éléments",
        ),
        (
            r"Element content is not allowed, because the content type is a simple type definition\.",
            "élément enfant non admis : une valeur simple (du texte) est attendue",
        ),
    )
)
# The root in another namespace than the schema's: a manifest of another SEDA version (see _other_version).
_NO_ROOT = "No matching global declaration available for the validation root."


# A {namespace} before a name; not the set {'a', 'b'} of an enumeration facet.
_NAMESPACES = re.compile(r"\{[^}'\s]*\}(?=[\w])")


def _other_version(namespace: str | None, version: str) -> str | None:
    """What to say of a manifest whose root is in `namespace` while the schema is SEDA `version`."""
    found = _SEDA_NAMESPACE.fullmatch(namespace or "")
    if found is None:
        shown = f"« {namespace} »" if namespace else "aucun"
        return f"élément racine hors de l'espace de noms du SEDA {version} (espace de noms : {shown})"
    if found[1] == version:
        return None
    return (
        f"manifeste d'une autre version du SEDA : le schéma est celui du SEDA {version} ; ce versement est en "
        f"SEDA {found[1]}"
    )


def _french(message: str) -> str:
    """'Element '{ns}Size': detail' → 'élément Size — <detail in French when known>'."""
    text = _NAMESPACES.sub("", message)  # drop namespaces: every element is in the SEDA one
    subject, separator, detail = text.partition(": ")
    if not separator:
        subject, detail = "", text
    subject = re.sub(r"Element '([^']*)'", r"élément \1", subject)
    subject = re.sub(r"attribute '([^']*)'", r"attribut \1", subject)
    for pattern, replacement in _TRANSLATIONS:
        translated, count = pattern.subn(replacement, detail)
        if count:
            detail = translated
            break
    else:
        detail = f"non conforme au schéma ({detail})"
    return f"{subject} — {detail}" if subject else detail
