"""Every SQL example in docs/sql.md runs against a real run and answers its question."""
from __future__ import annotations

import os
import re

import pandas as pd
import pytest
from deltalake import DeltaTable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def doc_queries() -> dict[str, str]:
    text = open(os.path.join(REPO, "docs", "sql.md")).read()
    blocks = re.findall(r"```sql\n(.*?)```", text, flags=re.S)
    out = {}
    for block in blocks:
        name = re.match(r"-- query: (\w+)\n", block).group(1)
        out[name] = block
    return out


@pytest.fixture(scope="module")
def sql(spark, pipeline_run, tmp_path_factory):
    out, truth, _ = pipeline_run
    spark.sql("USE default")
    images = spark.table("sparkdup_test.images").select("path").toPandas()
    meta = tmp_path_factory.mktemp("meta") / "photo_meta.csv"
    pd.DataFrame({"path": images["path"], "photographer": [f"p{i % 3}" for i in range(len(images))],
                  "captured_on": "2024-05-01"}).to_csv(meta, index=False)
    queries = doc_queries()

    def run(name: str) -> pd.DataFrame:
        text = queries[name].replace("sparkdup.", "sparkdup_test.").replace("${metadata_csv}", str(meta))
        return spark.sql(text).toPandas()

    return run, out


def test_every_documented_query_is_tested():
    assert set(doc_queries()) == {
        "files_to_delete", "delete_exact_and_verified", "pair_evidence", "worst_outliers", "train_val_leaks",
        "label_issues_for_class", "dark_or_blurry", "broken_files", "findings_per_label", "metadata_view",
        "join_by_path", "join_by_image_id", "wrong_labels_of_class", "outliers_with_reason",
        "changed_in_last_run", "duplicates_arrived_in_run"}


def appended_sql(spark, appended, name: str) -> pd.DataFrame:
    """A documented query on the output grown by --append (tests/appendcase.py), its tables
    read by path."""
    text = re.sub(r"sparkdup\.(\w+)", lambda m: f"delta.`{os.path.join(appended['appended'], m.group(1))}`",
                  doc_queries()[name]).replace("${run_id}", appended["append_run"])
    return spark.sql(text).toPandas()


def test_changed_in_last_run(spark, appended):
    df = appended_sql(spark, appended, "changed_in_last_run")
    assert set(df["path"]) == set(appended["new"].values()) | {appended["names"]["f0"]}
    assert set(df.loc[df["path"] == appended["names"]["f0"], "status"]) == {"missing"}


def test_duplicates_arrived_in_run(spark, appended):
    df = appended_sql(spark, appended, "duplicates_arrived_in_run")
    new = appended["new"]
    assert {new["p_val"], new["q_big"], new["s_whole"]} <= set(df["path"]) <= set(new.values())
    big = df[df["path"] == new["q_big"]].iloc[0]
    assert bool(big["is_representative"]) and big["representative_path"] == new["q_big"]


def test_files_to_delete(sql, spark):
    run, out = sql
    df = run("files_to_delete")
    groups = DeltaTable(os.path.join(out, "duplicate_groups")).to_pandas()  # read without Spark
    assert len(df) == int((~groups["is_representative"]).sum()) > 0
    assert set(df["path"]).isdisjoint(groups.loc[groups["is_representative"], "path"])


def test_delete_only_exact_and_verified(sql):
    run, _ = sql
    everything = run("files_to_delete")
    certain = run("delete_exact_and_verified")
    assert 0 < len(certain) <= len(everything)
    assert set(certain["path"]) <= set(everything["path"])
    near = certain[certain["kind"] == "near"]
    assert (near["evidence"] == "verified").all() and (near["align_fine_to_representative"] >= 0.98).all()
    assert (certain["kind"] == "exact").any()


def test_pair_evidence(sql):
    run, _ = sql
    pairs = run("pair_evidence")
    assert len(pairs) > 0 and not pairs["hash_match"].any()
    assert set(pairs["reason"]) <= {"verified", "pixels_differ", "local_change", "colour_change", "no_signature"}
    assert (pairs["is_duplicate"] == (pairs["reason"] == "verified")).all()
    assert list(pairs["similarity"]) == sorted(pairs["similarity"], reverse=True)


def test_outliers_and_leaks(sql):
    run, _ = sql
    worst = run("worst_outliers")
    assert 0 < len(worst) <= 100 and list(worst["rank"]) == sorted(worst["rank"])
    leaks = run("train_val_leaks")
    assert len(leaks) > 0 and leaks["train_path"].str.contains("/train/").all()
    assert leaks["val_path"].str.contains("/val/").all()


def test_labels_flags_and_broken(sql):
    run, _ = sql
    issues = run("label_issues_for_class")
    assert ((issues["label"] == "fruit") | (issues["suggested_label"] == "fruit")).all()
    wrong = run("wrong_labels_of_class")
    assert 0 < len(wrong) <= 100 and (wrong["label"] == "fruit").all() and list(wrong["rank"]) == sorted(wrong["rank"])
    assert (wrong["suggested_label"] != "fruit").all() and wrong["label_quality"].between(0, 1).all()
    why = run("outliers_with_reason")
    assert len(why) > 0 and why["reason"].str.len().gt(0).all() and list(why["rank"]) == list(range(1, len(why) + 1))
    flagged = run("dark_or_blurry")
    assert flagged["flags"].map(lambda f: "dark" in f or "blurry" in f).all()
    broken = run("broken_files")
    assert len(broken) == 5 and broken["error"].notna().all()


def test_findings_per_label(sql, spark):
    run, _ = sql
    counts = run("findings_per_label")
    assert counts["images"].sum() == spark.table("sparkdup_test.images").count()
    assert counts["duplicates_to_remove"].sum() == len(run("files_to_delete"))


def test_join_own_metadata_by_path_and_image_id(sql):
    run, _ = sql
    run("metadata_view")
    by_path = run("join_by_path")
    assert set(by_path["photographer"]) <= {"p0", "p1", "p2"}
    assert by_path["duplicates_to_remove"].sum() == len(run("files_to_delete"))
    by_id = run("join_by_image_id")
    assert len(by_id) > 0 and (by_id["captured_on"] == "2024-05-01").all()


def test_database_registration_is_idempotent_and_validated(spark, pipeline_run):
    from sparkdup.errors import ConfigError
    from sparkdup.stage import add_common_arguments, settings_from_args
    from sparkdup.tables import register_tables
    import argparse

    out, _, _ = pipeline_run
    first = register_tables(spark, "sparkdup_test", out, ["images", "outliers"], "delta")
    again = register_tables(spark, "sparkdup_test", out, ["images", "outliers"], "delta")
    assert first == again == ["sparkdup_test.images", "sparkdup_test.outliers"]
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    with pytest.raises(ConfigError, match="not a valid name"):
        settings_from_args(parser.parse_args(["--output", out, "--database", "bad-name; DROP"]))
