"""Cost of `run --append` with 1 % new files against a full run of the same output.

Usage: python benchmarks/bench_append.py [--n 8000] [--master local[2]] [--write]
Copies n real clipart/icon PNGs, runs the whole pipeline once (the full run), adds
max(1, n/100) new files and runs `run --append` on the same output; prints both wall times
per stage (from the `runs` table) and their ratio. Both runs start from a warm session
(the Spark start is left out of both). With --write the figures go into BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import glob
import os
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import machine, update_benchmarks_md  # noqa: E402

ROOTS = ("/usr/share/openclipart/png", "/usr/share/icons/oxygen")


def real_files(n: int, seed: int = 0) -> list[str]:
    files = sorted(f for r in ROOTS for f in glob.glob(os.path.join(r, "**", "*.png"), recursive=True)
                   if os.path.getsize(f) >= 2000)
    return random.Random(seed).sample(files, min(n, len(files)))


def stage_seconds(spark, out: str, run_id: str) -> dict:
    rows = spark.read.format("delta").load(os.path.join(out, "runs")).where(f"run_id = '{run_id}'").collect()
    return {r.stage: r.seconds for r in rows}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=8000)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--write", action="store_true")
    a = p.parse_args()
    import sparkdup
    from sparkdup.config import load_config
    from sparkdup.session import get_spark

    spark = get_spark(load_config(overrides=[f"spark.master={a.master}", "spark.driver_memory=2g"]))
    added = max(1, a.n // 100)
    files = real_files(a.n + added)
    root = tempfile.mkdtemp(prefix="bench_append_")
    data, out = os.path.join(root, "data"), os.path.join(root, "out")
    os.makedirs(data)
    for i, f in enumerate(files[:a.n]):
        shutil.copy(f, os.path.join(data, f"{i:06d}.png"))
    t0 = time.time()
    first = sparkdup.run(data, out, spark=spark)
    t1 = time.time()
    for i, f in enumerate(files[a.n:], a.n):
        shutil.copy(f, os.path.join(data, f"{i:06d}.png"))
    t2 = time.time()
    second = sparkdup.run(data, out, spark=spark, append=True)
    t3 = time.time()
    full, inc = stage_seconds(spark, out, first.run_id), stage_seconds(spark, out, second.run_id)
    ratio = (t3 - t2) / (t1 - t0)
    lines = [f"{a.n} images, then {added} new ({100 * added / a.n:.1f} %), `{a.master}`, {machine()}:",
             "", "| stage | full run (s) | --append (s) |", "|---|---|---|"]
    lines += [f"| {s} | {full.get(s, 0):.1f} | {inc.get(s, 0):.1f} |" for s in ("ingest", "embed", "neighbors",
                                                                             "analyze", "report")]
    lines += [f"| **total** | **{t1 - t0:.1f}** | **{t3 - t2:.1f}** ({100 * ratio:.0f} % of the full run) |", "",
              f"Command: `nice python benchmarks/bench_append.py --n {a.n}`"]
    print("\n".join(lines))
    if a.write:
        update_benchmarks_md("append", "## Incremental runs (--append)\n\n" + "\n".join(lines))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
