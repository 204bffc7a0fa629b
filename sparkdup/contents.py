"""Re-reading the bytes of images already listed in `images`, for later stages.

Stages after ingest (embed, export) need the files' bytes again. The files are read with
Spark's binaryFile source over the folders that hold them; only the folder names (not the
images) reach the driver, and a broadcast semi-join on image_id keeps just the wanted
files, so image bytes are never shuffled.
"""
from __future__ import annotations

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf

from sparkdup.schemas import image_id
from sparkdup.tables import path_exists


def image_folders(spark: SparkSession, images: DataFrame) -> list[str]:
    folders = [r[0] for r in images.select(F.regexp_extract("path", r"^(.*)/[^/]*$", 1)).distinct().collect()]
    return [f for f in folders if f and path_exists(spark, f)]


def local_names_spark_skips(images: DataFrame) -> DataFrame:
    """Local rows Spark's binaryFile never returns: names starting with `_` or `.`, and
    paths that are not UTF-8 (written percent-encoded, `file://…`; see sparkdup.listing)."""
    name = F.regexp_extract("path", r"/([^/]*)$", 1)
    return images.where(F.col("path").startswith("file:") & (name.rlike(r"^[_.]") | F.col("path").startswith("file://")))


def read_local_contents(images: DataFrame, max_file_bytes: int) -> DataFrame:
    """(image_id, path, content) read by the Python worker from the OS path (gone: dropped)."""
    from sparkdup.listing import os_path_of
    from sparkdup.udfs.ingest import read_local

    @pandas_udf("binary")
    def read_udf(paths: pd.Series) -> pd.Series:
        return paths.map(lambda p: read_local(os_path_of(p), max_file_bytes)[0])

    return (images.select("image_id", "path", read_udf("path").alias("content"))
            .where(F.length("content").between(1, max_file_bytes)))


def read_contents(spark: SparkSession, images: DataFrame, max_file_bytes: int) -> DataFrame | None:
    """(image_id, path, content) for the rows of `images` (needs image_id, path), or None
    when none of their folders exist any more. Local files Spark's reader skips by name
    are read by the Python worker instead (they are only added when there are any)."""
    from sparkdup.listing import spark_literal

    folders = image_folders(spark, images)
    if not folders:
        return None
    contents = (spark.read.format("binaryFile").option("ignoreMissingFiles", "true")
                .option("ignoreCorruptFiles", "true").load([spark_literal(f) for f in folders])
                .where(F.col("length").between(1, max_file_bytes))
                .withColumn("image_id", image_id())
                .join(F.broadcast(images.select("image_id")), "image_id", "left_semi")
                .select("image_id", "path", "content"))
    skipped = local_names_spark_skips(images.select("image_id", "path"))
    if skipped.limit(1).count():
        contents = contents.unionByName(read_local_contents(skipped, max_file_bytes))
    return contents
