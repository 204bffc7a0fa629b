"""Recall@k and speed of the neighbors backends (Annoy, faiss HNSW) against exact search.

    python benchmarks/bench_neighbors.py                       # 20k realistic synthetic vectors
    python benchmarks/bench_neighbors.py --embeddings out/embeddings --queries 2000

Measures, on one thread (a Spark task runs on one core): index build time and query time,
both per 10k images, and recall@k of the top k (self excluded) against exact brute force,
on a sample of queries. Times are CPU seconds of this process (time.process_time), which
stay meaningful on a shared, oversubscribed machine; wall seconds are printed beside them.
Prints a markdown table and the command that produced it.

Synthetic embeddings imitate pooled CNN features (EfficientNet-Lite0: 1280-d, post-ReLU so
non-negative and sparse-ish, L2-normalised): a hierarchy of superclasses and Zipf-sized
classes in a latent space, mapped through a random projection with a decaying spectrum
(anisotropic: a few directions carry most of the variance) and per-dimension lognormal
scales, plus near-duplicate pairs (light perturbations, cos ~0.95-0.99) and exact copies.
Such data gives a mean pairwise cosine around 0.3 and nearest-neighbour cosines around
0.85: concentrated, which is what makes tree-based search (Annoy) need a large search_k.

--embeddings reads a Parquet or Delta folder with image_id and embedding columns (pyarrow,
no Spark; Delta through the deltalake package), local paths only.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
import time


def _set_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)


class Clock:
    """CPU and wall seconds of a block (`with Clock() as c:`); clocks add up."""

    def __init__(self, cpu: float = 0.0, wall: float = 0.0) -> None:
        self.cpu, self.wall = cpu, wall

    def __enter__(self):
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu += time.process_time() - self._cpu0
        self.wall += time.perf_counter() - self._wall0

    def __add__(self, other: "Clock") -> "Clock":
        return Clock(self.cpu + other.cpu, self.wall + other.wall)


def synthetic_embeddings(n: int, dim: int = 1280, seed: int = 0, latent: int = 96,
                         near_dup_share: float = 0.03, exact_dup_share: float = 0.005):
    """(ids int64, vectors float32 unit rows) imitating CNN embeddings; see the module doc."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n_super, n_cls = 20, max(2, n // 100)
    supers = rng.normal(size=(n_super, latent))
    centers = supers[rng.integers(n_super, size=n_cls)] + rng.normal(size=(n_cls, latent)) * 0.9
    p = 1.0 / np.arange(1, n_cls + 1) ** 0.8
    labels = rng.choice(n_cls, size=n, p=p / p.sum())
    z = centers[labels] + rng.normal(size=(n, latent)) * 0.9
    spectrum = np.arange(1, latent + 1) ** -0.5
    proj = rng.normal(size=(latent, dim)) * spectrum[:, None]
    scale = rng.lognormal(0.0, 0.7, size=dim)

    def features(zz):
        return np.maximum(zz @ proj - 0.3, 0.0) * scale

    x = np.empty((n, dim), np.float32)
    for s in range(0, n, 8192):
        x[s:s + 8192] = features(z[s:s + 8192])
    n_near, n_exact = int(near_dup_share * n), int(exact_dup_share * n)
    perm = rng.permutation(n)
    src, dst = perm[:n_near + n_exact], perm[n_near + n_exact:2 * (n_near + n_exact)]
    near_src, near_dst = src[:n_near], dst[:n_near]
    x[near_dst] = features(z[near_src] + rng.normal(size=(n_near, latent)) * 0.1) \
        * (1.0 + 0.02 * rng.normal(size=(n_near, dim)))
    x[dst[n_near:]] = x[src[n_near:]]
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    ids = rng.choice(np.iinfo(np.int64).max, size=n, replace=False).astype(np.int64)
    return ids, x


