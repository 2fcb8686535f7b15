"""Fixes after a review of the interop service: an act S²LOW may hold is never sent twice nor its number freed,
act numbers are taken one start at a time, the transport never connects by an unchecked name, and the
refusals say what to do."""

from __future__ import annotations

import io
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pg_waits import someone_waits_on_advisory, wait_until
from s2low_helpers import S2low, act_request, add_s2low, drive, flow_of, start
from sqlalchemy import func, select, update
from test_interop_dns_rebinding import _certificate_for, _serve

from interop import flows
from interop.connectors.s2low import S2lowConnector
from interop.connectors.sae import SaeUnavailable
from interop.connectors.transport import BoundedTransport, NameNotFound
from interop.models import Connector, Flow, TdtClassification
from socle import audit
from socle.db import new_session, transaction
from socle.migrating import upgrade_all
from socle.models import Job
from socle.queue import FAILED, PENDING
from socle.storage import get_store
from socle.storage.ownership import record_held

from conftest import Kit, assert_problem, run_jobs

pytestmark = pytest.mark.usefixtures("actes_schemas")


def _flow_count(kit: Kit) -> int:
    with new_session() as session:
        return int(session.scalar(select(func.count()).select_from(Flow).where(Flow.tenant_id == kit.tenant_id)) or 0)


# --------------------------------------------------------------------------------------------------------
# 1. A KO after an interrupted send; a KO of the status page that is not « unknown act »


