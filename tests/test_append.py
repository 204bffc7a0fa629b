"""`run --append` on real clipart: the same groups and leaks as a full run, one MERGE per
table, only new files read and embedded, vanished files kept as `missing`, and the
refusals (Parquet, another model, an output in use)."""
from __future__ import annotations

import logging
import os
import shutil
import signal

import pytest

from tests.appendcase import CLIPART, SETTINGS, TABLES, _version
from tests.conftest import real_pngs

# The shared fixture runs the pipeline three times (first run, append, full run): minutes
# on a loaded 2-core machine, charged to the first test that uses it.
pytestmark = pytest.mark.timeout(3600)


def delta(spark, out: str, table: str):
    return spark.read.format("delta").load(os.path.join(out, table))


def groups_of(spark, out: str) -> set[tuple]:
    return {(r.group_id, r.path, r.representative_id, r.kind) for r in
            delta(spark, out, "duplicate_groups").select("group_id", "path", "representative_id", "kind").collect()}


def leaks_of(spark, out: str) -> set[tuple]:
    return {(r.group_id, r.path_a, r.path_b) for r in delta(spark, out, "leaks").collect()}


def members(spark, out: str, path: str, version: int | None = None) -> set[str]:
    g = delta(spark, out, "duplicate_groups") if version is None else spark.read.format("delta").option(
        "versionAsOf", version).load(os.path.join(out, "duplicate_groups"))
    gid = g.where(g.path == path).select("group_id").first()
    return set() if gid is None else {r.path for r in g.where(g.group_id == gid[0]).select("path").collect()}


def test_append_gives_the_groups_and_leaks_of_a_full_run(spark, appended):
    out, full = appended["appended"], appended["full"]
    assert groups_of(spark, out) == groups_of(spark, full)
    assert leaks_of(spark, out) == leaks_of(spark, full)
    assert leaks_of(spark, out)  # p_val.png (val) copies p.png (train)


def test_new_files_join_replace_and_link_groups(spark, appended):
    out, names, new = appended["appended"], appended["names"], appended["new"]
    # joins an existing group
    assert members(spark, out, new["p_val"]) == {names["p"], names["p_copy"], new["p_val"]}
    # more pixels: the new file is the representative of Q's group now
    g = delta(spark, out, "duplicate_groups")
    q = g.where(g.path == names["q"]).first()
    assert q.representative_id == g.where(g.path == new["q_big"]).first().image_id
    assert members(spark, out, names["q"]) == {names["q"], names["q_re"], new["q_big"]}
    # the whole picture links the two crops' groups, which were two before the append
    before = appended["versions_before"]["duplicate_groups"]
    left, right = members(spark, out, names["s_left"], before), members(spark, out, names["s_right"], before)
    assert left == {names["s_left"], names["s_left_copy"]} and right == {names["s_right"], names["s_right_copy"]}
    assert members(spark, out, new["s_whole"]) == left | right | {new["s_whole"]}


def test_only_new_files_are_read_and_embedded(spark, appended):
    out, run_id = appended["appended"], appended["append_run"]
    runs = {r.stage: r.counts for r in delta(spark, out, "runs").where(f"run_id = '{run_id}'").collect()}
    assert runs["ingest"]["rows_written"] == 5  # 4 new files + 1 now missing
    assert runs["embed"]["embedded"] == 4
    images = delta(spark, out, "images")
    changed = {r.path for r in images.where(images.run_id == run_id).collect()}
    assert changed == set(appended["new"].values()) | {appended["names"]["f0"]}
    unchanged = images.where(images.run_id == appended["first_run"]).count()
    assert unchanged == images.count() - 5


def test_kept_model_inputs_cover_old_and_new_files_after_the_append(spark, appended):
    """The append reads only the new files, yet the side table of pixels (sparkdup.decoded)
    still holds every decoded image once, so the report and a later embed need no file."""
    from sparkdup import decoded

    out = appended["appended"]
    side = decoded._table(spark, out)
    assert side is not None
    rows = side.select("image_id", "prepared_as").collect()
    images = delta(spark, out, "images").where("status = 'ok'").select("image_id", "path").collect()
    assert sorted(r.image_id for r in rows) == sorted(r.image_id for r in images)  # each once, not the vanished
    assert set(appended["new"].values()) <= {r.path for r in images} and len({r.prepared_as for r in rows}) == 1
    assert not os.path.exists(os.path.join(out, "_decoded.next"))


