"""Where the neighbour indexes live: built by executors, kept under the output location.

Layout: ``<output>/_index/<run_id>/bucket=<n>/part-*.parquet``, one Parquet file per
bucket holding that bucket's index file and ids file in 8 MiB chunks
(``sparkdup.udfs.backends.INDEX_SCHEMA``), and ``<output>/_index/<run_id>/meta.json``
(backend, dim, model, bucket centroids, vectors the centroids were fitted on, vectors per
bucket) for ``sparkdup search`` and --append. It is written by Spark's own writer, so it
works on every Hadoop filesystem the tables do (local, HDFS, s3a://, dbfs:/, abfss://),
and it is a readable table (``spark.read.parquet(<output>/_index/<run_id>/bucket=<n>)``).
A leading underscore keeps it out of the way of table readers.

Build: the bucket's vectors are shuffled so that partition b holds exactly bucket b (a
hash key chosen per bucket, below), sorted by image id, and one task per bucket builds the
index (``backends.build_partition``).

Query (``route``): query rows go to the index, not the index to every executor. A bucket's
query rows are spread over a few partitions of their own (``layout``: one per
query_rows_per_partition rows, at most neighbors.index_copies), and Spark's Parquet reader
reads only the queried buckets' files (through the Hadoop FileSystem, any scheme) and
sends each partition the pieces of its bucket's index, sorted before its query rows.
``backends.query_partition`` reassembles that index once per machine and answers the
queries. A task never sees another bucket's index; an index travels to at most
index_copies tasks. The driver handles bucket sizes and file names only.

Reading one bucket elsewhere (``sparkdup search``): ``load_bucket(spark, output, run_id,
bucket, backend, dim)`` copies that bucket's file through the Hadoop FileSystem to a local
folder and opens it. --append writes a new index version from the previous one
(sparkdup.append_neighbors): ``build_chunks`` for rebuilt buckets, grown buckets' chunks,
one ``write_chunks``, then ``copy_buckets`` for the unchanged ones.

The index stays after the run (for search and incremental runs); ``neighbors.keep_index:
false`` deletes it once the stage has written its table. Indexes of earlier runs of the
same output are deleted at the start of a run (an --append keeps the previous one until
its own has grown from it), except those this session published with
``SparkContext.addFile`` (an executor that joins later fetches every published file).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import uuid

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkdup.session import temporary_conf
from sparkdup.tables import hadoop_fs
from sparkdup.udfs import backends

log = logging.getLogger("sparkdup")

INDEX_FOLDER = "_index"
META_FILE = "meta.json"
# Open index files one write task may hold at once (each task writes one bucket, or a few
# small ones; past this many Spark falls back to sorting the rest), see write_chunks.
CONCURRENT_BUCKET_WRITERS = 8


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
    write_chunks(build_chunks(spark, primary, plan, n_buckets), root)


def build_chunks(spark: SparkSession, primary: DataFrame, plan: backends.BuildPlan, n_buckets: int) -> DataFrame:
    """INDEX_SCHEMA rows of every bucket's index built from `primary` (lazy)."""
    keys = partition_keys(spark, n_buckets)
    key_of = F.create_map(*[x for b, k in sorted(keys.items()) for x in (F.lit(b), F.lit(k).cast("long"))])
    shuffled = (primary.withColumn("_key", key_of[F.col("bucket")])
                .repartition(n_buckets, "_key")
                .sortWithinPartitions("bucket", "image_id")
                .select("bucket", "image_id", "vec"))
    return shuffled.mapInPandas(lambda it: backends.build_partition(it, plan), backends.INDEX_SCHEMA)


def write_chunks(chunks: DataFrame, root: str) -> None:
    """Write INDEX_SCHEMA rows as `<root>/bucket=<n>/part-*.parquet` (replacing `root`)."""
    # The Parquet writer buffers rows on the JVM heap, outside Spark's memory accounting, and
    # by default checks the page and row group sizes only every 100 rows (both checks use
    # parquet.page.size.row.check.*): 100 chunks of 8 MiB, 800 MB, which ran a 1 GB local
    # JVM out of heap at 100,000 vectors (captured, BENCHMARKS.md). Checking after every
    # row bounds it to a row group (16 MiB) plus a chunk.
    # The 8 MiB chunks need no min/max statistics (each new min or max is a copy of the value).
    # Spark also sorts a partitioned write by its partition column, and the build's output
    # order is unknown to it, so every task's whole index (a bucket: ~260 MB at 200,000 x
    # 256-d) went through a sort buffer on the heap first: at 1,000,000 vectors that ran a
    # 1 GB local JVM out of heap (BENCHMARKS.md, "Driver memory ... synthetic"). A task
    # writes one bucket or a few, so concurrent writers (one open file per bucket) replace
    # the sort; Spark plans that only without its planned-write sort.
    checks = {"parquet.page.size.row.check.min": "1", "parquet.page.size.row.check.max": "1",
              "parquet.column.statistics.enabled#data": "false"}
    unsorted = {"spark.sql.optimizer.plannedWrite.enabled": "false",
                "spark.sql.maxConcurrentOutputFileWriters": CONCURRENT_BUCKET_WRITERS}
    with temporary_conf(chunks.sparkSession, unsorted):
        (chunks.write.mode("overwrite").option("compression", "none").option("maxRecordsPerFile", 0)
         .option("parquet.block.size", 16 << 20).options(**checks).partitionBy("bucket").parquet(root))


