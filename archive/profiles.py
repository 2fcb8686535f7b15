"""Archival profiles: RelaxNG grammars (as SHERPA or PASTIS export them) that a tenant's transfers must satisfy.

A profile is uploaded by an archivist and kept in the object store; a transfer that names one is validated
against it after the XSD, with the same report format (line, element path, French message). Profiles come
from users: parsed without DTD, entities or network, and self-contained (no include or externalRef, which
would make the validator read other files).
"""

from __future__ import annotations

import functools
import io
import re
import threading

from lxml import etree
from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.models import ArchivalProfile, Transfer
from archive.schemas import MAX_IDENTIFIER_LENGTH, sae_token
from archive.seda import version_of_namespace
from archive.statuses import BUILT, INVALID, REQUESTED, UNVALIDATED
from archive.validation import ValidationIssue, element_path
from socle import audit
from socle.auth import Principal, Role
from socle.db import utcnow
from socle.errors import Conflict, InvalidInput, NotFound, message
from socle.storage import get_store

__all__ = [
    "MAX_PROFILE_BYTES",
    "NAME_PATTERN",
    "ProfileError",
    "compile_profile",
    "delete_profile",
    "get_profile",
    "list_profiles",
    "load_profile",
    "sae_identifier",
    "upload_profile",
    "validate_against_profile",
]

MAX_PROFILE_BYTES = 5 * 1024 * 1024  # SHERPA's largest profiles are a few hundred kB
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
RELAXNG = "http://relaxng.org/ns/structure/1.0"
_FORBIDDEN = ("include", "externalRef")
# A RelaxNG object keeps its error log on itself: two threads validating at once would mix them.
_LOCK = threading.Lock()


class ProfileError(InvalidInput):
    """A file that cannot serve as an archival profile (message in French)."""


def compile_profile(data: bytes) -> etree.RelaxNG:
    """Compile a RelaxNG profile. Raises ProfileError (French) for anything unsafe, malformed or not RelaxNG."""
    if len(data) > MAX_PROFILE_BYTES:
        raise ProfileError(
            message(
                "profil refusé : %(data_count)s octets, plus que la limite de %(max_profile_bytes)s",
                data_count=len(data),
                max_profile_bytes=MAX_PROFILE_BYTES,
            )
        )
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )
    try:
        document = etree.ElementTree(etree.fromstring(data, parser))
    except etree.XMLSyntaxError as error:
        if "entit" in str(error).lower() or b"<!DOCTYPE" in data[:65536]:
            raise ProfileError(
                message("profil refusé : il déclare une DTD ou des entités XML, interdites ici")
            ) from None
        raise ProfileError(message("profil refusé : XML mal formé (%(error)s)", error=error)) from None
    if document.docinfo.doctype or document.docinfo.internalDTD is not None:
        raise ProfileError(message("profil refusé : il déclare une DTD (DOCTYPE), interdite ici"))
    if etree.QName(document.getroot()).namespace != RELAXNG:
        raise ProfileError("profil refusé : ce n'est pas un schéma RelaxNG (espace de noms " + RELAXNG + " attendu)")
    for name in _FORBIDDEN:
        if document.find(f".//{{{RELAXNG}}}{name}") is not None:
            raise ProfileError(
                message(
                    "profil refusé : il fait appel à un autre fichier (%(name)s) ; il doit être autonome", name=name
                )
            )
    try:
        return etree.RelaxNG(document)
    except etree.RelaxNGParseError as error:
        raise ProfileError(message("profil refusé : schéma RelaxNG incorrect (%(error)s)", error=error)) from None


def validate_against_profile(tree: etree._ElementTree, profile: etree.RelaxNG, name: str) -> list[ValidationIssue]:
    """The manifest's departures from the profile, as validation issues (``check="profile"``)."""
    with _LOCK:
        valid = profile.validate(tree)
        errors = [error for error in profile.error_log if error.level >= etree.ErrorLevels.ERROR]
    found = [(error.line or None, _element_at(tree, error.path), error.message) for error in errors]
    issues = []
    for line, element, reason in _most_specific(found):
        path = element_path(element) if element is not None else None
        where = f"Ligne {line}" if line else "Manifeste"
        if path:
            where += f", {path}"
        detail = _french(reason, element)
        issues.append(ValidationIssue(line, path, f"{where} : non conforme au profil « {name} » — {detail}", "profile"))
    if not valid and not issues:
        issues.append(ValidationIssue(None, None, f"Manifeste : non conforme au profil « {name} ».", "profile"))
    return issues


def _element_at(tree: etree._ElementTree, path: str | None) -> etree._Element | None:
    if not path:
        return None
    try:
        found = tree.xpath(path)
    except etree.XPathError:
        return None
    return found[0] if isinstance(found, list) and found and isinstance(found[0], etree._Element) else None


