"""sparkdup against fastdup on the same generated dataset, the same cores, one after the other.

    python benchmarks/bench_vs_fastdup.py --files 8000 [30000] [--cores 2] [--write]
    python benchmarks/bench_vs_fastdup.py --data /work/bench/gt8k /work/bench/gt30k --write   # existing sets

For each size: the project's ground-truth generator makes one messy labelled dataset
(real Debian images, known duplicates, outliers, broken files, leaks, flipped labels);
fastdup (PyPI ``fastdup``, installed into its own venv under
``~/.cache/sparkdup/bench-fastdup`` with SENTRY_OPT_OUT=1 and FASTDUP_PRODUCTION=1 so it
stays offline: a comparison only, never a dependency) runs with its defaults and
``num_threads`` = cores; then ``sparkdup run`` (defaults, ``local[<cores>]``, a cold
process: JVM start and model load included). Both are measured the same way: wall
time, CPU seconds of the process tree, peak RSS of the tree. sparkdup's per-stage times
come from its ``runs`` table.

Both tools' findings are scored by the ground truth's scorer (tools/groundtruth, formerly
sparkdup/groundtruth). fastdup's outputs are
mapped to the scorer's inputs: its connected components (of images with more than one
member) are duplicate groups, members sharing bytes marked ``exact``; its outliers
(ranked by distance to the nearest neighbour, ascending) are the outlier ranking; its
invalid instances are broken files; pairs of one component in different split folders
are leaks. fastdup has no label-issue finding on this input: n/a.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

import pandas as pd
import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, machine, update_benchmarks_md  # noqa: E402

sys.path.insert(0, REPO)
# The generator and scorer moved from sparkdup/groundtruth to tools/groundtruth.
GT = "tools.groundtruth" if os.path.isdir(os.path.join(REPO, "tools", "groundtruth")) else "sparkdup.groundtruth"
gt_score = importlib.import_module(GT + ".score")

FASTDUP_VERSION = "2.54"
VENV = os.path.join(os.path.expanduser("~"), ".cache", "sparkdup", "bench-fastdup")
OFFLINE = {"SENTRY_OPT_OUT": "1", "FASTDUP_PRODUCTION": "1"}
FILES_PER_ORIGINAL = 1.97  # the generator's default mix (measured: 591 files from 300 originals)

FASTDUP_SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    import fastdup
    data, work, threads, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    t = time.time()
    fd = fastdup.create(work_dir=work, input_dir=data)
    fd.run(overwrite=True, num_threads=threads)
    seconds = time.time() - t
    cc = fd.connected_components()
    cc = cc[0] if isinstance(cc, tuple) else cc
    cc[["filename", "component_id", "count"]].to_csv(os.path.join(out, "components.csv"), index=False)
    fd.outliers()[["filename_outlier", "distance"]].to_csv(os.path.join(out, "outliers.csv"), index=False)
    fd.invalid_instances()[["filename"]].to_csv(os.path.join(out, "invalid.csv"), index=False)
    json.dump({"run_seconds": seconds, "cwd": os.getcwd()}, open(os.path.join(out, "fastdup.json"), "w"))
""")


# ---------------------------------------------------------------- set-up
def fastdup_python() -> str:
    """The fastdup venv's interpreter, created and filled on first use (pip, offline after)."""
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    probe = subprocess.run([py, "-c", "import fastdup"], capture_output=True, env=os.environ | OFFLINE)
    if probe.returncode != 0:
        subprocess.run([py, "-m", "pip", "install", "-q", f"fastdup=={FASTDUP_VERSION}"], check=True,
                       env=os.environ | OFFLINE)
    return py


def dataset(n_files: int, seed: int, root: str) -> str:
    """The generated dataset for about n_files files (reused when already there). When the
    generator has too few distinct originals for the default mix, more of them get copies
    and near duplicates (the message names how many it has)."""
    out = os.path.join(root, f"gt{n_files}_s{seed}")
    if os.path.exists(os.path.join(out, "ground_truth.parquet")):
        return out
    originals, extra = max(10, round(n_files / FILES_PER_ORIGINAL)), []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", GT + ".generate", out, "--originals",
                               str(originals), "--seed", str(seed), *extra], capture_output=True, text=True, cwd=REPO)
        found = re.search(r"only (\d+) distinct originals are available", proc.stderr)
        if proc.returncode == 0 or not found:
            break
        originals = int(int(found.group(1)) * 0.98)
        # measured: exact 0.35 / near 0.75 give about 2.75 files per original (7,022 from 2,550)
        extra = ["--exact-fraction", "0.35", "--near-fraction", "0.75"]
    if proc.returncode != 0:
        sys.exit(f"generator failed: {proc.stderr[-2000:]}")
    return out


