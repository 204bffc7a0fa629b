"""neighbors: the k nearest neighbours of every embedded image, by cosine similarity.

Extract: `embeddings` (L2-normalised vectors) and `images` (content hashes). Transform:
approximate or exact top-k search, plus byte-identical links. Load: `neighbors`
(src, dst, rank, similarity, source, run_id), k rows per embedded image (n-1 when fewer).

Backends (neighbors.backend, --backend): faiss_hnsw (HNSW graph, inner product), annoy
(random-projection trees, angular), exact (blocked matrix product, for small data and for
measuring recall). Approximate backends partition the space into buckets: spherical
k-means centroids fitted on a bounded sample collected to the driver; every vector is
indexed in its nearest bucket and queried in its `probe_buckets` nearest ones; the
candidates of the probed buckets are merged into the global top k on the executors.
Small inputs (at most bucket_target_size vectors) use one bucket.

Where indexes are built (sparkdup.indexes): on the executors, one task per bucket, from
that bucket's vectors (a shuffle by bucket), written under the output location as
`<output>/_index/<run_id>/bucket=<n>/` through Spark's writer (so any Hadoop filesystem).
Query rows go to the index: each bucket's query rows get a few partitions of their own (at
most neighbors.index_copies), Spark reads only the queried buckets' index files and
sends each such partition the pieces of its bucket's index ahead of its query rows; the
query task reassembles it once per machine (sparkdup.udfs.backends.query_partition).
Annoy indexes, exact matrices and id files are memory-mapped, so the workers of one
machine share one copy in the page cache; faiss 1.9 cannot memory-map an HNSW index, so
each Python worker reads the index of the bucket it queries into memory once (about
4 dim + 8 M bytes per vector; one bucket at a time per worker). No task sees an index of
a bucket it does not query. The driver handles the centroids, bucket sizes and file names
only. At most max_bucket_size vectors are indexed per bucket (logged when hit). The index
stays after the run (neighbors.keep_index), with meta.json beside it (backend, dim,
centroids: what `sparkdup search` and --append need), earlier runs' indexes are removed. Vectors
travel through the stage's cache and shuffles as float32 bytes, or float16
(neighbors.vector_dtype: half the bytes, recall@10 0.9986 against 0.9994 measured) and
are float32 again in the tasks.

Byte-identical images (same content_hash in `images`, status ok) are always linked with
source 'hash' and similarity 1.0, whatever the index returns; an index edge to the same
image becomes the hash edge. Groups of up to hash_group_max members are linked all pairs
(both directions); larger groups are linked as a star on the group's first member
(smallest image_id) plus a ring (each member to the next, the last to the first), both directions:
about 4 edges per member instead of n^2, still one connected group for the analyze
stage. An image keeps all its hash edges even when they outnumber k; index edges fill
the rest up to k. An ok image without an embedding gets its hash edges only.
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from typing import Iterator

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from sparkdup import indexes
from sparkdup.errors import ConfigError
from sparkdup.progress import track
from sparkdup.stage import add_append_flag, add_setting_flags
from sparkdup.tables import read_table, write_table
from sparkdup.udfs import backends
from sparkdup.udfs.buckets import fit_centroids

log = logging.getLogger("sparkdup")

NEIGHBOR_COLUMNS = ["src", "dst", "rank", "similarity", "source", "run_id"]
ASSIGNED_SCHEMA = "image_id long, buckets array<int>, vec binary"
CANDIDATE_SCHEMA = "src long, dst array<long>, sim array<double>"
ARROW_BATCH_KEY = "spark.sql.execution.arrow.maxRecordsPerBatch"


# ---------------------------------------------------------------- planning
def phase(spark: SparkSession, what: str | None) -> None:
    """Name the Spark jobs that follow (the Spark UI and event log show it; the driver-memory
    benchmark sums its per-phase figures by it); None clears it."""
    spark.sparkContext.setJobDescription(None if what is None else f"neighbors: {what}")


def choose_buckets(n: int, nb: dict) -> int:
    """neighbors.buckets when set, else one bucket per bucket_target_size vectors (>= 1)."""
    if n <= 0:
        return 1
    if int(nb["buckets"]) > 0:
        return max(1, min(int(nb["buckets"]), n))
    return max(1, math.ceil(n / int(nb["bucket_target_size"])))


def embedding_stats(emb: DataFrame) -> tuple[int, int, str | None]:
    """(vectors, dim, model or None) of an `embeddings` frame in one pass; refuses mixed
    dimensions or models. Counts the rows with an embedding from the `dim` column when the
    frame has one (the embed stage writes only rows with a vector and their length there), so
    the pass reads two small columns instead of every vector; the executors still check each
    vector's length against dim (udfs.buckets.assign_batch)."""
    if "dim" in emb.columns:
        size = F.col("dim")
    else:
        emb, size = emb.where(F.col("embedding").isNotNull()), F.size("embedding")
    aggs = [F.count(size).alias("n"), F.min(size).alias("lo"), F.max(size).alias("hi")]
    if "model" in emb.columns:
        aggs += [F.countDistinct("model").alias("models"), F.max("model").alias("model")]
    row = emb.agg(*aggs).first()
    n = int(row["n"])
    model = row["model"] if "model" in emb.columns else None
    if n == 0:
        return 0, 0, model
    if row["lo"] != row["hi"]:
        raise ConfigError(f"embeddings mixes vector sizes {row['lo']} and {row['hi']}: re-run embed")
    if "model" in emb.columns and row["models"] > 1:
        raise ConfigError(f"embeddings holds vectors of {row['models']} models: re-run embed with one model")
    return n, int(row["lo"]), model


