"""Generate a messy, labelled image dataset with known ground truth, from real Debian images.

    python -m tools.groundtruth.generate OUT_DIR --originals 40 --seed 0

writes ``OUT_DIR/images/<split>/<label>/<file>`` (splits ``train`` and ``val``) and
``OUT_DIR/ground_truth.parquet`` with one row per file written:

=============== ==============================================================================
path            ``"file:" + absolute path``, exactly as Spark's ``binaryFile`` source reports it
rel_path        path relative to OUT_DIR (``images/train/flags/3f2a....png``)
kind            original | exact_copy | near_duplicate | broken | outlier | flipped_label
variant         how the file was made: ``original``, ``copy``, ``jpeg70``, ``downscale50``,
                ``crop``, ``brightness``, ``webp``/``bmp``/``png`` (format change), ``size64``
                (the same oxygen icon drawn at another size), the photo's name for outliers, the
                broken reason for broken files
source_id       the duplicate family: an original and all its copies and near duplicates share
                it; every other file (flipped, outlier, broken) has an id of its own
split           train | val (the folder)
given_label     the label folder the file sits in
true_label      the class the picture really belongs to (None for outliers and broken files)
broken_reason   zero_byte | truncated_png | truncated_jpeg | random_bytes | html_as_png, else None
content_sha256  SHA-256 of the file's bytes (byte-identical files share it)
source_file     the Debian file (or ``skimage.data.<name>``) the picture comes from
width, height   pixel size of the written picture (None for broken files)
=============== ==============================================================================

Originals are drawn round-robin from a few visually distinct classes (``CORE_CLASSES``;
``EXTRA_CLASSES`` join for sets larger than the core can supply) in a seeded order.
Blank-looking files, very elongated ones and ones under 48 px are skipped. A candidate is refused when its 16x16 grey thumbnail is nearly equal
to one already taken (globally, and within its class also under rotation/flip and after
normalising brightness/contrast), when its bytes or resolved path repeat one already
taken, or when its class says it is the same picture in another style (a playing card in
another deck, an AIGA pictogram's negative), so the originals are not near duplicates of
each other and the only duplicates are the ones made on purpose.

Everything is deterministic for a seed (same files, same bytes, same table).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import random
import re
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
from PIL import Image, ImageEnhance

log = logging.getLogger("tools.groundtruth")

OPENCLIPART_ROOT = "/usr/share/openclipart/png"
OXYGEN_ROOT = "/usr/share/icons/oxygen/base"
OXYGEN_SIZES = (48, 64, 128, 256)  # sizes a multi-size near-duplicate set may use (>= 48 px)

KINDS = ("original", "exact_copy", "near_duplicate", "broken", "outlier", "flipped_label")
NEAR_VARIANTS = ("jpeg70", "downscale50", "crop", "brightness", "format")
BROKEN_REASONS = ("zero_byte", "truncated_png", "truncated_jpeg", "random_bytes", "html_as_png")
SPLITS = ("train", "val")

COLUMNS = [
    "path", "rel_path", "kind", "variant", "source_id", "split", "given_label", "true_label",
    "broken_reason", "content_sha256", "source_file", "width", "height",
]


@dataclass(frozen=True)
class ClassSource:
    """One class of originals: which Debian folders it is drawn from and how."""

    label: str
    openclipart: tuple[str, ...] = ()  # folders under OPENCLIPART_ROOT, searched recursively
    oxygen: tuple[str, ...] = ()  # oxygen icon categories (actions, devices, mimetypes, ...)
    include: str | None = None  # regex a file name must match
    exclude: str | None = None  # regex (searched in the path below the folder) that drops a file
    # file name -> "the same picture" key: only the first candidate (in seeded order) of
    # each key is used (one playing card in four decks, a pictogram and its negative).
    same_picture: Callable[[str], str] | None = None
    why: str = ""


def _card_key(name: str) -> str:
    """white_h_7.png / bordered_d_7.png -> red_7: one card per rank and colour, any deck."""
    m = re.match(r"^[a-z]+_([a-z]+)_(\w+)\.png$", name)
    if not m:
        return name
    suit, rank = m.groups()
    colour = {"c": "black", "s": "black", "d": "red", "h": "red"}.get(suit, suit)
    return f"{colour}_{rank}"


def _aiga_key(name: str) -> str:
    """aiga_bus1.png (negative) / aiga_bus_.png (positive) -> aiga_bus."""
    return re.sub(r"(1|_)?\.png$", "", name)


# Core classes: members look alike and differ from the other classes. Small sets use the
# first few (see generate()), so the most distinct ones come first.
CORE_CLASSES: tuple[ClassSource, ...] = (
    ClassSource(
        "flags",
        openclipart=("signs_and_symbols/flags",),
        exclude=r"semaphore|historic",
        why="national and regional flags: flat coloured rectangles with stripes and emblems",
    ),
    ClassSource(
        "fruit",
        openclipart=("food/fruit",),
        why="round, colourful fruit drawings on white",
    ),
    ClassSource(
        "devices",
        oxygen=("devices",),
        why="oxygen hardware icons (drives, phones, printers, media): glossy grey/black "
        "objects; each icon exists at several sizes, the natural multi-size near duplicates",
    ),
    ClassSource(
        "pictograms",
        openclipart=("transportation/aiga-symbols", "signs_and_symbols/map_symbols"),
        include=r"^aiga",
        exclude=r"arrow|_(up|down|left|right)",
        same_picture=_aiga_key,
        why="black-and-white AIGA transport pictograms (arrows left out: they are the arrows class)",
    ),
    ClassSource(
        "road_signs",
        openclipart=("transportation/roadsigns",),
        why="red-rimmed triangles and circles, blue mandatory discs",
    ),
    ClassSource(
        "animals",
        openclipart=("animals",),
        why="colour drawings of mammals, birds, fish, bugs and dinosaurs",
    ),
    ClassSource(
        "arrows",
        openclipart=("shapes/arrows",),
        why="single arrows and arrow signs (many are rotations or recolourings of each other: "
        "the thumbnail filter keeps one of each)",
    ),
    ClassSource(
        "documents",
        oxygen=("mimetypes",),
        why="oxygen file-type icons: a white sheet of paper with a small emblem, at several sizes",
    ),
    ClassSource(
        "playing_cards",
        openclipart=tuple(f"recreation/games/cards/{d}" for d in ("white", "simple", "bordered", "ornamental")),
        same_picture=_card_key,
        why="white upright cards with corner indices and pips or court figures (one card per "
        "rank and colour: the same card in another deck or suit is nearly the same picture)",
    ),
)

# Extra classes, drawn only when the core classes cannot supply enough distinct originals
# (benchmarks with thousands of originals): coherent styles, less distinct from the core.
EXTRA_CLASSES: tuple[ClassSource, ...] = (
    ClassSource(
        "grey_icons",
        openclipart=("computer/icons/flat-theme",),
        why="a flat grey monochrome toolbar icon theme",
    ),
    ClassSource(
        "lemon_icons",
        openclipart=("computer/icons/lemon-theme",),
        why="a glossy green/yellow icon theme",
    ),
    ClassSource(
        "people",
        openclipart=("people",),
        exclude=r"smilies",
        why="people, faces, hands and clothing drawings",
    ),
    ClassSource(
        "food",
        openclipart=("food",),
        exclude=r"fruit",
        why="dishes, drinks, bread, vegetables and sweets",
    ),
    ClassSource(
        "vehicles",
        openclipart=("transportation",),
        exclude=r"aiga|roadsigns",
        why="cars, trains, planes and boats",
    ),
    ClassSource(
        "app_icons",
        oxygen=("apps",),
        why="oxygen application icons, at several sizes",
    ),
    ClassSource(
        "tools",
        openclipart=("tools",),
        why="hand tools and weapons",
    ),
)

CLASSES: tuple[ClassSource, ...] = CORE_CLASSES + EXTRA_CLASSES
CLASS_BY_LABEL = {c.label: c for c in CLASSES}


# Foreign-domain outliers: photographs and micrographs bundled with scikit-image, unlike
# the clip-art and unlike each other (skimage's ``cat`` is ``chelsea`` again, so not both).
OUTLIER_SOURCES: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
    "camera", "retina", "coins", "moon", "motorcycle_left", "brick", "clock", "grass",
)

# Thumbnail filter thresholds (grey 16x16, values 0..1).
SIG_SIZE = 16  # fine thumbnail, compared with every original taken (and its mirror image)
SIG_COARSE = 8  # coarse thumbnail, compared within the class under rotations/reflections
RMS_SAME = 0.06  # refused when the root-mean-square difference of fine thumbnails is below
CORR_SAME = 0.97  # ... or brightness/contrast-normalised fine thumbnails correlate above
RMS_SAME_COARSE = 0.07  # refused when a rotated/reflected coarse thumbnail of the class is this close
CORR_SAME_COARSE = 0.95  # ... or correlates above this
CORR_MIN_STD = 0.04  # correlation is only trusted for thumbnails with this much contrast
MIN_DEFAULT_CLASSES = 5  # default class count for small sets ...
ORIGINALS_PER_CLASS = 8  # ... growing by one class per this many originals, up to all core classes
MAX_SOURCE_PIXELS = 30_000_000  # skip (absurdly) huge Debian files rather than decode them
MIN_SIDE = 48  # originals smaller than this are skipped
MAX_ASPECT = 3.0  # originals more elongated than this are skipped
MIN_GREY_STD = 5.0  # originals whose grey levels (0..255) vary less than this are blank: skipped
MIN_INK = 0.005  # ... as are those with less than this share of pixels visibly darker than white


# ----------------------------------------------------------------------------------------
# candidate listing


@dataclass
class Candidate:
    label: str
    key: str  # "same picture" key (dedup)
    files: dict[int, str]  # size -> path (oxygen: the icon at each size; openclipart: {0: path})
    real: str = ""  # resolved path of the preferred file


def _list_openclipart(src: ClassSource) -> list[Candidate]:
    out = []
    for folder in src.openclipart:
        root = os.path.join(OPENCLIPART_ROOT, folder)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                if not name.lower().endswith(".png"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                if src.include and not re.search(src.include, name):
                    continue
                if src.exclude and re.search(src.exclude, rel):
                    continue
                path = os.path.join(dirpath, name)
                key = src.same_picture(name) if src.same_picture else ""
                out.append(Candidate(src.label, key, {0: path}, os.path.realpath(path)))
    return out


def _list_oxygen(src: ClassSource) -> list[Candidate]:
    by_name: dict[str, dict[int, str]] = {}
    all_sizes = sorted(
        int(d.split("x")[0]) for d in os.listdir(OXYGEN_ROOT) if re.fullmatch(r"\d+x\d+", d)
    ) if os.path.isdir(OXYGEN_ROOT) else []
    for cat in src.oxygen:
        for size in all_sizes:
            folder = os.path.join(OXYGEN_ROOT, f"{size}x{size}", cat)
            if not os.path.isdir(folder):
                continue
            for name in sorted(os.listdir(folder)):
                if name.endswith(".png") and (not src.include or re.search(src.include, name)):
                    if src.exclude and re.search(src.exclude, name):
                        continue
                    by_name.setdefault(f"{cat}/{name}", {})[size] = os.path.join(folder, name)
    out = []
    for name in sorted(by_name):
        files = {s: p for s, p in by_name[name].items() if s in OXYGEN_SIZES}
        if not any(s >= 64 for s in files):
            continue
        biggest = files[max(files)]
        out.append(Candidate(src.label, name, files, os.path.realpath(biggest)))
    return out


def list_candidates(src: ClassSource) -> list[Candidate]:
    """All usable source files of a class, in a stable (sorted) order."""
    cands = _list_openclipart(src) + _list_oxygen(src)
    seen, unique = set(), []
    for c in cands:  # symlinks / the same file reached twice
        if c.real not in seen:
            seen.add(c.real)
            unique.append(c)
    return unique


# ----------------------------------------------------------------------------------------
# image helpers


def _on_white(img: Image.Image) -> Image.Image:
    """Any mode -> RGB, transparency composited onto white."""
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return img.convert("RGB")


def _load_source(path: str, max_side: int) -> Image.Image | None:
    """Decode a Debian image onto white, at most max_side per side; None if unusable."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: checked just below
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_SOURCE_PIXELS or min(w, h) < MIN_SIDE or max(w, h) > MAX_ASPECT * min(w, h):
                    return None
                im.load()
                if im.mode == "P" or "transparency" in im.info or im.mode not in ("RGB", "RGBA", "L", "LA"):
                    im = im.convert("RGBA")
                if max(w, h) > max_side:  # shrink first (Pillow resamples alpha premultiplied)
                    factor = max(w, h) // (2 * max_side)
                    if factor > 1:
                        im = im.reduce(factor)
                    im.thumbnail((max_side, max_side), Image.LANCZOS)
                rgb = _on_white(im)
    except Exception:  # noqa: BLE001 - a Debian file Pillow cannot read is just not used
        return None
    if min(rgb.size) < MIN_SIDE // 2:
        return None
    grey = np.asarray(rgb.convert("L"))
    if grey.std() < MIN_GREY_STD or (grey < 230).mean() < MIN_INK:  # (nearly) blank on white
        return None
    return rgb


