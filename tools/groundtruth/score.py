"""Score sparkdup's result tables against a generated ground truth.

    python -m tools.groundtruth.score OUT_DIR RESULTS_DIR [--json FILE]

OUT_DIR holds ``ground_truth.parquet`` (from ``tools.groundtruth.generate``), RESULTS_DIR
the result tables, one folder per table (Delta when the folder has ``_delta_log``, else
Parquet). Images are matched by ``path`` (``file:/abs/path``, as Spark's binaryFile reports
it; ``file:///abs/path`` and bare ``/abs/path`` are accepted too).

Metrics (pairwise over image pairs):

exact_duplicates  true pairs: two files of one source family with identical bytes;
                  predicted: two members of one ``duplicate_groups`` group of kind 'exact'
                  with the same ``content_hash`` (when the table has it)
exact_pairs_grouped  recall only: the share of byte-identical pairs that share any group
                  (whatever its kind): a user deleting a group's non-representatives must
                  never keep both copies
near_duplicates   true pairs: two files of one source family (any variant);
                  predicted: two members of one group of any kind; also recall per
                  variant (jpeg40, crop, size48, ...): the share of (duplicate, its
                  original) pairs found in one group
wrong_pairs       the predicted pairs that are not true pairs, by cause: both files in one
                  ``lookalike_set`` (per set), in one ``anomaly_cluster``, or other
largest_group     the size of the largest predicted group and how many families it mixes
leaks             true pairs: two files of one source family in different splits;
                  predicted: ``leaks`` rows (path_a, path_b), unordered
broken            true: files of kind broken; predicted: ``images.status != 'ok'``
outliers          precision@N, N = number of true outliers, ranking ``outliers`` by rank
                  (1 = most unusual); also average precision over the whole ranking, hits
                  per anomaly type, and whether every blank and noise image is in the top N
flipped_labels    precision@N, N = number of flipped labels, ranking the ``label_issues``
                  rows (each path once, at its best rank; rows whose only issue is
                  'mixed_duplicate_group' left out) by rank; also how often the suggested
                  label of a hit is the true one, and the hits among flips into a sibling
                  class

Broken files take part only in the broken metric: they are neither true nor predicted
members of duplicate or leak pairs. Paths a table reports that the ground truth does not
know are left out of the metric and counted under ``diagnostics`` (many of them usually
means the paths are spelled differently, e.g. the data set was moved after generation).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import pandas as pd

SCORED_TABLES = ("images", "duplicate_groups", "leaks", "outliers", "label_issues")


# ----------------------------------------------------------------------------------------
# loading


def load_tables(results_dir: str, names: tuple[str, ...] | list[str] | None = SCORED_TABLES) -> dict[str, pd.DataFrame]:
    """Read result tables under results_dir into pandas: Delta (a folder with _delta_log,
    read with deltalake) or Parquet. names=None reads every table folder found. Tables
    that do not exist are left out of the returned dict."""
    if names is None:
        names = sorted(
            d for d in os.listdir(results_dir)
            if os.path.isdir(os.path.join(results_dir, d)) and not d.startswith(("_", ".")) and ".__" not in d
        )
    tables: dict[str, pd.DataFrame] = {}
    for name in names:
        path = os.path.join(results_dir, name)
        if not os.path.isdir(path):
            continue
        if os.path.isdir(os.path.join(path, "_delta_log")):
            from deltalake import DeltaTable

            tables[name] = DeltaTable(path).to_pandas()
        else:
            tables[name] = pd.read_parquet(path)
    return tables


def load_ground_truth(out_dir: str) -> pd.DataFrame:
    return pd.read_parquet(os.path.join(out_dir, "ground_truth.parquet"))


# ----------------------------------------------------------------------------------------
# helpers


def normalize_path(p) -> str | None:
    """file:///a/b and /a/b -> file:/a/b (the spelling Spark's binaryFile uses locally)."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return None
    p = str(p)
    if p.startswith("file:///"):
        return "file:/" + p[len("file:///"):]
    if p.startswith("file://localhost/"):
        return "file:/" + p[len("file://localhost/"):]
    if p.startswith("/"):
        return "file:" + p
    return p


