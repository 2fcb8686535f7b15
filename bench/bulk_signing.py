"""Benchmark: bulk PAdES B-B signing, socle's ``sign_many`` against pyHanko's default path.

In one run, on the same generated 1-page PDFs and the same PKCS#12 key:

* reference: ``SimpleSigner.load_pkcs12`` once, then ``signers.sign_pdf`` per file, as pyHanko documents it;
* socle: ``parapheur.bulk.sign_many`` with its default number of workers (each one signs through the CMS
  template of ``parapheur.fastsign``).

Every socle output is then checked with poppler's ``pdfsig``, and one in ``--report-every`` with socle's own
``validation_report``; the run fails if any is not valid. The 1-minute load average is noted before and after
``sign_many``: the machine may be shared, and contention lowers socle's figure (two processes) more than the
reference's (one).

    .venv/bin/python bench/bulk_signing.py --count 1000
    .venv/bin/python bench/bulk_signing.py --count 100,1000,10000
"""

from __future__ import annotations

import argparse
import itertools
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
from parapheur.fastsign import fast_identity
from parapheur.pades import (
    SignatureRequest,
    SigningIdentity,
    make_self_signed_identity,
    sign_pdf,
    validation_report,
)

PASSPHRASE = b"bench-passphrase"
PDFSIG_VALID = "Signature is Valid"
RSS_SAMPLE_SECONDS = 0.1
TREE_REFRESH_SAMPLES = 5
# Lets the fork server reap the workers that the pool has just stopped, before their time is read.
CPU_SETTLE_SECONDS = 0.3


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
    reference_cpu_ms: float
    socle_seconds: float
    socle_cpu_ms: float
    socle_latency: Latency
    failures: int
    peak_tree_rss_mb: float
    pdfsig_valid: int
    reports_valid: int
    report_every: int
    load: tuple[float, float]

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


def sign_reference(p12_path: Path, sources: list[Path], out: Path) -> tuple[Latency, float]:
    """pyHanko's documented default: key loaded once, ``signers.sign_pdf`` per file, nothing tuned.

    Also returns the processor time per file, in ms (one process).
    """
    out.mkdir(exist_ok=True)
    signer = signers.SimpleSigner.load_pkcs12(str(p12_path), passphrase=PASSPHRASE)  # type: ignore[no-untyped-call]
    assert signer is not None, "PKCS#12 illisible par pyHanko"
    cpu_start = time.process_time()
    durations = []
    for source in sources:
        start = time.perf_counter()
        with source.open("rb") as stream, (out / source.name).open("wb") as output:
            writer = IncrementalPdfFileWriter(stream)
            metadata = signers.PdfSignatureMetadata(field_name="Signature1")
            signers.sign_pdf(writer, metadata, signer=signer, output=output)
        durations.append(time.perf_counter() - start)
    return latency(durations), (time.process_time() - cpu_start) / len(sources) * 1000


def sign_socle_sequential(pkcs12: bytes, request: SignatureRequest, sources: list[Path], out: Path) -> Latency:
    """Latency of one socle signature, in one process, identity and CMS template prepared once (what each
    worker does)."""
    out.mkdir(exist_ok=True)
    identity = fast_identity(SigningIdentity.from_pkcs12(pkcs12, PASSPHRASE))
    durations = []
    for source in sources:
        start = time.perf_counter()
        sign_pdf(source, out / source.name, identity, request)
        durations.append(time.perf_counter() - start)
    return latency(durations)


def sign_socle_bulk(
    pkcs12: bytes, request: SignatureRequest, sources: list[Path], out: Path
) -> tuple[float, int, float]:
    """Wall time of ``sign_many`` (pool start included), the number of failed documents, and the processor
    time in seconds, summed over the whole process tree (this process, fork server, workers)."""
    out.mkdir(exist_ok=True)
    jobs = ((source, out / source.name) for source in sources)
    failures = 0
    cpu_start = tree_cpu_seconds()
    start = time.perf_counter()
    for result in sign_many(jobs, pkcs12, PASSPHRASE, request):
        if not result.ok:
            failures += 1
            print(f"  échec {result.source.name} : {result.error}", file=sys.stderr)
    seconds = time.perf_counter() - start
    time.sleep(CPU_SETTLE_SECONDS)
    return seconds, failures, tree_cpu_seconds() - cpu_start


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


def _descendants(root: int) -> list[int]:
    tree, found, todo = _children(), [], [root]
    while todo:
        pid = todo.pop()
        children = tree.get(pid, [])
        found += children
        todo += children
    return found


