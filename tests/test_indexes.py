"""Where query tasks get their indexes (sparkdup.indexes.route + backends.query_partition):
every task receives the index of the buckets it queries and of no other, reassembles it
once per machine, and answers exactly what the same index answers read from its file.
"""
from __future__ import annotations

import dataclasses
import json
import os
import urllib.parse

import numpy as np
import pandas as pd
import pytest

from sparkdup import indexes
from sparkdup.udfs import backends, buckets

PARAMS = backends.Params(trees=10, search_k=2000)
N_BUCKETS, PROBE, DIM = 4, 2, 24


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """An annoy index of 4 buckets written by Spark's build (pieces small, so each index
    is many rows), and the query rows of every vector in its 2 nearest buckets."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(900, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = rng.choice(2 ** 62, size=len(x), replace=False).astype(np.int64) - 2 ** 61
    centroids = buckets.fit_centroids(x, N_BUCKETS, 10, 0)
    probes = buckets.nearest_buckets(x, centroids, PROBE)
    root = str(tmp_path_factory.mktemp("idx") / "_index" / "run-1")
    primary = pd.DataFrame({"bucket": probes[:, 0].astype(np.int32), "image_id": ids, "vec": buckets.pack(x)})
    sizes = {int(b): int(c) for b, c in primary["bucket"].value_counts().items()}
    plan = backends.BuildPlan("annoy", DIM, PARAMS, 10 ** 6, sizes)
    indexes.build(spark, spark.createDataFrame(primary), plan, N_BUCKETS, root)
    queries = pd.DataFrame({"bucket": probes.ravel().astype(np.int32), "image_id": np.repeat(ids, PROBE),
                            "vec": np.repeat(np.asarray(buckets.pack(x), dtype=object), PROBE)})
    files = indexes.bucket_files(spark, root)
    return {"root": root, "queries": queries, "files": files, "sizes": sizes}


def _routed(spark, built, monkeypatch, max_copies=3):
    monkeypatch.setattr(backends, "PIECE_BYTES", 4096)  # (read on the driver, when the plan is made)
    asked = {int(b): int(c) for b, c in built["queries"]["bucket"].value_counts().items()}
    layout = indexes.layout(asked, rows_per_partition=200, max_copies=max_copies, min_partitions=2)
    routed = indexes.route(spark, spark.createDataFrame(built["queries"]), built["root"], layout,
                           set(built["files"]))
    return layout, routed


def test_layout_spreads_big_buckets_up_to_the_copy_limit():
    lay = indexes.layout({0: 1000, 1: 150, 2: 0, 3: 4000}, rows_per_partition=200, max_copies=4)
    assert lay == {0: (0, 4), 1: (4, 1), 3: (5, 4)}  # bucket 2 has no queries: no partition
    assert indexes.layout({0: 10}, 200, 4, min_partitions=3) == {0: (0, 3)}  # few buckets: every core busy
    assert indexes.layout({0: 10, 1: 10}, 200, 1, min_partitions=8) == {0: (0, 1), 1: (1, 1)}


def test_each_partition_holds_one_bucket_and_its_whole_index_first(spark, built, monkeypatch):
    from pyspark.sql import functions as F

    layout, routed = _routed(spark, built, monkeypatch)
    assert routed.rdd.getNumPartitions() == sum(n for _, n in layout.values())
    per_part = (routed.withColumn("part", F.spark_partition_id())
                .groupBy("part", "kind", "file")
                .agg(F.collect_set("bucket").alias("b"), F.count(F.lit(1)).alias("rows"),
                     F.sum(F.length("data")).alias("bytes"), F.max("total").alias("total"))
                .toPandas())
    for part, g in per_part.groupby("part"):
        assert {b for bs in g["b"] for b in bs} and len({b for bs in g["b"] for b in bs}) == 1, g
        pieces = g[g["kind"] == backends.PIECE]
        assert sorted(pieces["file"]) == ["ids", "index"]  # the whole index, of this bucket only
        assert (pieces["bytes"] == pieces["total"]).all()
    # pieces come before the queries in every partition
    kinds = routed.rdd.mapPartitions(lambda rows: [[r["kind"] for r in rows]]).collect()
    assert all(k == sorted(k) for k in kinds) and sum(len(k) for k in kinds) > len(built["queries"])


def test_query_tasks_open_only_their_buckets_and_answer_like_the_index_file(spark, built, monkeypatch, tmp_path):
    layout, routed = _routed(spark, built, monkeypatch)
    names = {b: u.rsplit("/", 1)[1] for b, u in built["files"].items()}
    plan = backends.QueryPlan("annoy", DIM, 10, names, PARAMS)
    scratch = str(tmp_path / "tasks")

    def task(batches):
        from pyspark import TaskContext

        part = TaskContext.get().partitionId()
        mine = os.path.join(scratch, str(part))  # this task's own folder: what it opened lands there
        queried: set = set()

        def seen(it):
            for pdf in it:
                queried.update(int(b) for b in pdf.loc[pdf["kind"] == backends.QUERY, "bucket"])
                yield pdf
        for out in backends.query_partition(seen(batches), dataclasses.replace(plan, local_dir=mine)):
            yield out.assign(task=part)
        opened = sorted(os.listdir(mine)) if os.path.isdir(mine) else []
        with open(os.path.join(scratch, f"report-{part}.json"), "w") as f:
            json.dump({"queried": sorted(queried), "opened": opened}, f)

    os.makedirs(scratch)
    got = routed.mapInPandas(task, "src long, dst array<long>, sim array<double>, task int").toPandas()
    reports = [json.load(open(os.path.join(scratch, f))) for f in os.listdir(scratch) if f.startswith("report-")]
    assert len(reports) == routed.rdd.getNumPartitions()
    for r in reports:
        assert len(r["queried"]) == 1
        b = r["queried"][0]
        assert r["opened"] == sorted([f"bucket-{b}-{names[b]}.annoy", f"bucket-{b}-{names[b]}.annoy.ids.npy"])
    # the same answers as the index read from its file on the driver
    local = {b: urllib.parse.urlparse(u).path for b, u in built["files"].items()}
    want = backends.query_batch(built["queries"], dataclasses.replace(plan, files=local, local_dir=str(tmp_path)))
    key = lambda df: sorted((int(s), tuple(int(d) for d in ds)) for s, ds in zip(df["src"], df["dst"]))  # noqa: E731
    assert key(got) == key(want) and len(got) == len(built["queries"])


def test_a_second_task_on_the_machine_reuses_the_reassembled_index(spark, built, monkeypatch, tmp_path):
    layout, routed = _routed(spark, built, monkeypatch, max_copies=1)
    rows = routed.toPandas()
    b = int(rows["bucket"].iloc[0])
    mine = rows[rows["bucket"] == b]
    plan = backends.QueryPlan("annoy", DIM, 10, {b: "chunks.parquet"}, PARAMS, local_dir=str(tmp_path))
    first = pd.concat(list(backends.query_partition(iter([mine]), plan)))
    (made,) = [f for f in os.listdir(tmp_path) if f.endswith(".annoy")]
    inode = os.stat(tmp_path / made).st_ino
    broken = mine.assign(data=[d[:-1] if k == backends.PIECE else d for k, d in zip(mine["kind"], mine["data"])])
    second = pd.concat(list(backends.query_partition(iter([broken]), plan)))  # pieces ignored: found on disk
    assert os.stat(tmp_path / made).st_ino == inode
    assert [list(d) for d in first["dst"]] == [list(d) for d in second["dst"]]
    with pytest.raises(ValueError, match="incomplete"):  # nothing on disk: a short piece is an error
        list(backends.query_partition(iter([broken]), dataclasses.replace(plan, local_dir=str(tmp_path / "new"))))


def test_load_bucket_reads_one_bucket_through_the_filesystem(spark, built, tmp_path):
    output = os.path.dirname(os.path.dirname(built["root"]))
    b = min(built["files"])
    loaded = indexes.load_bucket(spark, output, "run-1", b, "annoy", DIM, local_dir=str(tmp_path))
    assert len(loaded.ids) == built["sizes"][b]
    assert os.listdir(tmp_path) and all(f.startswith(f"run-1-bucket-{b}-") for f in os.listdir(tmp_path))
    assert indexes.load_bucket(spark, output, "run-1", 99, "annoy", DIM, local_dir=str(tmp_path)) is None


def test_latest_root_is_the_newest_index_with_its_meta(spark, tmp_path):
    """`sparkdup search` finds its index by listing `_index` (no table read): the greatest
    run id (they begin with the UTC start time) that has a meta.json; none -> None."""
    from sparkdup import indexes

    out = str(tmp_path / "out")
    assert indexes.latest_root(spark, out) is None
    for run, with_meta in (("20260101T000000Z-aaaaaa", True), ("20260102T000000Z-bbbbbb", True),
                           ("20260103T000000Z-cccccc", False)):  # the newest was never finished
        os.makedirs(indexes.index_root(out, run))
        if with_meta:
            indexes.write_meta(spark, indexes.index_root(out, run), {"backend": "exact", "dim": 4, "run": run})
    root = indexes.latest_root(spark, out)
    assert root == indexes.index_root(out, "20260102T000000Z-bbbbbb")
    assert indexes.read_meta(spark, root)["run"] == "20260102T000000Z-bbbbbb"


def test_the_index_write_buffers_no_sort_and_restores_the_session(spark, tmp_path):
    """A partitioned write is sorted by its partition column unless told otherwise; the index
    chunks (8 MiB rows, a whole bucket per task) must go straight to their files, or the
    sort's buffer holds every task's index on the heap (the 1,000,000-vector OOM)."""
    def chunks(it):
        for part in it:
            yield pd.DataFrame({"bucket": part["bucket"].astype("int32"), "file": "index",
                                "part": 0, "total": 3, "data": [b"abc"] * len(part)})

    spark.conf.set("spark.sql.maxConcurrentOutputFileWriters", "0")
    rows = (spark.range(6).selectExpr("cast(id % 3 as int) as bucket").repartition(2, "bucket")
            .mapInPandas(chunks, backends.INDEX_SCHEMA))
    root = str(tmp_path / "_index" / "run-w")
    indexes.write_chunks(rows, root)
    store = spark._jsparkSession.sharedState().statusStore()
    executions = store.executionsList()
    plan = executions.apply(executions.size() - 1).physicalPlanDescription()
    assert "InsertIntoHadoopFsRelationCommand" in plan and "Sort" not in plan
    assert sorted(indexes.bucket_files(spark, root)) == [0, 1, 2]
    assert spark.conf.get("spark.sql.maxConcurrentOutputFileWriters") == "0"
    assert spark.conf.get("spark.sql.optimizer.plannedWrite.enabled", None) in (None, "true")
    spark.conf.unset("spark.sql.maxConcurrentOutputFileWriters")