# ---------------------------------------------------------------- executors: per-batch wrappers
def _assign(centroids: np.ndarray | None, probe: int, dim: int, dtype: str = "float32"):
    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from sparkdup.udfs.buckets import assign_batch

        for pdf in batches:
            yield assign_batch(pdf, centroids, probe, dim, dtype)
    return fn


def _query(plan: backends.QueryPlan):
    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from sparkdup.udfs.backends import query_partition

        yield from query_partition(batches, plan)
    return fn


def _merge(k: int):
    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from sparkdup.udfs.merge import merge_batch

        for pdf in batches:
            yield merge_batch(pdf, k)
    return fn


# ---------------------------------------------------------------- driver: sample, build, ship
def sample_vectors(emb: DataFrame, n: int, size: int, dim: int, seed: int) -> np.ndarray:
    """A bounded random sample of the vectors, streamed to the driver into one preallocated
    float32 matrix (fit_centroids normalises it in place): the driver holds the sample
    once, not as rows, then a stacked copy (at 20,000 x 1280-d each copy is 100 MB)."""
    fraction = min(1.0, 1.2 * size / max(n, 1))
    sample = emb.sample(False, fraction, seed) if fraction < 1.0 else emb
    packed = sample.limit(size).select("image_id", "embedding").mapInPandas(_assign(None, 1, dim), ASSIGNED_SCHEMA)
    vecs, got = np.empty((min(size, n), dim), np.float32), 0
    for row in packed.toLocalIterator():  # (packed as float32)
        vecs[got] = np.frombuffer(row["vec"], np.float32)
        got += 1
    if n > size:
        log.info("neighbors: bucket centroids fitted on a sample of %d of %d vectors (neighbors.sample_size=%d)",
                 got, n, size)
    return vecs[:got]


def bucket_counts(assigned: DataFrame, n: int, n_buckets: int) -> tuple[dict[int, int], dict[int, int]]:
    """(vectors indexed per bucket, query rows per bucket), one small aggregation."""
    if n_buckets == 1:
        return {0: n}, {0: n}
    rows = (assigned.select(F.posexplode("buckets").alias("probe", "bucket")).groupBy("bucket")
            .agg(F.sum((F.col("probe") == 0).cast("long")).alias("primary"), F.count(F.lit(1)).alias("queries"))
            .collect())
    return ({int(r["bucket"]): int(r["primary"]) for r in rows if r["primary"]},
            {int(r["bucket"]): int(r["queries"]) for r in rows})


