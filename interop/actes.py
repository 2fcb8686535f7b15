"""@ctes packaging: the act message, its envelope and the tar.gz a TdT (S²LOW) forwards to the prefecture.

The ACTES protocol (namespace ``http://www.interieur.gouv.fr/ACTES#v1.1-20040216``, messages in ISO-8859-1):

- the act message ``DPT-SIREN-YYYYMMDD-NUMERO-NATURE-1-1_0.xml`` (element ``Acte``: date of the decision,
  internal number, nature, codes matières, object, date of the classification used, the act's file and its
  annexes);
- the files, named ``<type>-DPT-SIREN-YYYYMMDD-NUMERO-NATURE-1-1_<n>.<ext>`` (n = 1 for the act, 2… for the
  annexes; type « 99_AU » unless given);
- the envelope ``EACT--SIREN--YYYYMMDD-<serial>.xml`` (``EnveloppeCLMISILL``: the collectivité, return addresses,
  the list of act messages);
- all in ``TRI-EACT--SIREN--YYYYMMDD-<serial>.tar.gz``, TRI being the TdT's application trigram (S²LOW checks it).

Everything is validated against the ACTES XSD before it leaves: the folder of the setting ``actes_schemas``.
The tenant's classification (natures, codes matières), fetched from the TdT, is checked too, and refused
when stale.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

from socle.errors import InvalidInput, Message, message
from socle.storage import ObjectStore, StoredObject

NS = "http://www.interieur.gouv.fr/ACTES#v1.1-20040216"
INSEE_NS = "http://xml.insee.fr/schema"
ENCODING = "ISO-8859-1"
SCHEMA_FILE = "actesv1_1.xsd"
# Natures of acts (code → abbreviation, label), as the prefectures' classification lists them.
NATURES: dict[int, tuple[str, str]] = {
    1: ("DE", "Délibérations"),
    2: ("AR", "Actes réglementaires"),
    3: ("AI", "Actes individuels"),
    4: ("CC", "Contrats, conventions et avenants"),
    5: ("BF", "Documents budgétaires et financiers"),
    6: ("AU", "Autres"),
}
DEFAULT_PJ_TYPE = "99_AU"
# Always used with fullmatch: « $ » would let a trailing newline through (into the file names and the IDActe).
_NUMBER = re.compile(r"[A-Za-z0-9_]{1,15}")
_DEPARTMENT = re.compile(r"[09][0-9][AB0-9]")
_SIREN = re.compile(r"[0-9]{9}")
_PJ_TYPE = re.compile(r"[0-9]{2}_[A-Z0-9]{2,3}")
_EMAIL = re.compile(r"[_a-zA-Z0-9\-]+(\.[_a-zA-Z0-9\-]+)*@[a-zA-Z0-9\-]+(\.[a-zA-Z0-9\-]+)*\.[a-zA-Z]{2,6}")
# The XSD's IDActe (PrecedentIdentifiantActe): DPT-SIREN-AAAAMMJJ-NUMERO-XX.
_ID_ACTE = re.compile(r"[09][0-9][AB0-9]-[0-9]{9}-[0-9]{8}-[A-Za-z0-9_]{1,15}-[A-Z]{2}")
_MATIERE_CODE = re.compile(r"[0-9]{1,9}")  # ASCII digits only: str.isdigit() also takes « ² » or « ٣ »
# Characters XML 1.0 cannot carry (lxml refuses them when the message is written).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# Formats a TdT accepts in an @ctes transmission, told by their first bytes: the act itself must be a PDF;
# annexes PDF, JPEG, PNG or XML (budget documents). Its ACTES file name takes the extension of its format.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", ".pdf"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"<?xml", ".xml"),
)
# S²LOW refuses an archive past its ACTES_ARCHIVE_MAX_SIZE; 150 Mo is the platforms' usual setting.
MAX_TOTAL_BYTES = 150 * 1024 * 1024
# The latest time zone in use (UTC+14): a decision date later than today there is in the future everywhere.
_LATEST_OFFSET = timedelta(hours=14)


@dataclass(frozen=True)
class Sender:
    """The collectivité as the prefecture knows it (connector settings)."""

    siren: str
    department: str  # 3 characters: « 037 », « 02A »
    arrondissement: str = "0"
    nature: str = "01"  # code nature de la collectivité, 2 digits
    return_emails: tuple[str, ...] = ()
    # The TdT's application trigram: S²LOW refuses an archive whose name does not start with its own one.
    trigram: str = "TRI"


@dataclass(frozen=True)
class ActFile:
    object_key: str
    filename: str
    pj_type: str = DEFAULT_PJ_TYPE


@dataclass(frozen=True)
class Act:
    """One act to transmit: its fields, its file and its annexes (stored objects)."""

    number: str
    decision_date: date
    nature: int
    matiere: tuple[int, ...]  # « 1.2 » → (1, 2): 2 to 5 levels
    subject: str
    document: ActFile
    annexes: tuple[ActFile, ...] = ()
    previous_act_id: str | None = None


@dataclass
class Package:
    """What :func:`build_package` produced: the tar.gz in the store and what the flow keeps of it."""

    stored: StoredObject
    filename: str
    act_id: str
    files: list[str] = field(default_factory=list)


def parse_matiere(value: str) -> tuple[int, ...]:
    """« 1.2 » or « 1.2.3 » → (1, 2) / (1, 2, 3). :raises InvalidInput: not 2 to 5 numbers separated by dots."""
    parts = str(value).strip().split(".")
    if not 2 <= len(parts) <= 5 or not all(_MATIERE_CODE.fullmatch(part) for part in parts):
        raise InvalidInput(
            message(
                "code matière invalide : « %(matiere_code)s » (attendu par exemple « 1.2 », 2 à 5 niveaux)",
                matiere_code=value,
            )
        )
    return tuple(int(part) for part in parts)


def act_from_metadata(metadata: dict[str, Any], documents: list[dict[str, Any]]) -> Act:
    """Read an act from a flow's metadata and documents (the first document is the act, the others annexes).

    :raises InvalidInput: a missing or invalid field, named in French.
    """
    nature = _nature(metadata.get("nature"))
    if nature not in NATURES:
        raise InvalidInput(
            message(
                "nature d'acte invalide : %(metadata)s (1 à 6 : DE, AR, AI, CC, BF, AU)",
                metadata=repr(metadata.get("nature")),
            )
        )
    number = str(metadata.get("numero") or "")
    if not _NUMBER.fullmatch(number):
        raise InvalidInput(
            message(
                "numéro interne invalide : « %(number)s » (1 à 15 caractères : lettres, chiffres, _)", number=number
            )
        )
    try:
        decision_date = date.fromisoformat(str(metadata.get("date") or ""))
    except ValueError:
        raise InvalidInput(message("date de la décision absente ou invalide (AAAA-MM-JJ)")) from None
    if decision_date > (datetime.now(UTC) + _LATEST_OFFSET).date():
        # S²LOW refuses it too (« La date de décision est une date dans le futur »), after the send.
        raise InvalidInput(
            message(
                "date de la décision dans le futur : %(decision_date)s", decision_date=format(decision_date, "%d/%m/%Y")
            )
        )
    subject = str(metadata.get("objet") or "").strip()
    if not subject or len(subject) > 500:
        raise InvalidInput(message("objet de l'acte obligatoire, 500 caractères au plus"))
    if _NOT_XML.search(subject):
        raise InvalidInput(
            message("objet de l'acte : caractère de contrôle interdit (retour arrière, tabulation verticale…)")
        )
    previous = _previous_act(metadata.get("precedent_acte"))
    if previous is not None and (not isinstance(previous, str) or not _ID_ACTE.fullmatch(previous)):
        raise InvalidInput(
            message(
                "acte précédent invalide : « %(previous)s » (identifiant DPT-SIREN-AAAAMMJJ-NUMERO-XX, "
                "ex. 037-213700000-20261130-DEL_1-DE)",
                previous=str(previous)[:60],
            )
        )
    if not documents:
        raise InvalidInput(message("un acte demande au moins un document (l'acte lui-même)"))
    files = [_act_file(document) for document in documents]
    return Act(
        number=number,
        decision_date=decision_date,
        nature=nature,
        matiere=parse_matiere(str(metadata.get("matiere") or "")),
        subject=subject,
        document=files[0],
        annexes=tuple(files[1:]),
        previous_act_id=previous or None,
    )


def valid_number(number: str) -> bool:
    """Whether ``number`` is an act number S²LOW takes (1 to 15 ASCII letters, digits or _)."""
    return _NUMBER.fullmatch(number) is not None


def _previous_act(value: Any) -> Any:
    """``precedent_acte`` as given, None when blank: « "" » always meant « none » (flows started before it was
    checked carry it so, and are read again at each step)."""
    if isinstance(value, str):
        return value.strip() or None
    return value


def _nature(value: Any) -> int:
    """The nature code as given (1, « 1 »), 0 when it is not a whole number: 1.9 or true are not « 1 »."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,2}", value.strip()):
        return int(value)
    return 0


