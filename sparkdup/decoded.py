"""Decode once per run: the side table that carries ingest's pixels to embed and report.

Ingest decodes every file for its statistics; from the same pixels it also makes the
model's input and the report's thumbnail (sparkdup.udfs.prepared). They are kept in
``<output>/_decoded`` (Parquet, internal, not a public table): image_id, ingest's description,
``model_input`` (raw ``size x size x 3`` uint8), ``prepared_as`` (``"<size>/<resize>"``)
and ``thumbnail`` (JPEG). Embed then reads the model input instead of reading and
decoding every file again, and the report reads thumbnails instead of making them.

Each stage still runs alone with the same results: embed uses the side table only when
``prepared_as`` matches its own settings and falls back to the files otherwise, decoding
them with ingest's limits, so both paths feed the model the same pixels. Ingest rewrites
the table (``--append`` carries over the rows of the files it does not read again);
``ingest.keep_decoded: false`` turns it off (about size x size x 3 bytes per
image on disk, 77 KB at 160, before compression).
"""
from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkdup.tables import hadoop_fs, path_exists, table_path
from sparkdup.udfs.decode import Limits
from sparkdup.udfs.prepared import COLUMNS, Prepare

log = logging.getLogger("sparkdup")

NAME = "_decoded"


def decode_limits(cfg: dict) -> Limits:
    """The decode bounds every stage uses, so each decodes a file to the same pixels."""
    return Limits(cfg["decode"]["max_file_bytes"], cfg["decode"]["max_pixels"], cfg["ingest"]["stats_max_side"])


def model_input_size(cfg: dict) -> int:
    """The side of the square model input that embed will use with these settings."""
    from sparkdup.models.registry import resolve
    from sparkdup.udfs.embed import configured_model

    return resolve(configured_model(cfg)).input_size


def prepare_for(cfg: dict) -> Prepare | None:
    """What ingest should make for the later stages, or None when the side table is off."""
    if not cfg["ingest"]["keep_decoded"]:
        return None
    return Prepare(model_input_size(cfg), cfg["embed"]["resize"], int(cfg["report"]["thumbnail_side"]))


def keep(described: DataFrame, output: str, prepare: Prepare, carry: DataFrame | None = None) -> DataFrame:
    """Write ingest's per-file rows (keyed by image_id) with their model input and thumbnail
    to the side table (this runs the decode), and return the rows read back without them.

    ``carry`` (--append: the image_id of the unchanged files, which are not read again)
    keeps those files' rows of the previous side table, when it was made the same way, so
    the report and a later embed still find every image's pixels. The new table is written
    beside the old one and then takes its place (the old one is read while writing)."""
    spark = described.sparkSession
    path = table_path(output, NAME)
    rows = described.withColumn("prepared_as", F.lit(prepare.key))
    previous = _table(spark, output) if carry is not None else None
    if previous is not None and set(previous.columns) != set(rows.columns):
        log.info("ingest: the kept model inputs have other columns than this version's; not carried over")
        previous = None
    if previous is None:
        rows.write.mode("overwrite").parquet(path)
    else:
        kept = (previous.where(F.col("prepared_as") == prepare.key)
                .join(carry.select("image_id"), "image_id", "left_semi").select(*rows.columns))
        _replace(spark, rows.unionByName(kept), path)
    back = _read(spark, path)
    if back is not None and previous is not None:
        back = back.join(carry.select("image_id"), "image_id", "left_anti")
    return (described if back is None else back).drop("prepared_as", *COLUMNS)


def _replace(spark: SparkSession, rows: DataFrame, path: str) -> None:
    """Write `rows` to `path` through a folder beside it, then swap: `rows` may read `path`."""
    fs, target = hadoop_fs(spark, path)
    staging = path.rstrip("/") + ".next"
    rows.write.mode("overwrite").parquet(staging)
    fs.delete(target, True)
    if not fs.rename(hadoop_fs(spark, staging)[1], target):
        raise OSError(f"could not move {staging} to {path}")


def _read(spark: SparkSession, path: str) -> DataFrame | None:
    """The Parquet folder read through its part files, listed on the driver (one name per
    ingest partition): given a folder whose name starts with '_', Spark warns that it
    ignores it (it does not), and a glob draws a stack trace from its streaming check."""
    fs, hpath = hadoop_fs(spark, path)
    parts = [s.getPath().toString() for s in fs.listStatus(hpath) if s.getPath().getName().startswith("part-")]
    return spark.read.parquet(*parts) if parts else None


def _table(spark: SparkSession, output: str) -> DataFrame | None:
    """The side table, when a complete one is there (_SUCCESS: an interrupted ingest's half
    table is not used)."""
    path = table_path(output, NAME)
    return _read(spark, path) if path_exists(spark, path + "/_SUCCESS") else None


def model_inputs(spark: SparkSession, output: str, images: DataFrame, prepare_key: str) -> DataFrame | None:
    """(image_id, model_input) of `images` (an image_id column) when the side table holds
    their model input made as `prepare_key`; None otherwise (embed then reads the files)."""
    table = _table(spark, output)
    if table is None:
        return None
    made_as = [r[0] for r in table.select("prepared_as").distinct().limit(2).collect()]
    if made_as != [prepare_key]:
        log.info("embed: the kept model inputs were made as %s, not %s; decoding the files", made_as, prepare_key)
        return None
    return (table.where(F.col("model_input").isNotNull()).select("image_id", "model_input")
            .join(F.broadcast(images.select("image_id")), "image_id", "left_semi"))


def thumbnails(spark: SparkSession, output: str, ids: DataFrame) -> dict[int, bytes] | None:
    """image_id -> JPEG for the ids (a one-column image_id frame), or None without the table."""
    table = _table(spark, output)
    if table is None:
        return None
    rows = table.join(F.broadcast(ids), "image_id").where(F.col("thumbnail").isNotNull()) \
        .select("image_id", "thumbnail").collect()
    return {r.image_id: bytes(r.thumbnail) for r in rows}
