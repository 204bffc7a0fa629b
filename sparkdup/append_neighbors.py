"""Neighbors --append: grow the index by the new vectors, query only them, merge their edges.

New vectors are those the embed runs since the last neighbors run wrote (new or changed
images) and those with no neighbour list yet. The previous index's centroids are kept:
every vector goes to its nearest existing bucket (nothing is refitted), and each bucket's
index becomes, in this run's index version (``<output>/_index/<run_id>``):

- **carried** (copied as it is) when the bucket neither gained nor lost a vector;
- **grown** when it only gained: its previous index is opened by one executor task and
  the new vectors are added to it (sparkdup.udfs.grow: faiss inserts them into the HNSW
  graph, exact appends rows, annoy rebuilds its trees from the stored vectors);
- **rebuilt** from its current vectors when it lost one (a file vanished or changed: HNSW
  cannot delete) or had no index.

A bucket lost nothing exactly when its unchanged vectors number what meta.json recorded
for it (``sizes``): unchanged vectors go to the same bucket as before (same centroids).
Only the new vectors are queried against the grown index, which finds their neighbours
among the old images and among themselves in one search; so are the old images whose list
named an image that changed or left (searched again rather than left short). They are
searched for 2k neighbours: each of those edges (new -> old) is also offered to the old
image's list (old -> new, same cosine), so an old image gains a new one that ranks among
its k nearest even when it is not among the new one's k nearest. Lists not searched again
keep their edges; every list is then ranked again and cut at k (hash links recomputed from
`images`). With one bucket and the exact backend this gives the lists of a full run,
except where an old image's true k nearest include a new image that ranks it beyond 2k.

When to refit instead (a full neighbors run, still one MERGE; ``refit_reason``, docs/scale.md):

- the previous index is not there, was made with another backend or vector size, or does
  not record its bucket sizes (made before growing existed);
- drift of the centroids: the vectors grew by more than neighbors.append_refit_growth
  since the centroids were fitted (a sample of the old data no longer describes it);
- bucket size: a bucket could grow past neighbors.bucket_target_size x (1 +
  append_refit_growth) (a full run would split it) or past max_bucket_size (its index
  would be thinned), bounded by its recorded size plus every new vector.
"""
from __future__ import annotations

import logging
from dataclasses import replace

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkdup import indexes
from sparkdup.udfs import backends
from sparkdup.udfs.grow import GrowPlan, grow_partition

log = logging.getLogger("sparkdup")


def refit_reason(meta: dict | None, backend: str, dim: int, n: int, growth: float, n_new: int = 0,
                 target_size: int | None = None, max_size: int | None = None) -> str | None:
    """Why the previous index cannot be grown (None when it can): see the module docstring.
    `n`: vectors now, `n_new`: vectors to add (new or changed)."""
    if meta is None:
        return "there is no previous index"
    if meta.get("backend") != backend:
        return f"the previous index is {meta.get('backend')}, neighbors.backend is {backend}"
    if int(meta.get("dim", -1)) != dim:
        return f"the previous index holds {meta.get('dim')}-dimensional vectors, embeddings {dim}"
    if "vectors" not in meta:
        return "the previous index does not say how many vectors its centroids were fitted on"
    if "sizes" not in meta:
        return "the previous index does not record its bucket sizes (made before indexes could grow)"
    if n > int(meta["vectors"]) * (1.0 + growth):
        return (f"{n} vectors, more than (1 + neighbors.append_refit_growth={growth}) x the {meta['vectors']} "
                "the centroids were fitted on")
    largest = max((int(v) for v in meta["sizes"].values()), default=0) + int(n_new)
    if target_size is not None and largest > target_size * (1.0 + growth):
        return (f"a bucket could hold {largest} vectors, more than (1 + neighbors.append_refit_growth) x "
                f"neighbors.bucket_target_size={target_size}")
    if max_size is not None and largest > max_size:
        return f"a bucket could hold {largest} vectors, more than neighbors.max_bucket_size={max_size}"
    return None


def plan_buckets(old_sizes: dict, current: dict, added: dict) -> dict[str, list[int]]:
    """{"carry", "grow", "rebuild": buckets}: old_sizes from meta.json (bucket -> vectors
    indexed), current (bucket -> vectors now), added (bucket -> new vectors among them)."""
    old = {int(b): int(c) for b, c in old_sizes.items()}
    plan = {"carry": [], "grow": [], "rebuild": []}
    for b in sorted(set(old) | set(current)):
        now, new = int(current.get(b, 0)), int(added.get(b, 0))
        if now == 0:
            continue  # emptied: no index (the query side treats a bucket without a file as empty)
        kept_all = now - new == old.get(b, 0)
        if kept_all and new == 0:
            plan["carry"].append(b)
        elif kept_all and old.get(b, 0) > 0:
            plan["grow"].append(b)
        else:
            plan["rebuild"].append(b)
    return plan


