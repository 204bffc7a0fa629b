"""Is a candidate pair the same picture after edits, or a look-alike? (pure numpy, no Spark)

Each image carries a small colour thumbnail made at ingest (``images.signature``: the
whole picture squeezed to SIDE x SIDE RGB, see udfs.image_stats.pixel_signature). A pair
is compared by *aligned* thumbnails: one image is taken as a possibly cropped copy of the
other, a grid of crop windows (up to MAX_CROP of each axis, split between both sides) of
the first is resampled and compared with the whole second, both ways round. The best
window is found on a coarse 16 x 16 comparison and refined at 32 x 32 in two steps of
halving size (so a crop is aligned to about a third of a pixel there), so an edit
(re-encoding, rescaling, brightness, a crop, a small overlay) keeps a high score while a
look-alike (another frame of one animation, another icon of one theme, a rotated or
mirrored symbol) falls at the finer scale, where the drawings differ.

Scores are Pearson correlations over all three channels with each channel's mean taken
out (brightness and colour-balance changes do not count), in -1..1; when either image is
grey, both are compared by luminance (a conversion to grey is a mode change, not another
picture):

* ``coarse``: best 16 x 16 correlation over all windows and both directions;
* ``fine``: the 32 x 32 correlation of the best coarse windows (the decision's score);
* ``changed``: in that 32 x 32 window, the share of pixels whose residual after a
  per-channel gain/offset fit exceeds a quarter of the image's range (a local change,
  e.g. a moved limb, that a global correlation can average away);
* ``local``: in that window, the RMS colour residual of the worst of 4 x 4 tiles after one
  brightness gain shared by all channels, over the picture's RMS contrast (see _local):
  a small emblem, limb or recoloured area that ``changed`` counts as too few pixels;
* ``local_rest``: the same residual of the second-worst tile (an overlay such as a
  watermark may change one tile; a differing drawing changes more);
* ``chroma``: the largest tile mean of the residual's opponent colour (0-255): a hue
  change, e.g. one folder icon in yellow and in orange.

Cost: the coarse correlations factor into one part per image (see _Prepared), so
compare_many prepares the images of CHUNK_PAIRS pairs together, in stacked arrays
(prepare_many), and a pair's 450 coarse windows are two small matrix products; a pair
whose best coarse window is below ``min_coarse`` stops there (most candidates are
look-alikes that do); the fine search is factored the same way and resamples only its
best window.

This is template matching over a crop/scale grid on multi-scale thumbnails (the approach
of classic near-duplicate image detection before learned copy detectors); chosen over
ORB + RANSAC, perceptual hashes and the raw 32 x 32 luma correlation by measurement on
labelled real pairs (benchmarks/bench_verify.py, BENCHMARKS.md).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Mapping

import numpy as np

SIDE = 64  # thumbnail side stored per image
CHANNELS = 3
MAX_CROP = 0.16  # the largest share of one axis a crop may remove (issue: up to ~15 %)
CROP_STEP = 0.04
COARSE, FINE = 16, 32
TOP_WINDOWS = 2  # best coarse windows refined at the fine scale
TIE_DECIMALS = 9  # coarse scores equal to this many decimals are a tie (see _compare_one)
GREY_SPREAD = 3.0  # mean max-min channel spread (0-255) under which a thumbnail counts as grey
REFINE_STEPS = (0.02, 0.01)  # crop steps of the fine search: around the best window, halving the step
TILES = 4  # the local score's grid: TILES x TILES tiles of the fine window
# RMS contrast (0-255, over the window's pixels and channels) under which a window shows no
# picture: ~1 % of the range, below the ~1-2 % luminance step an eye can see (Weber). Two such
# windows correlate 1 (there is nothing to correlate; the local and colour scores then decide
# by their colours), so blank images that differ only by sensor or dither noise are the same
# picture, while one of them against any drawing correlates with nothing.
FLAT_RMS = 2.0
GAIN_RANGE = (0.8, 1.25)  # brightness gains the local score accepts (the edits: +-10 %)

SIGNATURE_BYTES = SIDE * SIDE * CHANNELS
CHUNK_PAIRS = 256  # pairs whose images are prepared together (at most 512 images, ~190 KB each)
PREPARE_CHUNK = 128  # images per stacked preparation (bounds its float64 temporaries to ~50 MB)


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
    """The thumbnail (or a stack of them, leading axes kept) box-averaged to 2 x out per side
    (anti-aliased) for sampling out x out windows."""
    side = min(SIDE, 2 * out)
    f = SIDE // side
    if f == 1:
        return img
    # The mean of each f x f block as a sum of f * f strided views: a reduction over two
    # inner axes runs ~10x slower in numpy.
    total = sum(img[..., i::f, j::f, :] for i in range(f) for j in range(f))
    return total / np.float32(f * f)


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


def _windows(src: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """Every (row crop, column crop) window of src resampled: (n_y, n_x, out, out, 3)."""
    tmp = np.tensordot(wy, src, axes=([2], [0]))  # (n_y, out, SIDE, 3)
    win = np.tensordot(tmp, wx, axes=([2], [2]))  # (n_y, out, 3, n_x, out)
    return win.transpose(0, 3, 1, 4, 2)


def _whole(src: np.ndarray, out: int) -> np.ndarray:
    w = _weights((0.0, 0.0), out, src.shape[0])[0]
    return _windows(src, w, w)[0, 0]


def _grey_flags(imgs: np.ndarray) -> np.ndarray:
    """Per image of a stack (n, SIDE, SIDE, 3): channels equal to within JPEG chroma noise on
    average, a grey picture stored as RGB. Channel by channel rather than a reduction over
    the last axis of three, which numpy runs an order of magnitude slower."""
    c = [imgs[..., k].astype(np.float32) for k in range(CHANNELS)]
    spread = np.maximum(np.maximum(c[0], c[1]), c[2]) - np.minimum(np.minimum(c[0], c[1]), c[2])
    return spread.reshape(len(imgs), -1).mean(axis=1) < GREY_SPREAD


def _flat_flags(imgs: np.ndarray) -> np.ndarray:
    """Per image of a stack (n, SIDE, SIDE, 3): flat (see FLAT_RMS) at COARSE x COARSE."""
    src = _source(imgs, COARSE // 2).astype(np.float64)
    src -= src.mean(axis=(1, 2), keepdims=True)
    return _flat((src * src).sum(axis=(1, 2, 3)), COARSE)


def _luma(img: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, repeated in the three channels."""
    y = img @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.repeat(y[..., None], CHANNELS, axis=-1)


