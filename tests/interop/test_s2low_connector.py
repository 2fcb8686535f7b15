"""The S²LOW connector against the S²LOW simulator on 127.0.0.1: each call, each scenario knob, TLS and auth."""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from s2low_helpers import ACTES_SCHEMAS, S2low, running_s2low, s2low_config, store

from interop import actes
from interop.connectors.s2low import S2lowConnector, S2lowDuplicate, S2lowRefused, acquit_refusal, aracte_fields
from interop.connectors.sae import SaeRefused, SaeUnavailable
from socle.errors import InvalidInput
from socle.storage import get_store

from conftest import make_pdf

SENDER = actes.Sender("213700000", "037", return_emails=("greffe@mairie-test.fr",))
PES = (
    b'<?xml version="1.0" encoding="UTF-8"?><PES_Aller><Enveloppe/><PES_DepenseAller/>'
    b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></PES_Aller>'
)


def connector(sim: S2low, **extra: Any) -> S2lowConnector:
    config = s2low_config(sim, **extra)
    secrets = {name: config.pop(name) for name in ("password", "client_key") if name in config}
    return S2lowConnector("tdt", config, secrets)


def package(number: str, *, matiere: tuple[int, ...] = (7, 1)) -> actes.Package:
    act = actes.Act(
        number, date(2026, 11, 30), 1, matiere, "Budget", actes.ActFile(store(make_pdf(number)).key, "acte.pdf")
    )
    return actes.build_package(get_store(), SENDER, act, date(2026, 1, 15), "1", ACTES_SCHEMAS)


def send(tdt: S2lowConnector, built: actes.Package) -> str:
    return tdt.send_actes(get_store(), built.stored.key, built.filename)


def test_an_act_is_sent_followed_and_acknowledged(sim: S2low) -> None:
    tdt, built = connector(sim), package("D100")
    sim.scenario(pending_checks=3)
    transaction = send(tdt, built)
    labels = [tdt.actes_status(transaction).label for _ in range(3)]
    assert labels == ["posté", "en attente de transmission", "transmis"]
    final = tdt.actes_status(transaction)
    assert final.code == 4 and final.label == "acquittement reçu" and final.document is not None
    actes.validate(final.document, ACTES_SCHEMAS, "ARActe")  # the simulator's ARActe is valid ACTES
    fields = aracte_fields(final.document)
    assert fields["id_acte"] == built.act_id and fields["classification_en_cours"] == "2026-01-15"
    # S²LOW knows the act by its IDActe; its id comes from the list of its status, by the act's number.
    assert tdt.find_actes(built.act_id) == transaction and tdt.find_actes("037-1-2-3-DE") is None
    assert [row["number"] for row in tdt.list_actes(4)] == ["D100"]
    # What was checked, and which account answered: no certificate is configured here, and it says so.
    assert tdt.test() == (
        "S²LOW joignable, réponse OK ; aucun certificat client configuré : S²LOW a répondu sans, l'authentification "
        "par certificat n'est pas vérifiée (la plateforme réelle l'exige) ; compte de Camille Simulée "
        "<tdt@simulateur.test>, collectivité « Commune simulée » (département 037)"
    )
    assert sim.state.requests[0] == "POST /modules/actes/actes_transac_submit.php"


def test_the_archive_name_carries_the_platforms_trigram(sim: S2low) -> None:
    sim.state.trigram = "SLO"
    with pytest.raises(S2lowRefused, match=r"trigramme trouvé \(TRI\) ne correspond pas au trigramme attendu \(SLO\)"):
        send(connector(sim), package("D098"))
    act = actes.Act(
        "D098", date(2026, 11, 30), 1, (7, 1), "Budget", actes.ActFile(store(make_pdf("D098")).key, "a.pdf")
    )
    sender = actes.Sender("213700000", "037", return_emails=("greffe@mairie-test.fr",), trigram="SLO")
    built = actes.build_package(get_store(), sender, act, date(2026, 1, 15), "1", ACTES_SCHEMAS)
    assert built.filename.startswith("SLO-EACT--213700000--") and send(connector(sim), built).isdigit()
    with pytest.raises(InvalidInput, match="trigramme du TdT invalide"):
        actes.build_package(get_store(), replace(sender, trigram="S-"), act, date(2026, 1, 15), "1", None)


def test_an_envelope_import_switched_off_is_a_clear_refusal(sim: S2low) -> None:
    sim.scenario(envelope_submission=False)
    with pytest.raises(S2lowRefused, match=r"déprécié.*actes_transac_create\.php"):
        send(connector(sim), package("D099"))


