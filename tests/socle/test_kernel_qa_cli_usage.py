"""The real ``socle`` command refuses a mistyped command line in French: click's own refusals (missing argument,
not a number, out of range, unknown command or option, a file where a folder is expected…) and its help, with
exit status 2 and no English sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import socle_command


def assert_french_usage_error(args: list[str], expected: str) -> None:
    run = socle_command(*args)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "Error:" not in run.stderr and "Usage:" not in run.stderr and "for help" not in run.stderr
    assert "Utilisation : socle" in run.stderr
    assert "Erreur : " in run.stderr
    assert expected in run.stderr, run.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["tenant", "create"], "Argument manquant 'COLLECTIVITÉ'."),
        (["ged", "import", "--user", "agent", "."], "Option manquante '--tenant'."),
        (["ged", "reindex", "--batch-size", "beaucoup"], "« beaucoup » n'est pas un nombre valide."),
        (["ged", "reindex", "--batch-size", "0"], "0 n'est pas dans l'intervalle 1<=x<=10000."),
        (["ged", "watch", "--tenant", "t", "--user", "u", "--interval", "-1", "."], "n'est pas dans l'intervalle"),
        (["nimportequoi"], "Commande inconnue : nimportequoi."),
        (["ged", "purge", "--tennant", "t"], "Option inconnue : --tennant. Vouliez-vous dire '--tenant' ?"),
        (["serve", "partout"], "« partout » n'est pas parmi 'parapheur', 'ged', 'archive', 'interop'."),
        (["jobs", "show", "a", "b"], "Argument en trop : b"),
        (["interop", "simulate", "vitam", "--pending-checks", "-1"], "-1 n'est pas dans l'intervalle 0<=x<=1000."),
        (["ui", "catalogues", "inconnu"], "« inconnu » n'est pas parmi 'socle.ui'"),
    ],
)
def test_a_mistyped_command_line_is_refused_in_french(args: list[str], expected: str) -> None:
    assert_french_usage_error(args, expected)


def test_paths_of_the_wrong_kind_are_refused_in_french(tmp_path: Path) -> None:
    a_file = tmp_path / "note.txt"
    a_file.write_text("texte\n")
    assert_french_usage_error(
        ["ged", "import", "--tenant", "t", "--user", "u", str(a_file)],
        f"Valeur invalide pour 'DOSSIER' : « {a_file} » est un fichier, pas un dossier.",
    )
    assert_french_usage_error(["archive", "verify", str(tmp_path)], f"« {tmp_path} » est un dossier, pas un fichier.")
    assert_french_usage_error(["archive", "verify", str(tmp_path / "absent.zip")], "absent.zip » n'existe pas.")
    assert_french_usage_error(["parapheur", "verify", str(tmp_path / "absent.pdf")], "absent.pdf » n'existe pas.")


def test_help_is_in_french() -> None:
    run = socle_command("ged", "--help")
    assert run.returncode == 0
    assert run.stdout.startswith("Utilisation : socle ged [OPTIONS] COMMANDE [ARGUMENTS]...")
    assert "Afficher cette aide et quitter." in run.stdout and "Commandes :" in run.stdout and "Options :" in run.stdout
    assert "Show this message" not in run.stdout
    options = socle_command("archive", "build", "--help").stdout
    assert "--version TEXTE" in options and " TEXT " not in options, options
    assert options.startswith("Utilisation : socle archive build [OPTIONS] DOSSIER"), options


def test_a_reader_that_goes_away_gets_no_error(tmp_path: Path) -> None:
    """`socle settings | head -1`: the reader closes the pipe before the command writes; no error is told."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    process = subprocess.Popen(
        [sys.executable, "-m", "socle", "settings"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
        cwd=ROOT,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # long before the command has started: its first write finds no reader
    error = process.stderr.read().decode()
    process.wait(timeout=60)
    assert error == "", error
    assert process.returncode == 1