def test_vanished_file_is_missing_and_leaves_every_finding(spark, appended):
    out, gone = appended["appended"], appended["names"]["f0"]
    row = delta(spark, out, "images").where(f"path = '{gone}'").first()
    assert row.status == "missing" and row.flags == [] and "no longer in the input" in row.error
    image_id = row.image_id
    for table in ("embeddings", "duplicate_groups", "outliers", "label_issues"):
        assert delta(spark, out, table).where(f"image_id = {image_id}").count() == 0, table
    nb = delta(spark, out, "neighbors")
    assert nb.where(f"src = {image_id} OR dst = {image_id}").count() == 0
    # outliers are recomputed over every embedded image, as in a full run
    assert delta(spark, out, "outliers").count() == delta(spark, out, "embeddings").count() == \
        delta(spark, appended["full"], "outliers").count()


def test_neighbors_of_new_images_match_a_full_run(spark, appended):
    """Each list after the append holds the neighbours of a full run's: the same similarities
    rank by rank, and the same images wherever no tie crosses the cut at k (the three copies of
    P and the two of each S crop are byte-identical, so which tied copy fills the last place is
    arbitrary in both runs)."""
    out, full = appended["appended"], appended["full"]
    new_ids = [r.image_id for r in delta(spark, out, "images").where(
        f"run_id = '{appended['append_run']}' AND status = 'ok'").collect()]

    def lists(o):
        nb = delta(spark, o, "neighbors").where("source != 'hash'").orderBy("src", "rank").collect()
        got: dict = {}
        for r in nb:
            got.setdefault(r.src, []).append((r.dst, r.similarity))
        return got

    def untied(edges):
        """The images ranked strictly above the last similarity (no tie can swap them out)."""
        cut = edges[-1][1]
        return {d for d, s in edges if s > cut + 1e-4}

    a, f = lists(out), lists(full)
    assert len(new_ids) == 4
    assert set(a) == set(f)
    for s in f:
        assert [x[1] for x in a[s]] == pytest.approx([x[1] for x in f[s]], abs=1e-4), s
        assert untied(a[s]) == untied(f[s]), s
    for i in new_ids:
        assert {d for d, _ in a[i]} >= untied(f[i])


def test_one_merge_per_table_per_run(spark, appended):
    """At most one commit per table, a MERGE; the tables this append changes have exactly one."""
    out, before = appended["appended"], appended["versions_before"]
    for table in TABLES:
        history = spark.sql(f"DESCRIBE HISTORY delta.`{os.path.join(out, table)}`").collect()
        after = [h for h in history if h.version > before[table]]
        assert [h.operation for h in after] in ([], ["MERGE"]), table
        if table in ("images", "embeddings", "neighbors", "duplicate_pairs", "duplicate_groups", "leaks"):
            assert len(after) == 1, table


def test_unchanged_group_keeps_its_id_and_run(spark, appended):
    out = appended["appended"]
    g = delta(spark, out, "duplicate_groups")
    # P's group changed (a member arrived): its rows carry the append's run; ids stay the smallest member's
    p = g.where(g.path == appended["names"]["p"]).first()
    assert p.run_id == appended["append_run"]
    assert p.group_id == min(r.image_id for r in g.where(g.group_id == p.group_id).collect())


def test_append_onto_nothing_is_a_first_run(spark, tmp_path, caplog):
    import sparkdup

    data = tmp_path / "data"
    data.mkdir()
    for n, f in enumerate(real_pngs(CLIPART, 2, seed=5)):
        shutil.copy(f, data / f"{n}.png")
    with caplog.at_level(logging.INFO, logger="sparkdup"):
        sparkdup.ingest(str(data), str(tmp_path / "out"), spark=spark, append=True)
    assert "has no images table yet; this is a first run" in caplog.text
    assert delta(spark, str(tmp_path / "out"), "images").count() == 2


