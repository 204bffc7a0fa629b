"""ingest: list every input image and describe it in the `images` table.

Extract: a folder/glob on any Hadoop filesystem (Spark's binaryFile source, recursive), or
a manifest table (CSV, Parquet or Delta) with a `path` column. Transform: decode health and
statistics in a pandas UDF on the executors, quality flags in SQL. Load: `images`.

Every input row comes out as one row: files that cannot even be read are kept with status
`unreadable` (missing, vanished, I/O error) or `too_large` (over max_file_bytes, not read).
"""
from __future__ import annotations

import argparse
import logging
import os
import posixpath
import sys
import time

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql import types as T

from sparkdup import decoded
from sparkdup.errors import ConfigError
from sparkdup.progress import track
from sparkdup.tables import hadoop_fs, path_exists, write_table
from sparkdup.udfs.decode import Limits
from sparkdup.udfs.ingest import describe_batch

log = logging.getLogger("sparkdup")

DESCRIBE_SCHEMA = T.StructType([
    T.StructField("status", T.StringType()),
    T.StructField("error", T.StringType()),
    T.StructField("format", T.StringType()),
    T.StructField("width", T.IntegerType()),
    T.StructField("height", T.IntegerType()),
    T.StructField("mode", T.StringType()),
    T.StructField("frames", T.IntegerType()),
    T.StructField("brightness", T.DoubleType()),
    T.StructField("contrast", T.DoubleType()),
    T.StructField("blur", T.DoubleType()),
    T.StructField("entropy", T.DoubleType()),
    T.StructField("is_grayscale", T.BooleanType()),
    T.StructField("luma_p01", T.DoubleType()),
    T.StructField("luma_p99", T.DoubleType()),
    T.StructField("signature", T.BinaryType()),
])

# The public column order of `images` (manifest pass-through columns follow).
IMAGE_COLUMNS = [
    "image_id", "path", "label", "split", "size_bytes", "modified_at", "content_hash",
    "format", "width", "height", "mode", "frames", "status", "error",
    "brightness", "contrast", "blur", "entropy", "is_grayscale", "luma_p01", "luma_p99",
    "signature", "flags", "ingested_at", "run_id",
]


# ---------------------------------------------------------------- extract
def list_paths(files: DataFrame) -> DataFrame:
    """Every file of a binaryFile source, zero-byte files included, as a column `path`.

    Spark's file index lists zero-byte files but its scan never reads them, so the scan
    alone would lose them. The index's own list (`inputFiles`, already held by the driver's
    JVM for any file source) becomes a Dataset inside the JVM: no per-file call crosses to
    Python. Hadoop's input-format listing would also do, but on the local filesystem it
    forks a process per file for permissions (9 s per 1,000 files, measured).
    The index spells paths as URIs (file:///a%20b.png); they are turned into binaryFile's
    spelling (file:/a b.png), with '+' kept literal.
    """
    spark = files.sparkSession
    jvm = spark._jvm  # noqa: SLF001
    as_seq = jvm.scala.collection.immutable.ArraySeq.unsafeWrapArray(files._jdf.inputFiles())  # noqa: SLF001
    jdf = spark._jsparkSession.createDataset(as_seq, jvm.org.apache.spark.sql.Encoders.STRING()).toDF()  # noqa: SLF001
    uri = F.regexp_replace(F.col("value"), r"^file:/+", "file:/")
    return (DataFrame(jdf, spark)
            .select(F.url_decode(F.replace(uri, F.lit("+"), F.lit("%2B"))).alias("path"))
            .withColumn("listed", F.lit(True)))


def _binary_files(spark: SparkSession, sources: list[str], recursive: bool) -> DataFrame:
    return (spark.read.format("binaryFile")
            .option("recursiveFileLookup", str(recursive).lower())
            .option("ignoreMissingFiles", "true")
            .option("ignoreCorruptFiles", "true")
            .load(sources if len(sources) > 1 else sources[0]))


def extension_filter(extensions: list[str]) -> Column:
    pattern = r"(?i)\.(" + "|".join(e.lower().lstrip(".") for e in extensions) + r")$"
    return F.col("path").rlike(pattern)


