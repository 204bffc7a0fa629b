"""embed: an L2-normalised embedding for every readable image, in the `embeddings` table.

Extract: the `images` table (status ok) and the model input ingest made from the pixels it
decoded (sparkdup.decoded's side table), or, without it, the files' bytes (Spark
binaryFile over the folders that hold them), decoded with ingest's limits so both give
the model the same pixels. Transform: an iterator pandas UDF that loads the model once
per Python worker (from an importable module, never pickled with the function) and runs
it in batches. Load: `embeddings`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Iterator

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.functions import pandas_udf

from sparkdup import decoded
from sparkdup.contents import read_contents
from sparkdup.models.shipping import ShippedModel, ship_model
from sparkdup.partitioning import by_image_count, partitions_for
from sparkdup.progress import track
from sparkdup.schemas import image_id
from sparkdup.stage import add_append_flag, add_setting_flags
from sparkdup.tables import read_table, write_table
from sparkdup.udfs.decode import Limits
from sparkdup.udfs.embed import configured_model, embed_arrays, embed_contents
from sparkdup.udfs.prepared import Prepare, model_arrays

log = logging.getLogger("sparkdup")


def ok_images(images: DataFrame) -> DataFrame:
    return images.where(F.col("status") == "ok").select("image_id", "path")


def embed_files(contents: DataFrame, model: str | ShippedModel, batch_size: int, resize: str,
                limits: Limits) -> DataFrame:
    """(path, embedding) for each file; files that fail to decode get a null embedding.

    `model`: a name every executor can load as it is, or a ShippedModel whose file the
    driver published (executors then load it from their SparkFiles folder)."""
    shipped = model if isinstance(model, ShippedModel) else ShippedModel(model)

    @pandas_udf(T.ArrayType(T.FloatType()))
    def embed_udf(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        local = shipped.local_name()  # on the executor: where SparkFiles put the model file
        for content in batches:
            vectors = embed_contents(local, content, limits, batch_size, resize)
            yield pd.Series([None if v is None else v.astype(np.float32) for v in vectors])

    # Nondeterministic: stops the optimizer from copying this expensive call into a pushed-down
    # filter (measured: the model ran twice per image without it).
    embed_once = embed_udf.asNondeterministic()
    return contents.select("path", embed_once("content").alias("embedding"))


def embed_model_inputs(pixels: DataFrame, model: ShippedModel, batch_size: int, size: int) -> DataFrame:
    """(image_id, embedding) from the side table's model inputs (already size x size x 3)."""

    @pandas_udf(T.ArrayType(T.FloatType()))
    def embed_udf(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        local = model.local_name()
        for chunk in batches:
            yield pd.Series(list(embed_arrays(local, model_arrays(chunk, size), batch_size)))

    return pixels.select("image_id", embed_udf.asNondeterministic()("model_input").alias("embedding"))


def build_embeddings(spark: SparkSession, cfg: dict, images: DataFrame, run_id: str,
                     output: str | None = None, n_ok: int | None = None) -> DataFrame:
    """The embeddings of `images`' readable rows; given `output`, from the model inputs
    ingest kept there when they were made for these settings, else from the files.
    `n_ok`: how many readable rows `images` has, when the caller counted them already."""
    emb = cfg["embed"]
    from sparkdup.models.registry import resolve

    name = configured_model(cfg)
    spec = resolve(name)
    ok = ok_images(images)
    n_ok = ok.count() if n_ok is None else n_ok
    per_partition = int(cfg["spark"]["images_per_partition"])
    key = Prepare(spec.input_size, emb["resize"], 0).key
    pixels = decoded.model_inputs(spark, output, ok, key) if output else None
    if pixels is not None:
        # Executors load the model from a file the driver publishes, never from their own cache.
        vectors = embed_model_inputs(by_image_count(pixels, n_ok, per_partition), ship_model(spark, name),
                                     emb["batch_size"], spec.input_size)
    else:
        wanted = partitions_for(n_ok, per_partition, spark.sparkContext.defaultParallelism)
        contents = read_contents(spark, ok, cfg["decode"]["max_file_bytes"], wanted)
        if contents is None:
            return spark.createDataFrame([], "image_id long, embedding array<float>, model string, dim int, run_id string")
        # As many tasks as the image count calls for (the scan alone would make ~1 per 30 images).
        contents = by_image_count(contents, n_ok, per_partition)
        # Ingest's limits: the same pixels as the kept model inputs, so both paths agree.
        vectors = embed_files(contents, ship_model(spark, name), emb["batch_size"], emb["resize"],
                              decoded.decode_limits(cfg))
        vectors = vectors.select(image_id().alias("image_id"), "embedding")
    return (vectors.where(F.col("embedding").isNotNull())
            .select("image_id", "embedding",
                    F.lit(name).alias("model"), F.size("embedding").alias("dim"), F.lit(run_id).alias("run_id")))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_flags(parser, "--model", "--batch-size")
    add_append_flag(parser)


def to_embed(spark: SparkSession, images: DataFrame, previous: DataFrame, output: str) -> DataFrame:
    """(image_id) of the ok images --append embeds: those written by the ingest runs since
    the last embed run (all of them: two `ingest --append` before one embed), and those
    without a vector."""
    from sparkdup.append import runs_since

    ok = images.where(F.col("status") == "ok")
    ingests = runs_since(spark, output, "ingest", "embed")
    return (ok.where(F.col("run_id").isin(ingests)).select("image_id")
            .unionByName(ok.select("image_id").join(previous, "image_id", "left_anti")).distinct())


def appended_embeddings(spark: SparkSession, cfg: dict, images: DataFrame, previous: DataFrame, run_id: str,
                        output: str) -> tuple[DataFrame, DataFrame]:
    """(full table, this run's new vectors) for --append: the ok images the ingest runs
    since the last embed wrote (new, changed or relabelled) and those without a vector are embedded; every other
    ok image keeps its vector (a relabelled file that ingest did not read again keeps its
    vector when there are no kept model inputs for it); vectors of images no longer ok go."""
    todo = to_embed(spark, images, previous, output)
    ok = images.where(F.col("status") == "ok")
    fresh = build_embeddings(spark, cfg, images.join(todo, "image_id", "left_semi"), run_id, output)
    fresh = fresh.persist(StorageLevel.MEMORY_AND_DISK)  # counted, then merged: the model runs once
    kept = (previous.join(ok.select("image_id"), "image_id", "left_semi")
            .join(fresh.select("image_id"), "image_id", "left_anti"))
    return kept.unionByName(fresh), fresh


def run(spark: SparkSession, cfg: dict, args: argparse.Namespace, run_id: str) -> dict:
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg["decode"]["arrow_batch_rows"]))
    images = read_table(spark, args.output, "images")
    n_ok = images.where(F.col("status") == "ok").count()
    previous = None
    if getattr(args, "append", False):
        from sparkdup import append

        append.check_format(cfg, args.output)
        append.check_model(spark, cfg, args.output)
        if not append.is_first_run(spark, args.output, "embeddings"):
            previous = read_table(spark, args.output, "embeddings")
    if previous is None:
        with track(spark, "embedding images", n_ok):
            path = write_table(build_embeddings(spark, cfg, images, run_id, args.output, n_ok), args.output, "embeddings",
                               cfg["output"]["format"])
        n = embedded = read_table(spark, args.output, "embeddings").count()  # the table is this run's vectors
    else:
        from sparkdup.append import merge_table

        full, fresh = appended_embeddings(spark, cfg, images, previous, run_id, args.output)
        try:
            with track(spark, "embedding new images", to_embed(spark, images, previous, args.output).count()):
                embedded = fresh.count()
            path = merge_table(full, args.output, "embeddings")
        finally:
            fresh.unpersist()
        n = read_table(spark, args.output, "embeddings").count()
    log.info("embeddings: %d of %d readable images at %s (%d embedded by this run)", n, n_ok, path, embedded)
    if n < n_ok:
        log.warning("%d readable images could not be embedded (changed or removed since ingest?)", n_ok - n)
    return {"embeddings": n, "embedded": embedded, "not_embedded": n_ok - n}


if __name__ == "__main__":
    from sparkdup.stage import main_for

    sys.exit(main_for(sys.modules[__name__]))
