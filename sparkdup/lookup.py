"""A few rows of a result table by image_id, read from its files without a Spark job.

Why: `sparkdup search` looks up its hits (ten or so image ids) in `images` and
`duplicate_groups`. Image ids are xxhash64 values, so Parquet statistics skip no row
group, and through Spark each lookup is a scan plus a job's scheduling: 7.2 s of a 16 s
search at 8,033 images on a quiet machine (BENCHMARKS.md "Search"). Reading the same
files with pyarrow (only the asked columns, filtered while reading) takes well under a
second, and a Delta table's file list comes from the deltalake package (its log replayed
in Rust, milliseconds) instead of Spark's Delta reader.

Used only where that reading is exactly what Spark would read: a local output (no
scheme or file:), and for Delta a table whose protocol needs no reader feature (reader
version 1: no deletion vectors, no column mapping), which is what sparkdup writes.
Anything else (s3a://, dbfs:/, a table with reader features, deltalake not installed)
returns None, and the caller reads the table through Spark.
"""
from __future__ import annotations

import logging
import os

from sparkdup.listing import is_local, local_path

log = logging.getLogger("sparkdup")


def open_table(output: str, name: str):
    """A pyarrow Dataset over table `name` of a local output, or None (see the module
    docstring: not local, not there, reader features, or no deltalake)."""
    if not is_local(output):
        return None
    folder = os.path.join(local_path(output), name)
    if not os.path.isdir(folder):
        return None
    import pyarrow.dataset as ds

    if not os.path.isdir(os.path.join(folder, "_delta_log")):
        return ds.dataset(folder, format="parquet")  # (pyarrow skips _SUCCESS and other _/. names)
    try:
        from deltalake import DeltaTable
    except ImportError:
        return None
    try:
        table = DeltaTable(folder)
        if table.protocol().min_reader_version > 1:
            log.debug("lookup: %s needs Delta reader features; read through Spark", folder)
            return None
        return table.to_pyarrow_dataset()
    except Exception:  # noqa: BLE001 - any table deltalake cannot read is read by Spark instead
        log.debug("lookup: deltalake cannot read %s; read through Spark", folder, exc_info=True)
        return None


def rows_by_id(dataset, columns: list[str], ids) -> dict[int, dict]:
    """image_id -> {column: value} for the rows of `ids` (only `columns` are read)."""
    import pyarrow.compute as pc

    wanted = sorted({int(i) for i in ids})
    if not wanted:
        return {}
    cols = ["image_id"] + [c for c in columns if c != "image_id"]
    found = dataset.to_table(columns=cols, filter=pc.field("image_id").isin(wanted)).to_pylist()
    return {int(r["image_id"]): r for r in found}
