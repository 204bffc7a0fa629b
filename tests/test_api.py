"""The notebook API: the same jobs as the CLI, in-process, on the session the caller made."""
from __future__ import annotations

import pytest

import sparkdup
from conftest import OPENCLIPART, real_pngs
from sparkdup.errors import ConfigError


def test_ingest_in_process_on_the_callers_session(spark, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for i, path in enumerate(real_pngs(OPENCLIPART, 4, seed=31)):
        (src / f"img{i}.png").write_bytes(open(path, "rb").read())
    (src / "broken.png").write_bytes(b"not an image")
    result = sparkdup.ingest(str(src), str(tmp_path / "out"), spark=spark,
                             settings={"output.format": "parquet", "ingest.flags.tiny_min_side": 8})
    assert result.spark is spark  # the caller's session, not a new one
    assert result.counts["images"] == 5 and result.counts["status_ok"] == 4
    statuses = {r.status for r in result.images.collect()}
    assert statuses == {"ok", "unsupported"}
    runs = result.runs.collect()
    assert [(r.run_id, r.stage) for r in runs] == [(result.run_id, "ingest")]
    assert '"tiny_min_side": 8' in runs[0].settings  # the settings it ran with are recorded


def test_the_pipeline_result_holds_every_table(pipeline_run, spark):
    out, _, counts = pipeline_run  # made by sparkdup.run (tests/conftest.py)
    result = sparkdup.api.Result(out, "test-run", counts, spark)
    assert result.duplicate_groups.count() == counts["duplicates_to_remove"] + counts["duplicate_groups"]
    assert {r.stage for r in result.runs.collect()} >= {"ingest", "embed", "neighbors", "analyze", "report"}


def test_settings_are_checked_before_any_work(spark, tmp_path):
    with pytest.raises(ConfigError, match="neighbors.k"):
        sparkdup.run(str(tmp_path), str(tmp_path / "out"), spark=spark, settings={"neighbors.k": 0})
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="output is required"):
        sparkdup.run(str(tmp_path), None, spark=spark)
