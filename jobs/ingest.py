"""ingest: list every input image and describe it in the `images` table.

Extract: a folder (taken literally; a Hadoop glob with --glob) listed by sparkdup.listing
(every name the filesystem holds, `_` and non-UTF-8 names included, loops and links
handled), or a manifest (sparkdup.manifest: CSV, Parquet or Delta with a `path` column).
Transform: local files are read and described by the Python worker itself (udfs/ingest.py);
files on other filesystems are read by Spark's binaryFile source over their folders and
described in a pandas UDF; quality flags in SQL. Load: `images`, and the counts of what
was listed and skipped for the `runs` table.

Every input row comes out as one row: files that cannot even be read are kept with status
`unreadable` (missing, vanished, I/O error) or `too_large` (over max_file_bytes, not read).
"""
from __future__ import annotations

import argparse
import logging
import os
import stat
import sys
import time
from typing import NamedTuple
from datetime import datetime, timezone

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.functions import pandas_udf
from pyspark.sql import types as T

from sparkdup import decoded
from sparkdup.errors import ConfigError, InputError
from sparkdup.listing import Entry, Listing, is_local, local_path, spark_literal, wanted_extensions
from sparkdup.listing import list_input as list_files
from sparkdup.manifest import read_manifest_rows
from sparkdup.partitioning import partitions_for
from sparkdup.preflight import concurrent_write_error, preflight
from sparkdup.progress import track
from sparkdup.runs import listing_warnings, provenance
from sparkdup.schemas import TABLES, image_id
from sparkdup.stage import add_append_flag, add_setting_flags
from sparkdup.tables import path_exists, read_table, write_table
from sparkdup.udfs.decode import Limits
from sparkdup.udfs.ingest import describe_batch, describe_files

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
IMAGE_COLUMNS = TABLES["images"].names
# Listing columns that never reach the table.
INTERNAL_COLUMNS = ("local", "listed", "list_status", "list_error", "id_salt")
# Files per partition of the per-image work (decode and statistics): about what Spark's
# file scan packs into three partitions of small images: tasks of about 2 s of decoding
# on one core, so task overhead stays under 3%, and 200 images already fill 2 cores.
INGEST_FILES_PER_PARTITION = 100


# ---------------------------------------------------------------- extract
LISTING_SCHEMA = T.StructType([
    T.StructField("path", T.StringType()),
    T.StructField("local", T.BinaryType()),       # raw OS path to open (local files only)
    T.StructField("size_bytes", T.LongType()),
    T.StructField("mtime", T.DoubleType()),
    T.StructField("listed", T.BooleanType()),
    T.StructField("list_status", T.StringType()),  # set when the listing already knows the outcome
    T.StructField("list_error", T.StringType()),
    T.StructField("id_salt", T.LongType()),
    T.StructField("manifest_line", T.LongType()),
])


def listing_frame(spark: SparkSession, rows: pd.DataFrame, extra: list[str] = ()) -> DataFrame:
    """A driver-side listing as a DataFrame, through Arrow (100,000 rows in about a second)."""
    import pyarrow as pa

    schema = T.StructType(LISTING_SCHEMA.fields + [T.StructField(c, T.StringType()) for c in extra])
    arrays = {}
    for f in schema.fields:
        col = rows[f.name] if f.name in rows else pd.Series([None] * len(rows), dtype=object)
        kind = {T.StringType: pa.string(), T.BinaryType: pa.binary(), T.LongType: pa.int64(),
                T.DoubleType: pa.float64(), T.BooleanType: pa.bool_()}[type(f.dataType)]
        values = [None if v is None or (not isinstance(v, (bytes, str)) and pd.isna(v)) else v for v in col]
        arrays[f.name] = pa.array(values, type=kind)
    table = pa.table(arrays) if len(rows) else pa.table({f.name: pa.array([], type=arrays[f.name].type)
                                                         for f in schema.fields})
    return (spark.createDataFrame(table, schema=schema)
            .withColumn("modified_at", F.timestamp_seconds("mtime")).drop("mtime")
            .withColumn("image_id", F.when(F.col("id_salt").isNull(), F.xxhash64("path"))
                        .otherwise(F.xxhash64("path", "id_salt"))))


