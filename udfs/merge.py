"""Merging: candidate lists (several buckets, several blocks) -> the global top k per query.

Self dropped, each neighbour kept once with its best similarity, ties broken by id so
results are deterministic. Missing slots carry similarity -inf: validity is carried by
the similarity, never by an id value, since any int64 may be a real image id. No Spark here.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

NEG_INF = np.float32(-np.inf)


def empty(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, k) ids and similarities with every slot missing."""
    return np.zeros((n, k), np.int64), np.full((n, k), NEG_INF, np.float32)


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
        return empty(n, k)
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
    out_ids, out_sims = empty(n, k)
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
    ids, sims = empty(n, width)
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


def merge_batch(pdf: pd.DataFrame, k: int) -> pd.DataFrame:
    """Rows (src, dst array, sim array) holding several buckets' candidates -> global top k."""
    if len(pdf) == 0:
        return pd.DataFrame({"src": pd.Series([], dtype="int64"), "dst": [], "sim": []})
    src = pdf["src"].to_numpy(np.int64)
    ids, sims = merge_candidates(src, list(pdf["dst"]), list(pdf["sim"]), k)
    dst, sim = to_lists(ids, sims)
    return pd.DataFrame({"src": src, "dst": dst, "sim": sim})


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
