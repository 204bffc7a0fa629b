"""The neighbors stage's per-batch work: buckets, indexes, queries and merges (no Spark here).

Vectors are L2-normalised float32 rows, so cosine similarity is the inner product.

- Buckets: spherical k-means on a sample (``fit_centroids``); every vector is indexed in
  its nearest bucket and queried in its ``probe`` nearest ones (``nearest_buckets``).
- Indexes, one per bucket, written to a file plus a sidecar ``<file>.ids.npy`` holding the
  64-bit image ids (Annoy and faiss number items 0..n-1): ``AnnoyBuilder`` (angular metric,
  built on disk so the builder's memory stays flat) and ``FaissHnswBuilder`` (inner product).
- ``load_index`` opens an index once per Python worker and keeps it in a module-level cache;
  Annoy indexes, exact matrices and the id files are memory-mapped, so every worker on a
  machine shares one copy in the page cache. faiss HNSW indexes are read into each worker's
  memory (faiss 1.9's IO_FLAG_MMAP does not map HNSW storage: measured, resident size grew
  by the file size), so at most FAISS_CACHE_MAX of them stay loaded per worker.
- ``query_annoy`` / ``query_faiss`` / ``exact_topk`` return fixed-width (ids, sims) arrays;
  missing slots have similarity -inf (validity is carried by the similarity, never by an id
  value, since any int64 may be a real image id).
- ``merge_candidates`` merges candidate lists (several buckets, several blocks) into the
  global top k per query: self dropped, duplicates kept once with their best similarity,
  ties broken by id so results are deterministic.

Annoy's angular distance is d = sqrt(2 - 2 cos) on normalised vectors, so cos = 1 - d^2 / 2.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

BACKENDS = ("annoy", "faiss_hnsw", "exact")
NEG_INF = np.float32(-np.inf)


# ---------------------------------------------------------------- vectors
def as_matrix(vectors, dim: int | None = None) -> np.ndarray:
    """A C-contiguous float32 (n, dim) matrix from an array, a list of arrays, or a Series of
    arrays / float32 bytes (as the Spark side ships them)."""
    if isinstance(vectors, pd.Series):
        vectors = vectors.to_numpy()
    if isinstance(vectors, np.ndarray) and vectors.dtype != object:
        m = vectors if vectors.ndim == 2 else vectors.reshape(-1, dim or len(vectors))
        return np.ascontiguousarray(m, dtype=np.float32)
    items = list(vectors)
    if not items:
        return np.zeros((0, dim or 0), np.float32)
    if isinstance(items[0], (bytes, bytearray, memoryview)):
        m = np.frombuffer(b"".join(items), dtype=np.float32).reshape(len(items), -1)
        return m.copy()
    return np.ascontiguousarray(np.stack([np.asarray(v, np.float32) for v in items]))


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def pack(x: np.ndarray) -> list[bytes]:
    """Rows as float32 bytes (a compact Spark binary column)."""
    x = np.ascontiguousarray(x, np.float32)
    return [row.tobytes() for row in x]


# ---------------------------------------------------------------- buckets
def fit_centroids(sample: np.ndarray, n_buckets: int, iterations: int = 10, seed: int = 0) -> np.ndarray:
    """Spherical k-means (cosine) on a sample: k-means++ init, a few Lloyd iterations.

    Returns (min(n_buckets, n), dim) unit-norm float32 centroids. Deterministic for a seed.
    An emptied cluster is re-seeded with the sample point farthest from its centroid.
    """
    x = normalize(sample)
    n = len(x)
    if n == 0:
        raise ValueError("cannot fit centroids on an empty sample")
    n_buckets = max(1, min(int(n_buckets), n))
    rng = np.random.default_rng(seed)
    first = int(rng.integers(n))
    centers = np.empty((n_buckets, x.shape[1]), np.float32)
    centers[0] = x[first]
    d2 = np.maximum(2.0 - 2.0 * (x @ x[first]), 0.0).astype(np.float64)
    for j in range(1, n_buckets):
        total = d2.sum()
        i = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centers[j] = x[i]
        d2 = np.minimum(d2, np.maximum(2.0 - 2.0 * (x @ x[i]), 0.0))
    for _ in range(iterations):
        sims = x @ centers.T
        labels = sims.argmax(axis=1)
        best = sims[np.arange(n), labels]
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=n_buckets)
        nonempty = np.flatnonzero(counts)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])[nonempty]
        sums = np.add.reduceat(x[order], starts, axis=0)
        new = centers.copy()
        new[nonempty] = sums
        for j in np.flatnonzero(counts == 0):  # re-seed empty clusters, farthest point first
            far = int(best.argmin())
            new[j] = x[far]
            best[far] = np.inf
        new = normalize(new)
        if np.allclose(new, centers, atol=1e-6):
            centers = new
            break
        centers = new
    return centers


def nearest_buckets(vectors: np.ndarray, centroids: np.ndarray, probe: int) -> np.ndarray:
    """(n, probe) int32 bucket numbers, nearest first (column 0 is the bucket a vector is indexed in)."""
    x = as_matrix(vectors)
    c = np.asarray(centroids, np.float32)
    probe = max(1, min(int(probe), len(c)))
    if len(c) == 1 or len(x) == 0:
        return np.zeros((len(x), probe), np.int32)
    sims = x @ c.T
    if probe < len(c):
        part = np.argpartition(-sims, probe - 1, axis=1)[:, :probe]
    else:
        part = np.tile(np.arange(len(c)), (len(x), 1))
    order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1).astype(np.int32)


# ---------------------------------------------------------------- index files
def ids_path(index_path: str) -> str:
    """The sidecar file holding an index's image ids (item i of the index is ids[i])."""
    return index_path + ".ids.npy"


