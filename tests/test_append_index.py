"""--append grows the persisted index instead of rebuilding it (sparkdup.append_neighbors,
sparkdup.udfs.grow): a grown bucket answers like one built from all its vectors, buckets
that did not change are carried byte for byte, a bucket that lost a vector is rebuilt, and
the refit rules (drift by growth, bucket size) say why."""
from __future__ import annotations

import glob
import os

import numpy as np
import pandas as pd
import pytest

from sparkdup import append_neighbors as an
from sparkdup import indexes
from sparkdup.udfs import backends, buckets, grow

DIM = 16
PARAMS = backends.Params(trees=10, search_k=5000, m=16, ef_construction=80, ef_search=64)


def unit(rng, n):
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def chunks_of(backend, bucket, ids, x):
    """INDEX_SCHEMA rows of one bucket's index built from (ids, x) by the build task."""
    pdf = pd.DataFrame({"bucket": np.full(len(ids), bucket, np.int32), "image_id": ids, "vec": buckets.pack(x)})
    plan = backends.BuildPlan(backend, DIM, PARAMS, 10 ** 6, {bucket: len(ids)})
    return pd.concat(list(backends.build_partition(iter([pdf]), plan)))


def routed(chunks, bucket, ids, x):
    """The rows a grow task receives: the old index's pieces, then the new vectors."""
    pieces = pd.DataFrame({"bucket": chunks["bucket"], "kind": backends.PIECE, "image_id": 0, "vec": b"",
                           "file": chunks["file"], "offset": chunks["part"] * backends.CHUNK_BYTES,
                           "total": chunks["total"], "data": chunks["data"]})
    rows = pd.DataFrame({"bucket": bucket, "kind": backends.QUERY, "image_id": ids, "vec": buckets.pack(x),
                         "file": "", "offset": 0, "total": 0, "data": b""})
    return pd.concat([pieces, rows], ignore_index=True)


def opened(tmp_path, backend, chunks, name):
    file = str(tmp_path / f"{name}.parquet")
    chunks.drop(columns=["bucket"]).to_parquet(file)
    return backends.load_index(backend, backends.materialise(file, backends.get(backend).suffix), DIM)


@pytest.mark.parametrize("backend", ["faiss_hnsw", "annoy", "exact"])
def test_grown_bucket_holds_old_then_new_and_finds_every_vector(tmp_path, backend):
    rng = np.random.default_rng(3)
    x = unit(rng, 300)
    ids = rng.choice(2 ** 40, size=300, replace=False).astype(np.int64)
    old = chunks_of(backend, 2, ids[:270], x[:270])
    plan = grow.GrowPlan(backend, DIM, PARAMS, {2: "part-0.parquet"})
    out = pd.concat(list(grow.grow_partition(iter([routed(old, 2, ids[270:], x[270:])]), plan)))
    assert set(out["bucket"]) == {2}
    index = opened(tmp_path, backend, out, "grown")
    assert list(index.ids) == list(ids)  # item i is ids[i]: the old items, then the new ones
    found, sims = backends.query_index(index, x, 5, PARAMS)
    assert (found[:, 0] == ids).mean() >= 0.99  # every vector, old or new, finds itself
    full = opened(tmp_path, "exact", chunks_of("exact", 2, ids, x), "full")
    truth, _ = backends.query_index(full, x, 5, PARAMS)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found, truth)])
    assert recall >= 0.95 if backend != "exact" else recall == 1.0


def test_plan_carries_grows_and_rebuilds():
    old = {"0": 10, "1": 20, "2": 30, "3": 5}
    current = {0: 10, 1: 23, 2: 31, 4: 2}  # 1 gained 3; 2 lost one and gained two; 3 emptied; 4 is new
    added = {0: 0, 1: 3, 2: 2, 4: 2}
    assert an.plan_buckets(old, current, added) == {"carry": [0], "grow": [1], "rebuild": [2, 4]}


def test_refit_rules_name_their_setting():
    meta = {"backend": "faiss_hnsw", "dim": DIM, "vectors": 1000, "sizes": {"0": 600, "1": 400}}
    assert an.refit_reason(meta, "faiss_hnsw", DIM, 1100, 0.5, 100, 1000, 10 ** 6) is None
    assert "append_refit_growth" in an.refit_reason(meta, "faiss_hnsw", DIM, 1600, 0.5, 600, 10 ** 6, 10 ** 6)
    assert "bucket_target_size" in an.refit_reason(meta, "faiss_hnsw", DIM, 1100, 0.5, 100, 400, 10 ** 6)
    assert "max_bucket_size" in an.refit_reason(meta, "faiss_hnsw", DIM, 1100, 0.5, 100, 10 ** 6, 650)
    assert "bucket sizes" in an.refit_reason({k: v for k, v in meta.items() if k != "sizes"}, "faiss_hnsw",
                                             DIM, 1100, 0.5, 1)
    assert "annoy" in an.refit_reason(meta, "annoy", DIM, 1100, 0.5, 1)


