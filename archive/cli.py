"""``socle archive …``: the official SEDA schemas, building a package from a folder, checking a package."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from archive import xsd_install
from socle.settings import get_settings

if TYPE_CHECKING:
    from archive.inspection import ReadPackage

# Domain modules (lxml, xmlschema, siegfried) are imported inside the commands: every `socle …` command
# loads this group.


# Options shared by `build` and `verify`: the checks an SAE would make.
# (build says itself that a profile is missing, with its other refusals; verify lets click say it)
_profile_help = "Profil d'archivage RelaxNG (SHERPA, PASTIS) que le bordereau doit respecter"
_algorithm_option = click.option(
    "--algorithm",
    "algorithms",
    multiple=True,
    default=("SHA-512",),
    show_default=True,
    help="Algorithme d'empreinte accepté par le SAE (option répétable)",
)


@click.group(name="archive", help="Archives : schémas SEDA, construction, vérification et inspection de paquets.")
def group() -> None:
    pass


@group.group(name="schemas", help="Schémas XSD officiels du SEDA.")
def schemas_group() -> None:
    pass


def _default_folder() -> Path:
    settings = get_settings()
    return settings.seda_schemas or settings.data_dir / "seda"


@schemas_group.command("install", help="Télécharger les schémas depuis leur source publique (empreintes vérifiées).")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), help="Dossier (défaut : SOCLE_SEDA_SCHEMAS)")
@click.option("--base-url", default=xsd_install.DEFAULT_BASE_URL, show_default=True, help="Source (miroir)")
def schemas_install(dest: Path | None, base_url: str) -> None:
    folder = dest or _default_folder()
    try:
        written = xsd_install.install_schemas(folder, base_url=base_url)
    except xsd_install.SchemaInstallError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(written)} fichier(s) installé(s) dans {folder} ; définissez SOCLE_SEDA_SCHEMAS={folder}")


@schemas_group.command("check", help="Vérifier qu'un dossier contient les schémas officiels intacts.")
@click.argument("folder", metavar="DOSSIER", required=False, type=click.Path(file_okay=False, path_type=Path))
def schemas_check(folder: Path | None) -> None:
    problems = xsd_install.check_schemas(folder or _default_folder())
    for problem in problems:
        click.echo(f"- {problem}")
    if problems:
        sys.exit(1)
    click.echo("Schémas complets et intacts.")


@group.command(
    "verify", help="Vérifier un paquet SEDA : empreintes, tailles, schéma si configuré, profil, contrôles métier."
)
@click.argument("sip", metavar="PAQUET", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--version", "seda_version", help="Version SEDA du schéma (défaut : celle du manifeste)")
@click.option(
    "--profile", "profile_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help=_profile_help
)
@_algorithm_option
def verify(sip: Path, seda_version: str | None, profile_path: Path | None, algorithms: tuple[str, ...]) -> None:
    from lxml import etree

    from archive import checks, inspection, packaging, profiles

    # An outside package: read with inspect's guards (limits, no DTD, no ../, no encrypted entry).
    checked = packaging.check_sip(sip, inspection.InspectionLimits())
    if checked.package is None:
        _refuse("Paquet refusé :", checked.problems)
    package = checked.package
    problems = checked.problems + _schema_problems(package, seda_version)
    validated = get_settings().seda_schemas is not None
    tree = etree.ElementTree(package.root)
    if profile_path is not None:
        try:
            profile = profiles.compile_profile(profile_path.read_bytes())
        except profiles.ProfileError as exc:
            raise click.ClickException(str(exc)) from None
        problems += [issue.message for issue in profiles.validate_against_profile(tree, profile, profile_path.name)]
    rules = checks.BusinessRules(frozenset(algorithms), None)
    problems += [issue.message for issue in checks.check_manifest(tree, rules, file_count=len(package.files))]
    for problem in problems:
        click.echo(f"- {problem}")
    # Said, not counted: the package is what its producer could give; the SAE's referential decides.
    for warning in checks.warnings(tree, rules):
        click.echo(f"avertissement : {warning.message}")
    if problems:
        sys.exit(1)
    # Never "conforme" without the schema: only what was checked is said.
    checked_profile = "profil, " if profile_path is not None else ""
    click.echo(
        f"Paquet conforme au schéma, {checked_profile}contrôles métier passés, empreintes et tailles exactes."
        if validated
        else f"{checked_profile.capitalize()}Contrôles métier passés, empreintes et tailles exactes."
    )


def _schema_problems(package: ReadPackage, seda_version: str | None) -> list[str]:
    """The XSD's findings for the version asked, or else the manifest's own (its namespace), said first."""
    from archive import validation

    version = seda_version or package.version or "?"
    if seda_version is None:
        click.echo(f"Version SEDA {version}, lue dans l'espace de noms du manifeste.")
    elif package.version != seda_version:
        click.echo(f"avertissement : le manifeste est en SEDA {package.version}, validé ici en {seda_version}.")
    folder = get_settings().seda_schemas
    if folder is None:
        click.echo(
            "Validation XSD non faite : SOCLE_SEDA_SCHEMAS n'est pas défini "
            "(installez les schémas avec « socle archive schemas install »)."
        )
        return []
    try:
        report = validation.validate_manifest(package.manifest, folder, version)
    except validation.SchemaUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    # Each message already starts with its line and element path.
    return [issue.message for issue in report.issues]


# --- build ---------------------------------------------------------------------------------------------


def _refuse(title: str, problems: list[str]) -> NoReturn:
    click.echo(title, err=True)
    for problem in problems:
        click.echo(f"- {problem}", err=True)
    sys.exit(1)


_REQUIRED_IDENTIFIERS = ("--archival-agency", "--transferring-agency")


def _check_build_arguments(
    folder: Path,
    csv_path: Path | None,
    seda_version: str,
    identifiers: dict[str, str | None],
    output: Path,
    profile_path: Path | None,
    *,
    overwrite: bool,
) -> dict[str, str | None]:
    """Refuse, in French and before reading anything, what cannot make a package; return the identifiers
    (``identifiers``: option → value; the two agencies required) as the manifest writes them."""
    from archive import seda
    from archive.schemas import sae_token

    problems = []
    if not folder.is_dir():
        problems.append(f"« {folder} » n'est pas un dossier.")
    if csv_path is not None and not csv_path.is_file():
        problems.append(f"Le CSV « {csv_path} » n'existe pas.")
    if profile_path is not None and not profile_path.is_file():
        problems.append(f"Le profil « {profile_path} » n'existe pas.")
    if seda_version not in seda.NAMESPACES:
        problems.append(f"Version SEDA inconnue : {seda_version} (disponibles : {', '.join(sorted(seda.NAMESPACES))}).")
    tokens: dict[str, str | None] = {}
    for option, value in identifiers.items():
        tokens[option] = None
        if not value and option in _REQUIRED_IDENTIFIERS:
            problems.append(f"Indiquez l'identifiant du service : {option} ID.")
        elif value is not None:
            try:
                tokens[option] = sae_token(value)
            except ValueError as exc:
                problems.append(f"{option} : {exc}.")
    problems += _output_problems(folder, output, [csv_path, profile_path], overwrite=overwrite)
    if problems:
        _refuse("Versement refusé :", problems)
    return tokens


def _output_problems(folder: Path, output: Path, inputs: list[Path | None], *, overwrite: bool) -> list[str]:
    if not output.parent.is_dir():
        return [f"Le dossier de destination « {output.parent} » n'existe pas."]
    # A package written inside the folder it describes would be versed by the next run.
    if folder.is_dir() and output.resolve().is_relative_to(folder.resolve()):
        return [f"Le paquet « {output} » ne peut pas être écrit dans le dossier versé."]
    if any(path is not None and path.exists() and path.resolve() == output.resolve() for path in inputs):
        return [f"Le paquet « {output} » remplacerait le CSV ou le profil donné : choisissez un autre nom."]
    if output.exists() and not overwrite:
        return [f"Le fichier « {output} » existe déjà : choisissez un autre nom, ou ajoutez --overwrite."]
    return []


@contextlib.contextmanager
def _stopping_cleanly() -> Iterator[None]:
    """Ctrl-C, SIGTERM (a service stopped, a job killed) and SIGHUP (the terminal closed) end the build through
    its cleanup: the temporary package and work folder are removed, a French line says so. The previous
    handlers come back after (the command may run inside another program, a test runner)."""

    def stop(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        click.echo(f"Construction interrompue ({name}) : aucun paquet écrit.", err=True)
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():  # only the main thread may set them
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, stop) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Invalid(Exception):
    def __init__(self, title: str, issues: list[str]) -> None:
        super().__init__("\n".join(issues))
        self.title, self.issues = title, issues


@dataclass(frozen=True)
class _Checks:
    """What the manifest must pass after the XSD, as `socle archive verify` checks it: a profile, the SAE's
    digest algorithms (the business checks)."""

    algorithms: frozenset[str]
    profile: Any = None  # lxml's RelaxNG, compiled once before the build reads any file
    profile_name: str | None = None


def _load_checks(profile_path: Path | None, algorithms: tuple[str, ...]) -> _Checks:
    if profile_path is None:
        return _Checks(frozenset(algorithms))
    from archive import profiles  # only then: it loads the database layer (profiles kept per tenant)

    try:
        profile = profiles.compile_profile(profile_path.read_bytes())
    except (profiles.ProfileError, OSError) as exc:
        _refuse("Versement refusé :", [str(exc)])
    return _Checks(frozenset(algorithms), profile, profile_path.name)


def _validation_lines(manifest: Path, seda_version: str, controls: _Checks) -> list[str]:
    """The validation lines to print. Raises _Invalid listing every problem of the manifest: XSD, profile and
    business checks, all run so that one build says everything (nothing is then written)."""
    from lxml import etree

    from archive import checks, validation

    lines, problems, failed = [], [], []
    folder = get_settings().seda_schemas
    if folder is None:
        lines.append("Validation XSD non faite : SOCLE_SEDA_SCHEMAS n'est pas défini (paquet non validé).")
    else:
        try:
            report = validation.validate_manifest(manifest, folder, seda_version)
        except validation.SchemaUnavailable as exc:
            lines.append(f"Validation XSD non faite (paquet non validé) : {exc}")
        else:
            if not report.valid:
                problems += [issue.message for issue in report.issues]
                failed.append("au schéma SEDA")
            lines.append(f"Manifeste conforme au schéma SEDA {seda_version} ({report.schema}).")
    if controls.profile is not None:  # RelaxNG needs the whole tree: memory grows with the manifest then
        from archive import profiles

        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
        tree = etree.parse(str(manifest), parser)  # written by this build: well formed
        found = profiles.validate_against_profile(tree, controls.profile, controls.profile_name or "")
        problems += [issue.message for issue in found]
        if found:
            failed.append(f"au profil « {controls.profile_name} »")
        lines.append(f"Profil « {controls.profile_name} » respecté.")
        del tree
    # Read in a stream, without the file count: the build writes exactly one zip entry per object it declares.
    found = checks.check_manifest_file(str(manifest), checks.BusinessRules(controls.algorithms, None))
    problems += [issue.message for issue in found]
    if found:
        failed.append("aux contrôles métier")
    lines.append("Contrôles métier passés.")
    if problems:
        said = failed[0] if len(failed) == 1 else ", ".join(failed[:-1]) + " ni " + failed[-1]
        raise _Invalid(f"Versement refusé, aucun paquet écrit : le manifeste n'est pas conforme {said}.", problems)
    return lines


@group.command(
    "build", help="Construire un paquet SEDA (SIP) depuis un dossier, avec un CSV de métadonnées facultatif."
)
@click.argument("folder", metavar="DOSSIER", type=click.Path(path_type=Path))
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="CSV de métadonnées au format de ReSIP")
@click.option("--version", "seda_version", default="2.2", show_default=True, help="Version du SEDA (2.1, 2.2, 2.3)")
@click.option("--archival-agency", help="Identifiant du service d'archives destinataire")
@click.option("--transferring-agency", help="Identifiant du service versant (aussi producteur)")
@click.option(
    "--archival-agreement", help="Identifiant du contrat d'entrée donné par le service d'archives (ArchivalAgreement)"
)
@click.option(
    "--archival-profile", help="Identifiant du profil d'archivage dans le système d'archivage (ArchivalProfile)"
)
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False, path_type=Path), help=_profile_help)
@_algorithm_option
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), help="Paquet à écrire (défaut : DOSSIER.zip)"
)
@click.option("--overwrite", is_flag=True, help="Remplacer le paquet s'il existe déjà")
def build(
    folder: Path,
    csv_path: Path | None,
    seda_version: str,
    archival_agency: str | None,
    transferring_agency: str | None,
    archival_agreement: str | None,
    archival_profile: str | None,
    profile_path: Path | None,
    algorithms: tuple[str, ...],
    output: Path | None,
    overwrite: bool,
) -> None:
    from archive import identification, packaging, seda, sources

    destination = output or folder.resolve().parent / f"{folder.resolve().name}.zip"
    agencies = {"--archival-agency": archival_agency, "--transferring-agency": transferring_agency}
    identifiers = {"--archival-agreement": archival_agreement, "--archival-profile": archival_profile}
    tokens = _check_build_arguments(
        folder, csv_path, seda_version, agencies | identifiers, destination, profile_path, overwrite=overwrite
    )
    archival_agency, transferring_agency = tokens["--archival-agency"], tokens["--transferring-agency"]
    assert archival_agency and transferring_agency
    controls = _load_checks(profile_path, algorithms)
    validation_lines: list[str] = []

    def check(manifest: Path) -> None:
        validation_lines.extend(_validation_lines(manifest, seda_version, controls))

    # One read of each file: digests, format and zip entry at once (packaging.build_sip).
    try:
        spec, plan = sources.folder_transfer(
            folder, archival_agency=archival_agency, transferring_agency=transferring_agency, csv_path=csv_path
        )
        spec = replace(
            spec,
            archival_agreement=tokens["--archival-agreement"],
            archival_profile=tokens["--archival-profile"],
        )
        with _stopping_cleanly():
            built = packaging.build_sip(spec, plan, destination, version=seda_version, check_manifest=check)
    except sources.SourceError as exc:
        _refuse("Versement refusé :", exc.problems)
    except packaging.BuildRefused as exc:
        _refuse("Versement refusé :", exc.problems)
    except _Invalid as exc:
        _refuse(exc.title, exc.issues)
    except seda.SedaError as exc:
        _refuse("Versement refusé :", [str(exc)])
    except (identification.IdentificationError, OSError) as exc:
        _refuse("Paquet non écrit :", [str(exc)])
    for line in validation_lines:
        click.echo(line)
    click.echo(
        f"Paquet écrit : {destination} (SEDA {seda_version}, {built.units} unité(s), "
        f"{built.files} fichier(s), {built.size} octets)."
    )


# --- inspect -------------------------------------------------------------------------------------------


@group.command("inspect", help="Inspecter un paquet SEDA 2.x : arborescence, empreintes et tailles recalculées.")
@click.argument("sip", metavar="PAQUET", type=click.Path(path_type=Path))
def inspect(sip: Path) -> None:
    from archive import inspection

    if not sip.is_file():
        _refuse("Inspection impossible :", [f"« {sip} » n'est pas un fichier."])
    report = inspection.inspect_sip(sip)
    for line in inspection.render_text(report):
        click.echo(line)
    if not report.ok:
        sys.exit(1)
