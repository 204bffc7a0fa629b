"""Inputs and outputs on object storage: `sparkdup run s3a://... --output s3a://...` end to end.

A local S3-compatible server (moto) stands in for S3. The run is a `sparkdup` subprocess
configured the way a user would: endpoint settings in spark-defaults.conf (SPARK_CONF_DIR),
credentials as standard `spark.hadoop.fs.s3a.*` settings there too, never in sparkdup's own
settings. Its tables are read back over s3a and compared with a local run on the same
files, and the secret key is looked for in everything the run printed or wrote.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import subprocess
import sys
import time

import pytest

BUCKET = "sparkdup-test"
ACCESS_KEY = "sparkdup-test-access"
SECRET_KEY = "s3cr3t-" + secrets.token_hex(12)  # a string that cannot appear by chance


def _s3a_settings(endpoint: str) -> dict[str, str]:
    """Hadoop S3A settings for a local, plain-HTTP, path-style S3 endpoint."""
    return {
        "fs.s3a.endpoint": endpoint,
        "fs.s3a.endpoint.region": "us-east-1",
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        "fs.s3a.access.key": ACCESS_KEY,
        "fs.s3a.secret.key": SECRET_KEY,
    }


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on a free loopback port, with one bucket: (endpoint, boto3 client)."""
    import boto3
    from moto.server import ThreadedMotoServer

    from sparkdup.session import cached_s3_jars

    if not any("hadoop-aws" in os.path.basename(j) for j in cached_s3_jars()):
        pytest.fail("S3A connector jars not installed: run scripts/setup.sh (fills ~/.cache/sparkdup/jars-s3)")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A small generated dataset (duplicates, a leak, broken files) and its ground truth."""
    from tools.groundtruth.generate import generate

    root = tmp_path_factory.mktemp("s3data")
    truth = generate(str(root), n_originals=12, seed=3)
    return root / "images", truth


def _start_s3_run(endpoint: str, tmp) -> tuple[subprocess.Popen, list[str], object, object]:
    """`sparkdup run` on s3a:// in a subprocess configured as a user would: S3A settings and
    credentials in spark-defaults.conf (SPARK_CONF_DIR), none on the command line."""
    (tmp / "spark-defaults.conf").write_text(
        "".join(f"spark.hadoop.{k} {v}\n" for k, v in _s3a_settings(endpoint).items()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(SPARK_CONF_DIR=str(tmp), PYSPARK_PYTHON=sys.executable)
    cmd = [os.path.join(os.path.dirname(sys.executable), "sparkdup"), "run", f"s3a://{BUCKET}/images",
           "--output", f"s3a://{BUCKET}/out", "--layout", "split/label", "--run-id", "s3-run",
           "--set", "spark.master=local[2]", "--set", "spark.driver_memory=2g"]
    out, err = open(tmp / "stdout.txt", "w+"), open(tmp / "stderr.txt", "w+")  # files: no pipe to fill
    return subprocess.Popen(cmd, stdout=out, stderr=err, text=True, env=env), cmd, out, err


def _local_stages(spark, images: str, out: str) -> None:
    """The same stages on the same files from local disk, in the test's own session (no
    report: only the tables are compared)."""
    import importlib

    from sparkdup.config import load_config
    from sparkdup.stage import run_stage

    cfg = load_config(overrides=["ingest.layout=split/label"])
    args = argparse.Namespace(input=images, manifest=None, layout="split/label", output=out, model=None,
                              batch_size=None, backend=None, k=None, duplicate_similarity=None)
    for stage in ("ingest", "embed", "neighbors", "analyze"):
        run_stage(importlib.import_module(f"sparkdup.jobs.{stage}"), spark, cfg, args, "local-run")


@pytest.fixture(scope="module")
def runs(spark, s3, dataset, tmp_path_factory):
    """Upload the images, run sparkdup on s3a:// (subprocess) and locally (this process) at
    the same time: (endpoint, boto3 client, the s3 run's stdout and stderr, local output)."""
    endpoint, client = s3
    images, _ = dataset
    for path in sorted(images.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), BUCKET, "images/" + path.relative_to(images).as_posix())
    tmp = tmp_path_factory.mktemp("s3-run")
    started = time.time()
    proc, cmd, out, err = _start_s3_run(endpoint, tmp)
    try:
        local_out = str(tmp / "local-out")
        _local_stages(spark, str(images), local_out)
        proc.wait(timeout=600)
    finally:
        proc.kill()
    print(f"sparkdup run on s3a and the local run: {time.time() - started:.1f} s")
    out.seek(0), err.seek(0)
    stdout, stderr = out.read(), err.read()
    out.close(), err.close()
    assert proc.returncode == 0, stdout[-3000:] + stderr[-6000:]
    assert SECRET_KEY not in " ".join(cmd), "the secret must not travel on the command line"
    return endpoint, client, stdout, stderr, local_out


@pytest.fixture(scope="module")
def s3_spark(spark, runs):
    """The test session, told how to reach the local S3 server (to read the results back)."""
    endpoint = runs[0]
    conf = spark._jsc.hadoopConfiguration()  # noqa: SLF001
    for key, value in _s3a_settings(endpoint).items():
        conf.set(key, value)
    return spark


