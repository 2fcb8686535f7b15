"""Benchmark: GED full-text search latency as the index grows (and, on request, a full reindex).

What it does, in the machine's PostgreSQL (database ``test``), one schema per size, kept between runs:

1. generates realistic French acts (délibérations, arrêtés, décisions, conventions…: titles, tags, typed
   values and a first page of text drawn from about forty municipal topics), and inserts them in bulk with
   COPY, not through the API (the search entries with their keys, as ``ged.indexing`` makes them; the
   vector by the table's trigger); the extracted texts are real objects of a local object store;
2. at each size (default 10k, 100k, 1M documents, all in one collectivité: the worst case for the tenant
   filter), runs two-word French queries with one metadata filter (the document type) through
   ``ged.search.search`` — count, first page by relevance and facets, as GET /ged/search does — and gives
   p50/p95/max latencies;
3. at 100k: the same on SQLite (FTS5), from a copy kept next to the object store;
4. on request (``--reindex-at``): a full ``socle ged reindex`` run as a real command, stopped by SIGTERM
   midway then resumed, with its peak memory (RSS) and duration.

The corpora are built once: schema ``ged_bench_<size>`` (about 4 GB at 1M documents, 22 minutes on two
shared cores) and ``var/bench/ged-search/`` (texts, SQLite copy). A run finds them by a note on the schema
(``COMMENT ON SCHEMA``: corpus version, size, tenant) and rebuilds only what is missing or outdated;
``--rebuild`` forces it, ``--drop`` removes them at the end.

    .venv/bin/python bench/ged_search.py                         # 10k, 100k, 1M
    .venv/bin/python bench/ged_search.py --sizes 10000,100000 --queries 100
    .venv/bin/python bench/ged_search.py --sizes 1000000 --queries 5 --explain   # plans of each query

The machine may be shared: the 1-minute load average is printed with each measure.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "var" / "bench" / "ged-search"
# Before socle reads its settings: the bench's own data folder and object store, kept with the corpora.
os.environ["SOCLE_DATA_DIR"] = str(WORK / "data")
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from ged.indexing import build_terms, head_terms, search_keys  # noqa: E402
from ged.search import SearchQuery, search  # noqa: E402
from socle.auth import Principal  # noqa: E402
from socle.db import engine_for, reset_engines  # noqa: E402
from socle.migrating import upgrade_all  # noqa: E402
from socle.storage import get_store  # noqa: E402

SEED = 20261201
# Bump when the generated documents or their search entries change: kept corpora are then rebuilt.
CORPUS_VERSION = 3
WARM_UP = 100  # queries run before measuring, drawn apart from the measured ones
TEXT_POOL_PER_TOPIC = 60
CHUNK = 20_000
BUCKETS = [(0, 1_000), (1_000, 5_000), (5_000, 20_000), (20_000, 10**9)]

# ---------------------------------------------------------------------------------------------------------
# A small model of a commune's acts: topics with their own words, and the common words of every act.

TOPICS: dict[str, list[str]] = {
    "budget": ["budget", "primitif", "exercice", "crédits", "section", "fonctionnement", "investissement"],
    "comptes": ["compte", "administratif", "gestion", "résultat", "excédent", "affectation", "trésorier"],
    "fiscalité": ["taux", "fiscalité", "taxe", "foncière", "bâti", "contributions", "directes"],
    "subventions": ["subvention", "association", "sportive", "culturelle", "versement", "attribution", "club"],
    "voirie": ["voirie", "chaussée", "trottoirs", "réfection", "enrobé", "signalisation", "carrefour"],
    "circulation": ["circulation", "stationnement", "interdit", "véhicules", "déviation", "poids", "lourds"],
    "urbanisme": ["urbanisme", "plan", "local", "zonage", "révision", "modification", "PLU"],
    "permis": ["permis", "construire", "déclaration", "préalable", "lotissement", "parcelle", "cadastrée"],
    "eau": ["eau", "potable", "réseau", "canalisation", "captage", "qualité", "compteurs"],
    "assainissement": ["assainissement", "collectif", "station", "épuration", "redevance", "boues", "raccordement"],
    "écoles": ["école", "élémentaire", "maternelle", "classe", "effectifs", "enseignants", "rentrée"],
    "cantine": ["restauration", "scolaire", "cantine", "repas", "tarifs", "prestataire", "menus"],
    "périscolaire": ["périscolaire", "garderie", "accueil", "loisirs", "mercredi", "animateurs", "vacances"],
    "personnel": ["personnel", "emploi", "poste", "titulaire", "contractuel", "agent", "recrutement"],
    "régime": ["régime", "indemnitaire", "RIFSEEP", "primes", "grade", "avancement", "échelon"],
    "marchés": ["marché", "public", "consultation", "offre", "attributaire", "lot", "avenant"],
    "travaux": ["travaux", "bâtiment", "rénovation", "énergétique", "toiture", "isolation", "chauffage"],
    "éclairage": ["éclairage", "public", "candélabres", "LED", "extinction", "nocturne", "économies"],
    "cimetière": ["cimetière", "concession", "funéraire", "columbarium", "reprise", "sépulture", "caveau"],
    "foncier": ["acquisition", "terrain", "vente", "cession", "notaire", "domaine", "estimation"],
    "intercommunalité": ["communauté", "communes", "compétence", "transfert", "statuts", "EPCI", "mutualisation"],
    "transport": ["transport", "scolaire", "ligne", "autocar", "arrêt", "navette", "desserte"],
    "environnement": ["environnement", "espaces", "verts", "arbres", "plantation", "biodiversité", "haies"],
    "déchets": ["déchets", "ordures", "ménagères", "collecte", "tri", "déchetterie", "recyclage"],
    "sécurité": ["police", "municipale", "sécurité", "vidéoprotection", "caméras", "tranquillité", "patrouille"],
    "festivités": ["fête", "manifestation", "feu", "artifice", "marché", "noël", "animations"],
    "culture": ["bibliothèque", "médiathèque", "lecture", "exposition", "spectacle", "musique", "patrimoine"],
    "sport": ["stade", "gymnase", "terrain", "football", "piscine", "équipements", "sportifs"],
    "social": ["action", "sociale", "CCAS", "aide", "solidarité", "seniors", "logement"],
    "santé": ["santé", "maison", "médicale", "médecins", "cabinet", "infirmiers", "pharmacie"],
    "jeunesse": ["jeunesse", "conseil", "jeunes", "enfants", "espace", "adolescents", "projets"],
    "tourisme": ["tourisme", "office", "camping", "gîte", "randonnée", "sentiers", "hébergement"],
    "agriculture": ["agriculture", "exploitants", "agricoles", "fermage", "chemins", "ruraux", "bail"],
    "énergie": ["énergie", "photovoltaïque", "panneaux", "solaires", "production", "électricité", "contrat"],
    "numérique": ["numérique", "fibre", "optique", "informatique", "logiciel", "dématérialisation", "site"],
    "emprunt": ["emprunt", "prêt", "banque", "taux", "fixe", "remboursement", "échéances"],
    "tarifs": ["tarifs", "salle", "polyvalente", "location", "caution", "droits", "place"],
    "élections": ["élections", "bureau", "vote", "scrutin", "listes", "électorales", "délégués"],
    "gens du voyage": ["aire", "accueil", "gens", "voyage", "stationnement", "schéma", "départemental"],
    "archives": ["archives", "conservation", "élimination", "registres", "versement", "classement", "délais"],
}
COMMON_TEXT = (
    "vu le code général des collectivités territoriales considérant que le conseil municipal après en "
    "avoir délibéré décide article approuve autorise le maire à signer tout document relatif à la "
    "présente délibération dit que les crédits nécessaires sont inscrits au budget la présente décision "
    "peut faire l'objet d'un recours devant le tribunal administratif dans un délai de deux mois à "
    "compter de sa publication et de sa transmission au représentant de l'État adopté à l'unanimité des "
    "membres présents"
)
COMMON = COMMON_TEXT.split()
KINDS = [  # label, title prefix, weight
    ("délibération", "Délibération relative à", 40),
    ("arrêté", "Arrêté du maire portant", 25),
    ("décision", "Décision du maire concernant", 10),
    ("convention", "Convention de", 8),
    ("compte rendu", "Compte rendu de la réunion sur", 7),
    ("procès-verbal", "Procès-verbal de la séance :", 5),
    ("courrier", "Courrier au sujet de", 5),
]
LABELS = [label for label, _, _ in KINDS]
COMMUNES = ["Saint-Martin", "Villeneuve", "Montfort", "Beaulieu", "Fontaine", "Champagnac", "Roquebrune"]
FOLDERS = ["Finances", "Ressources humaines", "Urbanisme", "Travaux", "Enfance", "Vie associative", "Services"]


def _sentence(rng: random.Random, topic: str, length: int) -> str:
    words = TOPICS[topic]
    return " ".join(rng.choice(words) if rng.random() < 0.35 else rng.choice(COMMON) for _ in range(length))


def text_pool(rng: random.Random) -> dict[str, list[str]]:
    """For each topic, first pages of 120 to 400 words: topic words among the common words of every act."""
    pool: dict[str, list[str]] = {}
    for topic in TOPICS:
        texts = []
        for _ in range(TEXT_POOL_PER_TOPIC):
            other = rng.choice(list(TOPICS))
            body = _sentence(rng, topic, rng.randint(100, 320)) + " " + _sentence(rng, other, rng.randint(20, 80))
            texts.append(
                f"Commune de {rng.choice(COMMUNES)}. Séance du {rng.randint(1, 28)}/{rng.randint(1, 12)}. " + body
            )
        pool[topic] = texts
    return pool


@dataclass
class Corpus:
    tenant_id: str
    folder_ids: list[str]
    type_ids: dict[str, str]
    pool: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # topic → (text key, text terms)


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def two_word_queries(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """Two words of one topic, and a document type (the metadata filter)."""
    queries = []
    for _ in range(count):
        topic = rng.choice(list(TOPICS))
        first, second = rng.sample(TOPICS[topic], 2)
        queries.append((f"{first} {second}", rng.choices(LABELS, weights=[w for _, _, w in KINDS])[0]))
    return queries


# ---------------------------------------------------------------------------------------------------------
# Bulk insertion (COPY), straight into the tables


def setup_tenant(url: str, rng: random.Random) -> Corpus:
    from ged.models import DocumentType, Folder
    from socle.auth import create_tenant

    with Session(engine_for(url)) as session:
        tenant = create_tenant(session, f"bench-{uuid.uuid4().hex[:8]}", "Commune de banc d'essai")
        session.flush()
        folders = []
        for name in FOLDERS:
            folder = Folder(id=new_uuid(rng), tenant_id=tenant.id, name=name, created_by="bench", path="")
            folder.path = folder.id
            folders.append(folder)
            session.add(folder)
        types = {}
        for label in LABELS:
            kind = DocumentType(
                tenant_id=tenant.id,
                code=label.replace(" ", "_").replace("é", "e").replace("ê", "e"),
                name=label,
                fields=[{"name": "montant", "label": "Montant", "kind": "decimal", "required": False,
                         "choices": [], "retired": False}],
            )  # fmt: skip
            session.add(kind)
            types[label] = kind
        session.commit()
        return Corpus(tenant.id, [f.id for f in folders], {label: kind.id for label, kind in types.items()})


def fill_pool(corpus: Corpus, rng: random.Random) -> None:
    store = get_store()
    for topic, texts in text_pool(rng).items():
        corpus.pool[topic] = [
            (store.put(io.BytesIO(text.encode())).key, build_terms("", [], "", {}, text)) for text in texts
        ]


def generate(corpus: Corpus, rng: random.Random, count: int) -> Iterator[tuple[tuple[Any, ...], ...]]:
    """Rows for ged_documents, ged_versions and ged_search, one document at a time."""
    now = datetime.now(UTC)
    labels, weights = LABELS, [w for _, _, w in KINDS]
    prefixes = {label: prefix for label, prefix, _ in KINDS}
    for _ in range(count):
        document_id = new_uuid(rng)
        topic = rng.choice(list(TOPICS))
        label = rng.choices(labels, weights=weights)[0]
        words = rng.sample(TOPICS[topic], 3)
        title = f"{prefixes[label]} {words[0]} {words[1]} ({words[2]}) n° {rng.randint(1, 400)}"
        day = date(2005, 1, 1) + timedelta(days=rng.randint(0, 7600))
        tags = [topic] + ([rng.choice(COMMUNES)] if rng.random() < 0.3 else [])
        values = {"montant": f"{rng.randint(100, 900000)}.{rng.randint(0, 99):02d}"} if rng.random() < 0.4 else {}
        key, text_terms = rng.choice(corpus.pool[topic])
        head = head_terms(title, tags, label, values)
        terms = " ".join(head) + " " + text_terms
        folder = rng.choice(corpus.folder_ids)
        type_id = corpus.type_ids[label]
        keys = search_keys(
            document_id,
            tenant_id=corpus.tenant_id,
            type_id=type_id,
            folder_id=folder,
            document_type=label,
            tags=tags,
            document_date=day,
            head=head,
        )
        yield (
            (document_id, corpus.tenant_id, 1, folder, type_id, "bench", now, now),
            (new_uuid(rng), document_id, 1, "0" * 64, 1000, "application/pdf", "acte.pdf", title, label, day,
             json.dumps(tags), "bench", now, json.dumps(values), key, "done"),
            (document_id, corpus.tenant_id, 1, title, label, folder, type_id, day, json.dumps(tags),
             json.dumps(values), terms, keys, now),
        )  # fmt: skip


DOC_COLUMNS = "id, tenant_id, current_version, folder_id, type_id, created_by, created_at, updated_at"
VERSION_COLUMNS = (
    "id, document_id, number, object_key, size, media_type, filename, title, document_type, document_date, tags, "
    "author, created_at, field_values, text_key, text_status"
)
SEARCH_COLUMNS = (
    "document_id, tenant_id, version, title, document_type, folder_id, type_id, document_date, tags, field_values, "
    "terms, keys, updated_at"
)
GIN = "CREATE INDEX ix_ged_search_vector ON ged_search USING gin (vector)"


def insert_postgresql(dsn: str, corpus: Corpus, rng: random.Random, count: int) -> None:
    """COPY ``count`` documents by chunks (bounded memory; the table's trigger makes each vector); the GIN
    index is dropped during the load and rebuilt after (timed apart)."""
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=False) as connection:
        connection.execute("DROP INDEX IF EXISTS ix_ged_search_vector")
        with connection.cursor() as cursor:
            for first in range(0, count, CHUNK):
                rows = list(generate(corpus, rng, min(CHUNK, count - first)))
                for table, columns, position in (
                    ("ged_documents", DOC_COLUMNS, 0),
                    ("ged_versions", VERSION_COLUMNS, 1),
                    ("ged_search", SEARCH_COLUMNS, 2),
                ):
                    with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row[position])
                connection.commit()
                print(f"    {first + len(rows)} documents", flush=True)
    loaded = time.perf_counter() - started
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("SET maintenance_work_mem = '512MB'")
        connection.execute(GIN)
        for table in ("ged_search", "ged_documents", "ged_versions"):
            connection.execute(f"VACUUM ANALYZE {table}")
    built = time.perf_counter() - started - loaded
    print(f"  chargement {loaded:.0f} s, index GIN + VACUUM ANALYZE {built:.0f} s", flush=True)


# ---------------------------------------------------------------------------------------------------------
# Corpora kept between runs: one schema per size, found by the note on the schema


def schema_url(server: str, schema: str) -> str:
    return server.replace("postgresql://", "postgresql+psycopg://") + f"?options=-csearch_path%3D{schema}"


def schema_dsn(server: str, schema: str) -> str:
    return server + f"?options=-csearch_path%3D{schema}"


def corpus_note(server: str, schema: str) -> dict[str, Any] | None:
    with psycopg.connect(server, autocommit=True) as admin:
        row = admin.execute(
            "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone()
    if row is None or not row[0]:
        return None
    try:
        note: dict[str, Any] = json.loads(row[0])
    except ValueError:
        return None
    return note


def build_corpus(server: str, schema: str, size: int) -> str:
    """A schema holding ``size`` documents of one new collectivité; returns its tenant id."""
    print(f"  → construction de {schema} ({size} documents)", flush=True)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.execute(f'CREATE SCHEMA "{schema}"')
    url = schema_url(server, schema)
    upgrade_all(url)
    rng = random.Random(SEED + size)
    corpus = setup_tenant(url, rng)
    fill_pool(corpus, random.Random(SEED))
    insert_postgresql(schema_dsn(server, schema), corpus, rng, size)
    reset_engines()
    note = {"corpus": CORPUS_VERSION, "documents": size, "tenant": corpus.tenant_id}
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"COMMENT ON SCHEMA \"{schema}\" IS '{json.dumps(note)}'")
    return corpus.tenant_id


def ensure_corpus(server: str, schema: str, size: int, rebuild: bool) -> str:
    note = corpus_note(server, schema)
    if not rebuild and note and note.get("corpus") == CORPUS_VERSION and note.get("documents") == size:
        upgrade_all(schema_url(server, schema))  # a newer migration applies to a kept corpus too
        fill_pool(Corpus(note["tenant"], [], {}), random.Random(SEED))  # the texts, if the store was emptied
        print(f"  → {schema} : {size} documents déjà chargés", flush=True)
        return str(note["tenant"])
    return build_corpus(server, schema, size)


# ---------------------------------------------------------------------------------------------------------
# Measures


def load_average() -> float:
    return os.getloadavg()[0]


class Statements:
    """Counts the SQL statements of a search, and keeps them (for --explain)."""

    def __init__(self, engine: Engine) -> None:
        self.seen: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self.record)

    def record(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        self.seen.append((statement, parameters))


def measure(url: str, tenant_id: str, queries: list[tuple[str, str]], facets: bool) -> dict[str, float]:
    principal = Principal(tenant_id, "bench", "Banc", "u", "agent", "Agent", frozenset({"agent"}))
    timings, hits, estimated, statements = [], [], 0, []
    engine = engine_for(url)
    counter = Statements(engine)
    with Session(engine) as session:
        # Warm the caches as a server in use has them: other queries of the same kind (not the measured ones,
        # whose own rows would then be in memory).
        for words, label in two_word_queries(random.Random(SEED + 2), WARM_UP):
            search(session, principal, SearchQuery(q=words, document_type=label, facets=facets))
            session.rollback()
        for words, label in queries:
            counter.seen.clear()
            started = time.perf_counter()
            result = search(session, principal, SearchQuery(q=words, document_type=label, facets=facets))
            timings.append((time.perf_counter() - started) * 1000)
            hits.append(result.total)
            estimated += not result.total_exact
            statements.append(len(counter.seen))
            session.rollback()
    event.remove(engine, "before_cursor_execute", counter.record)
    by_hits = sorted(zip(hits, timings, strict=True))
    timings.sort()
    result = {
        "p50": statistics.median(timings),
        "p95": percentile(timings, 0.95),
        "max": timings[-1],
        "hits": statistics.mean(hits),
        "hits_max": max(hits),
    }
    # The cost follows the number of matches (rows read for the count, the facets and the order): by bucket.
    for low, high in BUCKETS:
        bucket = sorted(ms for found, ms in by_hits if low <= found < high)
        if bucket:
            print(f"    {low}–{high} trouvés : {len(bucket)} requêtes, p50 {statistics.median(bucket):.1f} ms, "
                  f"p95 {percentile(bucket, 0.95):.1f} ms", flush=True)  # fmt: skip
    print(f"    total estimé pour {estimated} requêtes sur {len(queries)} ; {statistics.mean(statements):.1f} "
          f"requêtes SQL par recherche (max {max(statements)})", flush=True)  # fmt: skip
    return result


def explain(url: str, tenant_id: str, words: str, label: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement of one search, as it ran."""
    principal = Principal(tenant_id, "bench", "Banc", "u", "agent", "Agent", frozenset({"agent"}))
    engine = engine_for(url)
    counter = Statements(engine)
    with Session(engine) as session:
        started = time.perf_counter()
        result = search(session, principal, SearchQuery(q=words, document_type=label))
        elapsed = (time.perf_counter() - started) * 1000
        session.rollback()
    event.remove(engine, "before_cursor_execute", counter.record)
    print(f"  « {words} » + type « {label} » : {result.total} trouvés (exact : {result.total_exact}), "
          f"{elapsed:.1f} ms, {len(counter.seen)} requêtes", flush=True)  # fmt: skip
    with engine.connect() as connection:
        connection.exec_driver_sql("SET work_mem = '64MB'")
        connection.exec_driver_sql("SET enable_seqscan = off")
        for statement, parameters in counter.seen:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            plan = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).scalars()
            print("    " + statement.replace("\n", " ")[:300], flush=True)
            for line in plan:
                print("      " + line, flush=True)