def _signature(img: Image.Image) -> tuple[np.ndarray, np.ndarray]:
    """Grey thumbnails (values 0..1): fine (SIG_SIZE square) and coarse (SIG_COARSE square)."""
    g = img.convert("L")
    fine = np.asarray(g.resize((SIG_SIZE, SIG_SIZE), Image.BOX), dtype=np.float32) / 255.0
    coarse = np.asarray(g.resize((SIG_COARSE, SIG_COARSE), Image.BOX), dtype=np.float32) / 255.0
    return fine, coarse


def _dihedral(sig: np.ndarray, flips_only: bool = False) -> np.ndarray:
    """Rotations/reflections of a square thumbnail, flattened, identity first: (8 or 2, S*S)."""
    if flips_only:
        return np.stack([sig.ravel(), np.fliplr(sig).ravel()])
    out = []
    for k in range(4):
        r = np.rot90(sig, k)
        out.append(r.ravel())
        out.append(np.fliplr(r).ravel())
    return np.stack(out)


def _normalised(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-mean, unit-norm copy of each row, and each row's standard deviation."""
    z = v - v.mean(axis=-1, keepdims=True)
    std = z.std(axis=-1)
    n = np.linalg.norm(z, axis=-1, keepdims=True)
    return z / np.maximum(n, 1e-9), std


class _Bank:
    """Flattened thumbnails of one resolution, with their normalised copies (grown in place)."""

    def __init__(self, dim: int) -> None:
        self.n = 0
        self.raw = np.zeros((64, dim), np.float32)
        self.sq = np.zeros(64, np.float32)  # squared norms of raw
        self.norm = np.zeros((64, dim), np.float32)  # zero-mean unit-norm rows; 0 when low contrast

    def add(self, v: np.ndarray) -> None:
        v = v.reshape(1, -1).astype(np.float32)
        if self.n == len(self.raw):
            grow = lambda a: np.concatenate([a, np.zeros_like(a)])  # noqa: E731
            self.raw, self.sq, self.norm = grow(self.raw), grow(self.sq), grow(self.norm)
        z, std = _normalised(v)
        self.raw[self.n] = v[0]
        self.sq[self.n] = float((v[0] ** 2).sum())
        self.norm[self.n] = z[0] if std[0] >= CORR_MIN_STD else 0.0
        self.n += 1

    def close(self, variants: np.ndarray, rms_max: float, corr_max: float) -> bool:
        """Is any variant (row) within rms_max, or correlated above corr_max, of an entry?"""
        if not self.n:
            return False
        raw = self.raw[: self.n]
        d2 = self.sq[: self.n, None] + (variants ** 2).sum(1)[None, :] - 2.0 * (raw @ variants.T)
        if d2.min() < rms_max * rms_max * variants.shape[1]:
            return True
        z, std = _normalised(variants)
        if std[0] < CORR_MIN_STD:
            return False
        return bool((self.norm[: self.n] @ z.T).max() > corr_max)


class _SignatureIndex:
    """Thumbnails of the originals taken so far; answers 'is this one too close?'.

    Against every original taken: the fine thumbnail and its mirror image (CNN embeddings
    hardly tell a picture from its mirror). Within the class: the coarse thumbnail under
    all 8 rotations/reflections (arrow sets drawn in four directions, mirrored signs).
    """

    def __init__(self) -> None:
        self.fine = _Bank(SIG_SIZE * SIG_SIZE)
        self.coarse: dict[str, _Bank] = {}

    def too_close(self, sig: tuple[np.ndarray, np.ndarray], label: str) -> bool:
        fine, coarse = sig
        if self.fine.close(_dihedral(fine, flips_only=True), RMS_SAME, CORR_SAME):
            return True
        bank = self.coarse.get(label)
        return bank is not None and bank.close(_dihedral(coarse), RMS_SAME_COARSE, CORR_SAME_COARSE)

    def add(self, sig: tuple[np.ndarray, np.ndarray], label: str) -> None:
        self.fine.add(sig[0])
        self.coarse.setdefault(label, _Bank(SIG_COARSE * SIG_COARSE)).add(sig[1])


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=kw.get("quality", 92))
    elif fmt == "WEBP":
        img.save(buf, "WEBP", quality=kw.get("quality", 85), method=4)
    elif fmt == "PNG":
        img.save(buf, "PNG", optimize=False, compress_level=6)
    else:
        img.save(buf, fmt)
    return buf.getvalue()


