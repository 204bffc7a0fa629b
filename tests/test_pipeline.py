"""The whole pipeline on a generated messy dataset, scored against its ground truth.

The floors are the product's promise on a small set; BENCHMARKS.md has larger sets.
"""
from __future__ import annotations

import pytest

from tools.groundtruth.score import load_tables, score
from sparkdup.tables import read_table


@pytest.fixture(scope="module")
def scored(pipeline_run):
    out, truth, counts = pipeline_run
    return score(truth, load_tables(out)), counts, out, truth


def test_exact_duplicates_are_all_found(scored):
    m = scored[0]["exact_duplicates"]
    assert m["precision"] == 1.0 and m["recall"] == 1.0, m


def test_near_duplicates(scored):
    # Measured on this set (hard look-alikes, crops and redrawn icon sizes): precision 1.000,
    # recall 0.761 (a whole run; the rule before the overlay/colour bounds: 1.000 / 0.777).
    # Precision is the promise (a group is what users delete); recall below the issue-13
    # target of 0.92 is a known gap (BENCHMARKS.md, duplicate verification).
    m = scored[0]["near_duplicates"]
    assert m["precision"] >= 0.97 and m["recall"] >= 0.75, m


def test_leaks(scored):
    # Measured on this set: precision 1.0, recall 0.72 (leaks follow the duplicate groups).
    m = scored[0]["leaks"]
    assert m["precision"] >= 0.95 and m["recall"] >= 0.70, m


def test_broken_files(scored):
    m = scored[0]["broken"]
    assert m["precision"] == 1.0 and m["recall"] == 1.0, m


def test_outliers(scored):
    m = scored[0]["outliers"]
    # measured: 15 and 16 of 19 in the top N in two runs (average precision 0.92 / 0.90),
    # every blank and noise image among them; 0.90 on the 1,146-file set (BENCHMARKS.md,
    # issue 14)
    assert m["precision_at_n"] >= 0.75 and m["all_blank_noise_in_top_n"], m


def test_flipped_labels(scored):
    m = scored[0]["flipped_labels"]
    # measured with confident learning on this set: 2 of its 5 flips (3 into sibling
    # classes) in the top 5, also with the class-balanced model (0.4, the floor; suggested
    # label right for both; BENCHMARKS.md, issue 14)
    assert m["precision_at_n"] >= 0.4, m


def test_every_input_is_accounted_for(spark, scored):
    _, counts, out, truth = scored
    images = read_table(spark, out, "images")
    assert images.count() == len(truth) == counts["images"]
    runs = read_table(spark, out, "runs").where("run_id = 'test-run'").toPandas()
    assert sorted(runs["stage"]) == ["analyze", "embed", "ingest", "neighbors", "report"]
    assert runs.set_index("stage").loc["ingest", "counts"]["images"] == len(truth)
    groups = read_table(spark, out, "duplicate_groups").toPandas()
    assert (groups.groupby("group_id")["is_representative"].sum() == 1).all()
    assert groups["group_size"].max() <= 10, "a giant group means unrelated images were chained"
