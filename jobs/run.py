"""run: the whole pipeline, ingest -> embed -> neighbors -> analyze -> report, in one Spark session.

Each stage is the same job that `sparkdup <stage>` / `spark-submit jobs/<stage>.py` runs;
they share one run_id, so every table's rows from this run can be joined to `runs`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from pyspark.sql import SparkSession

from sparkdup.runs import listing_warnings
from sparkdup.stage import run_stage
from sparkdup.tables import RESULT_TABLES, table_path

log = logging.getLogger("sparkdup")

PIPELINE = ("ingest", "embed", "neighbors", "analyze", "report")


def _stage(name: str):
    return importlib.import_module(f"sparkdup.jobs.{name}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for name in PIPELINE:
        _stage(name).add_arguments(parser)


def before_work(cfg, args: argparse.Namespace) -> None:
    """The input and output checks of the first stage, before Spark starts."""
    _stage("ingest").before_work(cfg, args)


def check_append(spark: SparkSession, cfg: dict, args: argparse.Namespace) -> None:
    """--append's refusals before any stage writes: Parquet output, another model or size."""
    from sparkdup import append

    append.check_format(cfg, args.output)
    append.check_model(spark, cfg, args.output)


def findings(counts: dict) -> list[tuple[str, int]]:
    """(what, how many) for the table printed at the end of a run."""
    return [
        ("files listed", counts.get("files_listed", 0)),
        ("  skipped (extension, hidden)", counts.get("files_skipped_extension", 0)
         + counts.get("files_skipped_hidden", 0)),
        ("images", counts.get("images", 0)),
        ("  not readable (broken, empty, ...)", counts.get("images", 0) - counts.get("status_ok", 0)),
        ("embedded", counts.get("embedded", counts.get("embeddings", 0))),
        ("duplicate groups", counts.get("duplicate_groups", 0)),
        ("  duplicates to remove", counts.get("duplicates_to_remove", 0)),
        ("outliers", counts.get("outliers", 0)),
        ("train/val leaks (pairs)", counts.get("leaks", 0)),
        ("label issues", counts.get("label_issues", 0)),
    ]


def summary(counts: dict, output: str, fmt: str) -> str:
    """The short table printed at the end of a run."""
    rows = findings(counts)
    width = max(len(r[0]) for r in rows)
    lines = [f"{name:<{width}}  {value:>8}" for name, value in rows]
    lines += [f"warning: {w}" for w in listing_warnings(counts)]
    lines.append(f"tables under {output}: " + ", ".join(RESULT_TABLES))
    lines.append(f"e.g. SELECT * FROM {fmt}.`{table_path(output, 'duplicate_groups')}`")
    lines.append(f"report: {table_path(output, 'report')}/index.html")
    return "\n".join(lines)


def summary_json(counts: dict, output: str) -> str:
    """The same summary as one JSON line, for cluster logs (``--log-format json``)."""
    return json.dumps({"summary": {name.strip(): value for name, value in findings(counts)},
                       "tables": {t: table_path(output, t) for t in RESULT_TABLES},
                       "report": table_path(output, "report") + "/index.html"})


def run(spark: SparkSession, cfg: dict, args: argparse.Namespace, run_id: str) -> dict:
    counts: dict = {}
    if getattr(args, "append", False):
        check_append(spark, cfg, args)
    for i, name in enumerate(PIPELINE, 1):
        log.info("stage %d/%d: %s", i, len(PIPELINE), name)
        counts.update(run_stage(_stage(name), spark, cfg, args, run_id))
    if getattr(args, "log_format", "text") == "json":
        print(summary_json(counts, args.output))
    else:
        print(summary(counts, args.output, cfg["output"]["format"]))
    return counts


if __name__ == "__main__":
    from sparkdup.stage import main_for

    sys.exit(main_for(sys.modules[__name__]))
