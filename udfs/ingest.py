"""The ingest stage's per-batch work: describe each image's bytes (no Spark here)."""
from __future__ import annotations

import hashlib

import pandas as pd

from sparkdup.udfs import prepared
from sparkdup.udfs.decode import Limits, decode
from sparkdup.udfs.image_stats import STAT_COLUMNS, image_stats

DESCRIBE_COLUMNS = ("status", "error", "format", "width", "height", "mode", "frames") + STAT_COLUMNS


def describe(data: bytes | None, limits: Limits, prepare: prepared.Prepare | None = None) -> dict:
    """Health and statistics of one file; with `prepare`, also the model input and the
    thumbnail, made from the same decoded pixels (each file is decoded once per run)."""
    d = decode(data, limits)
    row = {"status": d.status, "error": d.error, "format": d.format, "width": d.width,
           "height": d.height, "mode": d.mode, "frames": d.frames}
    stats = image_stats(d.rgb) if d.rgb is not None else dict.fromkeys(STAT_COLUMNS)
    row.update(stats)
    if prepare is not None:
        row.update(prepare(d.rgb))
    return row


def describe_batch(contents: pd.Series, limits: Limits, prepare: prepared.Prepare | None = None) -> pd.DataFrame:
    """One output row per input, in order, whatever the bytes hold."""
    rows = [describe(data, limits, prepare) for data in contents]
    return pd.DataFrame(rows, columns=_columns(prepare))


def _columns(prepare: prepared.Prepare | None) -> list[str]:
    return list(DESCRIBE_COLUMNS) + (list(prepared.COLUMNS) if prepare is not None else [])


def read_local(raw: bytes, limit: int) -> tuple[bytes | None, str | None]:
    """(bytes, None) or (None, why not) for a local file given by its raw OS path."""
    try:
        with open(raw, "rb") as f:
            data = f.read(limit + 1)
    except OSError as exc:
        return None, f"file could not be read (removed while running, or no access): {exc.strerror}"
    if len(data) > limit:
        return None, f"file grew over max_file_bytes={limit} while running"
    return data, None


def describe_files(local_paths: pd.Series, limits: Limits, prepare: prepared.Prepare | None = None) -> pd.DataFrame:
    """Read each local file (raw OS path bytes) and describe it: one row per input, in order,
    with `content_hash` (SHA-256 hex, as Spark's sha2(content, 256) writes it) first, and
    with `prepare` the model input and thumbnail from the same pixels.

    Reading here rather than through Spark's file source keeps every name the OS holds
    readable (Spark's reader skips names starting with `_` or `.`), and the bytes go
    straight from the file to the decoder, not through the JVM and Arrow first."""
    rows = []
    for raw in local_paths:
        data, error = read_local(bytes(raw), limits.max_file_bytes)
        if data is None:
            row = dict.fromkeys(_columns(prepare)) | {"status": "unreadable", "error": error}
            rows.append({"content_hash": None} | row)
        else:
            rows.append({"content_hash": hashlib.sha256(data).hexdigest()} | describe(data, limits, prepare))
    return pd.DataFrame(rows, columns=["content_hash", *_columns(prepare)])