def entries_frame(spark: SparkSession, entries: list[Entry]) -> DataFrame:
    rows = pd.DataFrame({
        "path": [e.path for e in entries], "local": [e.local for e in entries],
        "size_bytes": pd.array([e.size for e in entries], dtype="Int64"),
        "mtime": [e.mtime for e in entries],
        "listed": [True] * len(entries),
        "list_status": [None if e.error is None else "unreadable" for e in entries],
        "list_error": [e.error for e in entries],
    })
    return listing_frame(spark, rows)


def scan_folders(spark: SparkSession, paths: DataFrame) -> DataFrame:
    """binaryFile rows (path, length, modificationTime, content) of the folders holding
    `paths` (remote files: Spark's reader is how executors get their bytes), non-recursive.
    Only folder names reach the driver."""
    folders = [r[0] for r in paths.select(F.regexp_extract("path", r"^(.*)/[^/]*$", 1)).distinct().collect() if r[0]]
    existing = [d for d in folders if path_exists(spark, d)]
    if not existing:
        return spark.createDataFrame([], "path string, length long, modificationTime timestamp, content binary")
    return (spark.read.format("binaryFile").option("ignoreMissingFiles", "true").option("ignoreCorruptFiles", "true")
            .load([spark_literal(d) for d in existing]))


def read_skipped_names(spark: SparkSession, remote: DataFrame, max_file_bytes: int, limit: int = 10_000) -> DataFrame:
    """binaryFile-shaped rows for remote files whose names start with `_` or `.`, which
    Spark's reader never returns: read on the driver through the Hadoop FileSystem (they
    are few in most datasets; at most `limit`, logged when hit, the rest stay unreadable
    with the reason)."""
    rows = (remote.where(F.regexp_extract("path", r"/([^/]*)$", 1).rlike(r"^[_.]"))
            .select("path").limit(limit + 1).collect())
    if len(rows) > limit:
        log.warning("more than %d remote files named with a leading '_' or '.'; the rest are not read", limit)
    jvm = spark._jvm  # noqa: SLF001
    read = []
    for row in rows[:limit]:
        hpath = jvm.org.apache.hadoop.fs.Path(row.path)  # the listing's own Path.toString()
        fs = hpath.getFileSystem(spark._jsc.hadoopConfiguration())  # noqa: SLF001
        if not fs.exists(hpath):
            continue
        st = fs.getFileStatus(hpath)
        if st.getLen() > max_file_bytes:
            continue  # too_large from its size alone
        stream = fs.open(hpath)
        try:
            data = bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()
        read.append((row.path, datetime.fromtimestamp(st.getModificationTime() / 1000, timezone.utc), len(data), data))
    return spark.createDataFrame(read, "path string, modificationTime timestamp, length long, content binary")


def stat_unsized(spark: SparkSession, listing: DataFrame, limit: int = 100_000) -> DataFrame:
    """Sizes for remote listed files that Spark's scan gave none: zero-byte files, which
    Spark never reads, names Spark's reader skips, and files gone since listing. They are
    rare, so they are checked one by one on the driver (at most `limit`, logged when hit)."""
    rows = listing.where(F.col("size_bytes").isNull()).select("path").limit(limit + 1).collect()
    if len(rows) > limit:
        log.warning("more than %d files without a size; the rest are reported unreadable", limit)
    checked = []
    jvm = spark._jvm  # noqa: SLF001
    for row in rows[:limit]:
        hpath = jvm.org.apache.hadoop.fs.Path(row.path)  # the listing's own Path.toString()
        fs = hpath.getFileSystem(spark._jsc.hadoopConfiguration())  # noqa: SLF001
        checked.append((row.path, int(fs.getFileStatus(hpath).getLen()) if fs.exists(hpath) else None))
    return spark.createDataFrame(checked, "path string, checked_size long")


def with_remote_sizes(spark: SparkSession, listing: DataFrame, contents: DataFrame) -> DataFrame:
    """Remote listing rows get size and time from the scan (then from the driver for the few
    without), and `listed` false when the file is gone."""
    sizes = contents.select("path", F.col("length").alias("scan_size"), F.col("modificationTime").alias("scan_time"))
    df = listing.join(sizes, "path", "left")
    df = (df.withColumn("size_bytes", F.coalesce("size_bytes", "scan_size"))
          .withColumn("modified_at", F.coalesce("modified_at", "scan_time")).drop("scan_size", "scan_time"))
    unsized = stat_unsized(spark, df.where(F.col("list_status").isNull()))
    return (df.join(F.broadcast(unsized), "path", "left")
            .withColumn("size_bytes", F.coalesce("size_bytes", "checked_size"))
            .withColumn("listed", F.when(F.col("size_bytes").isNotNull(), F.col("listed")))
            .drop("checked_size"))


