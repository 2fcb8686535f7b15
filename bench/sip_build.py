"""Benchmark: building a SEDA package (SIP) from a folder, against ``sha512sum`` over the same files.

Generates a corpus (default 10,000 files, 2 GB: PDFs, JPEGs, DOCX/ODT, text; PDFs and JPEGs filled with
random bytes, incompressible like real ones; DOCX and ODT real minimal documents with a random picture, which
siegfried tells from a plain zip), reads it once so that both measures run with the files in the page cache
(dropping the caches needs root: cold-cache figures are not measured), then, in the same run:

- ``sha512sum`` over every file (one process, as a reference of "disk speed" here);
- ``socle archive build`` on the same tree: duration, and peak RSS of its whole process tree (the siegfried
  worker included), sampled in /proc every 50 ms;
- the build's stages in a process of their own (packaging.build_sip, same code as the CLI): each stage's
  duration, the CPU time of the main process and of the siegfried process, and the same build without
  format identification;
- with ``--small N`` (default 100,000): a second corpus of N small text files, the build's peak RSS, and
  the XSD validation time of its manifest (three times).

The load average is printed with each measure: other processes share the 2 cores.

    .venv/bin/python bench/sip_build.py --files 10000 --size-mb 2000 --small 100000
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SCHEMAS = Path(os.environ.get("SOCLE_SEDA_SCHEMAS") or ROOT.parent / "shared" / "seda")
# (kind, share of the files, mean size in KB); sizes are drawn around the mean, scaled to the wanted total.
MIX = (("pdf", 0.45, 260), ("jpg", 0.25, 240), ("docx", 0.08, 120), ("odt", 0.07, 120), ("txt", 0.15, 20))
WORDS = ("budget", "délibération", "conseil", "commune", "subvention", "marché", "voirie", "école", "cantine", "état")


# --- corpus --------------------------------------------------------------------------------------------------


def _pdf(rng: random.Random, size: int) -> bytes:
    head = (
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Length "
        + str(size).encode()
        + b" /Filter /FlateDecode >>\nstream\n"
    )
    tail = b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    return head + rng.randbytes(max(size - len(head) - len(tail), 1)) + tail


def _jpg(rng: random.Random, size: int) -> bytes:
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x01\x00H\x00H\x00\x00\xff\xdb\x00C\x00"
    return head + rng.randbytes(max(size - len(head) - 2, 1)) + b"\xff\xd9"


WORD_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/><Default Extension="jpeg" ContentType="image/jpeg"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
WORD_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)
ODF_CONTENT = (
    '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" office:version="1.2">'
    "<office:body><office:text/></office:body></office:document-content>"
)
ODF_MANIFEST = (
    '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
    'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
    '<manifest:file-entry manifest:full-path="/" manifest:version="1.2" '
    'manifest:media-type="application/vnd.oasis.opendocument.text"/>'
    '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
    '<manifest:file-entry manifest:full-path="Pictures/image1.jpg" manifest:media-type="image/jpeg"/>'
    "</manifest:manifest>"
)


def _office(rng: random.Random, size: int, kind: str) -> bytes:
    """A minimal but real DOCX or ODT (siegfried says fmt/412, fmt/291) holding a random picture."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        if kind == "odt":
            mimetype = zipfile.ZipInfo("mimetype")  # first and stored, as ODF requires
            archive.writestr(mimetype, "application/vnd.oasis.opendocument.text", compress_type=zipfile.ZIP_STORED)
            archive.writestr("content.xml", ODF_CONTENT)
            archive.writestr("META-INF/manifest.xml", ODF_MANIFEST)
            picture = "Pictures/image1.jpg"
        else:
            archive.writestr("[Content_Types].xml", WORD_TYPES)
            archive.writestr("_rels/.rels", WORD_RELS)
            archive.writestr("word/document.xml", '<w:document xmlns:w="urn:w"><w:body/></w:document>')
            picture = "word/media/image1.jpeg"
        archive.writestr(zipfile.ZipInfo(picture), rng.randbytes(size), compress_type=zipfile.ZIP_STORED)
    return buffer.getvalue()


