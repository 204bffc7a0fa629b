"""Ingest throughput (images/s, warm Spark, local[2]) and peak memory on real images.

    python benchmarks/bench_ingest.py --images 2000 [--write]

Runs ingest once to warm the JVM and Python workers, then times a second run writing
the images table (Parquet, to time ingest rather than the Delta log) and samples the
peak RSS of the driver (Python and JVM) and of each Python worker.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import PeakRSS, copy_real_images, machine, update_benchmarks_md  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--write", action="store_true", help="record the result in BENCHMARKS.md")
    args = ap.parse_args()

    from sparkdup.config import load_config
    from sparkdup.jobs.ingest import build_images
    from sparkdup.session import get_spark
    from sparkdup.tables import write_table

    work = tempfile.mkdtemp(prefix="bench_ingest_")
    src = copy_real_images(os.path.join(work, "images"), args.images)
    cfg = load_config(overrides=[f"spark.master={args.master}"])
    with PeakRSS() as mem:
        spark = get_spark(cfg)
        write_table(build_images(spark, cfg, src, None, "warmup"), os.path.join(work, "warm"), "images", "parquet")
        start = time.time()
        write_table(build_images(spark, cfg, src, None, "timed"), os.path.join(work, "out"), "images", "parquet")
        seconds = time.time() - start
    n = spark.read.parquet(os.path.join(work, "out", "images")).count()
    mb = mem.as_mb()
    table = (
        "| images | seconds | images/s | driver Python MB | driver JVM MB | Python worker MB (peak, each) |\n"
        "|---|---|---|---|---|---|\n"
        f"| {n} | {seconds:.1f} | {n / seconds:.0f} | {mb['driver_python']} | {mb['driver_jvm']} | {mb['python_worker']} |"
    )
    body = (f"### Ingest throughput\n\nCommand: `python benchmarks/bench_ingest.py --images {args.images} --write` "
            f"({args.master}, warm Spark, openclipart PNGs; machine: {machine()})\n\n{table}")
    print(body)
    if args.write:
        update_benchmarks_md("ingest", body)


if __name__ == "__main__":
    main()