def _centred(x: np.ndarray) -> np.ndarray:
    """Each channel's mean removed over the last three axes (rows, cols, channels)."""
    return x - x.mean(axis=(-3, -2), keepdims=True)


def _changed(window: np.ndarray, target: np.ndarray) -> float:
    """Share of pixels that still differ after a per-channel gain/offset fit of window to target."""
    w = _centred(window)
    t = _centred(target)
    gain = (w * t).sum(axis=(0, 1)) / np.maximum((w * w).sum(axis=(0, 1)), 1e-6)
    residual = np.abs(t - gain * w).max(axis=-1)
    span = max(float(target.max() - target.min()), 32.0)
    return float((residual > 0.25 * span).mean())


def _local(window: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """The local differences left after alignment: (worst tile, second-worst tile, colour).

    The window is scaled to the target by one brightness gain shared by the three
    channels (clipped to GAIN_RANGE; no offset, no per-channel gain), so a brightness edit
    leaves nothing while a recoloured area (the same folder icon in another colour) or a
    blank of another colour does. A tile's score is its RMS colour residual over the
    target's RMS contrast, on a TILES x TILES grid: a small emblem or limb that differs
    fills a tile or two and stands out, where an average over the whole picture (the
    global correlation, ``changed``) dilutes it. This is worst-window pooling of a local
    error map, as quality measures such as SSIM (Wang et al. 2004) pool their local scores.

    The worst tile alone is what a small overlay (a watermark, a caption in a corner) also
    changes, so the rule bounds it loosely and bounds the *second*-worst tile tightly: an
    edit may hide one tile (1/16 of the picture) and nothing else, which is the usual robust
    statistic of dropping the largest of a set of local errors before pooling them.

    The colour score is the largest tile mean of the residual in two opponent-colour axes
    (R - G and (R + G) / 2 - B, 0-255 units): a hue change (a yellow folder and the same
    folder in orange) is another picture, which a per-channel-centred correlation and a
    residual over contrast both see only weakly; brightness and grey (luma on both sides)
    leave no opponent residual.
    """
    ww = float((window * window).sum())
    gain = float((window * target).sum()) / ww if ww > 1e-6 else 1.0
    res = target - min(max(gain, GAIN_RANGE[0]), GAIN_RANGE[1]) * window
    n = res.shape[0] // TILES
    e2 = (res * res).sum(axis=-1)
    tiles = np.sort(e2.reshape(TILES, n, TILES, n).mean(axis=(1, 3)).ravel())
    tc = target - target.mean(axis=(0, 1))
    contrast = max(float(np.sqrt((tc * tc).sum(axis=-1).mean())), 8.0)
    opponent = np.stack([res[..., 0] - res[..., 1], (res[..., 0] + res[..., 1]) / 2 - res[..., 2]], axis=-1)
    colour = opponent.reshape(TILES, n, TILES, n, 2).mean(axis=(1, 3))
    chroma = float(np.sqrt((colour * colour).sum(axis=-1)).max())
    return float(np.sqrt(tiles[-1]) / contrast), float(np.sqrt(tiles[-2]) / contrast), chroma


def _refined(crop: np.ndarray, d: float) -> np.ndarray:
    """A crop of one axis and its neighbours d away: shifted either way, widened, narrowed."""
    return _refined_cached(_crops_key(crop), d)


@lru_cache(maxsize=4096)
def _refined_cached(crop: tuple, d: float) -> np.ndarray:
    crop = np.array(crop)
    cand = np.array([crop, crop + (d, -d), crop + (-d, d), crop + (d, d), crop + (-d, -d)])
    cand = np.clip(cand, 0.0, None)
    return np.unique(cand[cand.sum(1) <= MAX_CROP + max(REFINE_STEPS) + 1e-9], axis=0)


class _Prepared:
    """What the searches need of one image, computed once however many pairs it is in.

    The correlation of a crop window Wy[r] @ S @ Wx[c].T of image S with the other image's
    centred whole T is sum((Wy[r] @ S) * (T @ Wx[c])) over rows, columns and channels, so
    it factors into ``rows`` = Wy @ S (per image, as the cropped side) and ``cols`` = T @ Wx
    (per image, as the target side): every coarse window of a pair is then one small matrix
    product, and each window's norm is per image too (see _energy). This is what makes the
    coarse search cheap enough to run on every candidate (resampling all 225 windows per
    pair was most of the cost). The factors are made for many images at once
    (prepare_many); what only the fine search needs is made on first use, since most
    candidates stop at the coarse search.
    """

    __slots__ = ("fine_src", "rows", "cols", "win_norm", "win_flat", "t_norm", "t_flat", "_fine_centred",
                 "_target")

    def __init__(self, img, rows, cols, win_norm, win_flat, t_norm, t_flat):
        self.fine_src = _source(img, FINE)  # the fine scores see the true colours
        self.rows, self.cols = rows, cols
        self.win_norm, self.win_flat, self.t_norm, self.t_flat = win_norm, win_flat, t_norm, t_flat
        self._fine_centred = self._target = None

    def fine_centred(self) -> np.ndarray:
        """The FINE source centred per channel, channels first (the fine search's cropped side)."""
        if self._fine_centred is None:
            self._fine_centred = _channels_first(self.fine_src.astype(np.float64) - self.fine_src.mean(axis=(0, 1)))
        return self._fine_centred

    def target(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The whole image at FINE x FINE (the fine search's target), centred, and its energy."""
        if self._target is None:
            t = _whole(self.fine_src, FINE)
            tc = _centred(t.astype(np.float64))
            self._target = (t, _channels_first(tc), float((tc * tc).sum()))
        return self._target

    def coarse_against(self, other: "_Prepared") -> np.ndarray:
        """Correlation of each of this image's coarse windows with the other whole: (n_crops, n_crops)."""
        num = self.rows @ other.cols.T
        return _ratio(num, self.win_norm * other.t_norm, self.win_flat & other.t_flat)


def prepare_many(imgs: np.ndarray) -> list[_Prepared]:
    """The coarse factors of a stack of thumbnails (n, SIDE, SIDE, 3), one _Prepared each,
    computed as stacked arrays: at these sizes numpy's cost per call, not the arithmetic,
    is what one image at a time pays (it was ~40 % of verification)."""
    n = len(imgs)
    grid, _, grid_sum = _weights(_crops_key(_crops()), COARSE, 2 * COARSE)
    src = _source(imgs, COARSE).astype(np.float64)
    src -= src.mean(axis=(1, 2), keepdims=True)  # a constant does not change a correlation; centring keeps sums exact
    src = np.ascontiguousarray(src.transpose(0, 3, 1, 2))  # (n, channels, 2 COARSE, 2 COARSE)
    rows = _row_factor(grid, src)  # (n, crop, c, i, q)
    energy = _energy(rows.reshape(-1, *rows.shape[2:]), _column_grams(), grid_sum).reshape(n, len(grid), len(grid))
    whole = _weights((0.0, 0.0), COARSE, 2 * COARSE)[0][0]
    t = whole @ src @ whole.T  # (n, channels, COARSE, COARSE): each whole image at COARSE
    t -= t.mean(axis=(2, 3), keepdims=True)
    t_energy = (t * t).sum(axis=(1, 2, 3))
    # cols[c] = T @ Wx[c] laid out like rows (channel, COARSE rows, 2 * COARSE source columns)
    cols = _col_factor(t, grid).reshape(n, len(grid), -1).astype(np.float32)
    rows = rows.reshape(n, len(grid), -1).astype(np.float32)
    win_norm, win_flat = np.sqrt(energy), _flat(energy, COARSE)
    return [_Prepared(imgs[i], rows[i], cols[i], win_norm[i], win_flat[i], float(np.sqrt(t_energy[i])),
                      bool(_flat(t_energy[i], COARSE))) for i in range(n)]


def _flat(energy, side: int):
    """Whether windows of side x side x CHANNELS values with this centred energy (sum of
    squares) are flat: RMS contrast under FLAT_RMS."""
    return energy < side * side * CHANNELS * FLAT_RMS ** 2


def _ratio(num: np.ndarray, den: np.ndarray, both_flat: np.ndarray) -> np.ndarray:
    """num / den, a Pearson correlation: 1 for two flat images (no contrast; their colours are then
    compared by the local score), 0 when only one is flat (it correlates with nothing)."""
    return np.where(both_flat, 1.0, np.where(den < 1e-6, 0.0, num / np.maximum(den, 1e-6)))


def _channels_first(x: np.ndarray) -> np.ndarray:
    """(rows, cols, channels) -> contiguous (channels, rows, cols): the factors' matrix layout."""
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def _row_factor(wy: np.ndarray, src: np.ndarray) -> np.ndarray:
    """wy[r] @ src[..., ch] for every row crop r and channel: (..., n_rows, channels, out, side),
    for one source (channels, side, side) or a stack of them."""
    return wy[:, None] @ src[..., None, :, :, :]


def _col_factor(target: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """target[..., ch] @ wx[c] for every column crop c and channel: (..., n_cols, channels, out,
    side), so that sum(rows[r] * cols[c]) is the window (r, c) dotted with the target."""
    return target[..., None, :, :, :] @ wx[:, None]


def _energy(rows: np.ndarray, col_grams: np.ndarray, col_sums: np.ndarray) -> np.ndarray:
    """Centred energy (sum of squares less the channel means') of every window rows[r] @ wx[c].T,
    (n_rows, n_cols), without making the windows: the sum of squares through the Gram
    matrices of the rows and of the column weights, the sums through the weights' sums."""
    rr = rows.reshape(len(rows), -1, rows.shape[-1])  # (n_rows, channels * out, side)
    sq = (rr.transpose(0, 2, 1) @ rr).reshape(len(rows), -1) @ col_grams.T
    sums = rows.sum(axis=2) @ col_sums.T  # (n_rows, channels, n_cols)
    pixels = rows.shape[2] * round(float(col_sums[0].sum()))  # each output column's weights sum to 1
    return np.maximum(sq - (sums * sums).sum(axis=1) / pixels, 0.0)


def _crops_key(crops: np.ndarray) -> tuple:
    return tuple(np.round(np.asarray(crops, np.float64), 6).ravel())


@lru_cache(maxsize=4096)
def _weights(crops: tuple, out: int, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampling weights of a crop set (n, out, side), their Gram matrices (n, side * side) and
    column sums (n, side), cached: the searches use few distinct crop sets."""
    w = _axis_weights(np.array(crops, np.float64).reshape(-1, 2), out, side)
    w64 = w.astype(np.float64)
    return w, (w64.transpose(0, 2, 1) @ w64).reshape(len(w), -1), w64.sum(axis=1)


@lru_cache(maxsize=None)
def _column_grams() -> np.ndarray:
    return _weights(_crops_key(_crops()), COARSE, 2 * COARSE)[1]


class _Images:
    """The thumbnails, greyness and prepared forms of the images of the pairs at hand.

    Pairs are taken CHUNK_PAIRS at a time: load() makes the chunk's new thumbnails and
    prepares what they need together (prepare_many), and forgets the images the chunk does
    not use, so memory is bounded by 2 x CHUNK_PAIRS images whatever the batch size, while
    an image whose pairs run on into the next chunk (the UDF's rows come sorted by one side)
    is kept.
    """

    def __init__(self):
        self.thumbs: dict = {}  # signature -> (float32 thumbnail, grey) or None when malformed
        self.prepared: dict = {}  # (signature, compared as grey) -> _Prepared

    def load(self, pairs: list[tuple[bytes | None, bytes | None]]) -> None:
        # Dicts, not sets: the pairs' order fixes which images are stacked together, run after run.
        sigs = dict.fromkeys(s for pair in pairs for s in pair if s is not None)
        self.thumbs = {s: self.thumbs[s] for s in sigs if s in self.thumbs}
        new = [s for s in sigs if s not in self.thumbs]
        imgs = [thumbnail(s) for s in new]
        made = [(s, img) for s, img in zip(new, imgs) if img is not None]
        self.thumbs.update((s, None) for s, img in zip(new, imgs) if img is None)  # malformed: no thumbnail
        if made:
            stack = np.stack([img for _, img in made])
            # A flat picture's colour is all it shows: compared as grey, a grey blank would
            # "be" every colour of its luma, so it is compared in colour.
            grey = _grey_flags(stack) & ~_flat_flags(stack)
            self.thumbs.update((s, (img, bool(g))) for (s, img), g in zip(made, grey))
        keys: dict = {}
        for a, b in pairs:
            tx, ty = self.thumb(a), self.thumb(b)
            if tx is not None and ty is not None:
                grey = tx[1] or ty[1]
                keys.update(dict.fromkeys(((a, grey), (b, grey))))
        self.prepared = {k: self.prepared[k] for k in keys if k in self.prepared}
        todo = [k for k in keys if k not in self.prepared]
        for i in range(0, len(todo), PREPARE_CHUNK):
            part = todo[i:i + PREPARE_CHUNK]
            imgs = np.stack([_luma(self.thumbs[s][0]) if grey else self.thumbs[s][0] for s, grey in part])
            self.prepared.update(zip(part, prepare_many(imgs)))

    def thumb(self, sig: bytes | None) -> tuple[np.ndarray, bool] | None:
        return None if sig is None else self.thumbs[sig]

    def prepare(self, sig: bytes, grey: bool) -> _Prepared:
        return self.prepared[(sig, grey)]


def _fine_scores(src: _Prepared, target: _Prepared, ys: np.ndarray, xs: np.ndarray):
    """Correlation of every window (ys[r], xs[c]) of src at FINE with the whole target,
    (n_rows, n_cols), by the same factoring as the coarse search; and the row and column
    weights."""
    side = src.fine_src.shape[0]
    wy = _weights(_crops_key(ys), FINE, side)[0]
    wx, grams, sums = _weights(_crops_key(xs), FINE, side)
    _, tc, t_energy = target.target()
    rows = _row_factor(wy, src.fine_centred())
    cols = _col_factor(tc, wx)
    num = rows.reshape(len(wy), -1) @ cols.reshape(len(wx), -1).T
    energy = _energy(rows, grams, sums)
    return _ratio(num, np.sqrt(energy * t_energy), _flat(energy, FINE) & _flat(t_energy, FINE)), wy, wx


SCORES = ("status", "coarse", "fine", "changed", "local", "local_rest", "chroma")
NO_SIGNATURE = dict.fromkeys(SCORES) | {"status": "no_signature"}


def _compare_one(a: bytes | None, b: bytes | None, min_coarse: float | None, images: _Images) -> dict:
    tx, ty = images.thumb(a), images.thumb(b)
    if tx is None or ty is None:
        return dict(NO_SIGNATURE)
    grey = tx[1] or ty[1]  # a mode change to grey: compare luminance only
    prep = {0: images.prepare(a, grey), 1: images.prepare(b, grey)}
    n = len(_crops())
    candidates = []
    for d in (0, 1):  # d: the image whose windows are taken
        # Ranked on scores rounded to TIE_DECIMALS, ties to the first window: equally good
        # windows (a flat or symmetric picture) differ only in rounding noise, which depends
        # on how the image's factors were stacked, and must not decide which one is refined.
        flat = np.round(prep[d].coarse_against(prep[1 - d]).ravel(), TIE_DECIMALS)
        for k in np.argsort(-flat, kind="stable")[:TOP_WINDOWS]:
            candidates.append((-float(flat[k]), d, k // n, k % n))
    candidates.sort()
    candidates = [(-score, d, r, c) for score, d, r, c in candidates]
    best_coarse = candidates[0][0]
    if min_coarse is not None and best_coarse < min_coarse:
        # Early exit: no crop window is close even at 16 x 16, the fine search cannot verify it.
        return dict.fromkeys(SCORES) | {"status": "ok", "coarse": best_coarse}
    crops = _crops()
    starts = [(d, crops[r], crops[c]) for _, d, r, c in candidates[:TOP_WINDOWS]]
    best = (-2.0, None, None, None)  # (fine, d, (row weights, column weights), (crop_y, crop_x))
    for step in REFINE_STEPS:
        for d, cy, cx in starts:
            ys, xs = _refined(cy, step), _refined(cx, step)
            fine, wy, wx = _fine_scores(prep[d], prep[1 - d], ys, xs)
            i, j = np.unravel_index(int(np.argmax(fine)), fine.shape)
            if fine[i, j] > best[0]:
                best = (float(fine[i, j]), d, (wy[i], wx[j]), (ys[i], xs[j]))
        starts = [(best[1], *best[3])]  # the next, finer step starts from the best window so far
    fine_best, d, (wy, wx), _ = best
    window = _windows(prep[d].fine_src, wy[None], wx[None])[0, 0]
    target = prep[1 - d].target()[0]
    local, rest, chroma = _local(window, target)
    return {"status": "ok", "coarse": best_coarse, "fine": fine_best, "changed": _changed(window, target),
            "local": local, "local_rest": rest, "chroma": chroma}


def compare_many(a: Iterable[bytes | None], b: Iterable[bytes | None], min_coarse: float | None = None) -> list[dict]:
    """compare() of each pair (a[i], b[i]), sharing each image's coarse factors across its pairs.

    With ``min_coarse``, a pair whose best coarse window correlates below it skips the fine
    search: its ``fine`` and the local scores are None (it cannot be verified).
    """
    images = _Images()
    # Signatures key the caches: a bytearray (a Spark Row's binary) is not hashable.
    pairs = [(None if x is None else bytes(x), None if y is None else bytes(y)) for x, y in zip(a, b)]
    out = []
    for i in range(0, len(pairs), CHUNK_PAIRS):
        chunk = pairs[i:i + CHUNK_PAIRS]
        images.load(chunk)
        out.extend(_compare_one(x, y, min_coarse, images) for x, y in chunk)
    return out


def compare(a: bytes | None, b: bytes | None, min_coarse: float | None = None) -> dict:
    """Aligned-thumbnail scores of one pair; ``status`` says when a score could not be made.

    Coarse: every grid window of each image against the whole other at 16 x 16. Fine:
    around the TOP_WINDOWS best coarse windows, the crops one REFINE_STEPS[0] away at
    32 x 32, then around the best of those the crops REFINE_STEPS[1] away; the best fine
    window gives ``fine``, ``changed``, ``local``, ``local_rest`` and ``chroma``.
    ``min_coarse``: see compare_many.
    """
    return compare_many([a], [b], min_coarse)[0]


RULE_KEYS = ("verify_min_fine", "verify_max_changed", "verify_max_local", "verify_max_local_rest",
             "verify_max_chroma")


def verdict(scores: dict, rule: Mapping) -> str:
    """The verification rule, with the thresholds of ``rule`` (the analyze settings'
    verify_* keys, RULE_KEYS): ``verified`` when the aligned fine correlation is high
    enough, few pixels changed locally, at most one tile changed beyond
    verify_max_local_rest (and it by at most verify_max_local: an overlay) and no colour
    changed beyond verify_max_chroma; otherwise the first reason it fails: the score
    status (e.g. ``no_signature``), ``pixels_differ``, ``local_change`` or
    ``colour_change``. The one copy of the rule: analyze's pandas UDF, search and the
    benchmarks' replays all call it."""
    if scores["status"] != "ok":
        return scores["status"]
    fine = scores["fine"]
    if fine is None or not fine >= rule["verify_min_fine"]:  # (a NaN from a pandas row: not searched)
        return "pixels_differ"
    if (scores["changed"] > rule["verify_max_changed"] or scores["local"] > rule["verify_max_local"]
            or scores["local_rest"] > rule["verify_max_local_rest"]):
        return "local_change"
    if scores["chroma"] > rule["verify_max_chroma"]:
        return "colour_change"
    return "verified"


def is_same_picture(scores: dict, rule: Mapping) -> bool:
    """Whether ``scores`` pass the verification rule (see verdict)."""
    return verdict(scores, rule) == "verified"
