"""Benchmark: bulk PAdES B-B signing, socle's ``sign_many`` against pyHanko's default path.

In one run, on the same generated 1-page PDFs and the same PKCS#12 key:

* reference: ``SimpleSigner.load_pkcs12`` once, then ``signers.sign_pdf`` per file, as pyHanko documents it;
* socle: ``parapheur.bulk.sign_many`` with its default number of workers.

Every socle output is then checked with poppler's ``pdfsig``; the run fails if any is not valid.

    .venv/bin/python bench/bulk_signing.py --count 1000
    .venv/bin/python bench/bulk_signing.py --count 100,1000,10000
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import pikepdf
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers

from parapheur.bulk import sign_many
from parapheur.pades import SignatureRequest, SigningIdentity, make_self_signed_identity, sign_pdf

PASSPHRASE = b"bench-passphrase"
PDFSIG_VALID = "Signature is Valid"
RSS_SAMPLE_SECONDS = 0.1


@dataclass(frozen=True)
class Latency:
    files: int
    seconds: float
    median_ms: float
    p95_ms: float

    @property
    def per_second(self) -> float:
        return self.files / self.seconds


@dataclass(frozen=True)
class Row:
    count: int
    reference: Latency
    socle_seconds: float
    socle_latency: Latency
    failures: int
    peak_tree_rss_mb: float
    pdfsig_valid: int

    @property
    def socle_per_second(self) -> float:
        return self.count / self.socle_seconds


# --------------------------------------------------------------------------- inputs


def make_inputs(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        pdf = pikepdf.new()
        page = pdf.add_blank_page(page_size=(595, 842))
        font = pikepdf.Dictionary(Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica)
        page.obj.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=font))
        page.obj.Contents = pdf.make_stream(f"BT /F1 18 Tf 72 720 Td (Arrete n {index}) Tj ET".encode())
        path = folder / f"{index:05d}.pdf"
        pdf.save(path)
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- measures


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def latency(durations: list[float]) -> Latency:
    return Latency(
        files=len(durations),
        seconds=sum(durations),
        median_ms=statistics.median(durations) * 1000,
        p95_ms=percentile(durations, 0.95) * 1000,
    )


def sign_reference(p12_path: Path, sources: list[Path], out: Path) -> Latency:
    """pyHanko's documented default: key loaded once, ``signers.sign_pdf`` per file, nothing tuned."""
    out.mkdir(exist_ok=True)
    signer = signers.SimpleSigner.load_pkcs12(str(p12_path), passphrase=PASSPHRASE)
    assert signer is not None, "PKCS#12 illisible par pyHanko"
    durations = []
    for source in sources:
        start = time.perf_counter()
        with source.open("rb") as stream, (out / source.name).open("wb") as output:
            writer = IncrementalPdfFileWriter(stream)
            metadata = signers.PdfSignatureMetadata(field_name="Signature1")
            signers.sign_pdf(writer, metadata, signer=signer, output=output)
        durations.append(time.perf_counter() - start)
    return latency(durations)


def sign_socle_sequential(pkcs12: bytes, request: SignatureRequest, sources: list[Path], out: Path) -> Latency:
    """Latency of one socle signature, in one process, identity loaded once (what each worker does)."""
    out.mkdir(exist_ok=True)
    identity = SigningIdentity.from_pkcs12(pkcs12, PASSPHRASE)
    durations = []
    for source in sources:
        start = time.perf_counter()
        sign_pdf(source, out / source.name, identity, request)
        durations.append(time.perf_counter() - start)
    return latency(durations)


def sign_socle_bulk(pkcs12: bytes, request: SignatureRequest, sources: list[Path], out: Path) -> tuple[float, int]:
    """Wall time of ``sign_many`` (pool start included) and the number of failed documents."""
    out.mkdir(exist_ok=True)
    jobs = ((source, out / source.name) for source in sources)
    failures = 0
    start = time.perf_counter()
    for result in sign_many(jobs, pkcs12, PASSPHRASE, request):
        if not result.ok:
            failures += 1
            print(f"  échec {result.source.name} : {result.error}", file=sys.stderr)
    return time.perf_counter() - start, failures


# --------------------------------------------------------------------------- memory of the process tree


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name may hold spaces and parentheses: the parent pid follows the last ")".
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def _tree_rss_kib(root: int) -> int:
    """Current resident memory of ``root`` and all its descendants (the fork server and its workers)."""
    tree, total, todo = _children(), 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