def build_indexes(spark: SparkSession, assigned: DataFrame, backend: str, sizes: dict[int, int], dim: int,
                  n_buckets: int, nb: dict, root: str) -> dict[int, str]:
    """One index per bucket, built by one executor task each and written under `root`;
    returns bucket -> URI of its chunk file."""
    primary = assigned.select(F.col("buckets")[0].alias("bucket"), "image_id", "vec")
    limit = int(nb["exact_max_rows"]) if backend == "exact" else int(nb["max_bucket_size"])
    over = {b: c for b, c in sizes.items() if c > limit}
    if over:  # (search() refuses the exact backend over its limit, so this is an approximate one)
        log.warning("neighbors: %d bucket(s) over neighbors.max_bucket_size=%d (%s): only %d vectors of each "
                    "are indexed; the other %d vectors still get neighbours but cannot be found as one",
                    len(over), limit, ", ".join(f"bucket {b}: {c}" for b, c in sorted(over.items())), limit,
                    sum(c - limit for c in over.values()))
        keep = F.lit(True)
        for b, c in over.items():  # thin overfull buckets; the build task caps exactly
            keep = keep & ((F.col("bucket") != b) | (F.rand(int(nb["seed"])) < min(1.0, 1.05 * limit / c)))
        primary = primary.where(keep)
    log.info("neighbors: building %s index(es) for %d bucket(s) on the executors under %s, sizes %s",
             backend, len(sizes), root, ", ".join(str(sizes[b]) for b in sorted(sizes)) if len(sizes) <= 20
             else f"{min(sizes.values())}-{max(sizes.values())}")
    plan = backends.BuildPlan(backend=backend, dim=dim, params=_params(spark, nb, build=True), max_rows=limit,
                              sizes=sizes)
    indexes.build(spark, primary, plan, n_buckets, root)
    return indexes.bucket_files(spark, root)


def index_copies(spark: SparkSession, nb: dict) -> int:
    """Most query partitions per bucket: neighbors.index_copies, and in local mode at most the
    cores. Copies exist to spread a bucket's queries over machines; on one machine every copy
    after the first is reassembled by nobody (the first task's file is reused), so copies
    beyond the cores only ship the index again without adding parallelism."""
    copies = int(nb["index_copies"])
    sc = spark.sparkContext
    return min(copies, max(1, sc.defaultParallelism)) if sc.master.startswith("local") else copies


def _params(spark: SparkSession, nb: dict, build: bool = False) -> backends.Params:
    threads = int(spark.conf.get("spark.task.cpus", "1"))
    if build and int(nb["build_threads"]) > 0:
        threads = int(nb["build_threads"])
    return backends.Params.from_config(nb, threads)


