"""Where the neighbour indexes live: built by executors, kept under the output location.

Layout: ``<output>/_index/<run_id>/bucket=<n>/part-*.parquet``, one Parquet file per
bucket holding that bucket's index file and ids file in 8 MiB chunks
(``sparkdup.udfs.backends.INDEX_SCHEMA``), and ``<output>/_index/<run_id>/meta.json``
(backend, dim, bucket centroids) for ``sparkdup search``. It is written by Spark's own writer, so it
works on every Hadoop filesystem the tables do (local, HDFS, s3a://, dbfs:/, abfss://),
and it is a readable table (``spark.read.parquet(<output>/_index/<run_id>)``). A leading
underscore keeps it out of the way of table readers.

Build: the bucket's vectors are shuffled so that partition b holds exactly bucket b (a
hash key chosen per bucket, below), sorted by image id, and one task per bucket builds the
index (``backends.build_partition``). Load: the driver lists the written file names
through the Hadoop FileSystem API and publishes them with ``SparkContext.addFile``;
executors fetch them straight from the filesystem (the driver serves them itself only for
``file:`` output), and query tasks reassemble each index once per machine. The driver
handles file names only.

The index stays after the run (for search and incremental runs); ``neighbors.keep_index:
false`` deletes it when the session ends (not earlier: an executor that joins later
fetches every published file before its first task). Indexes of earlier runs of the same
output are deleted at the start of a run, except those published in this session.
"""
from __future__ import annotations

import atexit
import json
import logging
import re

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkdup.tables import hadoop_fs
from sparkdup.udfs import backends

log = logging.getLogger("sparkdup")

INDEX_FOLDER = "_index"
META_FILE = "meta.json"


def index_root(output: str, run_id: str) -> str:
    return f"{output.rstrip('/')}/{INDEX_FOLDER}/{run_id}"


def partition_keys(spark: SparkSession, n: int) -> dict[int, int]:
    """For each b in 0..n-1 a bigint whose Spark hash lands in partition b of n.

    ``repartition(n, col)`` places a row in pmod(murmur3(col), n); hashing the bucket
    number itself lets two buckets share a task (and their files a name). Computed by
    Spark's own hash over a small range, so it matches the partitioner exactly."""
    if n == 1:
        return {0: 0}
    span = max(1000, 64 * n)
    rows = (spark.range(0, span).select("id", F.expr(f"pmod(hash(id), {n})").alias("p"))
            .groupBy("p").agg(F.min("id").alias("key")).collect())
    keys = {int(r["p"]): int(r["key"]) for r in rows}
    if len(keys) != n:
        raise RuntimeError(f"no hash key found for {n - len(keys)} of {n} buckets")
    return keys


def build(spark: SparkSession, primary: DataFrame, plan: backends.BuildPlan, n_buckets: int, root: str) -> None:
    """Write every bucket's index under `root`: `primary` is (bucket, image_id, vec)."""
    keys = partition_keys(spark, n_buckets)
    key_of = F.create_map(*[x for b, k in sorted(keys.items()) for x in (F.lit(b), F.lit(k).cast("long"))])
    shuffled = (primary.withColumn("_key", key_of[F.col("bucket")])
                .repartition(n_buckets, "_key")
                .sortWithinPartitions("bucket", "image_id")
                .select("bucket", "image_id", "vec"))
    chunks = shuffled.mapInPandas(lambda it: backends.build_partition(it, plan), backends.INDEX_SCHEMA)
    # Row groups of 16 MiB: the Parquet writer buffers a whole row group on the JVM heap,
    # outside Spark's memory accounting; the 128 MiB default is a bucket's index at a time.
    (chunks.write.mode("overwrite").option("compression", "none").option("maxRecordsPerFile", 0)
     .option("parquet.block.size", 16 << 20).partitionBy("bucket").parquet(root))


def bucket_files(spark: SparkSession, root: str) -> dict[int, str]:
    """bucket -> URI of its written chunk file, listed through the Hadoop FileSystem API."""
    fs, _ = hadoop_fs(spark, root)
    jvm = spark._jvm  # noqa: SLF001
    found = fs.globStatus(jvm.org.apache.hadoop.fs.Path(root + "/bucket=*/*.parquet")) or []
    files: dict[int, str] = {}
    for status in found:
        uri = status.getPath().toString()
        bucket = int(re.search(r"/bucket=(\d+)/", uri).group(1))
        if bucket in files:
            raise RuntimeError(f"bucket {bucket} has more than one index file under {root}")
        files[bucket] = uri
    return files


def publish(spark: SparkSession, root: str, buckets=None) -> dict[int, str]:
    """Publish the written chunk files (addFile), all or those of `buckets`; bucket -> file
    name for SparkFiles.get (which also works on the driver: addFile fetches there too)."""
    files: dict[int, str] = {}
    for bucket, uri in bucket_files(spark, root).items():
        if buckets is not None and bucket not in buckets:
            continue
        spark.sparkContext.addFile(uri)
        files[bucket] = uri.rsplit("/", 1)[1]
    return files


def write_meta(spark: SparkSession, root: str, meta: dict) -> None:
    """`<root>/meta.json`: what a later search needs to query the index without refitting
    anything (backend, dim, centroids or none for one bucket). Written through the Hadoop
    FileSystem API, so it lands beside the buckets on any filesystem."""
    fs, path = hadoop_fs(spark, f"{root}/{META_FILE}")
    out = fs.create(path, True)
    try:
        out.write(bytearray(json.dumps(meta).encode("utf-8")))
    finally:
        out.close()


def has_meta(spark: SparkSession, root: str) -> bool:
    fs, path = hadoop_fs(spark, f"{root}/{META_FILE}")
    return bool(fs.exists(path))


def read_meta(spark: SparkSession, root: str) -> dict:
    fs, path = hadoop_fs(spark, f"{root}/{META_FILE}")
    stream = fs.open(path)
    try:
        data = spark._jvm.org.apache.commons.io.IOUtils.toByteArray(stream)  # noqa: SLF001
    finally:
        stream.close()
    return json.loads(bytes(data).decode("utf-8"))


def _published_uris(spark: SparkSession) -> list[str]:
    return list(spark.sparkContext.listFiles)


def clean_earlier(spark: SparkSession, output: str, keep: str) -> list[str]:
    """Delete `<output>/_index/<run>` of other runs, unless this session published from it."""
    base = f"{output.rstrip('/')}/{INDEX_FOLDER}"
    fs, path = hadoop_fs(spark, base)
    if not fs.exists(path):
        return []
    published = _published_uris(spark)
    removed = []
    for status in fs.listStatus(path):
        run = status.getPath().getName()
        where = status.getPath().toString()
        if run == keep or any(f"/{INDEX_FOLDER}/{run}/" in u for u in published):
            continue
        fs.delete(status.getPath(), True)
        removed.append(where)
    if removed:
        log.info("neighbors: removed the indexes of %d earlier run(s) under %s", len(removed), base)
    return removed


def remove_at_exit(spark: SparkSession, root: str) -> None:
    """neighbors.keep_index=false: delete this run's index when the session ends."""
    fs, path = hadoop_fs(spark, root)

    def remove():
        try:
            fs.delete(path, True)
        except Exception:  # noqa: BLE001 - the JVM may already be gone; the next run cleans it
            log.debug("could not remove %s at exit", root)
    atexit.register(remove)
