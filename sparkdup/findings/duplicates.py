"""Duplicate groups: candidate pairs from the neighbour graph, the duplicate rule, and
connected components split so that every member passes the rule against its representative."""
from __future__ import annotations

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.functions import pandas_udf

from sparkdup.findings.vectors import cosine
from sparkdup.graph import connected_components
from sparkdup.udfs.image_stats import signature_correlation


def undirected(edges: DataFrame) -> DataFrame:
    """One row per unordered pair (a < b), keeping the highest similarity seen."""
    return (edges.select(F.least("src", "dst").alias("a"), F.greatest("src", "dst").alias("b"), "similarity")
            .where(F.col("a") != F.col("b"))
            .groupBy("a", "b").agg(F.max("similarity").alias("similarity")))


@pandas_udf(T.DoubleType())
def pixel_correlation(a: pd.Series, b: pd.Series) -> pd.Series:
    return pd.Series([signature_correlation(x, y) for x, y in zip(a, b)], dtype="float64")


def is_duplicate(similarity: Column, correlation: Column, threshold: float, an: dict) -> Column:
    """The duplicate rule for one pair: similar enough by embedding alone, or moderately
    similar by embedding and confirmed by correlated pixel signatures."""
    return (similarity >= threshold) | (
        (similarity >= an["verify_min_similarity"]) & (F.coalesce(correlation, F.lit(-1.0)) >= an["pixel_correlation"]))


def duplicate_edges(images: DataFrame, neighbors: DataFrame, an: dict) -> DataFrame:
    """Neighbour pairs that are duplicates by the rule above, plus every byte-identical
    (hash) link. Only pairs above `verify_min_similarity` have their signatures compared."""
    candidates = undirected(neighbors.where((F.col("similarity") >= an["verify_min_similarity"])
                                            | (F.col("source") == "hash")))
    sig = images.select("image_id", "signature")
    checked = (candidates.join(sig.select(F.col("image_id").alias("a"), F.col("signature").alias("sa")), "a")
               .join(sig.select(F.col("image_id").alias("b"), F.col("signature").alias("sb")), "b")
               .withColumn("correlation", pixel_correlation("sa", "sb")))
    return (checked.where(is_duplicate(F.col("similarity"), F.col("correlation"), an["duplicate_similarity"], an))
            .select(F.col("a").alias("src"), F.col("b").alias("dst"), "similarity"))


def checkpointing(spark: SparkSession) -> dict:
    """How the distributed connected components cut lineage: reliable checkpoints, every
    iteration, in the session's checkpoint directory when one is set (run() sets
    <output>/_checkpoints, on storage every executor sees). A local checkpoint lives in
    executor storage and cuts the lineage it could be recomputed from, so losing one
    executor would fail the whole stage; a duplicate-edge graph is small, so writing it each
    iteration costs little. Without a checkpoint directory: local checkpoints."""
    try:
        has_dir = bool(spark.sparkContext.getCheckpointDir())
    except Exception:  # noqa: BLE001 - Spark Connect has no SparkContext
        has_dir = False
    return {"checkpoint": "reliable", "checkpoint_interval": 1} if has_dir else {}


def duplicate_groups(images: DataFrame, embeddings: DataFrame, neighbors: DataFrame, an: dict) -> DataFrame:
    """One row per member of each group of duplicates.

    Components of the duplicate graph are the candidate groups. The representative is the
    member with the most pixels, then the largest file, then the smallest path. Members
    less similar to the representative than `min_similarity_to_representative` are
    detached (this stops A~B~C chains from gluing unrelated A and C into one group), and
    groups left with one member disappear (the same rule as for edges, with
    `min_similarity_to_representative` as the embedding-only threshold). `kind` is `exact` for members whose bytes equal
    another member's, else `near`.
    """
    edges = duplicate_edges(images, neighbors, an)
    comps = connected_components(edges, an["components_method"], an["driver_max_edges"],
                                 **checkpointing(images.sparkSession))
    members = comps.select(F.col("id").alias("image_id"), F.col("component").alias("group_id")).join(
        images.select("image_id", "path", "content_hash", "width", "height", "size_bytes", "label", "split",
                      "signature"), "image_id")
    order = Window.partitionBy("group_id").orderBy(
        (F.col("width").cast("long") * F.col("height")).desc(), F.col("size_bytes").desc(), F.col("path"))
    members = members.withColumn("representative_id", F.first("image_id").over(order))
    rep = (members.where(F.col("image_id") == F.col("representative_id"))
           .select(F.col("image_id").alias("representative_id"), F.col("content_hash").alias("rep_hash"),
                   F.col("signature").alias("rep_signature")))
    vec = embeddings.select("image_id", "embedding")
    members = (members.join(rep, "representative_id")
               .join(vec, "image_id", "left")
               .join(vec.select(F.col("image_id").alias("representative_id"), F.col("embedding").alias("rep_vec")),
                     "representative_id", "left")
               .withColumn("similarity_to_representative",
                           F.when(F.col("content_hash") == F.col("rep_hash"), F.lit(1.0))
                           .otherwise(cosine(F.col("embedding"), F.col("rep_vec"))))
               .withColumn("correlation_to_representative", pixel_correlation("signature", "rep_signature"))
               .where(is_duplicate(F.col("similarity_to_representative"), F.col("correlation_to_representative"),
                                   an["min_similarity_to_representative"], an)))
    by_group = Window.partitionBy("group_id")
    by_hash = Window.partitionBy("group_id", "content_hash")
    return (members
            .withColumn("group_size", F.count(F.lit(1)).over(by_group).cast("int"))
            .where(F.col("group_size") >= 2)
            .withColumn("kind", F.when(F.count(F.lit(1)).over(by_hash) > 1, F.lit("exact")).otherwise(F.lit("near")))
            .withColumn("is_representative", F.col("image_id") == F.col("representative_id"))
            .select("group_id", "image_id", "path", "group_size", "kind", "representative_id", "is_representative",
                    F.round("similarity_to_representative", 6).alias("similarity_to_representative"),
                    "content_hash", "label", "split"))
