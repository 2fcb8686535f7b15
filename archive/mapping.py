"""From GED metadata to SEDA: a mapping per tenant and GED document type, edited by the archivists.

A mapping names, for each SEDA element, where its value comes from in the GED's export (``ged.jobs._export``):
the document's own metadata (title, dates, author…) or one of its type's typed fields (``field:<name>``).
Without a saved mapping, the default applies: the GED title, the document date, the tags as keywords, the
collectivité as producer and submitter, the AppraisalRule of the referential whose duration is the DUA, the
GED's author as Writer and, for a document signed in the parapheur, its signatories as Signer.

The archive service does not know the GED's types: a field named by a mapping is checked against each
document when the package is built, and a missing value fails the transfer with the field's name. What it can
check when a mapping is saved, it does: each source is one the element admits, and a field's name is written as
the GED writes its fields' technical names (FIELD_NAME); each refusal names the element, its position in a list
and the wrong value. Mappings saved before a check existed keep being read and applied as they are
(``save_problems`` tells what saving one again would refuse).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from archive import referential, seda
from archive.models import TransferMapping
from archive.schemas import AGENT_FIELDS, AGENT_SOURCES, SOURCES, MappingIn, MappingOut
from socle import audit
from socle.auth import Principal, Role
from socle.db import utcnow
from socle.errors import Conflict, InvalidInput, message
from socle.validation_messages import french_message

__all__ = [
    "DEFAULT_MAPPING",
    "MappedUnit",
    "Mapper",
    "MappingError",
    "get_mapping",
    "list_mappings",
    "mapping_version",
    "parse_mapping",
    "save_problems",
    "set_mapping",
]

DEFAULT_MAPPING = MappingIn.model_validate({})
TYPE_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
# The GED's final actions, in SEDA: « trier » (sort) keeps the records, the archivist sorts them later.
FINAL_ACTIONS = {"keep": "Keep", "destroy": "Destroy", "sort": "Keep"}
SORT_NOTE = "Sort final « trier » dans la GED : conservés à titre provisoire, un tri reste à faire (FinalAction Keep)."
UNTYPED = "sans-type"  # the mapping key of documents without a GED type

_MESSAGES = {
    "missing": "valeur obligatoire absente",
    "extra_forbidden": "élément inconnu de la correspondance",
    "literal_error": "valeur non admise",
    "string_type": "texte attendu",
    "bool_type": "vrai ou faux attendu",
    "bool_parsing": "vrai ou faux attendu",
    "list_type": "liste attendue",
    "too_long": "liste trop longue",
    "string_too_long": "texte trop long",
    "dict_type": "objet JSON attendu",
    "model_type": "objet JSON attendu",
}
# The elements whose value is one source, by what they admit besides field:<name> (archive.schemas' patterns).
SOURCE_ELEMENTS = ("title", "description", "start_date", "end_date", "access_start")
AGENCY_ELEMENTS = ("originating_agency", "submission_agency")
# A GED typed field's technical name, as the GED admits it (ged.schemas FieldDef.name): what may follow
# « field: » in a source, and a name in keyword_fields. The archive service cannot know a type's fields (the GED
# keeps them): it checks their syntax at save, their values when a package is built. Checked at save only: the
# schema (archive.schemas) stays as loose as before, so mappings saved earlier are still read and applied.
FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
FIELD_NAME_RULE = (
    "le nom technique d'un champ typé de la GED s'écrit en minuscules sans accent, chiffres et souligné (_), "
    "commence par une lettre et compte 63 caractères au plus"
)
# A rule id as the referential admits it (archive.schemas.RuleIn): checked even without a referential, since the
# id is written as is in the package's Rule elements.
RULE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# The elements that become SEDA dates, and the sources that can give one (besides typed fields, checked when
# the package is built): a title or an author never is a date.
DATE_ELEMENTS = ("start_date", "end_date", "access_start")
DATE_SOURCES = ("document_date", "created_at", "modified_at", "dua_start")
DEFAULT_VERSION = "default"  # the version of a type's mapping while none is saved


class MappingError(seda.SedaError):
    """A document the mapping cannot describe (a named field empty or of the wrong kind): the transfer fails."""


# ---------------------------------------------------------------------------------------------------------
# Reading and editing


def parse_mapping(raw: Any) -> MappingIn:
    """Check a mapping sent by an archivist.

    :raises InvalidInput: in French, naming each wrong element of the mapping (``detail``), and each one apart
        (``errors``: ``field``, the element, with its position in a list, « writer.1 », and ``message``).
    """
    try:
        body = MappingIn.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"]) or "correspondance"
            text = _MESSAGES.get(error["type"])
            if error["type"] == "string_pattern_mismatch" and error["loc"]:
                text = _unknown_source(str(error["loc"][0]), error.get("input"))
            if text is None:  # our own validators already speak French
                text = french_message(error)
            problems.append((where, text))
        # The misspelt fields' names too, where the schema found nothing wrong: every refusal at once.
        flagged = {where for where, _text in problems}
        problems += [
            (where, text)
            for where, text in _field_problems(raw)
            if where not in flagged and where.split(".")[0] not in flagged
        ]
        raise _invalid(problems) from None
    problems = save_problems(body)
    if problems:
        raise _invalid(problems)
    return body.model_copy(update={name: _rule_id(getattr(body, name)) for name in ("appraisal_rule", "access_rule")})


def _invalid(problems: list[tuple[str, str]]) -> InvalidInput:
    return InvalidInput(
        "correspondance invalide : " + " ; ".join(f"{where} : {text}" for where, text in problems),
        errors=[{"field": where, "message": text} for where, text in problems],
    )


def _rule_id(rule_id: str | None) -> str | None:
    return None if rule_id is not None and not rule_id.strip() else rule_id  # an empty choice: no rule named


def save_problems(body: MappingIn) -> list[tuple[str, str]]:
    """What the schema lets through but a save refuses, as (element, problem): what would make every package of
    the type fail or be refused (a date taken from a source that never is a date, a rule id the referential
    could not hold: spaces, markup, controls) or silently empty (a field's name the GED cannot have).

    Also asked of a mapping saved before these checks (the mapping page shows what to correct): such a mapping
    is still read and applied as it is."""
    problems = []
    for name in DATE_ELEMENTS:
        source = getattr(body, name)
        if not source.startswith("field:") and source not in DATE_SOURCES:
            problems.append(
                (
                    name,
                    f"la source « {source} » n'est pas une date : attendu "
                    f"{', '.join(DATE_SOURCES)} ou field:<nom d'un champ date>",
                )
            )
    for name in ("appraisal_rule", "access_rule"):
        rule_id = _rule_id(getattr(body, name))
        if rule_id is not None and not RULE_ID.fullmatch(rule_id):
            problems.append(
                (
                    name,
                    f"identifiant de règle invalide « {_shown(rule_id)} » : "
                    "lettres, chiffres, point, tiret ou souligné",
                )
            )
    return problems + _field_problems(body.model_dump())


def _field_problems(raw: Any) -> list[tuple[str, str]]:
    """The typed fields' names the GED cannot have, as (element, problem): after « field: » in a source (« writer.1
    »: a list's position, from 0 as in the schema's errors), and in keyword_fields. Read from the mapping as sent
    (values of the wrong type are the schema's to refuse)."""
    if not isinstance(raw, dict):
        return []
    found: list[tuple[str, Any]] = [(name, raw.get(name)) for name in (*SOURCE_ELEMENTS, *AGENCY_ELEMENTS)]
    for name in AGENT_FIELDS:
        found += [(f"{name}.{index}", source) for index, source in enumerate(_listed(raw.get(name)))]
    problems = []
    for where, source in found:
        named = source.removeprefix("field:") if isinstance(source, str) and source.startswith("field:") else None
        if named is not None and not FIELD_NAME.fullmatch(named):
            problems.append((where, _bad_field(named, "field:")))
    for index, name in enumerate(_listed(raw.get("keyword_fields"))):
        if isinstance(name, str) and not FIELD_NAME.fullmatch(name):
            problems.append((f"keyword_fields.{index}", _bad_field(name, "")))
    return problems


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _bad_field(name: str, prefix: str) -> str:
    """A field's name the GED cannot have, and the likely one when case or a dash or dot is all that is wrong."""
    text = f"champ « {prefix}{_shown(name)} » mal écrit : {FIELD_NAME_RULE}"
    likely = re.sub(r"[-.]", "_", name.lower())
    if FIELD_NAME.fullmatch(likely):
        text += f" (vouliez-vous dire « {prefix}{likely} » ?)"
    return text


def _unknown_source(element: str, value: Any) -> str:
    """An element's source that is none it admits: what it is, what is admitted, and the likely one."""
    if element in AGENT_FIELDS:
        known: tuple[str, ...] = AGENT_SOURCES
    elif element in AGENCY_ELEMENTS:
        known = ("tenant",)
    else:
        known = SOURCES
    text = str(value) if isinstance(value, str) else ""
    problem = f"source inconnue : attendu {', '.join(known)} ou field:<nom du champ> (reçu « {_shown(text)} »"
    close = difflib.get_close_matches(text.strip().lower(), known, n=1, cutoff=0.6)
    if close:
        return f"{problem} : vouliez-vous dire « {close[0]} » ?)"
    if FIELD_NAME.fullmatch(text.strip()):  # a field's name without its prefix
        return f"{problem} : un champ typé s'écrit « field:{text.strip()} »)"
    return f"{problem})"


def _shown(value: str) -> str:
    """A value as a message may quote it: 100 characters at most, controls and invisible marks escaped."""
    return "".join(
        char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in value[:100]
    )


def _check_type_code(type_code: str) -> None:
    if type_code != UNTYPED and not TYPE_CODE.fullmatch(type_code):
        raise InvalidInput(
            message("type_code : code de type de document invalide « %(type_code)s »", type_code=type_code[:100])
        )


def get_mapping(session: Session, tenant_id: str, type_code: str) -> MappingOut:
    """The mapping of a GED type code in the tenant: the saved one, or the default (``default`` true)."""
    _check_type_code(type_code)
    found = _saved(session, tenant_id, type_code)
    if found is None:
        return MappingOut(
            **DEFAULT_MAPPING.model_dump(), type_code=type_code, default=True, updated_by=None, updated_at=None
        )
    return _out(found)


def list_mappings(session: Session, tenant_id: str) -> list[MappingOut]:
    """The mappings the tenant's archivists saved, by type code."""
    query = select(TransferMapping).where(TransferMapping.tenant_id == tenant_id).order_by(TransferMapping.type_code)
    return [_out(found) for found in session.execute(query).scalars()]


def mapping_version(found: MappingOut) -> str:
    """The version of a mapping as an archivist read it: sent back when saving, it stops a lost update."""
    return found.updated_at.isoformat() if found.updated_at is not None else DEFAULT_VERSION


def set_mapping(
    session: Session, principal: Principal, type_code: str, raw: Any, *, version: str | None = None
) -> MappingOut:
    """Save the mapping of a GED type code (archiviste), checked, rules included against the referential.

    ``version``: the mapping_version the archivist edited (None: not checked); another archivist's save since
    then is not overwritten.

    :raises Forbidden: not an archivist. :raises InvalidInput: a wrong element, named; a rule the referential
        does not have in the right category. :raises Conflict: the mapping changed since ``version``.
    """
    principal.require(Role.ARCHIVISTE)
    _check_type_code(type_code)
    body = parse_mapping(raw)
    _check_rules(session, principal.tenant_id, body)
    found = _saved(session, principal.tenant_id, type_code, for_update=True)
    if version is not None:
        current = DEFAULT_VERSION if found is None else mapping_version(_out(found))
        if version != current:
            raise _changed(type_code, found)
    if found is None:
        found = TransferMapping(tenant_id=principal.tenant_id, type_code=type_code)
        session.add(found)
    found.mapping = body.model_dump()
    found.updated_by, found.updated_at = principal.username, utcnow()
    try:
        session.flush()
    except IntegrityError:  # another archivist saved the type's first mapping meanwhile
        session.rollback()
        raise _changed(type_code, _saved(session, principal.tenant_id, type_code)) from None
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="archive.mapping.updated",
        object_type="mapping",
        object_id=type_code,
        details={"mapping": found.mapping},
    )
    session.commit()
    return _out(found)