def test_parquet_output_refuses_append_in_one_line(tmp_path, capsys):
    from sparkdup.cli import main

    (tmp_path / "in").mkdir()
    rc = main(["run", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--format", "parquet", "--append"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "--append needs output.format=delta" in err[0]


def test_another_model_is_refused_naming_both(spark, appended):
    import sparkdup
    from sparkdup.errors import OutputError

    before = _version(spark, appended["appended"], "embeddings")
    with pytest.raises(OutputError, match=r"model efficientnet_lite0 \(\d+ dimensions\), the settings ask for "
                                         r"efficientnet_lite0:int8"):
        sparkdup.embed(appended["appended"], spark=spark, append=True,
                       settings=SETTINGS | {"embed.model": "efficientnet_lite0:int8"})
    assert _version(spark, appended["appended"], "embeddings") == before


def test_second_append_at_once_fails_cleanly(spark, appended):
    import sparkdup
    from sparkdup.errors import OutputError
    from tests.test_listing import hold_output

    out = appended["appended"]
    before = {t: _version(spark, out, t) for t in TABLES}
    holder = hold_output(appended["data"], out, 120)
    try:
        with pytest.raises(OutputError, match="another sparkdup run .* is writing to --output"):
            sparkdup.run(appended["data"], out, spark=spark, settings=SETTINGS, append=True)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert {t: _version(spark, out, t) for t in TABLES} == before


def test_append_verifies_only_the_new_pairs_and_keeps_the_old_decisions(spark, appended):
    """The append scored only the pairs its new files made; the rows it kept carry the
    decisions a full run makes for the same pairs."""
    counts, out, full = appended["append_counts"], appended["appended"], appended["full"]
    assert counts["pairs_kept"] > 0 and counts["pairs_verified_now"] > 0
    pairs = delta(spark, out, "duplicate_pairs")
    assert counts["pairs_kept"] + counts["pairs_verified_now"] == pairs.count()
    kept = pairs.where(pairs.run_id == appended["first_run"])
    assert kept.count() == counts["pairs_kept"]
    cols = ["image_id_a", "image_id_b", "is_duplicate", "reason", "align_fine", "align_local"]
    in_full = {tuple(r) for r in delta(spark, full, "duplicate_pairs").select(*cols).collect()}
    mine = {tuple(r) for r in kept.select(*cols).collect()}
    assert mine <= in_full


# ---------------------------------------------------------------- small cases, no pipeline
def _runs(spark, out: str, rows: list[tuple[str, str, str]]) -> None:
    """A `runs` table of (run_id, stage, started_at 'HH:MM') rows."""
    from datetime import datetime

    from sparkdup.runs import RUNS_SCHEMA

    data = [(r, s, datetime.fromisoformat(f"2026-01-01T{t}:00"), 1.0, {}, "{}", "0", "4")
            for r, s, t in rows]
    spark.createDataFrame(data, RUNS_SCHEMA).write.format("delta").mode("overwrite").save(os.path.join(out, "runs"))


def test_two_ingest_appends_before_one_embed_are_both_embedded(spark, tmp_path):
    from sparkdup.jobs.embed import to_embed

    out = str(tmp_path)
    _runs(spark, out, [("r1", "ingest", "10:00"), ("r1", "embed", "10:05"), ("r2", "ingest", "11:00"),
                       ("r3", "ingest", "12:00")])
    images = spark.createDataFrame([(1, "ok", "r1"), (2, "ok", "r2"), (3, "ok", "r3"), (4, "broken", "r3"),
                                    (5, "ok", "r1")], "image_id long, status string, run_id string")
    previous = spark.createDataFrame([(1,), (5,)], "image_id long")
    assert sorted(r.image_id for r in to_embed(spark, images, previous, out).collect()) == [2, 3]


def test_two_embed_appends_before_one_neighbors_are_both_queried(spark, tmp_path):
    from sparkdup.append import runs_since
    from sparkdup.append_neighbors import new_ids

    out = str(tmp_path)
    _runs(spark, out, [("r1", "embed", "10:00"), ("r1", "neighbors", "10:05"), ("r2", "embed", "11:00"),
                       ("r3", "embed", "12:00")])
    embeds = runs_since(spark, out, "embed", "neighbors")
    assert embeds == ["r2", "r3"]
    emb = spark.createDataFrame([(1, "r1"), (2, "r2"), (3, "r3")], "image_id long, run_id string")
    previous = spark.createDataFrame([(1, 2), (2, 1)], "src long, dst long")
    assert sorted(r.image_id for r in new_ids(emb, previous, embeds).collect()) == [2, 3]
    assert runs_since(spark, out, "ingest", "embed") == []


def _images(spark, ids: list[int], run_id: str, extra: dict | None = None):
    """An `images`-contract frame of ok rows with nulls elsewhere, plus `extra` columns."""
    from pyspark.sql import functions as F

    from sparkdup.schemas import TABLES

    given = {"image_id": F.col("id"), "path": F.concat(F.lit("file:/x/"), F.col("id").cast("string")),
             "status": F.lit("ok"), "run_id": F.lit(run_id)}
    cols = [given.get(c.name, F.lit(None)).cast(c.type).alias(c.name) for c in TABLES["images"].columns]
    cols += [F.lit(v).alias(k) for k, v in (extra or {}).items()]
    return spark.createDataFrame([(i,) for i in ids], "id long").select(*cols)


def test_merge_fills_a_dropped_manifest_column_with_nulls(spark, tmp_path):
    """A manifest column the new listing no longer has: the MERGE (UPDATE SET * needs every
    target column) sets it to null, so the table holds exactly the new rows."""
    from sparkdup.append import merge_table

    out = str(tmp_path)
    merge_table(_images(spark, [1, 2], "r1", {"batch": "b1"}), out, "images")
    merge_table(_images(spark, [1, 2, 3], "r2"), out, "images")
    rows = sorted(delta(spark, out, "images").select("image_id", "batch").collect())
    assert [(r.image_id, r.batch) for r in rows] == [(1, None), (2, None), (3, None)]


def test_merge_that_changes_nothing_changes_no_row(spark, tmp_path):
    """A run that changes none of a table's rows adds at most one MERGE commit, and that one
    inserts, updates and deletes nothing (operationMetrics); Delta may also skip it (the
    append fixture's unchanged tables got none). docs/schema.md says so: a table's history
    names the runs that committed to it, the `runs` table every run."""
    from sparkdup.append import merge_table

    out = str(tmp_path)
    merge_table(_images(spark, [1, 2], "r1"), out, "images")
    before = _version(spark, out, "images")
    merge_table(_images(spark, [1, 2], "r2"), out, "images")  # only the stamp differs
    path = os.path.join(out, "images")
    after = [h for h in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect() if h.version > before]
    assert len(after) <= 1
    for h in after:
        assert h.operation == "MERGE"
        assert {k: h.operationMetrics[k] for k in ("numTargetRowsInserted", "numTargetRowsUpdated",
                                                   "numTargetRowsDeleted")} == dict.fromkeys(
            ("numTargetRowsInserted", "numTargetRowsUpdated", "numTargetRowsDeleted"), "0")
    assert {(r.image_id, r.run_id) for r in delta(spark, out, "images").collect()} == {(1, "r1"), (2, "r1")}
    merge_table(_images(spark, [1], "r3"), out, "images")
    assert [r.image_id for r in delta(spark, out, "images").collect()] == [1]


def test_append_that_only_adds_grows_the_index_and_finds_exact_lists(spark, tmp_path):
    """An append that only adds a file grows the bucket's index (no rebuild: the grown index
    holds the old items first, then the new one; the centroids stay) and every list is the
    exact top k of the embeddings (13 real clipart vectors: faiss HNSW is exact at this size)."""
    import numpy as np

    import sparkdup
    from sparkdup import indexes
    from sparkdup.config import load_config
    from sparkdup.udfs import backends

    data, out = tmp_path / "data", str(tmp_path / "out")
    data.mkdir()
    files = real_pngs(CLIPART, 13, seed=99)
    for n, f in enumerate(files[:12]):
        shutil.copy(f, data / f"{n:02d}.png")

    def stages(append: bool) -> None:
        sparkdup.ingest(str(data), out, spark=spark, append=append)
        sparkdup.embed(out, spark=spark, append=append)
        sparkdup.neighbors(out, spark=spark, append=append)
    stages(False)
    before = indexes.latest_root(spark, out)
    old_meta = indexes.read_meta(spark, before)
    old_ids = np.load(backends.ids_path(indexes.load_bucket_at(spark, before, 0, old_meta["backend"],
                                                               old_meta["dim"], str(tmp_path / "old")).path))
    shutil.copy(files[12], data / "12.png")
    stages(True)
    assert not os.path.exists(before)  # the previous index is removed once this one has grown from it
    root = indexes.latest_root(spark, out)
    meta = indexes.read_meta(spark, root)
    assert root != before and meta["centroids"] == old_meta["centroids"] and meta["vectors"] == old_meta["vectors"]
    assert sum(meta["sizes"].values()) == sum(old_meta["sizes"].values()) + 1
    grown = indexes.load_bucket_at(spark, root, 0, meta["backend"], meta["dim"], str(tmp_path / "new")).ids
    assert list(grown[:len(old_ids)]) == list(old_ids) and len(grown) == len(old_ids) + 1
    emb = delta(spark, out, "embeddings").select("image_id", "embedding").collect()
    x = np.array([r.embedding for r in emb], np.float32)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    k = int(load_config()["neighbors"]["k"])
    got: dict = {}
    for r in delta(spark, out, "neighbors").collect():
        got.setdefault(r.src, []).append(r.similarity)
    for n, r in enumerate(emb):
        want = np.sort(sims[n])[::-1][:min(k, len(emb) - 1)]
        assert sorted(got[r.image_id], reverse=True)[:len(want)] == pytest.approx(list(want), abs=1e-3), r.image_id
