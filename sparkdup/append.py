"""--append: bring an existing output up to date with one Delta MERGE per table.

A stage run with --append computes the new full state of its table (reusing what the
output already holds for unchanged files, see each job) and hands it to
:func:`merge_table`, which commits it as ONE Delta MERGE: rows whose columns changed are
updated, new rows inserted, rows no longer there deleted. Rows whose columns did not
change (``run_id`` and ``ingested_at`` aside) are not touched, so they keep the run_id
of the run that last changed them: ``WHERE run_id = X`` is what run X changed, and
``DESCRIBE HISTORY`` shows one MERGE per table and run that changed it (time travel gives
the state before it). A MERGE that changes no row adds either no commit or one that
inserts, updates and deletes nothing (its operationMetrics say 0): a table's history names
the runs that committed to it, the `runs` table lists every run.

A stage that works on "what changed since I last ran" asks :func:`runs_since`: the runs of
the stage before it that started after its own last run (two `ingest --append` before one
`embed --append` are both taken).

Parquet has no transactions, so --append is refused on a Parquet output; --append on an
output with no tables yet is a first run (said in the log).
"""
from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkdup.errors import OutputError
from sparkdup.schemas import conform
from sparkdup.tables import check_replaceable, path_exists, read_table, table_path, write_table

log = logging.getLogger("sparkdup")

# The columns that identify a row of each table a stage merges into.
KEYS = {
    "images": ("image_id",),
    "embeddings": ("image_id",),
    "neighbors": ("src", "dst"),
    "duplicate_pairs": ("image_id_a", "image_id_b"),
    "duplicate_groups": ("image_id",),
    "outliers": ("image_id",),
    "leaks": ("image_id_a", "image_id_b"),
    "label_issues": ("image_id",),
}
# Columns that say when/by which run a row was computed, not what it holds: a row that
# differs only there is left as it was.
STAMPS = ("run_id", "ingested_at")


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def check_format(cfg: dict, output: str) -> None:
    """--append needs Delta's transactions: a Parquet output is refused in one line."""
    if cfg["output"]["format"] != "delta":
        raise OutputError(f"--append needs output.format=delta (one transaction per table per run); "
                          f"--output {output} is written as {cfg['output']['format']}: rerun without --append")


def is_first_run(spark: SparkSession, output: str, table: str) -> bool:
    """True (and said in the log) when --append finds no `table` to append to; a Parquet
    table there (an output written with --format parquet) is refused in one line."""
    if path_exists(spark, table_path(output, table)):
        if not path_exists(spark, table_path(output, table) + "/_delta_log"):
            raise OutputError(f"--append needs Delta tables; {table_path(output, table)} is a Parquet table "
                              f"(written with --format parquet): rerun without --append")
        return False
    log.info("--append: %s has no %s table yet; this is a first run", output, table)
    return True


def latest_run(spark: SparkSession, output: str, stage: str) -> str | None:
    """The run_id of the last recorded run of `stage` on this output (None without one)."""
    if not path_exists(spark, table_path(output, "runs")):
        return None
    row = (read_table(spark, output, "runs").where(F.col("stage") == stage)
           .orderBy(F.desc("started_at")).select("run_id").first())
    return None if row is None else row["run_id"]


def runs_since(spark: SparkSession, output: str, stage: str, since: str) -> list[str]:
    """The run_ids of every `stage` run that started after the last `since` run started
    (every `stage` run when `since` never ran): the runs whose changes a `since` run has
    not taken yet. Empty without a `runs` table."""
    if not path_exists(spark, table_path(output, "runs")):
        return []
    runs = read_table(spark, output, "runs")
    last = runs.where(F.col("stage") == since).agg(F.max("started_at")).first()[0]
    chosen = runs.where(F.col("stage") == stage)
    if last is not None:
        chosen = chosen.where(F.col("started_at") > F.lit(last))
    return sorted(r["run_id"] for r in chosen.select("run_id").distinct().collect())


def with_target_columns(df: DataFrame, target: DataFrame) -> DataFrame:
    """df with every column the target table has and df lacks, as nulls of the target's
    type (a manifest column the new listing no longer has): MERGE's ``UPDATE SET *`` needs
    every target column in the source, and the table must hold exactly df's rows."""
    missing = [f for f in target.schema.fields if f.name not in df.columns]
    return df.select("*", *[F.lit(None).cast(f.dataType).alias(f.name) for f in missing])


def merge_table(df: DataFrame, output: str, name: str) -> str:
    """Make Delta table `name` hold exactly df's rows in one MERGE (a first write when the
    table is not there yet); returns the table's path. Columns the table has and df lacks
    become null; columns df adds are added to the table (schema evolution)."""
    spark = df.sparkSession
    path = table_path(output, name)
    df = conform(df, name)
    if not path_exists(spark, path + "/_delta_log"):
        return write_table(df, output, name, "delta")
    check_replaceable(spark, path, name, df.columns)
    keys = KEYS[name]
    target = read_table(spark, output, name)
    target_columns = set(target.columns)
    df = with_target_columns(df, target)
    view = f"sparkdup_merge_{name}"
    df.createOrReplaceTempView(view)
    on = " AND ".join(f"t.{_quoted(k)} <=> s.{_quoted(k)}" for k in keys)
    compared = [c for c in df.columns if c not in keys and c not in STAMPS and c in target_columns]
    same = " AND ".join(f"t.{_quoted(c)} <=> s.{_quoted(c)}" for c in compared) or "true"
    evolve = " WITH SCHEMA EVOLUTION" if set(df.columns) - target_columns else ""
    location = path.replace("`", "``")
    try:
        spark.sql(f"MERGE{evolve} INTO delta.`{location}` t USING {view} s ON {on} "
                  f"WHEN MATCHED AND NOT ({same}) THEN UPDATE SET * "
                  f"WHEN NOT MATCHED THEN INSERT * "
                  f"WHEN NOT MATCHED BY SOURCE THEN DELETE")
    finally:
        spark.catalog.dropTempView(view)
    return path


def last_operation(spark: SparkSession, output: str, name: str) -> str:
    """The operation of the table's latest Delta commit (WRITE, MERGE, ...)."""
    path = table_path(output, name).replace("`", "``")
    return spark.sql(f"DESCRIBE HISTORY delta.`{path}` LIMIT 1").first()["operation"]


def check_model(spark: SparkSession, cfg: dict, output: str) -> None:
    """Refuse (one line naming both) to append vectors of another model or size than the
    output's embeddings: neighbours between the two would mean nothing."""
    from sparkdup.models.registry import model_name, resolve, with_size

    from sparkdup.lookup import open_table

    if not path_exists(spark, table_path(output, "embeddings")):
        return
    # One row: from a local table's files when it can (sparkdup.lookup: no Spark job), else Spark.
    local = open_table(output, "embeddings")
    if local is not None:
        first = local.head(1, columns=["model", "dim"]).to_pylist()
        row = first[0] if first else None
    else:
        row = read_table(spark, output, "embeddings").select("model", "dim").first()
    if row is None:
        return
    emb = cfg["embed"]
    name = with_size(model_name(emb["model"], emb["weights"]), emb["input_size"])
    dim = resolve(name).output_dim
    if row["model"] != name or (dim is not None and int(dim) != int(row["dim"])):
        raise OutputError(f"--append: {output} holds embeddings of model {row['model']} ({row['dim']} dimensions), "
                          f"the settings ask for {name} ({dim or 'unknown'} dimensions): set embed.model to the "
                          f"output's model or write a new --output")
