"""A small, plausible PES Aller (Hélios) flow for the tests: made here, never copied from a real file."""

from __future__ import annotations

PES_NAMESPACE = "http://www.minefi.gouv.fr/cp/helios/pes_v2/Rev0/aller"

# (bordereau Id, amount, object of the expense, supplier): accented text on purpose, the file is ISO-8859-1.
_BORDEREAUX = (
    ("BORD-2026-0001", "1250.00", "Fournitures scolaires de l'école élémentaire", "Librairie Élise Mérou"),
    ("BORD-2026-0002", "487.35", "Entretien des espaces verts du quartier Saint-Éloi", "Jardins & Forêts SARL"),
    ("BORD-2026-0003", "92.10", "Réparation de la chaudière de la crèche", "Chauffage Lefèvre"),
)


def _bordereau(number: int, bordereau_id: str, amount: str, subject: str, supplier: str) -> str:
    return f"""    <Bordereau Id="{bordereau_id}">
      <BlocBordereau>
        <Exer V="2026"/>
        <IdBord V="{number}"/>
        <DteBordEm V="2026-11-30"/>
        <TypBord V="01"/>
        <NbrPce V="1"/>
        <MtBordHT V="{amount}"/>
      </BlocBordereau>
      <Piece>
        <BlocPiece>
          <InfoPce>
            <IdPce V="{number}"/>
            <TypPce V="01"/>
            <NatPce V="01"/>
            <Obj V="{subject}"/>
          </InfoPce>
        </BlocPiece>
        <LigneDePiece>
          <BlocLignePiece>
            <InfoLignePce>
              <IdLigne V="1"/>
              <Nature V="6067"/>
              <Fonction V="213"/>
              <MtHT V="{amount}"/>
            </InfoLignePce>
          </BlocLignePiece>
          <Tiers>
            <InfoTiers>
              <Nom V="{supplier.replace("&", "&amp;")}"/>
            </InfoTiers>
          </Tiers>
        </LigneDePiece>
      </Piece>
    </Bordereau>
"""


def make_pes_aller(bordereaux: int = 2) -> bytes:
    """A PES_Aller with a PES_DepenseAller of ``bordereaux`` bordereaux (1 to 3), encoded in ISO-8859-1."""
    blocks = "".join(_bordereau(n, *_BORDEREAUX[n - 1]) for n in range(1, bordereaux + 1))
    text = f"""<?xml version="1.0" encoding="ISO-8859-1"?>
<n:PES_Aller xmlns:n="{PES_NAMESPACE}">
  <!-- Flux de test du socle -->
  <Enveloppe>
    <Parametres>
      <Version V="2"/>
      <TypFic V="PESALR2"/>
      <NomFic V="PESALR2_21340172200017_20261130_001.xml"/>
    </Parametres>
  </Enveloppe>
  <EnTetePES>
    <DteStr V="2026-11-30"/>
    <IdPost V="034000"/>
    <IdColl V="21340172200017"/>
    <CodCol V="172"/>
    <CodBud V="00"/>
    <LibelleColBud V="Commune de Saint-Étienne-lès-Orgues"/>
  </EnTetePES>
  <PES_DepenseAller>
    <EnTeteDepense>
      <IdVer V="2"/>
      <InfoDematerialisee V="0"/>
    </EnTeteDepense>
{blocks}  </PES_DepenseAller>
</n:PES_Aller>
"""
    return text.encode("iso-8859-1")