# ---------------------------------------------------------------- the search
def search(spark: SparkSession, emb: DataFrame, nb: dict, root: str,
           persisted: list | None = None, fitted: dict | None = None,
           queried: DataFrame | None = None, grow: dict | None = None,
           stats: tuple | None = None) -> DataFrame | None:
    """Top-k candidates per embedded image: (src, dst array, sim array), self excluded.
    None when there is nothing to search. Frames it persists are appended to `persisted`
    (unpersist them once the result is written). --append (sparkdup.append_neighbors)
    passes the previous index's meta as `fitted`, whose centroids are kept (every vector,
    old and new, goes to its nearest existing bucket), `queried` (image_id), the only
    vectors searched for, and `grow` ({"new": (image_id) of the new vectors,
    "previous_root": the previous index}): that index is grown instead of rebuilt; `stats`:
    embedding_stats() of `emb` when the caller has it (a pass over the table less)."""
    backend, k = nb["backend"], int(nb["k"])
    phase(spark, "vector count and size")
    # model: the vectors' model, for `sparkdup search` (it embeds its queries with it without reading a table).
    n, dim, model = stats if stats is not None else embedding_stats(emb)
    emb = emb.where(F.col("embedding").isNotNull())
    emb = emb.select("image_id", "embedding")
    if n == 0:
        log.warning("neighbors: embeddings is empty, only byte-identical links are written")
        return None
    if backend == "exact" and n > int(nb["exact_max_rows"]):
        raise ConfigError(f"the exact backend searches at most neighbors.exact_max_rows={nb['exact_max_rows']} "
                          f"vectors, embeddings has {n}: use --backend faiss_hnsw or annoy, or raise the limit")
    seed = int(nb["seed"])
    n_buckets = 1 if backend == "exact" else choose_buckets(n, nb)
    centroids = None
    if fitted is not None:
        n_buckets = int(fitted["buckets"])
        centroids = None if fitted["centroids"] is None else np.asarray(fitted["centroids"], np.float32)
        fitted_on = int(fitted["vectors"])
    elif n_buckets > 1:
        phase(spark, "centroid sample")
        sample = sample_vectors(emb, n, int(nb["sample_size"]), dim, seed)
        if len(sample) < 20 * n_buckets:
            log.warning("neighbors: %d sampled vectors for %d buckets: centroids will be rough "
                        "(raise neighbors.sample_size)", len(sample), n_buckets)
        centroids = fit_centroids(sample, n_buckets, int(nb["kmeans_iterations"]), seed, overwrite=True)
        n_buckets = len(centroids)
    if fitted is None:
        fitted_on = n
    probe = min(int(nb["probe_buckets"]), n_buckets)
    log.info("neighbors: %d vectors of %d dimensions, backend %s, %d bucket(s), probing %d, k=%d",
             n, dim, backend, n_buckets, probe, k)

    assigned = emb.mapInPandas(_assign(centroids, probe, dim, nb["vector_dtype"]), ASSIGNED_SCHEMA)
    # Used 3 times (sizes, build, query), so cached, on disk only: as bytes either way (Python
    # rows), and the memory store's copy competed with the tasks for the heap: at 1,000,000
    # 256-d vectors a 1 GB local JVM ran out of heap building its cached batches (BENCHMARKS.md,
    # "Driver memory ... synthetic").
    assigned = assigned.persist(StorageLevel.DISK_ONLY)
    if persisted is not None:
        persisted.append(assigned)
    if grow is None:
        phase(spark, "bucket assignment and sizes")
        sizes, asked = bucket_counts(assigned, n, n_buckets)
        phase(spark, "index build")
        files = build_indexes(spark, assigned, backend, sizes, dim, n_buckets, nb, root)
    else:  # --append: the previous index grows (sparkdup.append_neighbors)
        from sparkdup.append_neighbors import grow_indexes

        phase(spark, "index growth")
        limit = int(nb["exact_max_rows"]) if backend == "exact" else int(nb["max_bucket_size"])
        build = backends.BuildPlan(backend=backend, dim=dim, params=_params(spark, nb, build=True), max_rows=limit,
                                   sizes={})
        sizes = grow_indexes(spark, assigned, grow["new"], fitted, grow["previous_root"], root, build, n_buckets)
        files = indexes.bucket_files(spark, root)
    # sizes: the vectors each bucket's index holds, which tells the next --append which buckets lost one.
    indexes.write_meta(spark, root, {"backend": backend, "dim": dim, "buckets": n_buckets, "vectors": fitted_on,
                                     "model": model, "centroids": None if centroids is None else centroids.tolist(),
                                     "sizes": {str(b): int(c) for b, c in sorted(sizes.items())}})
    plan = backends.QueryPlan(backend=backend, dim=dim, k=k, files={b: u.rsplit("/", 1)[1] for b, u in files.items()},
                              params=_params(spark, nb), local_dir=nb["index_dir"] or None)
    phase(spark, "query layout")
    if queried is not None:  # --append: only the new vectors are searched for
        assigned = assigned.join(queried, "image_id", "left_semi")
        _, asked = bucket_counts(assigned, assigned.count(), n_buckets)
    layout = indexes.layout(asked, int(nb["query_rows_per_partition"]), index_copies(spark, nb),
                            spark.sparkContext.defaultParallelism)
    queries = assigned.select("image_id", F.posexplode("buckets").alias("probe", "bucket"), "vec")
    routed = indexes.route(spark, queries.select("bucket", "image_id", "vec"), root, layout, set(files))
    candidates = routed.mapInPandas(_query(plan), CANDIDATE_SCHEMA)
    if probe > 1:
        grouped = candidates.groupBy("src").agg(F.collect_list(F.struct("dst", "sim")).alias("c"))
        grouped = grouped.select("src", F.flatten(F.transform("c", lambda s: s["dst"])).alias("dst"),
                                 F.flatten(F.transform("c", lambda s: s["sim"])).alias("sim"))
        candidates = grouped.mapInPandas(_merge(k), CANDIDATE_SCHEMA)
    return candidates