def _norm_series(s: pd.Series) -> pd.Series:
    return s.map(normalize_path)


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else float("nan")


def _pairs(n) -> int:
    n = np.asarray(n, dtype=np.int64)
    return int((n * (n - 1) // 2).sum())


def _pr(tp: int, n_true: int, n_pred: int) -> dict:
    return {
        "precision": _ratio(tp, n_pred),
        "recall": _ratio(tp, n_true),
        "true": int(n_true),
        "predicted": int(n_pred),
        "correct": int(tp),
    }


def _pair_codes(groups: list[np.ndarray], n_items: int) -> np.ndarray:
    """Unique unordered pairs (i < j) inside each group, encoded i * n_items + j."""
    codes = []
    for g in groups:
        g = np.unique(g)
        if len(g) < 2:
            continue
        i, j = np.triu_indices(len(g), 1)
        codes.append(g[i].astype(np.int64) * n_items + g[j])
    return np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)


def _cluster_pair_scores(true_key: pd.Series, pred: pd.DataFrame) -> dict:
    """Pairwise precision/recall of a predicted grouping against a true one.

    true_key: path -> true cluster key (every scored path; singletons allowed).
    pred: columns path, group (paths already restricted to the scored ones).
    """
    n_true = _pairs(true_key.value_counts().to_numpy())
    pred = pred.drop_duplicates(["path", "group"])
    if pred.empty:
        return _pr(0, n_true, 0)
    if not pred["path"].duplicated().any():  # each path in one group: count through a contingency table
        n_pred = _pairs(pred.groupby("group").size().to_numpy())
        both = pred.assign(truth=pred["path"].map(true_key).to_numpy())
        tp = _pairs(both.groupby(["group", "truth"]).size().to_numpy())
        return _pr(tp, n_true, n_pred)
    # a path in several groups: enumerate the pairs
    paths = pd.Index(sorted(set(true_key.index)))
    n = len(paths)
    pred_groups = [paths.get_indexer(g) for _, g in pred.groupby("group")["path"]]
    true_groups = [paths.get_indexer(g.index) for _, g in true_key.groupby(true_key)]
    pc, tc = _pair_codes(pred_groups, n), _pair_codes(true_groups, n)
    return _pr(len(np.intersect1d(pc, tc, assume_unique=True)), len(tc), len(pc))


def _recall_by_variant(ok: pd.DataFrame, pred: pd.DataFrame) -> dict:
    """For each way a duplicate was made (variant), the share of (duplicate, its original)
    pairs that share a predicted group: {variant: {"pairs", "found", "recall"}}."""
    groups = pred.groupby("path")["group"].agg(set).to_dict()
    firsts = ok[ok["kind"].isin(["original", "lookalike"])]
    original = firsts.drop_duplicates("source_id").set_index("source_id")["path"]
    dups = ok[ok["kind"].isin(["exact_copy", "near_duplicate"])]
    res: dict = {}
    for variant, rows in dups.groupby("variant"):
        found = total = 0
        for path, sid in zip(rows["path"], rows["source_id"]):
            orig = original.get(sid)
            if orig is None:
                continue
            total += 1
            found += bool(groups.get(path, set()) & groups.get(orig, set()))
        res[str(variant)] = {"pairs": total, "found": found, "recall": _ratio(found, total)}
    return res


def _group_pairs(pred: pd.DataFrame) -> list[tuple[str, str]]:
    """Unique unordered (a, b) path pairs inside each predicted group."""
    pairs: set[tuple[str, str]] = set()
    for _, paths in pred.groupby("group")["path"]:
        members = sorted(set(paths))
        for i in range(len(members)):
            for j in range(i + 1, len(members)):
                pairs.add((members[i], members[j]))
    return sorted(pairs)


def _wrong_pairs(ok: pd.DataFrame, pred: pd.DataFrame) -> dict:
    """Predicted pairs of two different pictures, by cause: the same look-alike set, the
    same anomaly cluster, or anything else."""
    fam = dict(zip(ok["path"], ok["source_id"]))
    la = dict(zip(ok["path"], ok["lookalike_set"])) if "lookalike_set" in ok.columns else {}
    ac = dict(zip(ok["path"], ok["anomaly_cluster"])) if "anomaly_cluster" in ok.columns else {}
    by_set: dict[str, int] = {}
    res = {"wrong_pairs": 0, "lookalike": 0, "anomaly_cluster": 0, "other": 0}
    for a, b in _group_pairs(pred):
        if fam.get(a) == fam.get(b):
            continue
        res["wrong_pairs"] += 1
        sa, sb = la.get(a), la.get(b)
        if isinstance(sa, str) and sa == sb:
            res["lookalike"] += 1
            by_set[sa] = by_set.get(sa, 0) + 1
        elif isinstance(ac.get(a), str) and ac.get(a) == ac.get(b):
            res["anomaly_cluster"] += 1
        else:
            res["other"] += 1
    res["by_lookalike_set"] = dict(sorted(by_set.items(), key=lambda kv: (-kv[1], kv[0])))
    return res


def _exact_pairs_grouped(ok: pd.DataFrame, pred: pd.DataFrame) -> dict:
    """Byte-identical pairs (any kind) that share at least one predicted group."""
    groups = pred.groupby("path")["group"].agg(set).to_dict()
    total = found = 0
    for _, same in ok.groupby("content_sha256"):
        paths = sorted(same["path"])
        for i in range(len(paths)):
            for j in range(i + 1, len(paths)):
                total += 1
                found += bool(groups.get(paths[i], set()) & groups.get(paths[j], set()))
    return {"pairs": total, "found": found, "recall": _ratio(found, total)}


def _largest_group(ok: pd.DataFrame, pred: pd.DataFrame) -> dict:
    if pred.empty:
        return {"size": 0, "families": 0}
    sizes = pred.groupby("group")["path"].nunique()
    top = sizes.idxmax()
    fam = dict(zip(ok["path"], ok["source_id"]))
    members = pred.loc[pred["group"] == top, "path"].unique()
    return {"size": int(sizes.max()), "families": len({fam.get(p) for p in members})}


def _label_issue_rows(issues: pd.DataFrame) -> pd.DataFrame:
    """label_issues rows that claim a wrong label: all but those whose only issue is
    'mixed_duplicate_group' (a group-level hint, not a ranking of images)."""
    if "issue" not in issues.columns:
        return issues

    def claims(v) -> bool:
        kinds = [str(x) for x in v] if isinstance(v, (list, tuple, np.ndarray)) else str(v).split(",")
        return any(k.strip() and k.strip() != "mixed_duplicate_group" for k in kinds)

    return issues[issues["issue"].map(claims).astype(bool)]


def _ranked_paths(df: pd.DataFrame) -> list[str]:
    """Paths in rank order (rank ascending; ties: score descending, then path)."""
    d = df.assign(path=_norm_series(df["path"]))
    keys, asc = ["rank"], [True]
    if "score" in d.columns:
        keys.append("score")
        asc.append(False)
    keys.append("path")
    asc.append(True)
    d = d.sort_values(keys, ascending=asc, na_position="last", kind="mergesort")
    return list(dict.fromkeys(d["path"].tolist()))


def _precision_at_n(ranked: list[str], truth: set[str]) -> dict:
    n = len(truth)
    top = ranked[:n]
    hits = sum(1 for p in top if p in truth)
    # average precision over the whole ranking
    found, ap = 0, 0.0
    for i, p in enumerate(ranked, 1):
        if p in truth:
            found += 1
            ap += found / i
    return {
        "precision_at_n": _ratio(hits, n),
        "n": n,
        "hits": hits,
        "ranked": len(ranked),
        "average_precision": _ratio(ap, n),
    }


# ----------------------------------------------------------------------------------------
# scoring


def score(ground_truth: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> dict:
    """Compare result tables (name -> pandas DataFrame) with the ground truth.

    Returns {metric: {...}} for exact_duplicates, near_duplicates, leaks, broken (each with
    precision, recall, true, predicted, correct), outliers and flipped_labels (each with
    precision_at_n, n, hits, average_precision; flipped_labels also
    suggested_label_accuracy), plus diagnostics. A metric whose table is missing is None.
    """
    gt = ground_truth.copy()
    gt["path"] = _norm_series(gt["path"])
    known = set(gt["path"])
    ok = gt[gt["kind"] != "broken"]
    ok_paths = set(ok["path"])
    diag: dict = {"files": len(gt), "missing_tables": [t for t in SCORED_TABLES if t not in tables]}
    out: dict = {}

    # duplicates
    groups = tables.get("duplicate_groups")
    if groups is not None:
        g = groups.assign(path=_norm_series(groups["path"]))
        diag["duplicate_groups_unknown_paths"] = int((~g["path"].isin(known)).sum())
        g = g[g["path"].isin(ok_paths)]
        g = g.assign(group=g["group_id"])
        kind = g["kind"].astype(str).str.lower() if "kind" in g.columns else pd.Series("near", index=g.index)
        if "content_sha256" in ok.columns:
            exact_key = ok["source_id"].astype(str) + "/" + ok["content_sha256"].astype(str)
        else:  # without hashes: an original and its exact copies are the identical ones
            same = ok["kind"].isin(["original", "exact_copy"])
            exact_key = ok["source_id"].astype(str) + "/" + np.where(same, "bytes", ok["path"])
        exact_key = pd.Series(exact_key.to_numpy(), index=ok["path"].to_numpy())
        family_key = pd.Series(ok["source_id"].astype(str).to_numpy(), index=ok["path"].to_numpy())
        if "content_hash" in g.columns:  # exact pairs: same group and same bytes
            exact_pred = g.assign(group=g["group_id"].astype(str) + "/" + g["content_hash"].astype(str))
            exact_pred = exact_pred.loc[kind == "exact", ["path", "group"]]
        else:
            exact_pred = g.loc[kind == "exact", ["path", "group"]]
        out["exact_duplicates"] = _cluster_pair_scores(exact_key, exact_pred)
        out["near_duplicates"] = _cluster_pair_scores(family_key, g[["path", "group"]])
        out["near_duplicates_by_variant"] = _recall_by_variant(ok, g[["path", "group"]])
        out["wrong_pairs"] = _wrong_pairs(ok, g[["path", "group"]])
        out["exact_pairs_grouped"] = _exact_pairs_grouped(ok, g[["path", "group"]]) if "content_sha256" in ok.columns else None
        out["largest_group"] = _largest_group(ok, g[["path", "group"]])
    else:
        for name in ("exact_duplicates", "near_duplicates", "near_duplicates_by_variant", "wrong_pairs",
                     "exact_pairs_grouped", "largest_group"):
            out[name] = None

    # leaks
    leaks = tables.get("leaks")
    if leaks is not None:
        true_pairs = set()
        for _, fam in ok.groupby("source_id"):
            if fam["split"].nunique() < 2:
                continue
            rows = list(zip(fam["path"], fam["split"]))
            for i in range(len(rows)):
                for j in range(i + 1, len(rows)):
                    if rows[i][1] != rows[j][1]:
                        true_pairs.add(tuple(sorted((rows[i][0], rows[j][0]))))
        a, b = _norm_series(leaks["path_a"]), _norm_series(leaks["path_b"])
        pred_pairs = set()
        unknown = 0
        for pa, pb in zip(a, b):
            if pa not in ok_paths or pb not in ok_paths:
                unknown += int(pa not in known or pb not in known)
                continue
            if pa != pb:
                pred_pairs.add((pa, pb) if pa < pb else (pb, pa))
        diag["leaks_unknown_paths"] = unknown
        out["leaks"] = _pr(len(true_pairs & pred_pairs), len(true_pairs), len(pred_pairs))
    else:
        out["leaks"] = None

    # broken
    images = tables.get("images")
    if images is not None:
        im = images.assign(path=_norm_series(images["path"]))
        diag["images_unknown_paths"] = int((~im["path"].isin(known)).sum())
        diag["files_missing_from_images"] = len(known - set(im["path"]))
        im = im[im["path"].isin(known)]
        flagged = set(im.loc[im["status"].astype(str) != "ok", "path"])
        truth = set(gt.loc[gt["kind"] == "broken", "path"])
        out["broken"] = _pr(len(flagged & truth), len(truth), len(flagged))
    else:
        out["broken"] = None

    # outliers
    outl = tables.get("outliers")
    if outl is not None:
        truth = set(gt.loc[gt["kind"] == "outlier", "path"])
        ranked = [p for p in _ranked_paths(outl) if p in known]
        res = _precision_at_n(ranked, truth)
        top = set(ranked[: len(truth)])
        if "anomaly_type" in gt.columns:
            outl_gt = gt[gt["kind"] == "outlier"]
            res["by_type"] = {
                str(t): {"n": len(rows), "in_top_n": int(rows["path"].isin(top).sum())}
                for t, rows in outl_gt.groupby("anomaly_type")
            }
            bn = outl_gt[outl_gt["anomaly_type"].isin(["blank", "noise"])]
            res["blank_noise_in_top_n"] = int(bn["path"].isin(top).sum())
            res["blank_noise"] = len(bn)
            res["all_blank_noise_in_top_n"] = bool(bn["path"].isin(top).all())
        out["outliers"] = res
    else:
        out["outliers"] = None

    # flipped labels
    issues = tables.get("label_issues")
    if issues is not None:
        votes = _label_issue_rows(issues)
        truth = set(gt.loc[gt["kind"] == "flipped_label", "path"])
        ranked = [p for p in _ranked_paths(votes) if p in known]
        res = _precision_at_n(ranked, truth)
        hits = [p for p in ranked[: len(truth)] if p in truth]
        if "suggested_label" in votes.columns:
            true_label = dict(zip(gt["path"], gt["true_label"]))
            best = votes.assign(path=_norm_series(votes["path"])).sort_values("rank", kind="mergesort") \
                if "rank" in votes.columns else votes.assign(path=_norm_series(votes["path"]))
            sugg = dict(zip(best["path"][::-1], best["suggested_label"][::-1]))  # the best-ranked row wins
            res["suggested_label_accuracy"] = _ratio(sum(sugg.get(p) == true_label[p] for p in hits), len(hits))
        if "flipped_to_sibling" in gt.columns:
            flips = gt[gt["kind"] == "flipped_label"]
            sib = set(flips.loc[flips["flipped_to_sibling"].astype("boolean").fillna(False).astype(bool), "path"])
            res["sibling_flips"] = len(sib)
            res["sibling_hits"] = sum(1 for p in hits if p in sib)
        out["flipped_labels"] = res
    else:
        out["flipped_labels"] = None

    out["diagnostics"] = diag
    return out


def _fmt(x) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return "n/a" if math.isnan(x) else f"{x:.3f}"
    return str(x)


def to_markdown(result: dict) -> str:
    """The metrics as a markdown table."""
    lines = [
        "| finding | precision | recall | true | predicted | correct |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in ("exact_duplicates", "near_duplicates", "leaks", "broken"):
        m = result.get(name)
        if m is None:
            lines.append(f"| {name} (pairs) | n/a (no table) | | | | |" if name != "broken"
                         else f"| {name} (files) | n/a (no table) | | | | |")
            continue
        unit = "files" if name == "broken" else "pairs"
        lines.append(
            f"| {name} ({unit}) | {_fmt(m['precision'])} | {_fmt(m['recall'])} | {m['true']} | "
            f"{m['predicted']} | {m['correct']} |"
        )
    for name in ("outliers", "flipped_labels"):
        m = result.get(name)
        if m is None:
            lines.append(f"| {name} (precision@N) | n/a (no table) | | | | |")
            continue
        lines.append(
            f"| {name} (precision@N, AP {_fmt(m['average_precision'])}) | {_fmt(m['precision_at_n'])} | "
            f"{_fmt(_ratio(m['hits'], m['n']))} | {m['n']} | {min(m['n'], m['ranked'])} | {m['hits']} |"
        )
    ex = result.get("exact_pairs_grouped")
    if ex:
        lines.append(f"| exact pairs in one group (pairs) | | {_fmt(ex['recall'])} | {ex['pairs']} | | {ex['found']} |")
    lg = result.get("largest_group")
    if lg:
        lines.append("")
        lines.append(f"Largest predicted group: {lg['size']} files from {lg['families']} families.")
    wp = result.get("wrong_pairs")
    if wp:
        lines.append("")
        lines.append(f"Wrong pairs (different pictures in one group): {wp['wrong_pairs']} — same look-alike set "
                     f"{wp['lookalike']}, same anomaly cluster {wp['anomaly_cluster']}, other {wp['other']}.")
        if wp["by_lookalike_set"]:
            lines.append("")
            lines.append("| look-alike set | wrong pairs |")
            lines.append("|---|---:|")
            for name, n in list(wp["by_lookalike_set"].items())[:15]:
                lines.append(f"| {name} | {n} |")
    byv = result.get("near_duplicates_by_variant")
    if byv:
        lines.append("")
        lines.append("| duplicate variant | pairs with its original | found | recall |")
        lines.append("|---|---:|---:|---:|")
        for v, m in sorted(byv.items()):
            lines.append(f"| {v} | {m['pairs']} | {m['found']} | {_fmt(m['recall'])} |")
    ol = result.get("outliers")
    if ol and "by_type" in ol:
        lines.append("")
        lines.append("| anomaly type | outliers | in the top N |")
        lines.append("|---|---:|---:|")
        for t, m in sorted(ol["by_type"].items()):
            lines.append(f"| {t} | {m['n']} | {m['in_top_n']} |")
        lines.append("")
        lines.append(f"Blank and noise images in the top N: {ol['blank_noise_in_top_n']} of {ol['blank_noise']}"
                     f" ({'all' if ol['all_blank_noise_in_top_n'] else 'not all'}).")
    fl = result.get("flipped_labels")
    if fl and "suggested_label_accuracy" in fl:
        lines.append("")
        lines.append(f"Suggested label right for {_fmt(fl['suggested_label_accuracy'])} of the flipped labels found.")
    if fl and "sibling_flips" in fl:
        lines.append(f"Flips into a sibling class: {fl['sibling_flips']}, of which in the top N: {fl['sibling_hits']}.")
    diag = result.get("diagnostics", {})
    notes = {k: v for k, v in diag.items() if k != "files" and v}
    if notes:
        lines.append("")
        lines.append("Diagnostics: " + ", ".join(f"{k}={v}" for k, v in notes.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.groundtruth.score",
        description="Score sparkdup result tables against a generated ground truth.",
    )
    p.add_argument("out_dir", help="folder holding ground_truth.parquet")
    p.add_argument("results_dir", help="folder holding the result tables")
    p.add_argument("--json", default=None, help="also write the metrics as JSON to this file")
    a = p.parse_args(argv)
    gt = load_ground_truth(a.out_dir)
    tables = load_tables(a.results_dir)
    if not tables:
        print(f"error: no result tables found under {a.results_dir}", file=sys.stderr)
        return 2
    result = score(gt, tables)
    print(to_markdown(result))
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(result, fh, indent=2, default=lambda x: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