def read_embeddings(path: str, limit: int | None):
    import numpy as np
    import pyarrow.dataset as ds

    if os.path.isdir(os.path.join(path, "_delta_log")):
        try:
            from deltalake import DeltaTable
        except ImportError:  # a Delta folder's Parquet files include superseded versions
            sys.exit("reading a Delta table needs the deltalake package (or pass a Parquet export)")
        table = DeltaTable(path).to_pyarrow_dataset()
    else:
        table = ds.dataset(path, format="parquet")
    t = table.to_table(columns=["image_id", "embedding"])
    if limit:
        t = t.slice(0, limit)
    ids = t.column("image_id").to_numpy().astype(np.int64)
    flat = t.column("embedding").combine_chunks().flatten().to_numpy().astype(np.float32)
    x = flat.reshape(len(ids), -1)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return ids, x


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embeddings", help="Parquet/Delta folder with image_id, embedding (default: synthetic)")
    parser.add_argument("--n", type=int, default=20000, help="synthetic vectors (or first N of --embeddings)")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=2000, help="query sample for recall and query time")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--trees", default="25,50,100", help="Annoy n_trees values")
    parser.add_argument("--search-k", default="-1,5000,10000,20000,40000", help="Annoy search_k values")
    parser.add_argument("--hnsw-m", default="32", help="faiss HNSW M values")
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--ef-search", default="16,32,64,128,256", help="faiss HNSW efSearch values")
    parser.add_argument("--buckets", type=int, default=1,
                        help="also measure bucketed search: k-means buckets, each query probes --probe")
    parser.add_argument("--probe", type=int, default=2, help="buckets probed per query in the bucketed runs")
    parser.add_argument("--no-bucket-index", dest="bucket_index", action="store_false",
                        help="with --buckets: only the recall ceiling of bucketing, no per-bucket indexes")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (1 = one Spark core)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--job", action="store_true",
                        help="also run the neighbors stage itself (local[2], default settings) on the same vectors "
                             "and score its table: the recall users get, executor-built indexes included")
    parser.add_argument("--storage", default="",
                        help="embedding storage to compare with float32, e.g. float16,pca256: faiss HNSW at its "
                             "first M and efSearch 64, built and queried on the stored form, recall against "
                             "float32 exact search")
    args = parser.parse_args(argv)
    _set_threads(args.threads)

    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from sparkdup.udfs import backends, merge
    from sparkdup.udfs.backends import Params

    import faiss

    faiss.omp_set_num_threads(args.threads)

    if args.embeddings:
        ids, x = read_embeddings(args.embeddings, args.n)
        source = f"{args.embeddings} ({len(ids)} vectors, {x.shape[1]}-d)"
    else:
        t0 = time.perf_counter()
        ids, x = synthetic_embeddings(args.n, args.dim, args.seed)
        source = f"synthetic realistic ({len(ids)} x {x.shape[1]}-d, generated in {time.perf_counter() - t0:.1f} s)"
    n, k = len(ids), args.k
    rng = np.random.default_rng(args.seed + 1)
    qrows = np.sort(rng.choice(n, size=min(args.queries, n), replace=False))
    qids, qx = ids[qrows], x[qrows]
    per10k_q = 10000 / len(qrows)
    per10k_n = 10000 / n

    rows = []

    def add(backend, params, recall, build, query, note=""):
        b = None if build is None else (build.cpu * per10k_n, build.wall * per10k_n)
        q = None if query is None else (query.cpu * per10k_q, query.wall * per10k_q)
        rows.append((backend, params, recall, b, q, note))
        bs = "-" if b is None else f"{b[0]:.2f} ({b[1]:.2f} wall)"
        qs = "-" if q is None else f"{q[0]:.2f} ({q[1]:.2f} wall)"
        print(f"  {backend:<10} {params:<28} recall@{k}={recall:.4f} build/10k={bs} s "
              f"query/10k={qs} s {note}", file=sys.stderr, flush=True)

    def merged(i, s):
        return merge.merge_candidates(qids, i, s, k)

    with Clock() as exact_s:
        e_ids, e_sims = merged(*backends.exact_topk(qx, x, k + 1, 4096, ids))
    exact_valid = np.isfinite(e_sims)

    def recall(a_ids, a_sims):
        return merge.recall_at_k(a_ids, e_ids, np.isfinite(a_sims), exact_valid)

    add("exact", "block_rows=4096", 1.0, None, exact_s, f"(scans all {n})")
    print(f"  nn1 cosine median {np.median(e_sims[:, 0]):.3f}, nn{k} median {np.median(e_sims[:, k - 1]):.3f}",
          file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="bench_nb_")
    try:
        for trees in [int(t) for t in args.trees.split(",") if t]:
            path = os.path.join(tmp, f"a{trees}.annoy")
            with Clock() as build_s:
                backends.build_index("annoy", ids, x, path, Params(trees=trees, threads=args.threads))
            loaded = backends.load_index("annoy", path, x.shape[1])
            for sk in [int(s) for s in args.search_k.split(",") if s]:
                with Clock() as q_s:
                    a = merged(*backends.query_index(loaded, qx, k + 1, Params(search_k=sk)))
                add("annoy", f"trees={trees} search_k={sk}", recall(*a), build_s, q_s,
                    f"index {os.path.getsize(path) / 2**20:.0f} MiB")
        for m in [int(v) for v in args.hnsw_m.split(",") if v]:
            path = os.path.join(tmp, f"h{m}.faiss")
            with Clock() as build_s:
                backends.build_index("faiss_hnsw", ids, x, path, Params(m=m, ef_construction=args.ef_construction,
                                                                      threads=args.threads))
            loaded = backends.load_index("faiss_hnsw", path, x.shape[1])
            for ef in [int(v) for v in args.ef_search.split(",") if v]:
                with Clock() as q_s:
                    a = merged(*backends.query_index(loaded, qx, k + 1, Params(ef_search=ef, threads=args.threads)))
                add("faiss_hnsw", f"M={m} efC={args.ef_construction} ef={ef}", recall(*a), build_s, q_s,
                    f"index {os.path.getsize(path) / 2**20:.0f} MiB")
        if args.buckets > 1:
            _bench_buckets(args, ids, x, qids, qx, k, tmp, add, merged, recall, e_ids, exact_valid)
        if args.job:
            _bench_job(ids, x, qids, k, tmp, add, recall)
        for storage in [v for v in args.storage.split(",") if v]:
            _bench_storage(args, storage, ids, x, qx, k, tmp, add, merged, recall)
    finally:
        backends.clear_cache()
        shutil.rmtree(tmp, ignore_errors=True)

    print()
    print(f"Data: {source}; {len(qrows)} queries, k={k}, {args.threads} thread(s).")
    print()
    print(f"| backend | settings | recall@{k} | build CPU s / 10k images | query CPU s / 10k images "
          f"| (wall: build / query) | note |")
    print("|---|---|---|---|---|---|---|")
    for backend, params, rec, b, q, note in rows:
        bs, bw = ("-", "-") if b is None else (f"{b[0]:.2f}", f"{b[1]:.2f}")
        qs, qw = ("-", "-") if q is None else (f"{q[0]:.2f}", f"{q[1]:.2f}")
        print(f"| {backend} | {params} | {rec:.4f} | {bs} | {qs} | {bw} / {qw} | {note} |")
    print()
    print("Command: `python " + " ".join(shlex.quote(a) for a in [sys.argv[0]] + (argv or sys.argv[1:])) + "`")
    return 0