def stat_local(rows: pd.DataFrame) -> pd.DataFrame:
    """Size, time and existence of the local files a manifest names (driver, one stat each)."""
    sizes, times, listed, statuses, errors = [], [], [], list(rows["list_status"]), list(rows["list_error"])
    for i, raw in enumerate(rows["local"]):
        st = None
        if raw is not None and statuses[i] is None:
            try:
                st = os.stat(raw)
            except OSError:
                if os.path.islink(raw):
                    statuses[i], errors[i] = "unreadable", "broken symbolic link: its target does not exist"
            if st is not None and not stat.S_ISREG(st.st_mode):
                statuses[i], errors[i], st = "unreadable", "a folder or special file, not a file", None
        sizes.append(st.st_size if st else None)
        times.append(st.st_mtime if st else None)
        listed.append(True if st else None)
    return rows.assign(size_bytes=pd.array(sizes, dtype="Int64"), mtime=times, listed=listed,
                       list_status=statuses, list_error=errors)


def manifest_listing(spark: SparkSession, manifest: str, ing: dict) -> tuple[DataFrame, DataFrame | None, int]:
    """(listing, typed_columns, rows): one listing row per manifest row; the user columns of a
    CSV manifest ride along as strings, those of a Parquet/Delta one come back typed,
    keyed by `manifest_line`."""
    rows, typed = read_manifest_rows(spark, manifest, ing, IMAGE_COLUMNS)
    extra = [c for c in rows.columns if c not in LISTING_SCHEMA.names and c != "local"]
    return listing_frame(spark, stat_local(rows), extra), typed, len(rows)


# ---------------------------------------------------------------- transform
def _with_prepared(schema: T.StructType, prepare) -> T.StructType:
    """The describe schema, plus the model input and thumbnail when `prepare` is given."""
    if prepare is None:
        return schema
    return T.StructType(schema.fields + [T.StructField("model_input", T.BinaryType()),
                                         T.StructField("thumbnail", T.BinaryType())])


def describe_local(listing: DataFrame, limits: Limits, prepare=None) -> DataFrame:
    """(image_id, content_hash, describe columns) of local files, read by the Python worker;
    with `prepare` (sparkdup.decoded), also the model input and thumbnail from the same pixels."""

    @pandas_udf(_with_prepared(T.StructType([T.StructField("content_hash", T.StringType())]
                                            + DESCRIBE_SCHEMA.fields), prepare))
    def describe_udf(local: pd.Series) -> pd.DataFrame:
        return describe_files(local, limits, prepare)

    describe_once = describe_udf.asNondeterministic()  # never duplicated into pushed-down filters
    readable = (F.col("local").isNotNull() & F.col("list_status").isNull()
                & F.col("size_bytes").between(1, limits.max_file_bytes))
    return listing.where(readable).select("image_id", describe_once("local").alias("d")).select("image_id", "d.*")