EXT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp"}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _outlier_image(name: str) -> Image.Image | None:
    try:
        import skimage.data as skd
    except ImportError:  # pragma: no cover - scikit-image is a test dependency here
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "motorcycle_left":
                arr = skd.stereo_motorcycle()[0]
            else:
                arr = getattr(skd, name)()
    except Exception:  # noqa: BLE001 - a photo that needs a download is skipped
        return None
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        lo, hi = arr.min(), arr.max()
        arr = ((arr - lo) * (255.0 / (hi - lo if hi > lo else 1))).astype(np.uint8)
    img = Image.fromarray(arr)
    return _on_white(img)


# ----------------------------------------------------------------------------------------
# selection of originals


@dataclass
class _Original:
    cand: Candidate
    img: Image.Image
    size: int  # oxygen size used (0 for openclipart)
    source_file: str
    idx: int = 0
    split: str = "train"
    flipped_to: str | None = None
    fmt: str = "PNG"


def select_originals(
    n: int, rng: random.Random, tiers: list[list[ClassSource]], max_side: int
) -> list[_Original]:
    """Draw n originals round-robin over the classes of the first tier, refusing
    near-identical ones; a later tier's classes join only when all earlier ones ran dry."""
    index = _SignatureIndex()
    keys: set[tuple[str, str]] = set()
    hashes: set[str] = set()
    taken: list[_Original] = []
    iters: dict[str, object] = {}
    active: list[str] = []
    pending = [list(t) for t in tiers if t]

    def take_one(label: str) -> _Original | None:
        for cand in iters[label]:
            if cand.key and (label, cand.key) in keys:
                continue
            if 0 in cand.files:
                size = 0
            else:  # an oxygen icon: one of its sizes >= 128 px (>= 64 px when it has no bigger one)
                big = sorted(s for s in cand.files if s >= 128) or sorted(s for s in cand.files if s >= 64)
                size = rng.choice(big)
            path = cand.files[size]
            try:
                with open(path, "rb") as fh:
                    digest = _sha256(fh.read())
            except OSError:
                continue
            if digest in hashes:
                continue
            img = _load_source(path, max_side)
            if img is None:
                continue
            sig = _signature(img)
            if index.too_close(sig, label):
                continue
            index.add(sig, label)
            hashes.add(digest)
            if cand.key:
                keys.add((label, cand.key))
            return _Original(cand, img, size, path)
        return None

    while len(taken) < n:
        if not active:
            if not pending:
                break
            for src in pending.pop(0):
                cands = list_candidates(src)
                rng.shuffle(cands)
                iters[src.label] = iter(cands)
                active.append(src.label)
        for label in list(active):
            if len(taken) >= n:
                break
            got = take_one(label)
            if got is None:
                active.remove(label)
            else:
                taken.append(got)
    if len(taken) < n:
        raise ValueError(
            f"only {len(taken)} distinct originals are available from classes "
            f"{[c.label for t in tiers for c in t]}; asked for {n}"
        )
    return taken


