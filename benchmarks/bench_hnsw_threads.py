"""Does a multi-threaded faiss HNSW build give the same neighbours as the one-thread build?

    python benchmarks/bench_hnsw_threads.py [--n 20000] [--dim 256] [--queries 5000]

The neighbors stage builds each bucket's index in one task with neighbors.build_threads
threads (default: spark.task.cpus, 1). A single-bucket run leaves the other cores idle while
it builds; more threads would use them, but only if the result stays the same (reruns must
reproduce their tables). Builds the index as the stage does (M 32, efConstruction 200, added
in 1,024-vector batches, synthetic clustered unit vectors) with 1 thread, then twice with 2,
and prints the fraction of equal ids in the top-11 lists of the first `queries` vectors
(ef 64) and the build wall seconds.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def build_and_query(x: np.ndarray, threads: int, queries: int) -> tuple[np.ndarray, float]:
    import faiss

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = 200
    started = time.time()
    for s in range(0, len(x), 1024):  # the Arrow batches of the build task
        index.add(x[s:s + 1024])
    took = time.time() - started
    faiss.omp_set_num_threads(1)
    index.hnsw.efSearch = 64
    _, ids = index.search(x[:queries], 11)
    return ids, took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--queries", type=int, default=5000)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(max(8, a.n // 500), a.dim)).astype(np.float32)
    x = centres[rng.integers(len(centres), size=a.n)] + rng.normal(size=(a.n, a.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    one, t1 = build_and_query(x, 1, a.queries)
    two, t2 = build_and_query(x, 2, a.queries)
    again, t3 = build_and_query(x, 2, a.queries)
    print(f"1 vs 2 threads: {(one == two).mean():.6f} of ids equal; 2 vs 2 threads: {(two == again).mean():.6f}; "
          f"build wall s: {t1:.1f} (1 thread), {t2:.1f} and {t3:.1f} (2 threads)")


if __name__ == "__main__":
    main()
