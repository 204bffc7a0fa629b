"""Cost of `run --append` with 1 % new files against a full run of the same output.

Usage: python benchmarks/bench_append.py [--n 8000] [--master local[2]] [--write]
Copies n real clipart/icon PNGs, runs the whole pipeline once (the full run), adds
max(1, n/100) new files and runs `run --append` on the same output; prints both wall times
per stage (from the `runs` table) and their ratio, and analyze split into its findings
(from the times of analyze's own log lines: duplicate pairs, groups, outliers, leaks, label
issues), so a finding that dominates both runs (the label model) shows as such. Both runs
start from a warm session (the Spark start is left out of both). With --write the figures
go into BENCHMARKS.md; --json FILE keeps them as JSON.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
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


FINDINGS = ("duplicate pairs", "duplicate groups", "outliers", "leaks", "label issues")


class AnalyzeSteps(logging.Handler):
    """Seconds between analyze's "analyze: <finding>" log lines: each finding's share."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.marks: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg.startswith("analyze: "):
            step = next((f for f in FINDINGS if msg[len("analyze: "):].startswith(f)), "counts")
            self.marks.append((record.created, step))

    def take(self) -> dict:
        """{finding: seconds} since the last take()."""
        marks, self.marks = self.marks, []
        return {a[1]: round(b[0] - a[0], 1) for a, b in zip(marks, marks[1:])}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=8000)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--write", action="store_true")
    p.add_argument("--json", help="also write the figures to this JSON file")
    a = p.parse_args()
    steps = AnalyzeSteps()
    logging.getLogger("sparkdup").addHandler(steps)
    logging.getLogger("sparkdup").setLevel(logging.INFO)
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
    full_steps = steps.take()
    for i, f in enumerate(files[a.n:], a.n):
        shutil.copy(f, os.path.join(data, f"{i:06d}.png"))
    t2 = time.time()
    second = sparkdup.run(data, out, spark=spark, append=True)
    t3 = time.time()
    inc_steps = steps.take()
    full, inc = stage_seconds(spark, out, first.run_id), stage_seconds(spark, out, second.run_id)
    ratio = (t3 - t2) / (t1 - t0)
    lines = [f"{a.n} images, then {added} new ({100 * added / a.n:.1f} %), `{a.master}`, {machine()}:",
             "", "| stage | full run (s) | --append (s) |", "|---|---|---|"]
    lines += [f"| {s} | {full.get(s, 0):.1f} | {inc.get(s, 0):.1f} |" for s in ("ingest", "embed", "neighbors",
                                                                             "analyze", "report")]
    lines += [f"| analyze: {f} | {full_steps.get(f, 0):.1f} | {inc_steps.get(f, 0):.1f} |" for f in FINDINGS]
    lines += [f"| **total** | **{t1 - t0:.1f}** | **{t3 - t2:.1f}** ({100 * ratio:.0f} % of the full run) |", "",
              f"Command: `nice python benchmarks/bench_append.py --n {a.n}`",
              "", f"Append counts: {dict(second.counts)}"]
    print("\n".join(lines), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"n": a.n, "added": added, "full_s": t1 - t0, "append_s": t3 - t2, "full": full,
                       "append": inc, "full_analyze": full_steps, "append_analyze": inc_steps,
                       "append_counts": dict(second.counts)}, f, indent=1)
    if a.write:
        update_benchmarks_md("append", "## Incremental runs (--append)\n\n" + "\n".join(lines))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