# ----------------------------------------------------------------------------------------
# the generator


def _count(fraction: float, total: int) -> int:
    return max(0, min(total, int(round(fraction * total))))


def _near_variant(img: Image.Image, fmt: str, variant: str, rng: random.Random) -> tuple[bytes, str, str]:
    """Returns (bytes, format, variant name)."""
    w, h = img.size
    if variant == "jpeg70":
        return _encode(img, "JPEG", quality=70), "JPEG", "jpeg70"
    if variant == "downscale50":
        small = img.resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS)
        return _encode(small, fmt), fmt, "downscale50"
    if variant == "crop":
        f = rng.uniform(0.85, 0.90)
        cw, ch = max(1, round(w * f)), max(1, round(h * f))
        left, top = (w - cw) // 2, (h - ch) // 2
        return _encode(img.crop((left, top, left + cw, top + ch)), fmt), fmt, "crop"
    if variant == "brightness":
        factor = rng.choice([0.8, 1.2])
        return _encode(ImageEnhance.Brightness(img).enhance(factor), fmt), fmt, "brightness"
    if variant == "format":
        new = rng.choice(["WEBP", "BMP"] if fmt == "PNG" else ["PNG", "WEBP"])
        return _encode(img, new), new, new.lower()
    raise ValueError(variant)


