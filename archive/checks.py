"""Business checks after the XSD, mirroring what an archival system (Vitam, As@lae) refuses at ingest.

The XSD lets through what these systems reject: a unit without Title or DescriptionLevel, a StartDate after
its EndDate, a digest algorithm the SAE does not recompute, an object usage (DataObjectVersion) Vitam does not
know, objects without their file (or files without their object), rule identifiers its referential does not
know; and, as a warning, a manifest without entry contract (ArchivalAgreement). Each finding is a
ValidationIssue, worded like the XSD's own (line, element path, French message), with ``check="business"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from lxml import etree

from archive.seda import OBJECT_USAGES
from archive.validation import ValidationIssue, element_path

__all__ = [
    "DEFAULT_DIGEST_ALGORITHMS",
    "DIGEST_ALGORITHMS",
    "RULE_CATEGORIES",
    "BusinessRules",
    "check_manifest",
    "check_manifest_file",
    "invented_rules",
    "missing_agreement",
    "warnings",
]

# The SEDA code list for MessageDigest/@algorithm; Vitam recomputes SHA-512 only.
DIGEST_ALGORITHMS = ("MD5", "SHA-1", "SHA-256", "SHA-384", "SHA-512")
DEFAULT_DIGEST_ALGORITHMS = ("SHA-512",)
RULE_CATEGORIES = (
    "AppraisalRule",
    "AccessRule",
    "StorageRule",
    "DisseminationRule",
    "ReuseRule",
    "ClassificationRule",
)
# The AppraisalRule ids archive.mapping.Mapper._rule_for makes up from the DUA when there is no referential.
_INVENTED = re.compile(r"^DUA-P\d+[YM]$")
# What Vitam accepts as DataObjectVersion: a usage, then optionally « _ » and a version number, 0 included.
USAGE = re.compile(rf"({'|'.join(OBJECT_USAGES)})(_[0-9]+)?")
_OBJECTS = ("BinaryDataObject", "PhysicalDataObject")
# xsd:date, xsd:dateTime, gYearMonth or gYear: what SEDA's DateType and dates accept, year first.
_DATE = re.compile(r"^(-?\d{4,})(?:-(\d{2})(?:-(\d{2}))?)?")


@dataclass(frozen=True)
class BusinessRules:
    """What the tenant's archival system accepts."""

    digest_algorithms: frozenset[str] = frozenset(DEFAULT_DIGEST_ALGORITHMS)
    # Rule id → its category (AppraisalRule…). None: rule identifiers are not checked (no referential known).
    rules: Mapping[str, str] | None = field(default=None)


def check_manifest(
    tree: etree._ElementTree, rules: BusinessRules, *, file_count: int | None = None
) -> list[ValidationIssue]:
    """Check a SEDA 2.x manifest (already parsed) against ``rules``; ``file_count``: files in the package.

    Returns the issues found, in document order per check; an empty list when the manifest passes.
    """
    root = tree.getroot()
    namespace = etree.QName(root).namespace or ""
    prefix = "{" + namespace + "}" if namespace else ""
    categories = {prefix + category: category for category in RULE_CATEGORIES}
    issues: list[ValidationIssue] = []
    objects = 0
    # One pass over the tree: a 100,000-unit manifest has millions of elements.
    for element in root.iter(prefix + "ArchiveUnit", *(prefix + name for name in _OBJECTS), *categories):
        tag = element.tag
        if tag == prefix + "ArchiveUnit":
            content = element.find(prefix + "Content")
            if content is not None:  # a unit made only of an ArchiveUnitRefId describes nothing itself
                issues += _unit_issues(element, content, prefix)
        elif tag == prefix + "BinaryDataObject":
            objects += 1
            issues += _usage_issues(element, prefix) + _digest_issues(element, prefix, rules.digest_algorithms)
        elif tag == prefix + "PhysicalDataObject":
            issues += _usage_issues(element, prefix)
        elif rules.rules is not None:
            issues += _rule_issues(element, categories[str(tag)], prefix, rules.rules)
    if file_count is not None and file_count != objects:
        issues.append(
            _issue(
                root,
                f"le bordereau déclare {objects} objet(s) binaire(s) mais le paquet contient "
                f"{file_count} fichier(s) : chaque objet doit avoir exactement un fichier",
                at_root=True,
            )
        )
    return issues


def check_manifest_file(path: str, rules: BusinessRules) -> list[ValidationIssue]:
    """check_manifest (without the file count), read in a stream: the memory stays flat whatever the
    manifest's size (a 100,000-file package's manifest would take several times its 116 MB as a tree). Each
    unit and object group is forgotten once checked; paths name elements by their ids, never by their rank."""
    issues: list[ValidationIssue] = []
    prefix: str | None = None
    categories: dict[str, str] = {}
    parser = etree.iterparse(path, events=("start", "end"), resolve_entities=False, no_network=True, huge_tree=True)
    for event, element in parser:
        tag = str(element.tag)
        if prefix is None:  # the root's namespace: SEDA 2.1, 2.2 or 2.3
            namespace = etree.QName(element).namespace or ""
            prefix = "{" + namespace + "}" if namespace else ""
            categories = {prefix + category: category for category in RULE_CATEGORIES}
        if event != "end":
            continue
        local = tag[len(prefix) :]
        if local == "Content" and element.getparent() is not None:
            issues += _unit_issues(element.getparent(), element, prefix)
        elif local == "BinaryDataObject":
            issues += _usage_issues(element, prefix) + _digest_issues(element, prefix, rules.digest_algorithms)
        elif local == "PhysicalDataObject":
            issues += _usage_issues(element, prefix)
        elif tag in categories and rules.rules is not None:
            issues += _rule_issues(element, categories[tag], prefix, rules.rules)
        elif local in ("ArchiveUnit", "DataObjectGroup"):
            element.clear()
            while element.getprevious() is not None:  # the checked siblings before it
                del element.getparent()[0]
    return issues


