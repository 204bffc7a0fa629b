"""Per-batch pieces of `sparkdup search`, testable without Spark: prepare query files the
way ingest and embed see them, pick buckets, merge the k best, decide duplicates.

A query is prepared exactly like an ingested image: decoded with ingest's limits
(sparkdup.decoded.decode_limits), its 64 x 64 signature made by udfs.image_stats, its
content hash the SHA-256 of its bytes (ingest's content_hash), and its embedding made by
udfs.embed with the model named in the `embeddings` table and embed.resize. The duplicate
decision is analyze's rule (sparkdup.findings.duplicates): byte-identical, or cosine >=
analyze.duplicate_similarity and the aligned thumbnails pass udfs.verify.is_same_picture.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from sparkdup.udfs.buckets import nearest_buckets
from sparkdup.udfs.decode import Limits, decode
from sparkdup.udfs.image_stats import pixel_signature
from sparkdup.udfs.merge import merge_candidates
from sparkdup.udfs.verify import compare, is_same_picture


@dataclass
class Query:
    """One query file, prepared: status/error from decoding, then hash, signature, vector."""

    name: str
    status: str
    error: str | None = None
    content_hash: str | None = None
    signature: bytes | None = None
    rgb: np.ndarray | None = field(default=None, repr=False)
    vector: np.ndarray | None = field(default=None, repr=False)


def prepare(name: str, data: bytes | None, limits: Limits, error: str | None = None) -> Query:
    """Decode one query's bytes; an unreadable or undecodable file keeps its status and error."""
    if error is not None:
        return Query(name, "unreadable", error)
    d = decode(data, limits)
    if d.rgb is None:
        return Query(name, d.status, d.error)
    return Query(name, "ok", None, hashlib.sha256(data).hexdigest(), pixel_signature(d.rgb), d.rgb)


def embed_queries(queries: list[Query], model_name: str, batch_size: int, resize: str) -> None:
    """Set each decoded query's unit vector, with the model of the existing embeddings."""
    from sparkdup.udfs.embed import embed_arrays

    ok = [q for q in queries if q.rgb is not None]
    if not ok:
        return
    for q, v in zip(ok, embed_arrays(model_name, [q.rgb for q in ok], batch_size, resize)):
        q.vector = v


def probed_buckets(vectors: np.ndarray, centroids, probe: int) -> np.ndarray:
    """(n, probe) buckets to search per query; one bucket (no centroids) gives column 0 only."""
    if centroids is None:
        return np.zeros((len(vectors), 1), np.int32)
    return nearest_buckets(vectors, np.asarray(centroids, np.float32), probe)


def top_k(candidates: list[tuple[np.ndarray, np.ndarray]], n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The global k best of per-bucket (ids, sims) candidate blocks, each (n, c); missing at -inf.
    Queries are not indexed images, so nothing is dropped as "self" (query id -1)."""
    if not candidates:
        return np.zeros((n, k), np.int64), np.full((n, k), -np.inf, np.float32)
    return merge_candidates(np.full(n, -1, np.int64), [c[0] for c in candidates], [c[1] for c in candidates], k)


def is_duplicate(query: Query, content_hash: str | None, signature: bytes | None, similarity: float,
                 min_similarity: float, rule: Mapping) -> bool:
    """Analyze's verified duplicate rule for one (query, indexed image) pair; ``rule``: the
    analyze settings (their verify_* thresholds, see udfs.verify.is_same_picture)."""
    if content_hash is not None and query.content_hash == content_hash:
        return True
    if similarity < min_similarity:
        return False
    return is_same_picture(compare(query.signature, signature), rule)