def copy_buckets(spark: SparkSession, source_root: str, root: str, buckets) -> None:
    """Copy the index files of `buckets` from another run's index folder into `root`
    (through the Hadoop FileSystem: any scheme). --append carries the buckets it did not
    change into its own index version this way."""
    jvm = spark._jvm  # noqa: SLF001
    conf = spark._jsc.hadoopConfiguration()  # noqa: SLF001
    src_fs, _ = hadoop_fs(spark, source_root)
    dst_fs, _ = hadoop_fs(spark, root)
    for b in sorted(int(b) for b in buckets):
        src = jvm.org.apache.hadoop.fs.Path(f"{source_root}/bucket={b}")
        dst = jvm.org.apache.hadoop.fs.Path(f"{root}/bucket={b}")
        if not jvm.org.apache.hadoop.fs.FileUtil.copy(src_fs, src, dst_fs, dst, False, conf):
            raise RuntimeError(f"could not copy the index of bucket {b} from {source_root} to {root}")


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


def layout(query_counts: dict[int, int], rows_per_partition: int, max_copies: int,
           min_partitions: int = 1) -> dict[int, tuple[int, int]]:
    """bucket -> (first partition, partitions) of its query rows.

    One partition per `rows_per_partition` query rows, at least enough to give
    `min_partitions` (the cores) work when there are few buckets, and at most `max_copies`:
    every partition of a bucket receives that bucket's whole index."""
    queried = sorted(b for b, c in query_counts.items() if c > 0)
    spread = math.ceil(min_partitions / max(1, len(queried)))
    out, first = {}, 0
    for b in queried:
        n = max(1, min(int(max_copies), max(math.ceil(query_counts[b] / rows_per_partition), spread)))
        out[b] = (first, n)
        first += n
    return out


def route(spark: SparkSession, queries: DataFrame, root: str, plan: dict[int, tuple[int, int]],
          indexed) -> DataFrame:
    """Query rows (bucket, image_id, vec) and the pieces of the queried buckets' indexes,
    as ROUTED_SCHEMA rows: each of the plan's partitions (``layout``) holds the query rows
    given to it and the pieces of its bucket's index (backends.PIECE_BYTES each), pieces
    first. `indexed`: the buckets that have an index file under `root`."""
    total = sum(n for _, n in plan.values())
    keys = partition_keys(spark, max(1, total))
    where = F.broadcast(spark.createDataFrame([(b, f, n) for b, (f, n) in sorted(plan.items())],
                                              "bucket int, first int, n int"))
    slots = F.broadcast(spark.createDataFrame(sorted(keys.items()), "p int, _key long"))
    asked = queries.join(where, "bucket").select(
        "bucket", F.lit(backends.QUERY).alias("kind"), "image_id", "vec", F.lit("").alias("file"),
        F.lit(0).cast("long").alias("offset"), F.lit(0).cast("long").alias("total"),
        F.lit(b"").cast("binary").alias("data"),
        (F.col("first") + F.pmod(F.xxhash64("image_id"), F.col("n"))).cast("int").alias("p"))
    frames = [asked]
    read = [f"{root}/bucket={b}" for b in sorted(plan) if b in indexed]
    if read:
        piece = backends.PIECE_BYTES
        chunks = (spark.read.option("basePath", root).parquet(*read)
                  .join(where, "bucket")
                  .select("bucket", "file", "part", "total", "data",
                          F.explode(F.sequence(F.col("first"), F.col("first") + F.col("n") - 1)).alias("p")))
        n_pieces = F.greatest(F.ceil(F.length("data") / F.lit(piece)), F.lit(1)).cast("int")
        pieces = chunks.select("*", F.explode(F.sequence(F.lit(0), n_pieces - 1)).alias("i")).select(
            F.col("bucket").cast("int").alias("bucket"), F.lit(backends.PIECE).alias("kind"),
            F.lit(0).cast("long").alias("image_id"), F.lit(b"").cast("binary").alias("vec"), "file",
            (F.col("part").cast("long") * backends.CHUNK_BYTES + F.col("i").cast("long") * piece).alias("offset"),
            "total", F.col("data").substr(F.col("i") * piece + 1, F.lit(piece)).alias("data"), "p")
        frames.append(pieces)
    rows = frames[0] if len(frames) == 1 else frames[0].unionByName(frames[1])
    return (rows.join(slots, "p").repartition(max(1, total), "_key")
            .sortWithinPartitions("kind")
            .select("bucket", "kind", "image_id", "vec", "file", "offset", "total", "data"))


