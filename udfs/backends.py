"""Index backends of the neighbors stage: one interface, three implementations (no Spark here).

A ``Backend`` builds one bucket's index in a local file from batches of (image id,
vector), loads it, queries it and says how much memory it needs per vector:

- ``faiss_hnsw``: a faiss HNSW graph, inner product. No on-disk build: the index (vectors
  plus graph) is in memory while built and while queried (faiss 1.9's IO_FLAG_MMAP does
  not map HNSW storage: measured, resident size grew by the file size), so at most
  FAISS_CACHE_MAX of them stay loaded per Python worker.
- ``annoy``: random-projection trees, angular metric, built on disk (``on_disk_build``:
  the builder holds only the ids) and memory-mapped when loaded, so every worker of a
  machine shares one copy in the page cache. cos = 1 - d^2 / 2 on normalised vectors.
- ``exact``: the vectors themselves as a .npy matrix, memory-mapped, searched by a blocked
  matrix product: for small data and for measuring recall.

Every index file has a sidecar ``<file>.ids.npy`` with the 64-bit image ids (the
libraries number items 0..n-1). ``REGISTRY`` maps the ``neighbors.backend`` name to its
implementation: callers look a backend up once and never compare names.

Executor side of the index's life (``build_partition`` -> ``query_partition``): a build
task receives one bucket's vectors, builds the index in a local temporary file and emits
it as fixed-size chunks (rows of ``INDEX_SCHEMA``), which Spark writes under the output
location (any Hadoop filesystem); a query task receives, with its query rows, the pieces
of the indexes of the buckets it queries and nothing else (``sparkdup.indexes.route``),
reassembles each once per machine (atomic rename: concurrent workers agree) and opens it
once per worker. ``materialise`` does the same from a local chunk file (driver, tests).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from sparkdup.udfs.buckets import as_matrix
from sparkdup.udfs.merge import NEG_INF, empty, merge_candidates, to_lists

INDEX_SCHEMA = "bucket int, file string, part int, total long, data binary"
CHUNK_BYTES = 8 << 20  # one row of the index table; Arrow batches stay far below 2 GB


# ---------------------------------------------------------------- settings a task needs
@dataclass(frozen=True)
class Params:
    """Every backend's knobs (from the ``neighbors`` settings): small and picklable."""

    trees: int = 50
    search_k: int = -1
    seed: int = 42
    m: int = 32
    ef_construction: int = 200
    ef_search: int = 64
    block_rows: int = 4096
    threads: int = 1  # OpenMP / build threads per task (Spark runs one task per core)

    @classmethod
    def from_config(cls, nb: dict, threads: int = 1) -> "Params":
        return cls(trees=int(nb["annoy"]["trees"]), search_k=int(nb["annoy"]["search_k"]), seed=int(nb["seed"]),
                   m=int(nb["faiss_hnsw"]["m"]), ef_construction=int(nb["faiss_hnsw"]["ef_construction"]),
                   ef_search=int(nb["faiss_hnsw"]["ef_search"]), block_rows=int(nb["exact_block_rows"]),
                   threads=max(1, int(threads)))


def ids_path(index_path: str) -> str:
    """The sidecar file holding an index's image ids (item i of the index is ids[i])."""
    return index_path + ".ids.npy"


class _Ids:
    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.count = 0

    def add(self, ids) -> None:
        chunk = np.asarray(ids, np.int64).ravel()
        self._chunks.append(chunk)
        self.count += len(chunk)

    def save(self, path: str) -> None:
        np.save(path, np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int64))


class Builder:
    """One index being built in a file: ``add`` batches, then ``save`` (file + ids sidecar)."""

    def __init__(self, path: str, dim: int) -> None:
        self.path, self.dim = path, dim
        self._ids = _Ids()

    @property
    def count(self) -> int:
        return self._ids.count

    def add(self, ids, vectors) -> None:
        x = as_matrix(vectors, self.dim)
        self._add(self._ids.count, x)
        self._ids.add(ids)

    def save(self) -> str:
        self._save()
        self._ids.save(ids_path(self.path))
        return self.path

    def _add(self, start: int, x: np.ndarray) -> None:
        raise NotImplementedError

    def _save(self) -> None:
        raise NotImplementedError


