"""export: the curated set, as a table and as a petastorm dataset ready for training.

Extract: `images`, `duplicate_groups`, `leaks`, `outliers` under --output. Transform: keep
readable images, drop every duplicate but its group's representative, the held-out side of
each leak (`export.drop_leak_splits`), images with any flag in `export.drop_flags` (and
outliers when `export.drop_outliers`). Load: `<to>/curated` (image_id, path, label, split)
and `<to>/petastorm`, a Parquet dataset with the image as PNG bytes of
`export.image_size` squared plus an integer `label_index`, which petastorm's Spark
converter turns into a `tf.data.Dataset`.
"""
from __future__ import annotations

import argparse
import logging
import sys

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.functions import pandas_udf

from sparkdup.contents import read_contents
from sparkdup.tables import read_table, write_table
from sparkdup.udfs.decode import Limits
from sparkdup.udfs.export import training_image

log = logging.getLogger("sparkdup")


def curated(images: DataFrame, groups: DataFrame, leaks: DataFrame, outliers: DataFrame, ex: dict) -> DataFrame:
    ok = images.where(F.col("status") == "ok")
    extra = groups.where(~F.col("is_representative")).select("image_id")
    held_out = [s.lower() for s in ex["drop_leak_splits"]]
    leak_sides = (leaks.select(F.col("image_id_a").alias("image_id"), F.col("split_a").alias("split"))
                  .unionByName(leaks.select(F.col("image_id_b").alias("image_id"), F.col("split_b").alias("split")))
                  .where(F.lower("split").isin(held_out)).select("image_id"))
    drop = extra.unionByName(leak_sides)
    if ex["drop_outliers"]:
        drop = drop.unionByName(outliers.where("is_outlier").select("image_id"))
    kept = ok.join(drop.distinct(), "image_id", "left_anti")
    if ex["drop_flags"]:
        kept = kept.where(~F.arrays_overlap("flags", F.array(*[F.lit(f) for f in ex["drop_flags"]])))
    return kept.select("image_id", "path", "label", "split")


def with_label_index(df: DataFrame) -> DataFrame:
    """label_index: the label's position in the sorted list of labels (-1 when unlabelled)."""
    labels = [r[0] for r in df.select("label").where(F.col("label").isNotNull()).distinct().orderBy("label").collect()]
    mapping = F.create_map(*[x for i, l in enumerate(labels) for x in (F.lit(l), F.lit(i))]) if labels else None
    index = F.coalesce(mapping[F.col("label")], F.lit(-1)) if mapping is not None else F.lit(-1)
    return df.withColumn("label_index", index.cast("int"))


def training_rows(spark: SparkSession, kept: DataFrame, cfg: dict) -> DataFrame:
    ex, emb = cfg["export"], cfg["embed"]
    size, method = int(ex["image_size"]), emb["resize"]
    limits = Limits(cfg["decode"]["max_file_bytes"], cfg["decode"]["max_pixels"], max_side=2 * size)

    @pandas_udf(T.BinaryType())
    def encode(content: pd.Series) -> pd.Series:
        return pd.Series([training_image(c, size, method, limits) for c in content])

    contents = read_contents(spark, kept, cfg["decode"]["max_file_bytes"])
    if contents is None:
        return spark.createDataFrame([], "image_id long, path string, label string, split string, "
                                         "label_index int, image binary")
    encode_once = encode.asNondeterministic()  # the null filter must not run the encoder a second time
    encoded = contents.select("image_id", encode_once("content").alias("image")).where(F.col("image").isNotNull())
    return with_label_index(kept).join(encoded, "image_id")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", required=True, help="folder (any Hadoop URI) for the curated table and dataset")


def tables_elsewhere(args: argparse.Namespace) -> dict[str, list[str]]:
    """The catalog registers `curated` where this job writes it: under --to."""
    return {args.to: ["curated"]}


def run(spark: SparkSession, cfg: dict, args: argparse.Namespace, run_id: str) -> dict:
    out, fmt = args.output, cfg["output"]["format"]
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg["decode"]["arrow_batch_rows"]))
    kept = curated(read_table(spark, out, "images"), read_table(spark, out, "duplicate_groups"),
                   read_table(spark, out, "leaks"), read_table(spark, out, "outliers"), cfg["export"])
    write_table(kept.withColumn("run_id", F.lit(run_id)), args.to, "curated", fmt)
    kept = read_table(spark, args.to, "curated").drop("run_id")
    rows = training_rows(spark, kept, cfg).withColumn("run_id", F.lit(run_id))
    write_table(rows, args.to, "petastorm", "parquet")  # petastorm reads plain Parquet
    n_kept = kept.count()
    n_ok = read_table(spark, out, "images").where("status = 'ok'").count()
    log.info("export: kept %d of %d readable images; curated table and petastorm dataset under %s",
             n_kept, n_ok, args.to)
    return {"curated": n_kept, "left_out": n_ok - n_kept}


if __name__ == "__main__":
    from sparkdup.stage import main_for

    sys.exit(main_for(sys.modules[__name__]))