def test_grow_indexes_on_spark(spark, tmp_path):
    """Four buckets: one untouched (carried byte for byte), one gains vectors (grown), one
    loses a vector (rebuilt); each bucket's index then holds exactly its current vectors."""
    rng = np.random.default_rng(11)
    x = unit(rng, 400)
    ids = rng.choice(2 ** 40, size=400, replace=False).astype(np.int64)
    centroids = buckets.fit_centroids(x[:360], 4, 10, 0)
    home = buckets.nearest_buckets(x, centroids, 1)[:, 0]
    old_rows = np.arange(360)
    sizes = {int(b): int((home[old_rows] == b).sum()) for b in range(4)}
    prev_root = str(tmp_path / "_index" / "run-1")
    primary = pd.DataFrame({"bucket": home[old_rows].astype(np.int32), "image_id": ids[old_rows],
                            "vec": buckets.pack(x[old_rows])})
    plan = backends.BuildPlan("faiss_hnsw", DIM, PARAMS, 10 ** 6, sizes)
    indexes.build(spark, spark.createDataFrame(primary), plan, 4, prev_root)
    # New vectors only in buckets that 40 new vectors reach; carry a bucket none reaches.
    new_rows = np.arange(360, 400)
    untouched = [b for b in range(4) if not (home[new_rows] == b).any()]
    if not untouched:  # make one: drop the new vectors of bucket 0
        new_rows = new_rows[home[new_rows] != 0]
        untouched = [0]
    carried = untouched[0]
    lose_from = next(b for b in range(4) if b != carried and (home[new_rows] == b).any())
    gone = int(np.flatnonzero(home[old_rows] == lose_from)[0])
    assert any(b not in (carried, lose_from) and (home[new_rows] == b).any() for b in range(4))  # one grows
    current = np.array([r for r in np.r_[old_rows, new_rows] if r != gone])
    assigned = spark.createDataFrame(pd.DataFrame({
        "image_id": ids[current], "buckets": [[int(home[r])] for r in current], "vec": buckets.pack(x[current])}),
        "image_id long, buckets array<int>, vec binary")
    new = spark.createDataFrame(pd.DataFrame({"image_id": ids[new_rows]}))
    root = str(tmp_path / "_index" / "run-2")
    got = an.grow_indexes(spark, assigned, new, {"sizes": {str(b): c for b, c in sizes.items()}}, prev_root, root,
                          plan, 4)
    want = {int(b): int((home[current] == b).sum()) for b in range(4) if (home[current] == b).any()}
    assert got == want
    files = indexes.bucket_files(spark, root)
    assert set(files) == set(want)
    for b, uri in files.items():
        index = opened(tmp_path, "faiss_hnsw", pd.read_parquet(uri.replace("file:", "")).assign(bucket=b), f"b{b}")
        assert sorted(index.ids) == sorted(ids[current][home[current] == b])
    old_file = glob.glob(f"{prev_root}/bucket={carried}/*.parquet")[0]
    new_file = glob.glob(f"{root}/bucket={carried}/*.parquet")[0]
    assert os.path.basename(old_file) == os.path.basename(new_file)
    assert open(old_file, "rb").read() == open(new_file, "rb").read()


@pytest.mark.parametrize("fmt", ["delta", "parquet"])
def test_model_check_reads_a_local_table_without_spark_and_names_both(spark, tmp_path, fmt):
    """append.check_model reads the output's model from its files (sparkdup.lookup) and
    refuses another model in one line naming both; the same through Spark's reader."""
    from sparkdup import append, lookup
    from sparkdup.config import load_config
    from sparkdup.errors import OutputError

    out = str(tmp_path / "out")
    spark.createDataFrame([(1, "other_model", 7)], "image_id long, model string, dim int").write.format(fmt).save(
        os.path.join(out, "embeddings"))
    assert lookup.open_table(out, "embeddings") is not None
    with pytest.raises(OutputError, match=r"model other_model \(7 dimensions\), the settings ask for efficientnet"):
        append.check_model(spark, load_config(), out)
    with pytest.raises(OutputError, match=r"model other_model \(7 dimensions\)"):
        append.check_model(spark, load_config(), "file:" + out)  # (a file: URI is local too)
