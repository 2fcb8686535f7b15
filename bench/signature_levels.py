"""Benchmark: latency of one PAdES signature per level (B-B, B-T, B-LT, B-LTA), and of an upgrade.

The timestamp authority, OCSP and CRL responders are the test PKI's (certomancer's Animator served on
127.0.0.1 in this process, see tests/testpki.py): the figures are socle's and pyHanko's own cost plus a local
HTTP round trip per request, not an Internet responder's delay. Each signature signs the same 1-page PDF into
a new file with the PKI's "signer" certificate (RSA-2048, chain of three); the last output of each row is
checked with ``validation_report`` (level reached) and poppler's ``pdfsig``; the run fails otherwise.

    .venv/bin/python bench/signature_levels.py --count 50
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pikepdf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test PKI lives with the tests (certomancer is a dev dependency)

from testpki import PKCS12_PASSPHRASE, TestPki, running_pki  # noqa: E402

from parapheur.pades import (  # noqa: E402
    LEVELS,
    SignatureLevel,
    SignatureRequest,
    SigningIdentity,
    TrustServices,
    sign_pdf,
    upgrade_pdf,
    validation_report,
)

WARM_UP = 2
PDFSIG_VALID = "Signature is Valid"
UPGRADES: tuple[tuple[SignatureLevel, SignatureLevel], ...] = (("B-B", "B-T"), ("B-B", "B-LT"), ("B-T", "B-LTA"))


@dataclass(frozen=True)
class Row:
    label: str
    level: SignatureLevel
    timings_ms: list[float]
    checked: Path

    @property
    def median(self) -> float:
        return statistics.median(self.timings_ms)

    @property
    def p95(self) -> float:
        ordered = sorted(self.timings_ms)
        return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def make_source(folder: Path) -> Path:
    pdf = pikepdf.new()
    pdf.add_blank_page(page_size=(595, 842))
    pdf.docinfo["/Title"] = "Délibération de test"
    path = folder / "acte.pdf"
    pdf.save(path)
    return path


def timed(count: int, action: Callable[[int], Path]) -> tuple[list[float], Path]:
    """Run ``action`` WARM_UP + count times; the milliseconds of the counted runs and the last output."""
    timings: list[float] = []
    output = Path()
    for index in range(WARM_UP + count):
        start = time.perf_counter()
        output = action(index)
        elapsed = (time.perf_counter() - start) * 1000
        if index >= WARM_UP:
            timings.append(elapsed)
    return timings, output


def signing_row(
    level: SignatureLevel, count: int, source: Path, signer: SigningIdentity, services: TrustServices
) -> Row:
    def sign(index: int) -> Path:
        destination = source.with_name(f"{level}-{index}.pdf")
        request = SignatureRequest("Camille Martin", "Délibération n° 12", location="Mairie", level=level)
        sign_pdf(source, destination, signer, request, services)
        return destination

    timings, last = timed(count, sign)
    return Row(f"signature {level}", level, timings, last)


def upgrade_row(
    start: SignatureLevel,
    target: SignatureLevel,
    count: int,
    source: Path,
    signer: SigningIdentity,
    services: TrustServices,
) -> Row:
    # Signed beforehand, outside the timing: only the upgrade is measured.
    signed = source.with_name(f"a-completer-{start}.pdf")
    sign_pdf(source, signed, signer, SignatureRequest("Camille Martin", "Délibération n° 12", level=start), services)

    def upgrade(index: int) -> Path:
        destination = source.with_name(f"{start}-{target}-{index}.pdf")
        reached = upgrade_pdf(signed, destination, target, services)
        assert reached == target, reached
        return destination

    timings, last = timed(count, upgrade)
    return Row(f"mise à niveau {start} → {target}", target, timings, last)


def check(row: Row, pki: TestPki) -> list[str]:
    """Problems with the row's last output: level not reached, or pdfsig not satisfied."""
    problems = []
    levels = [report.level for report in validation_report(row.checked, [pki.root_der])]
    if levels != [row.level]:
        problems.append(f"{row.label} : niveau constaté {levels}, attendu {row.level}")
    report = subprocess.run(["pdfsig", str(row.checked)], capture_output=True, text=True, check=False).stdout
    if PDFSIG_VALID not in report.split("Signature #2")[0]:
        problems.append(f"{row.label} : pdfsig ne dit pas la signature valide")
    return problems


def machine() -> str:
    return (
        f"{platform.node()} — {platform.processor() or platform.machine()}, {os.cpu_count()} cœurs, "
        f"Python {platform.python_version()}, pyHanko {version('pyhanko')}, certomancer {version('certomancer')}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="signatures mesurées par niveau (50 par défaut)")
    parser.add_argument("--upgrade-count", type=int, default=20, help="mises à niveau mesurées (20 par défaut)")
    args = parser.parse_args()
    # The offline check of a B-B or B-T output expectedly fails its strict pass: pyHanko logs it loudly.
    logging.getLogger("pyhanko").setLevel(logging.CRITICAL)

    print("Commande :", shlex.join([".venv/bin/python", "bench/signature_levels.py", *sys.argv[1:]]))
    print("Machine :", machine())
    with tempfile.TemporaryDirectory(prefix="socle-bench-") as folder, running_pki() as pki:
        source = make_source(Path(folder))
        signer = SigningIdentity.from_pkcs12(pki.pkcs12("signer"), PKCS12_PASSPHRASE)
        services = TrustServices(tsa_url=pki.tsa_url, trust_roots=(pki.root_der,))
        rows = [signing_row(level, args.count, source, signer, services) for level in LEVELS]
        rows += [upgrade_row(*pair, args.upgrade_count, source, signer, services) for pair in UPGRADES]
        problems = [problem for row in rows for problem in check(row, pki)]

    print()
    print("| Opération | Mesures | Médiane (ms) | p95 (ms) | Min (ms) | Max (ms) |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        figures = (row.median, row.p95, min(row.timings_ms), max(row.timings_ms))
        cells = " | ".join(f"{value:.0f}" for value in figures)
        print(f"| {row.label} | {len(row.timings_ms)} | {cells} |")
    for problem in problems:
        print("ÉCHEC :", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
