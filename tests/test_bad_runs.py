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