def _relative(path: str, root: str) -> str:
    assert path.startswith(root), (path, root)
    return path[len(root):].lstrip("/")


def test_images_match_a_local_run(s3_spark, runs, dataset):
    from sparkdup.tables import read_table

    _, truth = dataset
    local_run = runs[4]
    s3_images = read_table(s3_spark, f"s3a://{BUCKET}/out", "images").toPandas()
    local_images = read_table(s3_spark, local_run, "images").toPandas()
    assert len(s3_images) == len(local_images) == len(truth)
    s3_images["rel"] = [_relative(p, f"s3a://{BUCKET}/images") for p in s3_images.path]
    local_root = local_images.path.str.extract(r"^(.*/images)/")[0].iloc[0]
    local_images["rel"] = [_relative(p, local_root) for p in local_images.path]
    cols = ["rel", "status", "content_hash", "label", "split", "width", "height"]
    merged = s3_images[cols].merge(local_images[cols], on="rel", suffixes=("_s3", "_local"))
    assert len(merged) == len(truth)
    for col in cols[1:]:
        assert merged[f"{col}_s3"].fillna(-1).tolist() == merged[f"{col}_local"].fillna(-1).tolist(), col
    assert (s3_images.status != "ok").sum() == truth.broken_reason.notna().sum() > 0
    # image_id is the stable hash of the path it was read from, here the s3a:// URI
    ids = s3_spark.createDataFrame(s3_images[["path"]]).selectExpr("xxhash64(path) AS id").toPandas()
    assert sorted(ids.id) == sorted(s3_images.image_id)


def test_duplicate_groups_and_embeddings_match_a_local_run(s3_spark, runs):
    from sparkdup.tables import read_table

    local_run = runs[4]

    def groups(out: str, root_pattern: str) -> set[frozenset[str]]:
        df = read_table(s3_spark, out, "duplicate_groups").toPandas()
        df["rel"] = df.path.str.replace(root_pattern, "", regex=True)
        return {frozenset(g.rel) for _, g in df.groupby("group_id")}

    s3_groups = groups(f"s3a://{BUCKET}/out", rf"^s3a://{BUCKET}/images/")
    local_groups = groups(local_run, r"^.*/images/")
    assert s3_groups and s3_groups == local_groups
    # embed re-read the bytes from s3a: every readable image has a vector
    images = read_table(s3_spark, f"s3a://{BUCKET}/out", "images")
    embedded = read_table(s3_spark, f"s3a://{BUCKET}/out", "embeddings")
    assert embedded.count() == images.where("status = 'ok'").count() > 0


def test_report_and_runs_written_to_s3(s3_spark, runs):
    from sparkdup.tables import read_table

    client = runs[1]
    page = client.get_object(Bucket=BUCKET, Key="out/report/index.html")["Body"].read().decode("utf-8")
    assert "Duplicate groups" in page and "data:image/jpeg;base64," in page  # thumbnails of s3a bytes
    rows = read_table(s3_spark, f"s3a://{BUCKET}/out", "runs").where("run_id = 's3-run'").toPandas()
    assert sorted(rows.stage) == ["analyze", "embed", "ingest", "neighbors", "report"]


def test_secret_key_appears_nowhere(s3_spark, runs):
    """Not in what the run printed or logged, not in the runs table, not in any file it wrote."""
    from sparkdup.tables import read_table

    _, client, stdout, stderr, _ = runs
    assert "report finished in" in stderr, "the run's log was not captured"
    # the SDK bundle carries unshaded slf4j 1.x classes: ahead of Spark's jars on the classpath
    # they silence all of Spark's logging; a line in the layout of sparkdup's log4j2
    # configuration (time, level, logger) shows Spark's logging still reaches the console
    assert re.search(r"^\d\d:\d\d:\d\d (WARN|ERROR|INFO) (?!sparkdup)\w+: ", stderr, flags=re.M), stderr[-2000:]
    assert SECRET_KEY not in stdout and SECRET_KEY not in stderr
    settings = read_table(s3_spark, f"s3a://{BUCKET}/out", "runs").select("settings").toPandas()
    assert len(settings) and not settings.settings.str.contains(SECRET_KEY, regex=False).any()
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="out/")
            for o in page.get("Contents", [])]
    assert any(k.startswith("out/runs/") for k in keys)
    assert any(k.startswith("out/_index/") and k.endswith(".parquet") for k in keys), "no neighbour index in S3"
    for key in keys:
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        assert SECRET_KEY.encode() not in body, key


def test_a_scheme_without_connector_is_one_clear_error(spark):
    """What a user without the S3A jars meets: a setup error naming the fix, not a JVM trace."""
    from sparkdup.errors import ConfigError
    from sparkdup.tables import path_exists

    with pytest.raises(ConfigError, match=r"no filesystem for nosuchfs://bucket/x .*hadoop-aws"):
        path_exists(spark, "nosuchfs://bucket/x")
