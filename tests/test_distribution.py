"""What executors get from the driver, and how work is split, on a local session.

The same code paths run on a cluster (tests/test_cluster.py runs them there); these tests
pin each one down cheaply: the embedding model reaches Python workers as a published file
(never from a cache folder of their own), neighbour indexes are never published (query tasks get
their buckets' indexes with their rows), embed
runs in as many partitions as the image count asks for, and the distributed connected
components checkpoint reliably into the session's checkpoint directory.
"""
from __future__ import annotations

import os
import re
import shutil
import urllib.parse

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pyspark.sql import functions as F

from conftest import OXYGEN, real_pngs
from sparkdup.config import load_config
from sparkdup.models.shipping import ShippedModel, publish, ship_model
from sparkdup.partitioning import by_image_count, partitions_for


def _images_frame(spark, files: list[str]):
    pdf = pd.DataFrame({"path": ["file:" + os.path.abspath(f) for f in files]})
    return spark.createDataFrame(pdf).select(F.xxhash64("path").alias("image_id"), "path",
                                             F.lit("ok").alias("status"))


@pytest.fixture
def tiny_pngs(tmp_path):
    files = []
    for i in range(40):
        path = tmp_path / "imgs" / f"{i:03d}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8), (i * 6, 0, 0)).save(path)
        files.append(str(path))
    return files


@pytest.fixture
def one_file_per_scan_partition(spark):
    """A scan of many partitions (one small file each), as a large input gives."""
    key = "spark.sql.files.maxPartitionBytes"
    before = spark.conf.get(key)
    spark.conf.set(key, "1")
    yield
    spark.conf.set(key, before)


# ---------------------------------------------------------------- partitions
def test_partitions_for_follows_the_image_count():
    assert partitions_for(8000, 200, 2) == 40
    assert partitions_for(2000, 200, 2) == 10
    assert partitions_for(30, 200, 2) == 2  # never fewer than the cores
    assert partitions_for(0, 200, 0) == 1
    with pytest.raises(ValueError):
        partitions_for(10, 0, 2)


def test_embed_input_is_merged_to_the_image_count_without_a_shuffle(spark, tiny_pngs, one_file_per_scan_partition):
    """Files read by Spark's scan (other filesystems than the local one) are merged into the
    partitions the image count calls for, without shuffling their bytes."""
    contents = spark.read.format("binaryFile").load(os.path.dirname(tiny_pngs[0]))
    assert contents.rdd.getNumPartitions() == 40
    for per_partition, expected in ((10, 4), (20, 2), (1, 40), (1000, spark.sparkContext.defaultParallelism)):
        merged = by_image_count(contents, 40, per_partition)
        assert merged.rdd.getNumPartitions() == expected
    merged = by_image_count(contents, 40, 10)
    assert merged.count() == 40
    plan = merged._jdf.queryExecution().executedPlan().toString()  # noqa: SLF001
    assert "Coalesce" in plan and not re.search(r"(?<!Broadcast)Exchange ", plan)  # no shuffle of bytes


def test_local_files_are_read_by_as_many_tasks_as_asked(spark, tiny_pngs):
    """Local files are read by the Python worker: their names (not their bytes) are spread
    over the partitions asked for before anything is read."""
    from sparkdup.contents import read_contents

    contents = read_contents(spark, _images_frame(spark, tiny_pngs).coalesce(1), 10 ** 6, partitions=4)
    assert contents.rdd.getNumPartitions() == 4 and contents.count() == 40


def test_embed_stage_uses_images_per_partition(spark, tiny_pngs, one_file_per_scan_partition):
    from sparkdup.jobs.embed import build_embeddings

    cfg = load_config(overrides=["spark.images_per_partition=10"])
    vectors = build_embeddings(spark, cfg, _images_frame(spark, tiny_pngs), "t")
    assert vectors.rdd.getNumPartitions() == 4  # planning only: the model does not run


# ---------------------------------------------------------------- the model travels with the job
def test_workers_load_the_published_model_not_their_own_cache(spark, tmp_path):
    """Python workers whose model cache is an empty folder still embed, with the driver's
    model: exactly the vectors the default model gives, and the folder stays empty (without
    shipping they would build the model there, or fail where its weights package is absent)."""
    from sparkdup.decoded import decode_limits
    from sparkdup.jobs.embed import build_embeddings
    from sparkdup.models import registry
    from sparkdup.udfs.embed import embed_contents

    files = real_pngs(OXYGEN, 6, seed=4)
    empty_cache = tmp_path / "executor-cache"
    empty_cache.mkdir()
    sc = spark.sparkContext
    sc.environment["SPARKDUP_CACHE"] = str(empty_cache)  # new Python workers start with it
    try:
        got = build_embeddings(spark, load_config(), _images_frame(spark, files), "t").toPandas()
    finally:
        del sc.environment["SPARKDUP_CACHE"]
    assert os.listdir(empty_cache) == []
    name = registry.with_size("efficientnet_lite0", load_config()["embed"]["input_size"])
    assert set(got["model"]) == {name} and len(got) == 6
    by_path = dict(zip(_images_frame(spark, files).toPandas()["image_id"], files))
    contents = [open(by_path[i], "rb").read() for i in got["image_id"]]
    want = embed_contents(name, contents, decode_limits(load_config()))
    assert np.abs(np.stack(got["embedding"].map(np.asarray)) - np.stack(want)).max() < 1e-5


