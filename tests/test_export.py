"""export: the curated set leaves out what the findings say, and trains from petastorm."""
from __future__ import annotations

import os

import numpy as np
import pytest
from deltalake import DeltaTable

import sparkdup


@pytest.fixture(scope="module")
def exported(spark, pipeline_run, tmp_path_factory):
    out, truth, _ = pipeline_run
    dest = str(tmp_path_factory.mktemp("export"))
    result = sparkdup.export(out, dest, spark=spark, run_id="export-run",
                             settings={"export.drop_flags": ["dark", "bright", "tiny"],
                                       "output.database": "sparkdup_export_test"})
    return out, dest, result.counts


def _delta(out, name):
    return DeltaTable(os.path.join(out, name)).to_pandas()


def test_curated_leaves_out_what_the_findings_say(exported):
    out, dest, counts = exported
    curated = _delta(dest, "curated")
    images, groups, leaks = _delta(out, "images"), _delta(out, "duplicate_groups"), _delta(out, "leaks")
    kept = set(curated["image_id"])
    assert kept <= set(images.loc[images.status == "ok", "image_id"])
    assert kept.isdisjoint(groups.loc[~groups.is_representative, "image_id"])
    assert kept.isdisjoint(set(leaks.loc[leaks.split_b == "val", "image_id_b"]))
    flagged = images.loc[images["flags"].map(lambda f: bool({"dark", "bright", "tiny"} & set(f))), "image_id"]
    assert kept.isdisjoint(flagged)
    # every group still has its representative, unless a rule above removed it
    assert set(groups.loc[groups.is_representative, "image_id"]) & kept
    assert counts["curated"] == len(curated) > 0


def test_curated_is_registered_where_export_writes_it(spark, exported):
    out, dest, counts = exported
    location = spark.sql("DESCRIBE DETAIL sparkdup_export_test.curated").first()["location"]
    assert location.rstrip("/").endswith(dest.rstrip("/") + "/curated")
    assert spark.table("sparkdup_export_test.curated").count() == counts["curated"]
    assert spark.table("sparkdup_export_test.images").count() > 0  # the result tables stay under --output


def test_petastorm_dataset_reads_into_tensorflow_repeatedly(spark, exported, tmp_path):
    import tensorflow as tf
    from petastorm.spark import SparkDatasetConverter, make_spark_converter

    _, dest, counts = exported
    spark.conf.set(SparkDatasetConverter.PARENT_CACHE_DIR_URL_CONF, "file://" + str(tmp_path / "cache"))
    df = spark.read.parquet(os.path.join(dest, "petastorm")).select("image", "label_index")
    converter = make_spark_converter(df)
    assert len(converter) == counts["curated"]
    seen = []
    for _ in range(2):  # petastorm's thread pool once returned zero rows on a second read: use 'dummy'
        with converter.make_tf_dataset(batch_size=8, num_epochs=1, workers_count=1,
                                       reader_pool_type="dummy") as dataset:
            batch = next(iter(dataset))
            images = tf.map_fn(lambda b: tf.io.decode_png(b, channels=3), batch.image, fn_output_signature=tf.uint8)
            assert images.shape == (8, 224, 224, 3)
            assert float(tf.math.reduce_std(tf.cast(images, tf.float32))) > 5  # real pictures, not blank
            seen.append(np.asarray(batch.label_index))
    assert all(len(s) == 8 for s in seen) and (np.concatenate(seen) >= 0).all()
    converter.delete()
