"""What a PES Aller (Hélios) says, for the elected official about to sign it: the collectivité and its budget,
and each bordereau of mandats (dépenses) or titres (recettes) with its date, its number of pièces and its amount.

Read in one streamed pass, in bounded memory, so that a flow carrying its pièces justificatives stays cheap:
the bytes go first to a guard (expat) that stops at the root element and refuses any DOCTYPE before lxml sees a
byte of it, so no entity is ever declared, let alone expanded (lxml would expand one in an attribute value even
with ``resolve_entities=False``); then to lxml's pull parser, without network nor DTD, ``huge_tree`` off. A
file over ``MAX_BYTES``, malformed, or that is not a PES Aller of dépenses or recettes has no summary.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import BinaryIO
from xml.parsers import expat

from lxml import etree

from socle.errors import SocleError
from socle.storage import get_store

MAX_BYTES = 64 * 1024 * 1024  # read for each view of the page: a larger flow is downloaded, not summarised
CHUNK_BYTES = 64 * 1024
MAX_LISTED = 200  # bordereaux listed per block; those after are still counted in its totals
CENT = Decimal("0.01")

# The blocks a summary describes, by element name: what they hold, as the page names it.
DEPENSES = "depenses"  # PES_DepenseAller: bordereaux of mandats
RECETTES = "recettes"  # PES_RecetteAller: bordereaux of titres
_BLOCKS = {"PES_DepenseAller": DEPENSES, "PES_RecetteAller": RECETTES}
_HEADER_FIELDS = {"IdColl", "CodBud", "LibelleColBud"}


class NotSummarised(ValueError):
    """The file has no summary: too large, malformed, with a DOCTYPE, or not a PES Aller of dépenses or recettes."""


@dataclass(frozen=True)
class BordereauLine:
    number: str  # IdBord
    issued_on: date  # DteBordEm
    pieces: int  # NbrPce
    amount: Decimal  # MtBordHT (dépenses) or MtBordHt (recettes), in euros, to the cent


@dataclass
class Block:
    kind: str  # DEPENSES or RECETTES
    bordereaux: list[BordereauLine] = field(default_factory=list)  # the first MAX_LISTED
    count: int = 0
    pieces: int = 0
    amount: Decimal = Decimal("0.00")

    @property
    def unlisted(self) -> int:
        return self.count - len(self.bordereaux)

    def add(self, line: BordereauLine) -> None:
        if len(self.bordereaux) < MAX_LISTED:
            self.bordereaux.append(line)
        self.count += 1
        self.pieces += line.pieces
        self.amount += line.amount


@dataclass
class PesSummary:
    collectivity_id: str = ""  # IdColl (a SIRET)
    budget_code: str = ""  # CodBud
    budget_label: str = ""  # LibelleColBud
    blocks: list[Block] = field(default_factory=list)


def summary_of(key: str) -> PesSummary | None:
    """The summary of the stored file ``key``, or None when it has none (see :func:`read_summary`) or the store
    cannot give it now: the page then says there is no preview, as for any other format."""
    try:
        store = get_store()
        if store.size(key) > MAX_BYTES:
            return None
        with store.open(key) as stream:
            return read_summary(stream)
    except (NotSummarised, SocleError, OSError):
        return None


def read_summary(stream: BinaryIO) -> PesSummary:
    """Read the PES Aller in ``stream`` (at most MAX_BYTES). :raises NotSummarised: it has no summary."""
    return _summarise(_chunks(stream))


def _chunks(stream: BinaryIO) -> Iterable[bytes]:
    read = 0
    while chunk := stream.read(CHUNK_BYTES):
        read += len(chunk)
        if read > MAX_BYTES:
            raise NotSummarised("fichier trop volumineux pour un résumé")
        yield chunk


class _PrologGuard:
    """Refuses a DOCTYPE as soon as expat meets one, before its internal subset is read; done at the root."""

    def __init__(self) -> None:
        self.done = False
        self._parser = expat.ParserCreate()
        self._parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        self._parser.StartDoctypeDeclHandler = self._doctype
        self._parser.EntityDeclHandler = self._doctype
        self._parser.StartElementHandler = self._root

    def _doctype(self, *args: object) -> None:
        raise NotSummarised("déclaration DOCTYPE refusée")

    def _root(self, *args: object) -> None:
        self.done = True
        raise _RootReached

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.Parse(chunk, False)
        except _RootReached:
            pass
        except expat.ExpatError as exc:
            raise NotSummarised("XML mal formé") from exc


class _RootReached(Exception):
    pass


def _summarise(chunks: Iterable[bytes]) -> PesSummary:
    guard = _PrologGuard()
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    reader = _Reader()
    try:
        for chunk in chunks:
            if not guard.done:
                guard.feed(chunk)
            parser.feed(chunk)
            reader.take(parser.read_events())
        parser.close()
        reader.take(parser.read_events())
    except etree.LxmlError as exc:  # XMLSyntaxError, an encoding lxml does not know…
        raise NotSummarised("XML mal formé") from exc
    if not guard.done:
        raise NotSummarised("XML sans élément racine")
    return reader.result()


class _Reader:
    """Follows the pull parser's events, keeping only what the summary needs and clearing the rest."""

    def __init__(self) -> None:
        self.summary = PesSummary()
        self.depth = 0
        self.block: Block | None = None

    def take(self, events: Iterable[tuple[str, etree._Element]]) -> None:
        for event, element in events:
            if event == "start":
                self.depth += 1
                if self.depth == 1 and etree.QName(element).localname != "PES_Aller":
                    raise NotSummarised("pas un flux PES Aller")
                if self.depth == 2:
                    kind = _BLOCKS.get(etree.QName(element).localname)
                    self.block = Block(kind) if kind else None
                continue
            self._end(element)
            self.depth -= 1

    def _end(self, element: etree._Element) -> None:
        name = etree.QName(element).localname
        if self.depth == 3 and name in _HEADER_FIELDS and etree.QName(element.getparent()).localname == "EnTetePES":
            value = (element.get("V") or "").strip()
            if name == "IdColl":
                self.summary.collectivity_id = value
            elif name == "CodBud":
                self.summary.budget_code = value
            else:
                self.summary.budget_label = value
        elif self.depth == 3 and self.block is not None and name == "Bordereau":
            self.block.add(_bordereau(element))
        elif self.depth == 2 and self.block is not None:
            self.summary.blocks.append(self.block)
            self.block = None
        if self.depth in (2, 3):
            _forget(element)
        elif self.depth == 4 and name != "BlocBordereau":
            element.clear(keep_tail=False)  # a Piece, a pièce justificative's content: emptied once read

    def result(self) -> PesSummary:
        if not self.summary.blocks:
            raise NotSummarised("ni dépenses ni recettes dans ce flux PES")
        return self.summary


def _forget(element: etree._Element) -> None:
    """Drop an element once read, and its previous siblings (already read): memory stays bounded."""
    element.clear(keep_tail=False)
    parent = element.getparent()
    if parent is not None:
        while element.getprevious() is not None:
            del parent[0]


def _bordereau(element: etree._Element) -> BordereauLine:
    values = {
        etree.QName(child).localname.lower(): (child.get("V") or "").strip()
        for block in element.iterchildren("{*}BlocBordereau")
        for child in block.iterchildren(etree.Element)
    }
    try:
        issued_on = date.fromisoformat(values["dtebordem"])
        pieces = int(values["nbrpce"])
        amount = Decimal(values["mtbordht"]).quantize(CENT)  # MtBordHT in dépenses, MtBordHt in recettes
    except (KeyError, ValueError, InvalidOperation) as exc:
        raise NotSummarised("bordereau incomplet") from exc
    number = values.get("idbord", "")
    if not number or pieces < 0 or not amount.is_finite():
        raise NotSummarised("bordereau incomplet")
    return BordereauLine(number=number, issued_on=issued_on, pieces=pieces, amount=amount)