def _issue(element: etree._Element, message: str, *, at_root: bool = False) -> ValidationIssue:
    line = None if at_root else element.sourceline
    path = element_path(element)
    where = f"Ligne {line}, {path}" if line else path
    return ValidationIssue(line, path, f"{where} : {message}", check="business")


def _unit_issues(unit: etree._Element, content: etree._Element, prefix: str) -> list[ValidationIssue]:
    # One look at each child of Content: this runs once per unit.
    level = titled = False
    start = end = None
    for child in content:
        tag = child.tag
        if tag == prefix + "DescriptionLevel":
            level = level or bool((child.text or "").strip())
        elif tag == prefix + "Title":
            titled = titled or bool((child.text or "").strip())
        elif tag == prefix + "StartDate":
            start = child
        elif tag == prefix + "EndDate":
            end = child
    issues = []
    if not level:
        issues.append(_issue(unit, "DescriptionLevel manquant : le niveau de description est obligatoire"))
    if not titled:
        issues.append(_issue(unit, "Title manquant : l'intitulé est obligatoire"))
    if start is not None and end is not None:
        first, last = _date_parts(start.text), _date_parts(end.text)
        common = min(len(first), len(last))
        if common and first[:common] > last[:common]:
            shown = (end.text or "").strip(), (start.text or "").strip()
            issues.append(_issue(end, "la date de fin ({}) précède la date de début ({})".format(*shown)))
    return issues


def _date_parts(text: str | None) -> tuple[int, ...]:
    """(year, month, day) as far as the value says them; () when it cannot be read (the XSD reports it)."""
    match = _DATE.match((text or "").strip())
    if match is None:
        return ()
    return tuple(int(part) for part in match.groups() if part is not None)


def _usage_issues(obj: etree._Element, prefix: str) -> list[ValidationIssue]:
    """The XSD takes any token as DataObjectVersion; Vitam refuses the package for a usage it does not know.
    An object without one is left to the XSD and the profile (the element is optional)."""
    version = obj.find(prefix + "DataObjectVersion")
    value = (version.text or "").strip() if version is not None else None
    if version is None or (value and USAGE.fullmatch(value)):
        return []
    known = ", ".join(OBJECT_USAGES)
    return [
        _issue(
            version,
            f"usage « {value} » inconnu : attendu {known}, suivi au besoin de « _ » et d'un numéro de version "
            "(BinaryMaster_1)",
        )
    ]


def _digest_issues(obj: etree._Element, prefix: str, accepted: frozenset[str]) -> list[ValidationIssue]:
    digest = obj.find(prefix + "MessageDigest")
    if digest is None:
        return [_issue(obj, "MessageDigest manquant : l'empreinte de l'objet est obligatoire")]
    algorithm = digest.get("algorithm", "")
    if algorithm not in accepted:
        allowed = ", ".join(sorted(accepted))
        return [_issue(digest, f"algorithme d'empreinte « {algorithm} » non accepté (acceptés : {allowed})")]
    return []


def _rule_issues(
    element: etree._Element, category: str, prefix: str, referential: Mapping[str, str]
) -> list[ValidationIssue]:
    issues = []
    for rule in element.iterfind(prefix + "Rule"):
        value = (rule.text or "").strip()
        known = referential.get(value)
        if known is None:
            issues.append(_issue(rule, f"règle « {value} » inconnue du référentiel de la collectivité"))
        elif known != category:
            issues.append(_issue(rule, f"règle « {value} » de catégorie {known}, utilisée comme {category}"))
    return issues


def warnings(tree: etree._ElementTree, rules: BusinessRules) -> list[ValidationIssue]:
    """What is said without making the package non-conforming: the producer gave what it could, the SAE decides."""
    return missing_agreement(tree) + invented_rules(tree, rules)


def missing_agreement(tree: etree._ElementTree) -> list[ValidationIssue]:
    """A warning when the manifest names no entry contract: the XSD makes ArchivalAgreement optional, Vitam
    refuses the package at once. A warning, not an error: the package may be meant for an SAE that does not
    require one."""
    root = tree.getroot()
    namespace = etree.QName(root).namespace or ""
    agreement = root.find(f"{{{namespace}}}ArchivalAgreement" if namespace else "ArchivalAgreement")
    if agreement is not None and (agreement.text or "").strip():
        return []
    text = "ArchivalAgreement absent : Vitam refuse le versement sans contrat d'entrée"
    return [_issue(agreement if agreement is not None else root, text, at_root=agreement is None)]


def invented_rules(tree: etree._ElementTree, rules: BusinessRules) -> list[ValidationIssue]:
    """Warnings for the rule ids made up for lack of a referential (« DUA-P18M »): the XSD and the checks
    accept them, the SAE will not. One per rule id, on its first use; none once the tenant has a referential
    (check_manifest then checks every id against it)."""
    if rules.rules is not None:
        return []
    root = tree.getroot()
    namespace = etree.QName(root).namespace or ""
    prefix = "{" + namespace + "}" if namespace else ""
    found: dict[str, tuple[etree._Element, int]] = {}
    for rule in root.iter(prefix + "Rule"):
        value = (rule.text or "").strip()
        if _INVENTED.match(value):
            first, count = found.get(value, (rule, 0))
            found[value] = (first, count + 1)
    issues = []
    for value, (rule, count) in found.items():
        text = f"règle {value} inventée faute de référentiel : chargez le référentiel de règles de votre SAE"
        if count > 1:
            text += f" ({count} unités concernées)"
        issues.append(_issue(rule, text))
    return issues