def _rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def tree_cpu_seconds() -> float:
    """Processor time used so far by this process and all its descendants, finished workers included.

    A worker that has exited is counted in its parent's cutime/cstime once reaped, and in its own
    utime/stime until then (zombies keep theirs): summing all four over the descendants counts each once.
    """
    ticks = 0
    for pid in _descendants(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command name: state is field 3 of stat(5), utime 14, stime 15, cutime 16, cstime 17.
        ticks += sum(int(value) for value in fields[11:15])
    return time.process_time() + ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class TreeSampling:
    peak_mb: float = 0.0
    sampler_cpu_seconds: float = 0.0  # the sampler's own cost, taken out of socle's processor time


@contextmanager
def sample_tree() -> Iterator[TreeSampling]:
    """Sample the RSS of this process and its descendants (fork server, workers) in the background."""
    sampling = TreeSampling()
    stop = threading.Event()

    def sample() -> None:
        pids: list[int] = []
        for tick in itertools.count():
            if stop.wait(RSS_SAMPLE_SECONDS):
                break
            # Listing every process of the machine costs milliseconds: the tree is looked up now and then.
            if tick % TREE_REFRESH_SAMPLES == 0:
                pids = [os.getpid(), *_descendants(os.getpid())]
            sampling.peak_mb = max(sampling.peak_mb, _rss_kib(pids) / 1024)
        sampling.sampler_cpu_seconds = time.thread_time()

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield sampling
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


def reports_valid(paths: list[Path], trusted: bytes) -> int:
    """socle's own verdict (``validation_report``), on the sample it is given."""
    invalid = []
    for path in paths:
        [report] = validation_report(path, [trusted])
        if not (report.valid and report.level == "B-B"):
            invalid.append(path.name)
    if invalid:
        raise SystemExit(f"ÉCHEC : {len(invalid)} signature(s) socle non valides selon socle, ex. {invalid[:5]}")
    return len(paths)


# --------------------------------------------------------------------------- run


def measure(count: int, inputs: list[Path], pkcs12: bytes, p12_path: Path, work: Path, args: argparse.Namespace) -> Row:
    sources = inputs[:count]
    sample = sources[: min(count, args.reference_max)]
    request = SignatureRequest(signer_name="Dominique Dupont", reason="Visa", visible=args.visible)
    print(f"N={count} : référence pyHanko sur {len(sample)} fichiers…", file=sys.stderr)
    reference, reference_cpu_ms = sign_reference(p12_path, sample, work / f"ref-{count}")
    print(f"N={count} : latence socle (un processus) sur {len(sample)} fichiers…", file=sys.stderr)
    socle_latency = sign_socle_sequential(pkcs12, request, sample, work / f"seq-{count}")
    print(f"N={count} : sign_many sur {count} fichiers…", file=sys.stderr)
    out = work / f"bulk-{count}"
    load_before = os.getloadavg()[0]
    with sample_tree() as sampling:
        seconds, failures, socle_cpu = sign_socle_bulk(pkcs12, request, sources, out)
    load_after = os.getloadavg()[0]
    outputs = sorted(out.iterdir())
    print(f"N={count} : pdfsig sur {count} sorties…", file=sys.stderr)
    valid = pdfsig_valid(outputs)
    print(f"N={count} : validation_report sur 1 sortie sur {args.report_every}…", file=sys.stderr)
    reported = reports_valid(
        outputs[:: args.report_every], SigningIdentity.from_pkcs12(pkcs12, PASSPHRASE).certificate_der
    )
    for folder in (work / f"ref-{count}", work / f"seq-{count}", out):
        shutil.rmtree(folder)
    return Row(
        count=count,
        reference=reference,
        reference_cpu_ms=reference_cpu_ms,
        socle_seconds=seconds,
        socle_cpu_ms=(socle_cpu - sampling.sampler_cpu_seconds) / count * 1000,
        socle_latency=socle_latency,
        failures=failures,
        peak_tree_rss_mb=sampling.peak_mb,
        pdfsig_valid=valid,
        reports_valid=reported,
        report_every=args.report_every,
        load=(load_before, load_after),
    )


def table(rows: list[Row]) -> str:
    """Two Markdown tables: throughput and processor time, then latency, memory and checks."""
    lines = [
        "| N | référence pyHanko (fichiers/s) | socle sign_many (fichiers/s) | rapport de débit | "
        "CPU par document, référence (ms) | CPU par document, socle (ms) | rapport de CPU | charge avant / après |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ref = row.reference
        lines.append(
            f"| {row.count} | {ref.per_second:.1f} (sur {ref.files}) | {row.socle_per_second:.1f} | "
            f"×{row.socle_per_second / ref.per_second:.1f} | {row.reference_cpu_ms:.1f} | {row.socle_cpu_ms:.2f} | "
            f"×{row.reference_cpu_ms / row.socle_cpu_ms:.1f} | {row.load[0]:.1f} / {row.load[1]:.1f} |"
        )
    lines += [
        "",
        "| N | latence référence méd. / p95 (ms) | latence socle méd. / p95 (ms) | pic RSS arbre (Mo) | échecs | "
        "pdfsig « Signature is Valid » | validation_report valide |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        ref, seq = row.reference, row.socle_latency
        lines.append(
            f"| {row.count} | {ref.median_ms:.0f} / {ref.p95_ms:.0f} | {seq.median_ms:.1f} / {seq.p95_ms:.1f} | "
            f"{row.peak_tree_rss_mb:.0f} | {row.failures} | {row.pdfsig_valid} / {row.count} | "
            f"{row.reports_valid} / {row.reports_valid} (1 sur {row.report_every}) |"
        )
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", default="1000", help="nombre(s) de documents, séparés par des virgules")
    parser.add_argument(
        "--reference-max", type=int, default=300, help="la référence (lente) est mesurée sur au plus ce nombre"
    )
    parser.add_argument(
        "--report-every", type=int, default=10, help="validation_report de socle sur une sortie sur ce nombre"
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