class Backend:
    """The interface: build, save (``Builder.save``), load, query, memory per vector."""

    name = ""
    suffix = ""
    source = "ann"  # the `neighbors.source` value of the edges it finds
    in_memory = False  # a loaded index lives in worker memory (not a shared mmap)

    def builder(self, path: str, dim: int, params: Params, rows: int) -> Builder:
        raise NotImplementedError

    def load(self, path: str, dim: int):
        raise NotImplementedError

    def query(self, index, vectors: np.ndarray, k: int, params: Params) -> tuple[np.ndarray, np.ndarray]:
        """(n, k) item numbers and cosine similarities; missing slots: item -1."""
        raise NotImplementedError

    def bytes_per_vector(self, dim: int, params: Params) -> int:
        """Index file size per vector, and the memory it takes while built or loaded."""
        raise NotImplementedError

    def release(self, index) -> None:
        """Free what ``load`` opened (called when evicted from the worker's cache)."""


# ---------------------------------------------------------------- annoy
class _AnnoyBuilder(Builder):
    def __init__(self, path: str, dim: int, params: Params) -> None:
        from annoy import AnnoyIndex

        super().__init__(path, dim)
        self._params = params
        self._index = AnnoyIndex(dim, "angular")
        self._index.set_seed(params.seed)
        if os.path.exists(path):
            os.remove(path)
        self._index.on_disk_build(path)

    def _add(self, start: int, x: np.ndarray) -> None:
        for i, v in enumerate(x):
            self._index.add_item(start + i, v)

    def _save(self) -> None:
        self._index.build(self._params.trees, n_jobs=self._params.threads)
        self._index.unload()


class Annoy(Backend):
    name, suffix = "annoy", "annoy"

    def builder(self, path, dim, params, rows):
        return _AnnoyBuilder(path, dim, params)

    def load(self, path, dim):
        from annoy import AnnoyIndex

        index = AnnoyIndex(dim, "angular")
        index.load(path, prefault=False)  # mmap
        return index

    def query(self, index, vectors, k, params):
        x = as_matrix(vectors)
        items = np.full((len(x), k), -1, np.int64)
        sims = np.full((len(x), k), NEG_INF, np.float32)
        for row, v in enumerate(x):
            found, dists = index.get_nns_by_vector(v, k, search_k=params.search_k, include_distances=True)
            if found:
                m = len(found)
                items[row, :m] = found
                d = np.asarray(dists, np.float32)
                sims[row, :m] = np.clip(1.0 - d * d / 2.0, -1.0, 1.0)
        return items, sims

    def bytes_per_vector(self, dim, params):
        # items (dim floats + header) plus tree nodes: about 2 x trees / (dim + 2) nodes per item
        node = 4 * dim + 16
        return node + int(node * 2 * params.trees / (dim + 2)) + 8

    def release(self, index):
        index.unload()


# ---------------------------------------------------------------- faiss HNSW
class _FaissBuilder(Builder):
    def __init__(self, path: str, dim: int, params: Params) -> None:
        import faiss

        super().__init__(path, dim)
        faiss.omp_set_num_threads(params.threads)
        self._index = faiss.IndexHNSWFlat(dim, params.m, faiss.METRIC_INNER_PRODUCT)
        self._index.hnsw.efConstruction = params.ef_construction

    def _add(self, start: int, x: np.ndarray) -> None:
        if len(x):
            self._index.add(x)

    def _save(self) -> None:
        import faiss

        faiss.write_index(self._index, self.path)
        self._index = None