def _act_file(document: dict[str, Any]) -> ActFile:
    pj_type = str(document.get("type_pj") or DEFAULT_PJ_TYPE)
    if not _PJ_TYPE.fullmatch(pj_type):
        raise InvalidInput(message("type de pièce invalide : « %(pj_type)s » (ex. 99_AU, 99_DE)", pj_type=pj_type))
    return ActFile(str(document["object_key"]), str(document.get("filename") or "document.pdf"), pj_type)


def act_id(sender: Sender, act: Act) -> str:
    """The act's unique identifier at the prefecture: DPT-SIREN-YYYYMMDD-NUMERO-XX (also the idempotency key)."""
    return f"{sender.department}-{sender.siren}-{act.decision_date:%Y%m%d}-{act.number}-{NATURES[act.nature][0]}"


def act_siren(identifier: str) -> str | None:
    """The SIREN of the collectivité an act belongs to: the second field of its identifier
    (``037-213700016-20261130-DEL2026_042-DE``); None when the identifier has no such field."""
    parts = (identifier or "").strip().split("-")
    return parts[1] if len(parts) >= 5 and _SIREN.fullmatch(parts[1]) else None


def file_names(sender: Sender, act: Act, extensions: list[str] | None = None) -> tuple[str, list[str]]:
    """The act message's name and its files' names, by the ACTES naming convention.

    :param extensions: each file's extension from its format (:func:`check_files`); without it, from the name.
    """
    base = act_id(sender, act)
    message = f"{base}-1-1_0.xml"
    names = []
    for number, item in enumerate((act.document, *act.annexes), start=1):
        extension = extensions[number - 1] if extensions else Path(item.filename).suffix.lower() or ".pdf"
        names.append(f"{item.pj_type}-{base}-1-1_{number}{extension}")
    return message, names