_CASCADE = "failed to validate content"


def _most_specific(
    found: list[tuple[int | None, etree._Element | None, str]],
) -> list[tuple[int | None, etree._Element | None, str]]:
    """libxml2 reports a failure again on every ancestor, and the branches it tried on the way: keep the
    findings that explain the others (not the « failed to validate content » echoes, not ancestors)."""
    specific = [item for item in found if _CASCADE not in item[2]] or found
    elements = {item[1] for item in specific if item[1] is not None}
    kept, seen = [], set()
    for line, element, reason in specific:
        if element is not None and any(other in elements for other in element.iterdescendants()):
            continue  # an ancestor of a finding: the descendant's own message says what is wrong
        key = (line, reason)
        if key not in seen:
            seen.add(key)
            kept.append((line, element, reason))
    return kept


# libxml2's RelaxNG messages, in French; anything else is kept as it is. What the profile expects is said when
# libxml2 names it (RELAXNG_ERR_ELEMNAME): a missing element shows as the next one « inattendu », and the
# archivist must read that the missing one is asked for. For a content model libxml2 compiled to an automaton
# (RELAXNG_ERR_ELEMWRONG, « Did not expect element X there »), its log names nothing expected: X alone is said.
_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (
            r"^Expecting element (\S+), got (\S+)$",
            r"élément \2 inattendu à cet endroit : le profil attend \1 avant \2",
        ),
        (r"^Expecting an element (\S+), got nothing$", r"élément \1 manquant"),
        (r"^Expecting an element , got nothing$", "élément manquant"),
        (r"^Did not expect element (\S+) there$", r"élément \1 inattendu à cet endroit"),
        (r"^Element (\S+) has extra content: (\S+)$", r"contenu en trop dans \1 : \2"),
        (r"^Extra element (\S+) in interleave$", r"élément \1 en trop"),
        (r"^Invalid attribute (\S+) for element (\S+)$", r"attribut \1 non autorisé sur \2"),
        (r"^Element (\S+) failed to validate attributes$", r"attributs de \1 non conformes"),
        (r"^Element (\S+) failed to validate content$", r"contenu de \1 non conforme"),
        (r"^Type (\S+) doesn't allow value '(.*)'$", r"le type \1 n'admet pas la valeur « \2 »"),
        (
            r"^Expecting a namespace for element (\S+)$",
            r"élément \1 sans espace de noms : le profil l'attend dans l'espace de noms du SEDA",
        ),
        (
            r"^Expecting no namespace for element (\S+)$",
            r"élément \1 dans un espace de noms : le profil le déclare sans espace de noms (profil à corriger ?)",
        ),
        (
            r"^Did not expect text in element (\S+) content$",
            r"texte inattendu dans \1 : le profil n'y admet que des éléments",
        ),
        (r"^Extra data in list: (.*)$", r"valeur en trop dans la liste : « \1 »"),
        (r"^Error validating list$", "liste de valeurs refusée par le profil"),
        (r"^Invalid sequence in interleave$", "éléments dans un ordre ou un nombre que le profil n'admet pas"),
    )
)
# RELAXNG_ERR_ELEMWRONGNS: the element is in another namespace than the profile's; said apart (_wrong_namespace).
_WRONG_NAMESPACE = re.compile(r"^Element (\S+) has wrong namespace: expecting (\S*)$")


def _french(message: str, element: etree._Element | None) -> str:
    text = re.sub(r"\{[^}]*\}", "", message).strip()
    value = (element.text or "").strip() if element is not None and len(element) == 0 else ""
    if text.startswith("Error validating datatype") or text.startswith("Error validating value"):
        shown = f"« {value[:200]} »" if value else "vide"
        return f"valeur {shown} refusée par le profil (valeurs ou motif imposés)"
    wrong = _WRONG_NAMESPACE.match(text)
    if wrong:
        return _wrong_namespace(wrong[1], wrong[2], element)
    for pattern, replacement in _MESSAGES:
        if pattern.match(text):
            return pattern.sub(replacement, text)
    return text


def _wrong_namespace(name: str, expected: str, element: etree._Element | None) -> str:
    """A manifest in another SEDA version than its profile's, said so; else both namespaces."""
    found = (etree.QName(element).namespace or "") if element is not None else ""
    wanted, actual = version_of_namespace(expected), version_of_namespace(found)
    if wanted and actual and wanted != actual:
        return (
            f"élément {name} d'une autre version du SEDA : le profil est écrit pour SEDA {wanted} ; ce versement est "
            f"en SEDA {actual} (choisissez la version du profil, ou un profil pour SEDA {actual})"
        )
    return f"élément {name} dans l'espace de noms « {found or 'aucun'} » ; le profil attend « {expected} »"


