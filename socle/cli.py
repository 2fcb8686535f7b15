"""The ``socle`` command: serve, work, migrate, operate; each service's own commands are mounted below.

Errors end with a plain French message and a non-zero status, never a Python trace: 2 for a wrong setting
or usage, 1 for a refused operation.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import re
import sys
from typing import Any

import click

from socle.errors import SettingsError, SocleError
from socle.settings import SERVICES, get_settings


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SettingsError as exc:
            click.echo(exc.detail, err=True)
            ctx.exit(2)
        except SocleError as exc:
            click.echo(f"Erreur : {exc.detail}", err=True)
            ctx.exit(1)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own ending: a usage error (in French, socle.cli_messages), an exit status
        except BrokenPipeError:
            # The reader went away (`socle jobs --all | head`): nothing to tell it, as other Unix tools. The
            # rest of the output goes nowhere, or Python's own flush at exit would complain in English.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(1)
        except KeyboardInterrupt:
            # Ctrl-C in a command that does not say more itself: each command writes in transactions, the one
            # under way is rolled back.
            click.echo("Interrompu : l'opération en cours a été annulée ; ce qui était terminé est gardé.", err=True)
            ctx.exit(130)
        except Exception as exc:
            click.echo(f"Erreur : {failure_message(exc)}", err=True)
            ctx.exit(1)


def failure_message(exc: BaseException) -> str:
    """The French sentence for what stopped a command outside the kit's own errors: a server out of reach, a
    file that cannot be read, or else a fault, whose trace is written to a file named in the sentence."""
    database = _database_failure(exc)
    if database is not None:
        return database
    redis_errors = sys.modules.get("redis.exceptions")
    if redis_errors is not None and isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError):
        url = _hide_password(get_settings().redis_url or "")
        return f"Redis injoignable ({url}, réglage SOCLE_REDIS_URL) : {_first_line(exc)}"
    if isinstance(exc, UnicodeDecodeError):
        return f"un texte lu n'est pas en UTF-8 (octet {exc.start}) : enregistrez le fichier en UTF-8."
    if isinstance(exc, OSError):
        return _file_failure(exc)
    if isinstance(exc, MemoryError):
        return "mémoire insuffisante pour cette opération."
    return _unexpected(exc)


def _database_failure(exc: BaseException) -> str | None:
    # Looked up, not imported: `socle archive build` never loads SQLAlchemy, and then its errors cannot occur.
    sql_errors = sys.modules.get("sqlalchemy.exc")
    if sql_errors is None or not isinstance(exc, sql_errors.DBAPIError):
        return None
    cause = _first_line(exc.orig) if exc.orig is not None else _first_line(exc)
    if type(exc.orig).__name__ == "UndefinedTable" or "no such table" in cause:
        return "la base de données n'a pas les tables du kit : lancez d'abord « socle migrate »."
    if isinstance(exc, sql_errors.OperationalError | sql_errors.InterfaceError):
        url = _hide_password(get_settings().effective_database_url)
        return f"base de données injoignable ({url}, réglage SOCLE_DATABASE_URL) : {cause}"
    return _unexpected(exc)


_ERRNO_TEXT = {
    errno.ENOENT: "n'existe pas",
    errno.EACCES: "accès refusé (droits du fichier ou du dossier)",
    errno.EPERM: "opération non permise",
    errno.EISDIR: "est un dossier, pas un fichier",
    errno.ENOTDIR: "un élément du chemin n'est pas un dossier",
    errno.ENOSPC: "plus de place sur le disque",
    errno.EROFS: "système de fichiers en lecture seule",
    errno.EEXIST: "existe déjà",
    errno.ECONNREFUSED: "connexion refusée",
    errno.ETIMEDOUT: "délai dépassé",
    errno.EHOSTUNREACH: "hôte injoignable",
    errno.ENAMETOOLONG: "nom trop long",
    errno.EMFILE: "trop de fichiers ouverts",
    errno.EIO: "erreur d'entrée-sortie (disque ou fichier défectueux)",
}


def _file_failure(exc: OSError) -> str:
    reason = _ERRNO_TEXT.get(exc.errno or 0, exc.strerror or _first_line(exc))
    if exc.filename is not None:
        return f"« {exc.filename} » : {reason}."
    return f"erreur du système ({reason})."


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _unexpected(exc: BaseException) -> str:
    """A fault of the kit: said in one line; its trace kept in a file for the report, never shown raw."""
    import tempfile
    import traceback

    said = f"erreur inattendue ({type(exc).__name__} : {_first_line(exc)[:300]})"
    try:
        with tempfile.NamedTemporaryFile(
            "w", prefix="socle-erreur-", suffix=".txt", delete=False, encoding="utf-8"
        ) as trace:
            trace.write("".join(traceback.format_exception(exc)))
    except OSError:
        return said + "."
    return f"{said} ; détail technique écrit dans {trace.name}, à joindre à un signalement."


# Each service's command group, by the module that defines it. Imported only when the command is run or
# listed (`socle --help`): `socle archive build` then loads neither SQLAlchemy nor the other services'
# models, 10 MB less in the process that runs beside siegfried (docs/performances.md). A broken module still
# fails loudly, on its own commands and on `socle --help`.
SERVICE_COMMANDS = {"archive": "archive.cli", "ged": "ged.cli", "interop": "interop.cli", "parapheur": "parapheur.cli"}


class _Root(_Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *SERVICE_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = SERVICE_COMMANDS.get(cmd_name)
        if module is None:
            return super().get_command(ctx, cmd_name)
        group: click.Command = importlib.import_module(module).group
        return group


@click.group(cls=_Root, help="socle : parapheur, GED, archives SEDA et interopérabilité pour les collectivités.")
def cli() -> None:
    get_settings()  # a wrong setting stops every command here, naming the setting


def _logging(level: int) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@cli.command(help="Mettre la base de données à jour (migrations de chaque service).")
def migrate() -> None:
    from socle.migrating import current_revisions, upgrade_all

    upgrade_all()
    for package, revision in current_revisions().items():
        click.echo(f"{package:10} {revision}")


def uvicorn_options() -> dict[str, Any]:
    """How `socle serve` reads the proxy's headers: the client's address (sign-in limits, audit) and scheme."""
    return {"proxy_headers": True, "forwarded_allow_ips": list(get_settings().trusted_proxies)}


def _root_path(ctx: click.Context, param: click.Parameter, value: str) -> str:
    value = value.rstrip("/")
    if value and (not value.startswith("/") or any(char in value for char in "?#% \t\r\n")):
        raise click.BadParameter(f"« {value} » : un chemin commençant par « / » est attendu, ex. /ged")
    return value


@cli.command(help="Servir l'API : un service (ged, parapheur, archive, interop) ou les quatre ensemble.")
@click.argument("service", metavar="SERVICE", required=False, type=click.Choice(SERVICES))
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option(
    "--root-path",
    default="",
    metavar="PRÉFIXE",
    callback=_root_path,
    help="Préfixe sous lequel le proxy inverse publie ce service en le retirant (ex. /ged pour /ged/ → le "
    "service) : les adresses que le service donne à ses clients (CMIS, envois reprenables) le reprennent.",
)
def serve(service: str | None, host: str, port: int, root_path: str) -> None:
    if root_path and not service:  # the interface's pages and redirections are at the root
        raise click.BadParameter(
            "ne vaut que pour un service seul (socle serve ged --root-path /ged) : "
            "l'interface web se publie à la racine",
            param_hint="'--root-path'",
        )
    import uvicorn

    from socle.app import create_app, create_service
    from socle.migrating import upgrade_all
    from socle.queue import EmbeddedWorker

    _logging(logging.INFO)
    settings = get_settings()
    worker = None
    if settings.embedded_queue:
        # Laptop mode: one process holds the database schema, the queue and its worker.
        upgrade_all()
        worker = EmbeddedWorker()
        worker.start()
    app = create_service(service) if service else create_app()
    logging.getLogger("uvicorn.access").addFilter(HiddenSecrets())
    try:
        uvicorn.run(app, host=host, port=port, root_path=root_path, log_level="info", **uvicorn_options())
    finally:
        if worker is not None:
            worker.stop()


# Addresses whose segment after these prefixes is a secret that opens something by itself (the external
# signer's one-time link): the access log would hand it to whoever reads the logs.
SECRET_PATHS = re.compile(r"(/signature-externe/|/parapheur/external/)[^/?\s]+")


class HiddenSecrets(logging.Filter):
    """Masks the secret of such an address in uvicorn's access log (its third argument is the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], SECRET_PATHS.sub(r"\1…", args[2]), *args[3:])
        return True