def test_a_second_send_of_the_same_act_number_is_a_duplicate(sim: S2low) -> None:
    tdt, built = connector(sim), package("D101")
    send(tdt, built)
    with pytest.raises(S2lowDuplicate, match="numéro interne d'acte entre en conflit"):
        send(tdt, built)
    # The number is unique per collectivité, whatever the rest of the act: another matière is refused too.
    with pytest.raises(S2lowDuplicate):
        send(tdt, package("D101", matiere=(1, 1)))
    assert sim.sends(built.act_id) == 3 and len(sim.state.transactions) == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("500", "erreur 500 de la plateforme"),
        ("html", "page HTML"),
        ("malformed", "réponse illisible"),
        ("timeout", "délai dépassé"),
    ],
)
def test_a_send_without_a_usable_answer_is_transient(sim: S2low, fault: str, message: str) -> None:
    sim.scenario(faults={"send": [fault]}, hang_seconds=3)
    with pytest.raises(SaeUnavailable, match=message):
        send(connector(sim), package(f"D2{fault[:3]}"))


def test_a_ko_keeps_the_platforms_words(sim: S2low) -> None:
    sim.scenario(faults={"send": ["ko"]})
    with pytest.raises(S2lowRefused, match="Erreur simulée : la plateforme refuse la demande"):
        send(connector(sim), package("D300"))


def test_a_timeout_after_the_send_leaves_the_act_on_the_platform(sim: S2low) -> None:
    tdt, built = connector(sim), package("D301")
    sim.scenario(faults={"send": ["accept_then_timeout"]}, hang_seconds=3)
    with pytest.raises(SaeUnavailable, match="délai dépassé"):
        send(tdt, built)
    assert tdt.find_actes(built.act_id) is not None  # what the flow asks before sending again


def test_a_slow_platform_within_the_timeout_answers(sim: S2low) -> None:
    sim.scenario(delay=0.5)
    assert send(connector(sim), package("D302")).isdigit()
    sim.scenario(delay=2.5)
    with pytest.raises(SaeUnavailable, match="délai dépassé"):
        connector(sim).classification()


def test_an_error_status_and_a_cancellation(sim: S2low) -> None:
    tdt = connector(sim)
    sim.scenario(verdict="KO")
    failed = tdt.actes_status(send(tdt, package("D303")))
    assert failed.code == -1 and failed.failed and failed.label == "erreur"
    assert "refusée par le ministère" in failed.message  # the error S²LOW gives after the code (ISO-8859-1)
    sim.scenario(verdict="OK", pending_checks=1)
    transaction = send(tdt, package("D304"))
    # S²LOW cancels only an acknowledged act, and only once.
    with pytest.raises(S2lowRefused, match="pas en état « Acquittement reçu »"):
        tdt.cancel(transaction)
    assert tdt.actes_status(transaction).label == "posté" and tdt.actes_status(transaction).code == 4
    assert tdt.cancel(transaction).isdigit()
    with pytest.raises(S2lowRefused, match="déjà en cours"):
        tdt.cancel(transaction)
    cancelled = tdt.actes_status(transaction)
    assert cancelled.label == "annulé" and cancelled.failed
    with pytest.raises(S2lowRefused, match="Numéro de transaction invalide"):
        tdt.actes_status("999999")


def test_an_act_already_sent_to_the_sae_still_gives_its_aracte(sim: S2low) -> None:
    tdt, built = connector(sim), package("D307")
    sim.scenario(sae_after_ack=True)
    status = tdt.actes_status(send(tdt, built))
    assert status.code == 12 and status.label == "envoyé au SAE" and not status.failed
    assert status.document is not None and aracte_fields(status.document)["id_acte"] == built.act_id
    assert "GET /modules/actes/actes_transac_get_ARActe.php" in sim.state.requests
    with pytest.raises(SaeUnavailable, match="ARActe"):
        tdt.aracte("424242")  # not acknowledged: S²LOW redirects to its index page


def test_an_aracte_for_an_unknown_act_is_recognisable(sim: S2low) -> None:
    tdt, built = connector(sim), package("D305")
    sim.scenario(aracte_unknown=True)
    document = tdt.actes_status(send(tdt, built)).document
    assert document is not None and aracte_fields(document)["id_acte"] != built.act_id