def _broken_bytes(reason: str, img: Image.Image, rng: random.Random, i: int) -> tuple[bytes, str]:
    """Returns (bytes, extension)."""
    if reason == "zero_byte":
        return b"", rng.choice([".jpg", ".png"])
    if reason == "truncated_png":
        data = _encode(img, "PNG")
        return data[: max(64, int(len(data) * rng.uniform(0.3, 0.6)))], ".png"
    if reason == "truncated_jpeg":
        data = _encode(img, "JPEG", quality=90)
        return data[: max(700, int(len(data) * rng.uniform(0.3, 0.6)))], ".jpg"
    if reason == "random_bytes":
        return rng.randbytes(rng.randint(2_000, 20_000)), ".jpg"
    if reason == "html_as_png":
        html = (
            "<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head>\n"
            f"<body><h1>Not Found</h1><p>The requested image /img/{i:05d}.png was not found "
            "on this server.</p></body></html>\n"
        )
        return html.encode(), ".png"
    raise ValueError(reason)


def generate(
    out_dir: str,
    n_originals: int = 40,
    seed: int = 0,
    *,
    classes: list[str] | None = None,
    val_fraction: float = 0.2,
    exact_fraction: float = 0.15,
    near_fraction: float = 0.3,
    multisize_fraction: float = 0.5,
    leak_fraction: float = 0.3,
    flipped_fraction: float = 0.05,
    n_outliers: int | None = None,
    n_broken: int | None = None,
    jpeg_fraction: float = 0.3,
    max_side: int = 384,
) -> pd.DataFrame:
    """Write a labelled dataset with known duplicates, leaks, broken files, outliers and
    flipped labels under out_dir, and return (and write) its ground truth.

    n_originals    distinct originals drawn from the classes (flipped ones included)
    classes        labels from CLASSES to draw from, round-robin. Default: the first
                   ceil(n/8) core classes (at least 5, at most all 9), so small sets have
                   several originals per class; the other core classes and then the extra
                   classes join only when those run out of distinct originals (about
                   1,100 distinct originals from the core, 2,500 in all)
    val_fraction   share of originals (per class) in the val split
    exact_fraction share of originals that get a byte-identical copy (1, sometimes 2)
    near_fraction  share of originals that get 1-3 near duplicates (jpeg70, downscale50,
                   crop, brightness, format change)
    multisize_fraction  share of oxygen-icon originals that get the same icon at 1-2 other
                   sizes (>= 48 px) as near duplicates
    leak_fraction  share of copies / near duplicates placed in the other split
    flipped_fraction share of originals (without duplicates) put in a wrong class folder
    n_outliers     foreign photos (default: n/8, at least 3, at most len(OUTLIER_SOURCES))
    n_broken       broken files (default: max(5, 2% of n)), cycling through BROKEN_REASONS
    jpeg_fraction  share of clip-art originals saved as JPEG (the rest PNG)
    max_side       originals are downscaled to at most this many pixels per side
    """
    t0 = time.time()
    rng = random.Random(seed)
    if n_originals < 1:
        raise ValueError("n_originals must be at least 1")
    if classes is None:
        k = min(len(CORE_CLASSES), max(MIN_DEFAULT_CLASSES, -(-n_originals // ORIGINALS_PER_CLASS)))
        tiers = [list(CORE_CLASSES[:k]), list(CORE_CLASSES[k:]) + list(EXTRA_CLASSES)]
    else:
        unknown = [c for c in classes if c not in CLASS_BY_LABEL]
        if unknown:
            raise ValueError(f"unknown classes {unknown}; known: {list(CLASS_BY_LABEL)}")
        tiers = [[CLASS_BY_LABEL[c] for c in dict.fromkeys(classes)]]

    out_dir = os.path.abspath(out_dir)
    img_root = os.path.join(out_dir, "images")
    gt_path = os.path.join(out_dir, "ground_truth.parquet")
    if os.path.isdir(img_root):
        shutil.rmtree(img_root)
    if os.path.exists(gt_path):
        os.remove(gt_path)
    os.makedirs(img_root, exist_ok=True)

    originals = select_originals(n_originals, rng, tiers, max_side)
    labels_used = sorted({o.cand.label for o in originals})

    # splits: per class, a val_fraction share of originals in val
    by_class: dict[str, list[_Original]] = {}
    for i, o in enumerate(originals):
        o.idx = i
        by_class.setdefault(o.cand.label, []).append(o)
    for label in sorted(by_class):
        members = by_class[label]
        order = list(range(len(members)))
        rng.shuffle(order)
        n_val = _count(val_fraction, len(members))
        for j, pos in enumerate(order):
            members[pos].split = "val" if j < n_val else "train"

    # flipped labels (never with duplicates)
    n_flip = _count(flipped_fraction, len(originals)) if len(labels_used) > 1 else 0
    if flipped_fraction > 0 and n_flip == 0 and len(originals) >= 10 and len(labels_used) > 1:
        n_flip = 1
    flipped = set(rng.sample(range(len(originals)), n_flip))
    for i in sorted(flipped):
        o = originals[i]
        o.flipped_to = rng.choice([lab for lab in labels_used if lab != o.cand.label])

    families = [o for o in originals if o.idx not in flipped]
    exact_set = {o.idx for o in rng.sample(families, _count(exact_fraction, len(families)))}
    near_set = {o.idx for o in rng.sample(families, _count(near_fraction, len(families)))}
    multi_ok = [
        o for o in families
        if o.size and sum(1 for s in o.cand.files if s >= 48 and s != o.size) >= 1
    ]
    multi_set = {o.idx for o in rng.sample(multi_ok, _count(multisize_fraction, len(multi_ok)))}

    rows: list[dict] = []
    used_names: set[str] = set()

    def other(split: str) -> str:
        return "val" if split == "train" else "train"

    def write(split: str, label: str, data: bytes, ext: str, **row) -> dict:
        while True:
            name = f"{rng.getrandbits(48):012x}{ext}"
            if name not in used_names:
                used_names.add(name)
                break
        rel = os.path.join("images", split, label, name)
        full = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(data)
        r = {
            "path": "file:" + full,
            "rel_path": rel,
            "split": split,
            "given_label": label,
            "content_sha256": _sha256(data),
            "broken_reason": None,
            "width": None,
            "height": None,
        }
        r.update(row)
        rows.append(r)
        return r

    for o in originals:
        label = o.cand.label
        sid = f"o{o.idx:06d}"
        if o.size:
            o.fmt = "PNG"
        else:
            o.fmt = "JPEG" if rng.random() < jpeg_fraction else "PNG"
        data = _encode(o.img, o.fmt)
        w, h = o.img.size
        if o.flipped_to:
            write(o.split, o.flipped_to, data, EXT[o.fmt], kind="flipped_label", variant="original",
                  source_id=sid, true_label=label, source_file=o.source_file, width=w, height=h)
            continue
        write(o.split, label, data, EXT[o.fmt], kind="original", variant="original", source_id=sid,
              true_label=label, source_file=o.source_file, width=w, height=h)
        family_hashes = {_sha256(data)}

        def place() -> str:
            return other(o.split) if rng.random() < leak_fraction else o.split

        if o.idx in exact_set:
            for _ in range(2 if rng.random() < 0.2 else 1):
                write(place(), label, data, EXT[o.fmt], kind="exact_copy", variant="copy", source_id=sid,
                      true_label=label, source_file=o.source_file, width=w, height=h)
        if o.idx in near_set:
            k = rng.choice([1, 1, 2, 2, 3])
            pool = [v for v in NEAR_VARIANTS if v != "downscale50" or min(o.img.size) >= 2 * MIN_SIDE]
            for variant in rng.sample(pool, min(k, len(pool))):
                vdata, vfmt, vname = _near_variant(o.img, o.fmt, variant, rng)
                vh = _sha256(vdata)
                if vh in family_hashes:
                    continue
                family_hashes.add(vh)
                with Image.open(io.BytesIO(vdata)) as check:
                    vw, vhh = check.size
                write(place(), label, vdata, EXT[vfmt], kind="near_duplicate", variant=vname,
                      source_id=sid, true_label=label, source_file=o.source_file, width=vw, height=vhh)
        if o.idx in multi_set:
            sizes = sorted(s for s in o.cand.files if s >= 48 and s != o.size)
            for s in sorted(rng.sample(sizes, min(len(sizes), rng.choice([1, 2])))):
                path = o.cand.files[s]
                img = _load_source(path, max_side)
                if img is None:
                    continue
                vdata = _encode(img, "PNG")
                vh = _sha256(vdata)
                if vh in family_hashes:
                    continue
                family_hashes.add(vh)
                write(place(), label, vdata, ".png", kind="near_duplicate", variant=f"size{s}",
                      source_id=sid, true_label=label, source_file=path, width=img.size[0],
                      height=img.size[1])

    # foreign-domain outliers
    if n_outliers is None:
        n_outliers = min(len(OUTLIER_SOURCES), max(3, round(n_originals / 8)))
    made = 0
    for name in OUTLIER_SOURCES:
        if made >= n_outliers:
            break
        img = _outlier_image(name)
        if img is None:
            continue
        if max(img.size) > max_side:
            img.thumbnail((max_side, max_side), Image.LANCZOS)
        split = "val" if rng.random() < val_fraction else "train"
        write(split, rng.choice(labels_used), _encode(img, "JPEG", quality=90), ".jpg", kind="outlier",
              variant=name, source_id=f"x{made:06d}", true_label=None,
              source_file=f"skimage.data.{name}", width=img.size[0], height=img.size[1])
        made += 1
    if made < n_outliers:
        log.warning("only %d of %d outlier photos were available", made, n_outliers)

    # broken files
    if n_broken is None:
        n_broken = max(len(BROKEN_REASONS), _count(0.02, n_originals))
    for i in range(n_broken):
        reason = BROKEN_REASONS[i % len(BROKEN_REASONS)]
        donor = originals[rng.randrange(len(originals))]
        data, ext = _broken_bytes(reason, donor.img, rng, i)
        split = "val" if rng.random() < val_fraction else "train"
        write(split, rng.choice(labels_used), data, ext, kind="broken", variant=reason,
              source_id=f"b{i:06d}", true_label=None, broken_reason=reason,
              source_file=donor.source_file if reason.startswith("truncated") else None)

    df = pd.DataFrame(rows)
    df = df.reindex(columns=COLUMNS).sort_values("rel_path").reset_index(drop=True)
    df["width"] = df["width"].astype("Int64")
    df["height"] = df["height"].astype("Int64")
    df.to_parquet(gt_path, index=False)
    log.info("generated %d files (%d originals) in %.1fs", len(df), n_originals, time.time() - t0)
    return df


def summarize(df: pd.DataFrame) -> str:
    lines = [f"{len(df)} files"]
    lines.append("kinds: " + ", ".join(f"{k}={v}" for k, v in df["kind"].value_counts().sort_index().items()))
    lines.append("splits: " + ", ".join(f"{k}={v}" for k, v in df["split"].value_counts().sort_index().items()))
    lines.append("classes: " + ", ".join(
        f"{k}={v}" for k, v in df[df.kind.isin(["original", "flipped_label"])]["true_label"]
        .value_counts().sort_index().items()))
    lines.append("variants: " + ", ".join(
        f"{k}={v}" for k, v in df[df.kind == "near_duplicate"]["variant"].value_counts().sort_index().items()))
    fam = df[df.kind != "broken"].groupby("source_id")
    sizes = fam["path"].size()
    leaks = fam["split"].nunique()
    lines.append(f"duplicate families: {(sizes > 1).sum()} (largest {sizes.max()}), "
                 f"crossing splits: {(leaks > 1).sum()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.groundtruth.generate",
        description="Generate a messy labelled image dataset with ground truth from Debian images.",
    )
    p.add_argument("out_dir")
    p.add_argument("--originals", type=int, default=40, help="distinct originals (default 40)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", default=None,
                   help=f"comma-separated subset of: {','.join(CLASS_BY_LABEL)}")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--exact-fraction", type=float, default=0.15)
    p.add_argument("--near-fraction", type=float, default=0.3)
    p.add_argument("--multisize-fraction", type=float, default=0.5)
    p.add_argument("--leak-fraction", type=float, default=0.3)
    p.add_argument("--flipped-fraction", type=float, default=0.05)
    p.add_argument("--outliers", type=int, default=None)
    p.add_argument("--broken", type=int, default=None)
    p.add_argument("--max-side", type=int, default=384)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.time()
    try:
        df = generate(
            a.out_dir, a.originals, a.seed,
            classes=a.classes.split(",") if a.classes else None,
            val_fraction=a.val_fraction, exact_fraction=a.exact_fraction,
            near_fraction=a.near_fraction, multisize_fraction=a.multisize_fraction,
            leak_fraction=a.leak_fraction, flipped_fraction=a.flipped_fraction,
            n_outliers=a.outliers, n_broken=a.broken, max_side=a.max_side,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summarize(df))
    print(f"wrote {os.path.join(os.path.abspath(a.out_dir), 'ground_truth.parquet')} in {time.time() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
