"""« Préfecture et trésorerie »: a commune's secretary follows, sends and answers without the API or an admin.

Found by a secrétaire de mairie on a shared instance: the interop pages were for administrators only (her flow's
page answered 403), the home page had no entry for her, and sending an act by the API meant computing the SHA-256 of
the signed file herself. Here, against the S²LOW simulator: she sends an act from a form (the server stores the
files and computes their digests), sees it on her list and its page in plain French; another commune's flow is
« introuvable »; a user without a role is refused.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from s2low_helpers import S2low, act_request, add_s2low, drive, flow_of, start
from sqlalchemy import select
from ui_kit import csrf_of, post_form, sign_in

from interop import notices
from interop.models import Flow
from socle.auth import create_user
from socle.db import new_session, transaction
from socle.models import Job, Tenant
from socle.storage.ownership import tenant_holds

from conftest import Kit, make_pdf, run_jobs, ui_password_hash

pytestmark = pytest.mark.usefixtures("actes_schemas")

SIGNED_PES = (
    b'<?xml version="1.0" encoding="UTF-8"?><PES_Aller><EnTetePES/><PES_DepenseAller><Bordereau Id="B1"/>'
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo/></ds:Signature>'
    b"</PES_DepenseAller></PES_Aller><!-- formulaire -->"
)


@contextmanager
def _person(kit: Kit, app: Any, username: str, display_name: str, roles: list[str]) -> Iterator[TestClient]:
    """A user of the kit's collectivité, signed in to the web interface."""
    with transaction() as session:
        tenant = session.get(Tenant, kit.tenant_id)
        assert tenant is not None
        user = create_user(session, tenant, username, display_name, roles)
        user.password_hash = ui_password_hash()
    client = sign_in(app, kit, username)
    try:
        yield client
    finally:
        client.close()


def _page(client: TestClient, url: str) -> str:
    answer = client.get(url)
    assert answer.status_code == 200, answer.text
    return html.unescape(answer.text)


def _send_act(client: TestClient, number: str, act: bytes, annexes: list[bytes], **fields: str) -> Any:
    """The form « Transmettre un acte » as a browser sends it (multipart, with the page's CSRF token)."""
    data = {
        "csrf": csrf_of(client.get("/flux/acte").text),
        "connecteur": "tdt",
        "numero": number,
        "date": "2026-11-30",
        "nature": "1",
        "matiere": "1.1",
        "objet": "Approbation du budget primitif 2027",
        "type_acte": "99_AU",
        "type_annexes": "99_AU",
    } | fields
    files = [("fichier", ("deliberation signée.pdf", act, "application/pdf"))]
    files += [("annexes", (f"annexe-{index}.pdf", content, "application/pdf")) for index, content in enumerate(annexes)]
    return client.post("/flux/acte", data=data, files=files)


def _flow_id(answer: Any) -> str:
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(r"/flux/([0-9a-f-]{36})", answer.headers["location"])
    assert found, answer.headers["location"]
    return found.group(1)


