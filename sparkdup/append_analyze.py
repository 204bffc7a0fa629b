"""Analyze --append: verify only the candidate pairs an append made new.

Pair verification (aligned thumbnails, a pandas UDF per pair) is analyze's per-pair cost,
and a pair's scores and decision depend only on its two images' bytes (content hash and
signature, written by ingest) and the verify settings. So on --append a candidate pair
keeps its previous `duplicate_pairs` row when

* the previous table holds it (it was a candidate and was verified),
* neither image was rewritten by an ingest run since the last analyze run (new, changed,
  relabelled, now missing: ``sparkdup.append.runs_since``), and
* the last analyze run decided with the same ``analyze.verify_*`` settings and the same
  sparkdup version (otherwise every candidate is verified again).

Every other candidate (new images, and pairs between old images that only now became
candidates, e.g. a list that lost a neighbour and was searched again) is verified as in a
full run. The candidates themselves are recomputed from the current `neighbors` table, so
a pair that is no longer a candidate leaves the table. Groups, leaks, outliers and label
issues are then computed over every image, as in a full run (documented in docs/schema.md).
"""
from __future__ import annotations

import json
import logging

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkdup import __version__
from sparkdup.append import runs_since
from sparkdup.findings.duplicates import duplicate_pairs, undirected
from sparkdup.tables import path_exists, read_table, table_path

log = logging.getLogger("sparkdup")

# Settings whose value decides a verified pair (the candidate threshold only chooses
# candidates, which are recomputed every run).
DECIDING_PREFIX = "verify_"


def last_analyze(spark: SparkSession, output: str) -> dict | None:
    """The settings and version of the last recorded analyze run (None without one)."""
    if not path_exists(spark, table_path(output, "runs")):
        return None
    row = (read_table(spark, output, "runs").where(F.col("stage") == "analyze")
           .orderBy(F.desc("started_at")).select("run_id", "settings", "sparkdup_version").first())
    return None if row is None else row.asDict()


def deciding(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k.startswith(DECIDING_PREFIX)}


def reuse_refused(last: dict | None, an: dict) -> str | None:
    """Why no previous pair row can be kept (None when they can)."""
    if last is None:
        return "no earlier analyze run is recorded"
    if last["sparkdup_version"] != __version__:
        return f"the last analyze ran sparkdup {last['sparkdup_version']}, this is {__version__}"
    before = deciding(json.loads(last["settings"]).get("analyze", {}))
    now = deciding(an.to_dict() if hasattr(an, "to_dict") else dict(an))
    if before != now:
        changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        return "analyze." + ", analyze.".join(changed) + " changed since the last analyze run"
    return None


def candidate_keys(neighbors: DataFrame, an: dict) -> DataFrame:
    """(image_id_a, image_id_b) of every candidate pair, as duplicate_pairs chooses them."""
    chosen = neighbors.where((F.col("similarity") >= an["duplicate_similarity"]) | (F.col("source") == "hash"))
    return undirected(chosen).select(F.col("a").alias("image_id_a"), F.col("b").alias("image_id_b"))


def kept_pairs(previous: DataFrame, images: DataFrame, candidates: DataFrame, touched_runs: list[str]) -> DataFrame:
    """The previous rows of current candidates between two ok images no ingest run has
    rewritten since the last analyze (their scores would come out the same)."""
    steady = images.where((F.col("status") == "ok") & ~F.col("run_id").isin(touched_runs)).select("image_id")
    return (previous.drop("run_id")
            .join(candidates, ["image_id_a", "image_id_b"], "left_semi")
            .join(steady.withColumnRenamed("image_id", "image_id_a"), "image_id_a", "left_semi")
            .join(steady.withColumnRenamed("image_id", "image_id_b"), "image_id_b", "left_semi"))


def appended_pairs(spark: SparkSession, output: str, with_signatures: DataFrame, neighbors: DataFrame,
                   an: dict, persisted: list) -> tuple[DataFrame, dict]:
    """(the new `duplicate_pairs` table, counts): kept rows plus the fresh candidates
    verified. Frames it persists are appended to `persisted` (unpersist after the write)."""
    why = None if path_exists(spark, table_path(output, "duplicate_pairs")) else "there is no duplicate_pairs table"
    why = why or reuse_refused(last_analyze(spark, output), an)
    if why is not None:
        log.info("--append: verifying every candidate pair: %s", why)
        return duplicate_pairs(with_signatures, neighbors, an), {}
    touched = runs_since(spark, output, "ingest", "analyze")
    candidates = candidate_keys(neighbors, an).persist(StorageLevel.MEMORY_AND_DISK)
    kept = kept_pairs(read_table(spark, output, "duplicate_pairs"), with_signatures.drop("signature"), candidates,
                      touched).persist(StorageLevel.MEMORY_AND_DISK)
    persisted += [candidates, kept]
    # The neighbour edges of the other candidates (both directions, so undirected() inside
    # duplicate_pairs keeps the highest similarity as a full run does).
    done = kept.select(F.col("image_id_a").alias("a"), F.col("image_id_b").alias("b"))
    edges = (neighbors.withColumn("a", F.least("src", "dst")).withColumn("b", F.greatest("src", "dst"))
             .join(done, ["a", "b"], "left_anti").drop("a", "b"))
    fresh = duplicate_pairs(with_signatures, edges, an).persist(StorageLevel.MEMORY_AND_DISK)
    persisted.append(fresh)
    n_kept, n_fresh = kept.count(), fresh.count()
    log.info("--append: %d candidate pairs verified, %d kept from earlier runs (of %d candidates)",
             n_fresh, n_kept, candidates.count())
    return fresh.unionByName(kept.select(*fresh.columns)), {"pairs_verified_now": n_fresh, "pairs_kept": n_kept}
