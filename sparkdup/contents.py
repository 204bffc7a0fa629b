"""Re-reading the bytes of images already listed in `images`, for later stages.

Stages after ingest (embed, export) need the files' bytes again. The files are read with
Spark's binaryFile source over the folders that hold them; only the folder names (not the
images) reach the driver, and a broadcast semi-join on image_id keeps just the wanted
files, so image bytes are never shuffled.
"""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkdup.schemas import image_id
from sparkdup.tables import path_exists


def image_folders(spark: SparkSession, images: DataFrame) -> list[str]:
    folders = [r[0] for r in images.select(F.regexp_extract("path", r"^(.*)/[^/]*$", 1)).distinct().collect()]
    return [f for f in folders if f and path_exists(spark, f)]


def read_contents(spark: SparkSession, images: DataFrame, max_file_bytes: int) -> DataFrame | None:
    """(image_id, path, content) for the rows of `images` (needs image_id, path), or None
    when none of their folders exist any more."""
    folders = image_folders(spark, images)
    if not folders:
        return None
    return (spark.read.format("binaryFile").option("ignoreMissingFiles", "true")
            .option("ignoreCorruptFiles", "true").load(folders)
            .where(F.col("length").between(1, max_file_bytes))
            .withColumn("image_id", image_id())
            .join(F.broadcast(images.select("image_id")), "image_id", "left_semi")
            .select("image_id", "path", "content"))
