"""Per-image statistics from a decoded RGB array (pure numpy, no Spark).

All measures are on the luminance (ITU-R 601 luma, 0-255) of the downscaled copy that
udfs.decode returns, so they do not depend on the file's resolution more than needed.
"""
from __future__ import annotations

import numpy as np

STAT_COLUMNS = ("brightness", "contrast", "blur", "entropy", "is_grayscale", "luma_p01", "luma_p99", "signature")
from sparkdup.udfs.verify import SIDE as SIGNATURE_SIDE  # noqa: E402 - one definition of the size


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: low for blurred or flat images."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    lap = (
        gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4.0 * gray[1:-1, 1:-1]
    )
    return float(lap.var())


def entropy_bits(hist: np.ndarray) -> float:
    """Shannon entropy of a 256-bin luminance histogram, in bits (0 to 8)."""
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def histogram_percentile(hist: np.ndarray, q: float) -> float:
    """The q-th percentile (0-100) of 8-bit values from their histogram (no sort needed)."""
    cdf = np.cumsum(hist)
    return float(np.searchsorted(cdf, q / 100.0 * cdf[-1]))


def is_grayscale(rgb: np.ndarray) -> bool:
    """Grey if at most 0.1% of pixels have channels more than 8 levels apart
    (tolerates JPEG chroma noise in grey photos saved as RGB)."""
    r, g, b = (rgb[..., i].astype(np.int16) for i in range(3))
    coloured = (np.abs(r - g) > 8) | (np.abs(g - b) > 8)
    return bool(coloured.mean() <= 0.001)


def pixel_signature(rgb: np.ndarray) -> bytes:
    """The whole image squeezed to a SIDE x SIDE 8-bit RGB thumbnail (12,288 bytes).

    Duplicate verification (udfs.verify) compares these, aligned over crop windows at two
    scales: two files of the same picture (re-encoded, rescaled, cropped, redrawn at
    another icon size) match closely, look-alikes do not. Colour is kept because many
    look-alikes (flags, icons of one theme) differ mainly in colour. Pillow's resize
    filters the whole source (antialiased), so small detail does not alias.
    """
    from PIL import Image

    thumb = Image.fromarray(rgb).convert("RGB").resize((SIGNATURE_SIDE, SIGNATURE_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(thumb, dtype=np.uint8).tobytes()


def image_stats(rgb: np.ndarray) -> dict:
    gray = luminance(rgb.astype(np.float32))
    hist = np.bincount(np.clip(gray + 0.5, 0, 255).astype(np.uint8).ravel(), minlength=256)
    return {
        "brightness": float(gray.mean()),
        "contrast": float(gray.std()),
        "blur": laplacian_variance(gray),
        "entropy": entropy_bits(hist),
        "is_grayscale": is_grayscale(rgb),
        "luma_p01": histogram_percentile(hist, 1),
        "luma_p99": histogram_percentile(hist, 99),
        "signature": pixel_signature(rgb),
    }
