"""The ingest job on a local Spark session: every input row out, with the right values."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from pyspark.sql import functions as F

from conftest import OPENCLIPART, OXYGEN, real_pngs
from imagefiles import make_bad_folder
from sparkdup.config import load_config
from sparkdup.errors import ConfigError, InputError
from sparkdup.jobs.ingest import build_images
from sparkdup.tables import read_table, write_table

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _uri(path: str) -> str:
    return "file:" + os.path.abspath(path)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Real images from two Debian packages, a copy, dark/bright images, and the bad files."""
    root = tmp_path_factory.mktemp("ds")
    real = real_pngs(OPENCLIPART, 12, seed=1) + real_pngs(OXYGEN, 6, seed=2)
    os.makedirs(root / "real")
    for i, src in enumerate(real):
        shutil.copy(src, root / "real" / f"{i:02d}_{os.path.basename(src)}")
    shutil.copy(real[0], root / "real" / "copy_of_00.png")
    from PIL import Image
    Image.new("RGB", (64, 64), (0, 0, 0)).save(root / "real" / "black.png")
    Image.new("RGB", (64, 64), (255, 255, 255)).save(root / "real" / "white.png")
    Image.new("RGB", (400, 40), (0, 128, 0)).save(root / "real" / "banner.png")
    (root / "real" / "notes.txt").write_text("not an image: filtered by extension")
    expected, size = make_bad_folder(str(root / "bad"), real[1])
    return root, expected, size, real


@pytest.fixture(scope="module")
def images(spark, dataset):
    root = dataset[0]
    cfg = load_config()
    out = str(root / "out")
    write_table(build_images(spark, cfg, str(root), None, "run-1"), out, "images", "delta")
    return read_table(spark, out, "images").toPandas().set_index("path"), out


def test_every_file_is_one_row(images, dataset):
    df, _ = images
    root, expected, _, real = dataset
    n_files = len(expected) + len(real) + 4  # copy, black, white, banner (notes.txt is not an image)
    assert len(df) == n_files
    assert df["image_id"].is_unique


def test_bad_files_get_status_and_reason(images, dataset):
    df, _ = images
    root, expected, _, _ = dataset
    for name, status in expected.items():
        row = df.loc[_uri(root / "bad" / name)]
        assert row["status"] == status, (name, row["error"])
        assert (row["error"] is None) == (status == "ok"), name
    assert df.loc[_uri(root / "bad" / "empty.jpg"), "size_bytes"] == 0


def test_values_are_right(images, dataset):
    df, _ = images
    root, _, (w, h), real = dataset
    real_dir = root / "real"
    assert "dark" in df.loc[_uri(real_dir / "black.png"), "flags"]
    assert "bright" in df.loc[_uri(real_dir / "white.png"), "flags"]
    assert "low_information" in df.loc[_uri(real_dir / "white.png"), "flags"]
    assert list(df.loc[_uri(real_dir / "banner.png"), "flags"]).count("odd_aspect") == 1
    rot = df.loc[_uri(root / "bad" / "exif_rotated.jpg")]
    assert (rot["width"], rot["height"]) == (h, w)
    original = df.loc[_uri(real_dir / f"00_{os.path.basename(real[0])}")]
    assert df.loc[_uri(real_dir / "copy_of_00.png"), "content_hash"] == original["content_hash"]
    # the copy, and the two differently named byte-equal PNGs in bad/, are the only repeats
    assert df[df.status == "ok"]["content_hash"].nunique() == (df.status == "ok").sum() - 2
    ok = df[df.status == "ok"]
    assert ok[["width", "height", "brightness", "blur", "entropy"]].notna().all().all()
    assert not df[df.status != "ok"]["flags"].map(len).any()


def test_image_id_is_xxhash64_of_path_and_stable(spark, images, dataset):
    df, out = images
    root = dataset[0]
    ids = spark.createDataFrame(pd.DataFrame({"path": list(df.index)})).select("path", F.xxhash64("path").alias("id"))
    assert dict(ids.toPandas().values) == df["image_id"].to_dict()
    # rerun into the same output: replaced (not appended), same ids, previous version kept in history
    write_table(build_images(spark, load_config(), str(root), None, "run-2"), out, "images", "delta")
    again = read_table(spark, out, "images").toPandas().set_index("path")
    assert len(again) == len(df) and set(again["run_id"]) == {"run-2"}
    assert again["image_id"].to_dict() == df["image_id"].to_dict()
    history = spark.sql(f"DESCRIBE HISTORY delta.`{out}/images`").count()
    assert history >= 2