def file_format(store: ObjectStore, key: str) -> str | None:
    """The extension of a stored file's format (.pdf, .jpg, .png, .xml) from its first bytes; None: another."""
    with store.open(key) as stream:
        head = stream.read(1024)
    if b"%PDF-" in head:  # readers accept up to 1 KiB before the header (some scanners write a preamble)
        return ".pdf"
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()  # an XML file may start with a BOM or blank lines
    return next((extension for magic, extension in _SIGNATURES if head.startswith(magic)), None)


def check_files(store: ObjectStore, act: Act) -> list[str]:
    """Check the act's files as a TdT will: the act a PDF, annexes PDF, JPEG, PNG or XML, 150 Mo in all.

    :returns: each file's extension (the act's first). :raises InvalidInput: a file missing, of another
        format, or too large a whole.
    """
    extensions, total = [], 0
    for index, item in enumerate((act.document, *act.annexes)):
        if not store.exists(item.object_key):
            raise InvalidInput(
                message(
                    "fichier %(item_filename)s introuvable dans le stockage (%(object_key_start)s…)",
                    item_filename=item.filename,
                    object_key_start=item.object_key[:12],
                )
            )
        total += store.size(item.object_key)
        found = file_format(store, item.object_key)
        if index == 0 and found != ".pdf":
            raise InvalidInput(
                message(
                    "l'acte lui-même doit être un PDF : « %(item_filename)s » n'en est pas un",
                    item_filename=item.filename,
                )
            )
        if found is None:
            raise InvalidInput(
                message(
                    "annexe « %(item_filename)s » d'un format refusé par @ctes (PDF, JPEG, PNG ou XML)",
                    item_filename=item.filename,
                )
            )
        extensions.append(found)
    if total > MAX_TOTAL_BYTES:
        raise InvalidInput(
            message(
                "acte et annexes trop volumineux pour @ctes : %(total)s Mo (150 Mo au plus)",
                total=round(total / 1024 / 1024, 1),
            )
        )
    return extensions


