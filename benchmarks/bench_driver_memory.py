"""Driver memory of `sparkdup run` by input size: does anything grow with the images?

    python benchmarks/bench_driver_memory.py --images 2000 8000 [--cluster] [--set KEY=VALUE] [--write]
    python benchmarks/bench_driver_memory.py --synthetic 100000 1000000 [--dim 1280] --write

``--synthetic N``: no images; `images` and `embeddings` tables of N synthetic clustered
unit vectors (1% of them near-copies of another, so the graph part has work) are written
with pyarrow, outside the measured process, then `sparkdup neighbors` and `sparkdup
analyze` run as two measured subprocesses (spark.driver_memory=1g by default): the stages
whose driver side the issue "driver memory flat in N" is about. Also recorded for them: CPU
seconds of the driver's Python, its JVM and the Python workers (on a loaded machine wall
time says little), Spark's own per-phase figures from its event log (the neighbors job names
its phases), and a progress line a minute in ``/tmp/bench_driver_memory-<n>-<stage>.progress``
(what a run that cannot finish has measured). ``--work DIR`` keeps the synthetic tables for
the next run (``--data-only`` just writes them).

The design promises that the driver never collects per-image data beyond bounded,
configurable amounts. This measures it: N real openclipart PNGs (benchmarks/common.py),
`sparkdup run` as a subprocess. In local[2] (default) the executors live in the driver's
JVM, so the JVM figures are an upper bound for a driver. With ``--cluster`` the run goes
to a Spark standalone cluster started on this machine for the purpose (one master, two
workers of 1 core each, tests/standalone.py) and the driver JVM holds only the driver's
share. Sampled every 0.2 s with psutil:

* driver Python RSS (the `sparkdup` process itself), overall and per pipeline stage (the
  stage is known from the run's own "stage i/n: name" log lines);
* driver JVM RSS, and the JVM's live heap: every 5 s the sampler asks the JVM for a full
  collection (``jcmd <pid> GC.run``) and the GC log gives the heap left after it. RSS and
  the heap after ordinary (young) collections follow how far the collector let garbage
  pile up, which depends on timing; they moved by up to 2x between two runs of the same
  size, so only the live heap says whether the JVM holds more.

Python workers are left out (they are executors' memory, per task, not the driver's).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import copy_real_images, machine, update_benchmarks_md  # noqa: E402

SIGNATURE_BYTES = 64 * 64 * 3  # udfs.verify.SIGNATURE_BYTES: a 64 x 64 RGB thumbnail
SPARKDUP = os.path.join(os.path.dirname(sys.executable), "sparkdup")
SECTION = "driver-memory"
STAGES = ("ingest", "embed", "neighbors", "analyze", "report")
GC_LINE = re.compile(r"^\[(?P<t>[\d.]+)s\].*Pause Full.*?(?P<before>\d+)M->(?P<after>\d+)M\(\d+M\)")
FULL_GC_EVERY_S = 5.0
PROGRESS_EVERY_S = 60.0
STAGE_LINE = re.compile(r"stage (?:\d+/\d+: )?(?P<stage>\w+)")


class DriverSampler:
    """Peak RSS of one driver process and its JVM child, attributed to the current stage."""

    def __init__(self, proc: psutil.Process, interval: float = 0.2):
        self.proc, self.interval = proc, interval
        self.stage = "start"
        self.python: dict[str, int] = {}
        self.jvm: dict[str, int] = {}
        self.jvm_started: float | None = None
        self.jvm_pid: int | None = None
        self.jvm_gone_at: float | None = None  # the JVM exited while the driver's Python ran on
        self.min_available: int | None = None  # the machine's available memory, lowest seen
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (kind, CPU seconds so far)
        self.timeline: list[tuple[float, dict[str, float]]] = []  # (time, cpu_seconds()) once a second
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _jvm(self) -> psutil.Process | None:
        for child in self.proc.children():
            try:
                if "java" in os.path.basename(child.exe()):
                    return child
            except psutil.Error:
                continue
        return None

    def _run(self) -> None:
        jvm, last_gc = None, time.time()
        while not self._stop.is_set():
            try:
                py = self.proc.memory_info().rss
            except psutil.Error:
                break
            self.python[self.stage] = max(self.python.get(self.stage, 0), py)
            self._sample_cpu()
            available = psutil.virtual_memory().available
            self.min_available = available if self.min_available is None else min(self.min_available, available)
            if jvm is not None and not jvm.is_running() and self.jvm_gone_at is None:
                self.jvm_gone_at = time.time()
            jvm = jvm if jvm is not None and jvm.is_running() else self._jvm()
            if jvm is not None:
                try:
                    self.jvm_started = self.jvm_started or jvm.create_time()
                    self.jvm_pid = jvm.pid
                    self.jvm[self.stage] = max(self.jvm.get(self.stage, 0), jvm.memory_info().rss)
                except psutil.Error:
                    pass
                if time.time() - last_gc >= FULL_GC_EVERY_S:
                    subprocess.run(["jcmd", str(jvm.pid), "GC.run"], capture_output=True, timeout=60)
                    last_gc = time.time()
            time.sleep(self.interval)

    def _sample_cpu(self) -> None:
        """CPU seconds (user + system) of the driver's Python, its JVM and the Python workers
        (the JVM's descendants; a forked worker starts at zero): the work done, whatever the
        machine's load made of the wall time. A worker that lives less than one interval is missed."""
        try:
            procs = [("driver_python", self.proc)] + [
                ("jvm" if "java" in os.path.basename(c.exe()) else "python_worker", c)
                for c in self.proc.children(recursive=True)]
        except psutil.Error:
            return
        for kind, p in procs:
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            self.cpu[p.pid] = (kind, t.user + t.system)
        now = time.time()
        if not self.timeline or now - self.timeline[-1][0] >= 1.0:
            self.timeline.append((now, self.cpu_seconds()))

    def cpu_between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds per process kind spent from `start` to `end` (epoch seconds), from
        the once-a-second timeline (so to about a second at each end)."""
        def at(t: float) -> dict[str, float]:
            before = [c for ts, c in self.timeline if ts <= t]
            return before[-1] if before else {"driver_python": 0.0, "jvm": 0.0, "python_worker": 0.0}
        a, b = at(start), at(end)
        return {k: round(b[k] - a[k], 1) for k in b}

    def cpu_seconds(self) -> dict[str, float]:
        out = {"driver_python": 0.0, "jvm": 0.0, "python_worker": 0.0}
        for kind, used in list(self.cpu.values()):
            out[kind] += used
        return {k: round(v, 1) for k, v in out.items()}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def jvm_options(gc_log: str, crash_dir: str) -> str:
    """GC log for the live heap; on a crash the JVM's error file, and a heap dump on
    OutOfMemoryError, land in `crash_dir` (kept after the run)."""
    return (f"-Xlog:gc:file={gc_log} -XX:ErrorFile={crash_dir}/hs_err_pid%p.log "
            f"-XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath={crash_dir}")


def diagnose(log_path: str, crash_dir: str, sampler: "DriverSampler", started: float) -> str:
    """Why a measured process failed, from what it left: its log's error lines, the JVM's
    error file or heap dump, the kernel's OOM killer, and the machine's memory."""
    notes = []
    if sampler.jvm_gone_at is not None:
        notes.append(f"the JVM (pid {sampler.jvm_pid}) exited {sampler.jvm_gone_at - started:.0f} s after the start "
                     "while the driver's Python ran on")
    pattern = re.compile(r"OutOfMemoryError|hs_err|SIGKILL|Killed|Connection refused|Exception in thread|"
                         r"Container killed|exit code", re.I)
    hits = [line.rstrip() for line in open(log_path, errors="replace") if pattern.search(line)]
    notes += [f"log: {h[:300]}" for h in hits[:12]]
    for f in sorted(os.listdir(crash_dir)):
        notes.append(f"crash file: {os.path.join(crash_dir, f)}")
    try:
        kernel = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=30).stdout.splitlines()
        notes += [f"kernel: {k}" for k in kernel if re.search(r"oom|killed process|out of memory", k, re.I)][-5:]
    except (OSError, subprocess.SubprocessError):
        notes.append("kernel log not readable")
    if sampler.min_available is not None:
        notes.append(f"machine memory available, lowest seen: {sampler.min_available / 2 ** 30:.1f} GiB")
    return "\n".join(notes) or "no cause found in the log, crash files or kernel log"


def heap_after_gc(gc_log: str, jvm_started: float | None, stage_starts: list[tuple[float, str]]) -> dict:
    """Largest heap occupancy right after a full collection, per stage (MB): the live heap."""
    out: dict[str, int] = {}
    if jvm_started is None or not os.path.exists(gc_log):
        return out
    for line in open(gc_log):
        m = GC_LINE.search(line)
        if not m:
            continue
        at = jvm_started + float(m.group("t"))
        stage = "start"
        for t, name in stage_starts:
            if t <= at:
                stage = name
        out[stage] = max(out.get(stage, 0), int(m.group("after")))
    return out


def measure(n: int, work: str, settings: list[str], master: str) -> dict:
    src = copy_real_images(os.path.join(work, "images"), n, seed=n)
    out, gc_log = os.path.join(work, "out"), os.path.join(work, "gc.log")
    env = dict(os.environ, PYSPARK_SUBMIT_ARGS=f"--driver-java-options -Xlog:gc:file={gc_log} pyspark-shell")
    started = time.time()
    overrides = [arg for s in [f"spark.master={master}", *settings] for arg in ("--set", s)]
    popen = psutil.Popen([SPARKDUP, "run", src, "--output", out, *overrides],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    sampler = DriverSampler(popen)
    sampler.start()
    stage_starts: list[tuple[float, str]] = []
    tail: list[str] = []
    for line in popen.stdout:
        m = STAGE_LINE.search(line) if "sparkdup INFO stage" in line else None
        if m and m.group("stage") in STAGES:
            sampler.stage = m.group("stage")
            stage_starts.append((time.time(), sampler.stage))
        tail = (tail + [line])[-40:]
    rc = popen.wait()
    sampler.stop()
    if rc != 0:
        sys.exit("".join(tail))
    mb = lambda d: {k: round(v / 2 ** 20) for k, v in d.items()}  # noqa: E731
    return {"n": n, "seconds": time.time() - started, "python": mb(sampler.python), "jvm": mb(sampler.jvm),
            "heap": heap_after_gc(gc_log, sampler.jvm_started, stage_starts)}


def write_synthetic(out: str, n: int, dim: int, seed: int = 0, chunk: int = 20000) -> None:
    """`images` and `embeddings` Parquet tables of n synthetic images, written in chunks."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(8, n // 500), dim)).astype(np.float32)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    os.makedirs(os.path.join(out, "embeddings"), exist_ok=True)
    for part, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        ids = np.arange(start, start + m, dtype=np.int64) * 2654435761 % (2 ** 61)
        x = centres[rng.integers(len(centres), size=m)] + rng.normal(size=(m, dim)).astype(np.float32)
        copies = rng.random(m) < 0.01  # near-copies of the previous row (slightly perturbed)
        copies[0] = False
        x[copies] = x[np.flatnonzero(copies) - 1] + 0.01 * rng.normal(size=(int(copies.sum()), dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        sig = rng.integers(0, 256, size=(m, SIGNATURE_BYTES), dtype=np.uint8)
        sig[copies] = sig[np.flatnonzero(copies) - 1]
        images = pa.table({
            "image_id": ids, "path": [f"file:/synthetic/{i:09d}.png" for i in range(start, start + m)],
            "label": [f"c{int(c)}" for c in rng.integers(10, size=m)],
            "split": np.where(rng.random(m) < 0.8, "train", "val").tolist(),
            "size_bytes": rng.integers(10_000, 200_000, size=m), "content_hash": [f"{int(i):016x}" for i in ids],
            "modified_at": pa.array(np.full(m, np.datetime64("2026-01-01T00:00:00", "us"))),
            "format": ["PNG"] * m, "width": np.full(m, 256, np.int32), "height": np.full(m, 256, np.int32),
            "mode": ["RGB"] * m, "frames": np.ones(m, np.int32),
            "status": ["ok"] * m, "error": pa.nulls(m, pa.string()),
            # pixel statistics (the outlier score's pixel evidence reads them): typical values
            "brightness": rng.normal(120, 20, m), "contrast": rng.normal(55, 10, m),
            "blur": rng.lognormal(6, 1, m), "entropy": rng.normal(7, 0.4, m),
            "is_grayscale": rng.random(m) < 0.02, "luma_p01": rng.uniform(0, 20, m),
            "luma_p99": rng.uniform(230, 255, m),
            "signature": [bytes(r) for r in sig], "flags": pa.array([[] for _ in range(m)], pa.list_(pa.string())),
            "ingested_at": pa.array(np.full(m, np.datetime64("2026-01-01T00:00:00", "us"))),
            "run_id": ["synthetic"] * m})
        emb = pa.table({"image_id": ids, "embedding": pa.array(list(x), pa.list_(pa.float32())),
                        "model": ["synthetic"] * m, "dim": np.full(m, dim, np.int32), "run_id": ["synthetic"] * m})
        # Row groups the size Spark writes (parquet.block.size, 128 MiB): pyarrow's default
        # would make each 20,000-row file one 245 MB signature column chunk, which no
        # sparkdup-written table has.
        pq.write_table(images, os.path.join(out, "images", f"part-{part:05d}.parquet"),
                       row_group_size=max(1, 128 * 2 ** 20 // (SIGNATURE_BYTES + 200)))
        pq.write_table(emb, os.path.join(out, "embeddings", f"part-{part:05d}.parquet"))


def synthetic_tables(out: str, n: int, dim: int) -> None:
    """The synthetic input tables in `out`: written once (a marker file says they are
    complete), reused by a later run with the same --work folder; the tables the measured
    stages write there are removed first, so every run starts from the same input."""
    marker = os.path.join(out, f"_synthetic_{n}x{dim}")
    if os.path.exists(marker):
        for name in os.listdir(out):
            if name not in ("images", "embeddings") and not name.startswith("_synthetic_"):
                shutil.rmtree(os.path.join(out, name), ignore_errors=True)
        print(f"synthetic tables of {n} x {dim} reused from {out}", flush=True)
        return
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.time()
    write_synthetic(out, n, dim)
    open(marker, "w").close()
    print(f"synthetic tables of {n} x {dim} written in {time.time() - t0:.0f} s", flush=True)


def spark_phases(event_dir: str) -> list[dict]:
    """Spark's own account of a measured process, from its event log (readable while the
    application runs: Spark flushes it at every job and stage boundary). One entry per job
    description (the neighbors and analyze jobs name their phases), in order of first
    appearance: wall from the first stage submitted to the last completed, stages, tasks,
    summed task time, the JVM CPU of the tasks (Python workers' CPU is not in it) and
    shuffle bytes written. Stages still running are counted as submitted, without time."""
    import glob
    import json

    logs = sorted(glob.glob(os.path.join(event_dir, "*")))
    if not logs:
        return []
    files = [logs[-1]]
    if os.path.isdir(logs[-1]):  # a rolling event log (Spark 4's default): events_<n>_<app> files
        files = sorted(glob.glob(os.path.join(logs[-1], "events_*")),
                       key=lambda f: int(re.search(r"events_(\d+)_", os.path.basename(f)).group(1)))
    phase_of_stage: dict[int, str] = {}
    phases: dict[str, dict] = {}
    for line in (line for f in files for line in open(f, errors="replace")):
        try:
            e = json.loads(line)
        except ValueError:
            continue  # a line being written
        kind = e.get("Event")
        if kind == "SparkListenerJobStart":
            props = e.get("Properties") or {}
            first = (e.get("Stage Infos") or [{}])[0]
            name = props.get("spark.job.description") or first.get("Stage Name") or "?"
            for sid in e.get("Stage IDs", []):
                phase_of_stage.setdefault(sid, name)
            phases.setdefault(name, {"phase": name, "stages": 0, "tasks": 0, "task_s": 0.0, "jvm_cpu_s": 0.0,
                                     "shuffle_write_mb": 0.0, "first": None, "last": None, "running": 0})
        elif kind in ("SparkListenerStageSubmitted", "SparkListenerStageCompleted"):
            info = e["Stage Info"]
            ph = phases.get(phase_of_stage.get(info["Stage ID"], "?"))
            if ph is None:
                continue
            if kind == "SparkListenerStageSubmitted":
                ph["running"] += 1
                t = info.get("Submission Time")
                ph["first"] = t if ph["first"] is None or (t and t < ph["first"]) else ph["first"]
                continue
            ph["running"] -= 1
            ph["stages"] += 1
            ph["tasks"] += info.get("Number of Tasks", 0)
            acc = {a.get("Name"): a.get("Value") for a in info.get("Accumulables", [])}
            ph["task_s"] += float(acc.get("internal.metrics.executorRunTime", 0) or 0) / 1e3
            ph["jvm_cpu_s"] += float(acc.get("internal.metrics.executorCpuTime", 0) or 0) / 1e9
            ph["shuffle_write_mb"] += float(acc.get("internal.metrics.shuffle.write.bytesWritten", 0) or 0) / 2**20
            ph["last"] = max(ph["last"] or 0, info.get("Completion Time") or 0)
    out = []
    for ph in phases.values():
        if not ph["stages"] and not ph["running"]:
            continue
        wall = (ph["last"] - ph["first"]) / 1e3 if ph["first"] and ph["last"] else None
        out.append({"phase": ph["phase"], "wall_s": None if wall is None else round(wall, 1),
                    "start": (ph["first"] or 0) / 1e3, "end": (ph["last"] or 0) / 1e3 or None,
                    "stages": ph["stages"], "running": ph["running"], "tasks": ph["tasks"],
                    "task_s": round(ph["task_s"], 1), "jvm_cpu_s": round(ph["jvm_cpu_s"], 1),
                    "shuffle_write_mb": round(ph["shuffle_write_mb"])})
    return out


def with_cpu(phases: list[dict], sampler: DriverSampler) -> list[dict]:
    """Each phase with the processes' CPU seconds between its first stage's submission and
    its last stage's completion (the stages jobs run one after another, so this is the
    phase's CPU: JVM, driver Python and Python workers)."""
    return [{**p, "cpu": sampler.cpu_between(p["start"], p["end"] or time.time())} for p in phases]


def phase_table(phases: list[dict]) -> str:
    rows = ["| phase (Spark job description) | wall s | stages | tasks | task s | CPU s: JVM | Python workers | "
            "driver Python | shuffle written MB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in phases:
        wall = "" if p["wall_s"] is None else p["wall_s"]
        stages = f"{p['stages']} (+{p['running']} running)" if p["running"] else str(p["stages"])
        cpu = p.get("cpu", {})
        rows.append(f"| {p['phase']} | {wall} | {stages} | {p['tasks']} | {p['task_s']} | {cpu.get('jvm', '')} | "
                    f"{cpu.get('python_worker', '')} | {cpu.get('driver_python', '')} | {p['shuffle_write_mb']} |")
    return "\n".join(rows)


class Progress(threading.Thread):
    """Every PROGRESS_EVERY_S, one line with the figures so far (elapsed, peaks, live heap,
    CPU per process kind, Spark phases done): what a run that cannot finish has measured."""

    def __init__(self, path: str, sampler: DriverSampler, gc_log: str, events: str, started: float, stage: str):
        super().__init__(daemon=True)
        self.path, self.sampler, self.gc_log, self.events = path, sampler, gc_log, events
        self.started, self.stage = started, stage
        self._stop_event = threading.Event()
        open(path, "w").close()

    def line(self) -> str:
        import json

        s = self.sampler
        heap = heap_after_gc(self.gc_log, s.jvm_started, [(self.started, self.stage)]).get(self.stage)
        return json.dumps({"at": time.strftime("%H:%M:%S", time.gmtime()),
                           "elapsed_s": round(time.time() - self.started),
                           "python_peak_mb": round(s.python.get(self.stage, 0) / 2**20),
                           "jvm_peak_mb": round(s.jvm.get(self.stage, 0) / 2**20), "live_heap_peak_mb": heap,
                           "cpu_s": s.cpu_seconds(), "load": [round(x, 1) for x in os.getloadavg()],
                           "phases": with_cpu(spark_phases(self.events), s)})

    def write(self) -> None:
        try:
            text = self.line()
        except Exception as exc:  # (best effort: the measurement goes on)
            text = f"progress line failed: {exc!r}"
        with open(self.path, "a") as f:
            f.write(text + "\n")

    def run(self) -> None:
        while not self._stop_event.wait(PROGRESS_EVERY_S):
            self.write()

    def stop(self) -> None:
        self._stop_event.set()
        self.write()


def measure_synthetic(n: int, dim: int, work: str, settings: list[str], master: str,
                      stages=("neighbors", "analyze")) -> dict:
    out = os.path.join(work, "out")
    synthetic_tables(out, n, dim)
    result = {"n": n, "python": {}, "jvm": {}, "heap": {}, "seconds": 0.0, "stage_seconds": {}}
    for stage in stages:
        gc_log = os.path.join(work, f"gc-{stage}.log")
        crash_dir = os.path.join(tempfile.gettempdir(), f"bench_driver_memory-{n}-{stage}-crash")  # outlives `work`
        shutil.rmtree(crash_dir, ignore_errors=True)
        os.makedirs(crash_dir)
        events = os.path.join(tempfile.gettempdir(), f"bench_driver_memory-{n}-{stage}-events")  # outlives `work`
        shutil.rmtree(events, ignore_errors=True)
        os.makedirs(events)
        submit = (f"--driver-java-options '{jvm_options(gc_log, crash_dir)}' --conf spark.eventLog.enabled=true "
                  f"--conf spark.eventLog.compress=false --conf spark.eventLog.dir=file:{events} pyspark-shell")
        env = dict(os.environ, PYSPARK_SUBMIT_ARGS=submit)
        overrides = [arg for s in [f"spark.master={master}", "spark.driver_memory=1g", *settings]
                     for arg in ("--set", s)]
        started = time.time()
        popen = psutil.Popen([SPARKDUP, stage, "--output", out, "--format", "parquet", *overrides],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        sampler = DriverSampler(popen)
        sampler.stage = stage
        sampler.start()
        kept = os.path.join(tempfile.gettempdir(), f"bench_driver_memory-{n}-{stage}.log")  # outlives `work`
        progress = Progress(kept.replace(".log", ".progress"), sampler, gc_log, events, started, stage)
        progress.start()
        with open(kept, "w") as log_file:
            for line in popen.stdout:
                log_file.write(line)
                log_file.flush()
        rc = popen.wait()
        sampler.stop()
        progress.stop()
        result.setdefault("cpu", {})[stage] = sampler.cpu_seconds()
        result.setdefault("phases", {})[stage] = with_cpu(spark_phases(events), sampler)
        if rc != 0:
            sys.exit(f"sparkdup {stage} failed (exit {rc}); its whole log: {kept}\n"
                     + diagnose(kept, crash_dir, sampler, started))
        took = time.time() - started
        result["seconds"] += took
        result["stage_seconds"][stage] = round(took)
        result["python"][stage] = round(sampler.python.get(stage, 0) / 2 ** 20)
        result["jvm"][stage] = round(sampler.jvm.get(stage, 0) / 2 ** 20)
        result.setdefault("available", {})[stage] = round((sampler.min_available or 0) / 2 ** 30, 1)
        heap = heap_after_gc(gc_log, sampler.jvm_started, [(started, stage)])
        if stage in heap:
            result["heap"][stage] = heap[stage]
        print(f"{stage}: {result}", flush=True)  # kept even when a later stage fails
    return result


def report_synthetic(results: list[dict], settings: list[str], dim: int, section: str) -> str:
    rows, phases = [], []
    for r in results:
        for stage in ("neighbors", "analyze"):
            if stage not in r["stage_seconds"]:
                continue
            cpu = r.get("cpu", {}).get(stage, {})
            rows.append(f"| {r['n']:,} | {stage} | {r['python'].get(stage, '')} | {r['jvm'].get(stage, '')} | "
                        f"{r['heap'].get(stage, '?')} | {r['stage_seconds'].get(stage, '')} | "
                        f"{cpu.get('driver_python', '')} | {cpu.get('jvm', '')} | {cpu.get('python_worker', '')} | "
                        f"{r.get('available', {}).get(stage, '')} |")
            if r.get("phases", {}).get(stage):
                phases.append(f"{r['n']:,} images, `sparkdup {stage}`:\n\n" + phase_table(r["phases"][stage]))
    sizes = " ".join(str(r["n"]) for r in results)
    extra = "".join(f" --set {s}" for s in settings) + (f" --section {section}" if section != SECTION else "")
    return (f"### Driver memory by input size (synthetic {dim}-d embeddings: `sparkdup neighbors` + `sparkdup analyze`)\n\n"
            f"Command: `nice python benchmarks/bench_driver_memory.py --synthetic {sizes} --dim {dim}{extra} --write` "
            f"(local[2], spark.driver.memory=1g, Parquet; machine: {machine()})\n\n"
            "| images | stage | driver Python peak RSS MB | driver JVM peak RSS MB | JVM live heap, peak MB | seconds "
            "| CPU s: driver Python | JVM | Python workers | machine memory available, lowest GiB |\n"
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n" + "\n".join(rows)
            + "".join(f"\n\n{p}" for p in phases))


def report(results: list[dict], settings: list[str], section: str, cluster: bool) -> str:
    rows = []
    for r in results:
        rows.append(f"| {r['n']} | {max(r['python'].values())} | {max(r['jvm'].values())} | "
                    f"{max(r['heap'].values()) if r['heap'] else '?'} | {r['seconds']:.0f} |")
    stage_rows = []
    for r in results:
        py = " | ".join(str(r["python"].get(s, "")) for s in STAGES)
        heap = " | ".join(str(r["heap"].get(s, "")) for s in STAGES)
        stage_rows.append(f"| {r['n']} | Python RSS | {py} |")
        stage_rows.append(f"| {r['n']} | JVM live heap | {heap} |")
    sizes = " ".join(str(r["n"]) for r in results)
    extra = (" --cluster" if cluster else "") + "".join(f" --set {s}" for s in settings) \
        + (f" --section {section}" if section != SECTION else "")
    where = "standalone cluster of 2 workers x 1 core on this machine, client-mode driver" if cluster else "local[2]"
    title = "settings " + ", ".join(f"`{s}`" for s in settings) if settings else "default settings"
    title += ", standalone cluster" if cluster else ", local mode"
    return (f"### Driver memory by input size (`sparkdup run`, {title})\n\n"
            f"Command: `python benchmarks/bench_driver_memory.py --images {sizes}{extra} --write` "
            f"({where}, openclipart PNGs; machine: {machine()})\n\n"
            "| images | driver Python peak RSS MB | driver JVM peak RSS MB | JVM live heap, peak MB | seconds |\n"
            "|---|---|---|---|---|\n" + "\n".join(rows) + "\n\n"
            "Peaks per stage (MB):\n\n"
            "| images | measure | " + " | ".join(STAGES) + " |\n|---|---|" + "---|" * len(STAGES) + "\n"
            + "\n".join(stage_rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, nargs="+", default=[2000, 8000])
    ap.add_argument("--synthetic", type=int, nargs="+", help="synthetic embeddings instead of images")
    ap.add_argument("--dim", type=int, default=1280, help="dimension of the synthetic embeddings")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="sparkdup setting")
    ap.add_argument("--section", default=SECTION, help="BENCHMARKS.md section to write")
    ap.add_argument("--cluster", action="store_true", help="run on a standalone cluster started here")
    ap.add_argument("--stages", default="neighbors,analyze", help="synthetic: the stages to measure, in order")
    ap.add_argument("--work", help="synthetic: keep the input tables in this folder and reuse them (default: a "
                                   "temporary folder, removed)")
    ap.add_argument("--data-only", action="store_true", help="synthetic: write the input tables to --work and stop")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    results = []
    if args.synthetic:
        if args.data_only:
            if not args.work:
                sys.exit("--data-only needs --work")
            for n in args.synthetic:
                synthetic_tables(os.path.join(args.work, str(n), "out"), n, args.dim)
            return
        with (contextlib.nullcontext(args.work) if args.work else tempfile.TemporaryDirectory(prefix="bench_driver_")
              ) as root:
            for n in args.synthetic:
                results.append(measure_synthetic(n, args.dim, os.path.join(root, str(n)), args.set, "local[2]",
                                                 args.stages.split(",")))
                print(results[-1], flush=True)
        body = report_synthetic(results, args.set, args.dim, args.section + "-synthetic")
        print(body)
        if args.write:
            update_benchmarks_md(args.section + "-synthetic", body)
        return
    with tempfile.TemporaryDirectory(prefix="bench_driver_") as root:
        cluster = None
        if args.cluster:
            sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
            from standalone import StandaloneCluster

            cluster = StandaloneCluster(os.path.join(root, "spark"), workers=2, cores=1, memory="3g",
                                        python=sys.executable).start()
        try:
            for n in args.images:
                work = os.path.join(root, str(n))
                results.append(measure(n, work, args.set, cluster.url if cluster else "local[2]"))
                print(results[-1], flush=True)
        finally:
            if cluster:
                cluster.stop()
    body = report(results, args.set, args.section, args.cluster)
    print(body)
    if args.write:
        update_benchmarks_md(args.section, body)


if __name__ == "__main__":
    main()
