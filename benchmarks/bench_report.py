"""The report stage alone on an existing output: wall, CPU seconds (driver Python, JVM)
and Spark jobs; with --ref, also the report module of a git ref, alternating, in the same
session, so both see the same machine and the same warm JVM.

    python benchmarks/bench_report.py OUT [--ref main] [--rounds 2]

OUT: an output folder a run has filled (images ... label_issues, and _decoded for the
thumbnails). Each round renders the report (into OUT/report) once per module.
"""
from __future__ import annotations

import argparse
import collections
import glob
import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_stages import Sampler  # noqa: E402
from common import REPO  # noqa: E402

sys.path.insert(0, REPO)


def module_at(ref: str, tmp: str):
    """jobs/report.py as it is at git `ref`, imported under another name."""
    source = subprocess.run(["git", "-C", REPO, "show", f"{ref}:jobs/report.py"], check=True,
                            capture_output=True, text=True).stdout
    path = os.path.join(tmp, "report_at_ref.py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("sparkdup.jobs.report_at_ref", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _callsite(tracker, job_id: int) -> str:
    """Where a job came from: its first stage's name (Spark's call site, 'collect at x.py:12')."""
    info = tracker.getJobInfo(job_id)
    stages = [tracker.getStageInfo(s) for s in (info.stageIds if info else [])]
    names = [st.name for st in stages if st is not None]
    return names[0] if names else "?"


def report_digest(out: str) -> str:
    """One hash of every page the report wrote (same pages, same bytes: same digest)."""
    h = hashlib.sha256()
    for path in sorted(glob.glob(os.path.join(out, "report", "*.html"))):
        h.update(os.path.basename(path).encode())
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()[:12]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--ref", help="git ref whose jobs/report.py to compare with")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--master", default="local[2]")
    a = ap.parse_args()
    from sparkdup import logs
    from sparkdup.config import load_config
    from sparkdup.jobs import report
    from sparkdup.session import get_spark

    logs.setup_logging(quiet=True)
    cfg = load_config(None, (), [f"spark.master={a.master}", "spark.driver_memory=2g"], {})
    with tempfile.TemporaryDirectory() as tmp, Sampler() as sampler:
        modules = {"this tree": report}
        if a.ref:
            modules[a.ref] = module_at(a.ref, tmp)
        spark = get_spark(cfg)
        tracker = spark.sparkContext.statusTracker()
        n = spark.read.format(cfg["output"]["format"]).load(os.path.join(a.out, "images")).count()
        results: dict = {k: [] for k in modules}
        for _ in range(a.rounds):
            for label, mod in modules.items():
                jobs = set(tracker.getJobIdsForGroup(None))
                before, t = sampler.snapshot(), time.time()
                pages = mod.run(spark, cfg, argparse.Namespace(output=a.out), "bench-report")
                wall, after = time.time() - t, sampler.snapshot()
                cpu = {k: after["cpu"][k] - before["cpu"][k] for k in after["cpu"]}
                pages["digest"] = report_digest(a.out)
                new = sorted(set(tracker.getJobIdsForGroup(None)) - jobs)
                pages["callsites"] = collections.Counter(_callsite(tracker, j) for j in new)
                results[label].append((wall, len(set(tracker.getJobIdsForGroup(None)) - jobs), cpu, pages))
        spark.stop()
    print(f"report stage alone, {n} images in {a.out}, {a.master}, load average {os.getloadavg()[0]:.1f}\n")
    for label, rows in results.items():
        print(f"Spark jobs of {label}, last round, by call site: "
              + ", ".join(f"{site} x{n}" for site, n in rows[-1][3]["callsites"].most_common()) + "\n")
    print("| report module | round | wall s | Spark jobs | driver Python CPU s | JVM CPU s | pages | bytes | "
          "pages digest |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, rows in results.items():
        for i, (wall, jobs, cpu, pages) in enumerate(rows, 1):
            print(f"| {label} | {i} | {wall:.1f} | {jobs} | {cpu['driver_python']:.1f} | {cpu['jvm']:.1f} | "
                  f"{pages['report_pages']} | {pages['report_bytes']} | {pages['digest']} |")


if __name__ == "__main__":
    main()
