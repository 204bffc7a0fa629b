"""Label issues: labels that disagree with the image's neighbours or its duplicate group."""
from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F


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