def hash_edges(images: DataFrame, group_max: int) -> DataFrame:
    """(src, dst) links between byte-identical images (status ok), both directions.

    One shuffle: the members' ids are gathered per content_hash, sorted (8 bytes a member,
    so even a million copies of one placeholder image make an 8 MB row), then each member
    emits its own edges. Groups up to group_max members: all pairs. Larger groups: a star
    on the first member (smallest image_id: it links to every member, every member to it)
    plus a ring (each member to the next and the previous one, wrapping around)."""
    ok = images.where((F.col("status") == "ok") & F.col("content_hash").isNotNull())
    groups = (ok.groupBy("content_hash")
              .agg(F.array_sort(F.collect_set("image_id")).alias("m"))
              .select("m", F.size("m").alias("n"))
              .where(F.col("n") > 1))
    members = groups.select("m", "n", F.posexplode("m").alias("i", "src"))
    i, n, m = F.col("i"), F.col("n"), F.col("m")
    ring_star = F.array(m[0], F.element_at(m, ((i + 1) % n + 1).cast("int")),
                        F.element_at(m, ((i + n - 1) % n + 1).cast("int")))
    targets = F.when((n <= group_max) | (i == 0), m).otherwise(F.array_distinct(ring_star))
    return (members.select("src", F.explode(targets).alias("dst"))
            .where(F.col("src") != F.col("dst")))


def assemble(candidates: DataFrame | None, links: DataFrame, k: int, index_source: str,
             run_id: str) -> DataFrame:
    """Index edges + hash edges -> ranked neighbours: a hash edge wins over an index edge to the
    same image; per image all hash edges are kept, index edges fill the rest up to k."""
    parts = [links.select("src", "dst", F.lit(1.0).alias("similarity"), F.lit(True).alias("is_hash"))]
    if candidates is not None:
        found = (candidates.select("src", F.posexplode(F.arrays_zip("dst", "sim")).alias("pos", "e"))
                 .select("src", F.col("e.dst").alias("dst"), F.col("e.sim").cast("double").alias("similarity"),
                         F.lit(False).alias("is_hash")))
        parts.insert(0, found)
    edges = parts[0]
    for p in parts[1:]:
        edges = edges.unionByName(p)
    edges = (edges.repartition("src")  # one shuffle serves the dedupe and the ranking
             .groupBy("src", "dst")
             .agg(F.max("is_hash").alias("is_hash"), F.max("similarity").alias("similarity"))
             .withColumn("similarity", F.when(F.col("is_hash"), F.lit(1.0)).otherwise(F.col("similarity"))))
    by_src = Window.partitionBy("src")
    ranked = (edges
              .withColumn("n_hash", F.sum(F.col("is_hash").cast("int")).over(by_src))
              .withColumn("rank", F.row_number().over(
                  by_src.orderBy(F.desc("similarity"), F.desc("is_hash"), F.asc("dst"))))
              .where(F.col("rank") <= F.greatest(F.lit(k), F.col("n_hash"))))
    return ranked.select(
        "src", "dst", F.col("rank").cast("int").alias("rank"), "similarity",
        F.when(F.col("is_hash"), F.lit("hash")).otherwise(F.lit(index_source)).alias("source"),
        F.lit(run_id).alias("run_id"))


def build_neighbors(spark: SparkSession, embeddings: DataFrame, images: DataFrame, nb: dict, run_id: str,
                    root: str, persisted: list | None = None) -> DataFrame:
    """The `neighbors` table (lazy: the indexes under `root` must outlive its write)."""
    candidates = search(spark, embeddings, nb, root, persisted)
    links = hash_edges(images, int(nb["hash_group_max"]))
    return assemble(candidates, links, int(nb["k"]), backends.get(nb["backend"]).source, run_id)


# ---------------------------------------------------------------- job
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_flags(parser, "--backend", "--k")
    add_append_flag(parser)


def previous_index(spark: SparkSession, output: str) -> tuple[str | None, dict | None]:
    """(root, meta.json) of the index the last neighbors run left ((None, None) when there is none)."""
    from sparkdup.append import latest_run

    run = latest_run(spark, output, "neighbors")
    root = indexes.index_root(output, run) if run else None
    return (root, indexes.read_meta(spark, root)) if root and indexes.has_meta(spark, root) else (None, None)


