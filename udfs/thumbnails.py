"""Thumbnails for the report: image bytes in, a small JPEG out (pure, no Spark)."""
from __future__ import annotations

import base64
import io

from PIL import Image

from sparkdup.udfs.decode import Limits, decode


def thumbnail_data_uri(data: bytes | None, side: int, limits: Limits) -> str | None:
    """A `data:image/jpeg;base64,...` URI of the image fitted in side x side, or None when
    it does not decode. Data URIs keep the report one folder that opens from disk."""
    decoded = decode(data, limits)
    if decoded.rgb is None:
        return None
    img = Image.fromarray(decoded.rgb)
    img.thumbnail((side, side), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