def test_a_ko_to_the_resend_keeps_the_act_sending_and_its_number(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    # The first send times out (S²LOW may have it: the flow cannot know), the resend is refused (rights).
    sim.scenario(faults={"send": ["timeout", "denied"]})
    flow = drive(start(kit, act_request(kit, "RV_1")))

    assert flow.status == "error" and "Accès refusé" in (flow.error or "")
    assert flow.data.get("sending") is True and not flow.data.get("send_refused")  # a resume asks S²LOW first
    problem = assert_problem(kit["agent"].post("/interop/flows", json=act_request(kit, "RV_1")), 409)
    assert "déjà pris" in problem["detail"]


def test_a_first_send_refused_still_frees_the_number(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    sim.scenario(faults={"send": ["denied"]})
    flow = drive(start(kit, act_request(kit, "RV_11")))

    assert flow.status == "error" and flow.data.get("sending") is False and flow.data.get("send_refused") is True
    assert kit["agent"].post("/interop/flows", json=act_request(kit, "RV_11")).status_code == 201


def test_access_refused_while_looking_for_the_act_is_retried_never_a_second_send(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    # Received by S²LOW, the answer lost; then the status page refuses the account for a moment.
    sim.scenario(faults={"send": ["accept_then_timeout", "denied"], "status": ["denied"]})
    flow = drive(start(kit, act_request(kit, "RV_12")))

    assert flow.status == "done", flow.error
    assert flow.data["recovered"] is True and sim.sends(flow.data["act_id"]) == 1
    assert len(sim.state.transactions) == 1


def test_find_actes_tells_an_unknown_act_from_a_refusal(sim: S2low) -> None:
    tdt = S2lowConnector("tdt", {"url": sim.url, "timeout": 5}, {})
    assert tdt.find_actes("037-213700000-20261130-RV_13-DE") is None  # « Numéro de transaction invalide. »
    sim.scenario(faults={"status": ["denied", "ko"]})
    for _ in range(2):  # « Accès refusé », another KO: S²LOW may hold the act, nothing says it does not
        with pytest.raises(SaeUnavailable, match="impossible de savoir si S²LOW a déjà reçu l'acte"):
            tdt.find_actes("037-213700000-20261130-RV_13-DE")


# --------------------------------------------------------------------------------------------------------
# 2 and 9. The act number of a flow that never sent; the hint when it is taken


def test_a_flow_rejected_at_the_parapheur_frees_its_number(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    flow_id = start(kit, act_request(kit, "RV_2"))
    # A flow still on its way keeps its number: it will send it.
    assert kit["agent"].post("/interop/flows", json=act_request(kit, "RV_2")).status_code == 409
    with transaction() as session:  # as _signature_follow leaves a folder the mayor rejected
        session.execute(update(Flow).where(Flow.id == flow_id).values(state="rejeté", status="done", data={}))
    assert kit["agent"].post("/interop/flows", json=act_request(kit, "RV_2")).status_code == 201


@pytest.mark.parametrize(
    ("number", "hint"),
    [
        ("RV_9", "ajoutez un suffixe, ex. RV_9_B)"),
        ("ABCDEFGHIJKLM", "ex. ABCDEFGHIJKLM_B)"),  # 15 characters with the suffix: still a valid number
        ("ABCDEFGHIJKLMN", "choisissez un autre numéro, 15 caractères au plus"),
        ("ABCDEFGHIJKLMNO", "choisissez un autre numéro, 15 caractères au plus"),
    ],
)
def test_a_taken_number_is_answered_with_a_valid_example_or_none(kit: Kit, sim: S2low, number: str, hint: str) -> None:
    add_s2low(kit, sim)
    start(kit, act_request(kit, number))
    problem = assert_problem(kit["agent"].post("/interop/flows", json=act_request(kit, number)), 409)
    assert hint in problem["detail"]
    assert f"{number}_B" not in problem["detail"] or len(number) <= 13


# --------------------------------------------------------------------------------------------------------
# 4. Two starts with the same number at once (PostgreSQL: SQLite's transactions already take turns)


class _Window:
    """The window a first request holds a lock in (between a check and its commit), kept open until the test
    saw a second request wait on that lock: the race is then certain, not left to the threads' timing."""

    def __init__(self) -> None:
        self.entered, self.closed = threading.Event(), threading.Event()

    def hold(self) -> None:
        """Called by the first request inside its window: wait there until the test closes it; a later call
        (the second request's) passes."""
        if not self.entered.is_set():
            self.entered.set()
            self.closed.wait(timeout=60)


def _second_waits_on_the_first(
    window: _Window, first: Callable[[], int], second: Callable[[], int], waits: Callable[[], bool], lock: str
) -> list[int | None]:
    """Run ``first`` until it holds ``window`` open, then ``second`` until it waits on the lock (``waits``, named
    ``lock``) or ends; close the window. Their results: the first's, then the second's."""
    results: dict[str, int] = {}
    runs = {
        name: threading.Thread(target=lambda name=name, call=call: results.update({name: call()}))
        for name, call in (("first", first), ("second", second))
    }
    runs["first"].start()
    try:
        wait_until(lambda: window.entered.is_set() or not runs["first"].is_alive(), "the first request holds " + lock)
        assert window.entered.is_set(), f"the first request ended ({results}) without holding {lock}"
        runs["second"].start()
        wait_until(lambda: not runs["second"].is_alive() or waits(), f"the second request waits on {lock}")
    finally:
        window.closed.set()
        for run in runs.values():
            if run.ident is not None:  # started
                run.join(timeout=60)
    return [results.get("first"), results.get("second")]  # None: that request raised (its traceback printed)


def _postgres_kit(url: str, use_env: Callable[..., None], make_kit: Callable[..., Kit]) -> Kit:
    use_env(SOCLE_DATABASE_URL=url)
    upgrade_all()
    return make_kit(with_identity=False)


@pytest.mark.integration
def test_two_starts_with_the_same_number_at_once_make_one_flow(
    own_postgres_url: str,
    use_env: Callable[..., None],
    make_kit: Callable[..., Kit],
    monkeypatch: pytest.MonkeyPatch,
    sim: S2low,
) -> None:
    kit = _postgres_kit(own_postgres_url, use_env, make_kit)
    add_s2low(kit, sim)
    real, window = flows._check_number_free, _Window()
    number_lock: list[str] = []  # (tenant, connector, number): the lock the check takes

    def checked_then_held(session: Any, *parts: str) -> None:
        real(session, *parts)
        number_lock[:] = parts  # the lock the check took, held until the commit
        window.hold()  # between the check and the commit, until the other start waits on the number's lock

    monkeypatch.setattr(flows, "_check_number_free", checked_then_held)
    bodies = [act_request(kit, "RV_4"), act_request(kit, "RV_4")]
    codes = _second_waits_on_the_first(
        window,
        lambda: kit["agent"].post("/interop/flows", json=bodies[0]).status_code,
        lambda: kit["maire"].post("/interop/flows", json=bodies[1]).status_code,
        lambda: someone_waits_on_advisory("interop-act-number", *number_lock),
        "the act number's lock",
    )
    assert codes == [201, 409] and _flow_count(kit) == 1  # the second start, after the first, finds it


# --------------------------------------------------------------------------------------------------------
# 5. A code missing from a classification known to be out of date


def test_a_code_missing_from_a_stale_classification_says_to_fetch_it_again(kit: Kit, sim: S2low) -> None:
    import datetime as dt

    add_s2low(kit, sim)
    fresh = assert_problem(kit["agent"].post("/interop/flows", json=act_request(kit, "RV_5", matiere="9.9")), 422)
    assert "absent de la classification" in fresh["detail"] and "récupérez-la" not in fresh["detail"]

    with transaction() as session:  # an ARActe said the prefecture has a newer classification
        session.execute(
            update(TdtClassification)
            .where(TdtClassification.tenant_id == kit.tenant_id)
            .values(platform_date=dt.date(2026, 6, 1))
        )
    stale = assert_problem(kit["agent"].post("/interop/flows", json=act_request(kit, "RV_5", matiere="9.9")), 422)
    assert "code matière « 9.9 » absent de la classification" in stale["detail"]
    assert "la préfecture date du 01/06/2026" in stale["detail"]
    assert "récupérez-la de nouveau (POST /interop/connectors/tdt/classification)" in stale["detail"]
    assert _flow_count(kit) == 0


# --------------------------------------------------------------------------------------------------------
# 6. « precedent_acte » left blank


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_previous_act_means_none(kit: Kit, sim: S2low, blank: str) -> None:
    add_s2low(kit, sim)
    body = act_request(kit, "RV_6")
    body["metadata"]["precedent_acte"] = blank
    flow = drive(start(kit, body))
    assert flow.status == "done", flow.error


def test_a_flow_started_with_a_blank_previous_act_before_the_check_goes_on(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    flow_id = start(kit, act_request(kit, "RV_61"))
    with transaction() as session:  # as a flow created before the upgrade kept it, read again at each step
        flow = session.get(Flow, flow_id)
        assert flow is not None
        flow.flow_metadata = {**flow.flow_metadata, "precedent_acte": ""}
    assert drive(flow_id).status == "done", flow_of(flow_id).error


# --------------------------------------------------------------------------------------------------------
# 9. Identifiers given to S²LOW: ASCII digits only


@pytest.mark.parametrize("letter", ["²", "١٢", "12³"])
def test_a_letter_id_of_other_digits_is_refused_before_asking_s2low(kit: Kit, sim: S2low, letter: str) -> None:
    add_s2low(kit, sim)
    asked = len(sim.state.requests)
    problem = assert_problem(kit["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch"), 422)
    assert "chiffres attendus" in problem["detail"] and len(sim.state.requests) == asked


# --------------------------------------------------------------------------------------------------------
# 10. A prefecture's letter: its GED job failed, or fetched twice at once


def _ged_jobs(kit: Kit, letter: str) -> list[Job]:
    with new_session() as session:
        jobs = session.execute(select(Job).where(Job.key.contains(f":courrier:{letter}:"))).scalars()
        return sorted(jobs, key=lambda job: job.created_at)


def test_a_letter_whose_ged_job_failed_is_asked_of_the_ged_again(kit: Kit, sim: S2low) -> None:
    add_s2low(kit, sim)
    letter = sim.state.add_letter("9999", 2)
    assert kit["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch").status_code == 200
    [first] = [job for job in _ged_jobs(kit, letter) if job.function.startswith("ged.")]
    with transaction() as session:  # the GED job failed for good (GED down past its attempts)
        session.execute(update(Job).where(Job.id == first.id).values(status=FAILED))

    again = kit["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch")
    assert again.status_code == 200, again.text
    jobs = [job for job in _ged_jobs(kit, letter) if job.function.startswith("ged.")]
    assert [job.status for job in jobs] == [FAILED, PENDING] and jobs[1].key == f"{first.key}:again:1"
    run_jobs()
    assert kit["agent"].get("/interop/connectors/tdt/prefecture").json() == []  # filed, then marked read
    # Fetched once more: the job that worked is the letter's, nothing new is asked.
    assert kit["agent"].post(f"/interop/connectors/tdt/prefecture/{letter}/fetch").status_code == 200
    assert len([job for job in _ged_jobs(kit, letter) if job.function.startswith("ged.")]) == 2


@pytest.mark.integration
def test_a_letter_fetched_twice_at_once_is_asked_of_the_ged_once(
    own_postgres_url: str,
    use_env: Callable[..., None],
    make_kit: Callable[..., Kit],
    monkeypatch: pytest.MonkeyPatch,
    sim: S2low,
) -> None:
    kit = _postgres_kit(own_postgres_url, use_env, make_kit)
    add_s2low(kit, sim)
    letter = sim.state.add_letter("9999", 4)
    # The letter's PDF is already the collectivité's (fetched before, its job since removed): no object lock
    # makes the two fetches take turns, only the letter's own.
    pdf = get_store().put(io.BytesIO(b"%PDF-1.4\n% courrier simule\n%%EOF\n"))
    with transaction() as session:
        record_held(session, kit.tenant_id, pdf.key, holder="interop")
    with new_session() as session:
        connector_id = session.scalar(
            select(Connector.id).where(Connector.tenant_id == kit.tenant_id, Connector.name == "tdt")
        )
    real, window = audit.record, _Window()

    def recorded_then_held(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("action") == "interop.prefecture.fetched":  # its jobs created, before the commit
            window.hold()  # until the other fetch waits on the letter's lock
        return real(*args, **kwargs)

    monkeypatch.setattr(audit, "record", recorded_then_held)
    url = f"/interop/connectors/tdt/prefecture/{letter}/fetch"
    codes = _second_waits_on_the_first(
        window,
        lambda: kit["agent"].post(url).status_code,
        lambda: kit["maire"].post(url).status_code,
        lambda: someone_waits_on_advisory("interop-letter", kit.tenant_id, str(connector_id), letter),
        "the letter's lock",
    )
    assert codes == [200, 200]
    assert len([job for job in _ged_jobs(kit, letter) if job.function.startswith("ged.")]) == 1


# --------------------------------------------------------------------------------------------------------
# 3, 7, 8. The transport: a name that does not resolve, a connection that times out, an international name

NAME = "depot.example"


def _resolver(monkeypatch: pytest.MonkeyPatch, answers: dict[str, list[list[str]]]) -> list[str]:
    """Each name of ``answers`` resolves to its lists in turn (an empty list: no answer; the last one stays);
    every name asked is noted, as the resolver was given it."""
    real, asked = socket.getaddrinfo, []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in answers and host not in ("localhost",) and not str(host).startswith("127."):
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if host not in answers:
            return real(host, port, *args, **kwargs)
        turn = len([name for name in asked if name == host])
        asked.append(host)
        found = answers[host][min(turn, len(answers[host]) - 1)]
        if not found:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port))) for address in found]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def server() -> Iterator[int]:
    for running in _serve("127.0.0.1", 0):
        yield running.server_address[1]


def test_a_name_that_does_not_resolve_is_never_left_to_a_second_resolution(
    server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _resolver(monkeypatch, {NAME: [[], ["127.0.0.1"]]})  # no answer first, then one nothing checked
    client = httpx.Client(transport=BoundedTransport(), timeout=5)
    with client, pytest.raises(NameNotFound, match=f"nom introuvable : {NAME}"):
        client.get(f"http://{NAME}:{server}/")
    assert asked == [NAME]  # no connection by name: its own resolution would have found 127.0.0.1 unchecked


def test_a_name_that_does_not_resolve_is_a_retried_failure_in_french(
    server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _resolver(monkeypatch, {NAME: [[]]})
    with pytest.raises(SaeUnavailable, match="nom introuvable"):  # retried, as an unreachable platform
        S2lowConnector("tdt", {"url": f"http://{NAME}:{server}", "timeout": 5}, {}).test()


def test_a_connection_that_times_out_lets_the_next_checked_address_be_tried(
    server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    _resolver(monkeypatch, {NAME: [["127.0.0.9", "127.0.0.1"]]})
    transport = BoundedTransport()
    inner = transport._inner.handle_request

    def silent_first(request: httpx.Request) -> httpx.Response:  # a firewall that drops the packets
        if request.url.host == "127.0.0.9":
            raise httpx.ConnectTimeout("timed out", request=request)
        return inner(request)

    monkeypatch.setattr(transport._inner, "handle_request", silent_first)
    with httpx.Client(transport=transport, timeout=5) as client:
        assert client.get(f"http://{NAME}:{server}/").text == f"127.0.0.1 {NAME}:{server}"


def test_an_international_name_is_looked_up_and_checked_in_its_idna_2008_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # « faß » is « xn--fa-hia » in IDNA 2008 (what httpx sends in Host), « fass » in Python's IDNA 2003 codec.
    ascii_name = "xn--fa-hia.example"
    ca, certificate, key = _certificate_for(ascii_name, tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    # Both forms resolve: only the SNI and the certificate then tell which one the transport used.
    asked = _resolver(monkeypatch, {ascii_name: [["127.0.0.1"]], "faß.example": [["127.0.0.1"]]})
    for running in _serve("127.0.0.1", 0, context):
        verify = ssl.create_default_context(cafile=ca)
        with httpx.Client(transport=BoundedTransport(verify=verify), timeout=5) as client:
            answer = client.get(f"https://faß.example:{running.server_address[1]}/")
        assert answer.text == f"127.0.0.1 {ascii_name}:{running.server_address[1]}"
    assert asked == [ascii_name]
