"""--append: bring an existing output up to date with one Delta MERGE per table.

A stage run with --append computes the new full state of its table (reusing what the
output already holds for unchanged files, see each job) and hands it to
:func:`merge_table`, which commits it as ONE Delta MERGE: rows whose columns changed are
updated, new rows inserted, rows no longer there deleted. Rows whose columns did not
change (``run_id`` and ``ingested_at`` aside) are not touched, so they keep the run_id
of the run that last changed them: ``WHERE run_id = X`` is what run X changed, and
``DESCRIBE HISTORY`` shows one MERGE per table and run (time travel gives the state
before it).

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


def merge_table(df: DataFrame, output: str, name: str) -> str:
    """Make Delta table `name` hold exactly df's rows in one MERGE (a first write when the
    table is not there yet); returns the table's path."""
    spark = df.sparkSession
    path = table_path(output, name)
    df = conform(df, name)
    if not path_exists(spark, path + "/_delta_log"):
        return write_table(df, output, name, "delta")
    check_replaceable(spark, path, name, df.columns)
    keys = KEYS[name]
    target_columns = set(read_table(spark, output, name).columns)
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

    if not path_exists(spark, table_path(output, "embeddings")):
        return
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
