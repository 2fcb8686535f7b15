"""``socle interop …``: the platform simulators, so that a municipality can rehearse without the real SAE."""

from __future__ import annotations

import json
from pathlib import Path

import click

# The simulators (Starlette, uvicorn, lxml) are imported inside the command: every `socle …` command loads
# this group.


@click.group(
    name="interop",
    help="Interopérabilité : simulateurs des plateformes (S²LOW, Vitam, As@lae, CMIS), flux, PES Retour.",
)
def group() -> None:
    pass


@group.command("simulate", help="Lancer un simulateur de plateforme sur 127.0.0.1 (répétition, jamais en production).")
@click.argument("platform", metavar="PLATEFORME", type=click.Choice(["vitam", "asalae", "s2low", "cmis"]))
@click.option("--port", default=8090, show_default=True, type=click.IntRange(1, 65535), help="Port d'écoute")
@click.option(
    "--verdict", type=click.Choice(["OK", "KO"]), default="OK", show_default=True, help="Réponse au transfert"
)
@click.option(
    "--pending-checks",
    default=0,
    show_default=True,
    type=click.IntRange(0, 1000),
    help="Suivis répondant « en cours » avant la réponse",
)
@click.option(
    "--delay",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 600),
    help="Secondes ajoutées à chaque réponse (plateforme lente)",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="POINT=PANNE",
    help="Panne à provoquer une fois, ex. send=500, status=timeout, reply=malformed, reply=html (répétable)",
)
@click.option("--user", default="socle", show_default=True, help="As@lae : utilisateur accepté")
@click.option("--password", default="socle", show_default=True, help="As@lae : mot de passe accepté")
@click.option("--token", default=None, help="As@lae : jeton accepté (au lieu de l'utilisateur)")
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Certificat serveur (PEM)"
)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Clé du certificat")
@click.option("--client-ca", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="AC des clients (mTLS)")
def simulate(
    platform: str,
    port: int,
    verdict: str,
    pending_checks: int,
    delay: float,
    faults: tuple[str, ...],
    user: str,
    password: str,
    token: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    client_ca: Path | None,
) -> None:
    import uvicorn

    from interop.simulators import asalae, vitam
    from interop.simulators.common import PlatformState

    state = PlatformState()
    try:
        state.scenario.update({"verdict": verdict, "pending_checks": pending_checks, "delay": delay})
        state.scenario.update({"faults": _faults(faults)})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if platform == "s2low":
        app = _s2low_app(verdict, pending_checks, delay, faults)
    elif platform == "vitam":
        app = vitam.create_app(state)
    elif platform == "cmis":  # a GED over CMIS 1.1 Browser Binding (basic authentication with --user/--password)
        from interop.simulators import cmis

        app = cmis.create_app(cmis.CmisRepository(state=state, credentials=(user, password)))
    else:
        app = asalae.create_app(state, asalae.Credentials(user, password, token))
    tls: dict[str, object] = {}
    if tls_key and not tls_cert:
        raise click.UsageError("--tls-key va avec --tls-cert")
    if tls_cert:
        _check_tls(tls_cert, tls_key, client_ca)
        tls = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key) if tls_key else None}
        if client_ca:
            import ssl

            tls |= {"ssl_ca_certs": str(client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    scheme = "https" if tls_cert else "http"
    click.echo(f"Simulateur {platform} sur {scheme}://127.0.0.1:{port} — données de répétition, jamais de production.")
    click.echo(f"Réglages : {json.dumps(state.scenario.__dict__, ensure_ascii=False)}")
    click.echo(f"Ce qui a été reçu : GET {scheme}://127.0.0.1:{port}/_simulateur ; pannes : PUT …/_simulateur/scenario")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="info", **tls)  # type: ignore[arg-type]


def _check_tls(cert: Path, key: Path | None, client_ca: Path | None) -> None:
    """Load the certificate, its key and the clients' CA before the server starts: uvicorn would stop on them with
    OpenSSL's trace."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise click.UsageError(
            f"certificat « {cert} » ou clé illisible : PEM attendu, la clé dans le certificat ou en --tls-key ({exc})"
        ) from None
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (ssl.SSLError, OSError) as exc:
            raise click.UsageError(f"AC des clients « {client_ca} » illisible : PEM attendu ({exc})") from None


def _faults(values: tuple[str, ...]) -> dict[str, list[str]]:
    faults: dict[str, list[str]] = {}
    for value in values:
        point, sep, fault = value.partition("=")
        if not sep:
            raise ValueError(f"panne attendue sous la forme POINT=PANNE : {value}")
        faults.setdefault(point.strip(), []).append(fault.strip())
    return faults


def _s2low_app(verdict: str, pending_checks: int, delay: float, faults: tuple[str, ...]) -> object:
    """The S²LOW simulator, checking @ctes packages against the XSD of the setting actes_schemas if set."""
    from interop.simulators import s2low
    from socle.settings import get_settings

    state = s2low.S2lowState(schemas=get_settings().actes_schemas)
    try:
        state.scenario.update({"verdict": verdict, "pending_checks": pending_checks, "delay": delay})
        state.scenario.update({"faults": _faults(faults)})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    return s2low.create_app(state)


@group.command("flows", help="Lister les flux d'une collectivité (par défaut ceux en erreur).")
@click.option("--tenant", required=True, help="Identifiant court (slug) de la collectivité")
@click.option("--state", default="error", show_default=True, help="running, waiting, error, done, stuck, un état")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500))
def flows_command(tenant: str, state: str, limit: int) -> None:
    from interop import flows
    from socle.auth import get_tenant
    from socle.db import new_session

    with new_session() as session:
        row = get_tenant(session, tenant)  # NotFound, said in French by the `socle` command
        found = flows.list_flows(session, row.id, state or None, limit)
        if not found:
            click.echo(f"Aucun flux « {state} ».")
        for flow in found:
            click.echo(f"{flow.id}  {flow.kind:7} {flow.status:8} {flow.state:28} {flow.updated_at:%Y-%m-%d %H:%M}")
            if flow.error:
                click.echo(f"    {flow.error}")


@group.command(
    "pes-retours",
    help="Récupérer les PES Retour non lus d'un connecteur S²LOW et les classer dans la GED (à lancer par cron).",
)
@click.option("--tenant", required=True, help="Identifiant court (slug) de la collectivité")
@click.option("--connector", required=True, help="Nom du connecteur de télétransmission (S²LOW)")
def pes_retours_command(tenant: str, connector: str) -> None:
    from interop import flows
    from socle.auth import get_tenant
    from socle.db import transaction

    with transaction() as session:
        row = get_tenant(session, tenant)
        counts = flows.collect_pes_retours(session, row.id, connector)
    click.echo(
        f"PES Retour confiés à la GED : {counts.get('asked', 0)} ; marqués lus chez S²LOW : {counts.get('marked', 0)}."
    )


@group.command(
    "sae-connectors",
    help="Renvoyer au service d'archives la liste des connecteurs du système d'archivage (Vitam, As@lae, dépôt, "
    "SFTP, WebDAV) de chaque collectivité, ou d'une seule : après une mise à jour ou une restauration de sa base. "
    "Sans effet en double.",
)
@click.option("--tenant", default=None, help="Identifiant court (slug) de la collectivité (par défaut : toutes)")
def sae_connectors_command(tenant: str | None) -> None:
    from sqlalchemy import select

    from interop import service
    from socle.auth import get_tenant
    from socle.db import new_session, transaction
    from socle.models import Tenant

    with new_session() as session:
        if tenant:
            tenants = [(get_tenant(session, tenant).id, tenant)]  # NotFound, said in French by the `socle` command
        else:
            tenants = [
                (row.id, row.slug) for row in session.execute(select(Tenant.id, Tenant.slug).order_by(Tenant.slug))
            ]
    for tenant_id, slug in tenants:
        with transaction() as session:
            connectors = service.publish_sae_connectors(session, tenant_id, "cli:socle-interop-sae-connectors")
        names = ", ".join(connector["name"] for connector in connectors) or "aucun"
        click.echo(f"{slug} : liste envoyée au service d'archives ({names}).")
