"""Terminal output: progress with rate and ETA from Spark's task counts, quiet and JSON modes."""
from __future__ import annotations

import argparse
import json
import logging
import time

import pytest

from conftest import OPENCLIPART, real_pngs
from sparkdup import logs, progress
from sparkdup.jobs import ingest
from sparkdup.stage import execute


@pytest.fixture
def restore_logging():
    """stage.execute reconfigures the sparkdup logger; put it back for the other tests."""
    logger = logging.getLogger("sparkdup")
    handlers, level, propagate = list(logger.handlers), logger.level, logger.propagate
    yield
    for h in list(logger.handlers):
        logger.removeHandler(h)
    for h in handlers:
        logger.addHandler(h)
    logger.setLevel(level)
    logger.propagate = propagate
    logs.set_stage(None)


def test_rate_eta_and_wording():
    snap = progress.Snapshot(done=500, total=2000, elapsed=10.0)
    assert snap.rate == 50.0 and snap.eta_s == 30.0
    assert progress.describe("embedding images", snap) == "embedding images: 500/2,000 (25%), 50.0 images/s, ETA 0:30"
    assert progress.Snapshot(0, 10, 5.0).eta_s is None  # nothing done yet: no guess
    assert progress.format_duration(3725) == "1:02:05" and progress.format_duration(None) == "?"


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_progress_follows_finished_tasks(spark, capsys, monkeypatch, restore_logging):
    logs.setup_logging(fmt="json")
    monkeypatch.setattr(progress, "LOG_EVERY_S", 0.3)

    def slow(rows):
        time.sleep(0.4)
        return rows

    with progress.track(spark, "counting rows", 1000):
        spark.sparkContext.parallelize(range(1000), 12).mapPartitions(slow).count()
    reports = [r["progress"] for r in _json_lines(capsys.readouterr().err) if "progress" in r]
    assert reports[-1]["done"] == 1000 and reports[-1]["eta_s"] == 0.0 and reports[-1]["rate"] > 0
    during = [r for r in reports[:-1] if 0 < r["done"] < 1000]
    assert during, reports  # reports while running, between none and all
    assert [r["done"] for r in during] == sorted(r["done"] for r in during)
    assert all(r["total"] == 1000 and r["eta_s"] is not None for r in during)


def _ingest_args(src, out, **extra) -> argparse.Namespace:
    base = dict(input=str(src), manifest=None, layout=None, output=str(out), format="parquet", profile=None,
                conf=[], set=[], run_id=None, database=None, quiet=False, log_format="text")
    return argparse.Namespace(**(base | extra))


@pytest.fixture(scope="module")
def few_images(tmp_path_factory):
    src = tmp_path_factory.mktemp("few")
    for i, path in enumerate(real_pngs(OPENCLIPART, 6, seed=21)):
        (src / f"img{i}.png").write_bytes(open(path, "rb").read())
    return src


def test_json_log_mode_is_one_object_per_line(spark, few_images, tmp_path, capsys, restore_logging):
    assert execute(ingest, _ingest_args(few_images, tmp_path / "out", log_format="json")) == 0
    err = capsys.readouterr().err
    records = _json_lines(err)
    sparkdup_lines = [line for line in err.splitlines() if "sparkdup" in line]
    assert sparkdup_lines and all(line.startswith("{") for line in sparkdup_lines)  # no text lines mixed in
    assert {r["stage"] for r in records} == {"ingest"}
    assert any(r["message"].startswith("listed 6 files") for r in records)
    done = [r["progress"] for r in records if "progress" in r and r["progress"]["what"] == "reading images"]
    assert done and done[-1]["done"] == 6 and done[-1]["total"] == 6


def test_quiet_mode_prints_only_warnings(spark, few_images, tmp_path, capsys, restore_logging):
    assert execute(ingest, _ingest_args(few_images, tmp_path / "out", quiet=True)) == 0
    err = capsys.readouterr().err
    assert "sparkdup INFO" not in err and "listed" not in err
    logging.getLogger("sparkdup").warning("still shown")
    assert "still shown" in capsys.readouterr().err