def _changed(type_code: str, found: TransferMapping | None) -> Conflict:
    by = found.updated_by if found is not None else "?"
    return Conflict(
        message(
            "la correspondance du type « %(code)s » a été modifiée entre-temps par %(name)s : "
            "rechargez-la avant de l'enregistrer",
            code=type_code,
            name=by,
        )
    )


def _saved(session: Session, tenant_id: str, type_code: str, *, for_update: bool = False) -> TransferMapping | None:
    query = select(TransferMapping).where(
        TransferMapping.tenant_id == tenant_id, TransferMapping.type_code == type_code
    )
    if for_update:
        query = query.with_for_update()
    return session.execute(query).scalar_one_or_none()


def _out(found: TransferMapping) -> MappingOut:
    values = {**DEFAULT_MAPPING.model_dump(), **found.mapping}  # a mapping saved before a new element existed
    return MappingOut(
        **values, type_code=found.type_code, default=False, updated_by=found.updated_by, updated_at=found.updated_at
    )


def _check_rules(session: Session, tenant_id: str, body: MappingIn) -> None:
    saved = referential.get_referential(session, tenant_id)
    if saved is None:
        return  # without a referential, rule ids are not checked (as for the packages)
    categories = {rule["id"]: rule["category"] for rule in saved.rules}
    for name, category in (("appraisal_rule", "AppraisalRule"), ("access_rule", "AccessRule")):
        rule_id = getattr(body, name)
        if rule_id is not None and categories.get(rule_id) != category:
            raise InvalidInput(
                message(
                    "correspondance invalide : %(name)s : la règle « %(rule_id)s » n'est pas une "
                    "règle %(category)s du référentiel de la collectivité",
                    name=name,
                    rule_id=rule_id,
                    category=category,
                )
            )


