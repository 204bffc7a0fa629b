"""Ingest --append: which listed files are unchanged, and the rows of files that vanished.

A file is unchanged when the previous `images` table holds a row with the same image_id
(so the same path), the same size and the same modification time, and that row was
described (any status but `missing` or `unreadable`, which are tried again). Unchanged
files are not read: their description (hash, decode status, statistics, signature) is
reused, while label, split and manifest columns come from this run's listing. Files the
input no longer lists keep their row with status `missing` (so every earlier finding about
them can be traced) and leave every finding: later stages take `ok` images only.
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

MISSING = "missing"
MISSING_ERROR = "no longer in the input (row kept by --append)"
RETRIED = (MISSING, "unreadable")


def unchanged_ids(listing: DataFrame, previous: DataFrame) -> DataFrame:
    """(image_id) of listed files whose previous row has the same size and modification time."""
    old = previous.select("image_id", F.col("size_bytes").alias("old_size"),
                          F.col("modified_at").alias("old_modified"), F.col("status").alias("old_status"))
    return (listing.select("image_id", "size_bytes", "modified_at").join(old, "image_id")
            .where(F.col("size_bytes").eqNullSafe(F.col("old_size"))
                   & F.col("modified_at").eqNullSafe(F.col("old_modified"))
                   & ~F.col("old_status").isin(*RETRIED))
            .select("image_id"))


def descriptions(previous: DataFrame, ids: DataFrame, columns: list[str]) -> DataFrame:
    """The previous rows' description columns (image_id first) for `ids`."""
    return previous.join(ids, "image_id", "left_semi").select("image_id", *columns)


def missing(previous: DataFrame, listing: DataFrame, run_id: str) -> DataFrame:
    """The previous rows of files the listing no longer has, marked `missing` (no flags)."""
    gone = previous.join(listing.select("image_id"), "image_id", "left_anti")
    was_missing = F.col("status") == MISSING
    return (gone.withColumn("run_id", F.when(was_missing, F.col("run_id")).otherwise(F.lit(run_id)))
            .withColumn("ingested_at", F.when(was_missing, F.col("ingested_at")).otherwise(F.current_timestamp()))
            .withColumn("status", F.lit(MISSING))
            .withColumn("error", F.lit(MISSING_ERROR))
            .withColumn("flags", F.array().cast("array<string>")))