@contextmanager
def peak_tree_rss() -> Iterator[list[float]]:
    """Sample the tree's RSS in the background; the yielded list receives the peak, in MB."""
    peak = [0.0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(RSS_SAMPLE_SECONDS):
            peak[0] = max(peak[0], _tree_rss_kib(os.getpid()) / 1024)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


# --------------------------------------------------------------------------- independent check


def pdfsig_valid(paths: list[Path]) -> int:
    def check(path: Path) -> bool:
        result = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, timeout=60, check=False)
        return PDFSIG_VALID in result.stdout

    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(pool.map(check, paths))
    invalid = [path.name for path, ok in zip(paths, verdicts, strict=True) if not ok]
    if invalid:
        raise SystemExit(f"ÉCHEC : {len(invalid)} signature(s) socle non valides selon pdfsig, ex. {invalid[:5]}")
    return len(paths)


# --------------------------------------------------------------------------- run


def measure(count: int, inputs: list[Path], pkcs12: bytes, p12_path: Path, work: Path, args: argparse.Namespace) -> Row:
    sources = inputs[:count]
    sample = sources[: min(count, args.reference_max)]
    request = SignatureRequest(signer_name="Dominique Dupont", reason="Visa", visible=args.visible)
    print(f"N={count} : référence pyHanko sur {len(sample)} fichiers…", file=sys.stderr)
    reference = sign_reference(p12_path, sample, work / f"ref-{count}")
    print(f"N={count} : latence socle (un processus) sur {len(sample)} fichiers…", file=sys.stderr)
    socle_latency = sign_socle_sequential(pkcs12, request, sample, work / f"seq-{count}")
    print(f"N={count} : sign_many sur {count} fichiers…", file=sys.stderr)
    out = work / f"bulk-{count}"
    with peak_tree_rss() as peak:
        seconds, failures = sign_socle_bulk(pkcs12, request, sources, out)
    print(f"N={count} : pdfsig sur {count} sorties…", file=sys.stderr)
    valid = pdfsig_valid(sorted(out.iterdir()))
    for folder in (work / f"ref-{count}", work / f"seq-{count}", out):
        shutil.rmtree(folder)
    return Row(count, reference, seconds, socle_latency, failures, peak[0], valid)


def table(rows: list[Row]) -> str:
    lines = [
        "| N | référence pyHanko (fichiers/s) | socle sign_many (fichiers/s) | rapport | "
        "latence référence méd. / p95 (ms) | latence socle méd. / p95 (ms) | pic RSS arbre (Mo) | "
        "échecs | pdfsig « Signature is Valid » |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ref, seq = row.reference, row.socle_latency
        lines.append(
            f"| {row.count} | {ref.per_second:.1f} (sur {ref.files}) | {row.socle_per_second:.1f} | "
            f"×{row.socle_per_second / ref.per_second:.1f} | {ref.median_ms:.0f} / {ref.p95_ms:.0f} | "
            f"{seq.median_ms:.1f} / {seq.p95_ms:.1f} | {row.peak_tree_rss_mb:.0f} | {row.failures} | "
            f"{row.pdfsig_valid} / {row.count} |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", default="1000", help="nombre(s) de documents, séparés par des virgules")
    parser.add_argument(
        "--reference-max", type=int, default=300, help="la référence (lente) est mesurée sur au plus ce nombre"
    )
    parser.add_argument("--visible", action="store_true", help="signatures socle avec tampon visible")
    parser.add_argument("--workdir", type=Path, default=None, help="dossier de travail (temporaire par défaut)")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if shutil.which("pdfsig") is None:
        raise SystemExit("pdfsig (poppler-utils) est introuvable : il vérifie chaque signature.")
    counts = [int(value) for value in args.count.split(",")]
    work = Path(tempfile.mkdtemp(prefix="socle-bench-", dir=args.workdir))
    try:
        pkcs12 = make_self_signed_identity("Dominique Dupont", "Commune de Saint-Banc", PASSPHRASE)
        p12_path = work / "identite.p12"
        p12_path.write_bytes(pkcs12)
        print(f"Génération de {max(counts)} PDF d'une page…", file=sys.stderr)
        inputs = make_inputs(work / "entrees", max(counts))
        rows = [measure(count, inputs, pkcs12, p12_path, work, args) for count in counts]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Machine : {os.cpu_count()} CPU, Python {platform.python_version()}, pyHanko {version('pyHanko')}")
    print(f"Commande : .venv/bin/python bench/bulk_signing.py {shlex.join(sys.argv[1:])}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