def _bench_buckets(args, ids, x, qids, qx, k, tmp, add, merged, recall, e_ids, e_valid):
    """Bucketed search as the job does it: k-means on a sample, index per bucket, probe P."""
    import numpy as np

    from sparkdup.udfs import backends, buckets, merge
    from sparkdup.udfs.backends import Params

    rng = np.random.default_rng(args.seed + 2)
    sample = x[rng.choice(len(x), size=min(len(x), 20000), replace=False)]
    with Clock() as fit:
        centroids = buckets.fit_centroids(sample, args.buckets, iterations=10, seed=args.seed)
        primary = buckets.nearest_buckets(x, centroids, 1)[:, 0]
    sizes = np.bincount(primary, minlength=len(centroids))
    # The ceiling bucketing puts on recall, whatever the index: the share of each query's
    # exact neighbours indexed in one of the buckets it probes.
    bucket_of = dict(zip(ids.tolist(), primary.tolist()))
    for p in range(1, min(len(centroids), 4) + 1):
        probed = buckets.nearest_buckets(qx, centroids, p)
        hits = total = 0
        for r in range(len(qx)):
            truth = [bucket_of[int(i)] for i, ok in zip(e_ids[r], e_valid[r]) if ok]
            hits += sum(b in set(probed[r].tolist()) for b in truth)
            total += len(truth)
        add("buckets", f"ceiling: {len(centroids)} buckets, probe {p}", hits / max(total, 1), fit, None,
            f"bucket sizes {sizes.min()}-{sizes.max()}; no index: exact search in the probed buckets")
    if not args.bucket_index:
        return
    probes = buckets.nearest_buckets(qx, centroids, args.probe)
    note = f"{len(centroids)} buckets (sizes {sizes.min()}-{sizes.max()}), probe {probes.shape[1]}"
    trees = int(args.trees.split(",")[-1])
    sks = [int(s) for s in args.search_k.split(",") if s]
    efs = [int(v) for v in args.ef_search.split(",") if v]
    for backend, settings in (("annoy", sks), ("faiss_hnsw", efs)):
        build, files = Clock() + fit, {}
        for b in range(len(centroids)):
            rows = np.flatnonzero(primary == b)
            if not len(rows):
                continue
            path = os.path.join(tmp, f"bk_{backend}_{b}")
            with build:
                backends.build_index(backend, ids[rows], x[rows], path,
                                     Params(trees=trees, m=int(args.hnsw_m.split(",")[0]),
                                            ef_construction=args.ef_construction, threads=args.threads))
            files[b] = path
        for s in settings:
            plan = backends.QueryPlan(backend, x.shape[1], k, files, Params(search_k=s, ef_search=s, threads=args.threads))
            with Clock() as query:
                c_ids, c_sims = [], []
                for p in range(probes.shape[1]):
                    pi, ps = merge.empty(len(qx), k + 1)
                    for b in np.unique(probes[:, p]):
                        r = np.flatnonzero(probes[:, p] == b)
                        if int(b) in files:
                            pi[r], ps[r] = backends.query_bucket(plan, files[int(b)], qx[r])
                    c_ids.append(pi)
                    c_sims.append(ps)
                a = merged(c_ids, c_sims)
            label = f"trees={trees} search_k={s}" if backend == "annoy" else f"M={args.hnsw_m.split(',')[0]} ef={s}"
            add(backend + "/buckets", label, recall(*a), build, query, note)