# ---------------------------------------------------------------------------------------------------------
# Applying


@dataclass(frozen=True)
class MappedUnit:
    """A document described for SEDA: its unit, and the agencies its mapping names (None: the tenant's)."""

    unit: seda.ArchiveUnitSpec
    originating_agency: str | None
    submission_agency: str | None


class Mapper:
    """Applies the tenant's mappings to the GED's export; loaded once, before the package is built."""

    def __init__(self, mappings: dict[str, MappingIn], rules: list[dict[str, Any]] | None) -> None:
        self.mappings, self.rules = mappings, rules

    @classmethod
    def load(cls, session: Session, tenant_id: str) -> Mapper:
        """Every saved mapping of the tenant, and its referential's rules (None without a referential)."""
        query = select(TransferMapping).where(TransferMapping.tenant_id == tenant_id)
        mappings = {
            found.type_code: MappingIn.model_validate({**DEFAULT_MAPPING.model_dump(), **found.mapping})
            for found in session.execute(query).scalars()
        }
        saved = referential.get_referential(session, tenant_id)
        return cls(mappings, list(saved.rules) if saved is not None else None)

    def mapping_for(self, document: dict[str, Any]) -> tuple[str, MappingIn]:
        code = (document.get("type") or {}).get("code") or UNTYPED
        return code, self.mappings.get(code, DEFAULT_MAPPING)

    def map_document(self, document: dict[str, Any], files: tuple[tuple[seda.DescribedFile, str], ...]) -> MappedUnit:
        """Describe one exported document with its type's mapping.

        :raises MappingError: a value the mapping names is missing or of the wrong kind, or no rule fits the DUA.
        """
        code, mapping = self.mapping_for(document)
        read = _Reader(document, code)
        notes = [read.text(mapping.description, "description")] if mapping.description else []
        appraisal = self._appraisal(read, mapping)
        if (document.get("type") or {}).get("final_action") == "sort" and appraisal is not None:
            notes.append(SORT_NOTE)
        keywords = list(document.get("tags", ())) if mapping.keywords_from_tags else []
        for name in mapping.keyword_fields:
            keywords += read.keywords(name)
        access = None
        if mapping.access_rule:
            access = (mapping.access_rule, read.date(mapping.access_start, "access_start", None))
        unit = seda.ArchiveUnitSpec(
            title=read.text(mapping.title, "title"),
            description_level=mapping.description_level,
            description="\n".join(note for note in notes if note) or None,
            start_date=read.date(mapping.start_date, "start_date", "created_at"),
            end_date=read.date(mapping.end_date, "end_date", "modified_at"),
            keywords=tuple(dict.fromkeys(keyword for keyword in keywords if keyword)),
            document_type=document.get("document_type"),
            originating_agency_archive_unit_identifier=document["document_id"],
            files=files,
            appraisal_rule=appraisal,
            access_rule=access,
            agents=self._agents(read, mapping),
        )
        return MappedUnit(
            unit,
            read.agency(mapping.originating_agency, "originating_agency"),
            read.agency(mapping.submission_agency, "submission_agency"),
        )

    def _agents(self, read: _Reader, mapping: MappingIn) -> dict[str, tuple[seda.AgentSpec, ...]]:
        """Each role's agents from its sources, in order, each one once; a source without value names nobody."""
        agents: dict[str, tuple[seda.AgentSpec, ...]] = {}
        for name, role in AGENT_FIELDS.items():
            found = [agent for source in getattr(mapping, name) for agent in read.agents(source)]
            if found:
                agents[role] = tuple(dict.fromkeys(found))
        return agents

    def _appraisal(self, read: _Reader, mapping: MappingIn) -> tuple[str, date | None, str] | None:
        """AppraisalRule: the mapping's rule, or the referential's whose duration is the DUA; start at the DUA's
        event, final action from the GED's. None for a document without type or DUA (and no rule named)."""
        document_type = read.document.get("type") or {}
        action = FINAL_ACTIONS.get(document_type.get("final_action") or "")
        if action is None:
            return None
        months = document_type.get("dua_months")
        rule_id = mapping.appraisal_rule or (self._rule_for(read.code, months) if months is not None else None)
        if rule_id is None:
            return None
        start = document_type.get("dua_start")
        return rule_id, date.fromisoformat(start) if start else None, action

    def _rule_for(self, code: str, months: int) -> str:
        duration = _duration(months)
        if self.rules is None:
            return f"DUA-{duration}"  # no referential: nothing to match, a readable id (rules are not checked)
        for rule in self.rules:
            if rule["category"] == "AppraisalRule" and _months(rule.get("duration")) == months:
                return str(rule["id"])
        raise MappingError(
            f"type « {code} » : aucune règle AppraisalRule du référentiel n'a la durée de la DUA ({duration}) ; "
            f"choisissez-en une dans la correspondance (appraisal_rule, PUT /archive/mappings/{code})"
        )