def grow_indexes(spark: SparkSession, assigned: DataFrame, new: DataFrame, meta: dict, previous_root: str,
                 root: str, build: backends.BuildPlan, n_buckets: int) -> dict[int, int]:
    """This run's index under `root` from the previous one (module docstring); returns the
    vectors per bucket it indexes (meta.json's ``sizes``). `assigned`: (image_id, buckets,
    vec) of every current vector; `new`: (image_id) of the new ones."""
    flagged = assigned.join(new.select("image_id", F.lit(1).alias("is_new")), "image_id", "left")
    counts = (flagged.groupBy(F.col("buckets")[0].alias("bucket"))
              .agg(F.count(F.lit(1)).alias("n"), F.sum(F.coalesce("is_new", F.lit(0))).alias("new")).collect())
    current = {int(r["bucket"]): int(r["n"]) for r in counts}
    added = {int(r["bucket"]): int(r["new"]) for r in counts}
    plan = plan_buckets(meta["sizes"], current, added)
    log.info("--append: index buckets carried %d, grown %d, rebuilt %d", len(plan["carry"]), len(plan["grow"]),
             len(plan["rebuild"]))
    parts = []
    if plan["rebuild"]:
        primary = (assigned.select(F.col("buckets")[0].alias("bucket"), "image_id", "vec")
                   .where(F.col("bucket").isin(plan["rebuild"])))
        sizes = {b: current[b] for b in plan["rebuild"]}
        parts.append(indexes.build_chunks(spark, primary, replace(build, sizes=sizes), n_buckets))
    if plan["grow"]:
        old_files = indexes.bucket_files(spark, previous_root)
        rows = (flagged.where(F.col("is_new") == 1)
                .select(F.col("buckets")[0].alias("bucket"), "image_id", "vec")
                .where(F.col("bucket").isin(plan["grow"])))
        layout = indexes.layout({b: added[b] for b in plan["grow"]}, 1 << 62, 1)
        routed = indexes.route(spark, rows, previous_root, layout, set(old_files))
        grow_plan = GrowPlan(build.backend, build.dim, build.params,
                             {b: old_files[b].rsplit("/", 1)[1] for b in plan["grow"]})
        parts.append(routed.sortWithinPartitions("bucket", "kind", "image_id")
                     .mapInPandas(lambda it: grow_partition(it, grow_plan), backends.INDEX_SCHEMA))
    if parts:
        chunks = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
        indexes.write_chunks(chunks, root)
    if plan["carry"]:
        indexes.copy_buckets(spark, previous_root, root, plan["carry"])
    return {b: current[b] for b in plan["carry"] + plan["grow"] + plan["rebuild"]}


def new_ids(embeddings: DataFrame, previous: DataFrame, embeds: list[str]) -> DataFrame:
    """(image_id) of the new vectors: written by the embed runs since the last neighbors
    run (`embeds`), or without a list."""
    listed = previous.select(F.col("src").alias("image_id")).distinct()
    return (embeddings.where(F.col("run_id").isin(embeds)).select("image_id")
            .unionByName(embeddings.select("image_id").join(listed, "image_id", "left_anti")).distinct())


def to_query(embeddings: DataFrame, previous: DataFrame, new: DataFrame) -> DataFrame:
    """(image_id) of the vectors to search for: the new ones, and the old images whose list
    named an image that changed or left (their list is searched again, not left short)."""
    unchanged = embeddings.select("image_id").join(new, "image_id", "left_anti")
    stale = (previous.where(F.col("source") != "hash")
             .join(unchanged.withColumnRenamed("image_id", "dst"), "dst", "left_anti")
             .select(F.col("src").alias("image_id"))
             .join(unchanged, "image_id", "left_semi"))
    return new.unionByName(stale).distinct()


def merged_candidates(found: DataFrame | None, previous: DataFrame, embeddings: DataFrame,
                      queried: DataFrame) -> DataFrame:
    """(src, dst array, sim array) for every list: the old index edges of the lists not
    searched again (between images still embedded), the searched vectors' edges, and those
    edges reversed (an old image gains a new one that ranks among its k nearest)."""
    current = embeddings.select("image_id")
    old = (previous.where(F.col("source") != "hash")
           .join(queried.withColumnRenamed("image_id", "src"), "src", "left_anti")
           .join(current.withColumnRenamed("image_id", "src"), "src", "left_semi")
           .join(current.withColumnRenamed("image_id", "dst"), "dst", "left_semi")
           .select("src", "dst", F.col("similarity").alias("sim")))
    parts = [old]
    if found is not None:
        new = (found.select("src", F.explode(F.arrays_zip("dst", "sim")).alias("e"))
               .select("src", F.col("e.dst").alias("dst"), F.col("e.sim").cast("double").alias("sim")))
        parts += [new, new.select(F.col("dst").alias("src"), F.col("src").alias("dst"), "sim")]
    edges = parts[0]
    for p in parts[1:]:
        edges = edges.unionByName(p)
    return (edges.groupBy("src").agg(F.collect_list(F.struct("dst", "sim")).alias("c"))
            .select("src", F.transform("c", lambda e: e["dst"]).alias("dst"),
                    F.transform("c", lambda e: e["sim"]).alias("sim")))