# ---------------------------------------------------------------- measuring
def process_kind(cmdline: list[str]) -> str:
    """'jvm', 'python_worker' (pyspark's daemon and the workers it forks) or 'other'.

    By the program and its module, not by a substring anywhere: the JVM's classpath names
    pyspark's folder, so matching "pyspark" in the first arguments counted the JVM as a worker
    (the 2.8–3.1 GB "worker" peaks of earlier runs)."""
    program = os.path.basename(cmdline[0]) if cmdline else ""
    if program == "java":
        return "jvm"
    if program.startswith("python") and any(a in ("pyspark.daemon", "pyspark.worker") for a in cmdline[1:4]):
        return "python_worker"
    return "other"


def measured(cmd: list[str], cwd: str, env: dict | None = None, log: str | None = None) -> dict:
    """Run cmd; wall seconds, CPU seconds and peak RSS (MB) of its whole process tree."""
    start = time.time()
    with open(log or os.devnull, "w") as out:
        proc = psutil.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        cpu: dict[int, float] = {}
        peak = worker_peak = jvm_peak = 0
        while proc.poll() is None:
            rss = 0
            for p in [proc, *proc.children(recursive=True)]:
                try:
                    t = p.cpu_times()
                    cpu[p.pid] = t.user + t.system  # children are sampled themselves: no double count
                    own = p.memory_info().rss
                    rss += own
                    kind = process_kind(p.cmdline())
                    if kind == "python_worker":
                        worker_peak = max(worker_peak, own)
                    elif kind == "jvm":
                        jvm_peak = max(jvm_peak, own)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            peak = max(peak, rss)
            time.sleep(0.25)
    wall = time.time() - start
    if proc.returncode != 0:
        tail = open(log).read()[-3000:] if log else ""
        sys.exit(f"{cmd[:3]} failed ({proc.returncode}):\n{tail}")
    return {"wall_s": wall, "cpu_s": sum(cpu.values()), "peak_mb": peak / 2**20, "worker_mb": worker_peak / 2**20,
            "jvm_mb": jvm_peak / 2**20}


def run_fastdup(py: str, data: str, work: str, cores: int) -> tuple[dict, dict]:
    out = os.path.join(work, "fastdup_out")
    os.makedirs(out, exist_ok=True)
    script = os.path.join(work, "run_fastdup.py")
    with open(script, "w") as f:
        f.write(FASTDUP_SCRIPT)
    cmd = ["taskset", "-c", f"0-{cores - 1}", py, script, os.path.join(data, "images"),
           os.path.join(work, "fastdup_work"), str(cores), out]
    m = measured(cmd, cwd=data, env=os.environ | OFFLINE, log=os.path.join(work, "fastdup.log"))
    return m, json.load(open(os.path.join(out, "fastdup.json")))


def run_sparkdup(data: str, out: str, cores: int, work: str) -> dict:
    sparkdup = os.path.join(os.path.dirname(sys.executable), "sparkdup")
    cmd = ["taskset", "-c", f"0-{cores - 1}", sparkdup, "run", os.path.join(data, "images"), "--output", out,
           "--layout", "split/label", "--set", f"spark.master=local[{cores}]", "--set", "spark.driver_memory=2g"]
    return measured(cmd, cwd=REPO, log=os.path.join(work, "sparkdup.log"))


def stage_seconds(out: str) -> dict:
    runs = gt_score.load_tables(out, ["runs"])["runs"]
    return {r.stage: r.seconds for r in runs.itertuples()} if "seconds" in runs.columns else {}


# ---------------------------------------------------------------- fastdup -> scorer tables
def _abs(paths: pd.Series, cwd: str) -> pd.Series:
    return paths.map(lambda p: "file:" + os.path.normpath(p if os.path.isabs(p) else os.path.join(cwd, p)))


def fastdup_tables(out: str, gt: pd.DataFrame, cwd: str) -> dict[str, pd.DataFrame]:
    """fastdup's outputs as the scorer's images / duplicate_groups / leaks / outliers tables."""
    cc = pd.read_csv(os.path.join(out, "components.csv"))
    cc = cc[cc["count"] > 1].assign(path=lambda d: _abs(d["filename"], cwd))
    sha = dict(zip(gt["path"], gt["content_sha256"]))
    cc = cc.assign(content_hash=cc["path"].map(sha), group_id=cc["component_id"])
    shared = cc.groupby(["group_id", "content_hash"])["path"].transform("count") > 1
    groups = cc.assign(kind=shared.map({True: "exact", False: "near"}))[["path", "group_id", "kind", "content_hash"]]
    split = groups["path"].str.extract(r"/images/([^/]+)/")[0]
    pairs = groups.assign(split=split).merge(groups.assign(split=split), on="group_id", suffixes=("_a", "_b"))
    leaks = pairs[(pairs["split_a"] != pairs["split_b"]) & (pairs["path_a"] < pairs["path_b"])][["path_a", "path_b"]]
    o = pd.read_csv(os.path.join(out, "outliers.csv"))
    o = (o.assign(path=_abs(o["filename_outlier"], cwd)).sort_values("distance")
         .drop_duplicates("path").reset_index(drop=True))
    outliers = pd.DataFrame({"path": o["path"], "rank": range(1, len(o) + 1)})
    invalid = set(_abs(pd.read_csv(os.path.join(out, "invalid.csv"))["filename"], cwd))
    images = pd.DataFrame({"path": gt["path"], "status": ["broken" if p in invalid else "ok" for p in gt["path"]]})
    return {"images": images, "duplicate_groups": groups, "leaks": leaks, "outliers": outliers}


