"""The whole `sparkdup run`: time on real images, and quality against generated ground truth.

    python benchmarks/bench_pipeline.py --images 2000 8000 [--write]      # images/s per size
    python benchmarks/bench_pipeline.py --quality 1000 [--write]          # precision/recall

Timing: N real openclipart PNGs copied to a folder, `sparkdup run` as a subprocess (cold
JVM and model load included, as a user sees it), local[2]. Quality: the ground-truth
generator's messy dataset with ORIGINALS originals, then the scorer.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, copy_real_images, machine, update_benchmarks_md  # noqa: E402

SPARKDUP = os.path.join(os.path.dirname(sys.executable), "sparkdup")


def run_pipeline(src: str, out: str, *extra: str, log: list | None = None) -> float:
    start = time.time()
    proc = subprocess.run([SPARKDUP, "run", src, "--output", out, "--set", "spark.master=local[2]", *extra],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(proc.stderr[-4000:])
    if log is not None:
        log.append(proc.stderr)
    return time.time() - start


def analyze_step_seconds(stderr: str) -> dict[str, float]:
    """Wall seconds of each analyze step, from the timestamps of its 'analyze: <step>' log
    lines (a step lasts until the next line)."""
    stamps = [(datetime.strptime(m.group(1), "%H:%M:%S"), m.group(2).split(" (")[0])
              for m in re.finditer(r"^(\d\d:\d\d:\d\d) sparkdup INFO analyze: (.*)$", stderr, flags=re.M)]
    return {name: (nxt - at).total_seconds() % 86400 for (at, name), (nxt, _) in zip(stamps, stamps[1:])}


def timing(sizes: list[int]) -> str:
    rows = []
    for n in sizes:
        work = tempfile.mkdtemp(prefix=f"bench_run_{n}_")
        src = copy_real_images(os.path.join(work, "images"), n, seed=n)
        seconds = run_pipeline(src, os.path.join(work, "out"))
        rows.append(f"| {n} | {seconds:.0f} | {n / seconds:.1f} |")
    return ("### Whole pipeline (`sparkdup run`), time by size\n\n"
            f"Command: `python benchmarks/bench_pipeline.py --images {' '.join(map(str, sizes))} --write` "
            f"(local[2], cold start included; machine: {machine()})\n\n"
            "| images | seconds | images/s |\n|---|---|---|\n" + "\n".join(rows))


def quality(originals: int, seed: int) -> str:
    work = tempfile.mkdtemp(prefix="bench_quality_")
    data, out = os.path.join(work, "data"), os.path.join(work, "out")
    # tools.groundtruth lives in the checkout, not in the installed package: run it from the repo root
    subprocess.run([sys.executable, "-m", "tools.groundtruth.generate", data, "--originals", str(originals),
                    "--seed", str(seed)], check=True, capture_output=True, cwd=REPO)
    log: list[str] = []
    seconds = run_pipeline(os.path.join(data, "images"), out, "--layout", "split/label", log=log)
    table = subprocess.run([sys.executable, "-m", "tools.groundtruth.score", data, out],
                           check=True, capture_output=True, text=True, cwd=REPO).stdout
    files = len(pd.read_parquet(os.path.join(data, "ground_truth.parquet")))
    steps = analyze_step_seconds(log[0])
    per_k = ", ".join(f"{name}: {sec / files * 1000:.0f} s" for name, sec in steps.items()
                      if name.startswith(("outliers", "label issues")))
    return (f"### Quality against ground truth ({originals} originals, {files} files, seed {seed})\n\n"
            f"Command: `python benchmarks/bench_pipeline.py --quality {originals} --seed {seed} --write` "
            f"(default settings; pipeline took {seconds:.0f} s; wall seconds per 1,000 files, {per_k}; "
            f"machine: {machine()})\n\n{table.strip()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, nargs="*", default=[])
    ap.add_argument("--quality", type=int, help="originals in the generated dataset")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    if args.images:
        body = timing(args.images)
        print(body)
        if args.write:
            update_benchmarks_md("pipeline-time", body)
    if args.quality:
        body = quality(args.quality, args.seed)
        print(body)
        if args.write:
            update_benchmarks_md("pipeline-quality", body)


if __name__ == "__main__":
    main()
