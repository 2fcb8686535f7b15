"""French wording of click's own messages, for the ``socle`` command.

click writes its refusals in English (« Error: Missing option '--tenant'. », « 'abc' is not a valid integer. »,
« Aborted! ») through ``gettext``, with no French catalogue. Every other message of the command is French: the
``socle`` command (:func:`socle.cli.main`) puts these functions in place of click's ``gettext`` and ``ngettext``
before it parses anything. A message not listed keeps click's text, so a new version of click never loses one;
``tests/socle/test_kernel_qa_cli_usage.py`` runs the real command to check that the usual ones are French.

The templates receive click's own fields (``{value}``, ``{filename}``, ``{param_hint}``…); a field the French
sentence does not need is simply not written (``str.format`` ignores it). Since 2026-12.
"""

from __future__ import annotations

import importlib

_NOT_A_NUMBER = "« {value} » n'est pas un nombre valide."

_FRENCH = {
    # Help and usage
    "Usage:": "Utilisation :",
    # Section headings: click writes « {heading}: »; French puts a space before the colon.
    "Options": "Options ",
    "Positional arguments": "Arguments ",
    "Commands": "Commandes ",
    "Show this message and exit.": "Afficher cette aide et quitter.",
    "Show the version and exit.": "Afficher la version et quitter.",
    "env var: {var}": "variable d'environnement : {var}",
    "default: {default}": "défaut : {default}",
    "(dynamic)": "(calculé)",
    "deprecated": "obsolète",
    "required": "obligatoire",
    "Try '{command} {option}' for help.": "Aide : « {command} {option} ».",
    # Refusals
    "Error: {message}": "Erreur : {message}",
    "Aborted!": "Interrompu : rien de plus n'a été fait.",
    "Missing command.": "Commande manquante.",
    "Missing argument": "Argument manquant",
    "Missing option": "Option manquante",
    "Missing parameter": "Paramètre manquant",
    "Missing {param_type}": "Valeur manquante",
    "Missing parameter: {param_name}": "Paramètre manquant : {param_name}",
    "No such option {name!r}.": "Option inconnue : {name}.",
    "No such command {name!r}.": "Commande inconnue : {name}.",
    "Option {name!r} does not take a value.": "L'option {name} ne prend pas de valeur.",
    "Argument {name!r} takes {nargs} values.": "L'argument {name} prend {nargs} valeurs.",
    "Invalid value for {param_hint}: {message}": "Valeur invalide pour {param_hint} : {message}",
    "Invalid value: {message}": "Valeur invalide : {message}",
    "Value must be an iterable.": "Plusieurs valeurs attendues.",
    "unknown error": "erreur inconnue",
    "Could not open file {filename!r}: {message}": "Impossible d'ouvrir le fichier « {filename} » : {message}",
    "DeprecationWarning: The command {name!r} is deprecated.{extra_message}": (
        "Avertissement : la commande « {name} » est obsolète.{extra_message}"
    ),
    "DeprecationWarning: The {param_type} {name!r} is deprecated.{extra_message}": (
        "Avertissement : « {name} » est obsolète.{extra_message}"
    ),
    # Values (click.types)
    "Choose from:\n\t{choices}": "Choisir parmi :\n\t{choices}",
    "{value!r} is not a valid {number_type}.": _NOT_A_NUMBER,
    "{value} is not in the range {range}.": "{value} n'est pas dans l'intervalle {range}.",
    "{value!r} is not a valid boolean. Recognized values: {states}": (
        "« {value} » n'est pas un booléen ; valeurs reconnues : {states}"
    ),
    "{value!r} is not a valid UUID.": "« {value} » n'est pas un identifiant UUID valide.",
    "{name} {filename!r} does not exist.": "« {filename} » n'existe pas.",
    # Raised only where a folder is expected, and the other way round.
    "{name} {filename!r} is a file.": "« {filename} » est un fichier, pas un dossier.",
    "{name} {filename!r} is a directory.": "« {filename} » est un dossier, pas un fichier.",
    "{name} {filename!r} is not readable.": "« {filename} » n'est pas lisible (droits d'accès).",
    "{name} {filename!r} is not writable.": "« {filename} » n'est pas modifiable (droits d'accès).",
    "{name} {filename!r} is not executable.": "« {filename} » n'est pas exécutable.",
    "file": "fichier",
    "directory": "dossier",
    "path": "chemin",
    # Prompts (click.termui)
    "Repeat for confirmation": "Confirmez",
    "Error: The two entered values do not match.": "Erreur : les deux saisies diffèrent.",
    "Error: invalid input": "Erreur : saisie invalide",
    "Do you want to continue?": "Continuer ?",
    "Confirm the action without prompting.": "Confirmer sans poser la question.",
}