def test_the_secretariat_sends_an_act_from_the_form_and_follows_it(kit: Kit, sim: S2low, app: Any) -> None:
    add_s2low(kit, sim)
    act, annex = make_pdf("Délibération n° 42 signée"), make_pdf("Annexe budgétaire")
    with _person(kit, app, "greffe", "Claire Greffière", ["secretariat"]) as greffe:
        # Before: no entry on her home page, and every interop page was for administrators.
        home = _page(greffe, "/")
        assert 'href="/flux"' in home and "Préfecture et trésorerie" in home
        form = _page(greffe, "/flux/acte")
        assert '<option value="1.1"' in form and "Délibérations" in form and 'name="annexes"' in form

        flow_id = _flow_id(_send_act(greffe, "DEL_42", act, [annex]))
        flow = flow_of(flow_id)
        # The server computed the digests and stored the files as the collectivité's own.
        assert [document["object_key"] for document in flow.documents] == [
            hashlib.sha256(act).hexdigest(),
            hashlib.sha256(annex).hexdigest(),
        ]
        assert [document["filename"] for document in flow.documents] == ["deliberation signée.pdf", "annexe-0.pdf"]
        assert flow.created_by == "user:greffe" and flow.flow_metadata["nature"] == 1
        with new_session() as session:
            assert tenant_holds(session, kit.tenant_id, flow.documents[0]["object_key"], through=frozenset({"interop"}))
        assert "Acte n° DEL_42 enregistré" in _page(greffe, f"/flux/{flow_id}")  # the message after the redirect

        assert drive(flow_id).status == "done"
        listed = _page(greffe, "/flux")
        assert f'href="/flux/{flow_id}"' in listed
        assert "Acte n° DEL_42 — Approbation du budget primitif 2027" in listed
        assert (
            "reçu par la préfecture, accusé de réception classé dans la GED" in listed and "Claire Greffière" in listed
        )

        page = _page(greffe, notices.FLOW_PAGE.format(flow_id=flow_id))  # where the notices' mails lead
        # The history in plain French: people by their names, the service as « le système », French dates.
        assert "Claire Greffière" in page and "le système" in page
        assert "user:" not in page and "service:interop" not in page
        assert "30 novembre 2026" in page and "Délibérations" in page
        assert "Reprendre le flux" not in page and "Annuler l'acte" not in page  # administrators' actions
        assert "Classés dans la GED" in page and "Accusé de réception de la préfecture" in page
        # Her list is filtered by kind and state.
        assert f'href="/flux/{flow_id}"' not in _page(greffe, "/flux?type=helios")
        assert f'href="/flux/{flow_id}"' not in _page(greffe, "/flux?etat=erreur")
        assert f'href="/flux/{flow_id}"' in _page(greffe, "/flux?etat=termine&type=actes")


def test_another_communes_flow_is_not_found_and_a_user_without_role_is_refused(
    kit: Kit, sim: S2low, app: Any, make_kit: Callable[..., Kit]
) -> None:
    add_s2low(kit, sim)
    flow_id = start(kit, act_request(kit, "DEL_43"))
    other = make_kit(with_identity=False)
    theirs = sign_in(app, other, "agent")
    assert theirs.get(f"/flux/{flow_id}").status_code == 404
    assert f'href="/flux/{flow_id}"' not in _page(theirs, "/flux")
    admin_elsewhere = sign_in(app, other, "admin")
    assert admin_elsewhere.get(f"/admin/flux/{flow_id}").status_code == 404
    answer = post_form(admin_elsewhere, "/flux", f"/flux/{flow_id}/annulation", {"confirmation": "1"})
    assert answer.status_code == 404

    with _person(kit, app, "elu", "Dominique Élu", []) as no_role:
        assert 'href="/flux"' not in _page(no_role, "/")
        for url in ("/flux", f"/flux/{flow_id}", "/flux/acte", "/flux/pes", "/flux/courriers"):
            assert no_role.get(url).status_code == 403, url
        refused = post_form(no_role, "/", "/flux/acte", {"numero": "DEL_44"})
        assert refused.status_code == 403
    # The administration's address of a flow takes an agent to the page she may read.
    agent = sign_in(app, kit, "agent")
    assert agent.get(f"/admin/flux/{flow_id}").status_code == 403  # the administration's page: admins only
    assert agent.get(f"/flux/{flow_id}").status_code == 200


def test_a_refused_act_is_said_next_to_its_field_and_nothing_is_started(kit: Kit, sim: S2low, app: Any) -> None:
    add_s2low(kit, sim)
    start(kit, act_request(kit, "DEL_45"))
    agent = sign_in(app, kit, "agent")
    # S²LOW takes a number once: refused at once, next to the number, what she typed kept.
    taken = _send_act(agent, "DEL_45", make_pdf("Autre délibération"), [])
    assert taken.status_code == 409, taken.text
    text = html.unescape(taken.text)
    assert 'id="numero-erreur"' in text and "déjà pris par le flux" in text
    assert "Approbation du budget primitif 2027" in text and "choisissez-les à nouveau" in text
    # The act itself must be a PDF.
    not_pdf = _send_act(agent, "DEL_46", b"PK\x03\x04 un docx", [])
    assert not_pdf.status_code == 422 and 'id="fichier-erreur"' in not_pdf.text
    assert "doit être un PDF" in html.unescape(not_pdf.text)
    # A field left empty is said before any byte is stored.
    empty = _send_act(agent, "", make_pdf("Sans numéro"), [], objet="")
    assert empty.status_code == 422 and 'id="numero-erreur"' in empty.text and 'id="objet-erreur"' in empty.text
    with new_session() as session:
        numbers = session.execute(select(Flow.flow_metadata).where(Flow.tenant_id == kit.tenant_id)).scalars()
        assert [metadata["numero"] for metadata in numbers] == ["DEL_45"]