@cli.command(help="Lancer un worker rq pour un ou plusieurs services (demande SOCLE_REDIS_URL).")
@click.argument("services", metavar="SERVICES…", nargs=-1, required=True, type=click.Choice(SERVICES))
@click.option("--burst", is_flag=True, help="S'arrêter quand la file est vide.")
@click.option(
    "--no-fork",
    is_flag=True,
    help="Exécuter chaque tâche dans le processus du worker (sans fork) : deux à quatre fois moins de processeur "
    "par tâche courte ; garder le fork pour les tâches qui chargent des bibliothèques non sûres après fork "
    "(archives).",
)
@click.option(
    "--lane",
    "lanes",
    multiple=True,
    help="Ne servir que cette file (« main » : les files principales ; « renditions » : les rendus lents de la "
    "GED) ; répétable. Par défaut toutes, les principales d'abord.",
)
def worker(services: tuple[str, ...], burst: bool, no_fork: bool, lanes: tuple[str, ...]) -> None:
    from socle.queue import run_worker

    _logging(logging.INFO)
    run_worker(list(services), burst=burst, fork=not no_fork, only_lanes=list(lanes) or None)


@cli.group(cls=_Group, invoke_without_command=True, help="Tâches de fond : échecs, tâches bloquées, relance.")
@click.option("--all", "show_all", is_flag=True, help="Montrer aussi les tâches en cours et terminées.")
@click.pass_context
def jobs(ctx: click.Context, show_all: bool) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from socle.db import new_session
    from socle.queue import DONE, FAILED, PENDING, QUEUED, RUNNING, list_jobs, stuck_jobs

    with new_session() as session:
        statuses = (PENDING, QUEUED, RUNNING, DONE, FAILED) if show_all else (FAILED,)
        rows = list_jobs(session, statuses=statuses)
        stuck_rows = stuck_jobs(session)
        stuck = {job.id for job in stuck_rows}
        rows += [job for job in stuck_rows if job not in rows]
    if not rows:
        click.echo("Aucune tâche en échec." if not show_all else "Aucune tâche.")
        return
    for job in rows:
        state = "bloquée" if job.id in stuck else job.status
        error = (job.last_error or "").strip().splitlines()[-1:] or [""]
        click.echo(f"{job.id}  {state:8}  essais {job.attempts}/{job.max_attempts}  {job.function}  {error[0][:100]}")


