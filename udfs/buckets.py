"""Buckets: the coarse partition of the embedding space the neighbors stage searches in.

Vectors are L2-normalised float32 rows, so cosine similarity is the inner product.
Spherical k-means on a bounded sample (``fit_centroids``) gives the centroids; every
vector is indexed in its nearest bucket and queried in its ``probe`` nearest ones
(``nearest_buckets``). ``assign_batch`` is the executor side: one Arrow batch of
embeddings in, (image_id, buckets, packed float32 vector) rows out. No Spark here.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


# ---------------------------------------------------------------- vectors
def as_matrix(vectors, dim: int | None = None) -> np.ndarray:
    """A C-contiguous float32 (n, dim) matrix from an array, a list of arrays, or a Series of
    arrays / packed bytes (as the Spark side ships them: float32, or float16 when a row
    holds 2 x dim bytes, see ``pack``)."""
    if isinstance(vectors, pd.Series):
        vectors = vectors.to_numpy()
    if isinstance(vectors, np.ndarray) and vectors.dtype != object:
        m = vectors if vectors.ndim == 2 else vectors.reshape(-1, dim or len(vectors))
        return np.ascontiguousarray(m, dtype=np.float32)
    items = list(vectors)
    if not items:
        return np.zeros((0, dim or 0), np.float32)
    if isinstance(items[0], (bytes, bytearray, memoryview)):
        half = dim is not None and len(items[0]) == 2 * dim
        m = np.frombuffer(b"".join(items), dtype=np.float16 if half else np.float32).reshape(len(items), -1)
        return m.astype(np.float32)  # (a copy either way: frombuffer's array is read-only)
    return np.ascontiguousarray(np.stack([np.asarray(v, np.float32) for v in items]))


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


VECTOR_DTYPES = ("float32", "float16")


def pack(x: np.ndarray, dtype: str = "float32") -> list[bytes]:
    """Rows as float32 (or float16: half the shuffle and cache) bytes, a compact Spark binary column."""
    x = np.ascontiguousarray(x, np.dtype(dtype))
    return [row.tobytes() for row in x]


# ---------------------------------------------------------------- buckets
def fit_centroids(sample: np.ndarray, n_buckets: int, iterations: int = 10, seed: int = 0,
                  overwrite: bool = False) -> np.ndarray:
    """Spherical k-means (cosine) on a sample: k-means++ init, a few Lloyd iterations.

    Returns (min(n_buckets, n), dim) unit-norm float32 centroids. Deterministic for a seed.
    An emptied cluster is re-seeded with the sample point farthest from its centroid.
    Runs on the driver, so it holds one copy of the sample (with ``overwrite``, a float32
    ``sample`` is normalised in place: the neighbors job's own sample matrix) and sums
    the clusters one at a time instead of reordering the whole sample each iteration: at
    20,000 x 1280-d a copy is 100 MB.
    """
    in_place = overwrite and isinstance(sample, np.ndarray) and sample.dtype == np.float32 and sample.flags.writeable
    x = sample if in_place else np.array(sample, np.float32)
    for rows in range(0, len(x), 1024):  # (a whole-matrix norm would square a full copy)
        x[rows:rows + 1024] = normalize(x[rows:rows + 1024])
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
        del sims
        order = np.argsort(labels, kind="stable")
        counts = np.bincount(labels, minlength=n_buckets)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        new = centers.copy()
        for j in np.flatnonzero(counts):  # one cluster's rows at a time (the same sums as a reduceat)
            new[j] = np.add.reduceat(x[order[bounds[j]:bounds[j + 1]]], [0], axis=0)[0]
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



def assign_batch(pdf: pd.DataFrame, centroids: np.ndarray | None, probe: int, dim: int,
                 dtype: str = "float32") -> pd.DataFrame:
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
                         "buckets": list(buckets), "vec": pack(x, dtype)})