# singular → (French singular, French plural); French takes the singular for 0 and 1.
_FRENCH_PLURALS = {
    "Got unexpected extra argument ({args})": ("Argument en trop : {args}", "Arguments en trop : {args}"),
    "Takes {nargs} values but 1 was given.": (
        "{nargs} valeurs attendues, 1 donnée.",
        "{nargs} valeurs attendues, {len} données.",
    ),
    "Did you mean {possibility}?": ("Vouliez-vous dire {possibility} ?", "(Vouliez-vous dire : {possibilities} ?)"),
    "{value!r} is not {choice}.": ("« {value} » n'est pas {choice}.", "« {value} » n'est pas parmi {choices}."),
    "{value!r} does not match the format {format}.": (
        "« {value} » n'a pas la forme {format}.",
        "« {value} » n'a aucune des formes {formats}.",
    ),
    "{len_type} values are required, but {len_value} was given.": (
        "{len_type} valeurs attendues, {len_value} donnée.",
        "{len_type} valeurs attendues, {len_value} données.",
    ),
    "Option {name!r} requires an argument.": (
        "L'option {name} demande une valeur.",
        "L'option {name} demande {nargs} valeurs.",
    ),
}

# The names of click's value types, shown upper-cased as the default placeholder of an option's value in the
# help (« --version TEXT »): not messages, so not gettext's.
_TYPE_NAMES = {
    "StringParamType": "texte",
    "IntParamType": "entier",
    "IntRange": "entier",
    "FloatParamType": "nombre",
    "FloatRange": "nombre",
    "BoolParamType": "booléen",
}

# The modules of click that call gettext: each holds its own reference (``from gettext import gettext as _``).
_CLICK_MODULES = (
    "click.core",
    "click.decorators",
    "click.exceptions",
    "click.formatting",
    "click.parser",
    "click.termui",
    "click.types",
    "click.utils",
)


def french(message: str) -> str:
    """click's ``gettext``: the French text of one of its messages, or the message itself."""
    return _FRENCH.get(message, message)


def french_plural(singular: str, plural: str, count: int) -> str:
    """click's ``ngettext``."""
    forms = _FRENCH_PLURALS.get(singular)
    if forms is None:
        return singular if count == 1 else plural
    return forms[0] if count <= 1 else forms[1]


def speak_french() -> None:
    """Make click say its messages in French, in this process (the ``socle`` command calls it first)."""
    for name in _CLICK_MODULES:
        module = importlib.import_module(name)
        if hasattr(module, "_"):
            module._ = french  # type: ignore[attr-defined]
        if hasattr(module, "ngettext"):
            module.ngettext = french_plural  # type: ignore[attr-defined]
    types = importlib.import_module("click.types")
    for type_name, name in _TYPE_NAMES.items():
        getattr(types, type_name).name = name
    _french_group_usage()


def _french_group_usage() -> None:
    """« Utilisation : socle ged [OPTIONS] COMMANDE [ARGUMENTS]... »: a group's placeholder is not a message."""
    import click

    if getattr(click.Group.collect_usage_pieces, "_socle_french", False):
        return
    english = click.Group.collect_usage_pieces

    def collect_usage_pieces(self: click.Group, ctx: click.Context) -> list[str]:
        return [_GROUP_USAGE.get(piece, piece) for piece in english(self, ctx)]

    collect_usage_pieces._socle_french = True  # type: ignore[attr-defined]
    click.Group.collect_usage_pieces = collect_usage_pieces  # type: ignore[method-assign]


_GROUP_USAGE = {"COMMAND [ARGS]...": "COMMANDE [ARGUMENTS]..."}