def test_prefecture_letters_are_listed_read_and_answered(sim: S2low) -> None:
    tdt = connector(sim)
    transaction = send(tdt, package("D306"))
    letter = sim.state.add_letter(transaction)
    listed = tdt.prefecture_documents()
    unique_id = sim.state.transactions[transaction].key
    assert listed == [
        {
            "id": letter,
            "type": "4",
            "related_transaction_id": transaction,
            "number": "D306",
            "unique_id": unique_id,
            "last_status_id": 7,
        }
    ]
    # The document is the tar.gz of the prefecture's @ctes message and its files (through S²LOW's redirect).
    files = actes.read_package(tdt.prefecture_document(letter))
    message = next(content for name, content in files.items() if name.endswith(".xml"))
    actes.validate(message, ACTES_SCHEMAS, "courrier")
    assert any(name.endswith(".pdf") for name in files)
    tdt.mark_prefecture_document_read(letter)
    assert tdt.prefecture_documents() == []
    answer = store(make_pdf("Réponse aux observations"))
    assert tdt.reply_prefecture(letter, "4", get_store(), answer.key, "reponse.pdf").isdigit()
    assert sim.state.replies[0] == {"id": sim.state.replies[0]["id"], "to": letter, "type": "4", "size": answer.size}
    with pytest.raises(InvalidInput, match="4 \\(réponse\\) ou 3"):
        tdt.reply_prefecture(letter, "LettreObservations", get_store(), answer.key, "reponse.pdf")
    with pytest.raises(S2lowRefused, match="typologie absente"):
        tdt.reply_prefecture(letter, "3", get_store(), answer.key, "reponse.pdf", document_type="")


def test_helios_import_status_acquit_and_retour(sim: S2low) -> None:
    tdt, pes = connector(sim), store(PES)
    sim.scenario(pending_checks=1, pes_retour=True)
    transaction = tdt.send_helios(get_store(), pes.key, "PES_2026_001.xml")
    first = tdt.helios_status(transaction)
    assert first.label == "posté" and not first.acquit_ready
    accepted = tdt.helios_status(transaction)
    assert accepted.code == 4 and accepted.acquit_ready and not accepted.failed
    assert acquit_refusal(tdt.helios_acquit(transaction)) is None
    with pytest.raises(S2lowDuplicate, match="doublon détecté"):
        tdt.send_helios(get_store(), pes.key, "PES_2026_001.xml")
    # The PES Retour are the collectivité's: listed unread, fetched by their own id, then marked read.
    [retour] = tdt.pes_retours()
    assert retour["nom"].endswith(".xml") and b"PES_Retour" in tdt.pes_retour(retour["id"])
    tdt.mark_pes_retour_read(retour["id"])
    assert tdt.pes_retours() == []
    with pytest.raises(S2lowRefused, match="retour id n'est pas correcte"):
        tdt.pes_retour("424242")
    # The accountant refuses another PES: status 6, the PES Acquit is there and says why.
    sim.scenario(acquit="KO", pes_retour=False, pending_checks=0)
    other = tdt.send_helios(get_store(), pes.key, "PES_2026_002.xml")
    status = tdt.helios_status(other)
    assert status.code == 6 and status.acquit_ready and not status.failed and status.label == "refusé par le comptable"
    refused = acquit_refusal(tdt.helios_acquit(other))
    assert refused is not None and "montant du mandat incohérent (simulé) (anomalie 42)" in refused


def test_helios_faults(sim: S2low) -> None:
    tdt, pes = connector(sim), store(PES)
    sim.scenario(faults={"helios_send": ["malformed", "html", "ko"]})
    with pytest.raises(SaeUnavailable, match="XML mal formé"):
        tdt.send_helios(get_store(), pes.key, "PES_F.xml")
    with pytest.raises(SaeUnavailable, match="page HTML"):
        tdt.send_helios(get_store(), pes.key, "PES_F.xml")
    with pytest.raises(S2lowRefused, match="PES refusé par S²LOW : Erreur simulée"):
        tdt.send_helios(get_store(), pes.key, "PES_F.xml")
    sim.scenario(faults={"helios_send": ["denied"]})
    with pytest.raises(S2lowRefused, match="envoi du PES refusé par S²LOW : Accès refusé"):
        tdt.send_helios(get_store(), pes.key, "PES_F.xml")
    sim.scenario(faults={"helios_status": ["html"], "retour": ["malformed"]})
    with pytest.raises(SaeUnavailable, match="état du PES 1 : la plateforme a répondu une page HTML"):
        tdt.helios_status("1")
    with pytest.raises(SaeUnavailable, match="XML mal formé"):
        tdt.pes_retours()
    with pytest.raises(S2lowRefused, match="pas un PES Aller"):
        tdt.send_helios(get_store(), store(b"<PES_Retour/>").key, "PES_G.xml")