def describe_contents(contents: DataFrame, limits: Limits, prepare=None) -> DataFrame:
    """Decode health and statistics of remote files' bytes, on executors, one Arrow batch at
    a time; with `prepare`, also the model input and thumbnail from the same pixels."""

    @pandas_udf(_with_prepared(DESCRIBE_SCHEMA, prepare))
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
    df = listing.join(described, "image_id", "left")
    known = F.col("list_status").isNotNull()
    unread = F.col("status").isNull() & ~known
    not_found = F.col("listed").isNull()
    zero_bytes = F.col("listed") & (F.col("size_bytes") == 0)
    too_big = F.col("size_bytes") > cfg["decode"]["max_file_bytes"]
    skipped_name = F.col("local").isNull() & F.regexp_extract("path", r"/([^/]*)$", 1).rlike(r"^[_.]")
    df = (df
          .withColumn("error", F.when(known, F.col("list_error"))
                      .when(unread & not_found, F.lit("file not found"))
                      .when(unread & zero_bytes, F.lit("file is empty (0 bytes)"))
                      .when(unread & too_big, F.concat(F.lit("file is "), F.col("size_bytes").cast("string"),
                                                       F.lit(f" bytes, over decode.max_file_bytes={cfg['decode']['max_file_bytes']}")))
                      .when(unread & skipped_name, F.lit("not read: Spark's file reader skips names starting with "
                                                         "'_' or '.' and the driver reads at most 10,000 of them"))
                      .when(unread, F.lit("file could not be read (I/O error, not a file, or removed while running)"))
                      .otherwise(F.col("error")))
          .withColumn("status", F.when(known, F.col("list_status"))
                      .when(unread & zero_bytes, F.lit("empty"))
                      .when(unread & too_big, F.lit("too_large"))
                      .when(unread, F.lit("unreadable")).otherwise(F.col("status")))
          .withColumn("flags", quality_flags(ing["flags"]))
          .withColumn("ingested_at", F.current_timestamp())
          .withColumn("run_id", F.lit(run_id)))
    df = derive_layout(df, ing["layout"])
    extra = [c for c in df.columns if c not in IMAGE_COLUMNS and c not in INTERNAL_COLUMNS]
    return df.select(*IMAGE_COLUMNS, *extra)


# ---------------------------------------------------------------- job
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="?", help="folder or file of images (any Hadoop URI), taken literally")
    add_setting_flags(parser, "--glob")
    parser.add_argument("--manifest", help="CSV, Parquet or Delta table with a path column")
    add_setting_flags(parser, "--layout")
    add_append_flag(parser)


class Inputs(NamedTuple):
    """What ingest reads: one listing row per output row (`n` of them, known on the driver),
    the binaryFile rows of remote files (None when all are local), the folder Listing with
    its counts (None for a manifest), a Parquet/Delta manifest's typed columns (or None)."""
    listing: DataFrame
    contents: DataFrame | None
    found: Listing | None
    typed: DataFrame | None
    n: int


def spread(df: DataFrame, n_rows: int) -> DataFrame:
    """The per-image work in ceil(n / INGEST_FILES_PER_PARTITION) partitions (at least one per
    core): a shuffle of paths only, inside the stage that reads the images."""
    n = partitions_for(n_rows, INGEST_FILES_PER_PARTITION, df.sparkSession.sparkContext.defaultParallelism)
    return df.repartition(n)


def list_input(spark: SparkSession, cfg: dict, source: str | None, manifest: str | None,
               glob: bool = False) -> Inputs:
    ing = cfg["ingest"]
    if bool(source) == bool(manifest):
        raise InputError("give either an INPUT folder/glob or --manifest FILE (exactly one)")
    if manifest:
        if is_local(manifest) and not os.path.exists(local_path(manifest)) or \
                not is_local(manifest) and not path_exists(spark, manifest):
            raise InputError(f"manifest not found: {manifest}")
        listing, typed, n = manifest_listing(spark, manifest, ing)
        found = None
    else:
        wanted = wanted_extensions(ing["extensions"], ing["all_pillow_formats"])
        found = list_files(spark, source, wanted, ing["include_hidden"], glob)
        listing, typed, n = entries_frame(spark, found.entries), None, len(found.entries)
    remote = listing.where(F.col("local").isNull() & F.col("list_status").isNull())
    if manifest and not remote.limit(1).count() or source and is_local(source):
        return Inputs(listing, None, found, typed, n)
    contents = scan_folders(spark, remote.select("path"))
    contents = contents.unionByName(read_skipped_names(spark, remote, cfg["decode"]["max_file_bytes"]))
    listing = with_remote_sizes(spark, listing, contents)
    return Inputs(listing, contents.join(remote.select("path"), "path", "left_semi"), found, typed, n)


