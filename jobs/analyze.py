"""analyze: duplicate groups, outliers, leaks and label issues from the neighbour graph.

Extract: `images`, `embeddings`, `neighbors`. Transform: candidate neighbour pairs
verified on executors (aligned thumbnails), connected components over the verified links
(GraphFrames when its jar is loaded, else sparkdup.graph's own implementations) split into
stars around each representative; robust z-scores of neighbour distances and pixel
evidence for outliers; cross-split pairs for leaks; confident learning on cross-fitted
MLlib class probabilities plus neighbour votes for label issues. Load: `duplicate_pairs`,
`duplicate_groups`,
`outliers`, `leaks`, `label_issues`.

Every transform is a function of DataFrames and settings in sparkdup.findings (one module per
family of findings), tested on a local session.
"""
from __future__ import annotations

import argparse
import logging
import sys

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from sparkdup.findings.duplicates import duplicate_groups, duplicate_pairs
from sparkdup.findings.labels import label_issues
from sparkdup.findings.leaks import leaks
from sparkdup.findings.outliers import outliers
from sparkdup.session import ensure_checkpoint_dir
from sparkdup.stage import add_append_flag, add_setting_flags
from sparkdup.tables import read_table, write_table

log = logging.getLogger("sparkdup")

READER_BATCH_ROWS = 512
TABLES = ("duplicate_pairs", "duplicate_groups", "outliers", "leaks", "label_issues")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_setting_flags(parser, "--duplicate-similarity")
    add_append_flag(parser)


def run(spark: SparkSession, cfg: dict, args: argparse.Namespace, run_id: str) -> dict:
    an, fmt, out = cfg["analyze"], cfg["output"]["format"], args.output
    ensure_checkpoint_dir(spark, cfg, out)
    appending = bool(getattr(args, "append", False))
    if appending:  # findings over everything, each table then updated by one MERGE
        from sparkdup.append import check_format, merge_table

        check_format(cfg, out)

    def save(df, output, name, fmt):
        return merge_table(df, output, name) if appending else write_table(df, output, name, fmt)
    # Several findings read these: each is read once and kept (memory, else local disk). The
    # 12 KB thumbnails only the pair verification reads stay out of the kept images (at 100k
    # images they alone filled a 1 GB driver heap in local mode): it reads them from the table.
    # Spark's default 4,096-row Parquet column batch is 50 MB of thumbnails per task; with the
    # row group's column chunk beside it, two tasks ran a 1 GB local JVM out of heap reading
    # `images` at 100,000 images (BENCHMARKS.md "Driver memory ... synthetic"). Batches of
    # READER_BATCH_ROWS are 6 MB of thumbnails; the other columns only pay more batch
    # boundaries (not measured separately). Set for the session this stage runs in.
    spark.conf.set("spark.sql.parquet.columnarReaderBatchSize", str(READER_BATCH_ROWS))
    with_signatures = read_table(spark, out, "images")
    images = with_signatures.drop("signature").persist(StorageLevel.MEMORY_AND_DISK)
    embeddings, neighbors = (read_table(spark, out, t).persist(StorageLevel.MEMORY_AND_DISK)
                             for t in ("embeddings", "neighbors"))
    stamp = F.lit(run_id).alias("run_id")
    log.info("analyze: duplicate pairs (candidate neighbour pairs verified by aligned thumbnails)")
    appended: dict = {}
    persisted: list = []
    if appending:  # only the pairs the append made new are verified (sparkdup.append_analyze)
        from sparkdup.append_analyze import appended_pairs

        pairs_now, appended = appended_pairs(spark, out, with_signatures, neighbors, an, persisted)
    else:
        pairs_now = duplicate_pairs(with_signatures, neighbors, an)
    save(pairs_now.select("*", stamp), out, "duplicate_pairs", fmt)
    for df in persisted:
        df.unpersist()
    pairs = read_table(spark, out, "duplicate_pairs")
    log.info("analyze: duplicate groups (components of verified pairs split into stars)")
    save(duplicate_groups(images, pairs, an).select("*", stamp), out, "duplicate_groups", fmt)
    groups = read_table(spark, out, "duplicate_groups")
    log.info("analyze: outliers (k-th neighbour distance, within-label distance, pixel evidence)")
    save(outliers(images, neighbors, embeddings, an).select("*", stamp), out, "outliers", fmt)
    log.info("analyze: leaks between splits")
    save(leaks(groups, embeddings).select("*", stamp), out, "leaks", fmt)
    log.info("analyze: label issues (cross-fitted MLlib classifier + confident learning, neighbour votes, "
             "mixed duplicate groups)")
    save(label_issues(images, neighbors, embeddings, groups, an).select("*", stamp), out, "label_issues", fmt)
    counts = {
        "duplicate_pairs_verified": pairs.where("is_duplicate").count(),
        "duplicate_groups": groups.select("group_id").distinct().count(),
        "duplicates_to_remove": groups.where(~F.col("is_representative")).count(),
        "outliers": read_table(spark, out, "outliers").where("is_outlier").count(),
        "leaks": read_table(spark, out, "leaks").count(),
        "label_issues": read_table(spark, out, "label_issues").count(),
    } | appended
    log.info("analyze: %s", ", ".join(f"{k}={v}" for k, v in counts.items()))
    for table in (images, embeddings, neighbors):
        table.unpersist()
    return counts


if __name__ == "__main__":
    from sparkdup.stage import main_for

    sys.exit(main_for(sys.modules[__name__]))