@jobs.command("show", help="Détail d'une tâche, avec sa dernière erreur.")
@click.argument("job_id", metavar="TÂCHE")
def jobs_show(job_id: str) -> None:
    from socle.db import new_session
    from socle.errors import NotFound
    from socle.models import Job

    with new_session() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"tâche {job_id} introuvable")
        for name in ("id", "function", "status", "attempts", "max_attempts", "created_at", "started_at", "finished_at"):
            click.echo(f"{name:13} {getattr(job, name)}")
        click.echo(f"{'arguments':13} {job.arguments}")
        if job.last_error:
            click.echo("dernière erreur :\n" + job.last_error)


@jobs.command("retry", help="Relancer une tâche en échec ou bloquée.")
@click.argument("job_id", metavar="TÂCHE")
def jobs_retry(job_id: str) -> None:
    from socle.db import transaction
    from socle.queue import retry

    with transaction() as session:
        job = retry(session, job_id)
    click.echo(f"Tâche {job.id} relancée ({job.function}).")


_JOB_STATES = {
    "pending": "en attente",
    "queued": "en file",
    "running": "en cours",
    "done": "terminée(s)",
    "failed": "en échec",
}


@cli.command(
    help="Tâches périodiques intégrées : quand chacune tourne, sa dernière échéance et ses tâches, la prochaine."
)
def schedule() -> None:
    from socle.dates import PARIS
    from socle.db import new_session
    from socle.schedule import states

    def shown(moment: Any) -> str:
        return f"{moment.astimezone(PARIS):%d/%m/%Y %H:%M}"

    with new_session() as session:
        found = states(session)
    for number, state in enumerate(found):
        task, setting = state.task, f"SOCLE_{state.task.setting.upper()}"
        if number:
            click.echo()
        # An action (the kernel's housekeeping) is run by a worker of any service, and removes rows, no jobs.
        kernel = task.action is not None
        click.echo(f"{task.name} — {task.title} ({'noyau' if kernel else f'service {task.service}'})")
        click.echo(f"  quand : {state.rule.describe()} — {setting}={getattr(get_settings(), task.setting)}")
        if state.last is None:
            click.echo("  dernière échéance : aucune")
        else:
            jobs = ", ".join(
                f"{count} {_JOB_STATES.get(status, status)}" for status, count in sorted(state.last_jobs.items())
            )
            done = (
                f"faite le {shown(state.last.enqueued_at)} : {state.last.jobs} ligne(s) supprimée(s)"
                if kernel
                else f"mise en file le {shown(state.last.enqueued_at)} : {state.last.jobs} tâche(s)"
                + (f" ({jobs})" if jobs else "")
            )
            click.echo(f"  dernière échéance : {shown(state.last.due_at)}, {done}")
        if state.waiting is not None:
            click.echo(
                f"  en attente : l'échéance du {shown(state.waiting)} sera faite au prochain passage d'un worker, "
                "quel que soit son service (socle worker, ou socle serve en mode embarqué)"
                if kernel
                else f"  en attente : l'échéance du {shown(state.waiting)} sera mise en file au prochain passage "
                f"d'un worker du service {task.service} (socle worker {task.service}, ou socle serve en mode "
                "embarqué)"
            )
        click.echo(f"  prochaine : {shown(state.following) if state.following else '—'}")
        click.echo(f"  à la main : {task.by_hand}")


