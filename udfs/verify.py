"""Is a candidate pair the same picture after edits, or a look-alike? (pure numpy, no Spark)

Each image carries a small colour thumbnail made at ingest (``images.signature``: the
whole picture squeezed to SIDE x SIDE RGB, see udfs.image_stats.pixel_signature). A pair
is compared by *aligned* thumbnails: one image is taken as a possibly cropped copy of the
other, a grid of crop windows (up to MAX_CROP of each axis, split between both sides) of
the first is resampled and compared with the whole second, both ways round. The best
window is found on a coarse 16 x 16 comparison and confirmed at 32 x 32, so an edit
(re-encoding, rescaling, brightness, a crop, a small overlay) keeps a high score while a
look-alike (another frame of one animation, another icon of one theme, a rotated or
mirrored symbol) falls at the finer scale, where the drawings differ.

Scores are Pearson correlations over all three channels with each channel's mean taken
out (brightness and colour-balance changes do not count), in -1..1:

* ``coarse``: best 16 x 16 correlation over all windows and both directions;
* ``fine``: the 32 x 32 correlation of the best coarse windows (the decision's score);
* ``changed``: in that 32 x 32 window, the share of pixels whose residual after a
  per-channel gain/offset fit exceeds a quarter of the image's range (a local change,
  e.g. a moved limb, that a global correlation can average away).

This is template matching over a crop/scale grid on multi-scale thumbnails (the approach
of classic near-duplicate image detection before learned copy detectors); chosen over
ORB + RANSAC, perceptual hashes and the raw 32 x 32 luma correlation by measurement on
labelled real pairs (benchmarks/bench_verify.py, BENCHMARKS.md).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

SIDE = 64  # thumbnail side stored per image
CHANNELS = 3
MAX_CROP = 0.16  # the largest share of one axis a crop may remove (issue: up to ~15 %)
CROP_STEP = 0.04
COARSE, FINE = 16, 32
TOP_WINDOWS = 2  # best coarse windows refined at the fine scale
REFINE = 0.02  # crop step of the fine search (half the coarse step)

SIGNATURE_BYTES = SIDE * SIDE * CHANNELS


def thumbnail(sig: bytes | None) -> np.ndarray | None:
    """The signature as a float32 SIDE x SIDE x 3 array, None when absent or malformed."""
    if sig is None or len(sig) != SIGNATURE_BYTES:
        return None
    return np.frombuffer(sig, np.uint8).reshape(SIDE, SIDE, CHANNELS).astype(np.float32)


@lru_cache(maxsize=None)
def _crops() -> np.ndarray:
    """(left, right) shares removed from one axis: every step combination summing to <= MAX_CROP."""
    steps = np.arange(0.0, MAX_CROP + 1e-9, CROP_STEP)
    return np.array([(a, b) for a in steps for b in steps if a + b <= MAX_CROP + 1e-9], np.float64)


def _source(img: np.ndarray, out: int) -> np.ndarray:
    """The thumbnail box-averaged to 2 x out per side (anti-aliased) for sampling out x out windows."""
    side = min(SIDE, 2 * out)
    f = SIDE // side
    return img if f == 1 else img.reshape(side, f, side, f, CHANNELS).mean(axis=(1, 3))


def _axis_weights(crops: np.ndarray, out: int, side: int) -> np.ndarray:
    """Linear interpolation matrices (n_crops, out, side) sampling each (left, right) crop of one axis."""
    w = np.zeros((len(crops), out, side), np.float32)
    for k, (lo, hi) in enumerate(crops):
        start, stop = lo * side, (1.0 - hi) * side
        centres = np.clip(start + (np.arange(out) + 0.5) * (stop - start) / out - 0.5, 0, side - 1)
        i0 = np.floor(centres).astype(int)
        i1 = np.minimum(i0 + 1, side - 1)
        frac = centres - i0
        w[k, np.arange(out), i0] += 1 - frac
        w[k, np.arange(out), i1] += frac
    return w


@lru_cache(maxsize=None)
def _grid_weights(out: int) -> np.ndarray:
    return _axis_weights(_crops(), out, min(SIDE, 2 * out))


def _windows(src: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """Every (row crop, column crop) window of src resampled: (n_y, n_x, out, out, 3)."""
    tmp = np.tensordot(wy, src, axes=([2], [0]))  # (n_y, out, SIDE, 3)
    win = np.tensordot(tmp, wx, axes=([2], [2]))  # (n_y, out, 3, n_x, out)
    return win.transpose(0, 3, 1, 4, 2)


def _whole(src: np.ndarray, out: int) -> np.ndarray:
    w = _axis_weights(np.zeros((1, 2)), out, src.shape[0])
    return _windows(src, w, w)[0, 0]


def _centred(x: np.ndarray) -> np.ndarray:
    """Each channel's mean removed over the last three axes (rows, cols, channels)."""
    return x - x.mean(axis=(-3, -2), keepdims=True)


