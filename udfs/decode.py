"""Bounded, deliberate image decoding: bytes in, a status and a normalised RGB array out.

Pure functions, no Spark: ingest computes statistics from the array, embed feeds it to
the model. Every failure becomes a status and a message instead of an exception, so a
bad file never kills a task.

Statuses: ok | empty | unsupported (not an image Pillow recognises) | broken (recognised
but cannot be decoded, e.g. truncated) | too_large (file or pixel count over the limits)
| unreadable (the file could not be read at all; set by the job, not here).
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow registers the optional plugins (WebP, TIFF, ...) lazily; do it once here.
Image.init()


@dataclass
class Limits:
    max_file_bytes: int = 100 * 1024 * 1024
    max_pixels: int = 89_478_485
    max_side: int = 512  # the returned array is downscaled to at most this per side


@dataclass
class Decoded:
    status: str
    error: str | None = None
    format: str | None = None
    width: int | None = None  # after EXIF orientation
    height: int | None = None
    mode: str | None = None  # the file's own mode (RGB, CMYK, P, I;16, ...)
    frames: int | None = None
    rgb: np.ndarray | None = None  # HxWx3 uint8, at most max_side per side


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any mode to 8-bit RGB on purpose, one rule per family of modes."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit / 32-bit grey: scale the actual range to 0..255 instead of clipping.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8)).convert("RGB")
    if mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent pixels are shown on white, as image viewers and clip-art sites do.
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def decode(data: bytes | None, limits: Limits) -> Decoded:
    """Decode image bytes within the limits; never raises for bad input."""
    if data is None or len(data) == 0:
        return Decoded("empty", "file is empty (0 bytes)")
    if len(data) > limits.max_file_bytes:
        return Decoded("too_large", f"file is {len(data)} bytes, over max_file_bytes={limits.max_file_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        return Decoded("unsupported", "not a recognised image format")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return Decoded("too_large", f"decompression bomb guard: {exc}")
    except Exception as exc:  # a corrupt header can raise nearly anything
        return Decoded("broken", f"cannot read header: {type(exc).__name__}: {exc}")

    out = Decoded("ok", format=img.format, mode=img.mode, frames=getattr(img, "n_frames", 1))
    width, height = img.size
    if width * height > limits.max_pixels:
        out.status = "too_large"
        out.error = f"{width}x{height} = {width * height} pixels, over max_pixels={limits.max_pixels}"
        out.width, out.height = width, height
        return out
    try:
        if img.format == "JPEG":
            # Let libjpeg decode at a reduced scale directly: much faster for big photos.
            img.draft("RGB", (limits.max_side, limits.max_side))
        img.load()  # first frame of an animation
        exif_orientation = img.getexif().get(0x0112, 1)
        img = ImageOps.exif_transpose(img)
        rgb = _to_rgb(img)
        if max(rgb.size) > limits.max_side:
            rgb.thumbnail((limits.max_side, limits.max_side), Image.Resampling.BILINEAR)
        out.rgb = np.asarray(rgb, dtype=np.uint8)
    except Exception as exc:
        out.status = "broken"
        out.error = f"cannot decode: {type(exc).__name__}: {exc}"
        out.width, out.height = width, height
        return out
    # draft() may have shrunk the pixels; report the file's true size, rotated by EXIF.
    out.width, out.height = (height, width) if exif_orientation in (5, 6, 7, 8) else (width, height)
    return out