class _IdsWriter:
    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.count = 0

    def add(self, ids) -> None:
        chunk = np.asarray(ids, np.int64).ravel()
        self._chunks.append(chunk)
        self.count += len(chunk)

    def save(self, path: str) -> None:
        ids = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int64)
        np.save(path, ids)


class _Builder:
    """What every index builder shares: the image ids, in the order vectors were added."""

    _ids: _IdsWriter

    @property
    def count(self) -> int:
        return self._ids.count


class AnnoyBuilder(_Builder):
    """Build one Annoy index (angular) in a file, vectors added in batches.

    The index is built on disk (Annoy's ``on_disk_build``): the vectors go straight into the
    file, so the builder holds only the ids in memory, 8 bytes per vector.
    """

    def __init__(self, path: str, dim: int, seed: int = 42) -> None:
        from annoy import AnnoyIndex

        self.path, self.dim = path, dim
        self._index = AnnoyIndex(dim, "angular")
        self._index.set_seed(seed)
        if os.path.exists(path):
            os.remove(path)
        self._index.on_disk_build(path)
        self._ids = _IdsWriter()

    def add(self, ids, vectors) -> None:
        x = as_matrix(vectors, self.dim)
        start = self._ids.count
        for i, v in enumerate(x):
            self._index.add_item(start + i, v)
        self._ids.add(ids)

    def build(self, trees: int, n_jobs: int = -1) -> str:
        self._index.build(int(trees), n_jobs=n_jobs)
        self._index.unload()
        self._ids.save(ids_path(self.path))
        return self.path