# --- storage per tenant ---------------------------------------------------------------------------------


def upload_profile(
    session: Session, principal: Principal, name: str, data: bytes, identifier: str | None = None
) -> ArchivalProfile:
    """Add or replace the tenant's profile ``name`` (archiviste). Raises ProfileError, InvalidInput.

    ``identifier`` is the SAE's id of the profile, written as ArchivalProfile in the manifests; without it, a
    new profile is identified by its name and a replaced one keeps its identifier (a new version of the same
    SAE profile).
    """
    principal.require(Role.ARCHIVISTE)
    if not NAME_PATTERN.match(name):
        raise InvalidInput(
            message("nom de profil invalide : lettres, chiffres, « . », « _ » et « - », 100 caractères au plus"),
            field="name",
        )
    given = sae_identifier(identifier) if identifier is not None else None
    compile_profile(data)  # refused before anything is stored
    stored = get_store().put(io.BytesIO(data), max_size=MAX_PROFILE_BYTES)
    profile = _find(session, principal.tenant_id, name)
    if profile is None:
        profile = ArchivalProfile(tenant_id=principal.tenant_id, name=name, identifier=given or name)
        session.add(profile)
    elif given is not None:
        profile.identifier = given
    profile.object_key, profile.size = stored.key, stored.size
    profile.uploaded_by, profile.uploaded_at = principal.username, utcnow()
    session.flush()
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="archive.profile.uploaded",
        object_type="archival_profile",
        object_id=profile.id,
        details={"name": name, "identifier": profile.identifier, "sha256": stored.key, "size": stored.size},
    )
    session.commit()
    return profile


def sae_identifier(value: str) -> str:
    """The SAE's id of a profile as the manifest writes it (archive.schemas.sae_token); raises InvalidInput."""
    try:
        return sae_token(value)
    except ValueError:
        raise InvalidInput(
            message(
                "identifiant du profil invalide : de 1 à %(max_length)s caractères, sans caractère de contrôle",
                max_length=MAX_IDENTIFIER_LENGTH,
            ),
            field="identifier",
        ) from None


def _find(session: Session, tenant_id: str, name: str) -> ArchivalProfile | None:
    query = select(ArchivalProfile).where(ArchivalProfile.tenant_id == tenant_id, ArchivalProfile.name == name)
    return session.execute(query).scalar_one_or_none()


def get_profile(session: Session, tenant_id: str, name: str) -> ArchivalProfile:
    """The tenant's profile ``name``; raises NotFound."""
    profile = _find(session, tenant_id, name)
    if profile is None:
        raise NotFound(message("profil d'archivage « %(name)s » introuvable", name=name))
    return profile


# The states of a transfer whose package may still be built or validated against its profile.
_NEEDING_PROFILE = (REQUESTED, BUILT, INVALID, UNVALIDATED)


def delete_profile(session: Session, principal: Principal, name: str) -> None:
    """Remove the tenant's profile ``name`` (archiviste). Raises NotFound; Conflict while a transfer not yet
    sent still needs it (its build or its revalidation would fail for want of it)."""
    principal.require(Role.ARCHIVISTE)
    profile = get_profile(session, principal.tenant_id, name)
    waiting = session.execute(
        select(Transfer.message_identifier)
        .where(
            Transfer.tenant_id == principal.tenant_id,
            Transfer.profile == name,
            Transfer.status.in_(_NEEDING_PROFILE),
        )
        .order_by(Transfer.created_at)
        .limit(3)
    ).scalars()
    found = list(waiting)
    if found:
        raise Conflict(
            message(
                "le profil « %(name)s » est celui de versements pas encore envoyés (%(transfers)s) : "
                "envoyez-les ou abandonnez-les avant de le supprimer",
                name=name,
                transfers=", ".join(found),
            )
        )
    details = {"name": name, "identifier": profile.identifier, "sha256": profile.object_key}
    profile_id = profile.id
    session.delete(profile)
    session.flush()
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        action="archive.profile.deleted",
        object_type="archival_profile",
        object_id=profile_id,
        details=details,
    )
    session.commit()


def list_profiles(session: Session, tenant_id: str) -> list[ArchivalProfile]:
    query = select(ArchivalProfile).where(ArchivalProfile.tenant_id == tenant_id).order_by(ArchivalProfile.name)
    return list(session.execute(query).scalars())


def load_profile(object_key: str) -> etree.RelaxNG:
    """The compiled profile stored under ``object_key`` (content-addressed: cached by key)."""
    return _compiled(object_key)


@functools.lru_cache(maxsize=16)
def _compiled(object_key: str) -> etree.RelaxNG:
    with get_store().open(object_key) as stream:
        return compile_profile(stream.read(MAX_PROFILE_BYTES + 1))
