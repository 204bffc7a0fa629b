"""A run registered with --database is queryable from a separate spark-sql process."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

from conftest import OPENCLIPART, real_pngs
from sparkdup.session import DELTA_CATALOG, DELTA_EXTENSION, cached_jars, metastore_settings


def test_spark_sql_sees_registered_tables(tmp_path):
    src = tmp_path / "images"
    src.mkdir()
    for i, f in enumerate(real_pngs(OPENCLIPART, 3, seed=9)):
        shutil.copy(f, src / f"{i}.png")
    shutil.copy(src / "0.png", src / "copy.png")
    meta = str(tmp_path / "meta")
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    ingest = subprocess.run([os.path.join(bin_dir, "sparkdup"), "ingest", str(src), "--output", str(tmp_path / "out"),
                             "--database", "photos_qa", "--set", f"spark.metastore_dir={meta}",
                             "--set", "spark.master=local[1]"], capture_output=True, text=True, env=env, timeout=300)
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    confs = metastore_settings(meta) | {"spark.sql.extensions": DELTA_EXTENSION,
                                        "spark.sql.catalog.spark_catalog": DELTA_CATALOG}
    args = [os.path.join(bin_dir, "spark-sql"), "--master", "local[1]", "--jars", ",".join(cached_jars())]
    for key, value in confs.items():
        args += ["--conf", f"{key}={value}"]
    query = "SELECT count(*), count(DISTINCT content_hash) FROM photos_qa.images"
    sql = subprocess.run(args + ["-e", query], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert sql.returncode == 0, sql.stderr[-3000:]
    assert sql.stdout.strip().splitlines()[-1].split() == ["4", "3"]