def valid_email(address: str) -> bool:
    """An address the ACTES XSD takes in AdressesRetour (its own pattern: no « + », a 2 to 6 letter domain)."""
    return _EMAIL.fullmatch(address) is not None


def _check_sender(sender: Sender) -> None:
    if not _SIREN.fullmatch(sender.siren or ""):
        raise InvalidInput(
            message("SIREN de la collectivité invalide : « %(sender_siren)s » (9 chiffres)", sender_siren=sender.siren)
        )
    if not _DEPARTMENT.fullmatch(sender.department):
        raise InvalidInput(
            message(
                "département invalide : « %(sender_department)s » (3 caractères, ex. 037, 02A)",
                sender_department=sender.department,
            )
        )
    if not re.fullmatch(r"[A-Za-z0-9]{3}", sender.trigram):
        raise InvalidInput(
            message(
                "trigramme du TdT invalide : « %(sender_trigram)s » (3 lettres ou chiffres)",
                sender_trigram=sender.trigram,
            )
        )
    if not sender.return_emails or not all(valid_email(email) for email in sender.return_emails):
        raise InvalidInput(
            message("au moins une adresse de retour valide est obligatoire (courriels de la préfecture)")
        )


def _element(parent: etree._Element | None, name: str, text: str | None = None, **attributes: str) -> etree._Element:
    tag = f"{{{NS}}}{name}"
    element = etree.Element(tag, nsmap={"actes": NS, "insee": INSEE_NS}) if parent is None else parent.makeelement(tag)
    if parent is not None:
        parent.append(element)
    for key, value in attributes.items():
        namespace = INSEE_NS if key == "SIREN" else NS
        element.set(f"{{{namespace}}}{key}", value)
    if text is not None:
        element.text = text
    return element


def act_xml(act: Act, classification_date: date, names: list[str]) -> bytes:
    """The ``Acte`` message (ISO-8859-1)."""
    root = _element(
        None,
        "Acte",
        Date=act.decision_date.isoformat(),
        NumeroInterne=act.number,
        CodeNatureActe=str(act.nature),
    )
    for level, code in enumerate(act.matiere, start=1):
        _element(root, f"CodeMatiere{level}", CodeMatiere=str(code))
    _element(root, "Objet", act.subject)
    if act.previous_act_id:
        _element(root, "PrecedentIdentifiantActe", IDActe=act.previous_act_id)
    _element(root, "ClassificationDateVersion", classification_date.isoformat())
    _element(_element(root, "Document"), "NomFichier", names[0])
    annexes = _element(root, "Annexes", Nombre=str(len(names) - 1))
    for name in names[1:]:
        _element(_element(annexes, "Annexe"), "NomFichier", name)
    _element(root, "DocumentPapier", "N")
    return bytes(etree.tostring(root, xml_declaration=True, encoding=ENCODING))


