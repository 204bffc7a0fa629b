"""Progress of long Spark work, with a rate and an ETA, from Spark's own task counts.

Python UDFs cannot report progress while a task runs (accumulators reach the driver only
when a task ends), so progress is measured in finished tasks: the block's Spark jobs run
in their own job group, and a driver thread polls the status tracker for the biggest stage
of that group. ``done ≈ total × finished tasks / all tasks`` — as fine-grained as the
number of partitions, which the stages size from the input (``spark.images_per_partition``
for embed, ``neighbors.query_rows_per_partition`` for neighbour queries).

Output goes through the ``sparkdup`` logger, so ``--quiet`` hides it and ``--log-format
json`` turns each report into one JSON object with ``done``, ``total``, ``rate`` and
``eta_s`` fields. On a terminal (text mode) the report rewrites one status line instead.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

log = logging.getLogger("sparkdup")

# How often a report is logged when stderr is not a terminal (cluster logs), seconds.
LOG_EVERY_S = 10.0
# How often the status line is redrawn on a terminal, seconds.
REDRAW_EVERY_S = 0.5


@dataclass
class Snapshot:
    """Progress at one moment: ``done`` of ``total`` units after ``elapsed`` seconds."""

    done: float
    total: int
    elapsed: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.rate <= 0 or self.done <= 0:
            return None
        return max(self.total - self.done, 0) / self.rate


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def describe(what: str, snap: Snapshot) -> str:
    """``embedding: 1,200/2,000 images (60%), 54.3 images/s, ETA 0:15``."""
    unit = what.split()[-1] if what else "items"
    share = snap.done / snap.total if snap.total else 1.0
    return (f"{what}: {int(snap.done):,}/{snap.total:,} ({share:.0%}), {snap.rate:.1f} {unit}/s, "
            f"ETA {format_duration(snap.eta_s)}")


def task_fraction(tracker, group: str) -> float:
    """Finished share of the biggest running stage of the group's jobs (0 when none runs).

    Only running stages count: a quick stage that already finished (a broadcast, a
    200-task shuffle) says nothing about the decode stage after it. Among running stages
    the one with the most tasks wins. The caller keeps the maximum seen, so the count never
    goes back when a small stage follows the big one.
    """
    active = set(tracker.getActiveStageIds())
    running = []
    for job_id in tracker.getJobIdsForGroup(group):
        job = tracker.getJobInfo(job_id)
        for stage_id in (job.stageIds if job else []):
            stage = tracker.getStageInfo(stage_id) if stage_id in active else None
            if stage is not None and stage.numTasks > 0:
                running.append(stage)
    if not running:
        return 0.0
    best = max(running, key=lambda s: (s.numTasks, s.stageId))
    return best.numCompletedTasks / best.numTasks


class _Reporter:
    def __init__(self, what: str, total: int, fraction, started: float):
        self.what, self.total, self.fraction, self.started = what, total, fraction, started
        self.on_terminal = sys.stderr.isatty() and not any(
            getattr(h, "json_lines", False) for h in logging.getLogger("sparkdup").handlers)
        self.stop = threading.Event()
        self.drew = False
        self.best = 0.0

    def snapshot(self) -> Snapshot:
        self.best = max(self.best, self.fraction())
        return Snapshot(self.total * self.best, self.total, time.time() - self.started)

    def emit(self, snap: Snapshot) -> None:
        if self.on_terminal:
            sys.stderr.write("\r\033[K" + describe(self.what, snap))
            sys.stderr.flush()
            self.drew = True
        else:
            log.info(describe(self.what, snap),
                     extra={"progress": {"what": self.what, "done": int(snap.done), "total": snap.total,
                                         "rate": round(snap.rate, 2), "eta_s": snap.eta_s}})

    def loop(self) -> None:
        every = REDRAW_EVERY_S if self.on_terminal else LOG_EVERY_S
        while not self.stop.wait(every):
            try:
                self.emit(self.snapshot())
            except Exception as exc:  # e.g. the session is stopping: progress is best effort
                log.warning("progress reports stopped: %s", exc)
                return

    def finish(self) -> None:
        if self.drew:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


@contextmanager
def track(spark, what: str, total: int):
    """Report progress of the Spark jobs started inside the block as ``total`` units of ``what``.

    ``what`` names the work and its unit, e.g. ``"embedding images"``; the last word is the unit.
    Ends with one line giving the count, the time and the rate.
    """
    sc = spark.sparkContext
    group = f"sparkdup-{uuid.uuid4().hex[:8]}"
    sc.setJobGroup(group, what, interruptOnCancel=False)
    started = time.time()
    quiet = not log.isEnabledFor(logging.INFO)
    reporter = _Reporter(what, int(total), lambda: task_fraction(sc.statusTracker(), group), started)
    thread = None
    if not quiet and total > 0:
        thread = threading.Thread(target=reporter.loop, name="sparkdup-progress", daemon=True)
        thread.start()
    try:
        yield
    finally:
        reporter.stop.set()
        if thread is not None:
            thread.join()
        reporter.finish()
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
    done = Snapshot(int(total), int(total), time.time() - started)
    log.info("%s: %s done in %s (%.1f/s)", what, f"{done.total:,}", format_duration(done.elapsed), done.rate,
             extra={"progress": {"what": what, "done": done.total, "total": done.total,
                                 "rate": round(done.rate, 2), "eta_s": 0.0, "seconds": round(done.elapsed, 2)}})
