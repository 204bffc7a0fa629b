"""The whole pipeline on a generated messy dataset, scored against its ground truth.

The floors are the product's promise on a small set; BENCHMARKS.md has larger sets.
"""
from __future__ import annotations

import argparse
import os

import pytest

from sparkdup.config import load_config
from sparkdup.groundtruth.generate import generate
from sparkdup.groundtruth.score import load_tables, score
from sparkdup.jobs import run as pipeline
from sparkdup.tables import read_table


@pytest.fixture(scope="module")
def scored(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    # 5 classes of 20: enough members per class for neighbour votes to mean something
    truth = generate(str(root / "data"), n_originals=100, seed=1,
                     classes=["fruit", "devices", "road_signs", "playing_cards", "animals"])
    out = str(root / "out")
    cfg = load_config(overrides=["ingest.layout=split/label"])
    args = argparse.Namespace(input=str(root / "data" / "images"), manifest=None, layout="split/label",
                              output=out, model=None, batch_size=None, backend=None, k=None,
                              duplicate_similarity=None)
    counts = pipeline.run(spark, cfg, args, "test-run")
    return score(truth, load_tables(out)), counts, out, truth


def test_exact_duplicates_are_all_found(scored):
    m = scored[0]["exact_duplicates"]
    assert m["precision"] == 1.0 and m["recall"] == 1.0, m


def test_near_duplicates(scored):
    m = scored[0]["near_duplicates"]
    assert m["precision"] >= 0.95 and m["recall"] >= 0.90, m


def test_leaks(scored):
    m = scored[0]["leaks"]
    assert m["recall"] >= 0.95, m


def test_broken_files(scored):
    m = scored[0]["broken"]
    assert m["precision"] == 1.0 and m["recall"] == 1.0, m


def test_outliers(scored):
    m = scored[0]["outliers"]
    assert m["precision_at_n"] >= 0.8, m


def test_flipped_labels(scored):
    m = scored[0]["flipped_labels"]
    assert m["precision_at_n"] >= 0.6, m


def test_every_input_is_accounted_for(spark, scored):
    _, counts, out, truth = scored
    images = read_table(spark, out, "images")
    assert images.count() == len(truth) == counts["images"]
    runs = read_table(spark, out, "runs").where("run_id = 'test-run'").toPandas()
    assert sorted(runs["stage"]) == ["analyze", "embed", "ingest", "neighbors"]
    assert runs.set_index("stage").loc["ingest", "counts"]["images"] == len(truth)
    groups = read_table(spark, out, "duplicate_groups").toPandas()
    assert (groups.groupby("group_id")["is_representative"].sum() == 1).all()
    assert groups["group_size"].max() <= 10, "a giant group means unrelated images were chained"
