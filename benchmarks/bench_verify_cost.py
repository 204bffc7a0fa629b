"""CPU cost of duplicate verification per candidate pair, on a finished run's own pairs, no Spark.

    OMP_NUM_THREADS=1 python benchmarks/bench_verify_cost.py OUT [--limit N] [--save FILE] [--against FILE]

OUT is a `sparkdup run` output. Its candidate pairs (`duplicate_pairs`, byte-identical ones
left out, as analyze leaves them out of the pixel comparison) are scored again by
udfs.verify.compare_many in analyze's order (sorted by image_id_b, then image_id_a) and in
Arrow-sized batches, single-threaded as a Spark Python worker runs (PySpark sets
OMP_NUM_THREADS to the task's cores). Prints CPU ms per pair and how many pairs reached the
fine search. ``--save`` keeps the scores; ``--against`` compares them with scores saved by
another checkout: the largest difference of each score and how many rule decisions changed,
so a speed change can show it kept the answers.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import pandas as pd
import pyarrow.dataset as ds

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sparkdup.config import load_config  # noqa: E402
from sparkdup.udfs.verify import RULE_KEYS, SCORES, compare_many, verdict  # noqa: E402


def candidate_pairs(out: str, limit: int = 0) -> tuple[list, list]:
    """The run's non-identical candidate pairs' signatures (a, b), in analyze's order."""
    images = ds.dataset(f"{out}/images", format="parquet").to_table(columns=["image_id", "signature"]).to_pandas()
    pairs = (ds.dataset(f"{out}/duplicate_pairs", format="parquet")
             .to_table(columns=["image_id_a", "image_id_b", "hash_match"]).to_pandas())
    pairs = pairs[~pairs["hash_match"]].sort_values(["image_id_b", "image_id_a"])
    if limit:
        pairs = pairs.iloc[:limit]
    sig = dict(zip(images["image_id"], images["signature"]))
    return [sig[x] for x in pairs["image_id_a"]], [sig[x] for x in pairs["image_id_b"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--batch", type=int, default=1024, help="pairs per compare_many call (an Arrow batch)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    ap.add_argument("--save", help="write the scores (Parquet)")
    ap.add_argument("--against", help="scores saved by another checkout, to compare with")
    args = ap.parse_args()
    an = load_config()["analyze"]
    rule = {k: an[k] for k in RULE_KEYS}
    a, b = candidate_pairs(args.out, args.limit)
    start = time.process_time()
    scores = []
    for i in range(0, len(a), args.batch):
        scores += compare_many(a[i:i + args.batch], b[i:i + args.batch], an["verify_min_coarse"])
    cpu = time.process_time() - start
    result = pd.DataFrame(scores, columns=list(SCORES))
    result["reason"] = [verdict(s, rule) for s in scores]
    print(f"{len(a):,} pairs: {cpu:.1f} CPU s, {cpu / max(len(a), 1) * 1000:.3f} CPU ms per pair, "
          f"{int(result['fine'].notna().sum()):,} reached the fine search, "
          f"{int((result['reason'] == 'verified').sum()):,} verified "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    if args.save:
        result.to_parquet(args.save)
    if args.against:
        before = pd.read_parquet(args.against)
        for k in SCORES[1:]:
            print(f"  {k}: largest difference {(result[k] - before[k]).abs().max():.2e}")
        print(f"  decisions changed: {int((result['reason'] != before['reason']).sum())} of {len(result):,}")


if __name__ == "__main__":
    main()