def test_without_a_fresh_classification_the_form_says_so_and_an_admin_fetches_it(
    kit: Kit, sim: S2low, app: Any
) -> None:
    add_s2low(kit, sim, fetch=False)
    agent = sign_in(app, kit, "agent")
    form = _page(agent, "/flux/acte")
    assert "n'a jamais été récupérée" in form and "un administrateur" in form
    assert 'name="numero"' not in form and "/flux/classification/tdt" not in form
    assert post_form(agent, "/flux", "/flux/classification/tdt", {}).status_code == 403
    refused = _send_act(agent, "DEL_47", make_pdf("Trop tôt"), [])
    assert refused.status_code == 422 and "pas à jour" in html.unescape(refused.text)

    admin = sign_in(app, kit, "admin")
    page = _page(admin, "/flux/acte")
    assert 'action="/flux/classification/tdt"' in page and "data-confirm=" in page
    fetched = post_form(admin, "/flux/acte", "/flux/classification/tdt", {"suivant": "/flux/acte?connecteur=tdt"})
    assert fetched.status_code == 303 and fetched.headers["location"] == "/flux/acte?connecteur=tdt"
    assert "Classification @ctes du 15/01/2026 récupérée" in _page(admin, "/flux/acte")
    assert 'name="numero"' in _page(agent, "/flux/acte")


def test_a_pes_is_sent_from_its_form(kit: Kit, sim: S2low, app: Any) -> None:
    add_s2low(kit, sim, fetch=False)  # Hélios needs no classification
    with _person(kit, app, "compta", "Noé Comptable", ["agent"]) as compta:
        token = csrf_of(compta.get("/flux/pes").text)
        none = compta.post("/flux/pes", data={"csrf": token, "connecteur": "tdt"})
        assert none.status_code == 422 and 'id="fichier-erreur"' in none.text
        files = {"fichier": ("PESALR2_213700000_2026_007.xml", SIGNED_PES, "text/xml")}
        flow_id = _flow_id(compta.post("/flux/pes", data={"csrf": token, "connecteur": "tdt"}, files=files))
        flow = drive(flow_id)
        assert flow.status == "done" and flow.kind == "helios", flow.error
        assert flow.documents[0]["object_key"] == hashlib.sha256(SIGNED_PES).hexdigest()
        page = _page(compta, f"/flux/{flow_id}")
        assert "accepté par le comptable, PES Acquit classé dans la GED" in page and "Noé Comptable" in page
        assert f'href="/flux/{flow_id}"' in _page(compta, "/flux?type=helios")


