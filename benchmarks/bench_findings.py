"""Outliers and label issues rerun on a finished run's tables: quality, CPU time, Spark jobs.

    python benchmarks/bench_findings.py GROUND_TRUTH_DIR RUN_OUTPUT [--only outliers|labels]
        [--set analyze.key=value ...]

GROUND_TRUTH_DIR holds ground_truth.parquet (tools.groundtruth.generate), RUN_OUTPUT the
tables of `sparkdup run` on its images. The analyze functions run on the stored images,
embeddings, neighbors and duplicate_groups tables (local[2]), so settings of these two
steps can be compared without rerunning ingest, embedding and the neighbour search. CPU
time is that of the Spark JVM (driver and local executors), of its Python workers (pandas
UDFs; those that exit are counted through their parent) and of this Python process; Spark
jobs are those of the step's job group.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import pandas as pd
import psutil
from pyspark import StorageLevel

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sparkdup.config import load_config  # noqa: E402
from sparkdup.session import get_spark  # noqa: E402
from sparkdup.tables import read_table  # noqa: E402
from tools.groundtruth.score import normalize_path, score  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("truth")
    ap.add_argument("run")
    ap.add_argument("--only", choices=("outliers", "labels"))
    ap.add_argument("--set", action="append", default=[])
    args = ap.parse_args()
    cfg = load_config(overrides=["spark.master=local[2]", "spark.driver_memory=2g"] + args.set)
    spark = get_spark(cfg)
    spark.sparkContext.setCheckpointDir(tempfile.mkdtemp(prefix="bench_findings_"))
    an = cfg["analyze"]
    jvm = psutil.Process(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())

    def cpu() -> float:
        total = time.process_time()
        for p in [jvm, *jvm.children(recursive=True)]:
            try:
                t = p.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
        return total

    # kept as jobs/analyze.py keeps them, so a step's cost excludes reading the tables
    images, emb, nb, groups = (read_table(spark, args.run, t).drop("signature").persist(StorageLevel.MEMORY_AND_DISK)
                               for t in ("images", "embeddings", "neighbors", "duplicate_groups"))
    n = emb.count()
    images.count(), nb.count(), groups.count()
    truth = pd.read_parquet(os.path.join(args.truth, "ground_truth.parquet"))
    truth["path"] = truth.path.map(normalize_path)
    tracker = spark.sparkContext.statusTracker()

    def measure(name, build):
        spark.sparkContext.setJobGroup(name, name)
        c0, w0 = cpu(), time.time()
        table = build().toPandas()
        c, w = cpu() - c0, time.time() - w0
        jobs = len(tracker.getJobIdsForGroup(name))
        print(f"{name}: wall {w:.0f} s, CPU {c:.0f} s = {c / n * 1000:.0f} CPU s per 1,000 embedded images "
              f"({n}), {jobs} Spark jobs", flush=True)
        return table

    if args.only in (None, "outliers"):
        from sparkdup.findings.outliers import outliers
        table = measure("outliers", lambda: outliers(images, nb, emb, an))
        print("outliers:", score(truth, {"outliers": table})["outliers"])
    if args.only in (None, "labels"):
        from sparkdup.findings.labels import label_issues
        table = measure("label issues", lambda: label_issues(images, nb, emb, groups, an))
        print("flipped labels:", score(truth, {"label_issues": table})["flipped_labels"])


if __name__ == "__main__":
    main()
