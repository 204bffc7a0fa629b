"""The ground-truth generator and scorer (tools/groundtruth; no Spark; a few seconds)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tools.groundtruth import images
from tools.groundtruth.generate import BROKEN_REASONS, COLUMNS, KINDS, generate, summarize
from tools.groundtruth.plan import ANOMALY_TYPES, TRANSFORMS, plan
from tools.groundtruth.score import load_tables, main as score_main, normalize_path, score, to_markdown
from tools.groundtruth.sources import CLASS_BY_LABEL, CLASSES, list_candidates, siblings

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/usr/share/openclipart/png") or not os.path.isdir("/usr/share/icons/oxygen/base"),
    reason="needs Debian's openclipart-png and oxygen-icon-theme",
)

N = 40
# every hard case in a small set: all four anomaly cluster types, several rotated symbols,
# enough flips to check the sibling share
SETTINGS = dict(anomaly_clusters=4, rotated_fraction=0.5, flipped_fraction=0.1)
PICTURES = ["original", "lookalike", "flipped_label"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("gt_a")
    return out, generate(str(out), N, seed=7, **SETTINGS)


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
    pictures = gt[gt.kind.isin(PICTURES)]
    assert (~pictures["variant"].isin(TRANSFORMS)).sum() == N  # the drawn pictures; rotations come on top
    for kind in ("exact_copy", "near_duplicate", "broken", "outlier", "flipped_label", "lookalike", "original"):
        assert kinds.get(kind, 0) >= 2, kind
    assert set(gt.loc[gt.kind == "broken", "broken_reason"]) == set(BROKEN_REASONS)
    assert set(gt["split"]) == {"train", "val"}
    assert pictures["true_label"].nunique() >= 6
    # families cross splits (leaks), and multi-size icon sets are there
    fam = gt[gt.kind != "broken"].groupby("source_id")["split"].nunique()
    assert (fam > 1).sum() >= 2
    assert gt["variant"].str.startswith("size").any()
    # the single foreign outliers are different photos
    outl = gt[gt.kind == "outlier"]
    assert outl["true_label"].isna().all()
    singles = outl[outl.anomaly_cluster.isna() & (outl.anomaly_type == "foreign")]
    assert len(singles) >= 1 and singles["variant"].is_unique


def test_lookalike_sets(dataset):
    """Look-alikes are pictures of their own (own family), several per set, from game
    sprites, icon themes, flags and generated rotations."""
    _, gt = dataset
    la = gt[gt.kind == "lookalike"]
    assert la["lookalike_set"].notna().all() and la["source_id"].is_unique
    sizes = la.groupby("lookalike_set").size()
    assert (sizes >= 2).sum() >= 3, sizes
    sets = set(la["lookalike_set"])
    assert any(s.startswith("supertux_") for s in sets) and any(s.startswith("papirus_") for s in sets)
    assert "freeciv_flags" in sets
    rotated = la[la["variant"].isin(TRANSFORMS)]
    assert len(rotated) >= 1
    for _, r in rotated.iterrows():  # in the set of the picture it was made from, as another picture
        mates = gt[(gt.lookalike_set == r.lookalike_set) & (gt.source_id != r.source_id)]
        assert len(mates) >= 1 and r.content_sha256 not in set(mates["content_sha256"])
    # regular originals carry no set; copies of a look-alike carry their family's set
    assert gt.loc[gt.kind == "original", "lookalike_set"].isna().all()
    for sid, fam in gt[gt.kind.isin(["exact_copy", "near_duplicate"])].groupby("source_id"):
        head = gt[(gt.source_id == sid) & gt.kind.isin(["original", "lookalike"])].iloc[0]
        assert (fam["lookalike_set"].fillna("") == (head.lookalike_set or "")).all()


def test_anomaly_clusters(dataset):
    _, gt = dataset
    outl = gt[gt.kind == "outlier"]
    assert outl["anomaly_type"].isin(ANOMALY_TYPES).all()
    clusters = outl.dropna(subset=["anomaly_cluster"]).groupby("anomaly_cluster")
    assert len(clusters) == 4
    assert set(clusters["anomaly_type"].first()) == set(ANOMALY_TYPES)
    for cid, c in clusters:
        assert 2 <= len(c) <= 5 and c["anomaly_type"].nunique() == 1 and c["split"].nunique() == 1, cid
        atype = c["anomaly_type"].iloc[0]
        # a blank colour or a photo repeated is one picture; noise images and pages are each their own
        assert c["source_id"].nunique() == (1 if atype in ("blank", "foreign") else len(c)), cid
    assert outl["anomaly_cluster"].isna().sum() >= 3  # singles besides the clusters
    for _, r in outl[outl.anomaly_type == "blank"].iterrows():
        with Image.open(_fs_path(r.path)) as im:
            assert np.asarray(im.convert("L"), np.float32).std() < 2.0


def test_small_classes_and_class_count(dataset):
    _, gt = dataset
    per_class = gt[gt.kind.isin(PICTURES) & ~gt.variant.isin(TRANSFORMS)]["true_label"].value_counts()
    assert len(per_class) == 9  # the default classes for 40 pictures, the small one included
    assert per_class.min() * 4 <= per_class.max(), per_class
    assert len(CLASSES) >= 100
    assert sum(1 for c in CLASSES if list_candidates(c)) >= 100
def test_exact_copies_are_byte_identical(dataset):
    _, gt = dataset
    for _, copy in gt[gt.kind == "exact_copy"].iterrows():
        fam = gt[(gt.source_id == copy.source_id) & gt.kind.isin(["original", "lookalike"])]
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
            assert fam.kind.isin(["original", "lookalike"]).sum() == 1
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
    assert len(flipped) == 4  # 10 % of 40
    assert flipped["flipped_to_sibling"].sum() * 2 >= len(flipped)
    for _, r in flipped.iterrows():
        assert bool(r.flipped_to_sibling) == (r.given_label in siblings(r.true_label, list(CLASS_BY_LABEL)))
    assert gt.loc[gt.kind != "flipped_label", "flipped_to_sibling"].isna().all()
    # flipped originals have no duplicates
    assert not gt[gt.kind != "flipped_label"]["source_id"].isin(flipped["source_id"]).any()
    fam = gt[gt.kind.isin(["original", "lookalike", "exact_copy", "near_duplicate"])]
    assert (fam.given_label == fam.true_label).all()


def test_deterministic_per_seed(dataset, tmp_path):
    out, gt = dataset
    again = generate(str(tmp_path / "b"), N, seed=7, **SETTINGS)
    cols = [c for c in COLUMNS if c != "path"]
    pd.testing.assert_frame_equal(gt[cols], again[cols])
    other = generate(str(tmp_path / "c"), 12, seed=8)
    assert set(other["content_sha256"]) != set(gt["content_sha256"])


def test_plan_is_pure_and_deterministic(tmp_path):
    """The plan step writes nothing and gives the same rows for a seed."""
    before = set(os.listdir(tmp_path))
    a, b = plan(30, seed=3), plan(30, seed=3)
    assert a == b and len(a) > 30
    assert plan(30, seed=4) != a
    assert set(os.listdir(tmp_path)) == before
    assert len({r.rel_path for r in a}) == len(a)
    assert {r.kind for r in a} >= {"original", "lookalike", "outlier", "broken"}


def test_near_duplicate_edits():
    """Each edit keeps the picture (same content, mild change) and changes the bytes."""
    img = Image.new("RGB", (200, 160), "white")
    img.paste((200, 30, 30), (20, 20, 120, 100))
    img.paste((30, 60, 200), (100, 60, 180, 140))
    base = images.encode(img, "PNG")
    edits = [
        {"op": "jpeg", "quality": 40}, {"op": "resize", "factor": 0.6}, {"op": "resize", "factor": 1.5},
        {"op": "crop", "keep": 0.85, "x": 1.0, "y": 0.0}, {"op": "brightness", "factor": 0.9},
        {"op": "watermark", "text": "(c) 2024", "corner": 3}, {"op": "format", "to": "WEBP"},
        {"op": "mode", "to": "RGBA"}, {"op": "mode", "to": "P"}, {"op": "mode", "to": "L"},
    ]
    thumb = np.asarray(img.convert("L").resize((16, 16), Image.BOX), np.float32) / 255
    for edit in edits:
        data, _ = images.near_variant(img, "PNG", edit)
        assert data != base, edit
        with Image.open(__import__("io").BytesIO(data)) as im:
            im.load()
            t = np.asarray(im.convert("L").resize((16, 16), Image.BOX), np.float32) / 255
            if edit["op"] == "mode":
                assert im.mode == edit["to"]
            if edit["op"] == "crop":
                assert im.size == (170, 136)
        if edit["op"] != "crop":
            assert np.sqrt(((t - thumb) ** 2).mean()) < 0.08, edit


def _thumbs(paths, side=16) -> np.ndarray:
    out = []
    for p in paths:
        with Image.open(_fs_path(p)) as im:
            out.append(np.asarray(im.convert("L").resize((side, side), Image.BOX), np.float32).ravel() / 255)
    return np.stack(out)


def test_originals_are_distinct(dataset):
    """No two regular originals are near-identical thumbnails (the filter's job); no two
    look-alikes of one set are the same frame."""
    _, gt = dataset
    orig = gt[gt.kind.isin(PICTURES) & gt.lookalike_set.isna()]
    t = _thumbs(orig["path"])
    d = np.sqrt(((t[:, None, :] - t[None, :, :]) ** 2).mean(-1))
    np.fill_diagonal(d, 1.0)
    assert d.min() > 0.03
    assert orig["source_file"].is_unique
    for set_id, members in gt[gt.kind.isin(PICTURES) & gt.lookalike_set.notna()].groupby("lookalike_set"):
        if len(members) < 2:
            continue
        t = _thumbs(members["path"], 32)
        d = np.sqrt(((t[:, None, :] - t[None, :, :]) ** 2).mean(-1))
        np.fill_diagonal(d, 1.0)
        assert d.min() > 0.01, set_id


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
    assert res["wrong_pairs"]["wrong_pairs"] == 0 and res["exact_pairs_grouped"]["recall"] == 1.0
    assert res["outliers"]["all_blank_noise_in_top_n"] and res["outliers"]["blank_noise"] >= 2
    fl = res["flipped_labels"]
    assert fl["sibling_flips"] >= 2 and fl["sibling_hits"] == fl["sibling_flips"]


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


def _tiny_truth() -> pd.DataFrame:
    cols = ["path", "kind", "variant", "source_id", "split", "given_label", "true_label", "content_sha256",
            "lookalike_set", "anomaly_cluster", "anomaly_type", "flipped_to_sibling"]
    rows = [
        ("a1", "original", "original", "s1", "train", "cat", "cat", "h1", None, None, None, None),
        ("a2", "exact_copy", "copy", "s1", "val", "cat", "cat", "h1", None, None, None, None),
        ("a3", "near_duplicate", "jpeg40", "s1", "train", "cat", "cat", "h3", None, None, None, None),
        ("b1", "lookalike", "original", "s2", "train", "dog", "dog", "h4", "L1", None, None, None),
        ("b2", "lookalike", "original", "s3", "train", "dog", "dog", "h5", "L1", None, None, None),
        ("b3", "lookalike", "original", "s4", "val", "dog", "dog", "h6", "L1", None, None, None),
        ("c1", "original", "original", "s5", "train", "cat", "cat", "h7", None, None, None, None),
        ("c2", "near_duplicate", "crop", "s5", "val", "cat", "cat", "h8", None, None, None, None),
        ("n1", "outlier", "noise", "s6", "train", "cat", None, "h9", None, "A1", "noise", None),
        ("n2", "outlier", "noise", "s7", "train", "dog", None, "h10", None, "A1", "noise", None),
        ("k1", "outlier", "blank", "s8", "val", "dog", None, "h11", None, None, "blank", None),
        ("f1", "flipped_label", "original", "s9", "train", "dog", "cat", "h12", None, None, None, True),
        ("f2", "flipped_label", "original", "s10", "train", "cat", "dog", "h13", None, None, None, False),
        ("x1", "broken", "zero_byte", "b0", "train", "cat", None, "h14", None, None, None, None),
    ]
    gt = pd.DataFrame(rows, columns=cols)
    gt["path"] = "file:/d/" + gt["path"] + ".png"
    return gt


def test_scorer_arithmetic_on_a_tiny_table():
    gt = _tiny_truth()
    P = lambda *names: [f"file:/d/{n}.png" for n in names]  # noqa: E731
    groups = pd.DataFrame(
        [(1, p, "near", h) for p, h in zip(P("a1", "a2", "a3"), ("h1", "h1", "h3"))]
        + [(2, p, "near", "") for p in P("b1", "b2", "b3", "c1")]
        + [(3, p, "near", "") for p in P("n1", "n2")]
        + [(4, p, "exact", "h1") for p in P("a1", "a2")],
        columns=["group_id", "path", "kind", "content_hash"])
    leaks = pd.DataFrame({"path_a": P("a1", "b1"), "path_b": P("a2", "b3")})
    ranked = P("n1", "b1", "k1", "n2", "a1", "c1")
    outliers = pd.DataFrame({"path": ranked, "rank": range(1, len(ranked) + 1)})
    issues = pd.DataFrame({
        "path": P("a1", "f1", "b1", "f2"), "rank": [0, 1, 2, 3],
        "issue": ["mixed_duplicate_group", "neighbor_vote", "confident_learning,neighbor_vote", "confident_learning"],
        "suggested_label": ["dog", "cat", "cat", "cat"]})
    images_t = pd.DataFrame({"path": gt["path"], "status": np.where(gt.kind == "broken", "broken", "ok")})
    images_t.loc[2, "status"] = "unsupported"  # a3 wrongly flagged
    res = score(gt, {"duplicate_groups": groups, "leaks": leaks, "outliers": outliers, "label_issues": issues,
                     "images": images_t})

    nd = res["near_duplicates"]  # true: 3 pairs of s1 + 1 of s5; predicted: 3 + 6 + 1 unique pairs
    assert (nd["true"], nd["predicted"], nd["correct"]) == (4, 10, 3)
    assert nd["precision"] == pytest.approx(0.3) and nd["recall"] == pytest.approx(0.75)
    assert {v: m["found"] for v, m in res["near_duplicates_by_variant"].items()} == {"copy": 1, "jpeg40": 1, "crop": 0}
    wp = res["wrong_pairs"]
    assert (wp["wrong_pairs"], wp["lookalike"], wp["anomaly_cluster"], wp["other"]) == (7, 3, 1, 3)
    assert wp["by_lookalike_set"] == {"L1": 3}
    assert res["exact_pairs_grouped"] == {"pairs": 1, "found": 1, "recall": 1.0}
    assert res["exact_duplicates"]["precision"] == 1.0 and res["exact_duplicates"]["recall"] == 1.0
    assert res["largest_group"] == {"size": 4, "families": 4}
    lk = res["leaks"]  # true: a1-a2, a3-a2, c1-c2
    assert (lk["true"], lk["predicted"], lk["correct"]) == (3, 2, 1)
    br = res["broken"]
    assert br["precision"] == 0.5 and br["recall"] == 1.0
    ol = res["outliers"]  # N = 3; top 3: n1, b1, k1
    assert ol["n"] == 3 and ol["hits"] == 2 and ol["precision_at_n"] == pytest.approx(2 / 3)
    assert ol["average_precision"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert ol["by_type"] == {"blank": {"n": 1, "in_top_n": 1}, "noise": {"n": 2, "in_top_n": 1}}
    assert (ol["blank_noise"], ol["blank_noise_in_top_n"], ol["all_blank_noise_in_top_n"]) == (3, 2, False)
    fl = res["flipped_labels"]  # mixed-group row left out: ranking f1, b1, f2; N = 2
    assert fl["n"] == 2 and fl["hits"] == 1 and fl["precision_at_n"] == 0.5
    assert fl["suggested_label_accuracy"] == 1.0
    assert (fl["sibling_flips"], fl["sibling_hits"]) == (1, 1)
    text = to_markdown(res)
    assert "| L1 | 3 |" in text and "Largest predicted group: 4 files from 4 families." in text
    assert "Blank and noise images in the top N: 2 of 3 (not all)." in text


def test_summary_names_every_hard_class(dataset):
    _, gt = dataset
    text = summarize(gt)
    assert "look-alike sets:" in text and "into a sibling class" in text and "in 4 clusters" in text


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
