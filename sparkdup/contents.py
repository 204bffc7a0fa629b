"""Re-reading the bytes of images already listed in `images`, for later stages.

Stages after ingest (embed, export, report) need the files' bytes again. Local files are
read by the Python worker from their OS path, as ingest read them: Hadoop's path parser
refuses or rewrites names that are legal on POSIX (`a:b.png`, names starting with `_` or
`.`, bytes that are not UTF-8), so a file ingest read must not become unreadable later.
Files on other filesystems are read with Spark's binaryFile source over the folders that
hold them; only the folder names (not the images) reach the driver, and a broadcast
semi-join on image_id keeps just the wanted files, so image bytes are never shuffled.
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


def read_local_contents(images: DataFrame, max_file_bytes: int) -> DataFrame:
    """(image_id, path, content) read by the Python worker from the OS path (gone: dropped)."""
    from sparkdup.listing import os_path_of
    from sparkdup.udfs.ingest import read_local

    @pandas_udf("binary")
    def read_udf(paths: pd.Series) -> pd.Series:
        return paths.map(lambda p: read_local(os_path_of(p), max_file_bytes)[0])

    return (images.select("image_id", "path", read_udf("path").alias("content"))
            .where(F.length("content").between(1, max_file_bytes)))


def read_contents(spark: SparkSession, images: DataFrame, max_file_bytes: int,
                  partitions: int | None = None) -> DataFrame | None:
    """(image_id, path, content) for the rows of `images` (needs image_id, path), or None
    when there are no local rows and none of the remote rows' folders exist any more.
    `partitions`: how many tasks read the local files (their names are spread over that
    many partitions before any byte is read; default: as `images` is partitioned)."""
    from sparkdup.listing import spark_literal

    images = images.select("image_id", "path")
    is_local = F.col("path").startswith("file:")
    local_rows = images.where(is_local)
    if partitions:
        local_rows = local_rows.repartition(int(partitions), "image_id")
    local = read_local_contents(local_rows, max_file_bytes)
    has_local = bool(images.where(is_local).limit(1).count())
    folders = image_folders(spark, images.where(~is_local))
    if not folders:
        return local if has_local else None
    remote = (spark.read.format("binaryFile").option("ignoreMissingFiles", "true")
              .option("ignoreCorruptFiles", "true").load([spark_literal(f) for f in folders])
              .where(F.col("length").between(1, max_file_bytes))
              .withColumn("image_id", image_id())
              .join(F.broadcast(images.select("image_id")), "image_id", "left_semi")
              .select("image_id", "path", "content"))
    return remote.unionByName(local) if has_local else remote
