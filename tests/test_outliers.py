"""Outlier score and distributed ranking, each rule on a tiny hand-made table.

The embedding space: three tight classes of 20 images, a cluster of three near-identical
anomalies far from everything (each other's nearest neighbours: "1 - mean similarity to
the 10 nearest" calls them normal), and two images whose embeddings sit inside a class
but whose pixels are blank or uniform noise.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sparkdup.config import load_config
from sparkdup.findings.outliers import knn_scores, neighbour_distances, neighbour_label_entropy, outliers
from sparkdup.findings.ranking import add_rank

K = 10


def single_partition_plan(df) -> bool:
    """True when the plan moves a whole table into one partition (what an unpartitioned
    window does: Spark's "No Partition Defined for Window operation" warning)."""
    return "SinglePartition" in df._jdf.queryExecution().executedPlan().toString()


def knn_table(ids: np.ndarray, vecs: np.ndarray, k: int) -> pd.DataFrame:
    """Exact k nearest neighbours by cosine, as the neighbors table holds them."""
    v = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    sim = v @ v.T
    np.fill_diagonal(sim, -np.inf)
    rows = []
    for i in range(len(ids)):
        for r, j in enumerate(np.argsort(-sim[i])[:k], 1):
            rows.append((int(ids[i]), int(ids[j]), r, float(sim[i, j]), "exact"))
    return pd.DataFrame(rows, columns=["src", "dst", "rank", "similarity", "source"])


@pytest.fixture(scope="module")
def world(spark, tmp_path_factory):
    spark.sparkContext.setCheckpointDir(str(tmp_path_factory.mktemp("ckpt")))
    rng = np.random.default_rng(3)
    centres = np.eye(16)[:3] * 5 + 1
    vecs, labels, kinds = [], [], []
    for c, name in enumerate(["cats", "cars", "cups"]):
        for _ in range(20):
            vecs.append(centres[c] + rng.normal(0, 0.4, 16))
            labels.append(name)
            kinds.append("normal")
    far = np.eye(16)[10] * 5 + 1
    for _ in range(3):
        vecs.append(far + rng.normal(0, 0.01, 16))
        labels.append("cats")
        kinds.append("anomaly_cluster")
    for kind in ("blank", "noise"):
        vecs.append(centres[1] + rng.normal(0, 0.4, 16))
        labels.append("cars")
        kinds.append(kind)
    vecs = np.abs(np.array(vecs))
    n = len(vecs)
    ids = np.arange(1, n + 1) * 7919
    contrast = np.where(np.array(kinds) == "blank", 0.0, rng.uniform(30, 90, n))
    blur = np.where(np.array(kinds) == "noise", 20.0 * contrast ** 2, contrast ** 2 * rng.uniform(0.05, 0.3, n))
    images = spark.createDataFrame(pd.DataFrame({
        "image_id": ids, "path": [f"file:/d/{i}.png" for i in ids], "label": labels, "split": "train", "status": "ok",
        "contrast": contrast, "entropy": rng.uniform(2, 7, n), "blur": blur,
        "flags": [["low_information"] if k == "blank" else [] for k in kinds]}))
    emb = spark.createDataFrame(pd.DataFrame({"image_id": ids, "embedding": [list(map(float, v / np.linalg.norm(v)))
                                                                              for v in vecs]}),
                                "image_id long, embedding array<float>")
    neighbors = spark.createDataFrame(knn_table(ids, vecs, K))
    return images, emb, neighbors, dict(zip(ids, kinds))


def test_anomaly_cluster_blank_and_noise_rank_first(world):
    images, emb, neighbors, kind = world
    an = load_config()["analyze"]
    res = outliers(images, neighbors, emb, an)
    assert not single_partition_plan(res)
    df = res.toPandas().sort_values("rank")
    top = df.head(5)
    assert sorted(kind[i] for i in top.image_id) == sorted(["anomaly_cluster"] * 3 + ["blank", "noise"]), df.head(8)
    assert list(df["rank"]) == list(range(1, len(df) + 1))
    assert df["percentile"].iloc[0] == 100.0 and df["percentile"].is_monotonic_decreasing
    reason = dict(zip(df.image_id, df.reason))
    assert all(reason[i].startswith("blank") for i in df.image_id if kind[i] == "blank")
    assert all(reason[i].startswith("noise-like") for i in df.image_id if kind[i] == "noise")
    assert df["is_outlier"].sum() == max(1, round(an["outlier_fraction"] * len(df)))
    cluster = df[df.image_id.map(kind) == "anomaly_cluster"]
    normal = df[df.image_id.map(kind) == "normal"]
    # each other's nearest neighbours (a nearest-neighbour score calls them normal); the
    # k-th neighbour lies outside their little group
    assert cluster.nn_similarity.min() > normal.nn_similarity.median()
    assert cluster.knn_distance.min() > normal.knn_distance.max()


def test_lof_is_high_for_an_isolated_point_and_near_one_inside_a_cluster(spark):
    # a line of evenly spaced points (density alike) and one far away
    vecs = np.array([[1.0, 0.02 * i] for i in range(15)] + [[0.2, 1.0]])
    ids = np.arange(1, 17)
    scores = knn_scores(neighbour_distances(spark.createDataFrame(knn_table(ids, vecs, 4)), 4)).toPandas().set_index("image_id")
    assert scores.loc[16, "lof"] > 2.0
    assert scores.loc[list(range(3, 13)), "lof"].between(0.8, 1.3).all()
    assert scores.loc[16, "knn_distance"] > scores.drop(16)["knn_distance"].max()


@pytest.mark.parametrize("rows_per_bucket", [1_000_000, 37])
def test_add_rank_is_exact_without_a_single_partition(spark, rows_per_bucket):
    rng = np.random.default_rng(0)
    pdf = pd.DataFrame({"id": rng.permutation(500).astype("int64"),
                        "s": np.round(rng.normal(size=500), 1)})  # many ties
    df = spark.createDataFrame(pdf).repartition(5)
    ranked = add_rank(df, "s", "id", rows_per_bucket=rows_per_bucket)
    assert not single_partition_plan(ranked)
    got = ranked.toPandas().sort_values("rank")
    want = pdf.sort_values(["s", "id"], ascending=[False, True])
    assert list(got["id"]) == list(want["id"]) and list(got["rank"]) == list(range(1, 501))
    asc = add_rank(df, "s", "id", descending=False, rows_per_bucket=rows_per_bucket).toPandas().sort_values("rank")
    assert list(asc["id"]) == list(pdf.sort_values(["s", "id"])["id"])
    assert asc["percentile"].iloc[0] == 100.0 and asc["percentile"].iloc[-1] == pytest.approx(100 / 500)


def test_label_entropy_of_the_neighbours(spark):
    # image 1: four neighbours of one label; 2: four labels; 3: two and two; 4: one labelled
    # neighbour among unlabelled ones (they do not count); 5: no labelled neighbour
    labels = {10: "a", 11: "a", 12: "a", 13: "a", 20: "a", 21: "b", 22: "c", 23: "d", 30: "a", 31: "a", 32: "b",
              33: "b", 40: "a", 41: None, 42: None, 43: None, 50: None}
    nbrs = {1: [10, 11, 12, 13], 2: [20, 21, 22, 23], 3: [30, 31, 32, 33], 4: [40, 41, 42, 43], 5: [50, 41, 42, 43]}
    rows = [(s, d, 1.0 - 0.01 * r) for s, ds in nbrs.items() for r, d in enumerate(ds)]
    nearest = spark.createDataFrame(pd.DataFrame(rows, columns=["src", "dst", "dist"]))
    images = spark.createDataFrame(pd.DataFrame({"image_id": list(labels), "label": list(labels.values())}),
                                   "image_id long, label string")
    h = neighbour_label_entropy(nearest, images, 4).toPandas().set_index("image_id")["label_entropy"]
    assert h[1] == pytest.approx(0.0) and h[2] == pytest.approx(1.0) and h[3] == pytest.approx(0.5)
    assert h[4] == pytest.approx(0.0) and 5 not in h.index