def appended_neighbors(spark: SparkSession, embeddings: DataFrame, images: DataFrame, previous: DataFrame,
                       nb: dict, run_id: str, root: str, output: str, meta: dict | None,
                       previous_root: str | None, persisted: list) -> DataFrame:
    """The full `neighbors` table for --append (sparkdup.append_neighbors): only the new
    vectors are queried when the previous index can grow, else every vector (a refit)."""
    from sparkdup import append_neighbors as an
    from sparkdup.append import runs_since

    stats = embedding_stats(embeddings)
    n, dim = stats[0], stats[1]
    new = an.new_ids(embeddings, previous, runs_since(spark, output, "embed", "neighbors")).persist()
    persisted.append(new)
    n_new = new.count()
    reason = an.refit_reason(meta, nb["backend"], dim, n, float(nb["append_refit_growth"]), n_new,
                             int(nb["bucket_target_size"]),
                             int(nb["exact_max_rows"]) if nb["backend"] == "exact" else int(nb["max_bucket_size"]))
    if reason is not None:
        log.info("--append: neighbors refits its buckets and queries all %d vectors: %s", n, reason)
        return build_neighbors(spark, embeddings, images, nb, run_id, root, persisted)
    queried = an.to_query(embeddings, previous, new).persist()
    persisted.append(queried)
    log.info("--append: querying %d new vectors and %d whose list lost a neighbour, of %d, against the grown "
             "index", n_new, queried.count() - n_new, n)
    wide = {**nb, "k": 2 * int(nb["k"])}  # 2k: the reversed edges reach the old lists they rank in
    found = search(spark, embeddings, wide, root, persisted, fitted=meta, queried=queried,
                   grow={"new": new, "previous_root": previous_root}, stats=stats)
    candidates = an.merged_candidates(found, previous, embeddings, queried)
    links = hash_edges(images, int(nb["hash_group_max"]))
    return assemble(candidates, links, int(nb["k"]), backends.get(nb["backend"]).source, run_id)


def run(spark: SparkSession, cfg: dict, args: argparse.Namespace, run_id: str) -> dict:
    nb = cfg["neighbors"]
    embeddings = read_table(spark, args.output, "embeddings")
    images = read_table(spark, args.output, "images")
    previous = None
    if getattr(args, "append", False):
        from sparkdup import append

        append.check_format(cfg, args.output)
        if not append.is_first_run(spark, args.output, "neighbors"):
            previous = read_table(spark, args.output, "neighbors")
            previous_root, meta = previous_index(spark, args.output)
    root = indexes.index_root(args.output, run_id)
    # An --append keeps the previous index until this run's has grown from it.
    indexes.clean_earlier(spark, args.output, keep=[run_id] + ([previous_root.rsplit("/", 1)[1]]
                                                              if previous is not None and previous_root else []))
    previous_batch = spark.conf.get(ARROW_BATCH_KEY, None)
    spark.conf.set(ARROW_BATCH_KEY, str(nb["arrow_batch_rows"]))
    persisted: list = []
    try:
        if previous is None:
            edges = build_neighbors(spark, embeddings, images, nb, run_id, root, persisted)
            with track(spark, "querying images", embeddings.count()):
                path = write_table(edges, args.output, "neighbors", cfg["output"]["format"])
        else:
            from sparkdup.append import merge_table

            previous = previous.persist(StorageLevel.MEMORY_AND_DISK)  # the old lists, read before the MERGE
            persisted.append(previous)
            edges = appended_neighbors(spark, embeddings, images, previous, nb, run_id, root, args.output, meta,
                                       previous_root, persisted)
            with track(spark, "querying new images", embeddings.count()):
                path = merge_table(edges, args.output, "neighbors")
            indexes.clean_earlier(spark, args.output, keep=run_id)
    finally:
        if previous_batch is not None:
            spark.conf.set(ARROW_BATCH_KEY, previous_batch)
        for df in persisted:
            df.unpersist()
        if not nb["keep_index"]:  # (nothing was published with addFile: no executor fetches it later)
            indexes.remove(spark, root)
    phase(spark, "edge counts")
    written = spark.read.format(cfg["output"]["format"]).load(path)
    stats = written.groupBy("source").agg(F.count(F.lit(1)).alias("edges"),
                                          F.countDistinct("src").alias("images")).collect()
    log.info("neighbors: %s at %s", ", ".join(f"{r['source']}: {r['edges']} edges from {r['images']} images"
                                               for r in sorted(stats, key=lambda r: r["source"])) or "no edges",
             path)
    phase(spark, None)
    return {f"neighbor_edges_{r['source']}": r["edges"] for r in stats}


if __name__ == "__main__":
    from sparkdup.stage import main_for

    sys.exit(main_for(sys.modules[__name__]))