def test_published_names_are_unique_per_file(spark, tmp_path):
    from pyspark import SparkFiles

    from sparkdup.models import build_cache, registry

    tflite = build_cache.ensure_built()["tflite_fp32"]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    shutil.copy(tflite, a / "model.tflite")
    shutil.copy(tflite, b / "model.tflite")
    first, second = ship_model(spark, str(a / "model.tflite")), ship_model(spark, str(b / "model.tflite"))
    assert first.file != second.file  # same base name, two files: both published
    assert ship_model(spark, str(a / "model.tflite")) == first  # the same file again: once
    local = first.local_name()
    assert local.startswith(SparkFiles.getRootDirectory()) and local.endswith("?preprocess=raw&size=224")
    assert registry.resolve(local).input_size == 224

    saved = tmp_path / "saved_model_dir"
    (saved / "variables").mkdir(parents=True)
    (saved / "saved_model.pb").write_bytes(b"x")
    (saved / "variables" / "variables.index").write_bytes(b"y")
    folder = ShippedModel("m", publish(spark, str(saved)))
    unpacked = folder.local_name()  # a folder is published as an archive, unpacked where it lands
    assert sorted(os.listdir(unpacked)) == ["saved_model.pb", "variables"]
    assert open(os.path.join(unpacked, "variables", "variables.index"), "rb").read() == b"y"

    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"x")
    keras = ship_model(spark, f"keras:MobileNetV2?weights={weights}")
    opts = urllib.parse.parse_qs(keras.local_name(lambda name: f"/spark files/{name}").split("?", 1)[1])
    assert opts["weights"] == [f"/spark files/{keras.file}"] and opts["size"] == ["224"]
    assert ship_model(spark, "keras:MobileNetV2?weights=none") == ShippedModel("keras:MobileNetV2?weights=none")


# ---------------------------------------------------------------- neighbour indexes
def test_the_neighbors_stage_publishes_no_index_file(spark, tmp_path):
    """Query tasks get their buckets' indexes with their rows (sparkdup.indexes.route), so
    nothing goes through addFile (which every executor would fetch, every bucket), and
    keep_index=false can remove the index as soon as the table is written."""
    from sparkdup.jobs import neighbors
    from sparkdup.stage import main_for

    out = tmp_path / "out"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(30, dtype=np.int64)
    for name, frame in (("images", pd.DataFrame({"image_id": ids, "path": [f"p{i}" for i in ids],
                                                   "content_hash": [f"h{i}" for i in ids], "status": "ok"})),
                        ("embeddings", pd.DataFrame({"image_id": ids, "embedding": list(x), "model": "m",
                                                     "dim": 16, "run_id": "r"}))):
        (out / name).mkdir(parents=True)
        frame.to_parquet(out / name / "part-00000.parquet", index=False)
    before = set(spark.sparkContext.listFiles)
    args = ["--output", str(out), "--format", "parquet", "--k", "5", "--run-id", "r1"]
    assert main_for(neighbors, args) == 0
    assert not [u for u in set(spark.sparkContext.listFiles) - before if "/_index/" in u]
    assert os.listdir(out / "_index" / "r1" / "bucket=0")  # kept by default
    assert main_for(neighbors, [*args[:-1], "r2", "--set", "neighbors.keep_index=false"]) == 0
    assert not os.path.exists(out / "_index" / "r2") and not os.path.exists(out / "_index" / "r1")
    assert len(pd.read_parquet(out / "neighbors")) == 30 * 5


# ---------------------------------------------------------------- graph checkpoints
def test_distributed_components_checkpoint_into_the_checkpoint_dir(spark, tmp_path):
    from sparkdup.graph import connected_components
    from sparkdup.findings.duplicates import checkpointing
    from sparkdup.session import ensure_checkpoint_dir

    where = ensure_checkpoint_dir(spark, load_config(), str(tmp_path))  # set once per session
    assert checkpointing(spark) == {"checkpoint": "reliable", "checkpoint_interval": 1}
    root = urllib.parse.urlparse(where).path
    before = set(os.listdir(root))
    edges = spark.createDataFrame([(1, 2), (2, 3), (5, 6)], "src long, dst long")
    comps = connected_components(edges, "dataframe", **checkpointing(spark)).toPandas()
    assert dict(zip(comps["id"], comps["component"])) == {1: 1, 2: 1, 3: 1, 5: 5, 6: 5}
    assert [d for d in set(os.listdir(root)) - before if d.startswith("rdd-")]


def test_local_sessions_cut_the_fixed_costs(spark, tmp_path):
    """A local session asked for the quick JIT (spark.quick_jit, set by the suite's session;
    off by default) compiles with C1 only, and rebuilds a
    Delta table's state from its log in 2 partitions, not Delta's 50 (measured in
    BENCHMARKS.md, "Fixed costs"), and a Delta read after a write runs no 50-task stage."""
    from sparkdup.session import LOCAL_SNAPSHOT_PARTITIONS

    assert "-XX:TieredStopAtLevel=1" in spark.sparkContext.getConf().get("spark.driver.extraJavaOptions")
    jvm_args = spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()  # noqa: SLF001
    assert "-XX:TieredStopAtLevel=1" in list(jvm_args)
    assert spark.conf.get("spark.databricks.delta.snapshotPartitions") == str(LOCAL_SNAPSHOT_PARTITIONS)
    assert load_config()["spark"]["quick_jit"] is False
    path = str(tmp_path / "t")
    spark.range(10).write.format("delta").save(path)
    sc = spark.sparkContext
    sc.setJobGroup("delta-state", "first read of a Delta table")
    try:
        assert spark.read.format("delta").load(path).count() == 10
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    tracker = sc.statusTracker()
    stages = [s for j in tracker.getJobIdsForGroup("delta-state") for s in tracker.getJobInfo(j).stageIds]
    assert stages and max(tracker.getStageInfo(s).numTasks for s in stages) <= max(LOCAL_SNAPSHOT_PARTITIONS, 4)
