"""Reading and writing result tables: one folder per table under the output location.

Delta (default): an overwrite is one transaction, so readers see the previous run until
the new one commits, and Delta history keeps the previous version.
Parquet: written to a sibling temporary folder first and swapped in with renames, so an
interrupted run leaves the previous table readable.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone

from py4j.protocol import Py4JJavaError
from pyspark.sql import DataFrame, SparkSession

from sparkdup.errors import ConfigError
from sparkdup.schemas import conform
from sparkdup.session import delta_available

log = logging.getLogger("sparkdup")


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def table_path(output: str, name: str) -> str:
    return output.rstrip("/") + "/" + name


def hadoop_fs(spark: SparkSession, path: str):
    """(FileSystem, Path) for a Hadoop URI; a scheme this Spark has no connector for (such
    as s3a:// without hadoop-aws) is a user-fixable setup error, said in one line."""
    jvm = spark._jvm  # noqa: SLF001
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    try:
        return hpath.getFileSystem(spark._jsc.hadoopConfiguration()), hpath  # noqa: SLF001
    except Py4JJavaError as exc:
        reason = str(exc.java_exception.toString())
        if "No FileSystem for scheme" not in reason and "ClassNotFoundException" not in reason:
            raise
        raise ConfigError(f"this Spark has no filesystem for {path} ({reason.split(': ', 1)[-1]}): for s3a:// "
                          "run scripts/setup.sh (local mode) or add org.apache.hadoop:hadoop-aws of the Hadoop "
                          "version Spark ships (docs/cluster.md)") from None


def path_exists(spark: SparkSession, path: str) -> bool:
    fs, hpath = hadoop_fs(spark, path)
    return bool(fs.exists(hpath))


def _check_format(spark: SparkSession, fmt: str) -> None:
    if fmt not in ("delta", "parquet"):
        raise ConfigError(f"output.format must be 'delta' or 'parquet', got '{fmt}'")
    if fmt == "delta" and not delta_available(spark):
        raise ConfigError(
            "Delta Lake is not on this Spark's classpath: add io.delta:delta-spark_2.13:4.0.0 "
            "(--packages or cluster library), run scripts/setup.sh for local mode, or use --format parquet"
        )


def _existing_columns(spark: SparkSession, path: str) -> list[str] | None:
    if not path_exists(spark, path):
        return None
    try:
        if path_exists(spark, path + "/_delta_log"):
            return spark.read.format("delta").load(path).columns
        return spark.read.parquet(path).columns
    except Exception:  # a folder of something else entirely
        return ["<unreadable>"]


def check_replaceable(spark: SparkSession, path: str, name: str, columns: list[str]) -> None:
    """Refuse to overwrite a table that sparkdup did not write: an output folder may hold
    the user's own data, and overwriting it would lose it."""
    existing = _existing_columns(spark, path)
    if existing is None:
        return
    shared = set(existing) & set(columns)
    if "run_id" not in existing or len(shared) < len(columns) / 2:
        raise ConfigError(
            f"{path} holds a table that is not sparkdup's '{name}' table (columns: {', '.join(existing[:8])}"
            f"{', ...' if len(existing) > 8 else ''}); choose another --output or remove it")


def write_table(df: DataFrame, output: str, name: str, fmt: str) -> str:
    """Replace table `name` under `output` with df; returns the table's path."""
    spark = df.sparkSession
    _check_format(spark, fmt)
    path = table_path(output, name)
    df = conform(df, name)
    check_replaceable(spark, path, name, df.columns)
    if fmt == "delta":
        (df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path))
        return path
    fs, final = hadoop_fs(spark, path)
    tmp_path = path + f".__writing_{uuid.uuid4().hex[:8]}"
    df.write.mode("overwrite").parquet(tmp_path)
    jvm = spark._jvm  # noqa: SLF001
    old = jvm.org.apache.hadoop.fs.Path(path + f".__old_{uuid.uuid4().hex[:8]}")
    if fs.exists(final) and not fs.rename(final, old):
        raise IOError(f"could not move the previous {name} table aside at {path}")
    if not fs.rename(jvm.org.apache.hadoop.fs.Path(tmp_path), final):
        fs.rename(old, final)
        raise IOError(f"could not move the new {name} table into place at {path}")
    fs.delete(old, True)
    return path


def read_table(spark: SparkSession, output: str, name: str) -> DataFrame:
    path = table_path(output, name)
    if not path_exists(spark, path):
        raise ConfigError(f"table '{name}' not found at {path}: run the stage that writes it first")
    if path_exists(spark, path + "/_delta_log"):
        return spark.read.format("delta").load(path)
    return spark.read.parquet(path)


IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
RESULT_TABLES = ("images", "embeddings", "neighbors", "duplicate_pairs", "duplicate_groups", "outliers", "leaks", "label_issues", "runs")


def register_tables(spark: SparkSession, database: str, output: str, names: list[str], fmt: str) -> list[str]:
    """Make `database.<name>` point at each table folder (idempotent: existing entries are
    re-pointed). `database` may be `schema` or `catalog.schema` (Unity Catalog)."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {database}")
    registered = []
    for name in names:
        path = table_path(output, name)
        if not path_exists(spark, path):
            continue
        qualified = f"{database}.{name}"
        using = "DELTA" if path_exists(spark, path + "/_delta_log") else "PARQUET"
        spark.sql(f"DROP TABLE IF EXISTS {qualified}")  # external table: drops the entry, not the data
        escaped = path.replace("'", "\\'")
        spark.sql(f"CREATE TABLE {qualified} USING {using} LOCATION '{escaped}'")
        registered.append(qualified)
    log.info("registered %s", ", ".join(registered))
    return registered
