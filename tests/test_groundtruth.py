"""The ground-truth generator and scorer (no Spark; a few seconds)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tools.groundtruth.generate import BROKEN_REASONS, COLUMNS, KINDS, generate
from tools.groundtruth.score import load_tables, main as score_main, normalize_path, score

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/usr/share/openclipart/png") or not os.path.isdir("/usr/share/icons/oxygen/base"),
    reason="needs Debian's openclipart-png and oxygen-icon-theme",
)

N = 40


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("gt_a")
    return out, generate(str(out), N, seed=7)


def _sha(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _fs_path(uri: str) -> str:
    assert uri.startswith("file:/") and not uri.startswith("file://")
    return uri[len("file:"):]


# ----------------------------------------------------------------------------------------
# generator


def test_table_shape_and_files(dataset):
    out, gt = dataset
    assert list(gt.columns) == COLUMNS
    assert gt.equals(pd.read_parquet(out / "ground_truth.parquet"))
    assert set(gt["kind"]) <= set(KINDS)
    assert gt["path"].is_unique and gt["rel_path"].is_unique
    # every row's file exists at its path, and nothing else was written
    listed = set()
    for _, r in gt.iterrows():
        full = _fs_path(r["path"])
        assert full == os.path.join(str(out), r["rel_path"])
        assert os.path.isfile(full)
        assert _sha(full) == r["content_sha256"]
        split, label = Path(r["rel_path"]).parts[1:3]
        assert (split, label) == (r["split"], r["given_label"])
        listed.add(full)
    on_disk = {str(p) for p in (out / "images").rglob("*") if p.is_file()}
    assert on_disk == listed


def test_proportions(dataset):
    _, gt = dataset
    kinds = gt["kind"].value_counts()
    assert kinds["original"] + kinds.get("flipped_label", 0) == N
    for kind in ("exact_copy", "near_duplicate", "broken", "outlier", "flipped_label"):
        assert kinds.get(kind, 0) >= 2, kind
    assert set(gt.loc[gt.kind == "broken", "broken_reason"]) == set(BROKEN_REASONS)
    assert set(gt["split"]) == {"train", "val"}
    originals = gt[gt.kind.isin(["original", "flipped_label"])]
    assert originals["true_label"].nunique() >= 4
    # families cross splits (leaks), and oxygen multi-size sets are there
    fam = gt[gt.kind != "broken"].groupby("source_id")["split"].nunique()
    assert (fam > 1).sum() >= 2
    assert gt["variant"].str.startswith("size").any()
    # the outliers are different photos
    outl = gt[gt.kind == "outlier"]
    assert outl["variant"].is_unique and outl["true_label"].isna().all()


def test_exact_copies_are_byte_identical(dataset):
    _, gt = dataset
    for _, copy in gt[gt.kind == "exact_copy"].iterrows():
        fam = gt[(gt.source_id == copy.source_id) & (gt.kind == "original")]
        assert len(fam) == 1
        orig = fam.iloc[0]
        assert Path(_fs_path(copy.path)).read_bytes() == Path(_fs_path(orig.path)).read_bytes()
        assert copy.path != orig.path and copy.true_label == orig.true_label


def test_near_duplicates_are_not_byte_identical(dataset):
    _, gt = dataset
    for sid, fam in gt[gt.kind != "broken"].groupby("source_id"):
        near = fam[fam.kind == "near_duplicate"]
        others = fam.drop(index=near.index)
        for i, r in near.iterrows():
            rest = set(others["content_sha256"]) | set(near.drop(index=i)["content_sha256"])
            assert r["content_sha256"] not in rest, (sid, r["variant"])
        if len(near):  # every family with near duplicates has its original
            assert (fam.kind == "original").sum() == 1
    # and they decode, as do all non-broken files
    for _, r in gt[gt.kind != "broken"].iterrows():
        with Image.open(_fs_path(r.path)) as im:
            im.load()
            assert im.size == (r.width, r.height)


def test_broken_files_fail_to_decode(dataset):
    _, gt = dataset
    broken = gt[gt.kind == "broken"]
    assert len(broken) >= len(BROKEN_REASONS)
    for _, r in broken.iterrows():
        with pytest.raises(Exception):
            with Image.open(_fs_path(r.path)) as im:
                im.load()
        if r.broken_reason == "zero_byte":
            assert os.path.getsize(_fs_path(r.path)) == 0


def test_labels(dataset):
    _, gt = dataset
    flipped = gt[gt.kind == "flipped_label"]
    assert (flipped.given_label != flipped.true_label).all()
    assert flipped["true_label"].notna().all()
    # flipped originals have no duplicates
    assert not gt[gt.kind != "flipped_label"]["source_id"].isin(flipped["source_id"]).any()
    fam = gt[gt.kind.isin(["original", "exact_copy", "near_duplicate"])]
    assert (fam.given_label == fam.true_label).all()


def test_deterministic_per_seed(dataset, tmp_path):
    out, gt = dataset
    again = generate(str(tmp_path / "b"), N, seed=7)
    cols = [c for c in COLUMNS if c != "path"]
    pd.testing.assert_frame_equal(gt[cols], again[cols])
    other = generate(str(tmp_path / "c"), 12, seed=8)
    assert set(other["content_sha256"]) != set(gt["content_sha256"])


def test_originals_are_distinct(dataset):
    """No two originals are near-identical thumbnails (the filter's job)."""
    _, gt = dataset
    orig = gt[gt.kind.isin(["original", "flipped_label"])]
    thumbs = []
    for p in orig["path"]:
        with Image.open(_fs_path(p)) as im:
            thumbs.append(np.asarray(im.convert("L").resize((16, 16), Image.BOX), np.float32) / 255)
    t = np.stack(thumbs).reshape(len(thumbs), -1)
    d = np.sqrt(((t[:, None, :] - t[None, :, :]) ** 2).mean(-1))
    np.fill_diagonal(d, 1.0)
    assert d.min() > 0.03
    assert orig["source_file"].is_unique


# ----------------------------------------------------------------------------------------
# scorer


def perfect_tables(gt: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Result tables a perfect sparkdup run would write for this ground truth."""
    ids = {p: i + 1 for i, p in enumerate(gt["path"])}
    images = pd.DataFrame({
        "image_id": [ids[p] for p in gt["path"]],
        "path": gt["path"],
        "label": gt["given_label"],
        "split": gt["split"],
        "status": np.where(gt["kind"] == "broken", "broken", "ok"),
    })
    ok = gt[gt.kind != "broken"]
    rows, gid = [], 0

    def group(members: pd.DataFrame, kind: str) -> None:
        nonlocal gid
        gid += 1
        rep = members.iloc[0]
        for _, m in members.iterrows():
            rows.append({
                "group_id": gid, "image_id": ids[m.path], "path": m.path, "group_size": len(members),
                "kind": kind, "representative_id": ids[rep.path], "is_representative": m.path == rep.path,
                "similarity_to_representative": 1.0,
            })

    for _, fam in ok.groupby("source_id"):
        if len(fam) < 2:
            continue
        if fam["content_sha256"].nunique() == 1:
            group(fam, "exact")
            continue
        group(fam, "near")
        for _, same in fam.groupby("content_sha256"):  # exact sub-groups too
            if len(same) > 1:
                group(same, "exact")
    groups = pd.DataFrame(rows)

    leaks = []
    for _, fam in ok.groupby("source_id"):
        for a in fam.itertuples():
            for b in fam.itertuples():
                if a.split == "train" and b.split == "val":
                    leaks.append({"image_id_a": ids[a.path], "path_a": a.path, "split_a": a.split,
                                  "image_id_b": ids[b.path], "path_b": b.path, "split_b": b.split,
                                  "similarity": 0.99})
    leaks = pd.DataFrame(leaks)

    order = ok.assign(o=(ok.kind != "outlier").astype(int)).sort_values(["o", "path"])
    outliers = pd.DataFrame({
        "image_id": [ids[p] for p in order["path"]], "path": order["path"],
        "score": np.linspace(1, 0, len(order)), "rank": np.arange(1, len(order) + 1),
    })
    outliers["percentile"] = 1 - outliers["rank"] / len(order)
    outliers["is_outlier"] = order["kind"].to_numpy() == "outlier"

    flipped = ok[ok.kind == "flipped_label"]
    decoys = ok[ok.kind == "original"].head(3)
    issues = pd.concat([
        pd.DataFrame({"path": flipped["path"], "label": flipped["given_label"],
                      "suggested_label": flipped["true_label"], "issue": "neighbor_vote"}),
        pd.DataFrame({"path": decoys["path"], "label": decoys["given_label"],
                      "suggested_label": "flags", "issue": "neighbor_vote"}),
    ], ignore_index=True)
    issues["image_id"] = [ids[p] for p in issues["path"]]
    issues["confidence"] = np.linspace(0.99, 0.6, len(issues))
    issues["rank"] = np.arange(1, len(issues) + 1)
    issues["group_id"] = None
    # a mixed-group row ranked first must not count
    mixed = pd.DataFrame({"path": [decoys["path"].iloc[0]], "label": ["x"], "suggested_label": ["y"],
                          "issue": ["mixed_duplicate_group"], "image_id": [0], "confidence": [1.0],
                          "rank": [0], "group_id": [1]})
    issues = pd.concat([mixed, issues], ignore_index=True)
    return {"images": images, "duplicate_groups": groups, "leaks": leaks, "outliers": outliers,
            "label_issues": issues}


PAIR_METRICS = ("exact_duplicates", "near_duplicates", "leaks", "broken")
RANK_METRICS = ("outliers", "flipped_labels")


def test_perfect_tables_score_one(dataset):
    _, gt = dataset
    res = score(gt, perfect_tables(gt))
    for m in PAIR_METRICS:
        assert res[m]["precision"] == 1.0 and res[m]["recall"] == 1.0, (m, res[m])
        assert res[m]["true"] > 0
    for m in RANK_METRICS:
        assert res[m]["precision_at_n"] == 1.0 and res[m]["average_precision"] == 1.0, (m, res[m])
    assert res["flipped_labels"]["suggested_label_accuracy"] == 1.0
    assert res["diagnostics"]["missing_tables"] == []
    byv = res["near_duplicates_by_variant"]
    assert "copy" in byv and any(v.startswith("size") for v in byv)
    assert all(m["recall"] == 1.0 and m["pairs"] > 0 for m in byv.values())


def test_one_group_per_family_counts_exact_pairs_only_in_exact_groups(dataset):
    _, gt = dataset
    t = perfect_tables(gt)
    g = t["duplicate_groups"]
    near_only = g[g.kind == "near"].copy()  # drop the exact sub-groups: one group per path
    t["duplicate_groups"] = pd.concat([near_only, g[(g.kind == "exact") & ~g.path.isin(near_only.path)]])
    res = score(gt, t)
    assert res["near_duplicates"]["precision"] == 1.0 and res["near_duplicates"]["recall"] == 1.0
    assert res["exact_duplicates"]["precision"] == 1.0
    assert res["exact_duplicates"]["recall"] < 1.0  # identical files inside a 'near' group are not exact


def test_corrupted_tables_score_lower(dataset):
    _, gt = dataset
    rng = np.random.default_rng(0)
    t = perfect_tables(gt)
    g = t["duplicate_groups"]
    # recall: drop half the groups; precision: merge two other groups into one
    gids = sorted(g.group_id.unique())
    drop = set(gids[::2])
    g = g[~g.group_id.isin(drop)].copy()
    keep = sorted(set(gids) - drop)
    near_keep = sorted(g[g.kind == "near"].group_id.unique())
    exact_keep = sorted(g[g.kind == "exact"].group_id.unique())
    for ids in (near_keep, exact_keep):
        if len(ids) >= 2:
            g.loc[g.group_id == ids[1], "group_id"] = ids[0]
    assert keep
    t["duplicate_groups"] = g
    t["leaks"] = pd.concat([
        t["leaks"].iloc[::2],
        pd.DataFrame({"path_a": gt.path.iloc[:3].to_numpy(), "path_b": gt.path.iloc[3:6].to_numpy()}),
    ], ignore_index=True)
    im = t["images"].copy()
    bad = im.index[im.status == "broken"][:2]
    im.loc[bad, "status"] = "ok"
    im.loc[im.index[im.status == "ok"][:2], "status"] = "unsupported"
    t["images"] = im
    t["outliers"] = t["outliers"].assign(rank=lambda d: d["rank"].max() + 1 - d["rank"])  # reversed
    li = t["label_issues"]
    t["label_issues"] = li.assign(rank=rng.permutation(len(li)) + 1, suggested_label="flags")
    res = score(gt, t)
    for m in ("exact_duplicates", "near_duplicates"):
        assert res[m]["recall"] < 1.0, (m, res[m])
    assert res["near_duplicates"]["precision"] < 1.0
    assert res["exact_duplicates"]["precision"] < 1.0
    assert min(m["recall"] for m in res["near_duplicates_by_variant"].values()) < 1.0
    assert res["leaks"]["precision"] < 1.0 and res["leaks"]["recall"] < 1.0
    assert res["broken"]["precision"] < 1.0 and res["broken"]["recall"] < 1.0
    assert res["outliers"]["precision_at_n"] == 0.0
    assert res["flipped_labels"]["average_precision"] < 1.0
    # empty predictions: recall 0, precision undefined
    empty = score(gt, {k: v.iloc[0:0] for k, v in perfect_tables(gt).items()})
    assert empty["near_duplicates"]["recall"] == 0.0 and np.isnan(empty["near_duplicates"]["precision"])
    assert empty["outliers"]["precision_at_n"] == 0.0
    # missing tables: None
    assert score(gt, {})["leaks"] is None


def test_path_spellings():
    assert normalize_path("file:///a/b.png") == "file:/a/b.png"
    assert normalize_path("/a/b.png") == "file:/a/b.png"
    assert normalize_path("file:/a/b.png") == "file:/a/b.png"
    assert normalize_path("s3a://bucket/x.png") == "s3a://bucket/x.png"


def test_load_tables_and_cli(dataset, tmp_path, capsys):
    out, gt = dataset
    tables = perfect_tables(gt)
    results = tmp_path / "results"
    # parquet folders the way Spark writes them, and one Delta table
    for name, df in tables.items():
        if name == "images":
            continue
        folder = results / name
        folder.mkdir(parents=True)
        df.to_parquet(folder / "part-00000.snappy.parquet", index=False)
        (folder / "_SUCCESS").write_text("")
    deltalake = pytest.importorskip("deltalake")
    deltalake.write_deltalake(str(results / "images"), tables["images"])
    (results / "_checkpoints").mkdir()
    loaded = load_tables(str(results))
    assert set(loaded) == set(tables)
    assert len(loaded["images"]) == len(gt)
    res = score(gt, loaded)
    assert all(res[m]["recall"] == 1.0 for m in PAIR_METRICS)
    assert score_main([str(out), str(results), "--json", str(tmp_path / "m.json")]) == 0
    text = capsys.readouterr().out
    assert "| finding | precision | recall |" in text and "near_duplicates" in text
    assert (tmp_path / "m.json").stat().st_size > 0