def load_bucket(spark: SparkSession, output: str, run_id: str, bucket: int, backend: str, dim: int,
                local_dir: str | None = None) -> backends.LoadedIndex | None:
    """One bucket's index of a run, opened here (None: that bucket indexed nothing).

    Its chunk file is copied through the Hadoop FileSystem API (any scheme) into
    `local_dir` (default: the temporary folder) once, reassembled once, and opened once
    per process (annoy and exact memory-mapped)."""
    return load_bucket_at(spark, index_root(output, run_id), bucket, backend, dim, local_dir)


def load_bucket_at(spark: SparkSession, root: str, bucket: int, backend: str, dim: int,
                   local_dir: str | None = None) -> backends.LoadedIndex | None:
    """load_bucket for an index folder `root` (``<output>/_index/<run_id>``)."""
    run_id = root.rstrip("/").rsplit("/", 1)[-1]
    fs, _ = hadoop_fs(spark, root)
    jvm = spark._jvm  # noqa: SLF001
    found = fs.globStatus(jvm.org.apache.hadoop.fs.Path(f"{root}/bucket={int(bucket)}/*.parquet")) or []
    if not found:
        return None
    if len(found) > 1:
        raise RuntimeError(f"bucket {bucket} has more than one index file under {root}")
    where = local_dir or backends.default_local_dir()
    os.makedirs(where, exist_ok=True)
    local = os.path.join(where, f"{run_id}-bucket-{int(bucket)}-{found[0].getPath().getName()}")
    if not os.path.exists(local):
        tmp = f"{local}.{uuid.uuid4().hex[:8]}.tmp"
        fs.copyToLocalFile(False, found[0].getPath(), jvm.org.apache.hadoop.fs.Path("file://" + tmp), True)
        os.replace(tmp, local)
    impl = backends.get(backend)
    return backends.load_index(backend, backends.materialise(local, impl.suffix), dim)


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


def latest_root(spark: SparkSession, output: str) -> str | None:
    """The newest `<output>/_index/<run>` that has its meta.json (None when there is none),
    found by listing the folder, without reading a table: run ids begin with their UTC start
    time (sparkdup.tables.new_run_id), so the greatest name is the last run's. A neighbors run removes
    the earlier runs' indexes (clean_earlier), so this is the index of the `neighbors` table
    that run wrote. Used by `sparkdup search`, whose start-up a Delta read would lengthen."""
    fs, path = hadoop_fs(spark, f"{output.rstrip('/')}/{INDEX_FOLDER}")
    if not fs.exists(path):
        return None
    for run in sorted((s.getPath().getName() for s in fs.listStatus(path) if s.isDirectory()), reverse=True):
        root = index_root(output, run)
        if has_meta(spark, root):
            return root
    return None


def _published_uris(spark: SparkSession) -> list[str]:
    return list(spark.sparkContext.listFiles)


def clean_earlier(spark: SparkSession, output: str, keep) -> list[str]:
    """Delete `<output>/_index/<run>` of other runs than `keep` (a run id, or several),
    unless this session published from it."""
    keep = {keep} if isinstance(keep, str) else set(keep)
    base = f"{output.rstrip('/')}/{INDEX_FOLDER}"
    fs, path = hadoop_fs(spark, base)
    if not fs.exists(path):
        return []
    published = _published_uris(spark)
    removed = []
    for status in fs.listStatus(path):
        run = status.getPath().getName()
        where = status.getPath().toString()
        if run in keep or any(f"/{INDEX_FOLDER}/{run}/" in u for u in published):
            continue
        fs.delete(status.getPath(), True)
        removed.append(where)
    if removed:
        log.info("neighbors: removed the indexes of %d earlier run(s) under %s", len(removed), base)
    return removed


def remove(spark: SparkSession, root: str) -> None:
    """neighbors.keep_index=false: delete this run's index (its table is written)."""
    fs, path = hadoop_fs(spark, root)
    fs.delete(path, True)
