"""Leaks: duplicates that sit in different splits (train vs val/test)."""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkdup.findings.vectors import cosine


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
