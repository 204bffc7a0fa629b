"""analyze: duplicate groups, outliers, leaks and label issues from the neighbour graph.

Extract: `images`, `embeddings`, `neighbors`. Transform: connected components over the
duplicate edges (GraphFrames when its jar is loaded, else sparkdup.graph's own
implementations), degree statistics and neighbour similarities for outliers,
cross-split pairs for leaks, similarity-weighted label votes. Load: `duplicate_groups`,
`outliers`, `leaks`, `label_issues`.

Every transform below is a function of DataFrames and settings, tested on a local session.
"""
from __future__ import annotations

import argparse
import logging
import sys

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.functions import pandas_udf

from sparkdup.graph import connected_components, degrees
from sparkdup.session import ensure_checkpoint_dir
from sparkdup.tables import read_table, write_table
from sparkdup.udfs.image_stats import signature_correlation

log = logging.getLogger("sparkdup")

TABLES = ("duplicate_groups", "outliers", "leaks", "label_issues")


def cosine(a: Column, b: Column) -> Column:
    """Dot product of two unit vectors stored as array<float>: their cosine similarity."""
    return F.aggregate(F.zip_with(a, b, lambda x, y: x * y), F.lit(0.0).cast("double"), lambda acc, v: acc + v)


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


def outliers(images: DataFrame, neighbors: DataFrame, an: dict) -> DataFrame:
    """How unusual each embedded image is: 1 - mean similarity to its k nearest neighbours.

    `in_degree` (how many images list it among their neighbours, from the kNN graph's
    degree statistics) is reported beside it: true outliers are rarely anyone's
    neighbour. Rank 1 is the most unusual; `is_outlier` marks the top `outlier_fraction`.
    """
    knn = neighbors.where(F.col("source") != "hash")
    per_image = knn.groupBy(F.col("src").alias("image_id")).agg(
        F.avg("similarity").alias("mean_similarity"), F.max("similarity").alias("nn_similarity"),
        F.count(F.lit(1)).alias("k"))
    in_degree = knn.groupBy(F.col("dst").alias("image_id")).agg(F.count(F.lit(1)).alias("in_degree"))
    graph_degree = degrees(knn.select("src", "dst")).select(F.col("id").alias("image_id"), F.col("degree"))
    scored = (per_image.join(in_degree, "image_id", "left").join(graph_degree, "image_id", "left")
              .fillna(0, ["in_degree", "degree"])
              .withColumn("score", F.round(1.0 - F.col("mean_similarity"), 6)))
    ranking = Window.orderBy(F.col("score").desc(), F.col("image_id"))
    n = scored.count()
    cut = max(1, int(round(an["outlier_fraction"] * n))) if n else 0
    return (scored.withColumn("rank", F.row_number().over(ranking))
            .withColumn("percentile", F.round(100.0 * (1.0 - (F.col("rank") - 1) / F.lit(max(n, 1))), 3))
            .withColumn("is_outlier", F.col("rank") <= cut)
            .join(images.select("image_id", "path", "label", "split"), "image_id")
            .select("image_id", "path", "score", "rank", "percentile", "is_outlier", "nn_similarity",
                    "mean_similarity", "in_degree", "degree", "label", "split"))


def leaks(groups: DataFrame, embeddings: DataFrame) -> DataFrame:
    """Pairs of duplicates (same group) whose splits differ, with their similarity."""
    g = groups.where(F.col("split").isNotNull()).select("group_id", "image_id", "path", "split", "content_hash")
    a = g.select(*[F.col(c).alias(f"{c}_a") if c != "group_id" else F.col(c) for c in g.columns])
    b = g.select(*[F.col(c).alias(f"{c}_b") if c != "group_id" else F.col(c) for c in g.columns])
    vec = embeddings.select("image_id", "embedding")
    pairs = a.join(b, "group_id").where((F.col("split_a") < F.col("split_b")))
    return (pairs
            .join(vec.select(F.col("image_id").alias("image_id_a"), F.col("embedding").alias("va")), "image_id_a", "left")
            .join(vec.select(F.col("image_id").alias("image_id_b"), F.col("embedding").alias("vb")), "image_id_b", "left")
            .withColumn("similarity", F.round(F.when(F.col("content_hash_a") == F.col("content_hash_b"), F.lit(1.0))
                                              .otherwise(cosine(F.col("va"), F.col("vb"))), 6))
            .withColumn("kind", F.when(F.col("content_hash_a") == F.col("content_hash_b"), F.lit("exact"))
                        .otherwise(F.lit("near")))
            .select("group_id", "image_id_a", "path_a", "split_a", "image_id_b", "path_b", "split_b",
                    "similarity", "kind"))


