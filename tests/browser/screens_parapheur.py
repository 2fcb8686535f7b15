"""The parapheur's screens for the browser run: the desk (boxes full and empty, filtered, all folders, bulk
results), a folder as each actor sees it (to vise, to sign, completed, paper signature), the new folder page
(before and after « Voir le circuit »)."""

from __future__ import annotations

from parapheur_kit import Standard, act, desk, ok, sent_folder, typology, upload_folder
from screens import Screen

from conftest import Kit, make_pdf, run_jobs


def screens(kit: Kit) -> list[Screen]:
    setup = Standard(kit)
    annex = ("tarifs.csv", b"cantine;3,20\n", "text/csv")
    files = [("budget.pdf", make_pdf("Budget primitif 2027", pages=3), "application/pdf")]
    to_vise = sent_folder(kit, setup.visa_then_sign, title="Budget primitif 2027", files=files, annexes=[annex])
    sent_folder(kit, setup.visa_then_sign, title="Marché de voirie", due_date="2020-03-01")
    to_sign = sent_folder(kit, setup.visa_then_sign, title="Délibération : tarifs de la cantine")
    ok(act(kit, "agent", to_sign["id"], "visa"))
    ok(kit["agent"].post(f"/parapheur/folders/{to_sign['id']}/annotations", json={"text": "Vu avec le DGS"}), 201)
    done = sent_folder(kit, setup.sign_only, title="Arrêté de circulation")
    ok(act(kit, "maire", done["id"], "sign"))
    ok(upload_folder(kit, setup.sign_only, title="Arrêté en brouillon", send=False), 201)
    paper = typology(kit, [{"kind": "paper_signature", "desk_ids": [desk(kit, "Accueil", ["agent"])]}], name="Bail")
    on_paper = sent_folder(kit, paper, title="Bail du local associatif")
    batch = [sent_folder(kit, setup.visa_then_sign, title=f"Convention n° {n}")["id"] for n in (1, 2)]
    bulk = ok(kit["agent"].post("/parapheur/folders/bulk", json={"action": "visa", "folder_ids": batch}), 202)
    run_jobs()
    return [
        Screen("parapheur-bureau", "agent", "/bureau"),
        Screen("parapheur-bureau-en-retard", "agent", "/bureau?corbeille=en-retard"),
        Screen("parapheur-bureau-vide", "agent", "/bureau?corbeille=delegues"),
        Screen("parapheur-bureau-filtre", "agent", "/bureau?q=cantine&corbeille=en-cours"),
        Screen("parapheur-tous-mes-dossiers", "agent", "/bureau?corbeille=tous&statut=draft"),
        Screen("parapheur-bureau-maire", "maire", "/bureau"),
        Screen("parapheur-action-groupee", "agent", f"/bureau/actions-groupees/{bulk['id']}"),
        Screen("parapheur-dossier-vise", "agent", f"/dossiers/{to_vise['id']}"),
        Screen("parapheur-dossier-a-signer", "maire", f"/dossiers/{to_sign['id']}"),
        Screen("parapheur-dossier-termine", "maire", f"/dossiers/{done['id']}"),
        Screen("parapheur-dossier-signature-papier", "agent", f"/dossiers/{on_paper['id']}"),
        Screen("parapheur-nouveau-dossier", "agent", "/dossiers/nouveau"),
        Screen("parapheur-nouveau-dossier-circuit", "agent", f"/dossiers/nouveau?sous_type={setup.visa_then_sign}"),
        Screen("parapheur-preferences", "agent", "/bureau/preferences"),
        Screen("parapheur-admin-identites", "admin", "/admin/parapheur/identites"),
    ]
