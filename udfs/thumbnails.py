"""Thumbnails for the report: pixels in, a small JPEG out (pure, no Spark).

Ingest makes them from the pixels it decodes anyway (sparkdup.decoded keeps them for the
report); the report makes them from the files' bytes only for outputs without them.
"""
from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from sparkdup.udfs.decode import Limits, decode

JPEG_QUALITY = 80


def thumbnail_jpeg(rgb: np.ndarray, side: int) -> bytes:
    """The image fitted in side x side (aspect kept), as JPEG bytes."""
    img = Image.fromarray(rgb)
    img.thumbnail((side, side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def data_uri(jpeg: bytes | None) -> str | None:
    """A `data:image/jpeg;base64,...` URI: data URIs keep the report one folder that opens
    from disk."""
    if jpeg is None:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def thumbnail_data_uri(data: bytes | None, side: int, limits: Limits) -> str | None:
    """The data URI of the file's thumbnail, or None when it does not decode. With the
    ingest's limits this is the same picture ingest keeps."""
    decoded = decode(data, limits)
    return None if decoded.rgb is None else data_uri(thumbnail_jpeg(decoded.rgb, side))
