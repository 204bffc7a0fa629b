"""Where a `sparkdup run` spends its time: per stage wall, CPU seconds by process kind,
Spark jobs, Python workers and how many of them loaded TensorFlow.

    python benchmarks/bench_stages.py DATA OUT [--set KEY=VALUE ...] [--json FILE]
    python benchmarks/bench_stages.py - OUT --stages report     # some stages of an existing output
    python benchmarks/bench_stages.py - OUT --stages embed --variant embed.model=efficientnet_lite0:keras \
        --variant embed.model=efficientnet_lite0 --variant ...      # paired: in turn, one session
    python benchmarks/bench_stages.py DATA OUT --stages ingest --spark-stages 12   # + Spark's heaviest stages

Runs the pipeline in this process (one Spark session, like `sparkdup run`) one stage at
a time. CPU is process CPU time (user + system), not wall, so it means something on a
loaded machine: driver Python (this process), the JVM, and the Python workers, sampled
every 0.1 s (the sampler's own CPU is taken off the driver's; a worker's CPU counts from its first sample, so a worker that lives less
than 0.1 s is missed; reused workers live for the whole run). Jobs: Spark jobs started
during the stage (status tracker). TF workers: Python workers that mapped TensorFlow's
shared library while the stage ran (each one paid the TensorFlow import).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, BackgroundSampler  # noqa: E402

sys.path.insert(0, REPO)


class Sampler(BackgroundSampler):
    """CPU seconds per process kind, and which Python workers hold TensorFlow."""

    def __init__(self, interval: float = 0.1):
        super().__init__(interval)
        self.first: dict[int, tuple[str, float]] = {}
        self.last: dict[int, float] = {}
        self.rss: dict[int, int] = {}
        self.tf: set[int] = set()
        self.own_cpu = 0.0  # this sampler's CPU, taken off driver_python
        self._lock = threading.Lock()

    @staticmethod
    def _kind(p: psutil.Process) -> str:
        cmd = " ".join(p.cmdline()[:4])
        return "jvm" if "java" in cmd else "python_worker"

    def _has_tf(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/maps") as f:
                return "libtensorflow" in f.read()
        except OSError:
            return False

    def sample(self) -> None:
        me = psutil.Process()
        procs = [("driver_python", me)]
        for child in me.children(recursive=True):
            try:
                procs.append((self._kind(child), child))
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        with self._lock:
            for kind, p in procs:
                try:
                    t = p.cpu_times()
                    rss = p.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                used = t.user + t.system
                # the kind as seen now: the JVM's pid first runs the spark-submit shell script
                self.first[p.pid] = (kind, self.first.get(p.pid, (kind, used))[1])
                self.last[p.pid] = used
                self.rss[p.pid] = max(self.rss.get(p.pid, 0), rss)
                if kind == "python_worker" and p.pid not in self.tf and used > 1.0 and self._has_tf(p.pid):
                    self.tf.add(p.pid)

    def snapshot(self) -> dict:
        """{kind: cpu seconds so far}, worker pids, TF worker pids, peak worker RSS (MB)."""
        self.sample()
        with self._lock:
            cpu = {"driver_python": -self.own_cpu, "jvm": 0.0, "python_worker": 0.0}
            for pid, (kind, start) in self.first.items():
                cpu[kind] += self.last[pid] - start
            workers = {pid for pid, (kind, _) in self.first.items() if kind == "python_worker"}
            peak = max((self.rss[p] for p in workers), default=0)
            return {"cpu": cpu, "workers": workers, "tf": set(self.tf), "worker_peak_mb": peak / 2**20}

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.thread_time()
            self.sample()
            with self._lock:
                self.own_cpu += time.thread_time() - t
            time.sleep(self.interval)


def profile(data: str, out: str, sets: list[str], master: str, only: list[str] | None = None,
            variants: list[str] | None = None) -> dict:
    """Run the pipeline's stages (or `only` those), once; with `variants` (KEY=VALUE each),
    the `only` stages once per variant, in turn, in the same session (paired figures)."""
    from sparkdup import logs
    from sparkdup.jobs import run as pipeline
    from sparkdup.preflight import release_output
    from sparkdup.stage import add_common_arguments, settings_from_args
    from sparkdup.tables import new_run_id

    parser = argparse.ArgumentParser()
    pipeline.add_arguments(parser)
    add_common_arguments(parser)
    def argv(extra: list[str]) -> list[str]:
        settings = [f"spark.master={master}", "spark.driver_memory=2g", *sets, *extra]
        return ([] if data == "-" else [data]) + ["--output", out, *sum((["--set", s] for s in settings), [])]

    args = parser.parse_args(argv([]))
    logs.setup_logging(quiet=True)
    stages: dict = {}
    with Sampler() as sampler:
        t0, c0 = time.time(), sampler.snapshot()
        cfg = settings_from_args(args)
        if not only:
            pipeline.before_work(cfg, args)
        from sparkdup.session import get_spark

        spark = get_spark(cfg)
        tracker = spark.sparkContext.statusTracker()
        prev = c0
        stages["start"] = {"wall_s": time.time() - t0, "jobs": 0,
                           "cpu": {k: v - c0["cpu"][k] for k, v in sampler.snapshot()["cpu"].items()}}
        prev = sampler.snapshot()
        run_id = new_run_id()
        try:
            plan = [(v, name) for v in variants for name in only] if variants else \
                [(None, name) for name in only or pipeline.PIPELINE]
            for variant, name in plan:
                run_cfg = cfg if variant is None else settings_from_args(parser.parse_args(argv([variant])))
                jobs_before = set(tracker.getJobIdsForGroup(None))
                t = time.time()
                pipeline.run_stage(pipeline._stage(name), spark, run_cfg, args, run_id)  # noqa: SLF001
                now = sampler.snapshot()
                key = name if variant is None else f"{name} [{variant}] #{sum(k.startswith(f'{name} [{variant}]') for k in stages) + 1}"
                stages[key] = {
                    "wall_s": time.time() - t,
                    "jobs": len(set(tracker.getJobIdsForGroup(None)) - jobs_before),
                    "cpu": {k: v - prev["cpu"][k] for k, v in now["cpu"].items()},
                    "new_workers": len(now["workers"] - prev["workers"]),
                    "new_tf_workers": len(now["tf"] - prev["tf"]),
                }
                prev = now
        finally:
            release_output(out)
        total = sampler.snapshot()
    n_images = spark.read.format(cfg["output"]["format"]).load(os.path.join(out, "images")).count()
    spark_stages = spark_stage_list(spark)
    spark.stop()
    return {"images": n_images, "stages": stages, "wall_s": time.time() - t0, "cpu": total["cpu"],
            "workers": len(total["workers"]), "tf_workers": len(total["tf"]), "spark_stages": spark_stages,
            "worker_peak_mb": round(total["worker_peak_mb"])}


def spark_stage_list(spark) -> list[dict]:
    """Every Spark stage the session ran, from its status REST API: tasks, summed task
    run time and JVM CPU (Python workers' CPU is not in it), GC, bytes, and its call site."""
    import json as _json
    import urllib.request

    sc = spark.sparkContext
    if not sc.uiWebUrl:
        return []
    url = f"{sc.uiWebUrl}/api/v1/applications/{sc.applicationId}/stages?details=false"
    with urllib.request.urlopen(url) as f:
        stages = _json.load(f)
    return [{"id": s["stageId"], "tasks": s["numTasks"], "task_s": s["executorRunTime"] / 1e3,
             "jvm_cpu_s": s["executorCpuTime"] / 1e9, "gc_s": s["jvmGcTime"] / 1e3,
             "input_mb": s["inputBytes"] / 2**20, "output_mb": s["outputBytes"] / 2**20,
             "shuffle_write_mb": s["shuffleWriteBytes"] / 2**20, "name": s["name"]} for s in stages]


def stage_table(stages: list[dict], top: int) -> str:
    """The `top` Spark stages by summed task time, and the totals."""
    rows = ["| Spark stage | tasks | task s | task JVM CPU s | GC s | in MB | out MB | shuffle MB | call site |",
            "|---|---|---|---|---|---|---|---|---|"]
    for s in sorted(stages, key=lambda s: -s["task_s"])[:top]:
        rows.append(f"| {s['id']} | {s['tasks']} | {s['task_s']:.1f} | {s['jvm_cpu_s']:.1f} | {s['gc_s']:.1f} | "
                    f"{s['input_mb']:.0f} | {s['output_mb']:.0f} | {s['shuffle_write_mb']:.0f} | {s['name'][:60]} |")
    rows.append(f"| all {len(stages)} | {sum(s['tasks'] for s in stages)} | {sum(s['task_s'] for s in stages):.1f} | "
                f"{sum(s['jvm_cpu_s'] for s in stages):.1f} | {sum(s['gc_s'] for s in stages):.1f} | | | | |")
    return "\n".join(rows)


def table(result: dict) -> str:
    n = result["images"]
    rows = ["| stage | wall s | jobs | driver Python CPU s | JVM CPU s | workers CPU s | CPU ms/image | "
            "new workers (TF) |", "|---|---|---|---|---|---|---|---|"]
    for name, s in result["stages"].items():
        cpu = s["cpu"]
        total = sum(cpu.values())
        rows.append(f"| {name} | {s['wall_s']:.1f} | {s['jobs']} | {cpu['driver_python']:.1f} | {cpu['jvm']:.1f} | "
                    f"{cpu['python_worker']:.1f} | {1000 * total / n:.1f} | "
                    f"{s.get('new_workers', '')} ({s.get('new_tf_workers', '')}) |")
    cpu = result["cpu"]
    total = sum(cpu.values())
    rows.append(f"| **all** | {result['wall_s']:.1f} | {sum(s['jobs'] for s in result['stages'].values())} | "
                f"{cpu['driver_python']:.1f} | {cpu['jvm']:.1f} | {cpu['python_worker']:.1f} | "
                f"{1000 * total / n:.1f} | {result['workers']} ({result['tf_workers']}) |")
    return "\n".join(rows) + f"\n\n{n} images; peak Python worker RSS {result['worker_peak_mb']} MB."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--stages", help="comma-separated stages to run on an existing OUT (DATA: -)")
    ap.add_argument("--variant", action="append", default=[], metavar="KEY=VALUE",
                    help="with --stages: run them once per variant, in turn (repeat the flag; list a variant twice "
                         "for a second round)")
    ap.add_argument("--spark-stages", type=int, default=0, metavar="N",
                    help="also print the N Spark stages with the most task time (tasks, JVM CPU, GC, bytes)")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    result = profile(a.data, a.out, a.set, a.master, a.stages.split(",") if a.stages else None, a.variant or None)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1, default=list)
    print(table(result))
    if a.spark_stages:
        print("\n" + stage_table(result["spark_stages"], a.spark_stages))


if __name__ == "__main__":
    main()