def envelope_xml(sender: Sender, messages: list[str]) -> bytes:
    """The ``EnveloppeCLMISILL`` listing the act messages (ISO-8859-1)."""
    root = _element(None, "EnveloppeCLMISILL")
    emitter = _element(root, "Emetteur")
    _element(
        emitter,
        "IDCL",
        SIREN=sender.siren,
        Departement=sender.department,
        Arrondissement=sender.arrondissement,
        Nature=sender.nature,
    )
    addresses = _element(root, "AdressesRetour")
    for email in sender.return_emails:
        _element(addresses, "Email", email)
    forms = _element(root, "FormulairesEnvoyes")
    for name in messages:
        _element(_element(forms, "Formulaire"), "NomFichier", name)
    return bytes(etree.tostring(root, xml_declaration=True, encoding=ENCODING))


@lru_cache(maxsize=4)
def _schema(folder: str) -> etree.XMLSchema:
    path = Path(folder) / SCHEMA_FILE
    if not path.is_file():
        raise InvalidInput(message("schéma ACTES introuvable : %(path)s (réglage actes_schemas)", path=path))
    # The XSD imports siret.xsd beside it; no network access while loading.
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    return etree.XMLSchema(etree.parse(str(path), parser))


def validate(xml: bytes, schemas: Path | None, what: str) -> None:
    """Validate an ACTES message against the XSD of ``schemas``.

    :raises InvalidInput: no schema folder configured, or the message is not valid (first errors, in French).
    """
    if schemas is None:
        raise InvalidInput(message("réglage actes_schemas absent : les messages @ctes ne peuvent pas être validés"))
    schema = _schema(str(schemas))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    document = etree.fromstring(xml, parser)
    if not schema.validate(document):
        errors = "; ".join(f"ligne {error.line} : {error.message}" for error in list(schema.error_log)[:3])
        raise InvalidInput(message("%(what)s non conforme au schéma ACTES : %(errors)s", what=what, errors=errors))


# What to do with a missing or stale classification; « {nom} »: the connector's name, put in by the caller.
AGAIN = "récupérez-la de nouveau (POST /interop/connectors/{nom}/classification)"


@dataclass(frozen=True)
class Classification:
    """The tenant's classification as kept: its date, natures and codes matières (« 1.2 » → label)."""

    classification_date: date
    fetched_at: datetime
    platform_date: date | None
    natures: dict[str, Any]
    matieres: dict[str, Any]


def parse_classification(root: etree._Element) -> tuple[date, dict[str, Any], dict[str, str]]:
    """Read a ``RetourClassification``: its date, natures (code → label, abbreviation, PJ types), matières.

    :raises InvalidInput: not a RetourClassification, or no date.
    """
    if etree.QName(root).localname != "RetourClassification" or etree.QName(root).namespace != NS:
        raise InvalidInput(message("la classification reçue n'est pas un RetourClassification @ctes"))
    text = root.findtext(f"{{{NS}}}DateClassification")
    try:
        when = date.fromisoformat((text or "").strip())
    except ValueError:
        raise InvalidInput(message("classification reçue sans date valide")) from None
    natures: dict[str, Any] = {}
    for nature in root.iter(f"{{{NS}}}NatureActe"):
        code = nature.get(f"{{{NS}}}CodeNatureActe") or ""
        natures[code] = {
            "label": nature.get(f"{{{NS}}}Libelle"),
            "abbreviation": nature.get(f"{{{NS}}}TypeAbrege"),
            "pj_types": [pj.get(f"{{{NS}}}CodeTypePJ") for pj in nature.iter(f"{{{NS}}}TypePJNatureActe")],
        }
    matieres: dict[str, str] = {}
    _walk_matieres(root.find(f"{{{NS}}}Matieres"), 1, (), matieres)
    return when, natures, matieres


