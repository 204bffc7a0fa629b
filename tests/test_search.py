"""`sparkdup search` on a small real output: copies, re-encodes, unrelated and broken queries."""
from __future__ import annotations

import glob
import json
import os
import shutil

import pytest
from PIL import Image

from tests.conftest import real_pngs

CLIPART = "/usr/share/openclipart/png"
ICONS = "/usr/share/icons/oxygen"


@pytest.fixture(scope="module")
def searched(spark, tmp_path_factory):
    """An output of 12 real PNGs and query files kept out of its input."""
    import sparkdup

    root = tmp_path_factory.mktemp("search")
    data, queries = root / "images", root / "queries"
    data.mkdir()
    queries.mkdir()
    files = real_pngs(CLIPART, 12, seed=7)
    for n, f in enumerate(files):
        shutil.copy(f, data / f"{n:02d}.png")
    shutil.copy(files[3], queries / "copy.png")  # byte-identical to 03.png
    with Image.open(files[5]) as img:  # a JPEG re-encode of 05.png
        rgb = img.convert("RGBA")
        canvas = Image.new("RGBA", rgb.size, (255, 255, 255, 255))
        Image.alpha_composite(canvas, rgb).convert("RGB").save(queries / "reencoded.jpg", quality=85)
    unrelated = real_pngs(ICONS, 1, seed=3)[0]
    shutil.copy(unrelated, queries / "unrelated.png")
    (queries / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)
    out = str(root / "out")
    sparkdup.run(str(data), out, spark=spark, settings={"output.format": "parquet"})
    return out, data, queries


def by_query(frame, name):
    return frame[frame["query"].str.endswith(name)].sort_values("rank")


