"""Benchmark: building a SEDA package (SIP) from a folder, against ``sha512sum`` over the same files.

Generates a corpus (default 10,000 files, 2 GB: PDFs, JPEGs, DOCX/ODT, text; the binary ones filled with
random bytes, incompressible like real PDFs and JPEGs), reads it once so that both measures run with the
files in the page cache (dropping the caches needs root: cold-cache figures are not measured), then:

- ``sha512sum`` over every file (one process, as a reference of "disk speed" here);
- ``socle archive build`` on the same tree, its peak RSS (the whole process tree, sampled in /proc);
- the same stages in-process, timed one by one: walk, description (digest, CRC-32, format), manifest, XSD
  validation, zip;
- with ``--small N`` (default 100,000): a second corpus of N small text files, the build's peak RSS, and
  the XSD validation time of its manifest.

The load average is printed before and after: other processes share the 2 cores.

    .venv/bin/python bench/sip_build.py --files 10000 --size-mb 2000 --small 100000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
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


def _office(rng: random.Random, size: int, kind: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if kind == "odt":
            archive.writestr("mimetype", "application/vnd.oasis.opendocument.text")
            archive.writestr("content.xml", "<office:document-content/>")
            archive.writestr("META-INF/manifest.xml", "<manifest:manifest/>")
            archive.writestr("Pictures/image1.jpg", rng.randbytes(size))
        else:
            archive.writestr("[Content_Types].xml", "<Types/>")
            archive.writestr("_rels/.rels", "<Relationships/>")
            archive.writestr("word/document.xml", "<w:document/>")
            archive.writestr("word/media/image1.jpeg", rng.randbytes(size))
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


def _tree_rss(root_pid: int) -> int:
    """RSS in bytes of a process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root_pid]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def run_sampled(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Run a command; returns (seconds, peak RSS of its process tree, output). Fails on a non-zero exit."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    peak = 0
    output: list[bytes] = []
    reader = threading.Thread(target=lambda: output.append(process.stdout.read() if process.stdout else b""))
    reader.start()
    while process.poll() is None:
        peak = max(peak, _tree_rss(process.pid))
        time.sleep(0.02)
    reader.join()
    elapsed = time.perf_counter() - start
    text = b"".join(output).decode(errors="replace")
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} a échoué ({process.returncode}) :\n{text}")
    return elapsed, peak, text