def _text(rng: random.Random, size: int) -> bytes:
    words = " ".join(rng.choice(WORDS) for _ in range(size // 8 + 1))
    return words.encode()[:size] or b"x"


def make_file(kind: str, rng: random.Random, size: int) -> bytes:
    """The bytes of one generated file of about `size` bytes."""
    if kind == "pdf":
        return _pdf(rng, size)
    if kind == "jpg":
        return _jpg(rng, size)
    if kind in ("docx", "odt"):
        return _office(rng, size, kind)
    return _text(rng, size)


def make_corpus(folder: Path, files: int, total_bytes: int, seed: int = 5) -> int:
    """Write `files` files in sub-folders of 100 into `folder`; returns the bytes written."""
    rng = random.Random(seed)
    kinds = [kind for kind, share, _ in MIX for _ in range(round(share * files))][:files]
    kinds += ["txt"] * (files - len(kinds))
    rng.shuffle(kinds)
    means = {kind: mean * 1024 for kind, _, mean in MIX}
    scale = total_bytes / sum(means[kind] for kind in kinds)
    written = 0
    for number, kind in enumerate(kinds):
        sub = folder / f"dossier-{number // 1000:03d}" / f"sous-dossier-{number // 100 % 10:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        size = max(int(rng.uniform(0.2, 1.8) * means[kind] * scale), 16)
        data = make_file(kind, rng, size)
        (sub / f"piece-{number:06d}.{kind}").write_bytes(data)
        written += len(data)
    return written


def make_small_corpus(folder: Path, files: int) -> int:
    """`files` small text files (about 1 KB), 1,000 per sub-folder."""
    rng = random.Random(7)
    written = 0
    for number in range(files):
        sub = folder / f"lot-{number // 1000:04d}"
        if number % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        data = _text(rng, 1024)
        (sub / f"note-{number:06d}.txt").write_bytes(data)
        written += len(data)
    return written


def all_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())


def warm(files: list[Path]) -> None:
    """Read every file once: the measures below then run on the page cache, all in the same conditions."""
    for path in files:
        with path.open("rb") as stream:
            while stream.read(1 << 20):
                pass


# --- measures ------------------------------------------------------------------------------------------------


PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Sampled:
    """A command's run: wall seconds, peak RSS of its whole tree and of its own process, CPU seconds of its
    own process and of its descendants (the siegfried worker), its output."""

    seconds: float
    peak: int
    main_peak: int
    main_cpu: float
    children_cpu: float
    output: str


def _tree(root_pid: int) -> dict[int, tuple[int, float, float]]:
    """{pid: (RSS bytes, CPU seconds, CPU seconds of its waited-for children)} for a process and all its
    descendants, from /proc (only the tree's own entries are read: reading every process's every 20 ms took
    a sixth of a core, on a machine that has two)."""
    found, todo = {}, [root_pid]
    while todo:
        pid = todo.pop()
        try:
            rss = int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
            waited = (int(fields[13]) + int(fields[14])) / TICK  # cutime, cstime
            found[pid] = (rss, cpu, waited)
            for task in os.listdir(f"/proc/{pid}/task"):
                todo += [int(child) for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return found


def run_sampled(command: list[str], env: dict[str, str] | None = None) -> Sampled:
    """Run a command, sampling its process tree every 50 ms. Fails on a non-zero exit.

    The CPU of the whole tree comes from wait4 (exact); the descendants' share is the larger of what the
    command itself has reaped (cutime) and the last values seen in /proc for each descendant (at most 50 ms
    late): the command's own CPU is the difference."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    peak = main_peak = 0
    children: dict[int, float] = {}
    waited = 0.0
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read() if process.stdout else b""))
    reader.start()
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        tree = _tree(process.pid)
        peak = max(peak, sum(rss for rss, _, _ in tree.values()))
        if process.pid in tree:
            main_peak = max(main_peak, tree[process.pid][0])
            waited = max(waited, tree[process.pid][2])
        children |= {child: cpu for child, (_, cpu, _) in tree.items() if child != process.pid}
        time.sleep(0.05)
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    elapsed = time.perf_counter() - start
    text = b"".join(output).decode(errors="replace")
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} a échoué ({process.returncode}) :\n{text}")
    total = usage.ru_utime + usage.ru_stime
    children_cpu = max(waited, sum(children.values()))
    return Sampled(elapsed, peak, main_peak, total - children_cpu, children_cpu, text)


def _described(run: Sampled) -> str:
    return (
        f"RSS max de l'arbre {run.peak / 2**20:.0f} Mio (processus principal {run.main_peak / 2**20:.0f}) ; "
        f"processeur : principal {run.main_cpu:.2f} s, siegfried {run.children_cpu:.2f} s"
    )


def time_sha512sum(folder: Path) -> float:
    """Seconds for sha512sum over every file of the folder (file list built beforehand, not timed)."""
    listing = "\0".join(str(path) for path in all_files(folder)).encode() + b"\0"
    start = time.perf_counter()
    subprocess.run(["xargs", "-0", "sha512sum"], input=listing, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def build_env() -> dict[str, str]:
    return {**os.environ, "SOCLE_SEDA_SCHEMAS": str(SCHEMAS)}


def time_build(folder: Path, output: Path) -> Sampled:
    """`socle archive build` on the folder."""
    command = [str(BIN / "socle"), "archive", "build", str(folder), "--output", str(output)]
    command += ["--archival-agency", "AD075", "--transferring-agency", "MAIRIE-01"]
    result = run_sampled(command, build_env())
    output.unlink()
    return result


def stage_split(folder: Path, output: Path, sample_kib: int = 0) -> dict[str, float]:
    """The build's stages, timed in a process of their own (same code as the CLI)."""
    command = [sys.executable, __file__, "--stages-of", str(folder), "--stages-output", str(output)]
    env = build_env() | ({"SIP_BENCH_SAMPLE_KIB": str(sample_kib)} if sample_kib else {})
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def _stages(folder: Path, output: Path) -> None:
    """SHA-512 alone, then packaging.build_sip without and with format identification, each stage timed, the
    CPU of this process and of the siegfried process apart. Prints a JSON line (seconds)."""
    from archive import identification, packaging, sources, validation

    sample = os.environ.get("SIP_BENCH_SAMPLE_KIB")  # --echantillon: what another sample size would cost
    if sample:
        identification.IDENTIFY_HEAD = identification.IDENTIFY_TAIL = int(sample) * 1024
    times: dict[str, float] = {}
    start = time.perf_counter()
    for root, _, names in os.walk(folder):
        for name in names:
            digest = hashlib.sha512()
            with open(os.path.join(root, name), "rb") as stream:
                while chunk := stream.read(1 << 20):
                    digest.update(chunk)
    times["SHA-512 seul (hashlib, un fil)"] = time.perf_counter() - start

    def check(manifest: Path) -> None:
        report = validation.validate_manifest(manifest, SCHEMAS, "2.2")
        assert report.valid, report.issues[:3]

    for identify in (False, True):
        prefix = "" if identify else "sans identification : "
        main, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        spec, plan = sources.folder_transfer(folder, archival_agency="AD075", transferring_agency="MAIRIE-01")
        walked = time.perf_counter()
        built = packaging.build_sip(spec, plan, output, check_manifest=check, identify=identify)
        times[prefix + "total"] = time.perf_counter() - start
        times[prefix + "parcours préalable du dossier"] = walked - start
        times |= {prefix + stage: seconds for stage, seconds in built.timings.items()}
        times[prefix + "CPU du processus principal"] = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - _cpu(main)
        if identify:
            times["CPU du processus siegfried"] = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - _cpu(children)
        output.unlink()
    times["fichiers"] = built.files
    print(json.dumps(times))


def disk_write_speed(folder: Path, size: int) -> float:
    """MB/s writing `size` bytes then fsync, as the zip is written (atomic_output syncs it)."""
    path = folder / "ecriture.tmp"
    block = b"\0" * (1 << 20)
    start = time.perf_counter()
    with path.open("wb") as out:
        for _ in range(size // len(block)):
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    elapsed = time.perf_counter() - start
    path.unlink()
    return size / elapsed / 1e6


def xsd_time(package: Path, runs: int = 3) -> tuple[list[tuple[float, float]], int]:
    """Seconds (elapsed, CPU) to validate the package's manifest (bytes read beforehand), `runs` times, and its
    object count."""
    from archive import validation

    with zipfile.ZipFile(package) as archive:
        manifest = archive.read("manifest.xml")
    validation.load_schema(SCHEMAS, "2.2")  # compiled once per process: not part of a validation
    seconds = []
    for _ in range(runs):
        start, cpu = time.perf_counter(), time.process_time()
        report = validation.validate_manifest(manifest, SCHEMAS, "2.2")
        seconds.append((time.perf_counter() - start, time.process_time() - cpu))
        assert report.valid, report.issues[:3]
    return seconds, manifest.count(b"<BinaryDataObject ")


def fidelity(roots: list[Path], per_extension: int = 40, limit: int = 4000) -> None:
    """siegfried on whole files against siegfried on the build's samples, for files found under `roots`
    (at most `per_extension` per extension, `limit` in all): the differences, by kind."""
    from archive import identification

    rng = random.Random(1)
    by_extension: dict[str, list[Path]] = {}
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder, name)
                if path.is_file() and not path.is_symlink() and path.stat().st_size > 0:
                    by_extension.setdefault(path.suffix.lower(), []).append(path)
    files: list[Path] = []
    for paths in by_extension.values():
        rng.shuffle(paths)
        files += paths[:per_extension]
    rng.shuffle(files)
    files = files[:limit]
    whole = identification.identify_paths([str(path) for path in files])
    larger = sum(path.stat().st_size > identification.IDENTIFY_HEAD + identification.IDENTIFY_TAIL for path in files)
    with identification.Identifier() as identifier:
        futures = []
        for path in files:
            sampler = identification.Sampler(path.suffix)
            with path.open("rb") as stream:
                while chunk := stream.read(1 << 20):
                    sampler.feed(chunk)
            futures.append(identifier.submit(sampler.sample(), path))
        sampled = [future.result() for future in futures]
    differences = [(path, a[0], b[0]) for path, a, b in zip(files, whole, sampled, strict=True) if a[0] != b[0]]
    print(
        f"fidélité : {len(files)} fichiers, {len(by_extension)} extensions, {larger} plus grands que l'échantillon ; "
        f"{len(differences)} identification(s) différente(s) du fichier entier"
    )
    formats = Counter(answer[0] for answer in whole)
    common = ", ".join(f"{puid} ×{count}" for puid, count in formats.most_common(15))
    print(f"  {len(formats)} formats PRONOM, dont : {common}")
    for path, expected, got in differences[:20]:
        print(f"  {path} : {expected} entier, {got} échantillon")


# --- main ----------------------------------------------------------------------------------------------------


def _load() -> str:
    return f"{os.getloadavg()[0]:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size-mb", type=int, default=2_000)
    parser.add_argument("--small", type=int, default=100_000, help="fichiers du second corpus (0 : sans)")
    parser.add_argument("--workdir", type=Path, default=ROOT.parent / "tmp-sip-bench")
    parser.add_argument("--keep", action="store_true", help="garder les corpus (relances)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-large", action="store_true", help="seulement le corpus de petits fichiers")
    parser.add_argument("--no-stages", action="store_true", help="sans la répartition par étape")
    parser.add_argument(
        "--echantillon", type=int, nargs="*", default=[], help="Kio lus par siegfried au début et à la fin (essais)"
    )
    parser.add_argument(
        "--fidelite", type=Path, nargs="*", default=None, help="dossiers de fichiers réels : entier / échantillon"
    )
    parser.add_argument("--stages-of", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stages-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.stages_of:
        _stages(args.stages_of, args.stages_output)
        return
    if args.fidelite is not None:
        fidelity(args.fidelite or [Path("/usr/share"), Path("/usr/lib")])
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        _bench(args)
    finally:
        if not args.keep:
            shutil.rmtree(args.workdir, ignore_errors=True)


def _bench(args: argparse.Namespace) -> None:
    print(f"charge au départ : {_load()} ; {shutil.disk_usage(args.workdir).free // 2**30} Gio libres")
    if not args.no_large:
        _large(args)
    if args.small:
        _small(args)
    print(f"charge à la fin : {_load()}")


def _large(args: argparse.Namespace) -> None:
    corpus = args.workdir / "corpus"
    if not corpus.exists():
        start = time.perf_counter()
        partial = args.workdir / "corpus.partiel"  # renamed once complete: a rerun never reuses half a corpus
        shutil.rmtree(partial, ignore_errors=True)
        written = make_corpus(partial, args.files, args.size_mb * 1_000_000)
        partial.rename(corpus)
        print(f"corpus : {args.files} fichiers, {written / 1e6:.0f} Mo, généré en {time.perf_counter() - start:.0f} s")
    files = all_files(corpus)
    total = sum(path.stat().st_size for path in files)
    warm(files)
    output = Path(tempfile.mkdtemp(dir=args.workdir)) / "paquet.zip"
    for run in range(args.runs):
        before = _load()
        sha = time_sha512sum(corpus)
        build = time_build(corpus, output)
        print(
            f"essai {run + 1} : sha512sum {sha:.2f} s ({total / sha / 1e6:.0f} Mo/s) ; socle archive build "
            f"{build.seconds:.2f} s ({total / build.seconds / 1e6:.0f} Mo/s) ; rapport {sha / build.seconds:.2f} ; "
            f"{_described(build)} ; charge {before} → {_load()}"
        )
    print(f"écriture disque avec fsync : {disk_write_speed(args.workdir, total):.0f} Mo/s ; charge {_load()}")
    if not args.no_stages:
        before = _load()
        split = stage_split(corpus, output)
        print(f"étapes (s, charge {before} → {_load()}) : " + " ; ".join(f"{k} {v:.2f}" for k, v in split.items()))
    for sample in args.echantillon:
        split = stage_split(corpus, output, sample)
        print(f"échantillon {sample} + {sample} Kio : " + " ; ".join(f"{k} {v:.2f}" for k, v in split.items()))


def _small(args: argparse.Namespace) -> None:
    output = Path(tempfile.mkdtemp(dir=args.workdir)) / "paquet.zip"
    small = args.workdir / "petits"
    if not small.exists():
        partial = args.workdir / "petits.partiel"
        shutil.rmtree(partial, ignore_errors=True)
        make_small_corpus(partial, args.small)
        partial.rename(small)
    warm(all_files(small))
    before = _load()
    build = run_build_keep(small, output)
    print(
        f"{args.small} petits fichiers : socle archive build {build.seconds:.1f} s ; {_described(build)} ; "
        f"charge {before} → {_load()}"
    )
    before = _load()
    seconds, objects = xsd_time(output)
    print(
        f"XSD du manifeste ({objects} objets, {output.stat().st_size / 1e6:.0f} Mo zippé) : "
        + ", ".join(f"{elapsed:.2f} s ({cpu:.2f} s de processeur)" for elapsed, cpu in seconds)
        + f" ; charge {before} → {_load()}"
    )
    output.unlink()
    if not args.no_stages:
        before = _load()
        split = stage_split(small, output)
        print(f"étapes (s, charge {before} → {_load()}) : " + " ; ".join(f"{k} {v:.2f}" for k, v in split.items()))


def run_build_keep(folder: Path, output: Path) -> Sampled:
    command = [str(BIN / "socle"), "archive", "build", str(folder), "--output", str(output)]
    command += ["--archival-agency", "AD075", "--transferring-agency", "MAIRIE-01"]
    return run_sampled(command, build_env())


if __name__ == "__main__":
    main()