def stat_unsized(spark: SparkSession, listing: DataFrame, limit: int = 100_000) -> DataFrame:
    """Sizes for listed files that Spark's scan gave none: zero-byte files, which Spark
    never reads, and files gone since listing. They are rare, so they are checked one
    by one on the driver (at most `limit`, logged when hit)."""
    rows = listing.where(F.col("size_bytes").isNull()).select("path").limit(limit + 1).collect()
    if len(rows) > limit:
        log.warning("more than %d files without a size; the rest are reported unreadable", limit)
    checked = []
    for row in rows[:limit]:
        fs, hpath = hadoop_fs(spark, row.path)
        checked.append((row.path, int(fs.getFileStatus(hpath).getLen()) if fs.exists(hpath) else None))
    return spark.createDataFrame(checked, "path string, checked_size long")


def list_sources(spark: SparkSession, sources: list[str], recursive: bool) -> tuple[DataFrame, DataFrame]:
    """(listing: path, listed, size_bytes, modified_at; contents: binaryFile rows with bytes).

    Files in the listing but not in the contents could not be read.
    """
    files = _binary_files(spark, sources, recursive)
    sizes = files.select("path", F.col("length").alias("size_bytes"), F.col("modificationTime").alias("modified_at"))
    listing = list_paths(files).join(sizes, "path", "left")
    listing = (listing.join(F.broadcast(stat_unsized(spark, listing)), "path", "left")
               .withColumn("size_bytes", F.coalesce("size_bytes", "checked_size")).drop("checked_size"))
    return listing, files


def list_folder(spark: SparkSession, source: str, extensions: list[str]) -> tuple[DataFrame, DataFrame]:
    is_glob = any(c in source for c in "*?[")
    listing, contents = list_sources(spark, [source], recursive=not is_glob)
    return listing.where(extension_filter(extensions)), contents.where(extension_filter(extensions))


@pandas_udf(T.StringType())
def _normalise_relative(paths: pd.Series) -> pd.Series:
    """Collapse ./ and ../ in relative manifest paths (executor side, per batch)."""
    return paths.map(lambda p: posixpath.normpath(p) if p is not None else None)