class FaissHnswBuilder(_Builder):
    """Build one faiss HNSW index (inner product) in a file, vectors added in batches.

    HNSW has no on-disk build: the index (vectors plus graph) is in memory until saved.
    """

    def __init__(self, path: str, dim: int, m: int = 32, ef_construction: int = 200) -> None:
        import faiss

        self.path, self.dim = path, dim
        self._index = faiss.IndexHNSWFlat(dim, int(m), faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = int(ef_construction)
        self._ids = _IdsWriter()

    def add(self, ids, vectors) -> None:
        x = as_matrix(vectors, self.dim)
        if len(x):
            self._index.add(x)
        self._ids.add(ids)

    def build(self, n_jobs: int = -1) -> str:
        import faiss

        if n_jobs and n_jobs > 0:
            faiss.omp_set_num_threads(n_jobs)
        faiss.write_index(self._index, self.path)
        self._ids.save(ids_path(self.path))
        self._index = None
        return self.path


class MatrixBuilder(_Builder):
    """The exact backend's 'index': the vectors themselves in a .npy file (memory-mapped by
    readers), written row block by row block so the writer's memory stays flat."""

    def __init__(self, path: str, dim: int, rows: int) -> None:
        from numpy.lib.format import open_memmap

        self.path, self.dim = path, dim
        self._mm = open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
        self._ids = _IdsWriter()

    def add(self, ids, vectors) -> None:
        x = as_matrix(vectors, self.dim)
        start = self._ids.count
        if start + len(x) > len(self._mm):
            raise ValueError(f"more vectors than the {len(self._mm)} announced")
        self._mm[start:start + len(x)] = x
        self._ids.add(ids)

    def build(self) -> str:
        if self._ids.count != len(self._mm):
            raise ValueError(f"{self._ids.count} vectors written, {len(self._mm)} announced")
        self._mm.flush()
        del self._mm
        self._ids.save(ids_path(self.path))
        return self.path


def build_annoy_index(ids, vectors, path: str, trees: int, seed: int = 42, n_jobs: int = -1) -> str:
    """Build and save an Annoy index of `vectors` (item i is image ids[i]); returns `path`."""
    b = AnnoyBuilder(path, as_matrix(vectors).shape[1], seed)
    b.add(ids, vectors)
    return b.build(trees, n_jobs)


def build_faiss_hnsw_index(ids, vectors, path: str, m: int = 32, ef_construction: int = 200) -> str:
    """Build and save a faiss HNSW (inner product) index; returns `path`."""
    b = FaissHnswBuilder(path, as_matrix(vectors).shape[1], m, ef_construction)
    b.add(ids, vectors)
    return b.build()


# ---------------------------------------------------------------- loading (once per worker)
@dataclass
class LoadedIndex:
    backend: str
    index: object  # AnnoyIndex | faiss.Index | np.memmap (exact)
    ids: np.ndarray
    path: str = field(default="")


_CACHE: "OrderedDict[tuple[str, str], LoadedIndex]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_MAX = 64  # indexes kept open per Python worker (Annoy/exact ones are mmaps: cheap)
FAISS_CACHE_MAX = 1  # faiss indexes live in worker memory: keep the current bucket's only


def _open(backend: str, path: str, dim: int) -> LoadedIndex:
    ids = np.load(ids_path(path), mmap_mode="r")
    if backend == "annoy":
        from annoy import AnnoyIndex

        index = AnnoyIndex(dim, "angular")
        index.load(path, prefault=False)  # mmap
    elif backend == "faiss_hnsw":
        import faiss

        index = faiss.read_index(path)
    elif backend == "exact":
        index = np.load(path, mmap_mode="r")
    else:
        raise ValueError(f"unknown backend '{backend}' (one of {', '.join(BACKENDS)})")
    return LoadedIndex(backend, index, ids, path)


def load_index(backend: str, path: str, dim: int) -> LoadedIndex:
    """Open an index file once per process (module-level LRU cache keyed by backend and path)."""
    key = (backend, path)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
            return hit
    loaded = _open(backend, path, dim)
    with _CACHE_LOCK:
        _CACHE[key] = loaded
        while len(_CACHE) > CACHE_MAX:
            _evict(next(iter(_CACHE)))
        in_memory = [kk for kk in _CACHE if kk[0] == "faiss_hnsw"]
        for kk in in_memory[:max(0, len(in_memory) - FAISS_CACHE_MAX)]:
            _evict(kk)
    return loaded


def _evict(key: tuple[str, str]) -> None:
    old = _CACHE.pop(key)
    if old.backend == "annoy":
        old.index.unload()


def clear_cache() -> None:
    with _CACHE_LOCK:
        for old in _CACHE.values():
            if old.backend == "annoy":
                old.index.unload()
        _CACHE.clear()


# ---------------------------------------------------------------- queries
def _empty(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((n, k), np.int64), np.full((n, k), NEG_INF, np.float32)


def query_annoy(index, ids: np.ndarray, vectors, k: int, search_k: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Top k of each vector in an Annoy index: (image ids, cosine similarities), (n, k) each."""
    x = as_matrix(vectors)
    out_ids, out_sims = _empty(len(x), k)
    for row, v in enumerate(x):
        items, dists = index.get_nns_by_vector(v, k, search_k=int(search_k), include_distances=True)
        if items:
            m = len(items)
            out_ids[row, :m] = ids[np.asarray(items, np.int64)]
            d = np.asarray(dists, np.float32)
            out_sims[row, :m] = np.clip(1.0 - d * d / 2.0, -1.0, 1.0)
    return out_ids, out_sims


def query_faiss(index, ids: np.ndarray, vectors, k: int, ef_search: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Top k of each vector in a faiss HNSW inner-product index: (image ids, similarities)."""
    x = as_matrix(vectors)
    if len(x) == 0:
        return _empty(0, k)
    index.hnsw.efSearch = max(int(ef_search), k)
    sims, items = index.search(x, k)
    valid = items >= 0
    out_ids = np.where(valid, np.asarray(ids)[np.where(valid, items, 0)], 0).astype(np.int64)
    out_sims = np.where(valid, np.clip(sims, -1.0, 1.0), NEG_INF).astype(np.float32)
    return out_ids, out_sims


def exact_topk(queries, base, k: int, block_rows: int = 4096, base_ids: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Exact top k by inner product, `base` read block_rows rows at a time (it may be a memmap).

    Returns (ids, sims), (n, k) each; ids are base_ids[...] (row numbers when None).
    """
    q = as_matrix(queries)
    n, total = len(q), len(base)
    best_rows, best_sims = np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    kk = min(k, total)
    if n and kk:
        for start in range(0, total, block_rows):
            block = np.ascontiguousarray(base[start:start + block_rows], np.float32)
            sims = q @ block.T
            rows = np.broadcast_to(np.arange(start, start + len(block), dtype=np.int64), sims.shape)
            all_sims = np.concatenate([best_sims, sims], axis=1)
            all_rows = np.concatenate([best_rows, rows], axis=1)
            if all_sims.shape[1] > kk:
                part = np.argpartition(-all_sims, kk - 1, axis=1)[:, :kk]
                all_sims = np.take_along_axis(all_sims, part, axis=1)
                all_rows = np.take_along_axis(all_rows, part, axis=1)
            best_sims, best_rows = all_sims, all_rows
        order = np.lexsort((best_rows, -best_sims), axis=-1)
        best_sims = np.take_along_axis(best_sims, order, axis=1)
        best_rows = np.take_along_axis(best_rows, order, axis=1)
    out_ids, out_sims = _empty(n, k)
    out_sims[:, :best_sims.shape[1]] = best_sims
    mapped = best_rows if base_ids is None else np.asarray(base_ids)[best_rows]
    out_ids[:, :best_rows.shape[1]] = mapped
    return out_ids, out_sims


def merge_candidates(query_ids, cand_ids, cand_sims, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The global top k per query from candidate lists (several buckets or blocks).

    cand_ids/cand_sims: (n, c) arrays, or sequences of such arrays (concatenated along the
    candidates), or per-query ragged lists. Drops the query itself and invalid slots
    (non-finite similarity), keeps each neighbour once with its best similarity, orders by
    similarity descending then id. Returns (n, k) arrays, missing slots at -inf.
    """
    q = np.asarray(query_ids, np.int64).ravel()
    ids, sims = _candidates_matrix(cand_ids, cand_sims, len(q))
    n = len(q)
    if ids.shape[1] == 0:
        return _empty(n, k)
    sims = sims.astype(np.float32, copy=True)
    sims[~np.isfinite(sims) | (ids == q[:, None])] = NEG_INF
    order = np.lexsort((-sims, ids), axis=-1)  # by id, best similarity first
    ids = np.take_along_axis(ids, order, axis=1)
    sims = np.take_along_axis(sims, order, axis=1)
    repeat = np.zeros_like(ids, dtype=bool)
    repeat[:, 1:] = ids[:, 1:] == ids[:, :-1]
    sims[repeat] = NEG_INF
    order = np.lexsort((ids, -sims), axis=-1)[:, :k]  # by similarity, then id
    ids = np.take_along_axis(ids, order, axis=1)
    sims = np.take_along_axis(sims, order, axis=1)
    out_ids, out_sims = _empty(n, k)
    out_ids[:, :ids.shape[1]] = ids
    out_sims[:, :sims.shape[1]] = sims
    out_ids[~np.isfinite(out_sims)] = 0
    return out_ids, out_sims


def _candidates_matrix(cand_ids, cand_sims, n: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(cand_ids, np.ndarray) and cand_ids.dtype != object and cand_ids.ndim == 2:
        return cand_ids.astype(np.int64), np.asarray(cand_sims, np.float32)
    parts_i, parts_s = list(cand_ids), list(cand_sims)
    if parts_i and all(isinstance(p, np.ndarray) and p.ndim == 2 and p.shape[0] == n for p in parts_i):
        return (np.concatenate([p.astype(np.int64) for p in parts_i], axis=1),
                np.concatenate([np.asarray(p, np.float32) for p in parts_s], axis=1))
    # ragged: one sequence per query
    width = max((len(r) for r in parts_i), default=0)
    ids, sims = _empty(n, width)
    for row, (ri, rs) in enumerate(zip(parts_i, parts_s)):
        m = len(ri)
        if m:
            ids[row, :m] = np.asarray(ri, np.int64)
            sims[row, :m] = np.asarray(rs, np.float32)
    return ids, sims


def to_lists(ids: np.ndarray, sims: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per-row arrays of the valid (finite similarity) slots, for a Spark array column."""
    valid = np.isfinite(sims)
    return ([ids[r][valid[r]] for r in range(len(ids))],
            [sims[r][valid[r]].astype(np.float64) for r in range(len(sims))])


# ---------------------------------------------------------------- per-batch entry points (Spark side)
@dataclass
class QueryPlan:
    """What a query task needs: small and picklable (index *names*, never indexes)."""

    backend: str
    dim: int
    k: int
    files: dict  # bucket -> index file name (resolved on the worker, e.g. SparkFiles.get)
    search_k: int = -1
    ef_search: int = 128
    block_rows: int = 4096
    threads: int = 1  # faiss OpenMP threads per Python worker (Spark runs one task per core)


def query_bucket(plan: QueryPlan, path: str, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top k+1 (self included, dropped later) of each vector in one bucket's index."""
    loaded = load_index(plan.backend, path, plan.dim)
    kk = plan.k + 1
    if plan.backend == "annoy":
        return query_annoy(loaded.index, loaded.ids, vectors, kk, plan.search_k)
    if plan.backend == "faiss_hnsw":
        import faiss

        faiss.omp_set_num_threads(max(1, plan.threads))
        return query_faiss(loaded.index, loaded.ids, vectors, kk, plan.ef_search)
    return exact_topk(vectors, loaded.index, kk, plan.block_rows, loaded.ids)


def query_batch(pdf: pd.DataFrame, plan: QueryPlan, resolve: Callable[[str], str] = lambda name: name
                ) -> pd.DataFrame:
    """Rows (image_id, bucket, vec) -> rows (src, dst array, sim array): each row's top k in
    that bucket, self dropped. Rows of several buckets may share a batch."""
    if len(pdf) == 0:
        return pd.DataFrame({"src": pd.Series([], dtype="int64"), "dst": [], "sim": []})
    src = pdf["image_id"].to_numpy(np.int64)
    x = as_matrix(pdf["vec"], plan.dim)
    buckets = pdf["bucket"].to_numpy() if "bucket" in pdf else np.zeros(len(pdf), np.int32)
    ids, sims = _empty(len(pdf), plan.k + 1)
    for b in np.unique(buckets):
        rows = np.flatnonzero(buckets == b)
        name = plan.files.get(int(b))
        if name is None:  # an empty bucket: nothing indexed there
            continue
        ids[rows], sims[rows] = query_bucket(plan, resolve(name), x[rows])
    ids, sims = merge_candidates(src, ids, sims, plan.k)
    dst, sim = to_lists(ids, sims)
    return pd.DataFrame({"src": src, "dst": dst, "sim": sim})


def merge_batch(pdf: pd.DataFrame, k: int) -> pd.DataFrame:
    """Rows (src, dst array, sim array) holding several buckets' candidates -> global top k."""
    if len(pdf) == 0:
        return pd.DataFrame({"src": pd.Series([], dtype="int64"), "dst": [], "sim": []})
    src = pdf["src"].to_numpy(np.int64)
    ids, sims = merge_candidates(src, list(pdf["dst"]), list(pdf["sim"]), k)
    dst, sim = to_lists(ids, sims)
    return pd.DataFrame({"src": src, "dst": dst, "sim": sim})


def assign_batch(pdf: pd.DataFrame, centroids: np.ndarray | None, probe: int, dim: int) -> pd.DataFrame:
    """Rows (image_id, embedding) -> rows (image_id, buckets array, vec float32 bytes).

    Checks every vector has `dim` values; vectors are re-normalised (cheap, and it keeps the
    cosine = inner product identity even if an upstream writer drifted)."""
    emb = pdf["embedding"]
    lengths = emb.map(lambda v: 0 if v is None else len(v)).to_numpy()
    bad = np.flatnonzero(lengths != dim)
    if len(bad):
        raise ValueError(f"image_id {int(pdf['image_id'].iloc[bad[0]])} has an embedding of "
                         f"{int(lengths[bad[0]])} values, expected {dim}")
    x = normalize(as_matrix(emb, dim))
    if centroids is None or len(centroids) <= 1:
        buckets = np.zeros((len(x), 1), np.int32)
    else:
        buckets = nearest_buckets(x, centroids, probe)
    return pd.DataFrame({"image_id": pdf["image_id"].to_numpy(np.int64),
                         "buckets": list(buckets), "vec": pack(x)})


def iter_bucket_batches(rows: Iterable, batch: int = 4096) -> Iterable[tuple[int, np.ndarray, np.ndarray]]:
    """Group streamed (image_id, bucket, vec bytes) rows, sorted by bucket, into
    (bucket, ids, matrix) batches of at most `batch` rows, never mixing buckets."""
    ids: list[int] = []
    vecs: list[bytes] = []
    current = None
    for image_id, bucket, vec in rows:
        if ids and (bucket != current or len(ids) >= batch):
            yield current, np.asarray(ids, np.int64), as_matrix(vecs)
            ids, vecs = [], []
        current = bucket
        ids.append(image_id)
        vecs.append(vec)
    if ids:
        yield current, np.asarray(ids, np.int64), as_matrix(vecs)


def recall_at_k(approx_ids: Sequence, exact_ids: Sequence, approx_valid=None, exact_valid=None) -> float:
    """Mean share of the exact top-k found in the approximate top-k, per query."""
    total, found = 0, 0
    for r, (a, e) in enumerate(zip(approx_ids, exact_ids)):
        ev = e if exact_valid is None else np.asarray(e)[np.asarray(exact_valid[r])]
        av = a if approx_valid is None else np.asarray(a)[np.asarray(approx_valid[r])]
        es = set(np.asarray(ev).tolist())
        total += len(es)
        found += len(es & set(np.asarray(av).tolist()))
    return found / total if total else 1.0
