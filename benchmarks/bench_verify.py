"""Which verification signal tells "the same picture after edits" from "a look-alike"?

    python benchmarks/bench_verify.py [--seed 0] [--write]

Builds the labelled real-image pairs of benchmarks/verify_pairs.py (no Spark) and scores
each candidate signal: the aligned multi-scale colour thumbnails of udfs/verify.py (the
one wired in), the old 32x32 luma correlation, perceptual hashes (imagehash pHash/dHash),
and ORB + RANSAC (OpenCV). For each: the best recall at precision >= 0.97 (threshold
chosen on this set, so an optimistic figure for every signal alike), the average
precision, and the CPU time per pair (process time, all threads). --write puts the table in BENCHMARKS.md.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from collections import defaultdict

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import update_benchmarks_md  # noqa: E402
from verify_pairs import build  # noqa: E402

from sparkdup.udfs import verify  # noqa: E402
from sparkdup.udfs.image_stats import pixel_signature  # noqa: E402


def luma32(rgb: np.ndarray) -> bytes:
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).convert("L").resize((32, 32), Image.Resampling.BILINEAR), np.uint8).tobytes()


def luma_correlation(a: bytes, b: bytes) -> float:
    """Pearson correlation of two 32x32 luma thumbnails (the signal analyze used before)."""
    x = np.frombuffer(a, np.uint8).astype(np.float64)
    y = np.frombuffer(b, np.uint8).astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    den = np.linalg.norm(x) * np.linalg.norm(y)
    return float(x @ y / den) if den else float(np.array_equal(x, y))


def phash_sim(a: np.ndarray, b: np.ndarray, kind: str) -> float:
    import imagehash
    from PIL import Image

    f = imagehash.phash if kind == "phash" else imagehash.dhash
    ha, hb = f(Image.fromarray(a)), f(Image.fromarray(b))
    return 1.0 - (ha - hb) / 64.0


def orb_score(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the smaller key-point set that are RANSAC inliers of a similarity transform."""
    import cv2

    def prep(x):
        g = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)
        s = 256.0 / max(g.shape)
        return cv2.resize(g, (max(1, int(g.shape[1] * s)), max(1, int(g.shape[0] * s))), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)

    orb = cv2.ORB_create(nfeatures=500, edgeThreshold=15, patchSize=15)
    ka, da = orb.detectAndCompute(prep(a), None)
    kb, db = orb.detectAndCompute(prep(b), None)
    if da is None or db is None or len(ka) < 4 or len(kb) < 4:
        return 0.0
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(da, db)
    if len(matches) < 4:
        return 0.0
    pa = np.float32([ka[m.queryIdx].pt for m in matches])
    pb = np.float32([kb[m.trainIdx].pt for m in matches])
    _, inliers = cv2.estimateAffinePartial2D(pa, pb, method=cv2.RANSAC, ransacReprojThreshold=5.0)
    if inliers is None:
        return 0.0
    return float(inliers.sum()) / min(len(ka), len(kb))


