"""search: the k nearest images of an existing output to each query image or folder.

Extract: the query files (sparkdup.listing for folders), the persisted neighbour index
(<output>/_index/<run>/: meta.json with backend, dim and bucket centroids, and the
buckets' index files), the `embeddings` table's model name, and `images` /
`duplicate_groups` rows of the images found. Transform (sparkdup.udfs.search): each
query is decoded with ingest's limits, gets ingest's signature and content hash, is
embedded with the same model, searched in its neighbors.probe_buckets nearest buckets,
and its k best hits are marked `duplicate` by analyze's verified rule. Load: nothing;
the hits are printed (a table, or with --json one JSON object per line) and no `runs`
row is written (READ_ONLY).

It runs on the driver: a search is a handful of images, and each probed bucket's index
is read (Spark's Parquet reader, so any Hadoop filesystem) and loaded once; a Spark job
per query would cost more in scheduling than the search itself. The index is found by
listing `<output>/_index` and its meta.json names the model, so no table is read before
the queries are embedded; the `images` and `duplicate_groups` tables are resolved in a
thread meanwhile and read filtered to the hits only (signatures only for the hits the
duplicate rule compares): with pyarrow straight from a local output's files
(sparkdup.lookup), through Spark elsewhere.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkdup import indexes, lookup
from sparkdup.decoded import decode_limits
from sparkdup.errors import OutputError
from sparkdup.listing import is_local, list_input, wanted_extensions
from sparkdup.stage import add_setting_flags
from sparkdup.tables import path_exists, read_table, table_path
from sparkdup.udfs import backends
from sparkdup.udfs.search import Query, embed_queries, is_duplicate, prepare, probed_buckets, top_k

log = logging.getLogger("sparkdup")

READ_ONLY = True  # sparkdup.stage.run_stage records no `runs` row for it
COLUMNS = ["query", "rank", "path", "similarity", "group_id", "duplicate"]


# ---------------------------------------------------------------- extract
def read_queries(spark: SparkSession, sources: list[str], cfg: dict) -> list[Query]:
    """Every query file, prepared; folders are listed like ingest lists its input."""
    ing = cfg["ingest"]
    wanted = wanted_extensions(ing["extensions"], ing["all_pillow_formats"])
    limits = decode_limits(cfg)
    queries, remote = [], []
    for source in sources:
        for e in list_input(spark, source, wanted, ing["include_hidden"]).entries:
            if e.error is not None or not is_local(e.path):
                if e.error is not None:
                    queries.append(prepare(e.path, None, limits, e.error))
                else:
                    remote.append(e.path)
                continue
            try:
                with open(e.local, "rb") as f:
                    data = f.read(limits.max_file_bytes + 1)
            except OSError as exc:
                queries.append(prepare(e.path, None, limits, f"{type(exc).__name__}: {exc}"))
                continue
            queries.append(prepare(e.path, data, limits))
    if remote:
        rows = spark.read.format("binaryFile").load(remote).select("path", "content").collect()
        queries += [prepare(r["path"], bytes(r["content"]), limits) for r in rows]
    return queries


def index_root(spark: SparkSession, output: str) -> str:
    """The index the last neighbors run left (found by listing `<output>/_index`, no table
    read: sparkdup.indexes.latest_root)."""
    root = indexes.latest_root(spark, output)
    if root is None:
        raise OutputError(f"{output} has no neighbour index to search (made before search existed, or with "
                          f"neighbors.keep_index=false): rerun `sparkdup neighbors --output {output}`")
    return root


def model_of(spark: SparkSession, output: str, meta: dict | None = None) -> str:
    """The model of the stored vectors: from the index's meta.json (written since it records
    it), else from the `embeddings` table."""
    if meta is not None and meta.get("model"):
        return meta["model"]
    row = read_table(spark, output, "embeddings").select("model").where(F.col("model").isNotNull()).first()
    if row is None:
        raise OutputError(f"the embeddings table of {output} is empty: rerun `sparkdup embed` and `sparkdup neighbors`")
    return row["model"]


def hit_tables(spark: SparkSession, output: str) -> tuple:
    """(images, duplicate_groups or None), each ready to be filtered to the hits: a pyarrow
    dataset over a local output's files (sparkdup.lookup: no Spark job, milliseconds), else
    a Spark frame (each Delta table's log read once). Run in a thread while the queries are
    embedded and searched."""
    def one(name: str, columns: list[str]):
        local = lookup.open_table(output, name)
        return local if local is not None else read_table(spark, output, name).select(*columns)

    images = one("images", ["image_id", "path", "content_hash", "signature"])
    groups = (one("duplicate_groups", ["image_id", "group_id"])
              if path_exists(spark, table_path(output, "duplicate_groups")) else None)
    return images, groups


def rows_of(table, columns: list[str], ids) -> dict[int, dict]:
    """image_id -> {columns} of the rows of `ids` in a hit_tables() table (a filtered read of
    those columns: pyarrow for a local dataset, else a Spark scan collected)."""
    if not isinstance(table, DataFrame):
        return lookup.rows_by_id(table, columns, ids)
    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    return {int(r["image_id"]): r.asDict()
            for r in table.select("image_id", *columns).where(F.col("image_id").isin(wanted)).collect()}


# ---------------------------------------------------------------- transform
def query_index(spark: SparkSession, root: str, vectors: np.ndarray, k: int, nb: dict,
                meta: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) image ids and similarities: each vector searched in its probed buckets (only
    those buckets' index files are read, sparkdup.indexes.load_bucket_at)."""
    meta = meta if meta is not None else indexes.read_meta(spark, root)
    buckets = probed_buckets(vectors, meta["centroids"], int(nb["probe_buckets"]))
    params = backends.Params.from_config(nb, 1)
    opened = {int(b): indexes.load_bucket_at(spark, root, int(b), meta["backend"], meta["dim"], nb["index_dir"] or None)
              for b in np.unique(buckets)}
    candidates = []
    for col in range(buckets.shape[1]):
        for b in np.unique(buckets[:, col]):
            if opened[int(b)] is None:  # an empty bucket: nothing indexed there
                continue
            rows = np.flatnonzero(buckets[:, col] == b)
            ids, sims = backends.empty(len(vectors), k)
            ids[rows], sims[rows] = backends.query_index(opened[int(b)], vectors[rows], k, params)
            candidates.append((ids, sims))
    return top_k(candidates, len(vectors), k)


def hits_of(spark: SparkSession, output: str, ids: list[int], tables: tuple | None = None,
            verify: set[int] | None = None) -> dict[int, dict]:
    """image_id -> path, content_hash, signature, group_id of the images found (`tables`:
    hit_tables()'s tables, when already resolved). Signatures are read only for `verify`
    (the hits close enough for the duplicate rule to compare pixels; None: all of them):
    image ids are hashes, so no row group can be skipped and a signature read scans the
    column of every image."""
    if not ids:
        return {}
    images, groups = tables if tables is not None else hit_tables(spark, output)
    verify = set(ids) if verify is None else verify & set(ids)
    # Filtered reads joined here: a Spark join would add a shuffle (its tasks cost more than
    # the handful of rows it joins).
    group_of = {} if groups is None else {i: r["group_id"] for i, r in rows_of(groups, ["group_id"], ids).items()}
    found = {i: r | {"signature": None} for i, r in rows_of(images, ["path", "content_hash"], ids).items()}
    for i, r in rows_of(images, ["signature"], verify).items():
        found[i]["signature"] = None if r["signature"] is None else bytes(r["signature"])
    for image_id, row in found.items():
        row["group_id"] = group_of.get(image_id)
    return found


def to_verify(ids: np.ndarray, sims: np.ndarray, min_similarity: float) -> set[int]:
    """The hits whose pixels the duplicate rule compares (cosine >= analyze.duplicate_similarity)."""
    close = np.isfinite(sims) & (sims >= min_similarity)
    return {int(i) for i in ids[close]}


def find(spark: SparkSession, cfg: dict, output: str, sources: list[str], k: int | None = None) -> list[dict]:
    """The search itself: one row per (query, hit) in rank order, or one row per query that
    could not be decoded (its status and error, no hit)."""
    nb, an = cfg["neighbors"], cfg["analyze"]
    k = int(k if k is not None else nb["k"])
    root = index_root(spark, output)
    meta = indexes.read_meta(spark, root)
    # The two tables the hits are looked up in are resolved meanwhile (a Delta table's first
    # read replays its log: seconds each, mostly waiting, not computing).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sparkdup-search-tables") as pool:
        tables = pool.submit(hit_tables, spark, output)
        queries = read_queries(spark, sources, cfg)
        embed_queries(queries, model_of(spark, output, meta), int(cfg["embed"]["batch_size"]), cfg["embed"]["resize"])
        ok = [q for q in queries if q.vector is not None]
        ids, sims = (query_index(spark, root, np.stack([q.vector for q in ok]), k, nb, meta) if ok
                     else (np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)))
        found = hits_of(spark, output, sorted({int(i) for i, s in zip(ids.ravel(), sims.ravel()) if np.isfinite(s)}),
                        tables.result(), to_verify(ids, sims, an["duplicate_similarity"]))
    rows, at = [], {id(q): n for n, q in enumerate(ok)}
    for q in queries:
        if q.vector is None:
            rows.append({"query": q.name, "status": q.status if q.status != "ok" else "not_embedded",
                         "error": q.error, "rank": None, "path": None, "similarity": None, "group_id": None,
                         "duplicate": None})
            continue
        n = at[id(q)]
        for rank, (i, s) in enumerate(((int(i), float(s)) for i, s in zip(ids[n], sims[n]) if np.isfinite(s)), 1):
            hit = found.get(i, {})
            rows.append({"query": q.name, "status": "ok", "error": None, "rank": rank, "path": hit.get("path"),
                         "similarity": round(s, 6), "group_id": hit.get("group_id"),
                         "duplicate": is_duplicate(q, hit.get("content_hash"), hit.get("signature"), s,
                                                   an["duplicate_similarity"], an)})
    return rows