def test_search_finds_copies_and_reencodes(spark, searched):
    import sparkdup

    out, data, queries = searched
    runs_before = spark.read.parquet(os.path.join(out, "runs")).count()
    hits = sparkdup.search(str(queries), out, k=5, spark=spark)

    copy = by_query(hits, "copy.png")
    assert len(copy) == 5 and list(copy["rank"]) == [1, 2, 3, 4, 5]
    assert copy.iloc[0]["path"].endswith("/03.png")
    assert copy.iloc[0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    assert bool(copy.iloc[0]["duplicate"]) is True
    assert list(copy["similarity"]) == sorted(copy["similarity"], reverse=True)

    reenc = by_query(hits, "reencoded.jpg")
    assert reenc.iloc[0]["path"].endswith("/05.png")
    assert bool(reenc.iloc[0]["duplicate"]) is True

    unrelated = by_query(hits, "unrelated.png")
    assert len(unrelated) == 5 and bool(unrelated.iloc[0]["duplicate"]) is False

    broken = by_query(hits, "broken.png")
    assert len(broken) == 1 and broken.iloc[0]["status"] == "broken" and broken.iloc[0]["path"] is None
    assert "cannot" in broken.iloc[0]["error"]
    meta = json.loads(open(glob.glob(os.path.join(out, "_index", "*", "meta.json"))[0]).read())
    assert meta["buckets"] == 1 and meta["centroids"] is None and meta["dim"] > 0
    # the model a search embeds its queries with, without reading the embeddings table
    assert meta["model"] == spark.read.parquet(os.path.join(out, "embeddings")).first()["model"]
    # search only reads: no runs row
    assert spark.read.parquet(os.path.join(out, "runs")).count() == runs_before


def test_cli_json_and_table(spark, searched, capsys):
    from sparkdup.cli import main

    out, data, queries = searched
    assert main(["search", str(queries / "copy.png"), str(queries / "broken.png"), "--output", out,
                 "--k", "3", "--json", "--set", "spark.master=local[2]"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    copies = [r for r in lines if r["query"].endswith("copy.png")]
    assert len(copies) == 3 and copies[0]["path"].endswith("/03.png") and copies[0]["duplicate"] is True
    assert {"query", "path", "similarity", "group_id", "duplicate"} <= set(copies[0])
    broken = [r for r in lines if r["query"].endswith("broken.png")]
    assert broken == [{"query": broken[0]["query"], "path": None, "similarity": None, "group_id": None,
                       "duplicate": None, "status": "broken", "error": broken[0]["error"]}]

    assert main(["search", str(queries / "copy.png"), "--output", out, "--k", "2",
                 "--set", "spark.master=local[2]"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["query", "rank", "path", "similarity", "group_id", "duplicate"]
    assert len(table) == 3 and table[1].split()[1] == "1" and table[1].split()[-1] == "true"


def test_output_without_index_is_one_line(spark, searched, capsys):
    from sparkdup.cli import main

    out, data, queries = searched
    index, moved = os.path.join(out, "_index"), os.path.join(out, "_index_moved")
    os.rename(index, moved)
    try:
        assert main(["search", str(queries / "copy.png"), "--output", out, "--set", "spark.master=local[2]"]) == 2
    finally:
        os.rename(moved, index)
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sparkdup: error:") and "rerun `sparkdup neighbors" in err[-1]


def test_search_probes_bucket_centroids(spark, searched):
    """With several buckets the persisted centroids pick the buckets to search."""
    import sparkdup
    from sparkdup import indexes

    out, data, queries = searched
    sparkdup.neighbors(out, spark=spark, settings={"output.format": "parquet", "neighbors.buckets": 3,
                                                   "neighbors.probe_buckets": 3})
    run_id = spark.read.parquet(os.path.join(out, "neighbors")).select("run_id").first()[0]
    meta = indexes.read_meta(spark, indexes.index_root(out, run_id))
    assert meta["buckets"] == 3 and len(meta["centroids"]) == 3 and len(meta["centroids"][0]) == meta["dim"]
    hits = sparkdup.search([str(queries / "copy.png"), str(queries / "reencoded.jpg")], out, k=3, spark=spark,
                           settings={"neighbors.probe_buckets": 3})
    assert by_query(hits, "copy.png").iloc[0]["path"].endswith("/03.png")
    assert by_query(hits, "reencoded.jpg").iloc[0]["path"].endswith("/05.png")


def test_signatures_read_only_for_hits_the_rule_compares(spark, searched):
    """A hit below analyze.duplicate_similarity gets no signature (the lookup does not scan
    that column for it); one above gets the stored one."""
    import numpy as np

    from sparkdup.jobs import search

    out = searched[0]
    ids = [r.image_id for r in spark.read.parquet(os.path.join(out, "images")).where("status = 'ok'")
           .orderBy("image_id").limit(3).collect()]
    close = search.to_verify(np.array([ids]), np.array([[0.95, 0.5, float("nan")]]), 0.8)
    assert close == {ids[0]}
    found = search.hits_of(spark, out, ids, verify=close)
    assert set(found) == set(ids)
    assert found[ids[0]]["signature"] is not None
    assert found[ids[1]]["signature"] is None and found[ids[2]]["signature"] is None
    assert all(found[i]["path"] for i in ids)


def test_local_lookup_reads_what_spark_reads(spark, searched, tmp_path):
    """A local output's hits are read with pyarrow (sparkdup.lookup), Parquet and Delta
    alike, and give exactly the rows Spark's filtered scans give; a remote-looking output
    is left to Spark."""
    from sparkdup import lookup
    from sparkdup.jobs import search

    out = searched[0]
    images = spark.read.parquet(os.path.join(out, "images"))
    ids = [r.image_id for r in images.where("status = 'ok'").orderBy("image_id").limit(4).collect()]
    delta_out = str(tmp_path / "delta_out")
    images.write.format("delta").save(os.path.join(delta_out, "images"))
    spark.read.parquet(os.path.join(out, "duplicate_groups")).write.format("delta").save(
        os.path.join(delta_out, "duplicate_groups"))
    through_spark = (spark.read.parquet(os.path.join(out, "images")).select("image_id", "path", "content_hash",
                                                                            "signature"),
                     spark.read.parquet(os.path.join(out, "duplicate_groups")).select("image_id", "group_id"))
    expected = search.hits_of(spark, out, ids, through_spark, verify=set(ids[:2]))
    assert set(expected) == set(ids) and expected[ids[0]]["signature"] is not None
    for where in (out, delta_out):
        tables = search.hit_tables(spark, where)
        assert all(not isinstance(t, type(images)) for t in tables)  # pyarrow datasets, no Spark frame
        assert search.hits_of(spark, where, ids, tables, verify=set(ids[:2])) == expected
    assert lookup.open_table("s3a://bucket/out", "images") is None