def best_recall(scores: np.ndarray, labels: np.ndarray, min_precision: float = 0.97) -> tuple[float, float]:
    """Highest recall over thresholds with precision >= min_precision, and that threshold."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    prec = tp / np.maximum(tp + fp, 1)
    best, thr = 0.0, float("inf")
    for i in range(len(s)):
        if (i + 1 < len(s) and s[i + 1] == s[i]):
            continue
        if prec[i] >= min_precision and tp[i] / y.sum() > best:
            best, thr = tp[i] / y.sum(), s[i]
    return float(best), float(thr)


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    order = np.argsort(-scores, kind="stable")
    y = labels[order]
    tp = np.cumsum(y)
    prec = tp / np.arange(1, len(y) + 1)
    return float((prec * y).sum() / y.sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--cache", help="pickle file keeping the built pairs between runs (building takes minutes)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.cache and os.path.exists(args.cache):
        with open(args.cache, "rb") as f:
            pairs = pickle.load(f)
    else:
        pairs = build(args.seed)
        if args.cache:
            with open(args.cache, "wb") as f:
                pickle.dump(pairs, f)
    labels = np.array([p.label for p in pairs])
    kinds = [p.kind for p in pairs]
    print(f"{len(pairs)} pairs ({labels.sum()} same picture, {len(pairs) - labels.sum()} look-alike) "
          f"built in {time.perf_counter() - t0:.0f} s", flush=True)

    signals: dict[str, np.ndarray] = {}
    cost: dict[str, float] = {}
    sigs = [(pixel_signature(p.a), pixel_signature(p.b)) for p in pairs]

    def timed(name, fn):
        t = time.process_time()  # CPU time: what a pair costs, less sensitive to a shared machine's load
        signals[name] = np.array([fn(i) for i in range(len(pairs))], np.float64)
        cost[name] = (time.process_time() - t) / len(pairs) * 1000
        print(f"  {name}: {cost[name]:.2f} ms/pair", flush=True)

    results = [None] * len(pairs)

    def aligned(i):
        results[i] = verify.compare(*sigs[i])
        return results[i]["fine"]

    timed("aligned_fine", aligned)
    signals["aligned_coarse"] = np.array([r["coarse"] for r in results])
    cost["aligned_coarse"] = cost["aligned_fine"]
    signals["aligned_local (negated)"] = -np.array([r["local"] for r in results])  # lower = more alike
    cost["aligned_local (negated)"] = cost["aligned_fine"]
    l32 = [(luma32(p.a), luma32(p.b)) for p in pairs]
    timed("luma32_correlation", lambda i: luma_correlation(*l32[i]))
    timed("phash", lambda i: phash_sim(pairs[i].a, pairs[i].b, "phash"))
    timed("dhash", lambda i: phash_sim(pairs[i].a, pairs[i].b, "dhash"))
    timed("orb_ransac", lambda i: orb_score(pairs[i].a, pairs[i].b))

    lines = ["| signal | recall at precision >= 0.97 | threshold | average precision | CPU ms per pair |",
             "|---|---|---|---|---|"]
    for name, s in signals.items():
        r, thr = best_recall(s, labels)
        lines.append(f"| {name} | {r:.3f} | {thr:.3f} | {average_precision(s, labels):.3f} | {cost[name]:.2f} |")
    # the rule wired in (conf/default.yaml analyze.verify_min_fine / verify_max_changed)
    from sparkdup.config import load_config

    an = load_config()["analyze"]
    rule = np.array([verify.is_same_picture(r, an) for r in results])
    tp, fp = int((rule & (labels == 1)).sum()), int((rule & (labels == 0)).sum())
    lines.append(f"| **aligned rule** (fine >= {an['verify_min_fine']}, changed <= {an['verify_max_changed']}, "
                 f"local <= {an['verify_max_local']}, local_rest <= {an['verify_max_local_rest']}, "
                 f"chroma <= {an['verify_max_chroma']}) | "
                 f"{tp / labels.sum():.3f} at precision {tp / max(tp + fp, 1):.3f} | fixed | | {cost['aligned_fine']:.2f} |")
    by = defaultdict(lambda: [0, 0])
    for s, y, k in zip(rule, labels, kinds):
        by[(y, k)][0] += int(s)
        by[(y, k)][1] += 1
    fam = ["", "Per family, the aligned rule (same picture: share kept; look-alike: share wrongly kept):", "",
           "| label | family | kept / pairs |", "|---|---|---|"]
    for (y, k), (kept, n) in sorted(by.items()):
        fam.append(f"| {'same' if y else 'look-alike'} | {k} | {kept} / {n} |")
    body = "\n".join([f"{len(pairs)} labelled pairs ({labels.sum()} same picture after an edit, "
                      f"{len(pairs) - labels.sum()} look-alikes), seed {args.seed}.", "", *lines, *fam, "",
                      f"Command: `python benchmarks/bench_verify.py --seed {args.seed} --write` (2 shared cores)."])
    print(body)
    if args.write:
        update_benchmarks_md("duplicate-verification-signals", body)


if __name__ == "__main__":
    main()