def scores(gt: pd.DataFrame, tables: dict) -> dict:
    s = gt_score.score(gt, tables)
    get = lambda m, k: (s.get(m) or {}).get(k)  # noqa: E731
    return {"near-dup P": get("near_duplicates", "precision"), "near-dup R": get("near_duplicates", "recall"),
            "exact-dup P": get("exact_duplicates", "precision"), "exact-dup R": get("exact_duplicates", "recall"),
            "leaks P": get("leaks", "precision"), "leaks R": get("leaks", "recall"),
            "broken R": get("broken", "recall"), "outliers P@N": get("outliers", "precision_at_n"),
            "flipped labels P@N": get("flipped_labels", "precision_at_n")}


def _f(x, digits=3) -> str:
    return "n/a" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


# ---------------------------------------------------------------- one size
def compare(n_files: int, cores: int, seed: int, root: str, data: str | None = None) -> str:
    data = data or dataset(n_files, seed, root)
    gt = gt_score.load_ground_truth(data)
    work = tempfile.mkdtemp(prefix=f"vs_fastdup_{n_files}_", dir=root)
    fd_m, fd_info = run_fastdup(fastdup_python(), data, work, cores)
    sd_out = os.path.join(work, "sparkdup_out")
    sd_m = run_sparkdup(data, sd_out, cores, work)
    stages = stage_seconds(sd_out)
    n = len(gt)
    fd_q = scores(gt, fastdup_tables(os.path.join(work, "fastdup_out"), gt, fd_info["cwd"]))
    sd_q = scores(gt, gt_score.load_tables(sd_out))
    ratio = fd_m["wall_s"] / sd_m["wall_s"]
    head = "| | fastdup " + FASTDUP_VERSION + " | sparkdup run |\n|---|---:|---:|\n"
    rows = [("wall s", _f(fd_m["wall_s"], 1), _f(sd_m["wall_s"], 1)),
            ("images/s", _f(n / fd_m["wall_s"], 1), _f(n / sd_m["wall_s"], 1)),
            ("CPU s (process tree)", _f(fd_m["cpu_s"], 1), _f(sd_m["cpu_s"], 1)),
            ("CPU ms / image", _f(1000 * fd_m["cpu_s"] / n, 1), _f(1000 * sd_m["cpu_s"] / n, 1)),
            ("peak RSS MB (process tree)", _f(fd_m["peak_mb"], 0), _f(sd_m["peak_mb"], 0)),
            ("peak RSS MB of one Spark Python worker", "–", _f(sd_m["worker_mb"], 0)),
            ("peak RSS MB of the Spark JVM", "–", _f(sd_m["jvm_mb"], 0))]
    rows += [(k, _f(fd_q[k]), _f(sd_q[k])) for k in fd_q]
    table = head + "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    stage_line = ", ".join(f"{k} {v:.1f} s" for k, v in stages.items() if k != "run")
    shutil.rmtree(os.path.join(work, "fastdup_work"), ignore_errors=True)
    return (f"#### {n:,} files ({os.path.basename(data.rstrip('/'))}, generated), {cores} cores\n\n{table}\n\n"
            f"sparkdup / fastdup images/s: **{ratio:.2f}×**. sparkdup stages: {stage_line}; "
            f"the rest of the wall time is process and JVM start, session and model shipping.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, nargs="+", default=[8000])
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "bench_vs_fastdup"))
    ap.add_argument("--data", nargs="+", help="already generated datasets (folders with ground_truth.parquet), "
                    "compared one after the other, instead of --files")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.root, exist_ok=True)
    if args.data:
        parts = [compare(0, args.cores, args.seed, args.root, d) for d in args.data]
    else:
        parts = [compare(n, args.cores, args.seed, args.root) for n in args.files]
    body = ("### sparkdup vs fastdup, same data, same cores\n\n"
            f"Command: `python benchmarks/bench_vs_fastdup.py "
            f"{'--data ' + ' '.join(args.data) if args.data else '--files ' + ' '.join(map(str, args.files))} "
            f"--cores {args.cores} --write` (both pinned with taskset to the same {args.cores} cores, one after "
            f"the other; machine: {machine()}, shared with other work)\n\n" + "\n\n".join(parts))
    print(body)
    if args.write:
        update_benchmarks_md("vs-fastdup", body)


if __name__ == "__main__":
    main()
