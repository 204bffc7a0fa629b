"""Label issues, each rule on a tiny hand-made table: confident learning on given
probabilities, the cross-fitted MLlib model end to end, neighbour votes, mixed duplicate
groups, a label seen once, unlabelled images and a run without labels."""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

from sparkdup.config import load_config
from sparkdup.findings.label_model import class_weights, model_probabilities, principal_axes
from sparkdup.findings.labels import confident_learning, label_issues, label_votes, mixed_label_groups, neighbour_votes
from tests.test_outliers import knn_table, single_partition_plan
from sparkdup.udfs.project import project

GROUPS_SCHEMA = "group_id long, image_id long, path string, label string"


@pytest.fixture(scope="module")
def an():
    return dict(load_config()["analyze"])


def test_confident_learning_thresholds_per_class(spark, an):
    # class 'a' is learnt confidently (threshold 0.775), class 'b' hesitantly (0.5375): an
    # image labelled 'a' with P(b) = 0.6 reaches b's threshold and is an issue; one
    # labelled 'b' with P(a) = P(b) = 0.5 is not (0.5 is below a's threshold, and b is
    # still among its most probable classes).
    rows = [(1, "a", [0.9, 0.1]), (2, "a", [0.9, 0.1]), (3, "a", [0.9, 0.1]), (4, "a", [0.4, 0.6]),
            (5, "b", [0.45, 0.55]), (6, "b", [0.45, 0.55]), (7, "b", [0.45, 0.55]), (8, "b", [0.5, 0.5])]
    probs = spark.createDataFrame(rows, "image_id long, label string, probs array<double>")
    out = confident_learning(probs.withColumn("mixed", probs["probs"]), ["a", "b"],
                             {**an, "label_rank_by": "self_confidence"}).toPandas().set_index("image_id")
    assert list(out.index[out.cl_issue]) == [4]
    assert out.loc[4, "model_idx"] == 1 and out.loc[4, "p_given"] == pytest.approx(0.4)
    assert out.loc[4, "label_quality"] == pytest.approx(0.4)  # self-confidence
    margin = confident_learning(probs.withColumn("mixed", probs["probs"]), ["a", "b"],
                                {**an, "label_rank_by": "normalized_margin"}).toPandas().set_index("image_id")
    assert margin.loc[4, "label_quality"] == pytest.approx((0.4 - 0.6 + 1) / 2)


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    """Three classes of 25 images (16-d clusters), two flipped labels, one image whose
    label appears once, three unlabelled images, a duplicate pair with two labels."""
    spark.sparkContext.setCheckpointDir(str(tmp_path_factory.mktemp("ckpt")))
    rng = np.random.default_rng(7)
    names = ["apple", "boat", "chair"]
    vecs, labels, truth = [], [], []
    for c, name in enumerate(names):
        for _ in range(25):
            vecs.append(np.eye(16)[c] * 3 + rng.normal(0, 0.35, 16))
            labels.append(name)
            truth.append(name)
    labels[3], labels[30] = "boat", "chair"  # flipped: an apple called boat, a boat called chair
    labels[60] = "chiar"  # a typo: a label seen once
    for c in range(3):
        vecs.append(np.eye(16)[c] * 3 + rng.normal(0, 0.35, 16))
        labels.append(None)
        truth.append(names[c])
    vecs = np.abs(np.array(vecs))
    ids = np.arange(1, len(vecs) + 1) * 104729
    images = spark.createDataFrame(pd.DataFrame({"image_id": ids, "path": [f"file:/d/{i}.png" for i in ids],
                                                 "label": labels, "status": "ok"}))
    emb = spark.createDataFrame(pd.DataFrame({"image_id": ids, "embedding": [list(map(float, v / np.linalg.norm(v)))
                                                                              for v in vecs]}),
                                "image_id long, embedding array<float>")
    neighbors = spark.createDataFrame(knn_table(ids, vecs, 10))
    # a duplicate group of three apples, one of them labelled boat... by a second mistake
    groups = spark.createDataFrame([(int(ids[10]), int(ids[i]), f"file:/d/{ids[i]}.png", lab)
                                    for i, lab in ((10, "apple"), (11, "apple"), (12, "boat"))], GROUPS_SCHEMA)
    return images, emb, neighbors, groups, ids, labels, truth


