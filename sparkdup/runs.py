"""The `runs` table: one row per run and stage, appended, so a result table's run_id
can always be traced to the settings, counts and timings that produced it."""
from __future__ import annotations

import json
from datetime import datetime, timezone

from pyspark.sql import SparkSession
from pyspark.sql import types as T

from sparkdup import __version__
from sparkdup.config import Settings
from sparkdup.schemas import conform
from sparkdup.tables import table_path

RUNS_SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType()),
    T.StructField("stage", T.StringType()),
    T.StructField("started_at", T.TimestampType()),
    T.StructField("seconds", T.DoubleType()),
    T.StructField("counts", T.MapType(T.StringType(), T.LongType())),
    T.StructField("settings", T.StringType()),
    T.StructField("sparkdup_version", T.StringType()),
    T.StructField("spark_version", T.StringType()),
])


def record_run(spark: SparkSession, output: str, fmt: str, run_id: str, stage: str, started: float,
               seconds: float, counts: dict | None, cfg: Settings) -> None:
    row = (run_id, stage, datetime.fromtimestamp(started, timezone.utc).replace(tzinfo=None), round(seconds, 3),
           {k: int(v) for k, v in (counts or {}).items()}, json.dumps(cfg.to_dict(), sort_keys=True), __version__,
           spark.version)
    df = conform(spark.createDataFrame([row], RUNS_SCHEMA), "runs")
    path = table_path(output, "runs")
    if fmt == "delta":
        df.write.format("delta").mode("append").option("mergeSchema", "true").save(path)
    else:
        df.write.mode("append").parquet(path)