def percentile(values: list[float], share: float) -> float:
    return values[max(0, int(len(values) * share + 0.5) - 1)]


def show(label: str, size: int, result: dict[str, float]) -> None:
    print(
        f"| {label} | {size:,} | {result['p50']:.1f} | {result['p95']:.1f} | {result['max']:.1f} | ".replace(",", " ")
        + f"{result['hits']:.0f} (max {result['hits_max']:.0f}) | {load_average():.1f} |",
        flush=True,
    )


def reindex_with_interruption(url: str, stop_after: float) -> dict[str, float]:
    """``socle ged reindex`` as a real command: SIGTERM after ``stop_after`` seconds, then resumed."""
    env = {**os.environ, "SOCLE_DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "socle", "ged", "reindex", "--batch-size", "500", "--restart"]
    started = time.perf_counter()
    first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = [peak_rss_kib(first, until=time.perf_counter() + stop_after)]
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate()
    first_time = time.perf_counter() - started
    stopped_at = [line for line in err.splitlines() if "documents indexés" in line][-1]
    second = subprocess.Popen(
        command[:-1], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peaks.append(peak_rss_kib(second))
    out, err = second.communicate()
    assert second.returncode == 0, err
    resumed = subprocess.CompletedProcess(command, 0, out, err)
    total = time.perf_counter() - started
    peak_kib = max(peaks)
    print(f"  arrêt (code {first.returncode}) après {first_time:.0f} s à « {stopped_at} » ; reprise : "
          f"{resumed.stdout.strip()}", flush=True)  # fmt: skip
    return {"total_s": total, "peak_rss_mib": peak_kib / 1024, "first_s": first_time}


def peak_rss_kib(process: subprocess.Popen[str], until: float | None = None) -> int:
    """The child's own peak RSS (VmHWM, reset by exec: not the parent's pages it was forked with), sampled
    until it exits or ``until``. getrusage(RUSAGE_CHILDREN) would count the forked copy of this process."""
    peak = 0
    while process.poll() is None and (until is None or time.perf_counter() < until):
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:
            break
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
        time.sleep(0.2)
    return peak


def sqlite_copy(source_dsn: str, path: Path, note: dict[str, Any]) -> str:
    """The same documents in a migrated SQLite database (FTS5 fed by its triggers, as in production), kept
    next to the object store and rebuilt when its note does not match the PostgreSQL corpus's."""
    url = f"sqlite:///{path}"
    marker = path.with_suffix(".json")
    if path.exists() and marker.exists() and json.loads(marker.read_text()) == note:
        upgrade_all(url)
        print(f"  copie SQLite {path.name} déjà faite", flush=True)
        return url
    path.unlink(missing_ok=True)
    upgrade_all(url)
    started = time.perf_counter()
    target = sqlite3.connect(path)
    with psycopg.connect(source_dsn) as source:
        for table, columns in (
            ("tenants", "id, slug, name, siren, created_at"),
            ("ged_folders", "id, tenant_id, parent_id, name, code, path, created_by, created_at"),
            ("ged_document_types", "id, tenant_id, code, name, fields, schema_version, dua_months, dua_event, "
             "final_action, created_at, updated_at"),
            ("ged_documents", DOC_COLUMNS),
            ("ged_search", SEARCH_COLUMNS),
        ):  # fmt: skip
            marks = ", ".join("?" for _ in columns.split(","))
            cursor = source.cursor(name=f"copy_{table}")
            cursor.execute(f"SELECT {columns} FROM {table}")
            while batch := cursor.fetchmany(5000):
                target.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                    [tuple(map(_sqlite_value, row)) for row in batch],
                )
            target.commit()
    target.execute("ANALYZE")
    target.close()
    marker.write_text(json.dumps(note))
    print(f"  copie SQLite (FTS5 par déclencheurs) {time.perf_counter() - started:.0f} s", flush=True)
    return url


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


# ---------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/test", help="Base PostgreSQL")
    parser.add_argument("--schema-prefix", default="ged_bench", help="Schémas gardés : <préfixe>_<taille>")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sqlite-at", type=int, default=100_000, help="Taille où mesurer SQLite (0 : non)")
    parser.add_argument("--reindex-at", type=int, default=0, help="Taille où mesurer la réindexation (0 : non)")
    parser.add_argument("--no-facets", action="store_true", help="Seulement les recherches sans facettes")
    parser.add_argument("--explain", action="store_true", help="Plans (EXPLAIN ANALYZE) d'une recherche")
    parser.add_argument("--rebuild", action="store_true", help="Reconstruire les corpus même s'ils existent")
    parser.add_argument("--drop", action="store_true", help="Supprimer les corpus à la fin")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    queries = two_word_queries(random.Random(SEED + 1), args.queries)
    WORK.mkdir(parents=True, exist_ok=True)
    print("| base | documents | p50 (ms) | p95 (ms) | max (ms) | trouvés (moy.) | charge |")
    print("|---|---|---|---|---|---|---|")
    schemas = []
    try:
        for size in sizes:
            schema = f"{args.schema_prefix}_{size}"
            schemas.append(schema)
            tenant_id = ensure_corpus(args.server, schema, size, args.rebuild)
            url = schema_url(args.server, schema)
            if args.explain:
                explain(url, tenant_id, *queries[0])
                continue
            for facets in (False,) if args.no_facets else (True, False):
                label = f"PostgreSQL, {'avec' if facets else 'sans'} facettes"
                show(label, size, measure(url, tenant_id, queries, facets=facets))
            if size == args.sqlite_at:
                note = corpus_note(args.server, schema) or {}
                sqlite_url = sqlite_copy(schema_dsn(args.server, schema), WORK / f"sqlite-{size}.db", note)
                for facets in (False,) if args.no_facets else (True, False):
                    label = f"SQLite, {'avec' if facets else 'sans'} facettes"
                    show(label, size, measure(sqlite_url, tenant_id, queries, facets=facets))
            if size == args.reindex_at:
                result = reindex_with_interruption(url, stop_after=20)
                print(f"  réindexation de {size} documents : {result['total_s']:.0f} s au total, "
                      f"RSS max {result['peak_rss_mib']:.0f} Mio", flush=True)  # fmt: skip
                with psycopg.connect(schema_dsn(args.server, schema), autocommit=True) as connection:
                    connection.execute("VACUUM ANALYZE ged_search")
    finally:
        reset_engines()
        if args.drop:
            with psycopg.connect(args.server, autocommit=True) as admin:
                for schema in schemas:
                    admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