def test_label_issues_end_to_end(world, an):
    images, emb, neighbors, groups, ids, labels, truth = world
    # the duplicate group's odd member carries its label in `images` too
    images = images.withColumn("label", F.when(images.image_id == int(ids[12]), "boat").otherwise(images.label))
    res = label_issues(images, neighbors, emb, groups, an)
    assert not single_partition_plan(res)
    df = res.toPandas().sort_values("rank").set_index("image_id")
    assert list(df["rank"]) == list(range(1, len(df) + 1))
    flipped = [int(ids[3]), int(ids[30]), int(ids[12])]
    assert set(df.index[:3]) == set(flipped), df.head(6)
    for i in flipped:
        row = df.loc[i]
        assert row.suggested_label == truth[list(ids).index(i)]
        assert "confident_learning" in row.issues and "neighbor_vote" in row.issues
        assert row.p_given < row.p_suggested and 0 <= row.label_quality <= 1
        assert len(row.voters) > 0 and row.reason.startswith("classifier:")
    assert "mixed_duplicate_group" in df.loc[int(ids[12]), "issues"] and df.loc[int(ids[12]), "group_id"] == ids[10]
    typo = df.loc[int(ids[60])]
    assert "rare_label" in typo.issues and typo.suggested_label == "chair" and "fewer than 2 images" in typo.reason
    assert not set(df.index) & {int(i) for i in ids[75:]}  # unlabelled: skipped


def test_no_labels_skips_the_model_with_one_log_line(world, an, caplog):
    images, emb, neighbors, groups, *_ = world
    unlabelled = images.withColumn("label", F.lit(None).cast("string"))
    empty = groups.limit(0)
    with caplog.at_level(logging.INFO, logger="sparkdup"):
        res = label_issues(unlabelled, neighbors, emb, empty, an).toPandas()
    assert res.empty and "rank" in res.columns and "label_quality" in res.columns
    assert [r.message for r in caplog.records if "label model skipped" in r.message] == [
        "analyze: label model skipped: no labelled images"]


def test_neighbour_votes(spark, an):
    images = spark.createDataFrame([(1, "x"), (2, "y"), (3, "y"), (4, None)], "image_id long, label string")
    nb = spark.createDataFrame([(1, 2, 1, 0.9, "ann"), (1, 3, 2, 0.8, "ann"), (1, 4, 3, 0.95, "ann"),
                                (2, 3, 1, 0.9, "ann"), (2, 1, 2, 0.3, "ann")],
                               "src long, dst long, rank int, similarity double, source string")
    votes = neighbour_votes(images, nb, an)
    v = votes.toPandas().set_index(["src", "vote"])
    assert v.loc[(1, "y"), "share"] == pytest.approx(1.0) and list(v.loc[(1, "y"), "voters"]) == [2, 3]
    assert (2, "x") not in v.index  # below label_min_similarity
    flagged = label_votes(images, votes, an).toPandas()
    assert list(flagged.image_id) == [1] and flagged.vote_label[0] == "y"


def test_the_nearest_voters_weigh_most(spark, an):
    # one neighbour at 0.9 says p, three at 0.6 say q
    images = spark.createDataFrame([(5, "q"), (6, "p"), (7, "q"), (8, "q"), (9, "q")], "image_id long, label string")
    nb = spark.createDataFrame([(5, 6, 1, 0.9, "ann"), (5, 7, 2, 0.6, "ann"), (5, 8, 3, 0.6, "ann"), (5, 9, 4, 0.6, "ann")],
                               "src long, dst long, rank int, similarity double, source string")

    def share(**kw):
        v = neighbour_votes(images, nb, {**an, **kw}).toPandas().set_index("vote")
        return float(v.loc["p", "share"]), int(v["voters"].map(len).sum())

    assert share(label_vote_k=10, label_vote_power=1.0) == (pytest.approx(0.9 / 2.7), 4)
    assert share(label_vote_k=10, label_vote_power=4.0) == (pytest.approx(0.9 ** 4 / (0.9 ** 4 + 3 * 0.6 ** 4)), 4)
    assert share(label_vote_k=2, label_vote_power=1.0) == (pytest.approx(0.9 / 1.5), 2)  # the two nearest