def _qualify(path_col: Column, base_dir: str) -> Column:
    """Manifest paths: keep URIs, make absolute local paths file: URIs, resolve relative
    paths against the manifest's own folder (as binaryFile reports paths)."""
    has_scheme = path_col.rlike(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
    scheme, _, base_path = base_dir.partition(":") if not base_dir.startswith("/") else ("", "", base_dir)
    relative = _normalise_relative(F.concat(F.lit(base_path.rstrip("/") + "/"), path_col))
    return (F.when(has_scheme, path_col)
            .when(path_col.startswith("/"), F.concat(F.lit("file:"), path_col))
            .otherwise(F.concat(F.lit(scheme + ":" if scheme else ""), relative)))


def read_manifest(spark: SparkSession, manifest: str) -> DataFrame:
    lower = manifest.lower().rstrip("/")
    if not path_exists(spark, manifest):
        raise ConfigError(f"manifest not found: {manifest}")
    if lower.endswith(".csv"):
        df = spark.read.option("header", "true").csv(manifest)
    elif path_exists(spark, manifest.rstrip("/") + "/_delta_log"):
        df = spark.read.format("delta").load(manifest)
    else:
        df = spark.read.parquet(manifest)
    if "path" not in df.columns:
        raise ConfigError(f"manifest {manifest} has no 'path' column (columns: {', '.join(df.columns)})")
    base = manifest if "://" in manifest or manifest.startswith("file:") else "file:" + os.path.abspath(manifest)
    return df.withColumn("path", _qualify(F.col("path"), base.rsplit("/", 1)[0])).dropDuplicates(["path"])


def list_manifest(spark: SparkSession, manifest: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Like list_folder, but for the files a manifest names, whatever their extension.

    The folders holding the manifest's files are listed (their number, not the number
    of images, reaches the driver). Manifest rows missing from those listings stay in
    the output as `unreadable` (file not found). Other files in those folders are read
    and dropped by the join.
    """
    folders = [r[0] for r in manifest.select(F.regexp_extract("path", r"^(.*)/[^/]*$", 1).alias("d"))
               .distinct().collect()]
    existing = [d for d in folders if d and path_exists(spark, d)]
    log.info("manifest: its files lie in %d folders, %d of them exist", len(folders), len(existing))
    if not existing:
        listing = manifest.withColumn("listed", F.lit(None).cast("boolean")) \
            .withColumn("size_bytes", F.lit(None).cast("long")).withColumn("modified_at", F.lit(None).cast("timestamp"))
        empty = spark.createDataFrame([], "path string, length long, content binary")
        return listing, empty
    listing, contents = list_sources(spark, existing, recursive=False)
    listing = manifest.join(listing, "path", "left")
    return listing, contents.join(manifest.select("path"), "path", "left_semi")


# ---------------------------------------------------------------- transform
def describe_contents(contents: DataFrame, limits: Limits, prepare=None) -> DataFrame:
    """Decode health and statistics per image, on executors, one Arrow batch at a time;
    with `prepare` (sparkdup.decoded), also the model input and thumbnail from the same pixels."""
    schema = DESCRIBE_SCHEMA if prepare is None else T.StructType(
        DESCRIBE_SCHEMA.fields + [T.StructField("model_input", T.BinaryType()), T.StructField("thumbnail", T.BinaryType())])

    @pandas_udf(schema)
    def describe_udf(content: pd.Series) -> pd.DataFrame:
        return describe_batch(content, limits, prepare)

    readable = contents.where(F.col("length") <= limits.max_file_bytes)
    describe_once = describe_udf.asNondeterministic()  # never duplicated into pushed-down filters
    return readable.select(
        "path",
        F.sha2("content", 256).alias("content_hash"),
        describe_once("content").alias("d"),
    ).select("path", "content_hash", "d.*")


def derive_layout(df: DataFrame, layout: str) -> DataFrame:
    """label (and split) from folder names: .../label/file or .../split/label/file."""
    parts = F.split(F.col("path"), "/")
    if layout == "none":
        derived = {}
    elif layout == "label":
        derived = {"label": F.element_at(parts, -2)}
    elif layout == "split/label":
        derived = {"label": F.element_at(parts, -2), "split": F.element_at(parts, -3)}
    else:
        raise ConfigError(f"ingest.layout must be none, label or split/label, got '{layout}'")
    for name, value in derived.items():
        df = df.withColumn(name, F.coalesce(F.col(name).cast("string"), value) if name in df.columns else value)
    for name in ("label", "split"):
        if name not in df.columns:
            df = df.withColumn(name, F.lit(None).cast("string"))
    return df


def quality_flags(flags: dict) -> Column:
    """The flags array from statistics and thresholds (empty unless status is ok)."""
    short_side = F.least("width", "height")
    long_side = F.greatest("width", "height")
    rules = [
        ("dark", F.col("luma_p99") <= flags["dark_p99_max"]),
        ("bright", F.col("luma_p01") >= flags["bright_p01_min"]),
        ("blurry", F.col("blur") < flags["blurry_max"]),
        ("low_information", F.col("entropy") < flags["low_information_max"]),
        ("tiny", short_side < flags["tiny_min_side"]),
        ("odd_aspect", long_side / F.greatest(short_side, F.lit(1)) > flags["odd_aspect_ratio"]),
    ]
    candidates = F.array(*[F.when(cond, F.lit(name)) for name, cond in rules])
    return F.when(F.col("status") == "ok", F.filter(candidates, lambda x: x.isNotNull())).otherwise(
        F.array().cast("array<string>"))


def assemble_images(listing: DataFrame, described: DataFrame, cfg: dict, run_id: str) -> DataFrame:
    """Join the listing (every input) to what could be read; nothing is dropped."""
    ing = cfg["ingest"]
    df = listing.join(described, "path", "left")
    unread = F.col("status").isNull()
    not_found = F.col("listed").isNull()
    zero_bytes = F.col("listed") & (F.col("size_bytes") == 0)
    too_big = F.col("size_bytes") > ing["max_file_bytes"]
    df = (df
          .withColumn("error", F.when(unread & not_found, F.lit("file not found"))
                      .when(unread & zero_bytes, F.lit("file is empty (0 bytes)"))
                      .when(unread & too_big, F.concat(F.lit("file is "), F.col("size_bytes").cast("string"),
                                                       F.lit(f" bytes, over max_file_bytes={ing['max_file_bytes']}")))
                      .when(unread, F.lit("file could not be read (I/O error, not a file, or removed while running)"))
                      .otherwise(F.col("error")))
          .withColumn("status", F.when(unread & zero_bytes, F.lit("empty"))
                      .when(unread & too_big, F.lit("too_large"))
                      .when(unread, F.lit("unreadable")).otherwise(F.col("status")))
          .withColumn("image_id", F.xxhash64("path"))
          .withColumn("flags", quality_flags(ing["flags"]))
          .withColumn("ingested_at", F.current_timestamp())
          .withColumn("run_id", F.lit(run_id)))
    df = derive_layout(df, ing["layout"])
    extra = [c for c in df.columns if c not in IMAGE_COLUMNS and c != "listed"]
    return df.select(*IMAGE_COLUMNS, *extra)


# ---------------------------------------------------------------- job
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="?", help="folder or glob of images (any Hadoop URI)")
    parser.add_argument("--manifest", help="CSV, Parquet or Delta table with a path column")
    parser.add_argument("--layout", choices=["none", "label", "split/label"],
                        help="derive label/split from folders (default: ingest.layout)")


def list_input(spark: SparkSession, cfg: dict, source: str | None, manifest: str | None) -> tuple[DataFrame, DataFrame]:
    """(listing, contents) of the input folder/glob or of the files a manifest names."""
    if bool(source) == bool(manifest):
        raise ConfigError("give either an INPUT folder/glob or --manifest FILE (exactly one)")
    if manifest:
        return list_manifest(spark, read_manifest(spark, manifest))
    if not any(c in source for c in "*?[") and not path_exists(spark, source):
        raise ConfigError(f"input not found: {source}")
    return list_folder(spark, source, cfg["ingest"]["extensions"])


def images_from(listing: DataFrame, contents: DataFrame, cfg: dict, run_id: str, output: str | None = None) -> DataFrame:
    """The images table; given `output`, each file's model input and thumbnail are kept
    beside it for the later stages (sparkdup.decoded: decode once per run)."""
    limits = decoded.decode_limits(cfg)
    prepare = decoded.prepare_for(cfg) if output else None
    described = describe_contents(contents, limits, prepare)
    if prepare is not None:
        described = decoded.keep(described, output, prepare)
    return assemble_images(listing, described, cfg, run_id)


def build_images(spark: SparkSession, cfg: dict, source: str | None, manifest: str | None, run_id: str) -> DataFrame:
    listing, contents = list_input(spark, cfg, source, manifest)
    return images_from(listing, contents, cfg, run_id)


def run(spark: SparkSession, cfg: dict, args: argparse.Namespace, run_id: str) -> dict:
    if args.layout:
        cfg["ingest"]["layout"] = args.layout
    started = time.time()
    listing, contents = list_input(spark, cfg, args.input, args.manifest)
    n_files = listing.count()
    seconds = time.time() - started
    log.info("listed %s files in %.1f s (%.0f files/s)", f"{n_files:,}", seconds, n_files / max(seconds, 1e-9))
    with track(spark, "reading images", n_files):
        images = images_from(listing, contents, cfg, run_id, args.output)
        path = write_table(images, args.output, "images", cfg["output"]["format"])
    counts = {r["status"]: r["count"] for r in spark.read.format(cfg["output"]["format"]).load(path)
              .groupBy("status").count().collect()}
    log.info("images: %d rows at %s (%s)", sum(counts.values()), path,
             ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return {"images": sum(counts.values())} | {f"status_{k}": v for k, v in counts.items()}


if __name__ == "__main__":
    from sparkdup.stage import main_for

    sys.exit(main_for(sys.modules[__name__]))