def _walk_matieres(parent: etree._Element | None, level: int, prefix: tuple[str, ...], out: dict[str, str]) -> None:
    if parent is None or level > 5:
        return
    for child in parent.findall(f"{{{NS}}}Matiere{level}"):
        code = (*prefix, child.get(f"{{{NS}}}CodeMatiere") or "")
        out[".".join(code)] = child.get(f"{{{NS}}}Libelle") or ""
        _walk_matieres(child, level + 1, code, out)


def check_classification(act: Act, classification: Classification | None, max_age_days: int, now: datetime) -> None:
    """Refuse an act whose classification is missing, stale (:func:`staleness`), or lacks its nature or code
    matière.

    :raises InvalidInput: with what to do (fetch the classification again).
    """
    if classification is None:
        raise InvalidInput(message("classification @ctes de la collectivité absente : %(again)s", again=AGAIN))
    stale = staleness(classification, max_age_days, now)
    if stale is not None:
        raise InvalidInput(stale)
    check_codes(act, classification.natures, classification.matieres)


def staleness(classification: Classification, max_age_days: int, now: datetime) -> Message | None:
    """Why the classification is out of date, with what to do; None when it is not. Stale: the TdT has
    announced a newer one (an ARActe's ClassificationDateVersionEnCours), or it was fetched more than
    ``max_age_days`` ago."""
    if classification.platform_date and classification.platform_date > classification.classification_date:
        return message(
            "classification @ctes périmée : celle de la préfecture date du "
            "%(classification_platform_date)s, la nôtre du "
            "%(classification_classification_date)s ; %(again)s",
            classification_platform_date=format(classification.platform_date, "%d/%m/%Y"),
            classification_classification_date=format(classification.classification_date, "%d/%m/%Y"),
            again=AGAIN,
        )
    if now - classification.fetched_at > timedelta(days=max_age_days):
        return message(
            "classification @ctes trop ancienne : récupérée le "
            "%(classification_fetched_at)s, plus de %(max_age_days)s jours ; %(again)s",
            classification_fetched_at=format(classification.fetched_at, "%d/%m/%Y"),
            max_age_days=max_age_days,
            again=AGAIN,
        )
    return None


def check_codes(act: Act, natures: dict[str, Any], matieres: dict[str, Any]) -> None:
    """The act's nature, code matière and files' types (type_pj) must be in the prefecture's classification.

    :raises InvalidInput: the first one missing, named.
    """
    if natures and str(act.nature) not in natures:
        raise InvalidInput(
            message("nature d'acte %(act_nature)s absente de la classification de la préfecture", act_nature=act.nature)
        )
    code = ".".join(str(part) for part in act.matiere)
    if code not in matieres:
        raise InvalidInput(message("code matière « %(code)s » absent de la classification de la préfecture", code=code))
    allowed = [str(pj) for pj in (natures.get(str(act.nature)) or {}).get("pj_types") or [] if pj]
    for item in (act.document, *act.annexes):
        if allowed and item.pj_type not in allowed:
            # The prefecture refuses a typology its classification does not list for the act's nature.
            raise InvalidInput(
                message(
                    "type de pièce « %(pj_type)s » de « %(item_filename)s » absent de la classification pour la "
                    "nature %(act_nature)s (types admis : %(allowed)s)",
                    pj_type=item.pj_type,
                    item_filename=item.filename,
                    act_nature=act.nature,
                    allowed=", ".join(allowed),
                )
            )