class FaissHnsw(Backend):
    name, suffix, in_memory = "faiss_hnsw", "faiss", True

    def builder(self, path, dim, params, rows):
        return _FaissBuilder(path, dim, params)

    def load(self, path, dim):
        import faiss

        return faiss.read_index(path)

    def query(self, index, vectors, k, params):
        import faiss

        x = as_matrix(vectors)
        if len(x) == 0:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        faiss.omp_set_num_threads(params.threads)
        index.hnsw.efSearch = max(params.ef_search, k)
        sims, items = index.search(x, k)
        sims = np.where(items >= 0, np.clip(sims, -1.0, 1.0), NEG_INF).astype(np.float32)
        return items.astype(np.int64), sims

    def bytes_per_vector(self, dim, params):
        return 4 * dim + 8 * params.m + 8  # flat vectors + level-0 links (2m ids of 4 bytes) + ids


# ---------------------------------------------------------------- exact
class _MatrixBuilder(Builder):
    """The vectors in a .npy file, written block by block so the writer's memory stays flat."""

    def __init__(self, path: str, dim: int, rows: int) -> None:
        from numpy.lib.format import open_memmap

        super().__init__(path, dim)
        self._mm = open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))

    def _add(self, start: int, x: np.ndarray) -> None:
        if start + len(x) > len(self._mm):
            raise ValueError(f"more vectors than the {len(self._mm)} announced")
        self._mm[start:start + len(x)] = x

    def _save(self) -> None:
        if self._ids.count != len(self._mm):
            raise ValueError(f"{self._ids.count} vectors written, {len(self._mm)} announced")
        self._mm.flush()
        del self._mm


class Exact(Backend):
    name, suffix, source = "exact", "npy", "exact"

    def builder(self, path, dim, params, rows):
        return _MatrixBuilder(path, dim, rows)

    def load(self, path, dim):
        return np.load(path, mmap_mode="r")

    def query(self, index, vectors, k, params):
        return exact_topk(vectors, index, k, params.block_rows)

    def bytes_per_vector(self, dim, params):
        return 4 * dim + 8