@cli.command(
    help="Nettoyer le noyau tout de suite. Supprime les tâches de fond terminées depuis SOCLE_JOBS_KEPT_DAYS jours "
    "(sauf celles à clé métier), les sessions expirées de l'interface et les anciennes tentatives de connexion ; "
    "les workers le font aussi d'eux-mêmes (SOCLE_SCHEDULE_HOUSEKEEPING)."
)
def housekeeping() -> None:
    from socle.db import transaction
    from socle.schedule import housekeeping as clean

    with transaction() as session:
        cleaned = clean(session)
    days = get_settings().jobs_kept_days
    click.echo(f"Tâches de fond terminées depuis plus de {days} jours : {cleaned.jobs} supprimée(s)")
    click.echo(f"Sessions de l'interface expirées ou inactives : {cleaned.sessions} supprimée(s)")
    click.echo(f"Tentatives de connexion anciennes : {cleaned.attempts} supprimée(s)")


@cli.group(cls=_Group, help="Journal d'audit.")
def audit() -> None:
    pass


@audit.command("verify", help="Vérifier la chaîne d'empreintes du journal (toutes les collectivités par défaut).")
@click.option("--tenant", help="Identifiant d'une collectivité")
def audit_verify(tenant: str | None) -> None:
    from sqlalchemy import select

    from socle import audit as audit_log
    from socle.auth import get_tenant
    from socle.db import new_session
    from socle.models import Tenant

    broken = 0
    with new_session() as session:
        tenants = [get_tenant(session, tenant)] if tenant else list(session.execute(select(Tenant)).scalars())
        for row in tenants:
            result = audit_log.verify(session, row.id)
            state = "intact" if result.intact else "ALTÉRÉ"
            click.echo(f"{row.slug}: {result.entries} entrée{'s' if result.entries > 1 else ''}, {state}")
            for problem in result.problems:
                click.echo(f"  - {problem}")
            broken += not result.intact
    if broken:
        sys.exit(1)


@cli.group(cls=_Group, help="Collectivités, utilisateurs et jetons d'accès.")
def tenant() -> None:
    pass


@tenant.command("create", help="Créer une collectivité.")
@click.argument("slug", metavar="COLLECTIVITÉ")
@click.argument("name", metavar="NOM")
@click.option("--siren", help="SIREN (9 chiffres)")
def tenant_create(slug: str, name: str, siren: str | None) -> None:
    from socle.auth import create_tenant
    from socle.db import transaction

    with transaction() as session:
        create_tenant(session, slug, name, siren)
    click.echo(f"Collectivité « {name} » créée ({slug}).")


@tenant.command("add-user", help="Ajouter un utilisateur (rôles : agent, secretariat, archiviste, admin).")
@click.argument("slug", metavar="COLLECTIVITÉ")
@click.argument("username", metavar="IDENTIFIANT")
@click.option("--name", "display_name", required=True, help="Nom affiché")
@click.option("--role", "roles", multiple=True, required=True, help="Rôle (répétable)")
@click.option("--email")
def tenant_add_user(slug: str, username: str, display_name: str, roles: tuple[str, ...], email: str | None) -> None:
    from socle.auth import create_user, get_tenant
    from socle.db import transaction

    with transaction() as session:
        create_user(session, get_tenant(session, slug), username, display_name, list(roles), email)
    click.echo(f"Utilisateur {username} créé.")


