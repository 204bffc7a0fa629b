"""How long the ground-truth generator takes, and how many files it makes, by size.

    nice python benchmarks/bench_groundtruth.py --originals 3700 14000 [--write]

Runs ``python -m tools.groundtruth.generate`` (from the repo root: tools/ is not installed)
as a subprocess per size with default settings, and reports files written, the share of
each hard case, and wall time (the plan step and the write step separately, from the
generator's own log line) and the CPU time the generator used (user + system): on a
shared machine the wall time mostly measures the other jobs.
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, machine, update_benchmarks_md  # noqa: E402


def one(originals: int, seed: int, extra: list[str]) -> str:
    out = tempfile.mkdtemp(prefix=f"bench_gt_{originals}_")
    start = time.time()
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-m", "tools.groundtruth.generate", out, "--originals", str(originals),
                           "--seed", str(seed), *extra], capture_output=True, text=True, cwd=REPO)
    seconds = time.time() - start
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    if proc.returncode != 0:
        sys.exit(proc.stderr[-3000:])
    m = re.search(r"plan ([\d.]+)s, write ([\d.]+)s", proc.stdout + proc.stderr)
    plan_s, write_s = (float(m.group(1)), float(m.group(2))) if m else (float("nan"), float("nan"))
    gt = pd.read_parquet(os.path.join(out, "ground_truth.parquet"))
    kinds = gt["kind"].value_counts()
    classes = gt.loc[gt.kind.isin(["original", "lookalike", "flipped_label"]), "true_label"].nunique()
    return (f"| {originals} | {len(gt)} | {classes} | {kinds.get('lookalike', 0)} | {gt['lookalike_set'].nunique()} | "
            f"{kinds.get('near_duplicate', 0) + kinds.get('exact_copy', 0)} | {kinds.get('outlier', 0)} | "
            f"{kinds.get('flipped_label', 0)} | {plan_s:.0f} | {write_s:.0f} | {seconds:.0f} | {cpu:.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--originals", type=int, nargs="+", required=True)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("extra", nargs="*", help="more generator options, after --")
    args = ap.parse_args()
    rows = [one(n, args.seed, args.extra) for n in args.originals]
    cmd = f"nice python benchmarks/bench_groundtruth.py --originals {' '.join(map(str, args.originals))} --write"
    if args.extra:
        cmd += " -- " + " ".join(args.extra)
    body = ("### Ground-truth generator: files and time by size\n\n"
            f"Command: `{cmd}` (seed {args.seed}; machine: {machine()}, shared, noisy)\n\n"
            "| originals | files | classes | look-alikes | look-alike sets | copies + near dups | outliers | "
            "flipped | plan s | write s | wall s | CPU s |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
            + "\n".join(rows))
    print(body)
    if args.write:
        update_benchmarks_md("groundtruth-size", body)


if __name__ == "__main__":
    main()