# ---------------------------------------------------------------- load (print)
def format_table(rows: list[dict]) -> str:
    """Aligned columns for a terminal; a query that failed shows its status and error."""
    cells = [COLUMNS] + [[r["query"], "", f"{r['status']}: {r['error']}", "", "", ""] if r["status"] != "ok" else
                         [r["query"], str(r["rank"]), str(r["path"]), f"{r['similarity']:.4f}",
                          "" if r["group_id"] is None else str(r["group_id"]), str(r["duplicate"]).lower()]
                         for r in rows]
    widths = [max(len(c[j]) for c in cells) for j in range(len(COLUMNS))]
    return "\n".join("  ".join(c[j].ljust(widths[j]) for j in range(len(COLUMNS))).rstrip() for c in cells)


def format_json(rows: list[dict]) -> str:
    keys = ["query", "path", "similarity", "group_id", "duplicate"]
    return "\n".join(json.dumps({key: r[key] for key in keys} | ({"rank": r["rank"]} if r["status"] == "ok" else
                                                                 {"status": r["status"], "error": r["error"]}))
                     for r in rows)


# ---------------------------------------------------------------- job
def _preload_model(name: str, wait_s: float = 300.0) -> None:
    """Load the model while the JVM builds its SparkContext: both take about 20 s, mostly
    on different cores. Loading starts once the JVM is launched (its gateway is up), because
    the model load points descriptor 2 at a filter for a moment and a JVM spawned then would
    inherit the filter as its stderr. A failure is left for the search's own load to report."""
    from pyspark import SparkContext

    from sparkdup.udfs.embed import get_model

    deadline = time.time() + wait_s
    while SparkContext._gateway is None and time.time() < deadline:  # noqa: SLF001
        time.sleep(0.05)
    try:
        get_model(name)
    except Exception:  # noqa: BLE001 - the search loads it again and says what is wrong
        log.debug("search: preloading %s failed", name, exc_info=True)