def test_mixed_label_groups(spark):
    groups = spark.createDataFrame([(1, 1, "p1", "cat"), (1, 2, "p2", "cat"), (1, 3, "p3", "dog"),
                                    (5, 5, "p5", "cat"), (5, 6, "p6", "cat"), (7, 7, "p7", None), (7, 8, "p8", "cat")],
                                   GROUPS_SCHEMA)
    df = mixed_label_groups(groups).toPandas()
    assert list(df.image_id) == [3] and df.group_label[0] == "cat" and df.group_share[0] == pytest.approx(2 / 3)


def test_principal_axes_from_a_sample(spark):
    # 400 points in 6-d spread mostly along u, then along v: the first two axes are ±u, ±v,
    # also when only about a quarter of the rows (picked by hash) estimate them
    rng = np.random.default_rng(3)
    u, v = np.linalg.qr(rng.normal(size=(6, 2)))[0].T
    pts = 2.0 + rng.normal(0, 5, (400, 1)) * u + rng.normal(0, 2, (400, 1)) * v + rng.normal(0, 0.1, (400, 6))
    rows = spark.createDataFrame(pd.DataFrame({"image_id": np.arange(400) * 7919, "embedding": [list(map(float, p)) for p in pts]}),
                                 "image_id long, embedding array<double>")
    for sample in (1000, 100):
        mean, axes = principal_axes(rows, 400, 2, sample, 42)
        assert axes.shape == (6, 2)
        assert abs(axes[:, 0] @ u) > 0.99 and abs(axes[:, 1] @ v) > 0.95
    mean, axes = principal_axes(rows, 400, 2, 1000, 42)
    assert mean == pytest.approx(pts.mean(0))
    assert project(pts[:3], mean, axes) == pytest.approx(((pts[:3] - pts.mean(0)) @ axes).astype(np.float32), abs=1e-4)


def test_class_weights():
    # sizes 100 and 10 (mean 55): unweighted, balanced (each class weighs 55 in total), between
    assert class_weights([100, 10], 0.0) == [1.0, 1.0]
    assert class_weights([100, 10], 1.0) == pytest.approx([0.55, 5.5])
    assert class_weights([100, 10], 0.5) == pytest.approx([0.55 ** 0.5, 5.5 ** 0.5])


def test_class_balance_lifts_a_small_class(spark, an, tmp_path):
    # 80 images of 'big' and 8 of 'small', overlapping clusters on the unit sphere: weighted
    # by class size, the cross-fitted model gives the small class's members a larger
    # probability of their label (measured: 0.506 unweighted, 0.574 balanced)
    spark.sparkContext.setCheckpointDir(str(tmp_path))
    rng = np.random.default_rng(11)
    shift = np.eye(8)[0] * 0.5
    vecs = np.vstack([rng.normal(0, 0.3, (80, 8)) + shift, rng.normal(0, 0.3, (8, 8)) - shift])
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(1, 89) * 7919
    images = spark.createDataFrame(pd.DataFrame({"image_id": ids, "label": ["big"] * 80 + ["small"] * 8}))
    emb = spark.createDataFrame(pd.DataFrame({"image_id": ids, "embedding": [list(map(float, v)) for v in vecs]}),
                                "image_id long, embedding array<float>")
    groups = spark.createDataFrame([], GROUPS_SCHEMA)

    def p_small(balance):
        probs, names, _ = model_probabilities(images, emb, groups, {**an, "label_pca_dim": 0,
                                                                    "label_class_balance": balance})
        df = probs.toPandas()
        return float(np.mean([p[names.index("small")] for p, lab in zip(df.probs, df.label) if lab == "small"]))

    assert p_small(1.0) > p_small(0.0) + 0.05