def test_the_prefectures_letter_is_read_and_answered_from_the_pages(kit: Kit, sim: S2low, app: Any) -> None:
    add_s2low(kit, sim)
    flow = drive(start(kit, act_request(kit, "DEL_48")))
    letter = sim.state.add_letter(flow.data["transaction_id"], 3)
    with _person(kit, app, "greffe", "Claire Greffière", ["secretariat"]) as greffe:
        waiting = _page(greffe, "/flux/courriers")
        assert "Demande de pièces complémentaires" in waiting
        assert f'action="/flux/courriers/tdt/{letter}/lecture"' in waiting
        read = post_form(greffe, "/flux/courriers", f"/flux/courriers/tdt/{letter}/lecture", {})
        assert read.status_code == 200, read.text
        shown = html.unescape(read.text)
        assert "Demande de pièces complémentaires" in shown and "plan de financement" in shown
        assert f'href="/flux/{flow.id}"' in shown and f"/flux/courriers/tdt/{letter}/reponse" in shown
        run_jobs()
        # Read, it leaves the TdT's unread list; its act's flow keeps it, with the way to answer.
        received = _page(greffe, "/flux/courriers")
        assert f'action="/flux/courriers/tdt/{letter}/lecture"' not in received
        assert f'href="/flux/{flow.id}"' in received and f'href="/flux/courriers/tdt/{letter}/reponse"' in received
        flow_page = _page(greffe, f"/flux/{flow.id}")
        assert "Courriers de la préfecture" in flow_page and f"/flux/courriers/tdt/{letter}/reponse" in flow_page

        reply_url = f"/flux/courriers/tdt/{letter}/reponse"
        token = csrf_of(greffe.get(reply_url).text)
        not_pdf = greffe.post(
            reply_url, data={"csrf": token, "type": "4"}, files={"fichier": ("reponse.txt", b"Bonjour", "text/plain")}
        )
        assert not_pdf.status_code == 422 and "doit être un PDF" in html.unescape(not_pdf.text)
        answer = greffe.post(
            reply_url,
            data={"csrf": token, "type": "4"},
            files={"fichier": ("pieces.pdf", make_pdf("Plan de financement"), "application/pdf")},
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/flux/courriers", answer.text
        assert [(reply["to"], reply["type"]) for reply in sim.state.replies] == [(letter, "4")]
        assert "Réponse envoyée à la préfecture" in _page(greffe, "/flux/courriers")


def test_an_administrator_cancels_an_act_and_collects_the_pes_retour_from_the_pages(
    kit: Kit, sim: S2low, app: Any
) -> None:
    add_s2low(kit, sim)
    flow = drive(start(kit, act_request(kit, "DEL_49")))
    admin = sign_in(app, kit, "admin")
    page = _page(admin, f"/flux/{flow.id}")
    assert "Annuler l'acte" in page and "data-confirm=" in page
    unconfirmed = post_form(admin, f"/flux/{flow.id}", f"/flux/{flow.id}/annulation", {})
    assert unconfirmed.status_code == 422 and 'id="confirmation-erreur"' in unconfirmed.text
    assert flow_of(flow.id).state != "annulation demandée"
    agent = sign_in(app, kit, "agent")
    assert post_form(agent, f"/flux/{flow.id}", f"/flux/{flow.id}/annulation", {"confirmation": "1"}).status_code == 403
    cancelled = post_form(admin, f"/flux/{flow.id}", f"/flux/{flow.id}/annulation", {"confirmation": "1"})
    assert cancelled.status_code == 303
    assert flow_of(flow.id).state == "annulation demandée"
    assert "annulation demandée à la préfecture" in _page(admin, f"/flux/{flow.id}")
    assert "Annuler l'acte" not in _page(admin, f"/flux/{flow.id}")

    listing = _page(admin, "/flux")
    assert 'action="/flux/pes-retours/tdt"' in listing and 'action="/flux/classification/tdt"' in listing
    assert "/flux/pes-retours/tdt" not in _page(agent, "/flux")
    asked = post_form(admin, "/flux", "/flux/pes-retours/tdt", {})
    assert asked.status_code == 303 and "Relève des PES Retour demandée" in _page(admin, "/flux")
    with new_session() as session:
        jobs = session.execute(select(Job.arguments).where(Job.function.like("%collect_pes_retours%"))).scalars()
        assert any(arguments.get("tenant_id") == kit.tenant_id for arguments in jobs)


def test_the_list_is_paged_newest_first(kit: Kit, sim: S2low, app: Any) -> None:
    add_s2low(kit, sim)
    ids = [start(kit, act_request(kit, f"PAGE_{number}", annexes=0)) for number in range(26)]
    agent = sign_in(app, kit, "agent")
    first = _page(agent, "/flux")
    assert f'href="/flux/{ids[-1]}"' in first and f'href="/flux/{ids[0]}"' not in first
    assert 'href="/flux?page=2"' in first
    second = _page(agent, "/flux?page=2")
    assert f'href="/flux/{ids[0]}"' in second and 'rel="prev"' in second and 'rel="next"' not in second
    listed = re.findall(r'href="/flux/([0-9a-f-]{36})"', _page(agent, "/flux?page=abc"))  # not a number: page 1
    assert listed == ids[::-1][:25]
