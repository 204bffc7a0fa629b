"""Outliers: how unusual each embedded image is, from its neighbours and the kNN graph."""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from sparkdup.graph import degrees


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
