"""Ingest on inputs users really have: every file in is one row out, with its status and reason.

Names built from bytes (not UTF-8, `_`/`.` prefixes, glob and URI characters, newlines),
symlinks made by the tests (loops, aliases, dangling), manifests as Excel and pandas write
them (quoting, duplicates, empty and web paths), and the mistakes that must fail in one line.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from conftest import OPENCLIPART, real_pngs
from sparkdup.config import load_config
from sparkdup.errors import InputError, OutputError
from sparkdup.jobs import ingest
from sparkdup.jobs.ingest import build_images
from sparkdup.preflight import release_output
from sparkdup.tables import read_table
from test_listing import _spelled, hold_output, messy  # noqa: F401  (the fixture)


def _args(input_dir, out, **kw):
    base = dict(input=None if input_dir is None else str(input_dir), manifest=None, layout=None, output=str(out),
                glob=None)
    return argparse.Namespace(**(base | kw))


def test_messy_folder_every_file_one_row(spark, messy, tmp_path, caplog):
    root, expected = messy
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="sparkdup"):
        counts = ingest.run(spark, load_config(), _args(os.fsdecode(root), out), "messy")
    release_output(str(out))
    df = read_table(spark, str(out), "images").toPandas().set_index("path")
    assert sorted(df.index) == sorted(_spelled(root, rel) for rel in expected)  # no sibling, no loop copies
    assert df["image_id"].is_unique
    dead = df.loc[_spelled(root, b"dead.png")]
    assert dead["status"] == "unreadable" and dead["error"].startswith("broken symbolic link")
    others = df.drop(_spelled(root, b"dead.png"))
    assert (others["status"] == "ok").all(), others[others.status != "ok"][["status", "error"]]
    assert others["content_hash"].nunique() == 1  # all copies of one real image, read byte for byte
    assert counts["rows_written"] == counts["images"] == len(expected)
    assert counts["files_skipped_extension"] == 3 and counts["skipped_ext_txt"] == 2 and counts["skipped_ext_ico"] == 1
    assert counts["files_skipped_hidden"] == 2
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "3 of 18 files (16.7%) skipped by extension (.txt 2, .ico 1)" in warned
    assert "2 hidden entries (names starting with '.') skipped: set ingest.include_hidden=true" in warned
    runs_like = read_table(spark, str(out), "images").select("run_id").distinct().collect()
    assert [r.run_id for r in runs_like] == ["messy"]


def test_later_stages_get_the_bytes_back(spark, tmp_path):
    """embed/report/export re-read the bytes of `ok` images (sparkdup.contents): names Spark's
    reader skips and non-UTF-8 paths included, a folder with glob characters taken literally."""
    from sparkdup.contents import read_contents

    root = os.fsencode(str(tmp_path / "[set]{1}"))
    src = real_pngs(OPENCLIPART, 1, seed=18)[0]
    for name in (b"plain.png", b"_DSC0002.png", b"caf\xe9.png", b"_sub/x.png"):
        os.makedirs(os.path.dirname(os.path.join(root, name)), exist_ok=True)
        shutil.copy(src, os.path.join(root, name))
    os.makedirs(tmp_path / "set1")
    shutil.copy(src, tmp_path / "set1" / "sibling.png")  # what a glob reading of the folder would add
    images = build_images(spark, load_config(), os.fsdecode(root), None, "c").where("status = 'ok'")
    want = images.select("image_id", "path").toPandas()
    assert len(want) == 4
    back = read_contents(spark, images.select("image_id", "path"), 10 ** 7).toPandas()
    assert sorted(back["image_id"]) == sorted(want["image_id"])
    assert back["content"].map(len).eq(os.path.getsize(src)).all()


def test_zero_images_warns(spark, tmp_path, caplog):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.txt").write_text("no images")
    with caplog.at_level(logging.WARNING, logger="sparkdup"):
        counts = ingest.run(spark, load_config(), _args(tmp_path / "in", tmp_path / "out"), "zero")
    release_output(str(tmp_path / "out"))
    assert counts["images"] == 0 and counts["files_listed"] == 1
    assert any("0 images found (1 files listed)" in r.getMessage() for r in caplog.records)


def test_manifest_every_row_one_row(spark, tmp_path):
    src = real_pngs(OPENCLIPART, 2, seed=12)
    (tmp_path / "d").mkdir()
    shutil.copy(src[0], tmp_path / "d" / "_DSC0001.png")
    shutil.copy(src[1], tmp_path / "d" / "b.png")
    rows = [
        {"path": "d/_DSC0001.png", "label": "cat, striped", "note": 'said "meow"'},
        {"path": "d/b.png", "label": "dog", "note": "two\nlines"},
        {"path": "./d/b.png", "label": "wolf", "note": "same file again"},
        {"path": "", "label": "x", "note": "no path"},
        {"path": "", "label": "y", "note": "no path either"},
        {"path": "http://example.invalid/c.png", "label": "z", "note": "web"},
        {"path": "d/missing.png", "label": "w", "note": "gone"},
    ]
    manifest = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)  # RFC 4180 quoting, as pandas writes it
    df = build_images(spark, load_config(), None, str(manifest), "m").toPandas().sort_values("manifest_line")
    assert len(df) == len(rows) and df["image_id"].is_unique
    assert df["label"].tolist() == [r["label"] for r in rows]
    assert df["note"].tolist() == [r["note"] for r in rows]
    assert df["status"].tolist() == ["ok", "ok", "duplicate", "unsupported", "unsupported", "unsupported",
                                     "unreadable"]
    errors = df["error"].tolist()
    assert errors[2].startswith("same file as manifest line 3")
    assert errors[3] == errors[4] == "empty path in the manifest"
    assert errors[5].startswith("http: URLs are not read") and errors[6] == "file not found"


def test_parquet_manifest_keeps_column_types(spark, tmp_path):
    src = real_pngs(OPENCLIPART, 2, seed=13)
    spark.createDataFrame([(src[0], 3, "a"), (src[1], 7, "b"), (src[1], 9, "c")],
                          "path string, score int, label string").coalesce(1).write.parquet(str(tmp_path / "m"))
    df = build_images(spark, load_config(), None, str(tmp_path / "m"), "p")
    assert dict(df.dtypes)["score"] == "int"
    got = df.toPandas().sort_values("manifest_line")
    assert got["score"].tolist() == [3, 7, 9] and got["status"].tolist() == ["ok", "ok", "duplicate"]


def test_manifest_mistakes_fail_before_work(spark, tmp_path):
    (tmp_path / "m.csv").write_text("path,status,image_id\na.png,x,1\n")
    with pytest.raises(InputError, match="named like sparkdup's own output: status, image_id"):
        build_images(spark, load_config(), None, str(tmp_path / "m.csv"), "r")
    (tmp_path / "s.csv").write_text("path;label\na.png;x\n")
    with pytest.raises(InputError, match="no 'path' column .*set ingest.manifest_separator"):
        build_images(spark, load_config(), None, str(tmp_path / "s.csv"), "r")


def test_output_that_is_a_file_fails_before_reading(spark, tmp_path):
    (tmp_path / "in").mkdir()
    shutil.copy(real_pngs(OPENCLIPART, 1, seed=14)[0], tmp_path / "in" / "a.png")
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        ingest.run(spark, load_config(), _args(tmp_path / "in", tmp_path / "out"), "r")


def test_concurrent_run_on_one_output_is_one_line(tmp_path):
    """A second `sparkdup ingest` on an output another run holds: exit 2, one line, no trace."""
    (tmp_path / "in").mkdir()
    shutil.copy(real_pngs(OPENCLIPART, 1, seed=15)[0], tmp_path / "in" / "a.png")
    holder = hold_output(tmp_path / "in", tmp_path / "out", 120)
    try:
        env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
        cli = subprocess.run([os.path.join(os.path.dirname(sys.executable), "sparkdup"), "ingest",
                              str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--format", "parquet",
                              "--set", "spark.master=local[1]", "--set", "spark.driver_memory=1g"],
                             capture_output=True, text=True, env=env, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    errors = [line for line in cli.stderr.splitlines() if line.startswith("sparkdup: error:")]
    assert cli.returncode == 2 and "Traceback" not in cli.stderr, cli.stderr[-2000:]
    assert errors == [f"sparkdup: error: another sparkdup run (pid {holder.pid}, started "
                      f"{errors[0].split('started ', 1)[1].split(')')[0]}) is writing to --output "
                      f"{tmp_path / 'out'}: wait for it to finish, or use another --output"]
    assert not (tmp_path / "out" / "images").exists()


def test_s3a_folder_every_object_one_row(spark, tmp_path):
    """On object storage too: `_` names read (by the driver: Spark's reader skips them),
    dot-names counted, brackets literal, an empty object `empty`. Local S3 server (moto)."""
    import boto3
    from moto.server import ThreadedMotoServer

    from test_s3 import ACCESS_KEY, SECRET_KEY, _s3a_settings

    # Not test_s3's bucket: Hadoop caches one S3A filesystem per bucket for the session, and
    # this server (with its port) is gone when the test ends.
    bucket = "sparkdup-inputs-test"

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
        client.create_bucket(Bucket=bucket)
        body = open(real_pngs(OPENCLIPART, 1, seed=16)[0], "rb").read()
        keys = ["in[1]/_DSC0001.png", "in[1]/a b.png", "in[1]/_incoming/c.png", "in[1]/x{y}.png", "in[1]/empty.png"]
        for key in keys:
            client.put_object(Bucket=bucket, Key=key, Body=b"" if "empty" in key else body)
        for key in ["in[1]/.hidden.png", "in[1]/notes.txt", "in1/sibling.png"]:
            client.put_object(Bucket=bucket, Key=key, Body=body)
        conf = spark._jsc.hadoopConfiguration()  # noqa: SLF001
        for k, v in _s3a_settings(endpoint).items():
            conf.set(k, v)
        df = build_images(spark, load_config(), f"s3a://{bucket}/in[1]", None, "s3").toPandas().set_index("path")
    finally:
        server.stop()
    assert sorted(df.index) == sorted(f"s3a://{bucket}/{k}" for k in keys)
    assert df.loc[f"s3a://{bucket}/in[1]/empty.png", "status"] == "empty"
    ok = df.drop(f"s3a://{bucket}/in[1]/empty.png")
    assert (ok["status"] == "ok").all(), ok[["status", "error"]]
    assert ok["content_hash"].nunique() == 1 and ok["size_bytes"].eq(len(body)).all()


def test_glob_only_when_asked(spark, tmp_path):
    (tmp_path / "a1").mkdir()
    shutil.copy(real_pngs(OPENCLIPART, 1, seed=17)[0], tmp_path / "a1" / "x.png")
    with pytest.raises(InputError, match=r"the glob .*a\[2-9\] matches nothing"):
        build_images(spark, load_config(), str(tmp_path / "a[2-9]"), None, "g", glob=True)
    with pytest.raises(InputError, match=r"input not found: .*a\[0-9\]"):
        build_images(spark, load_config(), str(tmp_path / "a[0-9]"), None, "g")  # literal: no such folder
    df = build_images(spark, load_config(), str(tmp_path / "a[0-9]"), None, "g", glob=True).toPandas()
    assert df["path"].tolist() == ["file:" + str(tmp_path / "a1" / "x.png")] and df["status"].tolist() == ["ok"]
