"""Helpers shared by the benchmark scripts: memory sampling, sample data, BENCHMARKS.md."""
from __future__ import annotations

import glob
import os
import platform
import random
import re
import shutil
import threading
import time

import psutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BackgroundSampler:
    """A daemon thread that runs `_run` (a loop that checks `_stop`) while the `with`
    block runs; subclasses say what they sample."""

    def __init__(self, interval: float):
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


class PeakRSS(BackgroundSampler):
    """Samples, every `interval` s, the RSS of this process, the Spark JVM and every Python
    worker under it; keeps the peak of each (bytes), and the CPU seconds each kind of
    process spent while sampled (where a stage's time goes: JVM or Python workers)."""

    def __init__(self, interval: float = 0.2):
        super().__init__(interval)
        self.driver_python = 0
        self.driver_jvm = 0
        self.python_worker = 0
        self._cpu_start: dict = {}  # pid -> (kind, cpu seconds when first seen)
        self._cpu_last: dict = {}  # pid -> cpu seconds at the last sample

    def _cpu(self, kind: str, proc: psutil.Process) -> None:
        t = proc.cpu_times()
        used = t.user + t.system
        self._cpu_start.setdefault(proc.pid, (kind, used))
        self._cpu_last[proc.pid] = used

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.driver_python = max(self.driver_python, me.memory_info().rss)
            self._cpu("driver_python", me)
            for child in me.children(recursive=True):
                try:  # workers come and go: one vanishing must not end this sample
                    name = " ".join(child.cmdline()[:3])
                    rss = child.memory_info().rss
                    if "java" in name:
                        self.driver_jvm = max(self.driver_jvm, rss)
                        self._cpu("jvm", child)
                    elif "pyspark" in name or "python" in name:
                        self.python_worker = max(self.python_worker, rss)
                        self._cpu("python_worker", child)
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
            time.sleep(self.interval)

    def cpu_seconds(self) -> dict:
        """CPU seconds used while sampled, per kind: driver_python, jvm, python_worker."""
        out = {"driver_python": 0.0, "jvm": 0.0, "python_worker": 0.0}
        for pid, (kind, first) in self._cpu_start.items():
            out[kind] += self._cpu_last[pid] - first
        return {k: round(v, 1) for k, v in out.items()}

    def as_mb(self) -> dict:
        return {k: round(getattr(self, k) / 2**20) for k in ("driver_python", "driver_jvm", "python_worker")}


def copy_real_images(dest: str, n: int, root: str = "/usr/share/openclipart/png", seed: int = 0) -> str:
    """Copy a deterministic sample of n real PNGs into dest (flat folder)."""
    files = sorted(glob.glob(os.path.join(root, "**", "*.png"), recursive=True))
    sample = random.Random(seed).sample(files, min(n, len(files)))
    os.makedirs(dest, exist_ok=True)
    for i, src in enumerate(sample):
        shutil.copy(src, os.path.join(dest, f"{i:06d}.png"))
    return dest


def machine() -> str:
    return f"{os.cpu_count()} cores, {round(psutil.virtual_memory().total / 2**30)} GiB RAM, {platform.processor() or platform.machine()}"


def update_benchmarks_md(section: str, body: str) -> None:
    """Replace the text between <!-- bench:section --> markers in BENCHMARKS.md."""
    path = os.path.join(REPO, "BENCHMARKS.md")
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    begin, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)