def build_package(
    store: ObjectStore, sender: Sender, act: Act, classification_date: date, serial: str, schemas: Path | None
) -> Package:
    """Write the act message and the envelope, validate both, and store the tar.gz with the act's files.

    :param serial: a number unique to the envelope for this SIREN and day (the flow's).
    :raises InvalidInput: bad sender, a message not valid against the XSD, a file missing from the store.
    """
    _check_sender(sender)
    extensions = check_files(store, act)
    message_name, names = file_names(sender, act, extensions)
    act_message = act_xml(act, classification_date, names)
    validate(act_message, schemas, "message Acte")
    today = datetime.now().strftime("%Y%m%d")
    envelope_name = f"EACT--{sender.siren}--{today}-{serial}.xml"
    envelope = envelope_xml(sender, [message_name])
    validate(envelope, schemas, "enveloppe")
    items = (act.document, *act.annexes)
    with tempfile.TemporaryFile() as spool:
        # mtime 0 and a fixed gzip header: the same act gives the same bytes (and the same key in the store).
        with gzip.GzipFile(fileobj=spool, mode="wb", mtime=0) as zipped, tarfile.open(fileobj=zipped, mode="w") as tar:
            _add(tar, envelope_name, io.BytesIO(envelope), len(envelope))
            _add(tar, message_name, io.BytesIO(act_message), len(act_message))
            for item, name in zip(items, names, strict=True):
                with store.open(item.object_key) as stream:
                    _add(tar, name, stream, store.size(item.object_key))
        spool.seek(0)
        stored = store.put(spool)
    return Package(
        stored, f"{sender.trigram}-EACT--{sender.siren}--{today}-{serial}.tar.gz", act_id(sender, act), names
    )


def _add(tar: tarfile.TarFile, name: str, stream: Any, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    tar.addfile(info, stream)


# The prefecture's letters (@ctes messages the TdT hands out) and what each says beside its files.
# Element → (S²LOW's document type, label, element of its text).
LETTER_TEXTS: dict[str, tuple[str, str, str | None]] = {
    "CourrierSimple": ("2", "Courrier simple", None),
    "DemandePieceComplementaire": ("3", "Demande de pièces complémentaires", "DescriptionPieces"),
    "LettreObservations": ("4", "Lettre d'observations", "Motif"),
    "DefereTA": ("5", "Déféré au tribunal administratif", "NatureIllegalite"),
}


def letter_fields(files: dict[str, bytes]) -> dict[str, str]:
    """What a prefecture's letter says: its @ctes message's name, type (2 to 5), label, act, date and text
    (motif, pièces demandées, nature de l'illégalité).

    :raises InvalidInput: no @ctes message of a letter among the files.
    """
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    for name, content in files.items():
        if not name.endswith(".xml"):
            continue
        try:
            root = etree.fromstring(content, parser)
        except etree.XMLSyntaxError:
            continue
        local = etree.QName(root).localname
        if etree.QName(root).namespace != NS or local not in LETTER_TEXTS:
            continue
        kind, label, text_element = LETTER_TEXTS[local]
        return {
            "message": name,
            "type": kind,
            "label": label,
            "act_id": root.get(f"{{{NS}}}IDActe") or "",
            "date": root.get(f"{{{NS}}}DateCourrierPref") or root.findtext(f"{{{NS}}}DateDepot") or "",
            "text": (root.findtext(f"{{{NS}}}{text_element}") or "").strip() if text_element else "",
        }
    raise InvalidInput(message("l'archive reçue ne contient pas de courrier @ctes de la préfecture"))


def read_package(data: bytes) -> dict[str, bytes]:
    """The files of an @ctes tar.gz by name (the simulator and the tests read packages with it).

    :raises InvalidInput: not a tar.gz, or an entry that is not a plain file.
    """
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            files: dict[str, bytes] = {}
            for member in tar.getmembers():
                if not member.isfile() or "/" in member.name or member.name.startswith("."):
                    raise InvalidInput(
                        message("entrée inattendue dans l'archive : %(member_name)s", member_name=member.name)
                    )
                extracted = tar.extractfile(member)
                files[member.name] = extracted.read() if extracted is not None else b""
            return files
    except (tarfile.TarError, OSError, EOFError):
        raise InvalidInput(message("l'archive @ctes n'est pas un tar.gz lisible")) from None
