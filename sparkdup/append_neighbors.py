"""Neighbors --append: query only the new vectors, merge their edges into the old lists.

New vectors are those the embed runs since the last neighbors run wrote (new or changed
images) and those with no neighbour list yet. The index is rebuilt per bucket over every current vector with the
previous index's centroids (each vector goes to its nearest existing bucket: the buckets
grow, nothing is refitted), and only the new vectors are queried against it, which finds
their neighbours among the old images and among themselves in one search; so are the old
images whose list named an image that changed or left (searched again rather than left
short). They are searched for 2k neighbours: each of those edges (new -> old) is also
offered to the old image's list (old -> new, same cosine), so an old image gains a new one
that ranks among its k nearest even when it is not among the new one's k nearest. Lists
not searched again keep their edges; every list is then ranked again and cut at k (hash
links recomputed from `images`). With one bucket and the exact backend this gives the
lists of a full run, except where an old image's true k nearest include a new image that
ranks it beyond 2k.

When to refit instead (a full neighbors run, still one MERGE): when the previous index is
not there or was made with another backend or vector size, or when the vectors grew by more
than neighbors.append_refit_growth since its centroids were fitted (the buckets would drift
away from the centroids and grow past bucket_target_size).
"""
from __future__ import annotations

import logging

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

log = logging.getLogger("sparkdup")


def refit_reason(meta: dict | None, backend: str, dim: int, n: int, growth: float) -> str | None:
    """Why the previous index cannot be grown (None when it can)."""
    if meta is None:
        return "there is no previous index"
    if meta.get("backend") != backend:
        return f"the previous index is {meta.get('backend')}, neighbors.backend is {backend}"
    if int(meta.get("dim", -1)) != dim:
        return f"the previous index holds {meta.get('dim')}-dimensional vectors, embeddings {dim}"
    if "vectors" not in meta:
        return "the previous index does not say how many vectors its centroids were fitted on"
    if n > int(meta["vectors"]) * (1.0 + growth):
        return (f"{n} vectors, more than (1 + neighbors.append_refit_growth={growth}) x the {meta['vectors']} "
                "the centroids were fitted on")
    return None


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
