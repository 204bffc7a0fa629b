"""Per-image work of the export stage: a training-ready square image, PNG-encoded."""
from __future__ import annotations

import io

from PIL import Image

from sparkdup.udfs.decode import Limits, decode
from sparkdup.udfs.embed import fit_to_square


def training_image(data: bytes, size: int, method: str, limits: Limits) -> bytes | None:
    """The image decoded once, fitted to size x size RGB (as embed does), as PNG bytes;
    None when it no longer decodes."""
    decoded = decode(data, limits)
    if decoded.rgb is None:
        return None
    buf = io.BytesIO()
    Image.fromarray(fit_to_square(decoded.rgb, size, method)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()