def _bench_job(ids, x, qids, k, tmp, add, recall):
    """The neighbors stage end to end on these vectors, at its default settings."""
    import numpy as np
    import pandas as pd

    from sparkdup.jobs import neighbors
    from sparkdup.stage import main_for

    out = os.path.join(tmp, "job")
    for name, frame in (("images", pd.DataFrame({"image_id": ids, "path": [f"p{i}" for i in range(len(ids))],
                                                   "content_hash": [f"h{i}" for i in range(len(ids))],
                                                   "status": "ok"})),
                        ("embeddings", pd.DataFrame({"image_id": ids, "embedding": list(x), "model": "m",
                                                     "dim": np.int32(x.shape[1]), "run_id": "r"}))):
        os.makedirs(os.path.join(out, name))
        frame.to_parquet(os.path.join(out, name, "part-0.parquet"), index=False)
    with Clock() as took:
        rc = main_for(neighbors, ["--output", out, "--format", "parquet", "--set", "spark.master=local[2]",
                                  "--set", "spark.driver_memory=2g"])
    if rc != 0:
        raise SystemExit("the neighbors stage failed")
    table = pd.read_parquet(os.path.join(out, "neighbors"))
    table = table[table["src"].isin(set(qids.tolist()))].sort_values(["src", "rank"])
    found = table.groupby("src")["dst"].apply(list).to_dict()
    a_ids = np.zeros((len(qids), k), np.int64)
    a_sims = np.full((len(qids), k), -np.inf, np.float32)
    for r, q in enumerate(qids):
        got = found.get(int(q), [])[:k]
        a_ids[r, :len(got)] = got
        a_sims[r, :len(got)] = 1.0
    add("job", "neighbors stage, default settings", recall(a_ids, a_sims), None, None,
        f"{took.wall:.0f} s wall for the stage (Spark start included), {len(ids)} vectors")


def _bench_storage(args, storage, ids, x, qx, k, tmp, add, merged, recall):
    """Store the vectors as float16 or as a PCA projection (fitted on a sample), search
    that form, score against float32 exact search: what the smaller storage costs."""
    import numpy as np

    from sparkdup.udfs import backends
    from sparkdup.udfs.backends import Params

    def unit(v):
        return (v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    with Clock() as fit:
        if storage == "float16":
            stored, sq = x.astype(np.float16).astype(np.float32), qx.astype(np.float16).astype(np.float32)
            per_image = 2 * x.shape[1]
        elif storage.startswith("pca"):
            d = int(storage[3:])
            rng = np.random.default_rng(args.seed + 3)
            sample = x[rng.choice(len(x), size=min(len(x), 20000), replace=False)].astype(np.float64)
            mean = sample.mean(axis=0)
            _, _, vt = np.linalg.svd(sample - mean, full_matrices=False)
            basis = vt[:d].T.astype(np.float32)
            stored, sq = unit((x - mean) @ basis), unit((qx - mean) @ basis)
            per_image = 4 * d
        else:
            raise SystemExit(f"--storage: float16 or pca<dims>, got {storage}")
    with Clock() as q_exact:
        a = merged(*backends.exact_topk(sq, stored, k + 1, 4096, ids))
    add(f"exact/{storage}", f"{per_image} bytes per image (float32: {4 * x.shape[1]})", recall(*a), fit, q_exact)
    m = int(args.hnsw_m.split(",")[0])
    path = os.path.join(tmp, f"storage_{storage}.faiss")
    with Clock() as build:
        backends.build_index("faiss_hnsw", ids, stored, path, Params(m=m, ef_construction=args.ef_construction,
                                                                     threads=args.threads))
    loaded = backends.load_index("faiss_hnsw", path, stored.shape[1])
    with Clock() as q:
        a = merged(*backends.query_index(loaded, sq, k + 1, Params(ef_search=64, threads=args.threads)))
    add(f"faiss_hnsw/{storage}", f"M={m} ef=64, {per_image} bytes per image", recall(*a), build, q,
        f"index {os.path.getsize(path) / 2**20:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