class _Reader:
    """Reads the values a mapping names from one exported document; errors name the mapping's element."""

    def __init__(self, document: dict[str, Any], code: str) -> None:
        self.document, self.code = document, code

    def raw(self, source: str) -> Any:
        document, document_type = self.document, self.document.get("type") or {}
        if source.startswith("field:"):
            return (document.get("field_values") or {}).get(source.removeprefix("field:"))
        return {
            "title": document.get("title"),
            "document_type": document.get("document_type"),
            "type_name": document_type.get("name"),
            "author": document.get("author"),
            "document_date": document.get("date"),
            "created_at": document.get("created_at"),
            "modified_at": document.get("modified_at"),
            "dua_start": document_type.get("dua_start"),
        }[source]

    def _fail(self, element: str, source: str, problem: str) -> MappingError:
        return MappingError(
            f"correspondance du type « {self.code} », {element} : {source} {problem} "
            f"pour le document {self.document['document_id']}"
        )

    def text(self, source: str, element: str) -> str:
        value = self.raw(source)
        if value is None or isinstance(value, (list, dict)) or not str(value).strip():
            raise self._fail(element, source, "est vide ou n'est pas un texte")
        return str(value).strip()

    def date(self, source: str, element: str, fallback: str | None) -> date | None:
        """A date from an ISO date or date-time; the fallback source when empty (None: no date)."""
        value = self.raw(source)
        if value in (None, "") and fallback is not None:
            value = self.raw(fallback)
        if value in (None, ""):
            return None
        text = str(value).strip()
        try:  # a date, or a date-time (its day): « 2026-02-01zzz » is neither
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text).date()
        except ValueError:
            raise self._fail(element, source, f"n'est pas une date (« {text[:50]} »)") from None

    def keywords(self, name: str) -> list[str]:
        value = (self.document.get("field_values") or {}).get(name)
        values = value if isinstance(value, list) else [value]
        return [str(item).strip() for item in values if item not in (None, "") and not isinstance(item, dict)]

    def agents(self, source: str) -> list[seda.AgentSpec]:
        """The people a source names: the GED's users (author, signatories) by display name and username, or a
        typed field's text(s) as full names. Agents are optional: an empty source names nobody."""
        if source == "author":
            people = [{"username": self.document.get("author"), "name": self.document.get("author_name")}]
        elif source == "signatories":
            people = [person for person in self.document.get("signatories") or [] if isinstance(person, dict)]
        else:
            value = (self.document.get("field_values") or {}).get(source.removeprefix("field:"))
            values = value if isinstance(value, list) else [value]
            names = [str(item).strip() for item in values if item not in (None, "") and not isinstance(item, dict)]
            return [seda.AgentSpec(full_name=name) for name in names if name]
        agents = []
        for person in people:
            username = str(person.get("username") or "").strip()
            name = str(person.get("name") or "").strip() or username
            if name:
                agents.append(seda.AgentSpec(full_name=name, identifiers=(username,) if username else ()))
        return agents

    def agency(self, source: str, element: str) -> str | None:
        if source == "tenant":
            return None
        agency = self.text(source, element)
        if len(agency) > 100:
            raise self._fail(element, source, "dépasse 100 caractères")
        return agency


def _duration(months: int) -> str:
    """An ISO 8601 duration in whole years when it can be (P10Y), else in months (P18M)."""
    return f"P{months // 12}Y" if months and months % 12 == 0 else f"P{months}M"


def _months(duration: Any) -> int | None:
    """A referential duration (P10Y, P6M, P1Y6M) in months; None for days or an unlimited rule."""
    found = re.fullmatch(r"P(?:(\d+)Y)?(?:(\d+)M)?", str(duration or ""))
    if found is None or not any(found.groups()):
        return None
    return int(found.group(1) or 0) * 12 + int(found.group(2) or 0)
