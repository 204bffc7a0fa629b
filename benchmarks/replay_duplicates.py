"""Re-decide the duplicates of a finished quality run with the current verification, no Spark.

    python benchmarks/replay_duplicates.py WORK [--min-cosine X] [--min-coarse X] [--json FILE]

WORK is a `bench_pipeline.py --quality` work folder (WORK/data/ground_truth.parquet and
the run's tables under WORK/out). The run's embeddings and neighbour graph are kept; what
analyze does for duplicates is done again in pandas with the code and settings of this
checkout: candidates (neighbour pairs with cosine >= analyze.duplicate_similarity, or
--min-cosine), udfs.verify.compare on each, the duplicate rule, units of one content_hash,
connected components of the verified links, udfs.stars per component, leaks as the group
pairs across splits. The groups are scored by tools.groundtruth.score as the pipeline's
tables would be, so a change of the verification is measured on an 8,000-file run in
minutes instead of a new half-hour run (on the run's own tables this reproduces the
scores the run reported). Also prints the CPU time verification took per candidate pair.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sparkdup.config import load_config  # noqa: E402
from sparkdup.udfs.stars import stars  # noqa: E402
from sparkdup.udfs.verify import compare_many, is_same_picture  # noqa: E402
from tools.groundtruth.score import load_tables, score, to_markdown  # noqa: E402


def candidates(images: pd.DataFrame, neighbors: pd.DataFrame, min_cosine: float) -> pd.DataFrame:
    """Each candidate pair once (a < b) with its cosine, both sides decoded, not byte-identical."""
    nb = neighbors[(neighbors["similarity"] >= min_cosine) & (neighbors["source"] != "hash")]
    nb = pd.DataFrame({"a": np.minimum(nb["src"], nb["dst"]), "b": np.maximum(nb["src"], nb["dst"]),
                       "similarity": nb["similarity"]})
    nb = nb[nb["a"] != nb["b"]].groupby(["a", "b"], as_index=False)["similarity"].max()
    h = dict(zip(images["image_id"], images["content_hash"]))
    nb = nb[nb["a"].isin(h) & nb["b"].isin(h)]
    return nb[nb["a"].map(h) != nb["b"].map(h)].reset_index(drop=True)


def verify(pairs: pd.DataFrame, images: pd.DataFrame, min_coarse: float | None) -> tuple[pd.DataFrame, float]:
    """The scores of udfs.verify.compare_many for each pair, in the order analyze gives them
    (one partition sorted by b, then a), and the CPU ms one pair took."""
    sig = dict(zip(images["image_id"], images["signature"]))
    pairs = pairs.sort_values(["b", "a"]).reset_index(drop=True)
    t = time.process_time()
    rows = compare_many([sig[a] for a in pairs["a"]], [sig[b] for b in pairs["b"]], min_coarse)
    ms = (time.process_time() - t) / max(len(pairs), 1) * 1000
    return pd.concat([pairs, pd.DataFrame(rows, index=pairs.index)], axis=1), ms


def groups(images: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    """duplicate_groups rows (group_id, path, kind, content_hash, split) from verified links
    (a, b), made as sparkdup.findings.duplicates makes them."""
    im = images.copy()
    im["unit"] = im.groupby("content_hash")["image_id"].transform("min")
    im["copies"] = im.groupby("content_hash")["image_id"].transform("size")
    unit_of = dict(zip(im["image_id"], im["unit"]))
    e = pd.DataFrame({"unit_a": links["a"].map(unit_of), "unit_b": links["b"].map(unit_of)}).astype("int64")
    e = e[e["unit_a"] != e["unit_b"]]
    first = im.sort_values("path").drop_duplicates("unit")
    units = pd.DataFrame({"unit": first["unit"], "pixels": (first["width"] * first["height"]).astype("int64"),
                          "size_bytes": first["size_bytes"], "path": first["path"], "copies": first["copies"]})
    idx = pd.Series(np.arange(len(units)), index=units["unit"].to_numpy())
    ia, ib = idx[e["unit_a"]].to_numpy(), idx[e["unit_b"]].to_numpy()
    n = len(units)
    _, comp = connected_components(coo_matrix((np.ones(len(ia)), (ia, ib)), shape=(n, n)), directed=False)
    units["component"] = comp
    degree = np.bincount(np.concatenate([ia, ib]), minlength=n)
    units = units[(degree > 0) | (units["copies"].to_numpy() >= 2)]
    e = e.assign(component=comp[ia])
    by_comp = dict(tuple(e.groupby("component")))
    none = pd.DataFrame({"unit_a": [], "unit_b": []})
    assigned = pd.concat([stars(u, by_comp.get(c, none)) for c, u in units.groupby("component")])
    m = im.merge(assigned, on="unit")
    m = m.assign(group_id=m["rep_unit"], kind=np.where(m["copies"] >= 2, "exact", "near"))
    return m[m.groupby("group_id")["image_id"].transform("size") >= 2]


def leaks(g: pd.DataFrame) -> pd.DataFrame:
    x = g[["group_id", "path", "split"]].dropna()
    p = x.merge(x, on="group_id", suffixes=("_a", "_b"))
    return p[p["split_a"] < p["split_b"]][["path_a", "path_b"]]


def replay(work: str, min_cosine: float | None = None, min_coarse: float | None = None) -> dict:
    an = dict(load_config()["analyze"])
    min_cosine = an["duplicate_similarity"] if min_cosine is None else min_cosine
    an["verify_min_coarse"] = an["verify_min_coarse"] if min_coarse is None else min_coarse
    t = load_tables(os.path.join(work, "out"), ["images", "neighbors"])
    images = t["images"]
    images = images[(images["status"] == "ok") & images["content_hash"].notna()]
    pairs, ms = verify(candidates(images, t["neighbors"], min_cosine), images, an["verify_min_coarse"])
    rule = {k: v for k, v in an.items() if k.startswith("verify_max") or k == "verify_min_fine"}
    same = np.array([is_same_picture(r, rule) for r in pairs.to_dict("records")], bool)
    g = groups(images, pairs[same])
    gt = pd.read_parquet(os.path.join(work, "data", "ground_truth.parquet"))
    result = score(gt, {"duplicate_groups": g[["group_id", "path", "kind", "content_hash"]], "leaks": leaks(g)})
    result["replay"] = {"candidates": len(pairs), "verified": int(same.sum()), "cpu_ms_per_pair": round(ms, 2),
                        "fine_searched": int(pairs["fine"].notna().sum()), "min_coarse": an["verify_min_coarse"],
                        "min_cosine": min_cosine, "rule": rule}
    return result, pairs.assign(is_duplicate=same)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("work")
    ap.add_argument("--min-cosine", type=float)
    ap.add_argument("--min-coarse", type=float, help="override analyze.verify_min_coarse (-1: always search fine)")
    ap.add_argument("--json")
    ap.add_argument("--pairs", help="write the scored candidate pairs (a, b, cosine, scores, decision) "
                                    "to this Parquet file")
    args = ap.parse_args()
    r, pairs = replay(args.work, args.min_cosine, args.min_coarse)
    if args.pairs:
        pairs.to_parquet(args.pairs)
    print(json.dumps(r["replay"]))
    md = to_markdown({k: v for k, v in r.items() if k in ("exact_duplicates", "near_duplicates", "leaks",
                                                          "near_duplicates_by_variant", "wrong_pairs",
                                                          "exact_pairs_grouped", "largest_group")})
    print("\n".join(line for line in md.splitlines() if "no table" not in line))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(r, f, indent=1, default=str)


if __name__ == "__main__":
    main()