def _correlation(windows: np.ndarray, target: np.ndarray) -> np.ndarray:
    w = _centred(windows)
    t = _centred(target)
    num = (w * t).sum(axis=(-3, -2, -1))
    den = np.sqrt((w * w).sum(axis=(-3, -2, -1)) * (t * t).sum())
    flat = den < 1e-6
    return np.where(flat, np.where(np.abs(num) < 1e-6, 1.0, 0.0), num / np.maximum(den, 1e-6))


def _changed(window: np.ndarray, target: np.ndarray) -> float:
    """Share of pixels that still differ after a per-channel gain/offset fit of window to target."""
    w = _centred(window)
    t = _centred(target)
    gain = (w * t).sum(axis=(0, 1)) / np.maximum((w * w).sum(axis=(0, 1)), 1e-6)
    residual = np.abs(t - gain * w).max(axis=-1)
    span = max(float(target.max() - target.min()), 32.0)
    return float((residual > 0.25 * span).mean())


def _refined(crop: np.ndarray) -> np.ndarray:
    """A crop of one axis and its neighbours REFINE away: shifted either way, widened, narrowed."""
    d = REFINE
    cand = np.array([crop, crop + (d, -d), crop + (-d, d), crop + (d, d), crop + (-d, -d)])
    cand = np.clip(cand, 0.0, None)
    return np.unique(cand[cand.sum(1) <= MAX_CROP + d + 1e-9], axis=0)


def compare(a: bytes | None, b: bytes | None) -> dict:
    """Aligned-thumbnail scores of one pair; ``status`` says when a score could not be made.

    Coarse: every grid window of each image against the whole other at 16 x 16. Fine:
    around the TOP_WINDOWS best coarse windows, the crops one REFINE step away, at
    32 x 32 (alignment to about a pixel at that scale); the best fine window decides.
    """
    x, y = thumbnail(a), thumbnail(b)
    if x is None or y is None:
        return {"status": "no_signature", "coarse": None, "fine": None, "changed": None}
    grid, crops = _grid_weights(COARSE), _crops()
    src_c = {0: _source(x, COARSE), 1: _source(y, COARSE)}
    src_f = {0: _source(x, FINE), 1: _source(y, FINE)}
    candidates = []
    for d in (0, 1):  # d: the image whose windows are taken
        coarse = _correlation(_windows(src_c[d], grid, grid), _whole(src_c[1 - d], COARSE))
        flat = coarse.ravel()
        for k in np.argsort(flat)[::-1][:TOP_WINDOWS]:
            candidates.append((float(flat[k]), d, k // coarse.shape[1], k % coarse.shape[1]))
    candidates.sort(reverse=True)
    best_coarse = candidates[0][0]
    fine_best, changed = -1.0, 1.0
    for _, d, r, c in candidates[:TOP_WINDOWS]:
        src = src_f[d]
        wy = _axis_weights(_refined(crops[r]), FINE, src.shape[0])
        wx = _axis_weights(_refined(crops[c]), FINE, src.shape[0])
        wins = _windows(src, wy, wx)
        target = _whole(src_f[1 - d], FINE)
        fine = _correlation(wins, target)
        i, j = np.unravel_index(int(np.argmax(fine)), fine.shape)
        if fine[i, j] > fine_best:
            fine_best, changed = float(fine[i, j]), _changed(wins[i, j], target)
    return {"status": "ok", "coarse": best_coarse, "fine": fine_best, "changed": changed}


def is_same_picture(scores: dict, min_fine: float, max_changed: float) -> bool:
    """The verification rule: aligned fine correlation high enough and no local change left."""
    return scores["status"] == "ok" and scores["fine"] >= min_fine and scores["changed"] <= max_changed
