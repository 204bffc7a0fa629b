"""Per-image statistics from a decoded RGB array (pure numpy, no Spark).

All measures are on the luminance (ITU-R 601 luma, 0-255) of the downscaled copy that
udfs.decode returns, so they do not depend on the file's resolution more than needed.
"""
from __future__ import annotations

import numpy as np

STAT_COLUMNS = ("brightness", "contrast", "blur", "entropy", "is_grayscale", "luma_p01", "luma_p99", "signature")
SIGNATURE_SIDE = 32


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
    """A 32x32 8-bit luminance thumbnail (1,024 bytes), the whole image squeezed.

    Near-duplicate verification compares these: two files of the same picture (re-encoded,
    rescaled, redrawn at another icon size) have strongly correlated thumbnails even when
    a generic embedding puts them only moderately close.
    """
    from PIL import Image

    grey = Image.fromarray(rgb).convert("L").resize((SIGNATURE_SIDE, SIGNATURE_SIDE), Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.uint8).tobytes()


def signature_correlation(a: bytes | None, b: bytes | None) -> float | None:
    """Pearson correlation (-1..1) of two pixel signatures; 1.0 for two flat identical ones."""
    if a is None or b is None:
        return None
    x = np.frombuffer(a, np.uint8).astype(np.float64)
    y = np.frombuffer(b, np.uint8).astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    nx, ny = np.linalg.norm(x), np.linalg.norm(y)
    if nx == 0 or ny == 0:
        return 1.0 if nx == ny and np.array_equal(np.frombuffer(a, np.uint8), np.frombuffer(b, np.uint8)) else 0.0
    return float(x @ y / (nx * ny))


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
