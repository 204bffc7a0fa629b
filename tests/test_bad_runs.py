"""Runs users get wrong: clear errors or an empty-but-valid result, never a half-written table."""
from __future__ import annotations

import argparse
import shutil

import pytest

from conftest import OPENCLIPART, real_pngs
from sparkdup.config import load_config
from sparkdup.errors import ConfigError
from sparkdup.jobs import run as pipeline
from sparkdup.tables import read_table


def _args(input_dir, out, **kw):
    base = dict(input=None if input_dir is None else str(input_dir), manifest=None, layout=None, output=str(out), model=None, batch_size=None,
                backend=None, k=None, duplicate_similarity=None)
    return argparse.Namespace(**(base | kw))


def test_zero_images_give_empty_valid_tables(spark, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.txt").write_text("no images here")
    counts = pipeline.run(spark, load_config(), _args(tmp_path / "in", tmp_path / "out"), "empty-run")
    assert counts["images"] == 0
    for name in ("images", "embeddings", "neighbors", "duplicate_groups", "outliers", "leaks", "label_issues"):
        assert read_table(spark, str(tmp_path / "out"), name).count() == 0, name


def test_output_holding_another_table_is_refused_untouched(spark, tmp_path):
    foreign = tmp_path / "out" / "images"
    spark.createDataFrame([(1, "x")], "id long, owner string").write.format("delta").save(str(foreign))
    (tmp_path / "in").mkdir()
    shutil.copy(real_pngs(OPENCLIPART, 1)[0], tmp_path / "in" / "a.png")
    with pytest.raises(ConfigError, match="not sparkdup's 'images' table"):
        pipeline.run(spark, load_config(), _args(tmp_path / "in", tmp_path / "out"), "r")
    assert spark.read.format("delta").load(str(foreign)).columns == ["id", "owner"]


def test_manifest_without_label_column(spark, tmp_path):
    src = real_pngs(OPENCLIPART, 2, seed=4)
    (tmp_path / "m.csv").write_text("path\n" + "\n".join(src) + "\n")
    out = tmp_path / "out"
    from sparkdup.jobs import ingest
    ingest.run(spark, load_config(), _args(None, out, manifest=str(tmp_path / "m.csv")), "r")
    rows = read_table(spark, str(out), "images").toPandas()
    assert len(rows) == 2 and rows["label"].isna().all() and (rows["status"] == "ok").all()


def test_interrupted_run_leaves_tables_naming_their_run(spark, tmp_path):
    """A run that dies in ingest keeps the previous `images`; provenance names the run and
    stage it came from; leftover checkpoints of dead runs are removed by the next run."""
    import argparse as ap

    from sparkdup.jobs import ingest
    from sparkdup.preflight import release_output
    from sparkdup.runs import provenance
    from sparkdup.stage import run_stage

    (tmp_path / "in").mkdir()
    for i, src in enumerate(real_pngs(OPENCLIPART, 2, seed=21)):
        shutil.copy(src, tmp_path / "in" / f"{i}.png")
    out = tmp_path / "out"
    args = ap.Namespace(input=str(tmp_path / "in"), manifest=None, layout=None, output=str(out), glob=None)
    run_stage(ingest, spark, load_config(), args, "first")
    release_output(str(out))
    (out / "_checkpoints" / "dead-run-uuid").mkdir(parents=True)

    def dies(*_a, **_k):
        raise KeyboardInterrupt  # stands for a run killed while reading images
    original, ingest.write_table = ingest.write_table, dies
    try:
        with pytest.raises(KeyboardInterrupt):
            run_stage(ingest, spark, load_config(), args, "second")
    finally:
        ingest.write_table = original
        release_output(str(out))
    assert not (out / "_checkpoints" / "dead-run-uuid").exists()
    assert set(read_table(spark, str(out), "images").toPandas()["run_id"]) == {"first"}
    (images,) = [p for p in provenance(spark, str(out)) if p["table"] == "images"]
    assert images["run_id"] == "first" and images["stage"] == "ingest" and images["started_at"] is not None
