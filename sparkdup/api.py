"""sparkdup from Python: the same jobs as the command line, for notebooks.

    import sparkdup
    result = sparkdup.run("/Volumes/main/raw/images", "/Volumes/main/raw/sparkdup",
                          settings={"ingest.layout": "split/label"})
    result.counts["duplicates_to_remove"]
    result.duplicate_groups.where("NOT is_representative").select("path")

Every function takes the active SparkSession when there is one (a Databricks notebook's
``spark``), or the one given as ``spark=``; only when neither exists does it start a local
session from the settings. ``settings`` is a :class:`~sparkdup.config.Settings` or a
mapping of dotted names to values, checked like ``--set`` before any work.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pyspark.sql import DataFrame, SparkSession

from sparkdup.config import Settings, load_config
from sparkdup.tables import new_run_id, read_table

__all__ = ["Result", "run", "ingest", "embed", "neighbors", "analyze", "report", "export", "checked_settings"]


@dataclass
class Result:
    """What a call wrote: where, under which run id, the counts it logged, and each table
    as a DataFrame (read when asked)."""
    output: str
    run_id: str
    counts: dict
    spark: SparkSession = field(repr=False)

    def table(self, name: str) -> DataFrame:
        return read_table(self.spark, self.output, name)

    def __getattr__(self, name: str) -> DataFrame:
        from sparkdup.tables import RESULT_TABLES

        if name in RESULT_TABLES:
            return self.table(name)
        raise AttributeError(name)


def checked_settings(values: Settings | Mapping[str, Any] | None = None, profile: str | None = None,
             conf: Iterable[str] = ()) -> Settings:
    """Checked settings from a profile, settings files and dotted values (later wins)."""
    if isinstance(values, Settings):
        return values if not (profile or conf) else load_config(profile, conf, values=_flat(values))
    return load_config(profile, conf, values=dict(values or {}))


def _flat(s: Settings) -> dict:
    from sparkdup.settings_schema import flatten

    return flatten(s.to_dict())


def _call(stage: str, output: str, spark: SparkSession | None, cfg: Settings, run_id: str | None,
          **job_args) -> Result:
    import importlib

    from sparkdup.session import get_spark
    from sparkdup.stage import run_job

    job = importlib.import_module(f"sparkdup.jobs.{stage}")
    args = argparse.Namespace(output=output, log_format="text", **job_args)
    if hasattr(job, "before_work"):
        job.before_work(cfg, args)
    if spark is None:
        spark = get_spark(cfg)
    run_id = run_id or new_run_id()
    counts = run_job(job, spark, cfg, args, run_id)
    return Result(output, run_id, counts, spark)


def run(input: str | None = None, output: str | None = None, *, manifest: str | None = None,
        spark: SparkSession | None = None, settings: Settings | Mapping[str, Any] | None = None,
        profile: str | None = None, conf: Iterable[str] = (), run_id: str | None = None,
        append: bool = False) -> Result:
    """The whole pipeline (ingest, embed, neighbors, analyze, report), like `sparkdup run`."""
    cfg = checked_settings(settings, profile, conf)
    return _call("run", _required(output), spark, cfg, run_id, input=input, manifest=manifest, append=append)


def ingest(input: str | None = None, output: str | None = None, *, manifest: str | None = None,
           spark: SparkSession | None = None, settings: Settings | Mapping[str, Any] | None = None,
           profile: str | None = None, conf: Iterable[str] = (), run_id: str | None = None,
        append: bool = False) -> Result:
    """List and read the input into `images`, like `sparkdup ingest`."""
    cfg = checked_settings(settings, profile, conf)
    return _call("ingest", _required(output), spark, cfg, run_id, input=input, manifest=manifest, append=append)


def _stage_function(stage: str, doc: str, appends: bool = False):
    def call(output: str, *, spark: SparkSession | None = None,
             settings: Settings | Mapping[str, Any] | None = None, profile: str | None = None,
             conf: Iterable[str] = (), run_id: str | None = None, **flags) -> Result:
        if set(flags) - ({"append"} if appends else set()):
            raise TypeError(f"{stage}() got unexpected arguments {sorted(flags)}")
        cfg = checked_settings(settings, profile, conf)
        return _call(stage, output, spark, cfg, run_id, **flags)

    call.__name__ = call.__qualname__ = stage
    call.__doc__ = doc
    return call


embed = _stage_function("embed", "Embed every readable image of `images` into `embeddings`, like `sparkdup embed` "
                        "(append=True: only new or changed images).", appends=True)
neighbors = _stage_function("neighbors", "The k nearest neighbours of every embedding, like `sparkdup neighbors` "
                            "(append=True: only new vectors are queried).", appends=True)
analyze = _stage_function("analyze", "Duplicate groups, outliers, leaks and label issues, like `sparkdup analyze` "
                          "(append=True: merged into the tables).", appends=True)
report = _stage_function("report", "The HTML report under <output>/report, like `sparkdup report`.")


def export(output: str, to: str, *, spark: SparkSession | None = None,
           settings: Settings | Mapping[str, Any] | None = None, profile: str | None = None,
           conf: Iterable[str] = (), run_id: str | None = None) -> Result:
    """The curated table and petastorm dataset under `to`, like `sparkdup export`."""
    cfg = checked_settings(settings, profile, conf)
    return _call("export", output, spark, cfg, run_id, to=to)


def search(queries: str | Iterable[str], output: str, *, k: int | None = None, spark: SparkSession | None = None,
           settings: Settings | Mapping[str, Any] | None = None, profile: str | None = None,
           conf: Iterable[str] = ()):
    """The k nearest images of `output` to each query image or folder, like `sparkdup search`:
    a pandas DataFrame (query, status, error, rank, path, similarity, group_id, duplicate).
    Reads only: no `runs` row, no table written."""
    import pandas as pd

    from sparkdup.jobs.search import find
    from sparkdup.session import get_spark

    cfg = checked_settings(settings, profile, conf)
    if spark is None:
        spark = get_spark(cfg)
    sources = [queries] if isinstance(queries, str) else list(queries)
    rows = find(spark, cfg, _required(output), sources, k)
    return pd.DataFrame(rows, columns=["query", "status", "error", "rank", "path", "similarity", "group_id",
                                       "duplicate"])


def _required(output: str | None) -> str:
    if not output:
        from sparkdup.errors import ConfigError

        raise ConfigError("output is required: the folder (any Hadoop URI) that holds the result tables")
    return output