@tenant.command("token", help="Émettre un jeton d'accès à l'API (affiché une seule fois).")
@click.argument("slug", metavar="COLLECTIVITÉ")
@click.argument("username", metavar="IDENTIFIANT")
@click.option("--label", default="", help="À quoi sert ce jeton")
def tenant_token(slug: str, username: str, label: str) -> None:
    from socle.auth import get_tenant, get_user, issue_token
    from socle.db import transaction

    with transaction() as session:
        token = issue_token(session, get_user(session, get_tenant(session, slug), username), label)
    click.echo(token)


@tenant.command("revoke", help="Révoquer tous les jetons d'accès d'un utilisateur.")
@click.argument("slug", metavar="COLLECTIVITÉ")
@click.argument("username", metavar="IDENTIFIANT")
def tenant_revoke(slug: str, username: str) -> None:
    from socle.auth import get_tenant, get_user, revoke_tokens
    from socle.db import transaction

    with transaction() as session:
        count = revoke_tokens(session, get_user(session, get_tenant(session, slug), username))
    click.echo(f"{count} jeton(s) révoqué(s) pour {username}.")


@tenant.command("password", help="Définir le mot de passe de connexion à l'interface web d'un utilisateur.")
@click.argument("slug", metavar="COLLECTIVITÉ")
@click.argument("username", metavar="IDENTIFIANT")
@click.option(
    "--password-env",
    default="USER_PASSWORD",
    show_default=True,
    metavar="VARIABLE",
    help="Variable d'environnement qui porte le mot de passe (jamais en argument : il resterait dans "
    "l'historique et la liste des processus) ; sans elle, il est demandé deux fois. 12 caractères au moins.",
)
def tenant_password(slug: str, username: str, password_env: str) -> None:
    from socle.auth import get_tenant, get_user, set_password
    from socle.db import transaction

    password = os.environ.get(password_env)
    if password is None:
        password = click.prompt("Nouveau mot de passe", hide_input=True, confirmation_prompt="Le même, encore une fois")

    with transaction() as session:
        set_password(session, get_user(session, get_tenant(session, slug), username), password)
    click.echo(f"Mot de passe de {username} enregistré ; ses sessions ouvertes sont fermées.")


@cli.group(cls=_Group, help="Interface web : catalogues de traduction.")
def ui() -> None:
    pass


_CATALOGUES = ("socle.ui", "parapheur", "ged", "archive", "interop")


@ui.command("catalogues", help="Mettre à jour les catalogues anglais (messages français extraits des pages).")
@click.argument("packages", metavar="SERVICES…", nargs=-1, type=click.Choice(_CATALOGUES))
def ui_catalogues(packages: tuple[str, ...]) -> None:
    from socle.ui.catalogues import update

    for package in packages or _CATALOGUES:
        untranslated = update(package)
        click.echo(f"{package:10} {untranslated} message(s) à traduire")


@cli.command(help="Afficher les réglages en vigueur (secrets masqués).")
def settings() -> None:
    current = get_settings()
    for name, value in current.model_dump().items():
        shown = "********" if value and ("secret" in name or "key" in name) else _hide_password(value)
        click.echo(f"SOCLE_{name.upper():22} {shown}")
    click.echo(f"{'(base de données)':28} {current.effective_database_url.split('@')[-1]}")


def _hide_password(value: Any) -> Any:
    """``scheme://user:password@host`` → ``scheme://user:********@host`` (database and Redis URLs)."""
    if not isinstance(value, str) or "://" not in value:
        return value
    scheme, _, rest = value.partition("://")
    userinfo, at, address = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return value
    return f"{scheme}://{userinfo.split(':', 1)[0]}:********@{address}"


@cli.command(help="Démonstration de bout en bout : GED → parapheur → GED → archives → dépôt.")
@click.option("--output", type=click.Path(file_okay=False), default=None, help="Dossier des fichiers produits")
def demo(output: str | None) -> None:
    from socle.demo import run_demo

    _logging(logging.WARNING)
    run_demo(output)


def main() -> None:
    from socle.cli_messages import speak_french

    speak_french()  # click's usage errors and help in French, before anything is parsed
    cli(prog_name="socle")
