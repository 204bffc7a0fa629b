"""The ingest stage's per-batch work: describe each image's bytes (no Spark here)."""
from __future__ import annotations

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
    columns = list(DESCRIBE_COLUMNS) + (list(prepared.COLUMNS) if prepare is not None else [])
    return pd.DataFrame(rows, columns=columns)