def time_sha512sum(folder: Path) -> float:
    """Seconds for sha512sum over every file of the folder (file list built beforehand, not timed)."""
    listing = "\0".join(str(path) for path in all_files(folder)).encode() + b"\0"
    start = time.perf_counter()
    subprocess.run(["xargs", "-0", "sha512sum"], input=listing, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def build_env() -> dict[str, str]:
    return {**os.environ, "SOCLE_SEDA_SCHEMAS": str(SCHEMAS)}


def time_build(folder: Path, output: Path) -> tuple[float, int, str]:
    """`socle archive build` on the folder: seconds, peak RSS, output."""
    command = [str(BIN / "socle"), "archive", "build", str(folder), "--output", str(output)]
    command += ["--archival-agency", "AD075", "--transferring-agency", "MAIRIE-01"]
    result = run_sampled(command, build_env())
    output.unlink()
    return result


def stage_split(folder: Path, output: Path, sample_kib: int = 0, *, memory_only: bool = False) -> dict[str, float]:
    """The build's stages timed one by one, in a process of their own (same code as the CLI)."""
    command = [sys.executable, __file__, "--stages-of", str(folder), "--stages-output", str(output)]
    env = build_env() | ({"SIP_BENCH_SAMPLE_KIB": str(sample_kib)} if sample_kib else {})
    env |= {"SIP_BENCH_MEMORY_ONLY": "1"} if memory_only else {}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _stages(folder: Path, output: Path) -> None:
    """Each stage timed on its own; the manifest goes through a file (seda.write_manifest), as a build in
    constant memory would do. Prints a JSON line (seconds, and the process's peak RSS in MiB)."""
    import resource

    from archive import packaging, seda, sources, validation

    sample = os.environ.get("SIP_BENCH_SAMPLE_KIB")  # --echantillon: what a smaller sample would cost
    if sample:
        packaging.IDENTIFY_HEAD = packaging.IDENTIFY_TAIL = int(sample) * 1024
    times: dict[str, float] = {}
    start = time.perf_counter()
    count = sum(len(names) for _, _, names in os.walk(folder))
    times["parcours"] = time.perf_counter() - start

    def digest_only(path: Path, name: str) -> seda.DescribedFile:
        return packaging.describe_file(path, name, identify=False)

    if not os.environ.get("SIP_BENCH_MEMORY_ONLY"):  # a first pass would leave its memory to the peak below
        start = time.perf_counter()
        sources.transfer_from_folder(
            folder, archival_agency="AD075", transferring_agency="MAIRIE-01", describe=digest_only
        )
        times["empreinte+CRC seuls"] = time.perf_counter() - start
    start = time.perf_counter()
    spec = sources.transfer_from_folder(folder, archival_agency="AD075", transferring_agency="MAIRIE-01")
    times["description (empreinte+CRC+format)"] = time.perf_counter() - start
    manifest = output.with_name("manifest.xml")
    start = time.perf_counter()
    with manifest.open("wb") as out:
        seda.write_manifest(spec, out)
    times["manifeste"] = time.perf_counter() - start
    start = time.perf_counter()
    report = validation.validate_manifest(manifest, SCHEMAS, "2.2")
    times["XSD"] = time.perf_counter() - start
    assert report.valid, report.issues[:3]
    start = time.perf_counter()
    packaging.write_sip(manifest, seda.sip_entries(spec), output)
    times["zip"] = time.perf_counter() - start
    output.unlink()
    manifest.unlink()
    times["fichiers"] = count
    times["RSS max (Mio)"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
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


def xsd_time(package: Path) -> tuple[float, int]:
    """Seconds to validate the package's manifest (bytes read beforehand), and its object count."""
    from archive import validation

    with zipfile.ZipFile(package) as archive:
        manifest = archive.read("manifest.xml")
    validation.load_schema(SCHEMAS, "2.2")  # compiled once per process: not part of a validation
    start = time.perf_counter()
    report = validation.validate_manifest(manifest, SCHEMAS, "2.2")
    elapsed = time.perf_counter() - start
    assert report.valid, report.issues[:3]
    return elapsed, manifest.count(b"<BinaryDataObject ")


# --- main ----------------------------------------------------------------------------------------------------


def _load() -> str:
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--size-mb", type=int, default=2_000)
    parser.add_argument("--small", type=int, default=100_000, help="fichiers du second corpus (0 : sans)")
    parser.add_argument("--workdir", type=Path, default=ROOT.parent / "tmp-sip-bench")
    parser.add_argument("--keep", action="store_true", help="garder les corpus (relances)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-large", action="store_true", help="seulement le corpus de petits fichiers")
    parser.add_argument(
        "--echantillon", type=int, nargs="*", default=[], help="Kio lus par siegfried au début et à la fin (essais)"
    )
    parser.add_argument("--stages-of", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--stages-output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stages_of:
        sys.path.insert(0, str(ROOT))
        _stages(args.stages_of, args.stages_output)
        return
    sys.path.insert(0, str(ROOT))
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
        sha = time_sha512sum(corpus)
        build, peak, _ = time_build(corpus, output)
        print(
            f"essai {run + 1} : sha512sum {sha:.2f} s ({total / sha / 1e6:.0f} Mo/s) ; build {build:.2f} s "
            f"({total / build / 1e6:.0f} Mo/s) ; rapport {sha / build:.2f} ; RSS max {peak / 2**20:.0f} Mio ; "
            f"charge {_load()}"
        )
    print(f"écriture disque avec fsync : {disk_write_speed(args.workdir, total):.0f} Mo/s ; charge {_load()}")
    split = stage_split(corpus, output)
    print("étapes (s) : " + " ; ".join(f"{name} {value:.2f}" for name, value in split.items()))
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
    build, peak, _ = run_build_keep(small, output)
    seconds, objects = xsd_time(output)
    print(
        f"{args.small} petits fichiers : build {build:.1f} s, RSS max {peak / 2**20:.0f} Mio ; "
        f"XSD du manifeste ({objects} objets) {seconds:.2f} s ; charge {_load()}"
    )
    output.unlink()
    split = stage_split(small, output)
    print("étapes (s) : " + " ; ".join(f"{name} {value:.2f}" for name, value in split.items()))
    split = stage_split(small, output, memory_only=True)
    print(f"sans la passe « empreinte seule » : RSS max {split['RSS max (Mio)']:.0f} Mio")


def run_build_keep(folder: Path, output: Path) -> tuple[float, int, str]:
    command = [str(BIN / "socle"), "archive", "build", str(folder), "--output", str(output)]
    command += ["--archival-agency", "AD075", "--transferring-agency", "MAIRIE-01"]
    return run_sampled(command, build_env())


if __name__ == "__main__":
    main()