def before_work(cfg, args: argparse.Namespace) -> None:
    """Before Spark starts: begin loading the configured model in the background (the
    model of the existing embeddings is checked in find(); a different one loads there)."""
    from sparkdup.models.registry import model_name, with_size

    emb = cfg["embed"]
    name = with_size(model_name(emb["model"], emb["weights"]), emb["input_size"])
    threading.Thread(target=_preload_model, args=(name,), name="sparkdup-model-preload", daemon=True).start()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("queries", nargs="+", metavar="IMAGE_OR_FOLDER", help="query image files or folders")
    add_setting_flags(parser, "--k")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")


def run(spark: SparkSession, cfg: dict, args: argparse.Namespace, run_id: str) -> dict:
    # A search joins a few rows: one shuffle partition per core, not Spark's 200.
    spark.conf.set("spark.sql.shuffle.partitions", str(spark.sparkContext.defaultParallelism))
    rows = find(spark, cfg, args.output, list(args.queries))
    text = format_json(rows) if getattr(args, "json", False) else format_table(rows)
    if text:
        print(text, flush=True)
    return {"queries": len({r["query"] for r in rows}), "hits": sum(r["status"] == "ok" for r in rows)}


if __name__ == "__main__":
    from sparkdup.stage import main_for

    sys.exit(main_for(sys.modules[__name__]))
