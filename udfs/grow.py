"""Growing one bucket's index by the vectors an --append adds (executor side, no Spark).

Why: an --append of 1 % new images used to rebuild every bucket's index from all its
vectors (shipping every vector through a shuffle and rebuilding an HNSW graph of the whole
bucket) to add a few items. A grow task instead receives its bucket's previous index (the
pieces of its chunk file, sparkdup.indexes.route, exactly as a query task does) followed by
the new vectors, opens the old index, adds the new vectors and emits the grown index as
INDEX_SCHEMA chunks for Spark to write under the new run's index folder:

- faiss_hnsw: the loaded HNSW graph gets ``add`` (faiss inserts into the graph; the old
  items and links are kept), so only the new vectors pay insertion.
- exact: the old matrix and the new rows are written as one larger matrix.
- annoy: an Annoy index cannot take items once built, so a new one is built from the old
  index's stored vectors (``get_item_vector``) plus the new ones: the trees are rebuilt
  but no old vector travels through Spark.

Item i of the grown index is image ids[i]: the old ids, then the new ones, in row order.
When to grow and when to rebuild is decided by the driver (sparkdup.append_neighbors).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd

from sparkdup.udfs import backends
from sparkdup.udfs.buckets import as_matrix


@dataclass(frozen=True)
class GrowPlan:
    backend: str
    dim: int
    params: backends.Params
    files: dict  # bucket -> name of its previous chunk file (names the reassembled index)


class _Grown(backends.Builder):
    """A Builder that starts from an existing index file: its items and ids come first."""

    def __init__(self, backend: str, old: str, path: str, dim: int, params: backends.Params) -> None:
        super().__init__(path, dim)
        self._backend, self._params = backend, params
        old_ids = np.load(backends.ids_path(old))
        self._ids.add(old_ids)
        if backend == "faiss_hnsw":
            import faiss

            faiss.omp_set_num_threads(params.threads)
            self._index = faiss.read_index(old)
            self._index.hnsw.efConstruction = params.ef_construction
        elif backend == "exact":
            self._rows = [np.load(old)]
        elif backend == "annoy":
            from annoy import AnnoyIndex

            source = AnnoyIndex(dim, "angular")
            source.load(old, prefault=False)
            self._index = AnnoyIndex(dim, "angular")
            self._index.set_seed(params.seed)
            self._index.on_disk_build(path)
            for item in range(source.get_n_items()):
                self._index.add_item(item, source.get_item_vector(item))
            source.unload()
        else:
            raise ValueError(f"cannot grow a {backend} index")

    def _add(self, start: int, x: np.ndarray) -> None:
        if not len(x):
            return
        if self._backend == "faiss_hnsw":
            self._index.add(x)
        elif self._backend == "exact":
            self._rows.append(x)
        else:
            for i, v in enumerate(x):
                self._index.add_item(start + i, v)

    def _save(self) -> None:
        if self._backend == "faiss_hnsw":
            import faiss

            faiss.write_index(self._index, self.path)
        elif self._backend == "exact":
            np.save(self.path, np.concatenate(self._rows).astype(np.float32))
        else:
            self._index.build(self._params.trees, n_jobs=self._params.threads)
            self._index.unload()
        self._index = self._rows = None


def grow_partition(batches: Iterator[pd.DataFrame], plan: GrowPlan) -> Iterator[pd.DataFrame]:
    """ROUTED_SCHEMA rows (a bucket's previous index pieces, then its new vectors as QUERY
    rows; sparkdup.indexes.route with one partition per bucket) -> INDEX_SCHEMA chunks of
    each grown index. A bucket whose pieces arrive but no vector is not emitted."""
    impl = backends.get(plan.backend)
    work = tempfile.mkdtemp(prefix="sparkdup-grow-")
    assemblers: dict[int, backends.Assembler] = {}
    grown: dict[int, _Grown] = {}
    try:
        for pdf in batches:
            if len(pdf) == 0:
                continue
            kinds = pdf["kind"].to_numpy()
            pieces = pdf[kinds == backends.PIECE]
            for b, kind, offset, total, data in zip(pieces["bucket"], pieces["file"], pieces["offset"],
                                                    pieces["total"], pieces["data"]):
                if int(b) not in assemblers:
                    name = os.path.basename(str(plan.files[int(b)]))
                    assemblers[int(b)] = backends.Assembler(os.path.join(work, f"old-{int(b)}-{name}.{impl.suffix}"))
                assemblers[int(b)].add(kind, offset, total, data)
            rows = pdf[kinds == backends.QUERY]
            for b in np.unique(rows["bucket"].to_numpy()) if len(rows) else []:
                b = int(b)
                if b not in grown:
                    old = assemblers[b].finish()
                    grown[b] = _Grown(plan.backend, old, os.path.join(work, f"bucket-{b}.{impl.suffix}"),
                                      plan.dim, plan.params)
                mine = rows[rows["bucket"].to_numpy() == b]
                grown[b].add(mine["image_id"].to_numpy(np.int64), as_matrix(mine["vec"], plan.dim))
        for b in sorted(grown):
            yield from backends._emit(grown[b], b)  # noqa: SLF001 - the build tasks' chunk writer
    finally:
        for a in assemblers.values():
            if not a.done:
                a.abandon()
        shutil.rmtree(work, ignore_errors=True)