def label_votes(images: DataFrame, neighbors: DataFrame, an: dict) -> DataFrame:
    """Images whose neighbours' similarity-weighted vote disagrees with their label."""
    labelled = images.where(F.col("label").isNotNull()).select("image_id", "path", "label")
    votes = (neighbors.where(F.col("similarity") >= an["label_min_similarity"])
             .join(labelled.select(F.col("image_id").alias("dst"), F.col("label").alias("vote")), "dst")
             .groupBy("src", "vote").agg(F.sum("similarity").alias("weight"), F.collect_list("dst").alias("voters")))
    total = Window.partitionBy("src")
    best = Window.partitionBy("src").orderBy(F.col("weight").desc(), F.col("vote"))
    top = (votes.withColumn("confidence", F.col("weight") / F.sum("weight").over(total))
           .withColumn("r", F.row_number().over(best)).where(F.col("r") == 1))
    return (labelled.join(top.withColumnRenamed("src", "image_id"), "image_id")
            .where((F.col("vote") != F.col("label")) & (F.col("confidence") >= an["label_min_confidence"]))
            .select("image_id", "path", "label", F.col("vote").alias("suggested_label"),
                    F.round("confidence", 6).alias("confidence"), F.lit("neighbor_vote").alias("issue"),
                    F.lit(None).cast("long").alias("group_id"), "voters"))


def mixed_label_groups(groups: DataFrame) -> DataFrame:
    """Members of duplicate groups whose members carry different labels."""
    g = groups.where(F.col("label").isNotNull())
    counts = g.groupBy("group_id", "label").agg(F.count(F.lit(1)).alias("n"))
    majority = (counts.withColumn("share", F.col("n") / F.sum("n").over(Window.partitionBy("group_id")))
                .withColumn("labels", F.count(F.lit(1)).over(Window.partitionBy("group_id")))
                .withColumn("r", F.row_number().over(Window.partitionBy("group_id")
                                                     .orderBy(F.col("n").desc(), F.col("label"))))
                .where((F.col("r") == 1) & (F.col("labels") > 1))
                .select("group_id", F.col("label").alias("suggested_label"), F.col("share").alias("confidence")))
    return (g.join(majority, "group_id")
            .select("image_id", "path", "label", "suggested_label", F.round("confidence", 6).alias("confidence"),
                    F.lit("mixed_duplicate_group").alias("issue"), "group_id",
                    F.array().cast("array<bigint>").alias("voters")))


def label_issues(images: DataFrame, neighbors: DataFrame, groups: DataFrame, an: dict) -> DataFrame:
    both = label_votes(images, neighbors, an).unionByName(mixed_label_groups(groups))
    ranking = Window.partitionBy("issue").orderBy(F.col("confidence").desc(), F.col("image_id"))
    return both.withColumn("rank", F.row_number().over(ranking)).select(
        "image_id", "path", "label", "suggested_label", "confidence", "rank", "issue", "group_id", "voters")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duplicate-similarity", type=float, help="default: analyze.duplicate_similarity")


def run(spark: SparkSession, cfg: dict, args: argparse.Namespace, run_id: str) -> dict:
    an, fmt, out = cfg["analyze"], cfg["output"]["format"], args.output
    if getattr(args, "duplicate_similarity", None) is not None:
        an["duplicate_similarity"] = args.duplicate_similarity
    ensure_checkpoint_dir(spark, cfg, out)
    images = read_table(spark, out, "images")
    embeddings = read_table(spark, out, "embeddings")
    neighbors = read_table(spark, out, "neighbors")
    stamp = F.lit(run_id).alias("run_id")
    log.info("analyze: duplicate groups (connected components of duplicate edges)")
    write_table(duplicate_groups(images, embeddings, neighbors, an).select("*", stamp), out, "duplicate_groups", fmt)
    groups = read_table(spark, out, "duplicate_groups")
    log.info("analyze: outliers (kNN similarity and graph degree)")
    write_table(outliers(images, neighbors, an).select("*", stamp), out, "outliers", fmt)
    log.info("analyze: leaks between splits")
    write_table(leaks(groups, embeddings).select("*", stamp), out, "leaks", fmt)
    log.info("analyze: label issues (neighbour votes, mixed duplicate groups)")
    write_table(label_issues(images, neighbors, groups, an).select("*", stamp), out, "label_issues", fmt)
    counts = {
        "duplicate_groups": groups.select("group_id").distinct().count(),
        "duplicates_to_remove": groups.where(~F.col("is_representative")).count(),
        "outliers": read_table(spark, out, "outliers").where("is_outlier").count(),
        "leaks": read_table(spark, out, "leaks").count(),
        "label_issues": read_table(spark, out, "label_issues").count(),
    }
    log.info("analyze: %s", ", ".join(f"{k}={v}" for k, v in counts.items()))
    return counts


if __name__ == "__main__":
    from sparkdup.stage import main_for

    sys.exit(main_for(sys.modules[__name__]))