def test_manifest_with_labels_extra_columns_and_missing_file(spark, dataset, tmp_path):
    root, _, _, real = dataset
    files = sorted(os.listdir(root / "real"))[:5]
    rows = [{"path": str(root / "real" / f), "label": f"class{i % 2}", "split": "train", "photographer": f"p{i}"}
            for i, f in enumerate(files)]
    rows.append({"path": str(root / "real" / "does_not_exist.png"), "label": "x", "split": "val", "photographer": "q"})
    rows.append({"path": "../" + os.path.relpath(root / "bad" / "truncated.png", root), "label": "y",
                 "split": "val", "photographer": "r"})  # relative to the manifest's folder
    os.makedirs(tmp_path / "m")
    manifest = tmp_path / "m" / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    # relative paths resolve against the manifest's folder: put the manifest next to root
    manifest_near = root / "m" / "manifest.csv"
    os.makedirs(manifest_near.parent, exist_ok=True)
    shutil.copy(manifest, manifest_near)
    df = build_images(spark, load_config(), None, str(manifest_near), "run-m").toPandas().set_index("path")
    assert len(df) == len(rows)
    missing = df.loc[_uri(root / "real" / "does_not_exist.png")]
    assert missing["status"] == "unreadable" and missing["error"] == "file not found"
    assert df.loc[_uri(root / "bad" / "truncated.png"), "status"] == "broken"
    assert set(df["photographer"]) == {r["photographer"] for r in rows}
    assert (df.loc[_uri(root / "real" / files[1]), ["label", "split"]] == ["class1", "train"]).all()


def test_layout_split_label(spark, tmp_path):
    for split, label in [("train", "cat"), ("val", "dog")]:
        os.makedirs(tmp_path / split / label)
        shutil.copy(real_pngs(OPENCLIPART, 1, seed=5)[0], tmp_path / split / label / "a.png")
    cfg = load_config(overrides=["ingest.layout=split/label"])
    df = build_images(spark, cfg, str(tmp_path), None, "r").toPandas()
    assert sorted(zip(df.split, df.label)) == [("train", "cat"), ("val", "dog")]


def test_file_that_vanishes_before_reading_is_unreadable(spark, tmp_path):
    for i, src in enumerate(real_pngs(OPENCLIPART, 3, seed=7)):
        shutil.copy(src, tmp_path / f"{i}.png")
    plan = build_images(spark, load_config(), str(tmp_path), None, "r")  # files are listed now
    os.remove(tmp_path / "1.png")
    df = plan.toPandas().set_index("path")
    assert len(df) == 3
    gone = df.loc[_uri(tmp_path / "1.png")]
    assert gone["status"] == "unreadable" and "could not be read" in gone["error"]


def test_user_errors_are_clear(spark, tmp_path):
    with pytest.raises(InputError, match="input not found"):
        build_images(spark, load_config(), str(tmp_path / "nope"), None, "r")
    with pytest.raises(InputError, match="manifest not found"):
        build_images(spark, load_config(), None, str(tmp_path / "nope.csv"), "r")
    (tmp_path / "m.csv").write_text("file,label\na.png,x\n")
    with pytest.raises(InputError, match="no 'path' column"):
        build_images(spark, load_config(), None, str(tmp_path / "m.csv"), "r")
    with pytest.raises(ConfigError, match="unknown setting 'ingest.flagz'"):
        load_config(overrides=["ingest.flagz=1"])


def test_command_line_and_spark_submit_agree(dataset, tmp_path):
    """`sparkdup ingest` and `spark-submit jobs/ingest.py` write the same table (parquet here)."""
    root = dataset[0] / "real"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    bin_dir = os.path.dirname(sys.executable)
    cli = subprocess.run([os.path.join(bin_dir, "sparkdup"), "ingest", str(root), "--output", str(tmp_path / "a"),
                          "--format", "parquet", "--set", "spark.master=local[1]"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert cli.returncode == 0, cli.stderr[-3000:]
    submit = subprocess.run([os.path.join(bin_dir, "spark-submit"), "--master", "local[1]",
                             os.path.join(REPO, "jobs", "ingest.py"), str(root), "--output", str(tmp_path / "b"),
                             "--format", "parquet"], capture_output=True, text=True, env=env, timeout=300)
    assert submit.returncode == 0, submit.stderr[-3000:]
    a = pd.read_parquet(tmp_path / "a" / "images").sort_values("path").reset_index(drop=True)
    b = pd.read_parquet(tmp_path / "b" / "images").sort_values("path").reset_index(drop=True)
    cols = ["path", "image_id", "status", "content_hash", "width", "height", "blur"]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    bad = subprocess.run([os.path.join(bin_dir, "sparkdup"), "ingest", str(tmp_path / "missing"), "--output",
                          str(tmp_path / "c"), "--format", "parquet", "--set", "spark.master=local[1]"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "input not found" in bad.stderr and "Traceback" not in bad.stderr


def test_glob_input(spark, tmp_path):
    for i, src in enumerate(real_pngs(OPENCLIPART, 3, seed=8)):
        shutil.copy(src, tmp_path / f"{i}.png")
    shutil.copy(tmp_path / "0.png", tmp_path / "0.jpeg.bak")
    (tmp_path / "empty.png").write_bytes(b"")
    df = build_images(spark, load_config(), str(tmp_path / "*.png"), None, "r", glob=True).toPandas().set_index("path")
    assert sorted(os.path.basename(p) for p in df.index) == ["0.png", "1.png", "2.png", "empty.png"]
    assert df.loc[_uri(tmp_path / "empty.png"), "status"] == "empty"
