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


# Which table each stage writes: provenance() tells which run's stage made each table.
STAGE_TABLES = {"ingest": ("images",), "embed": ("embeddings",), "neighbors": ("neighbors",),
                "analyze": ("duplicate_pairs", "duplicate_groups", "outliers", "leaks", "label_issues")}
SKIPPED_SHARE_WARNING = 0.01  # warn when more than 1% of the listed files were skipped


def listing_warnings(counts: dict, option_hint: str = "ingest.extensions or ingest.all_pillow_formats=true") -> list[str]:
    """The warnings a run summary must show about what ingest did not take."""
    listed = counts.get("files_listed", 0)
    skipped = counts.get("files_skipped_extension", 0)
    out = []
    if counts.get("images", 0) == 0:
        out.append(f"0 images found ({listed} files listed): check the input path, {option_hint}")
    if listed and skipped / listed > SKIPPED_SHARE_WARNING:
        top = ", ".join(f".{k[len('skipped_ext_'):]} {v}" for k, v in counts.items() if k.startswith("skipped_ext_"))
        out.append(f"{skipped} of {listed} files ({100 * skipped / listed:.1f}%) skipped by extension ({top}): "
                   f"to take them, set {option_hint}")
    if counts.get("files_skipped_hidden", 0):
        out.append(f"{counts['files_skipped_hidden']} hidden entries (names starting with '.') skipped: "
                   "set ingest.include_hidden=true to take them")
    return out


def provenance(spark: SparkSession, output: str) -> list[dict]:
    """For each result table under output: the run and stage that wrote it, from its own
    run_id and the `runs` table ({table, run_id, stage, started_at}); tables not there are
    left out. An interrupted run leaves the previous tables, so they name the previous run."""
    from pyspark.sql import functions as F

    from sparkdup.tables import path_exists, read_table

    if not path_exists(spark, table_path(output, "runs")):
        return []
    runs = {(r.run_id, r.stage): r.started_at for r in read_table(spark, output, "runs")
            .select("run_id", "stage", "started_at").collect()}
    there = [(stage, table) for stage, tables in STAGE_TABLES.items() for table in tables
             if path_exists(spark, table_path(output, table))]
    # After --append a table's rows carry the runs that last changed them: the latest names it.
    # Every table's run ids in one Spark job (a job per table cost seconds each on --append).
    scans = [read_table(spark, output, t).select(F.lit(t).alias("table"), "run_id").distinct() for _, t in there]
    found: dict[str, set] = {t: set() for _, t in there}
    if scans:
        union = scans[0]
        for scan in scans[1:]:
            union = union.unionByName(scan)
        for r in union.collect():
            found[r["table"]].add(r["run_id"])
    out = []
    for stage, table in there:
        present = found[table]
        recorded = sorted((started, r) for (r, s), started in runs.items() if s == stage and r in present)
        if recorded:
            run_id = recorded[-1][1]
        elif present:
            run_id = sorted(present)[-1]
        else:  # an empty table: the stage's last run
            run_id = next((r for r, s in sorted(runs, key=runs.get, reverse=True) if s == stage), None)
        out.append({"table": table, "run_id": run_id, "stage": stage, "started_at": runs.get((run_id, stage))})
    return out