def exact_topk(queries, base, k: int, block_rows: int = 4096, base_ids: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Exact top k by inner product, `base` read block_rows rows at a time (it may be a memmap).

    Returns (ids, sims), (n, k) each; ids are base_ids[...] (row numbers when None, -1 in
    missing slots).
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
    out_rows = np.full((n, k), -1, np.int64)
    out_sims = np.full((n, k), NEG_INF, np.float32)
    out_sims[:, :best_sims.shape[1]] = best_sims
    out_rows[:, :best_rows.shape[1]] = best_rows
    if base_ids is None:
        return out_rows, out_sims
    return _to_ids(out_rows, out_sims, base_ids)


def _to_ids(items: np.ndarray, sims: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Item numbers -> image ids (missing slots: id 0, similarity -inf)."""
    valid = (items >= 0) & np.isfinite(sims)
    out = np.where(valid, np.asarray(ids)[np.where(valid, items, 0)], 0).astype(np.int64)
    return out, np.where(valid, sims, NEG_INF).astype(np.float32)


REGISTRY: dict[str, Backend] = {b.name: b for b in (FaissHnsw(), Annoy(), Exact())}


def get(name: str) -> Backend:
    """The backend called `name` (ValueError naming the choices otherwise)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend '{name}' (one of {', '.join(REGISTRY)})") from None


def build_index(backend: str, ids, vectors, path: str, params: Params = Params()) -> str:
    """Build and save one index of `vectors` (item i is image ids[i]); returns `path`."""
    x = as_matrix(vectors)
    b = get(backend).builder(path, x.shape[1], params, len(x))
    b.add(ids, x)
    return b.save()


# ---------------------------------------------------------------- loading (once per worker)
@dataclass
class LoadedIndex:
    backend: Backend
    index: object
    ids: np.ndarray
    path: str = field(default="")


_CACHE: "OrderedDict[str, LoadedIndex]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
CACHE_MAX = 64  # indexes kept open per Python worker (annoy/exact ones are mmaps: cheap)
FAISS_CACHE_MAX = 1  # in-memory indexes: keep the current bucket's only


def load_index(backend: str, path: str, dim: int) -> LoadedIndex:
    """Open an index file once per process (module-level LRU cache keyed by path)."""
    with _CACHE_LOCK:
        hit = _CACHE.get(path)
        if hit is not None:
            _CACHE.move_to_end(path)
            return hit
    impl = get(backend)
    loaded = LoadedIndex(impl, impl.load(path, dim), np.load(ids_path(path), mmap_mode="r"), path)
    with _CACHE_LOCK:
        _CACHE[path] = loaded
        while len(_CACHE) > CACHE_MAX:
            _evict(next(iter(_CACHE)))
        in_memory = [p for p, v in _CACHE.items() if v.backend.in_memory]
        for p in in_memory[:max(0, len(in_memory) - FAISS_CACHE_MAX)]:
            _evict(p)
    return loaded


def _evict(path: str) -> None:
    old = _CACHE.pop(path)
    old.backend.release(old.index)


def clear_cache() -> None:
    with _CACHE_LOCK:
        for path in list(_CACHE):
            _evict(path)


def query_index(loaded: LoadedIndex, vectors, k: int, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Top k of each vector in a loaded index: (image ids, cosine similarities), (n, k) each."""
    items, sims = loaded.backend.query(loaded.index, vectors, k, params)
    return _to_ids(items, sims, loaded.ids)


# ---------------------------------------------------------------- executor: build one bucket per task
@dataclass(frozen=True)
class BuildPlan:
    backend: str
    dim: int
    params: Params
    max_rows: int  # most vectors indexed per bucket (the rest are queried, not indexed)
    sizes: dict  # bucket -> vectors (the exact backend's matrix is sized up front)


def build_partition(batches: Iterator[pd.DataFrame], plan: BuildPlan) -> Iterator[pd.DataFrame]:
    """Rows (bucket, image_id, vec) sorted by bucket -> rows of INDEX_SCHEMA: each bucket's
    index file and ids file in CHUNK_BYTES pieces. The index is built in a local temporary
    folder, removed once its chunks are emitted."""
    impl = get(plan.backend)
    work = tempfile.mkdtemp(prefix="sparkdup-build-")
    builder, current = None, None
    try:
        for pdf in batches:
            if len(pdf) == 0:
                continue
            buckets = pdf["bucket"].to_numpy()
            for b in _runs(buckets):
                rows = np.flatnonzero(buckets == b)
                if b != current:
                    if builder is not None:
                        yield from _emit(builder, current)
                    current = b
                    rows_b = min(int(plan.sizes.get(int(b), 0)), plan.max_rows)
                    builder = impl.builder(os.path.join(work, f"bucket-{int(b)}.{impl.suffix}"), plan.dim,
                                           plan.params, rows_b)
                room = plan.max_rows - builder.count
                if room > 0:
                    rows = rows[:room]
                    builder.add(pdf["image_id"].to_numpy(np.int64)[rows], as_matrix(pdf["vec"].iloc[rows], plan.dim))
        if builder is not None:
            yield from _emit(builder, current)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _runs(values: np.ndarray) -> list:
    """The distinct values of a sorted array, in order."""
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
    return [values[s] for s in starts]


def _emit(builder: Builder, bucket) -> Iterator[pd.DataFrame]:
    if builder.count == 0:
        return
    path = builder.save()
    for kind, p in (("index", path), ("ids", ids_path(path))):
        total = os.path.getsize(p)
        with open(p, "rb") as f:
            part = 0
            while True:
                data = f.read(CHUNK_BYTES)
                if not data and part:
                    break
                yield pd.DataFrame({"bucket": [int(bucket)], "file": [kind], "part": [part],
                                    "total": [total], "data": [data]})
                part += 1
                if len(data) < CHUNK_BYTES:
                    break
        os.remove(p)


PIECE_BYTES = 64 << 10  # index bytes per row where query tasks receive an index (sparkdup.indexes.route)


def default_local_dir() -> str:
    """Where a worker reassembles indexes when neighbors.index_dir is unset: the executor's
    Spark local folder (removed with the application), else the temporary folder."""
    local = os.environ.get("SPARK_LOCAL_DIRS", "").split(",")[0]
    return os.path.join(local or tempfile.gettempdir(), "sparkdup-index")


class Assembler:
    """One bucket's index file and ids file, reassembled from pieces written at their offsets
    (so their order does not matter). ``finish`` renames them into place atomically (ids
    first: the index file existing means both do); when another task of this machine
    already did, the pieces are dropped and its files are used: once per machine."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.done = os.path.exists(target) and os.path.exists(ids_path(target))
        self._tmp: dict[str, str] = {}
        self._handles: dict = {}
        self._totals: dict[str, int] = {}

    def add(self, kind: str, offset: int, total: int, data: bytes) -> None:
        if self.done:
            return
        handle = self._handles.get(kind)
        if handle is None:
            if kind not in ("index", "ids"):
                raise ValueError(f"unknown index piece kind {kind!r}")
            os.makedirs(os.path.dirname(self.target) or ".", exist_ok=True)
            final = self.target if kind == "index" else ids_path(self.target)
            self._tmp[kind] = f"{final}.{uuid.uuid4().hex[:8]}.tmp"
            handle = self._handles[kind] = open(self._tmp[kind], "wb")
        handle.seek(int(offset))
        handle.write(data)
        self._totals[kind] = int(total)

    def finish(self) -> str:
        if self.done:
            return self.target
        for h in self._handles.values():
            h.close()
        self._handles = {}
        for kind in ("index", "ids"):
            p = self._tmp.get(kind)
            size = os.path.getsize(p) if p else -1
            if size != self._totals.get(kind, -1):
                raise ValueError(f"index pieces for {self.target} are incomplete ({kind}: {size} bytes of "
                                 f"{self._totals.get(kind)})")
        os.replace(self._tmp["ids"], ids_path(self.target))
        os.replace(self._tmp["index"], self.target)
        self.done = True
        return self.target

    def abandon(self) -> None:
        for h in self._handles.values():
            h.close()
        for p in self._tmp.values():
            if os.path.exists(p):
                os.remove(p)


def materialise(chunk_file: str, suffix: str, local_dir: str | None = None) -> str:
    """The index in a local chunk file (Parquet, INDEX_SCHEMA rows of one bucket) as a
    usable index file plus ids sidecar (beside it, or in `local_dir`); done once per
    machine (later calls find it)."""
    import pyarrow.parquet as pq

    target = f"{chunk_file}.{suffix}"
    if local_dir:
        target = os.path.join(local_dir, os.path.basename(target))
    assembler = Assembler(target)
    if assembler.done:
        return target
    try:
        for batch in pq.ParquetFile(chunk_file).iter_batches(batch_size=4, columns=["file", "part", "total", "data"]):
            cols = batch.to_pydict()
            for kind, part, total, data in zip(cols["file"], cols["part"], cols["total"], cols["data"]):
                assembler.add(kind, part * CHUNK_BYTES, total, data)
        return assembler.finish()
    except BaseException:
        assembler.abandon()
        raise


# ---------------------------------------------------------------- executor: queries
@dataclass(frozen=True)
class QueryPlan:
    """What a query task needs: small and picklable (index file *names*, never indexes)."""

    backend: str
    dim: int
    k: int
    files: dict  # bucket -> its chunk file (a local path, or on executors a name identifying the index)
    params: Params = Params()
    local_dir: str | None = None  # where indexes are reassembled (None: default_local_dir() on executors)


def query_bucket(plan: QueryPlan, path: str, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top k+1 (self included, dropped later) of each vector in one bucket's index file."""
    return query_index(load_index(plan.backend, path, plan.dim), vectors, plan.k + 1, plan.params)


def _no_candidates() -> pd.DataFrame:
    return pd.DataFrame({"src": pd.Series([], dtype="int64"), "dst": [], "sim": []})


def _query_rows(pdf: pd.DataFrame, plan: QueryPlan, index_of: Callable[[int], str | None]) -> pd.DataFrame:
    """Rows (image_id, bucket, vec) -> (src, dst array, sim array): each row's top k in its
    bucket's index (index_of(bucket) -> local index path, None: nothing indexed), self dropped."""
    src = pdf["image_id"].to_numpy(np.int64)
    x = as_matrix(pdf["vec"], plan.dim)
    buckets = pdf["bucket"].to_numpy() if "bucket" in pdf else np.zeros(len(pdf), np.int32)
    ids, sims = empty(len(pdf), plan.k + 1)
    for b in np.unique(buckets):
        rows = np.flatnonzero(buckets == b)
        path = index_of(int(b))
        if path is None:  # an empty bucket: nothing indexed there
            continue
        ids[rows], sims[rows] = query_bucket(plan, path, x[rows])
    ids, sims = merge_candidates(src, ids, sims, plan.k)
    dst, sim = to_lists(ids, sims)
    return pd.DataFrame({"src": src, "dst": dst, "sim": sim})


def query_batch(pdf: pd.DataFrame, plan: QueryPlan, resolve: Callable[[str], str] = lambda name: name
                ) -> pd.DataFrame:
    """Rows (image_id, bucket, vec) -> rows (src, dst array, sim array), the indexes read
    from local chunk files (plan.files, through ``resolve``): for the driver and tests."""
    if len(pdf) == 0:
        return _no_candidates()
    suffix = get(plan.backend).suffix

    def index_of(b: int) -> str | None:
        name = plan.files.get(b)
        return None if name is None else materialise(resolve(name), suffix, plan.local_dir)
    return _query_rows(pdf, plan, index_of)


ROUTED_SCHEMA = "bucket int, kind int, image_id long, vec binary, file string, offset long, total long, data binary"
PIECE, QUERY = 0, 1  # values of `kind` in ROUTED_SCHEMA rows: a bucket's pieces sort before its queries


def query_partition(batches: Iterator[pd.DataFrame], plan: QueryPlan) -> Iterator[pd.DataFrame]:
    """The executor's query task. Its rows (ROUTED_SCHEMA, sparkdup.indexes.route) are the
    pieces of the indexes of the buckets it queries, each bucket's pieces before its query
    rows: the task reassembles exactly those indexes (once per machine: a later task finds
    them), then answers its queries (``_query_rows``). It has no other way to an index."""
    suffix = get(plan.backend).suffix
    where = plan.local_dir or default_local_dir()
    assemblers: dict[int, Assembler] = {}

    def assembler(b: int) -> Assembler:
        if b not in assemblers:
            name = os.path.basename(str(plan.files[b]))
            assemblers[b] = Assembler(os.path.join(where, f"bucket-{b}-{name}.{suffix}"))
        return assemblers[b]

    def index_of(b: int) -> str | None:
        return assembler(b).finish() if b in plan.files else None
    try:
        for pdf in batches:
            if len(pdf) == 0:
                continue
            kinds = pdf["kind"].to_numpy()
            pieces = pdf[kinds == PIECE]
            for b, kind, offset, total, data in zip(pieces["bucket"], pieces["file"], pieces["offset"],
                                                    pieces["total"], pieces["data"]):
                assembler(int(b)).add(kind, offset, total, data)
            queries = pdf[kinds == QUERY]
            if len(queries):
                yield _query_rows(queries, plan, index_of)
    finally:
        for a in assemblers.values():
            if not a.done:
                a.abandon()
