"""The one place a SparkSession is obtained.

Local mode (nothing running yet, not under spark-submit): start ``local[*]`` with the
jars that scripts/setup.sh cached, Delta's SQL extensions and a checkpoint directory.

Under spark-submit, Databricks or EMR (a JVM gateway or an active session already
exists): take the running session as it is. The cluster owner's configuration wins;
sparkdup only sets the runtime SQL settings its own stages need.
"""
from __future__ import annotations

import contextlib
import glob
import logging
import os
import sys

from pyspark.sql import SparkSession

log = logging.getLogger("sparkdup")

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
# Partitions Delta uses to rebuild a table's state from its log (its default: 50). Every
# first read of a table after a write pays one such stage; in a local session 50 tasks
# over a log of a few files were half of ingest's tasks (BENCHMARKS.md, "Speed, third pass":
# "Where ingest's time goes"). Local sessions only: a cluster keeps its own.
LOCAL_SNAPSHOT_PARTITIONS = 2
# Quiet console for local sessions: warnings stay, notices nobody can act on do not.
LOG4J_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "log4j2.properties")


def cache_dir() -> str:
    """Where setup.sh keeps wheels, jars and built models."""
    return os.environ.get("SPARKDUP_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "sparkdup"))


def cached_jars() -> list[str]:
    return sorted(glob.glob(os.path.join(cache_dir(), "jars", "*.jar")))


def cached_s3_jars() -> list[str]:
    """The S3A connector (hadoop-aws and the AWS SDK v2 bundle it is built against).

    Kept apart from cached_jars(), whose jars go into spark.jars and so are copied into
    every session's temp folder: the SDK bundle alone is 558 MB. Clusters (EMR, Databricks)
    bring their own S3 connector."""
    return sorted(glob.glob(os.path.join(cache_dir(), "jars-s3", "*.jar")))


def _launched_by_spark_submit() -> bool:
    # spark-submit (and notebook runtimes) start Python with a gateway to an existing JVM.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(cfg: dict) -> SparkSession:
    """Return the session to run on, creating a local one only when none exists."""
    active = SparkSession.getActiveSession()
    if active is not None:
        spark = active
    elif _launched_by_spark_submit():
        spark = SparkSession.builder.appName(cfg["spark"]["app_name"]).getOrCreate()
    else:
        spark = _local_session(cfg)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(cfg["decode"]["arrow_batch_rows"]))
    return spark


def metastore_settings(metastore_dir: str) -> dict:
    """Spark settings for a local Hive metastore (Derby) and warehouse in one folder; the
    same settings given to `spark-sql` let it see sparkdup's registered tables."""
    root = os.path.abspath(metastore_dir)
    return {
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": os.path.join(root, "warehouse"),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={root}/metastore_db;create=true",
    }


@contextlib.contextmanager
def _s3_jars_on_classpath():
    """While the local JVM starts, append the S3A jars to its classpath (when installed).

    Appended through SPARK_DIST_CLASSPATH, which Spark's launcher puts after its own jars:
    spark.jars would copy the 558 MB SDK bundle into every session's temp folder, and
    spark.driver.extraClassPath puts it first, where the slf4j 1.x classes the bundle
    carries unshaded silence all of Spark's logging. Loaded whenever installed, because
    which paths a run touches is known only later (a manifest may name s3a:// files): the
    JVM reads the bundle's index once (342,431 entries, 0.3-0.4 s measured) and loads its
    classes only when an s3a:// path is used."""
    jars = cached_s3_jars()
    before = os.environ.get("SPARK_DIST_CLASSPATH")
    if jars:
        os.environ["SPARK_DIST_CLASSPATH"] = os.pathsep.join(([before] if before else []) + jars)
    try:
        yield
    finally:  # only the launcher reads it; keep it out of later child processes
        if jars:
            if before is None:
                os.environ.pop("SPARK_DIST_CLASSPATH", None)
            else:
                os.environ["SPARK_DIST_CLASSPATH"] = before


def _local_session(cfg: dict) -> SparkSession:
    sc = cfg["spark"]
    jars = cached_jars()
    # Python workers must run this interpreter (the one with sparkdup's packages), not
    # whatever `python3` comes first on PATH (pyspark reads this variable when it starts).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(sc["master"])
        .appName(sc["app_name"])
        .config("spark.driver.memory", sc["driver_memory"])
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.python.worker.reuse", "true")
    )
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    java_options = ["-XX:TieredStopAtLevel=1"] if sc["quick_jit"] else []
    if os.path.isfile(LOG4J_CONFIG):  # not when running from a zip (spark-submit brings its own)
        java_options.append(f"-Dlog4j2.configurationFile=file:{LOG4J_CONFIG}")
    if java_options:
        builder = builder.config("spark.driver.extraJavaOptions", " ".join(java_options))
    if sc["metastore_dir"]:
        builder = builder.enableHiveSupport()
        for key, value in metastore_settings(sc["metastore_dir"]).items():
            builder = builder.config(key, value)
    if any("delta-spark" in os.path.basename(j) for j in jars):
        builder = builder.config("spark.sql.extensions", DELTA_EXTENSION).config(
            "spark.sql.catalog.spark_catalog", DELTA_CATALOG
        ).config("spark.databricks.delta.snapshotPartitions", str(LOCAL_SNAPSHOT_PARTITIONS))
    else:
        log.warning("Delta jars not found in %s; run scripts/setup.sh or use --format parquet", cache_dir())
    with _s3_jars_on_classpath():
        spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _jvm_has_class(spark: SparkSession, name: str) -> bool:
    # Jars added with spark.jars / --jars live in the context class loader, not the system one.
    jvm = spark._jvm  # noqa: SLF001
    try:
        jvm.java.lang.Thread.currentThread().getContextClassLoader().loadClass(name)
        return True
    except Exception:  # py4j wraps ClassNotFoundException
        return False


def delta_available(spark: SparkSession) -> bool:
    return _jvm_has_class(spark, "io.delta.tables.DeltaTable")


def graphframes_available(spark: SparkSession) -> bool:
    return _jvm_has_class(spark, "org.graphframes.GraphFrame")


def ensure_checkpoint_dir(spark: SparkSession, cfg: dict, output: str) -> str:
    """Iterative graph jobs need a checkpoint dir on a filesystem every executor sees."""
    path = cfg["spark"]["checkpoint_dir"] or output.rstrip("/") + "/_checkpoints"
    if not spark.sparkContext.getCheckpointDir():
        spark.sparkContext.setCheckpointDir(path)
    return spark.sparkContext.getCheckpointDir()


@contextlib.contextmanager
def temporary_conf(spark: SparkSession, settings: dict):
    """Set these SQL settings for the queries run inside the block, then put back what was
    there (unset when nothing was): for one step that needs other settings than the stage's."""
    before = {k: spark.conf.get(k, None) for k in settings}
    for k, v in settings.items():
        spark.conf.set(k, str(v))
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)