def test_xml_with_entities_or_a_dtd_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "xxxxxxxxxx"><!ENTITY f "&e;&e;&e;&e;">]>'
        b"<actes:ARActe xmlns:actes='http://www.interieur.gouv.fr/ACTES#v1.1-20040216'>&f;</actes:ARActe>"
    )
    with pytest.raises(SaeUnavailable, match="DTD"):
        aracte_fields(bomb)
    external = b'<?xml version="1.0"?><!DOCTYPE a SYSTEM "http://127.0.0.1:9/x.dtd"><PES_ACQUIT/>'
    with pytest.raises(SaeUnavailable, match="DTD"):
        acquit_refusal(external)


def test_basic_auth_is_sent_when_configured() -> None:
    for sim in running_s2low(credentials=("mairie", "s3cret")):
        with pytest.raises(SaeRefused, match="refus 401"):
            connector(sim).test()
        assert connector(sim, username="mairie", password="s3cret").test().startswith("S²LOW joignable")


# --------------------------------------------------------------------------------------------------------
# TLS with a client certificate, as S²LOW requires


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, ca: tuple[x509.Certificate, Any] | None) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca[0].subject if ca else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True)
    )
    if subject == "127.0.0.1":
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(ca[1] if ca else key, hashes.SHA256())


def _pem(item: Any) -> bytes:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM)
    return bytes(
        item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture
def tls(tmp_path: Path) -> dict[str, Path]:
    ca_key, server_key, client_key = _key(), _key(), _key()
    ca = _cert("AC de test S²LOW", ca_key, None)
    items = {
        "ca": ca,
        "server": _cert("127.0.0.1", server_key, (ca, ca_key)),
        "server_key": server_key,
        "client": _cert("mairie-de-test", client_key, (ca, ca_key)),
        "client_key": client_key,
    }
    paths = {}
    for name, item in items.items():
        paths[name] = tmp_path / f"{name}.pem"
        paths[name].write_bytes(_pem(item))
    return paths


def test_tls_with_a_client_certificate(tls: dict[str, Path], use_env: Callable[..., None]) -> None:
    options = {"certfile": str(tls["server"]), "keyfile": str(tls["server_key"]), "ca_certs": str(tls["ca"])}
    for sim in running_s2low(**options):
        assert sim.url.startswith("https://")
        good = connector(
            sim,
            ca_file=str(tls["ca"]),
            client_certificate=tls["client"].read_text(),
            client_key=tls["client_key"].read_text(),
        )
        said = good.test()  # what was checked: the certificate presented, named
        assert said.startswith("S²LOW joignable") and "certificat client « mairie-de-test » présenté" in said
        with pytest.raises(SaeUnavailable, match="injoignable"):  # no client certificate: handshake refused
            connector(sim, ca_file=str(tls["ca"])).test()
        with pytest.raises(SaeRefused, match="certificat de la plateforme refusé"):  # server not trusted: no retry
            connector(sim).test()
        with pytest.raises(InvalidInput, match="certificat client ou clé illisible"):
            connector(sim, ca_file=str(tls["ca"]), client_certificate=tls["client"].read_text(), client_key="?").test()


def test_the_simulate_command_serves_s2low(use_env: Callable[..., None]) -> None:
    import os
    import socket
    import subprocess
    import sys

    import httpx

    from conftest import ROOT

    use_env(SOCLE_ACTES_SCHEMAS=str(ACTES_SCHEMAS))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "socle",
        "interop",
        "simulate",
        "s2low",
        "--port",
        str(port),
        "--fault",
        "send=500",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/test-connexion.php", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "le simulateur n'a pas démarré"
                time.sleep(0.1)
        assert answer.text == "OK"
        state = httpx.get(f"http://127.0.0.1:{port}/_simulateur").json()
        assert state["scenario"]["faults"] == {"send": ["500"]}
        tdt = S2lowConnector("tdt", {"url": f"http://127.0.0.1:{port}", "timeout": 5}, {})
        with pytest.raises(SaeUnavailable, match="erreur 500"):
            send(tdt, package("D900"))
        assert send(tdt, package("D900")).isdigit()  # the package passed the simulator's XSD check
    finally:
        process.terminate()
        process.wait(timeout=10)