def images_from(inputs: Inputs, cfg: dict, run_id: str, output: str | None = None,
                previous: DataFrame | None = None) -> DataFrame:
    """The images table; given `output`, each file's model input and thumbnail are kept
    beside it for the later stages (sparkdup.decoded: decode once per run). Given the
    `previous` images table (--append), only new or changed files are read: the others
    keep their description (sparkdup.append_ingest), and vanished ones come back `missing`."""
    from sparkdup import append_ingest

    limits = decoded.decode_limits(cfg)
    prepare = decoded.prepare_for(cfg) if output else None
    listing, to_read, n_read, contents, reused = inputs.listing, inputs.listing, inputs.n, inputs.contents, None
    unchanged = None
    if previous is not None:
        unchanged = append_ingest.unchanged_ids(listing, previous)
        to_read = listing.join(unchanged, "image_id", "left_anti")
        n_read = to_read.count()
        log.info("--append: %d new or changed files to read, %d unchanged", n_read, inputs.n - n_read)
        reused = append_ingest.descriptions(previous, unchanged, ["content_hash"] + DESCRIBE_SCHEMA.names)
        if contents is not None:
            contents = contents.join(to_read.select("path"), "path", "left_semi")
    described = describe_local(spread(to_read, n_read), limits, prepare)
    if contents is not None:
        remote = describe_contents(contents, limits, prepare).withColumn("image_id", image_id()).drop("path")
        described = described.unionByName(remote)
    if prepare is not None:
        described = decoded.keep(described, output, prepare, carry=unchanged)
    if reused is not None:
        described = described.unionByName(reused)
    if inputs.typed is not None:
        listing = listing.join(inputs.typed, "manifest_line", "left")
    images = assemble_images(listing, described, cfg, run_id)
    if previous is not None:
        images = images.unionByName(append_ingest.missing(previous, listing, run_id), allowMissingColumns=True)
    return images


def build_images(spark: SparkSession, cfg: dict, source: str | None, manifest: str | None, run_id: str,
                 glob: bool = False) -> DataFrame:
    return images_from(list_input(spark, cfg, source, manifest, glob), cfg, run_id)


def before_work(cfg, args: argparse.Namespace) -> None:
    """The checks that need no Spark session (local input and output), run before it starts."""
    if getattr(args, "append", False):
        from sparkdup.append import check_format

        check_format(cfg, args.output)
    preflight(None, cfg, argparse.Namespace(**(vars(args) | {"glob": cfg["ingest"]["glob"]})))


def run(spark: SparkSession, cfg: dict, args: argparse.Namespace, run_id: str) -> dict:
    glob = cfg["ingest"]["glob"]
    preflight(spark, cfg, argparse.Namespace(**(vars(args) | {"glob": glob})))
    for p in provenance(spark, args.output):
        log.info("previous %s: run %s (%s stage, started %s)", p["table"], p["run_id"], p["stage"], p["started_at"])
    started = time.time()
    inputs = list_input(spark, cfg, args.input, args.manifest, glob)
    n_files, found = inputs.n, inputs.found
    seconds = time.time() - started
    log.info("listed %s files in %.1f s (%.0f files/s)", f"{n_files:,}", seconds, n_files / max(seconds, 1e-9))
    fmt = cfg["output"]["format"]
    previous = None
    if getattr(args, "append", False):
        from sparkdup import append

        append.check_format(cfg, args.output)
        if not append.is_first_run(spark, args.output, "images"):
            previous = read_table(spark, args.output, "images")
    try:
        with track(spark, "reading images", n_files):
            images = images_from(inputs, cfg, run_id, args.output, previous)  # keeping model inputs runs the decode
            if previous is None:
                path = write_table(images, args.output, "images", fmt)
            else:
                from sparkdup.append import merge_table

                path = merge_table(images, args.output, "images")
    except Exception as exc:  # Delta's conflict with a concurrent writer becomes one line
        clean = concurrent_write_error(exc, args.output)
        if clean is None:
            raise
        raise clean from None
    written = spark.read.format(fmt).load(path)
    counts = {r["status"]: r["count"] for r in written.groupBy("status").count().collect()}
    total = sum(counts.values())
    log.info("images: %d rows at %s (%s)", total, path, ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    out = {"images": total, "rows_written": total} | {f"status_{k}": v for k, v in counts.items()}
    if previous is not None:  # what this run changed: the rows stamped with its run_id
        out["rows_written"] = written.where(F.col("run_id") == run_id).count()
    out |= found.counts() if found is not None else {"files_listed": n_files}
    for message in listing_warnings(out):
        log.warning(message)
    return out


if __name__ == "__main__":
    from sparkdup.stage import main_for

    sys.exit(main_for(sys.modules[__name__]))
