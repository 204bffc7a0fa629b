"""The neighbors stage: pure index functions on synthetic vectors, then the job end to end.

Ground truth is brute force numpy: exact search must equal it, approximate backends must
reach recall@10 >= 0.95 against it, byte-identical images must always be linked.
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd
import pytest

from sparkdup.config import load_config
from sparkdup.jobs import neighbors as job
from sparkdup.stage import main_for
from sparkdup.tables import read_table
from sparkdup.udfs import backends, buckets, merge

DEFAULTS = load_config()["neighbors"]
PARAMS = backends.Params.from_config(DEFAULTS)


def clustered(n: int, dim: int, clusters: int, spread: float, seed: int) -> np.ndarray:
    """Unit vectors around `clusters` random centres (cosine to the centre ~ 1/sqrt(1+spread^2))."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[rng.integers(clusters, size=n)] + rng.normal(size=(n, dim)) * spread / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers and similarities of each row's top k, self excluded."""
    s = x.astype(np.float64) @ x.T.astype(np.float64)
    np.fill_diagonal(s, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(s, order, axis=1)


def recall(found: dict, truth: dict) -> float:
    hits = sum(len(set(found.get(q, [])) & set(t)) for q, t in truth.items())
    return hits / sum(len(t) for t in truth.values())


def chunk_files(tmp_path, backend: str, ids, x, primary, params, max_rows: int = 10 ** 9) -> dict:
    """What the Spark side does, without Spark: rows sorted by bucket through one build
    task (batches of 300 rows), its chunk rows written as one Parquet file per bucket."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    order = np.lexsort((ids, primary))
    rows = pd.DataFrame({"bucket": primary[order].astype(np.int32), "image_id": ids[order],
                         "vec": buckets.pack(x[order])})
    sizes = pd.Series(primary).value_counts().to_dict()
    plan = backends.BuildPlan(backend, x.shape[1], params, max_rows, {int(b): int(c) for b, c in sizes.items()})
    out = pd.concat(list(backends.build_partition((rows[i:i + 300] for i in range(0, len(rows), 300)), plan)))
    files = {}
    for b, g in out.groupby("bucket"):
        path = tmp_path / f"chunks-{backend}-{b}.parquet"
        pq.write_table(pa.Table.from_pandas(g.drop(columns="bucket").iloc[::-1], preserve_index=False), path)
        files[int(b)] = str(path)
    return files


# ---------------------------------------------------------------- pure functions
@pytest.fixture(scope="module")
def vectors():
    x = clustered(2000, 64, 30, 1.0, seed=3)
    ids = np.random.default_rng(4).choice(2 ** 62, size=len(x), replace=False).astype(np.int64) - 2 ** 61
    rows, sims = brute_force(x, 10)
    return ids, x, rows, sims


def _truth(vectors) -> dict:
    ids, x, rows, _ = vectors
    return {int(ids[i]): ids[rows[i]].tolist() for i in range(len(x))}


def _as_dict(query_ids, out_ids, out_sims):
    return {int(q): out_ids[i][np.isfinite(out_sims[i])].tolist() for i, q in enumerate(query_ids)}


def test_exact_topk_matches_brute_force_and_excludes_self(vectors):
    ids, x, rows, sims = vectors
    got = merge.merge_candidates(ids, *backends.exact_topk(x, x, 11, block_rows=700, base_ids=ids), 10)
    assert not np.any(got[0] == ids[:, None])
    np.testing.assert_array_equal(got[0], ids[rows])
    np.testing.assert_allclose(got[1], sims, atol=1e-5)


def test_annoy_recall_at_defaults(vectors, tmp_path):
    ids, x = vectors[:2]
    path = backends.build_index("annoy", ids, x, str(tmp_path / "a.annoy"), PARAMS)
    loaded = backends.load_index("annoy", path, x.shape[1])
    got = merge.merge_candidates(ids, *backends.query_index(loaded, x, 11, PARAMS), 10)
    assert not np.any((got[0] == ids[:, None]) & np.isfinite(got[1]))
    assert recall(_as_dict(ids, *got), _truth(vectors)) >= 0.95
    # similarities are cosines (annoy's angular distance converted)
    rows = {int(v): i for i, v in enumerate(ids)}
    i = 5
    j = rows[int(got[0][i, 0])]
    assert got[1][i, 0] == pytest.approx(float(x[i] @ x[j]), abs=1e-4)


def test_faiss_recall_at_defaults(vectors, tmp_path):
    ids, x = vectors[:2]
    path = backends.build_index("faiss_hnsw", ids, x, str(tmp_path / "h.faiss"), PARAMS)
    loaded = backends.load_index("faiss_hnsw", path, x.shape[1])
    got = merge.merge_candidates(ids, *backends.query_index(loaded, x, 11, PARAMS), 10)
    assert not np.any((got[0] == ids[:, None]) & np.isfinite(got[1]))
    assert recall(_as_dict(ids, *got), _truth(vectors)) >= 0.95
    assert backends.load_index("faiss_hnsw", path, x.shape[1]) is loaded  # cached once per process


def test_centroids_hold_one_copy_of_the_sample_on_the_driver():
    """fit_centroids runs on the driver: with overwrite it normalises the sample in place and
    sums one cluster at a time, so its own allocations stay far below the sample's size (the
    earlier version made two more full copies: 2 x 100 MB at 20,000 x 1280-d)."""
    import tracemalloc
    rng = np.random.default_rng(3)
    sample = rng.standard_normal((8000, 512)).astype(np.float32)
    kept = sample.copy()
    reference = buckets.fit_centroids(kept, 16, 5, 0)
    np.testing.assert_array_equal(kept, sample)  # without overwrite the caller's matrix is untouched
    tracemalloc.start()
    got = buckets.fit_centroids(sample, 16, 5, 0, overwrite=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(got, reference)
    assert peak < 0.3 * sample.nbytes, (peak, sample.nbytes)


def test_buckets_probe_and_merge_reach_recall(vectors, tmp_path):
    ids, x = vectors[:2]
    centroids = buckets.fit_centroids(x[::3], 4, iterations=10, seed=0)
    assert centroids.shape == (4, x.shape[1])
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(centroids, buckets.fit_centroids(x[::3], 4, iterations=10, seed=0))
    probes = buckets.nearest_buckets(x, centroids, 2)
    assert probes.shape == (len(x), 2)
    s = x @ centroids.T
    np.testing.assert_array_equal(probes[:, 0], s.argmax(axis=1))
    # the executor path without Spark: one build task over all buckets, chunks in a Parquet
    # file per bucket, reassembled by the query side
    files = chunk_files(tmp_path, "annoy", ids, x, probes[:, 0], dataclasses.replace(PARAMS, trees=20))
    assert sorted(files) == [0, 1, 2, 3]
    plan = backends.QueryPlan("annoy", x.shape[1], 10, files, PARAMS)
    parts = []
    for p in range(2):
        frame = pd.DataFrame({"image_id": ids, "bucket": probes[:, p], "vec": buckets.pack(x)})
        parts.append(backends.query_batch(frame, plan))
    both = pd.DataFrame({"src": ids,
                         "dst": [np.concatenate([a, b]) for a, b in zip(parts[0]["dst"], parts[1]["dst"])],
                         "sim": [np.concatenate([a, b]) for a, b in zip(parts[0]["sim"], parts[1]["sim"])]})
    merged = merge.merge_batch(both, 10)
    found = {int(q): list(d) for q, d in zip(merged["src"], merged["dst"])}
    assert recall(found, _truth(vectors)) >= 0.95
    one_bucket = {int(q): list(d) for q, d in zip(parts[0]["src"], parts[0]["dst"])}
    assert recall(found, _truth(vectors)) >= recall(one_bucket, _truth(vectors))
    for q, d, sims in zip(merged["src"], merged["dst"], merged["sim"]):
        assert q not in set(d) and len(set(d)) == len(d) == 10
        assert np.all(np.diff(sims) <= 0)


@pytest.mark.parametrize("backend", list(backends.REGISTRY))
def test_index_chunks_round_trip_in_any_order(vectors, tmp_path, monkeypatch, backend):
    """An index split into many chunks (written in reverse) is reassembled byte for byte:
    queries through the chunk file equal queries on the index built in one piece."""
    ids, x = vectors[0][:500], vectors[1][:500]
    monkeypatch.setattr(backends, "CHUNK_BYTES", 4096)
    files = chunk_files(tmp_path, backend, ids, x, np.zeros(len(x), np.int64), PARAMS)
    impl = backends.get(backend)
    rebuilt = backends.materialise(files[0], impl.suffix)
    order = np.argsort(ids)  # build tasks add vectors in image id order
    direct = backends.build_index(backend, ids[order], x[order], str(tmp_path / f"direct.{impl.suffix}"), PARAMS)
    if backend == "exact":  # (annoy and HNSW builds depend on batching and threads)
        assert open(rebuilt, "rb").read() == open(direct, "rb").read()
    np.testing.assert_array_equal(np.load(backends.ids_path(rebuilt)), ids[order])
    a = backends.query_index(backends.load_index(backend, rebuilt, x.shape[1]), x[:50], 11, PARAMS)
    b = backends.query_index(backends.load_index(backend, direct, x.shape[1]), x[:50], 11, PARAMS)
    np.testing.assert_array_equal(a[0][:, 0], ids[:50])  # every vector finds itself first
    assert np.mean([len(set(p) & set(q)) / 11 for p, q in zip(a[0], b[0])]) >= 0.95
    assert backends.materialise(files[0], impl.suffix) == rebuilt  # once per machine
    assert impl.bytes_per_vector(x.shape[1], PARAMS) * len(x) >= 0.5 * os.path.getsize(rebuilt)


def test_build_task_caps_each_bucket_and_keeps_buckets_apart(vectors, tmp_path):
    ids, x = vectors[0][:600], vectors[1][:600]
    primary = np.arange(600) % 3
    files = chunk_files(tmp_path, "faiss_hnsw", ids, x, primary, PARAMS, max_rows=150)
    for b in range(3):
        got = np.load(backends.ids_path(backends.materialise(files[b], "faiss")))
        assert len(got) == 150 and set(got) <= set(ids[primary == b])


def test_float16_vectors_travel_at_half_size_and_keep_recall(vectors, tmp_path):
    ids, x = vectors[:2]
    emb = pd.DataFrame({"image_id": ids, "embedding": list(x)})
    half = buckets.assign_batch(emb, None, 1, x.shape[1], "float16")
    full = buckets.assign_batch(emb, None, 1, x.shape[1])
    assert {len(v) for v in half["vec"]} == {2 * x.shape[1]} and {len(v) for v in full["vec"]} == {4 * x.shape[1]}
    np.testing.assert_allclose(buckets.as_matrix(half["vec"], x.shape[1]), x, atol=1e-3)
    files = chunk_files(tmp_path, "exact", ids, buckets.as_matrix(half["vec"], x.shape[1]),
                        np.zeros(len(x), np.int64), PARAMS)
    plan = backends.QueryPlan("exact", x.shape[1], 10, files, PARAMS)
    got = backends.query_batch(half.assign(bucket=0), plan)
    assert recall({int(q): list(d) for q, d in zip(got["src"], got["dst"])}, _truth(vectors)) >= 0.99


def test_merge_candidates_dedupes_drops_self_and_invalid():
    q = np.array([7, 8], np.int64)
    ids = [np.array([[7, 1, 2], [3, 8, 3]]), np.array([[2, 4, 5], [9, 3, 1]])]
    sims = [np.array([[1.0, 0.5, 0.7], [0.4, 1.0, 0.6]], np.float32),
            np.array([[0.9, -np.inf, 0.2], [np.nan, 0.5, 0.1]], np.float32)]
    out_ids, out_sims = merge.merge_candidates(q, ids, sims, 3)
    np.testing.assert_array_equal(out_ids[0], [2, 1, 5])
    np.testing.assert_allclose(out_sims[0], [0.9, 0.5, 0.2])
    np.testing.assert_array_equal(out_ids[1], [3, 1, 0])  # 9 was NaN: dropped; 3 kept once at 0.6
    np.testing.assert_allclose(out_sims[1][:2], [0.6, 0.1])
    assert out_sims[1][2] == -np.inf
    ties = merge.merge_candidates(np.array([0]), np.array([[5, 3, 4]]), np.array([[0.5, 0.5, 0.5]]), 2)
    np.testing.assert_array_equal(ties[0], [[3, 4]])  # ties broken by id


def test_fewer_vectors_than_k(tmp_path):
    x = clustered(4, 8, 2, 0.5, seed=1)
    ids = np.arange(10, 14, dtype=np.int64)
    path = backends.build_index("annoy", ids, x, str(tmp_path / "t.annoy"), dataclasses.replace(PARAMS, trees=5))
    loaded = backends.load_index("annoy", path, 8)
    out_ids, out_sims = merge.merge_candidates(ids, *backends.query_index(loaded, x, 11, PARAMS), 10)
    assert np.isfinite(out_sims).sum(axis=1).tolist() == [3, 3, 3, 3]


# ---------------------------------------------------------------- the job
N, DIM, K = 600, 48, 10


def embeddings_frame(ids: np.ndarray, x: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"image_id": ids.astype(np.int64), "embedding": list(x.astype(np.float32)),
                         "model": "test", "dim": np.int32(x.shape[1]), "run_id": "r0"})


def write_tables(out: str, images: pd.DataFrame, embeddings: pd.DataFrame) -> None:
    """The input tables as the upstream stages leave them (Parquet), written without Spark."""
    for name, frame in (("images", images), ("embeddings", embeddings)):
        os.makedirs(os.path.join(out, name), exist_ok=True)
        frame.to_parquet(os.path.join(out, name, "part-00000.parquet"), index=False)


@pytest.fixture(scope="module")
def dataset(spark, tmp_path_factory):
    """Embedded images in 8 clusters, with byte-identical copies: 12 pairs with equal vectors,
    one pair whose vectors disagree (the index alone would never pair them), one group of 6
    (over hash_group_max=4 in the runs: star + ring), and broken images sharing a hash."""
    out = str(tmp_path_factory.mktemp("nb") / "out")
    rng = np.random.default_rng(11)
    x = clustered(N, DIM, 8, 0.6, seed=12)
    ids = rng.choice(2 ** 62, size=N, replace=False).astype(np.int64) - 2 ** 61
    hashes = [f"h{i:04d}" for i in range(N)]
    for a in range(0, 24, 2):  # 12 identical pairs
        x[a + 1] = x[a]
        hashes[a + 1] = hashes[a]
    far = int(np.argmin(x @ x[30]))  # byte-identical, but the vectors are opposite
    assert far >= 46
    hashes[far] = hashes[30]
    for m in range(41, 46):  # a group of 6: 40..45
        x[m] = x[40]
        hashes[m] = hashes[40]
    images = pd.DataFrame({"image_id": ids, "path": [f"file:/data/img{i:04d}.png" for i in range(N)],
                           "content_hash": hashes, "status": "ok"})
    broken = pd.DataFrame({"image_id": [1, 2, 3], "path": ["file:/data/b1.png", "file:/data/b2.png",
                                                            "file:/data/b3.png"],
                           "content_hash": ["hb", "hb", hashes[50]], "status": "broken"})
    images = pd.concat([images, broken], ignore_index=True)
    write_tables(out, images, embeddings_frame(ids, x))
    groups = {"pairs": [(ids[a], ids[a + 1]) for a in range(0, 24, 2)], "far": (ids[30], ids[far]),
              "six": ids[40:46].tolist(), "broken": [1, 2, 3]}
    return out, ids, x, groups


def run_job(spark, out: str, *argv: str) -> pd.DataFrame:
    args = ["--output", out, "--format", "parquet", "--set", "neighbors.hash_group_max=4", *argv]
    assert main_for(job, list(args)) == 0
    return read_table(spark, out, "neighbors").toPandas()


@pytest.fixture(scope="module")
def exact(spark, dataset):
    return run_job(spark, dataset[0], "--backend", "exact", "--run-id", "exact-1")


def by_src(df: pd.DataFrame) -> dict:
    return {int(s): g.sort_values("rank")["dst"].tolist() for s, g in df.groupby("src")}


def test_schema_and_every_image_has_k(exact, dataset):
    _, ids, _, groups = dataset
    assert list(exact.columns) == job.NEIGHBOR_COLUMNS
    assert set(exact["run_id"]) == {"exact-1"}
    assert set(exact["source"]) == {"exact", "hash"}
    counts = exact.groupby("src").size()
    assert set(counts.index) == set(ids.tolist())  # broken images: no neighbours
    assert counts.min() == K and counts.max() == K  # group of 6: 5 hash edges at most < k
    assert not (exact["src"] == exact["dst"]).any()
    assert not exact.duplicated(["src", "dst"]).any()
    for _, g in exact.groupby("src"):
        assert sorted(g["rank"]) == list(range(1, len(g) + 1))
        assert np.all(np.diff(g.sort_values("rank")["similarity"].to_numpy()) <= 1e-9)
    assert not exact["src"].isin(groups["broken"]).any() and not exact["dst"].isin(groups["broken"]).any()


def test_byte_identical_images_are_linked_by_hash(exact, dataset):
    _, _, _, groups = dataset
    hash_edges = exact[exact["source"] == "hash"]
    linked = set(zip(hash_edges["src"], hash_edges["dst"]))
    for a, b in groups["pairs"] + [groups["far"]]:
        assert (a, b) in linked and (b, a) in linked
    far = hash_edges[hash_edges["src"] == groups["far"][0]]
    assert far["similarity"].tolist() == [1.0] and far["rank"].tolist() == [1]
    # a group over hash_group_max: star on the first member plus a ring, connected, not all pairs
    six = groups["six"]
    inner = {(s, d) for s, d in linked if s in six and d in six}
    assert len(inner) == 18 < 30
    assert all((d, s) in inner for s, d in inner)
    seen, todo = {six[0]}, [six[0]]
    while todo:
        node = todo.pop()
        for s, d in inner:
            if s == node and d not in seen:
                seen.add(d)
                todo.append(d)
    assert seen == set(six)
    assert (hash_edges["similarity"] == 1.0).all()


def test_exact_equals_brute_force(exact, dataset):
    _, ids, x, groups = dataset
    rows, sims = brute_force(x, K)
    in_group = {i for p in groups["pairs"] for i in p} | set(groups["far"]) | set(groups["six"])
    got = exact.sort_values(["src", "rank"]).groupby("src")
    checked = 0
    for i, image_id in enumerate(ids):
        if image_id in in_group:
            continue
        g = got.get_group(image_id)
        truth = ids[rows[i]]
        if set(truth) & in_group:  # identical copies tie: which ones make the last slots may differ
            extra = g[~g["dst"].isin(truth)]
            np.testing.assert_allclose(extra["similarity"], sims[i][-1], atol=1e-5)
        else:
            assert g["dst"].tolist() == truth.tolist()
        np.testing.assert_allclose(g["similarity"].to_numpy(), sims[i], atol=1e-5)
        checked += 1
    assert checked > N * 0.8


def test_default_backend_reaches_recall(spark, dataset, exact):
    got = run_job(spark, dataset[0])  # neighbors.backend from conf/default.yaml, one bucket
    assert set(got["source"]) == {"ann", "hash"}
    assert recall(by_src(got), by_src(exact)) >= 0.95
    assert got.groupby("src").size().min() == K
    assert not (got["src"] == got["dst"]).any()


def test_annoy_multi_bucket_reaches_recall(spark, dataset, exact):
    out = dataset[0]
    stale = os.path.join(out, "_index", "an-earlier-run", "bucket=0")
    os.makedirs(stale)
    open(os.path.join(stale, "part-0.parquet"), "wb").close()
    got = run_job(spark, out, "--backend", "annoy", "--set", "neighbors.buckets=4", "--run-id", "annoy-4",
                  "--set", "neighbors.probe_buckets=2", "--set", "neighbors.annoy.trees=10")
    # one index file per bucket, built by executor tasks, kept under the output; earlier
    # runs' indexes removed (this session's too: nothing was published with addFile)
    root = os.path.join(out, "_index", "annoy-4")
    assert sorted(f for f in os.listdir(root) if f.startswith("bucket=")) == [f"bucket={b}" for b in range(4)]
    for b in range(4):
        assert len([f for f in os.listdir(os.path.join(root, f"bucket={b}")) if f.endswith(".parquet")]) == 1
    assert not os.path.exists(os.path.dirname(stale)) and not os.path.exists(os.path.join(out, "_index", "exact-1"))
    assert not [u for u in spark.sparkContext.listFiles if "/_index/" in u]
    assert recall(by_src(got), by_src(exact)) >= 0.95
    assert got.groupby("src").size().min() == K
    assert not (got["src"] == got["dst"]).any()


def test_fewer_images_than_k(spark, tmp_path):
    out = str(tmp_path / "out")
    x = clustered(5, 16, 2, 0.5, seed=2)
    ids = np.arange(5, dtype=np.int64)
    write_tables(out, pd.DataFrame({"image_id": ids, "path": [f"p{i}" for i in range(5)],
                                    "content_hash": [f"h{i}" for i in range(5)], "status": "ok"}),
                 embeddings_frame(ids, x))
    other = "annoy" if DEFAULTS["backend"] == "faiss_hnsw" else "faiss_hnsw"
    got = run_job(spark, out, "--k", "10", "--backend", other)
    assert got.groupby("src").size().to_dict() == {i: 4 for i in range(5)}
    too_many = ["--output", out, "--backend", "exact", "--set", "neighbors.exact_max_rows=3"]
    assert main_for(job, too_many) == 2  # refused with one clear line, before any work
    assert os.path.isdir(os.path.join(out, "neighbors"))
